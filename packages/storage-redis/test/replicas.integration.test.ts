// `replicas: { count, timeoutMs }`: an append is acknowledged once `count` replicas have it (Redis'
// WAIT after the script, on the same connection). Two real redis-servers of this test's own, a master
// and its replica (REPLICAOF); the replica is stopped (SIGSTOP) to keep it from answering, and
// promoted (REPLICAOF NO ONE) to play a failover.
import { ProgressTracker, type ProgressEvent } from '@progress/core';
import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedisProxy, type RedisProxy } from '../../../tools/test-utils/src/redis-proxy.js';
import { startRedisServer, type TestRedis } from '../../../tools/test-utils/src/redis.js';
import { RedisStore, type RedisStoreOptions } from '../src/index.js';
import { errorOf, freshPrefix, pause, until } from './helpers.js';

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

let master: TestRedis;
let replicaServer: TestRedis;
let replica: Redis;
let replicaPid = 0;
const stores: RedisStore[] = [];

beforeAll(async () => {
  if (!hasRedisServer) return;
  [master, replicaServer] = await Promise.all([startRedisServer(), startRedisServer()]);
  replica = new Redis(replicaServer.url, { maxRetriesPerRequest: 0 });
  replica.on('error', () => {});
  replicaPid = Number(/process_id:(\d+)/.exec(await replica.info('server'))?.[1]);
  // A full sync (after the promotion) at once, not after Redis' default 5 s wait for more replicas.
  const admin = new Redis(master.url);
  await admin.config('SET', 'repl-diskless-sync-delay', '0');
  admin.disconnect();
});

/** Makes the replica copy the master again (a test may have promoted it), in step. */
async function follow(): Promise<void> {
  await replica.call('REPLICAOF', '127.0.0.1', new URL(master.url).port);
  await until('the replica to sync', async () => String(await replica.info('replication')).includes('master_link_status:up'));
}

afterEach(async () => {
  if (!hasRedisServer) return;
  // A test that failed half way must not leave the replica stopped for the next.
  process.kill(replicaPid, 'SIGCONT');
  for (const s of stores.splice(0)) await s.close();
});

afterAll(async () => {
  if (!hasRedisServer) return;
  replica.disconnect();
  await Promise.all([master.stop(), replicaServer.stop()]);
});

function store(options: RedisStoreOptions = {}): RedisStore {
  const s = new RedisStore({ url: master.url, keyPrefix: freshPrefix('replicas'), replicas: { count: 1, timeoutMs: 300 }, ...options });
  stores.push(s);
  return s;
}

/** Runs `test` with a proxy in front of the master (to hold, drop or cut what passes), closed after. */
async function viaProxy(test: (link: RedisProxy) => Promise<void>): Promise<void> {
  const link = await startRedisProxy(master.url);
  try {
    await test(link);
  } finally {
    await link.close();
  }
}

const ids = (events: readonly ProgressEvent[]): string[] => events.map((e) => `${e.seq}:${e.eventId}`);

async function open(s: RedisStore, upgradeId: string, sunk: ProgressEvent[] = []): Promise<ProgressTracker> {
  return ProgressTracker.open({ upgradeId, planId: 'p', clusterName: 'c', store: s, sinks: [{ name: 'rec', handle: (e) => void sunk.push(e) }] });
}

describe.skipIf(!hasRedisServer)('RedisStore with replicas: appends acknowledged once the replicas have them', () => {
  it('the replica holds each event when its command resolves, and a failover right after the last one keeps every acknowledged event', async () => {
    await follow();
    // A long wait: on a loaded machine a replica may take a while to be scheduled.
    const s = store({ replicas: { count: 1, timeoutMs: 10_000 } });
    const sunk: ProgressEvent[] = [];
    const tracker = await open(s, 'rep-a', sunk);
    const meta = s.keys.upgrade('rep-a').meta;
    await tracker.startUpgrade();
    await tracker.addTask('t', 'T');
    await tracker.startTask('t');
    for (let p = 1; p <= 30; p++) {
      const ev = await tracker.updateTaskProgress('t', p);
      // WAIT answered: the replica had applied the append when the command resolved.
      expect(await replica.hget(meta, 'lastSeq')).toBe(String(ev.seq));
    }
    // Bursts too: the appends of one tick share a WAIT.
    await Promise.all([tracker.updateTaskProgress('t', 40), tracker.updateTaskProgress('t', 50), tracker.updateTaskProgress('t', 60)]);
    expect(await replica.hget(meta, 'lastSeq')).toBe(String(tracker.durableProgress.lastSeq));
    // The failover: the replica promoted at once holds every event acknowledged.
    await replica.call('REPLICAOF', 'NO', 'ONE');
    const promoted = new RedisStore({ url: replicaServer.url, keyPrefix: s.keys.prefix });
    stores.push(promoted);
    const stored: ProgressEvent[] = [];
    for await (const e of promoted.readEvents('rep-a', 0)) stored.push(e);
    expect(ids(stored)).toEqual(ids(sunk));
    expect(s.info().replicas).toEqual({ count: 1, timeoutMs: 10_000 });
    await tracker.close();
  }, 30_000);

  it('a replica that does not answer: the append is refused (STORE_UNAVAILABLE, reason replicas) after timeoutMs, and adopted by the next command once the replica is back', async () => {
    await follow();
    const warnings: string[] = [];
    // 2 s: room for a loaded machine before the replica is stopped, not too long a wait after.
    const s = store({ replicas: { count: 1, timeoutMs: 2000 }, logger: { debug() {}, info() {}, warn: (_: unknown, msg?: string) => void warnings.push(msg ?? ''), error() {} } });
    const sunk: ProgressEvent[] = [];
    const tracker = await open(s, 'rep-b', sunk);
    await tracker.startUpgrade();
    await tracker.addTask('t', 'T');
    await tracker.startTask('t');
    const before = tracker.durableProgress.lastSeq;
    process.kill(replicaPid, 'SIGSTOP');
    const err = await errorOf(tracker.updateTaskProgress('t', 10));
    expect(err.code).toBe('STORE_UNAVAILABLE');
    expect(err.context).toMatchObject({ reason: 'replicas', replicas: 1, acked: 0, upgradeId: 'rep-b', expectedSeq: before });
    expect(err.message).toContain('stored on the master');
    expect(err.message).toContain('0 of the 1 replicas');
    expect(warnings).toContain('append stored on the master but not confirmed on the replicas asked for; not acknowledged');
    // Not acknowledged: the tracker went back to its durable state, and the sink did not hear it.
    expect(tracker.progress.lastSeq).toBe(before);
    expect(sunk.at(-1)!.seq).toBe(before);
    // The master has it.
    const adminMaster = new Redis(master.url);
    expect(await adminMaster.hget(s.keys.upgrade('rep-b').meta, 'lastSeq')).toBe(String(before + 1));
    adminMaster.disconnect();
    process.kill(replicaPid, 'SIGCONT');
    // The next command finds the store ahead (CONFLICT) and adopts its own write, refused itself
    // (core's rule for a write of unknown outcome found stored); the one after goes on.
    expect(await errorOf(tracker.updateTaskProgress('t', 20))).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'adopted' } });
    expect(tracker.durableProgress.lastSeq).toBe(before + 1);
    const next = await tracker.updateTaskProgress('t', 20);
    expect(next.seq).toBe(before + 2);
    expect(sunk.map((e) => e.seq).slice(-2)).toEqual([before + 1, before + 2]);
    await until('the replica to hold the last event', async () => (await replica.hget(s.keys.upgrade('rep-b').meta, 'lastSeq')) === String(before + 2));
    await tracker.close();
  }, 30_000);

  it('a connection made again between the append and its WAIT: the append is refused as unconfirmed (a WAIT on the new connection vouches for none of the old one\'s writes)', async () => {
    await follow();
    await viaProxy(async (link) => {
      const s = store({ url: link.url, replicas: { count: 1, timeoutMs: 5000 } });
      const tracker = await open(s, 'rep-d');
      await tracker.startUpgrade();
      const before = tracker.durableProgress.lastSeq;
      // The script's answer reaches the store; the WAIT it sends next is held, and the connection cut.
      link.holdAfterNextReply();
      const pending = errorOf(tracker.setCurrentPhase('cut'));
      await pause(300);
      link.down(link.connections);
      link.release();
      link.up();
      const err = await pending;
      expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'replicas', expectedSeq: before } });
      expect(err.message).toContain('the connection was made again');
      // Ran on the master: the next command adopts it (and is refused, core's rule), the one after goes on.
      expect(await errorOf(tracker.setCurrentPhase('again'))).toMatchObject({ context: { reason: 'adopted' } });
      expect(tracker.durableProgress.lastSeq).toBe(before + 1);
      await tracker.setCurrentPhase('again');
      expect(tracker.durableProgress.lastSeq).toBe(before + 2);
      await tracker.close();
    });
  }, 30_000);

  it('a WAIT that gets no answer within commandTimeoutMs (the link stalls after the script answered): refused as stored on the master, not as an append Redis will not run', async () => {
    await follow();
    await viaProxy(async (link) => {
      const s = store({ url: link.url, commandTimeoutMs: 1500, replicas: { count: 1, timeoutMs: 500 } });
      const tracker = await open(s, 'rep-e');
      const before = tracker.durableProgress.lastSeq;
      link.holdAfterNextReply();
      const err = await errorOf(tracker.startUpgrade());
      expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'replicas', expectedSeq: before } });
      expect(err.message).toContain('stored on the master, but WAIT did not answer within commandTimeoutMs (1500 ms)');
      link.release();
      await tracker.close();
    });
  }, 30_000);

  it('asks for more replicas than the master has: each append is refused, telling how many had it', async () => {
    await follow();
    const s = store({ replicas: { count: 2, timeoutMs: 100 } });
    const tracker = await open(s, 'rep-c').catch((e: unknown) => e);
    // open() writes upgrade.created: refused already.
    expect(tracker).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'replicas', replicas: 2, acked: 1 } });
  }, 30_000);

  it('a delete is acknowledged once the replica has it; with the replica stopped it is refused (reason replicas, context.deleted), having run on the master', async () => {
    await follow();
    const s = store({ replicas: { count: 1, timeoutMs: 2000 } });
    for (const id of ['rep-del-a', 'rep-del-b']) await (await open(s, id)).close();
    const metaA = s.keys.upgrade('rep-del-a').meta;
    await until('the replica to hold the upgrade', async () => (await replica.exists(metaA)) === 1);
    expect(await s.delete('rep-del-a')).toBe(true);
    // WAIT answered: the replica had the delete when the call resolved.
    expect(await replica.exists(metaA)).toBe(0);

    const metaB = s.keys.upgrade('rep-del-b').meta;
    await until('the replica to hold the upgrade', async () => (await replica.exists(metaB)) === 1);
    process.kill(replicaPid, 'SIGSTOP');
    const err = await errorOf(s.delete('rep-del-b'));
    expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'replicas', replicas: 1, acked: 0, upgradeId: 'rep-del-b', deleted: true } });
    expect(err.message).toContain('was deleted on the master, but 0 of the 1 replicas');
    // It ran on the master: the upgrade is gone there, and a delete again finds nothing.
    const adminMaster = new Redis(master.url);
    expect(await adminMaster.exists(metaB)).toBe(0);
    adminMaster.disconnect();
    process.kill(replicaPid, 'SIGCONT');
    expect(await s.delete('rep-del-b')).toBe(false);
    // A delete of an upgrade that is not there deletes nothing, and has nothing to wait for.
    process.kill(replicaPid, 'SIGSTOP');
    expect(await s.delete('rep-del-none')).toBe(false);
    process.kill(replicaPid, 'SIGCONT');
  }, 30_000);

  it('a delete whose reply was lost with its connection: re-sent, answered from its marker, and refused as unconfirmed (its write was the old connection\'s)', async () => {
    await follow();
    await viaProxy(async (link) => {
      const s = store({ url: link.url, replicas: { count: 1, timeoutMs: 5000 } });
      await (await open(s, 'rep-del-c')).close();
      link.dropNextReply();
      const err = await errorOf(s.delete('rep-del-c'));
      expect(link.connections).toBeGreaterThan(1);
      expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'replicas', upgradeId: 'rep-del-c', deleted: true } });
      expect(err.message).toContain('it had run on a connection since lost');
      expect(await s.load('rep-del-c')).toBeUndefined();
    });
  }, 30_000);

  // The re-send answers the first run's 0 (plus 2): nothing was deleted, so nothing to confirm.
  it('a delete whose reply was lost, of an upgrade that was not there: re-sent, answered false from its marker, with no WAIT to vouch for', async () => {
    await follow();
    await viaProxy(async (link) => {
      const keyPrefix = freshPrefix('replicas');
      const s = store({ url: link.url, keyPrefix, replicas: { count: 1, timeoutMs: 5000 } });
      const writer = store({ keyPrefix });
      expect(await s.delete('rep-del-f-other')).toBe(false); // connected, the clock read, the script known to Redis
      // The next script's reply (not a clock reading's) is dropped, and the re-send waits for up().
      const client = s.client as Redis;
      const send = client.sendCommand;
      client.sendCommand = function (this: Redis, ...args: Parameters<Redis['sendCommand']>) {
        if (args[0].name === 'evalsha') {
          client.sendCommand = send;
          link.dropNextReply({ thenDown: true });
        }
        return send.apply(this, args);
      };
      const deleting = s.delete('rep-del-f');
      deleting.catch(() => {});
      const admin = new Redis(master.url);
      while ((await admin.keys(`${s.keys.prefix}{rep-del-f}:delete:*`)).length === 0) await pause(2);
      admin.disconnect();
      // Created under the id between the run and its re-send: a re-send that ran again would delete it.
      await (await open(writer, 'rep-del-f')).close();
      link.up();
      expect(await deleting).toBe(false);
      expect(link.connections).toBeGreaterThan(1);
      expect((await writer.load('rep-del-f'))?.lastSeq).toBe(1);
    });
  }, 30_000);

  it('a connection made again between a delete and its WAIT: refused as unconfirmed', async () => {
    await follow();
    await viaProxy(async (link) => {
      const s = store({ url: link.url, replicas: { count: 1, timeoutMs: 5000 } });
      await (await open(s, 'rep-del-d')).close();
      link.holdAfterNextReply();
      const pending = errorOf(s.delete('rep-del-d'));
      await pause(300);
      link.down(link.connections);
      link.release();
      link.up();
      const err = await pending;
      expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'replicas', upgradeId: 'rep-del-d', deleted: true } });
      expect(err.message).toContain('the connection was made again');
      expect(await s.load('rep-del-d')).toBeUndefined();
    });
  }, 30_000);

  it('a delete whose WAIT gets no answer within commandTimeoutMs: refused as unconfirmed, having run on the master', async () => {
    await follow();
    await viaProxy(async (link) => {
      const s = store({ url: link.url, commandTimeoutMs: 1500, replicas: { count: 1, timeoutMs: 500 } });
      await (await open(s, 'rep-del-e')).close();
      link.holdAfterNextReply();
      const err = await errorOf(s.delete('rep-del-e'));
      expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'replicas', upgradeId: 'rep-del-e', deleted: true } });
      expect(err.message).toContain('was deleted on the master, but WAIT did not answer within commandTimeoutMs (1500 ms)');
      link.release();
      expect(await s.load('rep-del-e')).toBeUndefined();
    });
  }, 30_000);

  it('refuses bad replicas options with INVALID_ARGUMENT, before connecting', () => {
    const bad: unknown[] = [null, 1, [], {}, { count: 0 }, { count: -1 }, { count: 1.5 }, { count: '1' }, { count: 1, timeoutMs: 0 }, { count: 1, timeoutMs: 10_001 }, { count: 1, timeout: 5 }];
    for (const replicas of bad) {
      let thrown: unknown;
      try {
        new RedisStore({ url: 'redis://127.0.0.1:1', replicas: replicas as RedisStoreOptions['replicas'] });
      } catch (err) {
        thrown = err;
      }
      expect(thrown, JSON.stringify(replicas)).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('replicas') });
    }
    expect(() => new RedisStore({ url: 'redis://127.0.0.1:1', mode: 'cluster', replicas: { count: 1 } })).toThrow(/cluster mode/);
    // The default timeout: 1 s, or commandTimeoutMs when that is shorter; none without the option.
    const a = new RedisStore({ url: 'redis://127.0.0.1:1', replicas: { count: 1 } });
    const b = new RedisStore({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 200, replicas: { count: 3 } });
    const c = new RedisStore({ url: 'redis://127.0.0.1:1' });
    expect([a.info().replicas, b.info().replicas, c.info().replicas]).toEqual([{ count: 1, timeoutMs: 1000 }, { count: 3, timeoutMs: 200 }, null]);
    stores.push(a, b, c);
  });
});
