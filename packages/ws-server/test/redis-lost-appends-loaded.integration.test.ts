// As redis-lost-appends.integration.test.ts (single-node mode), but the '*' client connects after
// the appends the failover loses were acknowledged: the server holds them in the state it LOADED
// for that client, with no event applied since. Two real redis-servers of this file's own.
import { randomUUID } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import type { ProgressEvent } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { RedisStore } from '@progress/storage-redis';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProgressWebSocketServer } from '../src/index.js';
import { startRedisServer, type TestRedis } from '../../../tools/test-utils/src/redis.js';
import { until } from '../../storage-redis/test/helpers.js';
import { TestClient, foldClient } from './helpers.js';

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;
let pair: TestRedis[] = [];
const closers: Array<() => Promise<unknown> | void> = [];

beforeAll(async () => {
  if (!hasRedisServer) return;
  pair = await Promise.all([startRedisServer(), startRedisServer()]);
}, 60_000);

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await Promise.all(pair.map((s) => s.stop()));
});

/** `n` progress events of task t1 (added at seq 3): each applies on either history. */
const progress = (f: EventFactory, n: number, base: number): ProgressEvent[] => Array.from({ length: n }, (_, i) => f.next('task.progress', { taskId: 't1', percentage: base + i }));

describe.skipIf(!hasRedisServer)("ws-server '*' subscribers across a failover that lost appends held in a loaded state", () => {
  it('single-node mode: the client that connected after the lost appends ends with the history the store holds', async () => {
    const [master, promoted] = pair as [TestRedis, TestRedis];
    const keyPrefix = `ws-lost-loaded-${randomUUID().slice(0, 8)}:`;
    const store = (url: string, watchBlockMs?: number): RedisStore => {
      const s = new RedisStore({ url, keyPrefix, watchBlockMs });
      closers.push(() => s.close());
      return s;
    };
    const admin = (url: string): Redis => {
      const r = new Redis(url);
      r.on('error', () => {});
      closers.push(() => r.disconnect());
      return r;
    };
    const onMaster = store(master.url);
    const onPromoted = store(promoted.url);
    const id = 'lost-loaded';
    const f = new EventFactory(id);
    await onMaster.append(id, f.batch(4), 0, f.snapshot());
    const other = new EventFactory(id);
    other.state = f.snapshot();
    const replica = admin(promoted.url);
    await replica.call('REPLICAOF', '127.0.0.1', new URL(master.url).port);
    await until('the replica to hold seqs 1-4', async () => String(await replica.info('replication')).includes('master_link_status:up') && (await replica.hget(onMaster.keys.upgrade(id).meta, 'lastSeq')) === '4');
    await replica.call('REPLICAOF', 'NO', 'ONE');
    // Seqs 5-6 acknowledged by the master only; then the dashboard is opened: the server loads them.
    await onMaster.append(id, progress(f, 2, 50), 4, f.snapshot());
    const server = new ProgressWebSocketServer({ port: 0, store: store(master.url, 200) });
    closers.push(() => server.stop());
    const star = await TestClient.connect((await server.start()).url);
    closers.push(() => star.close());
    star.send({ type: 'subscribe', upgradeId: '*' });
    await star.until((ms) => foldClient(ms, id).state?.lastSeq === 6, 20_000, "the '*' client at seq 6");
    // The next writer writes one other event at seq 5 on the promoted replica, and the old master is
    // demoted under the server: the sync replaces its data.
    await onPromoted.append(id, progress(other, 1, 70), 4, other.snapshot());
    await admin(master.url).call('REPLICAOF', '127.0.0.1', new URL(promoted.url).port);
    await until('the old master to hold the new seq 5', async () => (await onMaster.load(id))?.lastSeq === 5);
    await onPromoted.append(id, progress(other, 3, 71), 5, other.snapshot());
    await star.until((ms) => foldClient(ms, id).state?.lastSeq === 8, 20_000, "the '*' client at seq 8");
    const end = foldClient(star.messages, id);
    expect(end.gaps).toEqual([]);
    expect(end.state).toEqual(await onPromoted.load(id));
    expect(end.resyncs.length).toBeGreaterThan(0);
  }, 60_000);
});
