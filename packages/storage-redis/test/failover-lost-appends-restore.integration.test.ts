// A failover that loses acknowledged appends, with the tracker that wrote them still running: Redis
// replicates asynchronously, and the replica promoted in place of the master had not received the
// last appends (Sentinel's window: ~10 s). The tracker's next write found the store behind it
// (CONFLICT, storedSeq 10 where it had made seq 20 durable), and so did every later one until the
// tracker was reopened, after which seqs 11-20, acknowledged, were gone for good. The tracker now
// writes them again (it keeps the last 1,000 events it made durable) and goes on.
//
// Two real redis-servers of this test's own: the master, and its replica, cut off from it (REPLICAOF
// NO ONE) after seq 10 and promoted. The same tracker writes before and after the failover, through
// a TCP proxy that cuts its connections and sends new ones to the promoted replica (as a Sentinel
// client reconnects). A watch() reader follows from seq 0 through a proxy of its own, which fails
// over once the tracker has written again (a reader that looked in between would find the store
// behind the last event it handed out and end with NOT_FOUND, as the README says).
import { ProgressTracker, type ProgressEvent } from '@progress/core';
import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisProxy, type RedisProxy } from '../../../tools/test-utils/src/redis-proxy.js';
import { startRedisServer, type TestRedis } from '../../../tools/test-utils/src/redis.js';
import { RedisStore } from '../src/index.js';
import { freshPrefix, until } from './helpers.js';

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

let servers: TestRedis[] = [];
const proxies: RedisProxy[] = [];
const stores: RedisStore[] = [];
const admins: Redis[] = [];

beforeAll(async () => {
  if (!hasRedisServer) return;
  servers = await Promise.all([startRedisServer(), startRedisServer()]);
});

afterAll(async () => {
  for (const store of stores) await store.close();
  for (const admin of admins) admin.disconnect();
  for (const proxy of proxies) await proxy.close();
  await Promise.all(servers.map((s) => s.stop()));
});

function store(url: string, keyPrefix: string): RedisStore {
  const s = new RedisStore({ url, keyPrefix, watchBlockMs: 200 });
  stores.push(s);
  return s;
}

function admin(url: string): Redis {
  const r = new Redis(url, { maxRetriesPerRequest: 0 });
  r.on('error', () => {});
  admins.push(r);
  return r;
}

describe.skipIf(!hasRedisServer)('a failover that lost acknowledged appends, the tracker that wrote them still running', () => {
  it('writes them again on its next write: every acknowledged event is stored once, in order, with its id, and a watch() reader ends with that history', async () => {
    const [master, promoted] = servers as [TestRedis, TestRedis];
    const keyPrefix = freshPrefix('lost-appends-restore');
    const upgradeId = 'failover-restore';
    const replica = admin(promoted.url);
    await replica.call('REPLICAOF', '127.0.0.1', new URL(master.url).port);
    await until('the replica to sync', async () => String(await replica.info('replication')).includes('master_link_status:up'));

    const writerLink = await startRedisProxy(master.url);
    const readerLink = await startRedisProxy(master.url);
    proxies.push(writerLink, readerLink);
    const sunk: ProgressEvent[] = [];
    const warnings: string[] = [];
    const logger = { debug: () => {}, info: () => {}, warn: (_: unknown, msg?: string) => void warnings.push(msg ?? ''), error: () => {} };
    const tracker = await ProgressTracker.open({
      upgradeId,
      planId: 'p',
      clusterName: 'c',
      store: store(writerLink.url, keyPrefix),
      sinks: [{ name: 'rec', handle: (e) => void sunk.push(e) }],
      logger,
    });
    /** Every event the store acknowledged: upgrade.created (open), then each resolved command's. */
    const acknowledged: ProgressEvent[] = [sunk[0]!];

    // The reader follows from seq 0, the whole time.
    const seen: ProgressEvent[] = [];
    let ended: unknown;
    const stop = new AbortController();
    const following = (async () => {
      for await (const e of store(readerLink.url, keyPrefix).watch(upgradeId, 0, { signal: stop.signal })) seen.push(e);
    })().catch((err: unknown) => (ended = err));

    // Seqs 1-10, copied by the replica.
    acknowledged.push(await tracker.startUpgrade());
    // (addTask resolves with the task: its events are the two the sink heard as it resolved.)
    await Promise.all([tracker.addTask('a', 'A'), tracker.addTask('b', 'B')]);
    acknowledged.push(...sunk.slice(2, 4));
    acknowledged.push(await tracker.startTask('a'));
    for (const p of [10, 20, 30, 40, 50]) acknowledged.push(await tracker.updateTaskProgress('a', p));
    expect(tracker.durableProgress.lastSeq).toBe(10);
    const metaKey = stores[0]!.keys.upgrade(upgradeId).meta;
    await until('the replica to hold seqs 1-10', async () => (await replica.hget(metaKey, 'lastSeq')) === '10');
    // The replica stops copying: seqs 11-20 are acknowledged by the master only.
    await replica.call('REPLICAOF', 'NO', 'ONE');
    acknowledged.push(await tracker.completeTask('a'));
    acknowledged.push(await tracker.startTask('b'));
    for (const p of [5, 15, 25, 35, 45, 55, 65]) acknowledged.push(await tracker.updateTaskProgress('b', p));
    acknowledged.push(await tracker.updateTaskProgress('b', 70, 'last one the master alone has'));
    expect(tracker.durableProgress.lastSeq).toBe(20);
    await until('the reader to hand out seqs 1-20', () => seen.length === 20);
    expect(await replica.hget(metaKey, 'lastSeq')).toBe('10');

    // The failover: the promoted replica holds seqs 1-10. The tracker's connections go to it.
    writerLink.failOver(promoted.url);
    // The same tracker writes on: its commands resolve.
    acknowledged.push(await tracker.updateTaskProgress('b', 80));
    acknowledged.push(...(await Promise.all([tracker.updateTaskProgress('b', 90), tracker.completeTask('b')])));
    acknowledged.push(await tracker.completeUpgrade());
    expect(tracker.durableProgress.lastSeq).toBe(24);
    expect(warnings.filter((w) => w.includes('the store had lost acknowledged events (a failover?); written again'))).toHaveLength(1);

    // The reader's connections go to the promoted replica too; it goes on after seq 20.
    readerLink.failOver(promoted.url);
    await until('the reader to hand out seqs 21-24', () => seen.length >= 24 || ended !== undefined);
    stop.abort();
    await following;

    const onPromoted = store(promoted.url, keyPrefix);
    const stored: ProgressEvent[] = [];
    for await (const e of onPromoted.readEvents(upgradeId, 0)) stored.push(e);
    const ids = (events: readonly ProgressEvent[]) => events.map((e) => `${e.seq}:${e.eventId}`);
    expect(stored.map((e) => e.seq)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    expect(ids(stored)).toEqual(ids(acknowledged));
    expect(ended).toBeUndefined();
    expect(ids(seen)).toEqual(ids(stored));
    // The sink heard each event once.
    expect(ids(sunk)).toEqual(ids(stored));
    expect(JSON.stringify(await onPromoted.load(upgradeId))).toBe(JSON.stringify(tracker.durableProgress));
    await tracker.close();
  }, 60_000);
});
