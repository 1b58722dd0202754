import { replayEvents, type ProgressEvent } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import type { RedisStore } from '../src/index.js';
import { startRedisProxy } from '../../../tools/test-utils/src/redis-proxy.js';
import { adminClient, cleanup, collect, errorOf, makeStore, redisUrl } from './helpers.js';

const prefixes = new Set<string>();
const admin = adminClient();

afterAll(async () => {
  await cleanup(admin, prefixes);
  await admin.quit();
});

/** Every event each factory made, in order. */
const made = new WeakMap<EventFactory, ProgressEvent[]>();
const eventsOf = (f: EventFactory): ProgressEvent[] => made.get(f) ?? [];
const batch = (f: EventFactory, n: number): ProgressEvent[] => {
  const events = f.batch(n);
  made.set(f, [...eventsOf(f), ...events]);
  return events;
};

async function appendBatch(store: RedisStore, f: EventFactory, n: number): Promise<ProgressEvent[]> {
  const expected = f.lastSeq;
  const events = batch(f, n);
  await store.append(f.upgradeId, events, expected, f.snapshot());
  return events;
}

const seqs = (events: ProgressEvent[]): number[] => events.map((e) => e.seq);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);


/** Writes `f`'s next `n` events in the layout of versions before 0.2: one entry per event, field `e` (with `i` when `withId`). */
async function appendLegacy(store: RedisStore, f: EventFactory, n: number, withId: boolean): Promise<void> {
  const keys = store.keys.upgrade(f.upgradeId);
  for (const e of batch(f, n)) {
    if (withId) await admin.xadd(keys.events, `0-${e.seq}`, 'i', e.eventId, 'e', JSON.stringify(e));
    else await admin.xadd(keys.events, `0-${e.seq}`, 'e', JSON.stringify(e));
  }
  await admin.hset(keys.meta, 'lastSeq', String(f.lastSeq));
}

describe('RedisStore: one stream entry per append', () => {
  it('reads from inside a batch, cuts a batch at the limit, and pages across entries', async () => {
    // pageSize 2 entries per XRANGE: pages end in the middle of the sequence of batches.
    const store = makeStore(prefixes, { pageSize: 2 });
    const f = new EventFactory('batch-read');
    for (const n of [5, 1, 7, 3, 4]) await appendBatch(store, f, n); // entries 0-5, 0-6, 0-13, 0-16, 0-20
    expect(await admin.xlen(store.keys.upgrade(f.upgradeId).events)).toBe(5);
    expect(seqs(await collect(store.readEvents(f.upgradeId, 0)))).toEqual(range(1, 20));
    // Inside the first batch, at a batch boundary, inside a later batch, at the end.
    expect(seqs(await collect(store.readEvents(f.upgradeId, 2)))).toEqual(range(3, 20));
    expect(seqs(await collect(store.readEvents(f.upgradeId, 6)))).toEqual(range(7, 20));
    expect(seqs(await collect(store.readEvents(f.upgradeId, 9)))).toEqual(range(10, 20));
    expect(await collect(store.readEvents(f.upgradeId, 20))).toEqual([]);
    // The limit cuts a batch; the next read starts inside it.
    expect(seqs(await collect(store.readEvents(f.upgradeId, 2, 6)))).toEqual(range(3, 8));
    expect(seqs(await collect(store.readEvents(f.upgradeId, 8, 3)))).toEqual([9, 10, 11]);
    expect(seqs(await collect(store.readEvents(f.upgradeId, 0, 1)))).toEqual([1]);
    // A limit past a full page (entries 0-5 and 0-6 fill it, 0-13 and 0-16 lie before the limit's
    // end): the entry after the end (0-20) is not this page's, the next page reads on from seq 7.
    expect(seqs(await collect(store.readEvents(f.upgradeId, 0, 16)))).toEqual(range(1, 16));
    expect(await collect(store.readEvents(f.upgradeId, 3, 0))).toEqual([]);
    // The events are the ones appended, whole.
    expect(await collect(store.readEvents(f.upgradeId, 0))).toEqual(eventsOf(f));
    await store.close();
  });

  it('a read with a limit fetches the entries that hold its events, not a page of entries: readEvents(x, 10) over batches of 200 moves one or two batches', async () => {
    const keyPrefix = `test:storage-redis:limit:${Date.now()}:`;
    prefixes.add(keyPrefix);
    const writer = makeStore(prefixes, { keyPrefix });
    const f = new EventFactory('batch-limit');
    for (let i = 0; i < 20; i++) await appendBatch(writer, f, 200); // entries 0-200 .. 0-4000
    await writer.close();
    const entryBytes = JSON.stringify(eventsOf(f).slice(0, 200)).length;
    const proxy = await startRedisProxy(redisUrl());
    const reader = makeStore(prefixes, { keyPrefix, url: proxy.url });
    try {
      // Connected (a first command answered): what comes after is the reads'.
      expect((await reader.list()).map((row) => row.upgradeId)).toEqual([f.upgradeId]);
      const reads: Array<[number, number, number[]]> = [
        [0, 10, range(1, 10)], // the first entry's first events
        [150, 10, range(151, 160)], // inside an entry, no entry id in 151..160
        [195, 10, range(196, 205)], // across two entries
        [3990, 50, range(3991, 4000)], // the limit past the end
      ];
      for (const [after, limit, want] of reads) {
        const before = proxy.bytesToClients;
        expect(seqs(await collect(reader.readEvents(f.upgradeId, after, limit)))).toEqual(want);
        // Two entries at most (one when the range lies inside one), and the meta: a page of
        // `limit` entries would be 10 (2,000 events).
        expect(proxy.bytesToClients - before).toBeLessThan(2.5 * entryBytes);
      }
      // Without a limit, and with one past the end, every event still comes, in order.
      expect(await collect(reader.readEvents(f.upgradeId, 0))).toEqual(eventsOf(f));
      expect(seqs(await collect(reader.readEvents(f.upgradeId, 3500, 1000)))).toEqual(range(3501, 4000));
    } finally {
      await reader.close();
      await proxy.close();
    }
  });

  it('loads the state when the snapshot falls inside an entry (only the events after it are replayed)', async () => {
    const store = makeStore(prefixes);
    const f = new EventFactory('batch-load');
    await appendBatch(store, f, 3);
    await appendBatch(store, f, 6);
    // A snapshot at seq 5, inside the entry 0-9 (4 and 5 would be applied twice without the filter).
    const keys = store.keys.upgrade(f.upgradeId);
    await admin.set(keys.snapshot, JSON.stringify(replayEvents(eventsOf(f).slice(0, 5))));
    await admin.hset(keys.meta, 'snapSeq', '5');
    expect(await store.load(f.upgradeId)).toEqual(f.state);
    await store.close();
  });

  // snapSeq 1 is a snapshot too (snapshotEvery: 1, or an upgrade whose first append is terminal):
  // load() starts from it rather than report it missing.
  it('loads an upgrade whose snapshot is at seq 1', async () => {
    const store = makeStore(prefixes, { snapshotEvery: 1 });
    const f = new EventFactory('snapshot-at-1');
    await appendBatch(store, f, 1);
    expect(await admin.hget(store.keys.upgrade(f.upgradeId).meta, 'snapSeq')).toBe('1');
    expect(await store.load(f.upgradeId)).toEqual(f.state);
    await store.close();
  });

  it('watches from inside a batch, and a new watch resumes inside the batch where the last one stopped', async () => {
    const store = makeStore(prefixes, { pageSize: 2, watchBlockMs: 100 });
    const f = new EventFactory('batch-watch');
    await appendBatch(store, f, 6);
    await appendBatch(store, f, 6);
    const seen: number[] = [];
    for await (const e of store.watch(f.upgradeId, 4)) {
      seen.push(e.seq);
      if (e.seq === 8) break; // stops inside the entry 0-12
    }
    expect(seen).toEqual([5, 6, 7, 8]);
    const stop = new AbortController();
    const rest: number[] = [];
    const done = (async () => {
      for await (const e of store.watch(f.upgradeId, 8, { signal: stop.signal })) {
        rest.push(e.seq);
        if (e.seq === 15) stop.abort();
      }
    })();
    await appendBatch(store, f, 3); // live: 13..15 in one entry
    await done;
    expect(rest).toEqual(range(9, 15));
    expect(store.info().watchers).toBe(0);
    await store.close();
  });

  it('recognises a retried batch (same first eventId at the same seq) and stores it once; another batch at those seqs is a conflict', async () => {
    const store = makeStore(prefixes);
    const f = new EventFactory('batch-retry');
    await appendBatch(store, f, 2);
    const events = batch(f, 5);
    const state = f.snapshot();
    await store.append(f.upgradeId, events, 2, state);
    await store.append(f.upgradeId, events, 2, state); // the retry after a lost reply
    const keys = store.keys.upgrade(f.upgradeId);
    expect((await admin.xrange(keys.events, '-', '+')).map(([id]) => id)).toEqual(['0-2', '0-7']);
    expect(seqs(await collect(store.readEvents(f.upgradeId, 0)))).toEqual(range(1, 7));
    const other = new EventFactory('batch-retry');
    other.batch(2);
    const err = await errorOf(store.append(f.upgradeId, other.batch(5), 2, other.snapshot()));
    expect(err.code).toBe('CONFLICT');
    expect(err.context.storedSeq).toBe(7);
    await store.close();
  });

  it('reads entries of the earlier one-event-per-entry layouts (e, and i + e) followed by batch entries', async () => {
    const store = makeStore(prefixes, { pageSize: 3, watchBlockMs: 100 });
    const f = new EventFactory('batch-legacy');
    await appendLegacy(store, f, 3, true); // 0-1, 0-2, 0-3 with i + e
    await appendLegacy(store, f, 2, false); // 0-4, 0-5 with e
    await appendBatch(store, f, 4); // 0-9
    await appendBatch(store, f, 2); // 0-11
    expect(await collect(store.readEvents(f.upgradeId, 0))).toEqual(eventsOf(f));
    expect(seqs(await collect(store.readEvents(f.upgradeId, 4, 3)))).toEqual([5, 6, 7]);
    expect(seqs(await collect(store.readEvents(f.upgradeId, 7)))).toEqual([8, 9, 10, 11]);
    expect(await store.load(f.upgradeId)).toEqual(f.state);
    const stop = new AbortController();
    const seen: number[] = [];
    for await (const e of store.watch(f.upgradeId, 2, { signal: stop.signal })) {
      seen.push(e.seq);
      if (e.seq === 11) stop.abort();
    }
    expect(seen).toEqual(range(3, 11));
    // A retry of an append whose events are in the earlier layout is still recognised.
    const g = new EventFactory('batch-legacy-2');
    await appendLegacy(store, g, 1, false);
    const [first] = eventsOf(g);
    await store.append(g.upgradeId, [first!], 0, g.snapshot());
    expect(await admin.xlen(store.keys.upgrade(g.upgradeId).events)).toBe(1);
    await store.close();
  });

  it('refuses a damaged batch entry (seqs that do not end at the entry id) with DATA_CORRUPTED', async () => {
    const store = makeStore(prefixes);
    const f = new EventFactory('batch-damaged');
    const events = f.batch(3);
    const keys = store.keys.upgrade(f.upgradeId);
    await admin.xadd(keys.events, '0-4', 'b', JSON.stringify(events)); // claims to end at 4, holds 1..3
    await admin.hset(keys.meta, 'lastSeq', '4');
    const err = await errorOf(collect(store.readEvents(f.upgradeId, 0)));
    expect(err.code).toBe('DATA_CORRUPTED');
    expect(err.message).toContain('0-4');
    await store.close();
  });

  it('trims only whole entries the snapshot covers: an entry across the cut stays readable, and a read of removed events is told so', async () => {
    const store = makeStore(prefixes, { snapshotEvery: 10, retention: { maxEvents: 3 } });
    const f = new EventFactory('batch-trim');
    for (let i = 0; i < 4; i++) await appendBatch(store, f, 6); // entries 0-6 .. 0-24, snapshot at 24
    // cut = min(snapSeq 24, 24 - 3) = 21: entries ending at or before 21 can go; 0-24 (19..24) holds 22.
    const keys = store.keys.upgrade(f.upgradeId);
    expect(await admin.hget(keys.meta, 'trimmed')).toBe('21');
    expect((await admin.xrange(keys.events, '-', '+')).map(([id]) => id)).toEqual(['0-24']);
    expect(seqs(await collect(store.readEvents(f.upgradeId, 21)))).toEqual([22, 23, 24]);
    // 19..21 are below the mark but still held in that entry: read and watched alike; 18 is gone.
    expect(seqs(await collect(store.readEvents(f.upgradeId, 18)))).toEqual(range(19, 24));
    const stop = new AbortController();
    const watched: number[] = [];
    for await (const e of store.watch(f.upgradeId, 18, { signal: stop.signal })) {
      watched.push(e.seq);
      if (e.seq === 24) stop.abort();
    }
    expect(watched).toEqual(range(19, 24));
    const err = await errorOf(collect(store.readEvents(f.upgradeId, 17)));
    expect(err.code).toBe('NOT_FOUND');
    expect(err.context).toMatchObject({ reason: 'trimmed', trimmedSeq: 21 });
    const watchErr = await errorOf(collect(store.watch(f.upgradeId, 10)));
    expect(watchErr.context.reason).toBe('trimmed');
    expect(await store.load(f.upgradeId)).toEqual(f.state);
    await store.close();
  });
});
