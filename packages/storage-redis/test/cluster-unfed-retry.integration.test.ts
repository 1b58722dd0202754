// Cluster mode (on one Redis): an upgrade whose first writer died between its first append and the
// follow-up (the meta keeps `unfed`), taken over by a writer whose next append is re-sent after a
// lost reply. The re-send is answered "already appended" (status 2): it must still point its feed
// entry from seq 1, as the first attempt's answer (status 3) would have. Otherwise a watchAll()
// follower that had not seen the upgrade never gets its first events when that append is the
// upgrade's last (its terminal event: no later append finds the mark).
import type { ProgressEvent } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { startRedisProxy } from '../../../tools/test-utils/src/redis-proxy.js';
import { adminClient, appendBatch, cleanup, freshPrefix, makeStore, redisUrl } from './helpers.js';

const prefixes = new Set<string>();
const admin: Redis = adminClient();
afterAll(async () => {
  await cleanup(admin, prefixes);
  admin.disconnect();
});

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('RedisStore cluster mode: the unfed mark and a re-sent append', () => {
  // Also answered at its first attempt (status 3). Found on 2026-12-02 (mutation testing): no test
  // failed when the script told the mark only on the appends that read their rare arguments, not on
  // a plain one like this takeover's.
  it.each([
    ['re-sent after its reply was lost', true],
    ['answered at once', false],
  ] as const)("a takeover append %s still points its feed entry from seq 1 while the first writer's entry is missing", async (_, resent) => {
    const keyPrefix = freshPrefix('unfed-retry');
    const reader = makeStore(prefixes, { keyPrefix, mode: 'cluster', watchBlockMs: 200 });
    const stop = new AbortController();
    const seen: ProgressEvent[] = [];
    const following = (async () => {
      for await (const event of reader.watchAll({ signal: stop.signal })) seen.push(event);
    })();

    // The first writer: its first append's reply gets through, its follow-up (feed, index, unmark) is
    // held, and it goes away (the held writes never reach Redis), as a writer killed in between.
    const proxyA = await startRedisProxy(redisUrl());
    // Its close() waits for the held follow-up up to commandTimeoutMs; 300 ms was too short for its
    // first append's clock read on a loaded machine ("could not read the server clock within 300 ms").
    const dead = makeStore(prefixes, { url: proxyA.url, keyPrefix, mode: 'cluster', commandTimeoutMs: 1000 });
    const warmA = new EventFactory('warm-a');
    await appendBatch(dead, warmA, 1); // connected, clock measured
    await until(() => seen.some((e) => e.upgradeId === 'warm-a'), 'the follower to hand out an event');
    const f = new EventFactory('taken-over');
    proxyA.holdAfterNextReply();
    await appendBatch(dead, f, 3);
    await dead.close();
    await proxyA.close();
    expect(await admin.hget(reader.keys.upgrade(f.upgradeId).meta, 'unfed')).toBe('1');

    // The writer that took over: its append runs, its reply is lost with the connection, and ioredis
    // sends it again (answered: already appended).
    const proxyB = await startRedisProxy(redisUrl());
    const writer = makeStore(prefixes, { url: proxyB.url, keyPrefix, mode: 'cluster' });
    const warmB = new EventFactory('warm-b');
    await appendBatch(writer, warmB, 1); // connected, clock measured
    if (resent) proxyB.dropNextReply();
    await appendBatch(writer, f, 1);
    // Something after it, so that the follower has read past that append's entry.
    await appendBatch(writer, warmB, 1);
    await until(() => seen.some((e) => e.upgradeId === 'warm-b' && e.seq === 2), 'the follower to hand out the later event');
    stop.abort();
    await following;
    expect(seen.filter((e) => e.upgradeId === f.upgradeId).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    await writer.close();
    await proxyB.close();
    await reader.close();
  }, 30_000);
});
