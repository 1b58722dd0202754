// watchAll() reads each upgrade's events on the store's own connection. With a client passed in
// that does not queue commands through an outage (ioredis' maxRetriesPerRequest, 20 by default, or
// enableOfflineQueue: false), those reads were refused while it reconnected, and watchAll() ended
// with STORE_UNAVAILABLE, though the README says a watcher never throws because of a lost
// connection. (Found by a review on 2026-11-29; each case failed before the fix.)
import { EventFactory } from '@progress/core/testing';
import type { ProgressEvent } from '@progress/core';
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { startRedisProxy } from '../../../tools/test-utils/src/redis-proxy.js';
import { RedisStore } from '../src/index.js';
import { adminClient, cleanup, freshPrefix, makeStore, redisUrl } from './helpers.js';

const prefixes = new Set<string>();
const admin = adminClient();

afterAll(async () => {
  await cleanup(admin, prefixes);
  await admin.quit();
});

describe.each<[string, RedisOptions]>([
  ['maxRetriesPerRequest: 1', { maxRetriesPerRequest: 1, retryStrategy: () => 100 }],
  ['enableOfflineQueue: false', { enableOfflineQueue: false, retryStrategy: () => 100 }],
])('watchAll() on a client passed in (%s) whose connection is down for a while', (_label, clientOptions) => {
  it('reads again once it is back and hands out the events, instead of ending with STORE_UNAVAILABLE', async () => {
    const proxy = await startRedisProxy(redisUrl());
    const keyPrefix = freshPrefix('offline');
    const client = new Redis(proxy.url, clientOptions);
    client.on('error', () => {});
    if (client.status !== 'ready') await new Promise((r) => client.once('ready', r));
    const store = makeStore(prefixes, { redis: client, keyPrefix, commandTimeoutMs: 3000 });
    const writer = new RedisStore({ url: redisUrl(), keyPrefix });
    const f = new EventFactory('offline-watchall');
    const got: ProgressEvent[] = [];
    let ended: unknown = 'still running';
    const stop = new AbortController();
    const consuming = (async () => {
      try {
        for await (const ev of store.watchAll({ signal: stop.signal })) got.push(ev);
        ended = 'done';
      } catch (err) {
        ended = err;
      }
    })();
    try {
      // The watch connection (the second through the proxy) is up once watchAll() has read its start.
      for (let i = 0; proxy.connections < 2 && i < 100; i++) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200));
      proxy.down(1); // the store's own connection is lost; the watcher's stays up
      await writer.append(f.upgradeId, f.batch(2), 0, f.snapshot());
      await new Promise((r) => setTimeout(r, 1500)); // the outage: watchAll() sees the feed entry, its reads are refused
      proxy.up();
      for (let i = 0; got.length < 2 && ended === 'still running' && i < 250; i++) await new Promise((r) => setTimeout(r, 20));
      expect(ended).toBe('still running');
      expect(got.map((e) => e.seq)).toEqual([1, 2]);
    } finally {
      stop.abort();
      await consuming;
      await store.close();
      await writer.close();
      client.disconnect();
      await proxy.close();
    }
  }, 30_000);
});
