// The connection a store creates queues the commands issued while Redis cannot be reached (ioredis'
// offline queue), to send them once it is back. With `maxRetriesPerRequest: null` it kept every one
// of them for as long as the outage lasted, also those the store had given up on (and told its
// caller so) long before: a process that goes on calling the store through a long outage (a
// tracker, a dashboard's list(), `progress watch` loading again) grew by ~3 KB a call, for hours,
// and sent all of those stale commands at once when Redis came back.
import { afterAll, describe, expect, it } from 'vitest';
import { startRedisProxy } from '../../../tools/test-utils/src/redis-proxy.js';
import { adminClient, cleanup, heapAfterGc, makeStore, redisUrl } from './helpers.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const prefixes = new Set<string>();
const admin = adminClient();

afterAll(async () => {
  await cleanup(admin, prefixes);
  await admin.quit();
});

describe('a store whose Redis cannot be reached for long', () => {
  it('does not keep every command it gave up on until Redis is back', async () => {
    const proxy = await startRedisProxy(redisUrl());
    const store = makeStore(prefixes, { url: proxy.url, commandTimeoutMs: 200 });
    /** `rounds` load() and list() calls, 500 at a time, each given up on after commandTimeoutMs. */
    const calls = async (rounds: number): Promise<void> => {
      for (let i = 0; i < rounds; i += 500) {
        await Promise.allSettled(Array.from({ length: Math.min(500, rounds - i) }, (_, k) => [store.load(`gone-${i + k}`), store.list()]).flat());
      }
    };
    try {
      await store.list();
      proxy.down(1);
      for (let i = 0; store.client.status === 'ready' && i < 100; i++) await sleep(20);
      expect(store.client.status).not.toBe('ready');
      await calls(200);
      const before = heapAfterGc();
      await calls(3000);
      // The outage goes on. (Measured until what was queued is let go, for at most 8 s: before the fix
      // it never was, ~17 MB for these 6,000 calls.)
      let grown = heapAfterGc() - before;
      for (let i = 0; grown > 2_000_000 && i < 16; i++) {
        await sleep(500);
        grown = heapAfterGc() - before;
      }
      expect(grown).toBeLessThan(2_000_000);
      // Redis back: the store reads again.
      proxy.up();
      let rows: unknown;
      for (let i = 0; rows === undefined && i < 50; i++) rows = await store.list().catch(() => sleep(100).then(() => undefined));
      expect(rows).toEqual([]);
    } finally {
      await store.close();
      await proxy.close();
    }
  });
});
