// A failover that loses acknowledged appends: the master ran seqs 5-6 and the watcher handed them
// out, but the replica promoted in its place never got them, and the next writer wrote other events
// at seqs 5-8 there. Two real Redis servers stand for the old master and the promoted replica (each
// with the same first four events); the watcher reaches them through a TCP proxy that fails over
// from one to the other (its connections cut, new ones to the second), as a Sentinel client would
// reconnect. Found with a real Sentinel failover (sentinel.integration.test.ts): the watcher went on
// at seq 7 of the new master, silently, its consumer keeping events that exist nowhere.
import { isProgressError, type ProgressEvent } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisProxy, type RedisProxy } from '../../../tools/test-utils/src/redis-proxy.js';
import { startRedisServer, type TestRedis } from '../../../tools/test-utils/src/redis.js';
import { RedisStore } from '../src/index.js';
import { freshPrefix } from './helpers.js';

let master: TestRedis;
let promoted: TestRedis;
let proxy: RedisProxy;
const stores: RedisStore[] = [];

beforeAll(async () => {
  [master, promoted] = await Promise.all([startRedisServer(), startRedisServer()]);
  proxy = await startRedisProxy(master.url);
});

afterAll(async () => {
  for (const store of stores) await store.close();
  await proxy?.close();
  await Promise.all([master?.stop(), promoted?.stop()]);
});

function store(url: string, keyPrefix: string): RedisStore {
  const s = new RedisStore({ url, keyPrefix, watchBlockMs: 200 });
  stores.push(s);
  return s;
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('RedisStore.watch() across a failover that lost acknowledged appends', () => {
  it('ends with NOT_FOUND rather than go on at the new master past events it handed out that are not there', async () => {
    const keyPrefix = freshPrefix('failover-divergence');
    const onMaster = store(master.url, keyPrefix);
    const onPromoted = store(promoted.url, keyPrefix);
    const f = new EventFactory('diverged');
    // Seqs 1-4 replicated: on both.
    const common = f.batch(4);
    await onMaster.append(f.upgradeId, common, 0, f.snapshot());
    await onPromoted.append(f.upgradeId, common, 0, f.snapshot());
    // Another run of events from seq 5 on the promoted replica: the next writer's, after the failover.
    const other = new EventFactory(f.upgradeId);
    other.state = f.snapshot();
    // Seqs 5-6 acknowledged by the master only.
    const lost = f.batch(2);
    await onMaster.append(f.upgradeId, lost, 4, f.snapshot());

    const reader = store(proxy.url, keyPrefix);
    const seen: ProgressEvent[] = [];
    let ended: unknown;
    const stop = new AbortController();
    const following = (async () => {
      for await (const event of reader.watch(f.upgradeId, 0, { signal: stop.signal })) seen.push(event);
    })().catch((err: unknown) => (ended = err));
    await until(() => seen.length === 6, 'the watcher to hand out seqs 1-6');

    proxy.failOver(promoted.url);
    // Written in two appends, so that the watcher's next read (after seq 6) gets only the entry of 7-8.
    await onPromoted.append(f.upgradeId, other.batch(2), 4, other.snapshot());
    await onPromoted.append(f.upgradeId, other.batch(2), 6, other.snapshot());
    await until(() => ended !== undefined || seen.length > 6, 'the watcher to read the promoted replica');
    stop.abort();
    await following;

    expect(seen.map((e) => e.eventId)).toEqual([...common, ...lost].map((e) => e.eventId));
    expect(isProgressError(ended, 'NOT_FOUND')).toBe(true);
    expect((ended as Error).message).toContain('seq 6');
  }, 30_000);
});
