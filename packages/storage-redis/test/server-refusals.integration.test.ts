// What the store does when Redis as a whole refuses writes: out of memory (`maxmemory` reached), or
// writes paused (`CLIENT PAUSE ... WRITE`, as during a failover). These change the whole server, so
// they run on a redis-server of this file's own, not on the shared test Redis.
//
// Found on 2026-11-29 (review):
// - In cluster mode an append Redis refused for lack of memory was reported as DATA_CORRUPTED: the
//   script's first write there is the events XADD, whose every error it took for damage (single
//   mode, whose first write is the feed entry, reported STORE_UNAVAILABLE).
// - load() failed with STORE_UNAVAILABLE (a timeout) while Redis paused writes: its script was not
//   declared read-only, and Redis holds every script that may write during such a pause.
import { EventFactory } from '@progress/core/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisStore } from '../src/index.js';
import { startRedisServer, type TestRedis } from '../../../tools/test-utils/src/redis.js';
import { appendBatch, collect, errorOf, makeStore } from './helpers.js';

let redis: TestRedis;
let admin: Redis;
const prefixes = new Set<string>();
const stores: RedisStore[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  admin = new Redis(redis.url);
});

afterAll(async () => {
  await admin.call('CLIENT', 'UNPAUSE').catch(() => {});
  for (const store of stores) await store.close();
  admin.disconnect();
  await redis.stop();
});

function store(options: Parameters<typeof makeStore>[1] = {}): RedisStore {
  const s = makeStore(prefixes, { url: redis.url, ...options });
  stores.push(s);
  return s;
}

describe.each(['single', 'cluster'] as const)('RedisStore when Redis is out of memory (%s mode)', (mode) => {
  it('reports an append Redis refuses for lack of memory as STORE_UNAVAILABLE with its OOM message, not DATA_CORRUPTED, and writes nothing', async () => {
    const s = store({ mode });
    const f = new EventFactory(`oom-${mode}`);
    await appendBatch(s, f, 2);
    const keys = s.keys.upgrade(f.upgradeId);
    const feedBefore = await admin.xlen(s.keys.feed);
    const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1]);
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    try {
      await admin.config('SET', 'maxmemory', String(used + 1024));
      await admin.set(`${s.keys.prefix}filler`, 'x'.repeat(64 * 1024)).catch(() => {}); // over the limit now
      const expected = f.lastSeq;
      const events = f.batch(1);
      const err = await errorOf(s.append(f.upgradeId, events, expected, f.snapshot()));
      expect(err.code).toBe('STORE_UNAVAILABLE');
      expect(err.message).toContain('OOM');
    } finally {
      await admin.config('SET', 'maxmemory', '0');
      await admin.del(`${s.keys.prefix}filler`);
    }
    expect(await admin.hget(keys.meta, 'lastSeq')).toBe('2');
    expect(await admin.xlen(keys.events)).toBe(1);
    expect(await admin.xlen(s.keys.feed)).toBe(feedBefore);
    // Nothing was stored: the same seqs append once memory is back (the factory moved on: start again from what Redis holds).
    const again = new EventFactory(f.upgradeId);
    again.state = await s.load(f.upgradeId);
    await appendBatch(s, again, 1);
    expect((await collect(s.readEvents(f.upgradeId, 0))).map((e) => e.seq)).toEqual([1, 2, 3]);
  });
});

describe.each(['single', 'cluster'] as const)('RedisStore while Redis pauses writes (%s mode)', (mode) => {
  it('answers load(), readEvents() and list() during CLIENT PAUSE WRITE (as during a failover), which holds every script not declared read-only', async () => {
    // The pause lasts far longer than commandTimeoutMs: a read Redis holds until it ends times out.
    const s = store({ mode, commandTimeoutMs: 2000 });
    const f = new EventFactory(`paused-${mode}`);
    // Written by another store, closed (its cluster-mode follow-up writes done) before the pause: a
    // write still in flight on the reader's connection when the pause starts holds what follows it.
    const writer = store({ mode, keyPrefix: s.keys.prefix });
    await appendBatch(writer, f, 3);
    await writer.close();
    await admin.call('CLIENT', 'PAUSE', '20000', 'WRITE');
    try {
      const loaded = await s.load(f.upgradeId).then(
        (state) => `lastSeq ${state?.lastSeq}`,
        (err: Error & { code?: string }) => `${err.code}: ${err.message}`,
      );
      const events = await collect(s.readEvents(f.upgradeId, 0));
      const rows = await s.list();
      expect(loaded).toBe('lastSeq 3');
      expect(events.map((e) => e.seq)).toEqual([1, 2, 3]);
      expect(rows.map((r) => r.upgradeId)).toEqual([f.upgradeId]);
    } finally {
      await admin.call('CLIENT', 'UNPAUSE');
    }
    expect((await s.load(f.upgradeId))?.lastSeq).toBe(3);
  });
});
