// A real Redis Sentinel failover: a master, its replica and one sentinel (quorum 1), redis-server
// processes of this file's own on free ports, their files in a temp dir removed at the end. The
// store is given ioredis clients made with `sentinels`, as production setups do. Skipped when
// redis-server is not installed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProgressTracker, type ProgressEvent } from '@progress/core';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../tools/test-utils/src/net.js';
import { RedisStore } from '../src/index.js';
import { freshPrefix } from './helpers.js';

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

interface Setup {
  dir: string;
  ports: { a: number; b: number; sentinel: number };
  children: Map<string, ChildProcess>;
  sentinel: Redis;
  admins: Redis[];
}

let setup: Setup | undefined;
let skipped: string | undefined;

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function startServer(name: string, args: string[], children: Map<string, ChildProcess>): ChildProcess {
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  child.once('error', () => {});
  children.set(name, child);
  return child;
}

beforeAll(async () => {
  if (!hasRedisServer) return void (skipped = 'redis-server is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'progress-sentinel-'));
  const ports = { a: await freePort(), b: await freePort(), sentinel: await freePort() };
  const children = new Map<string, ChildProcess>();
  const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
  startServer('a', ['--port', String(ports.a), ...common], children);
  startServer('b', ['--port', String(ports.b), ...common, '--replicaof', '127.0.0.1', String(ports.a)], children);
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(
    conf,
    [
      `port ${ports.sentinel}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor mymaster 127.0.0.1 ${ports.a} 1`,
      'sentinel down-after-milliseconds mymaster 1000',
      'sentinel failover-timeout mymaster 5000',
      'sentinel parallel-syncs mymaster 1',
      '',
    ].join('\n'),
  );
  startServer('sentinel', [conf, '--sentinel'], children);
  const admins = [ports.a, ports.b].map((port) => new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 50 }));
  for (const admin of admins) admin.on('error', () => {});
  const sentinel = new Redis({ host: '127.0.0.1', port: ports.sentinel, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  sentinel.on('error', () => {});
  setup = { dir, ports, children, sentinel, admins };
  // connect() once: after a first attempt that failed (the sentinel not listening yet, on a busy
  // machine), ioredis connects again by itself, and a connect() called meanwhile or after is refused
  // ("already connecting/connected"), which read as "not yet" until the deadline.
  void sentinel.connect().catch(() => {});
  await until(async () => sentinel.status === 'ready', 'the sentinel to answer');
  await until(async () => {
    const info = String(await admins[1]!.info('replication').catch(() => ''));
    return info.includes('master_link_status:up');
  }, 'the replica to sync');
  await until(async () => {
    const replicas = (await sentinel.call('SENTINEL', 'REPLICAS', 'mymaster')) as string[][];
    return replicas.some((r) => r[r.indexOf('flags') + 1] === 'slave' && r[r.indexOf('master-link-status') + 1] === 'ok');
  }, 'the sentinel to know the replica');
}, 30_000);

afterAll(async () => {
  if (!setup) return;
  setup.sentinel.disconnect();
  for (const admin of setup.admins) admin.disconnect();
  await Promise.all(
    [...setup.children.values()].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
  rmSync(setup.dir, { recursive: true, force: true });
});

const sentinelClient = (s: Setup): Redis => {
  const client = new Redis({ sentinels: [{ host: '127.0.0.1', port: s.ports.sentinel }], name: 'mymaster', maxRetriesPerRequest: null });
  // A failover drops its connections on purpose; ioredis reconnects through the sentinel.
  client.on('error', () => {});
  return client;
};

describe.skipIf(!hasRedisServer)('RedisStore with Redis Sentinel', () => {
  it('a watch() and a watchAll() follow a failover to the new master: every event once, in order, and the writer goes on there', async () => {
    if (skipped) return console.warn(`[storage-redis] skipping the Sentinel test: ${skipped}`);
    const s = setup!;
    const keyPrefix = freshPrefix('sentinel');
    const upgradeId = 'failover';
    const clients = [sentinelClient(s), sentinelClient(s)];
    const [writerClient, readerClient] = clients as [Redis, Redis];
    const store = new RedisStore({ redis: writerClient, keyPrefix, watchBlockMs: 200 });
    const reader = new RedisStore({ redis: readerClient, keyPrefix, watchBlockMs: 200 });
    const [a, b] = s.admins as [Redis, Redis];
    try {
      await reader.list();
      const stop = new AbortController();
      const watched: ProgressEvent[] = [];
      const all: ProgressEvent[] = [];
      const ends: { watch?: unknown; watchAll?: unknown } = {};
      const following = [
        (async () => {
          try {
            for await (const e of reader.watch(upgradeId, 0, { signal: stop.signal })) watched.push(e);
          } catch (err) {
            ends.watch = err;
          }
        })(),
        (async () => {
          try {
            for await (const e of reader.watchAll({ signal: stop.signal })) all.push(e);
          } catch (err) {
            ends.watchAll = err;
          }
        })(),
      ];
      const tracker = await ProgressTracker.open({ upgradeId, planId: 'p', clusterName: 'c', store });
      await tracker.startUpgrade();
      await tracker.addTask('t1', 'Task 1');
      await tracker.updateTaskProgress('t1', 10, 'ten');
      const before = tracker.durableProgress.lastSeq;
      // Replicated (the failover loses nothing), and handed out: the watchers wait in XREAD BLOCK.
      expect(await a.call('WAIT', '1', '5000')).toBe(1);
      await until(() => watched.length === before && all.length === before, 'the watchers to hand out the first events');

      // Sentinel promotes the replica, then demotes the old master: REPLICAOF (which ends the
      // blocked reads on it with UNBLOCKED) and CLIENT KILL TYPE normal. Sentinel does the latter
      // some 10 s after the switch; done here at once, as Sentinel sends it.
      await s.sentinel.call('SENTINEL', 'FAILOVER', 'mymaster');
      await until(async () => String(await s.sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster')) === `127.0.0.1,${s.ports.b}`, 'the sentinel to switch to the replica');
      await until(async () => String(await b.info('replication')).includes('role:master'), 'the replica to be promoted');
      await a.call('REPLICAOF', '127.0.0.1', String(s.ports.b));
      await a.call('CLIENT', 'KILL', 'TYPE', 'normal');

      // The writer reconnects through the sentinel and appends on the new master.
      for (const pct of [20, 30, 40]) await tracker.updateTaskProgress('t1', pct, `at ${pct}`);
      const last = tracker.durableProgress.lastSeq;
      expect(last).toBe(before + 3);
      await until(() => ends.watch !== undefined || ends.watchAll !== undefined || (watched.length >= last && all.length >= last), 'the watchers to hand out every event, or end');
      stop.abort();
      await Promise.all(following);
      expect(ends).toEqual({});

      const stored: ProgressEvent[] = [];
      for await (const e of reader.readEvents(upgradeId, 0)) stored.push(e);
      expect(stored.map((e) => e.seq)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
      expect(watched.map((e) => e.eventId)).toEqual(stored.map((e) => e.eventId));
      expect(all.map((e) => e.eventId)).toEqual(stored.map((e) => e.eventId));
      expect((await reader.load(upgradeId))?.lastSeq).toBe(last);
      expect((await reader.list()).map((r) => [r.upgradeId, r.lastSeq])).toEqual([[upgradeId, last]]);
      await tracker.close();
    } finally {
      await store.close();
      await reader.close();
      for (const client of clients) client.disconnect();
    }
  }, 30_000);
});

describe.skipIf(!hasRedisServer)('RedisStore with Redis Sentinel: close() leaves no connection', () => {
  it("ends the failover detector's sentinel connection of a watcher that waits to reconnect (a client made with failoverDetector)", async () => {
    if (skipped) return console.warn(`[storage-redis] skipping the Sentinel test: ${skipped}`);
    const s = setup!;
    const sentinelClients = async (): Promise<number> => String(await s.sentinel.call('CLIENT', 'LIST')).split('\n').filter(Boolean).length;
    // A long retry delay: the watcher's connection, a duplicate of this client, waits to reconnect when close() comes.
    const client = new Redis({ sentinels: [{ host: '127.0.0.1', port: s.ports.sentinel }], name: 'mymaster', maxRetriesPerRequest: null, failoverDetector: true, retryStrategy: () => 5000 });
    client.on('error', () => {});
    const connectionName = `test-detector-${process.pid}`;
    const store = new RedisStore({ redis: client, keyPrefix: freshPrefix('sentinel-detector'), connectionName, watchBlockMs: 200 });
    try {
      await client.ping();
      // The client's own failover detector subscribes once it is ready.
      await until(async () => (await sentinelClients()) > 1, 'the client to subscribe to the sentinel');
      await new Promise((r) => setTimeout(r, 200));
      const base = await sentinelClients();
      const watching = store.watch('u1', 0)[Symbol.asyncIterator]().next();
      // The watcher's connection subscribes to the sentinel too (its failover detector).
      await until(async () => (await sentinelClients()) === base + 1, "the watcher's failover detector to subscribe");
      const master = String(await s.sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster')).split(',')[1];
      const admin = s.admins.find((a) => String(a.options.port) === master)!;
      const watcherId = String(await admin.call('CLIENT', 'LIST'))
        .split('\n')
        .find((line) => line.includes(`name=${connectionName}:watch`))
        ?.match(/^id=(\d+)/)?.[1];
      expect(watcherId).toBeDefined();
      await admin.call('CLIENT', 'KILL', 'ID', watcherId!);
      await new Promise((r) => setTimeout(r, 100));
      await store.close();
      expect(await watching).toEqual({ value: undefined, done: true });
      // Its failover detector's connection to the sentinel is gone too (it stayed open for good, with
      // the process kept alive by it).
      await until(async () => (await sentinelClients()) === base, "the watcher's failover detector connection to end", 3000);
    } finally {
      await store.close();
      client.disconnect();
    }
  }, 30_000);
});
