// Edges of watch() and watchAll() that the broader suites did not pin (found by mutation testing,
// 2026-12-02): each test names the behaviour a user sees at that edge.
import { EventFactory } from '@progress/core/testing';
import { isProgressError, type ProgressError, type ProgressEvent } from '@progress/core';
import { getEventListeners } from 'node:events';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { aclUser, adminClient, appendBatch, cleanup, endOf, followAll, freshPrefix, makeStore, pause, readUpTo, redisUrl, until } from './helpers.js';
import { feedPointer } from '../src/codec.js';

const prefixes = new Set<string>();

afterAll(async () => {
  const admin = adminClient();
  await cleanup(admin, prefixes);
  await admin.quit();
});

/** What `promise` settles with, or 'still running' when it has not within a generous bound (not a timing claim: a hang). */
const within = <T>(promise: Promise<T>, ms = 10_000): Promise<T | 'still running'> =>
  Promise.race([promise, new Promise<'still running'>((r) => setTimeout(() => r('still running'), ms).unref())]);

describe('RedisStore.watch and retention', () => {
  // Found on 2026-12-02 (mutation testing): a watch() whose next seq was the very one retention
  // removed last (trimmed = afterSeq + 1) could end with DATA_CORRUPTED instead of the trimmed
  // NOT_FOUND a consumer answers with a resync, and no test failed.
  it('ends with NOT_FOUND (reason trimmed) when only the one event after afterSeq was removed by retention', async () => {
    // Snapshot at 10, keep >= 5, one event per append: at seq 15 events 1..10 are gone.
    const store = makeStore(prefixes, { snapshotEvery: 10, retention: { maxEvents: 5 }, watchBlockMs: 200 });
    const f = new EventFactory('edge-trim');
    for (let i = 0; i < 15; i++) await appendBatch(store, f, 1);
    const seen: number[] = [];
    const err = await endOf(store.watch(f.upgradeId, 9), (ev) => seen.push(ev.seq));
    expect(isProgressError(err, 'NOT_FOUND')).toBe(true);
    expect(err!.context).toMatchObject({ upgradeId: 'edge-trim', reason: 'trimmed', afterSeq: 9, trimmedSeq: 10 });
    expect(seen).toEqual([]);
    await store.close();
  });
});

describe('RedisStore.watch of an upgrade that does not exist', () => {
  // Found on 2026-12-02 (mutation testing): a watch() from afterSeq > 0 of an upgrade with no meta
  // (never created, or gone) could wait for it for good, as a watch from seq 0 rightly does, and no
  // test failed. A consumer that had seen seq 5 must hear that the upgrade is not there.
  it('ends with NOT_FOUND (reason deleted) from afterSeq > 0, rather than wait for the upgrade to appear', async () => {
    const store = makeStore(prefixes, { watchBlockMs: 200 });
    const err = await within(endOf(store.watch('edge-never', 5)));
    expect(err).not.toBe('still running');
    expect(isProgressError(err, 'NOT_FOUND')).toBe(true);
    expect((err as ProgressError).context).toMatchObject({ upgradeId: 'edge-never', reason: 'deleted', afterSeq: 5 });
    expect(store.info().watchers).toBe(0);
    await store.close();
  });
});

describe('RedisStore.watch and a log behind the watched seq', () => {
  // Found on 2026-12-02 (mutation testing): with the check of the meta's lastSeq against the watched
  // seq left out, no test failed: a watch() from past the end of the upgrade's log waited for good.
  it('ends with NOT_FOUND (reason deleted) when afterSeq is past the upgrade\'s lastSeq', async () => {
    const store = makeStore(prefixes, { watchBlockMs: 200 });
    const f = new EventFactory('edge-behind');
    await appendBatch(store, f, 3);
    const err = await within(endOf(store.watch(f.upgradeId, 10)));
    expect(err).not.toBe('still running');
    expect(isProgressError(err, 'NOT_FOUND')).toBe(true);
    expect((err as ProgressError).context).toMatchObject({ upgradeId: 'edge-behind', reason: 'deleted', afterSeq: 10 });
    expect((err as ProgressError).message).toContain('its log ends at seq 3, before seq 10');
    await store.close();
  });

  // Found on 2026-12-02 (mutation testing): the meta was checked against the watched seq only, not
  // against the last seq just read, and no test failed. An upgrade deleted and written again from the
  // same first event (the same eventId: its epoch matches) between the watcher's XREAD and its meta
  // read left the watcher handing out the old log's events past the new one's end.
  it('hands out nothing of entries read past the lastSeq of the meta read right after them (deleted and written again with the same first event)', async () => {
    const store = makeStore(prefixes, { watchBlockMs: 5000 });
    const seen: number[] = [];
    const done = endOf(store.watch('edge-same-epoch', 0), (ev) => seen.push(ev.seq));
    // The watcher waits in XREAD BLOCK for an upgrade that does not exist yet.
    await until('the watcher to read', () => store.info().watchers === 1);
    await pause(100);
    const keys = store.keys.upgrade('edge-same-epoch');
    const f = new EventFactory('edge-same-epoch');
    const events = f.batch(5);
    // One pipeline, run by Redis in one go: the first entry serves the watcher's XREAD at once, and
    // the delete and the shorter log written again from the same first event run before its meta read.
    const admin = adminClient();
    await admin
      .pipeline()
      .xadd(keys.events, '0-5', 'b', JSON.stringify(events))
      .hset(keys.meta, 'lastSeq', '5', 'epoch', events[0]!.eventId)
      .del(keys.events, keys.meta)
      .xadd(keys.events, '0-2', 'b', JSON.stringify(events.slice(0, 2)))
      .hset(keys.meta, 'lastSeq', '2', 'epoch', events[0]!.eventId)
      .exec();
    await admin.quit();
    const err = await within(done);
    expect(isProgressError(err, 'NOT_FOUND')).toBe(true);
    expect((err as ProgressError).context).toMatchObject({ upgradeId: 'edge-same-epoch', reason: 'deleted' });
    expect(seen).toEqual([]);
    await store.close();
  });
});

describe('RedisStore.watch and the meta read before blocking', () => {
  // Found on 2026-12-02 (mutation testing): with the check of the meta read before the first XREAD
  // left out, no test failed. A watch() from afterSeq > 0 (a consumer that loaded the upgrade, then
  // watches from its lastSeq) whose upgrade was deleted and created again during that first blocking
  // read then took the new upgrade's epoch for its own and handed out its events as the continuation.
  it('ends with NOT_FOUND (reason deleted) when the upgrade is deleted and created again during its first blocking read', async () => {
    const store = makeStore(prefixes, { watchBlockMs: 5000 });
    const writer = makeStore(prefixes, { keyPrefix: store.keys.prefix });
    const old = new EventFactory('edge-first-read');
    await appendBatch(writer, old, 3);
    const seen: number[] = [];
    const done = endOf(store.watch(old.upgradeId, 3), (ev) => seen.push(ev.seq));
    // The watcher waits in its first XREAD BLOCK, after seq 3.
    await until('the watcher to read', () => store.info().watchers === 1);
    await pause(100);
    expect(await writer.delete(old.upgradeId)).toBe(true);
    await appendBatch(writer, new EventFactory(old.upgradeId), 6);
    const err = await within(done);
    expect(isProgressError(err, 'NOT_FOUND')).toBe(true);
    expect((err as ProgressError).context).toMatchObject({ upgradeId: 'edge-first-read', reason: 'deleted', afterSeq: 3 });
    expect(seen).toEqual([]);
    await writer.close();
    await store.close();
  });
});

describe('RedisStore.watch and its signal', () => {
  // Found on 2026-12-02 (mutation testing): with the watcher's end leaving its abort listener in
  // place, no test failed. A caller's long-lived signal (one per process, as for a shutdown) then
  // kept a listener, and with it the ended watcher and its connection object, for each watch() ever
  // made and ended by its loop.
  it.each(['watch', 'watchAll'] as const)('leaves no listener on its signal once its loop has ended it, before the signal aborts (%s)', async (kind) => {
    const store = makeStore(prefixes, { watchBlockMs: 200 });
    const f = new EventFactory(`edge-signal-${kind}`);
    const stop = new AbortController();
    const iterable = kind === 'watch' ? store.watch(f.upgradeId, 0, { signal: stop.signal }) : store.watchAll({ signal: stop.signal });
    if (kind === 'watchAll') await store.list(); // after its start point (asked on the same connection)
    await appendBatch(store, f, 2);
    for await (const ev of iterable) {
      expect(ev.seq).toBe(1);
      expect(getEventListeners(stop.signal, 'abort')).toHaveLength(1);
      break;
    }
    expect(store.info().watchers).toBe(0);
    expect(getEventListeners(stop.signal, 'abort')).toHaveLength(0);
    await store.close();
  });
});

describe('RedisStore.watch ended by hand while a next() waits', () => {
  // Found on 2026-12-02 (mutation testing): with return() no longer ending the connection before it
  // is queued behind the pending next(), no test failed. On a quiet upgrade that next() waits in
  // XREAD BLOCK round after round, so a consumer with its own timeout (a race of next() against a
  // timer, then return()) never saw its return() settle, and the connection stayed open.
  it('settles return() called while a next() waits on a quiet upgrade, and releases the connection', async () => {
    const store = makeStore(prefixes, { watchBlockMs: 200 });
    const iterator = store.watch('edge-quiet-return', 0)[Symbol.asyncIterator]();
    const pending = iterator.next();
    await until('the watcher to read', () => store.info().watchers === 1);
    expect(await within(iterator.return!(undefined))).toEqual({ done: true, value: undefined });
    expect(await within(pending)).toEqual({ done: true, value: undefined });
    expect(store.info().watchers).toBe(0);
    await store.close();
  });

  // Found on 2026-12-02 (mutation testing): the same for throw() (an iterator driven by hand, or an
  // adapter that forwards its own throw()): without the connection ended first, it never settled.
  it('rejects throw() called while a next() waits on a quiet upgrade with its error, and releases the connection', async () => {
    const store = makeStore(prefixes, { watchBlockMs: 200 });
    const iterator = store.watch('edge-quiet-throw', 0)[Symbol.asyncIterator]();
    const pending = iterator.next();
    await until('the watcher to read', () => store.info().watchers === 1);
    const reason = new Error('consumer gave up');
    expect(await within(iterator.throw!(reason).then(() => 'resolved', (err: unknown) => err))).toBe(reason);
    expect(await within(pending)).toEqual({ done: true, value: undefined });
    expect(store.info().watchers).toBe(0);
    await store.close();
  });
});

describe('RedisStore.watch with a signal aborted already', () => {
  // Found on 2026-12-02 (mutation testing): with the check of a signal aborted before the iteration
  // left out, no test failed: such a watch() (a request cancelled before its stream began) still
  // opened a connection to Redis, only to end it at once.
  it('hands out nothing and opens no connection', async () => {
    const client = new Redis(redisUrl());
    // The watchers' connections are duplicate()s of the client passed in.
    let opened = 0;
    const duplicate = client.duplicate.bind(client);
    client.duplicate = (...args: Parameters<Redis['duplicate']>): Redis => {
      opened++;
      return duplicate(...args);
    };
    const store = makeStore(prefixes, { redis: client, watchBlockMs: 200 });
    const f = new EventFactory('edge-aborted');
    await appendBatch(store, f, 2);
    const seen: number[] = [];
    expect(await within(endOf(store.watch(f.upgradeId, 0, { signal: AbortSignal.abort() }), (ev) => seen.push(ev.seq)))).toBeUndefined();
    expect(seen).toEqual([]);
    expect(opened).toBe(0);
    expect(store.info().watchers).toBe(0);
    await store.close();
    await client.quit();
  });
});

describe('RedisStore.watch and credentials refused twice', () => {
  // Found on 2026-12-02 (mutation testing): with the first refusal's time kept across a connection
  // made in between, no test failed. A password rotated twice (each time put back well within
  // commandTimeoutMs) then ended the watcher at the first refusal of the second rotation, counted
  // from the first one's.
  it('counts commandTimeoutMs again from the first refusal after a connection was made in between', async () => {
    const admin = adminClient();
    const { user, url } = await aclUser(admin, 'edge-rot');
    const store = makeStore(prefixes, { url, commandTimeoutMs: 1500, watchBlockMs: 200 });
    const writer = makeStore(prefixes, { keyPrefix: store.keys.prefix });
    try {
      const f = new EventFactory('edge-rot');
      await appendBatch(writer, f, 1);
      const one = store.watch(f.upgradeId, 0)[Symbol.asyncIterator]();
      expect((await one.next()).value).toMatchObject({ seq: 1 });
      // A rotation: refused for a while (ioredis reconnects after 50, 100, 150 ms...), then let in again.
      const rotate = async (refusedMs: number): Promise<void> => {
        await admin.call('ACL', 'SETUSER', user, 'resetpass', '>other');
        await admin.call('CLIENT', 'KILL', 'USER', user);
        await appendBatch(writer, f, 1);
        await pause(refusedMs);
        await admin.call('ACL', 'SETUSER', user, 'resetpass', '>pw');
      };
      await rotate(600);
      expect((await one.next()).value).toMatchObject({ seq: 2 });
      // Past commandTimeoutMs from the first rotation's first refusal, the second one begins.
      await pause(1500);
      await rotate(300);
      expect((await one.next()).value).toMatchObject({ seq: 3 });
      await one.return?.();
    } finally {
      await admin.call('ACL', 'DELUSER', user);
      await admin.quit();
      await writer.close();
      await store.close();
    }
  });
});

describe('RedisStore.watchAll and a repeated feed entry behind later ones', () => {
  // Found on 2026-12-02 (mutation testing): with a page's range of an upgrade set to the last of its
  // feed entries rather than the highest, no test failed. A follow-up re-sent after a lost reply
  // (cluster mode) lands behind the upgrade's later entries: the events after it were then held back
  // until the upgrade's next append, handed out after other upgrades' later events.
  it('hands out every event its page points to when a repeated entry for an earlier append comes last', async () => {
    const store = makeStore(prefixes, { watchBlockMs: 200 });
    const admin = adminClient();
    const { stop, iterator } = await followAll(store);
    // While the follower does not read, all of this lands in one page of the feed.
    const f = new EventFactory('edge-repeat-late');
    const written: ProgressEvent[] = [];
    for (let i = 0; i < 3; i++) written.push(...(await appendBatch(store, f, 1)));
    await admin.xadd(store.keys.feed, '*', 'p', feedPointer(f.upgradeId, 2, 1)); // the second append's entry again
    const [marker] = await appendBatch(store, new EventFactory('edge-repeat-marker'), 1);
    const got = await readUpTo(iterator, marker!.eventId);
    expect(got.map((ev) => [ev.seq, ev.eventId])).toEqual(written.map((ev) => [ev.seq, ev.eventId]));
    stop.abort();
    expect((await iterator.next()).done).toBe(true);
    await admin.quit();
    await store.close();
  });
});

describe('RedisStore.watchAll and an upgrade without a recorded epoch', () => {
  // Found on 2026-12-02 (mutation testing): with the events of a repeated seq-1 feed entry handed out
  // whole when the epoch cannot be compared, no test failed. An upgrade with no epoch in its meta (as
  // stores before the epoch wrote it) then had its events handed out twice on such a repeat (a
  // follow-up re-sent after a lost reply).
  it('hands out nothing twice on a repeated seq-1 feed entry of an upgrade whose meta has no epoch', async () => {
    const store = makeStore(prefixes, { watchBlockMs: 200 });
    const admin = adminClient();
    const { stop, iterator } = await followAll(store);
    const f = new EventFactory('edge-no-epoch');
    const created = await appendBatch(store, f, 3);
    await admin.hdel(store.keys.upgrade(f.upgradeId).meta, 'epoch');
    for (let i = 0; i < 3; i++) expect((await iterator.next()).value!.seq).toBe(i + 1);
    // While the follower does not read: the first append's feed entry again, then a new append.
    await admin.xadd(store.keys.feed, '*', 'p', feedPointer(f.upgradeId, 1, created.length));
    // (Another store: this one, which wrote seq 1, would take the missing epoch for a re-created upgrade.)
    const writer = makeStore(prefixes, { keyPrefix: store.keys.prefix });
    const next = await appendBatch(writer, f, 2);
    const seen: ProgressEvent[] = [];
    for (let i = 0; i < 2; i++) seen.push((await iterator.next()).value!);
    expect(seen.map((e) => [e.seq, e.eventId])).toEqual(next.map((e) => [e.seq, e.eventId]));
    stop.abort();
    expect((await iterator.next()).done).toBe(true);
    await admin.quit();
    await writer.close();
    await store.close();
  });
});

describe('RedisStore.watchAll and an upgrade re-created while the follower was behind (cluster mode)', () => {
  // Found on 2026-12-02 (mutation testing): with the events of a range whose epoch changed handed out
  // from the range's start rather than the new upgrade's, no test failed. In cluster mode (no `born`
  // recorded: the epoch decides alone), a follower that had handed out the first events of an upgrade,
  // then read an entry of it after it was deleted and created again, handed out the new upgrade from
  // the middle: its first events were never handed out.
  it('hands out the new upgrade from its seq 1', async () => {
    const keyPrefix = freshPrefix('edge-behind-cluster');
    const store = makeStore(prefixes, { keyPrefix, mode: 'cluster', pageSize: 1, watchBlockMs: 200 });
    const writer = makeStore(prefixes, { keyPrefix, mode: 'cluster' });
    const { stop, iterator } = await followAll(store);
    const old = new EventFactory('edge-behind-c');
    await appendBatch(writer, old, 3);
    for (let i = 0; i < 3; i++) expect((await iterator.next()).value!.seq).toBe(i + 1);
    // While the follower does not read: more of the old upgrade, then the id deleted and created again.
    await appendBatch(writer, old, 3);
    expect(await writer.delete(old.upgradeId)).toBe(true);
    const fresh = new EventFactory(old.upgradeId);
    const written = [...(await appendBatch(writer, fresh, 3)), ...(await appendBatch(writer, fresh, 3)), ...(await appendBatch(writer, fresh, 1))];
    // Another upgrade's event last: once it comes, everything before it in the feed was read.
    const [marker] = await appendBatch(writer, new EventFactory('edge-behind-c-marker'), 1);
    const got = await readUpTo(iterator, marker!.eventId);
    expect(got.map((ev) => [ev.seq, ev.eventId])).toEqual(written.map((ev) => [ev.seq, ev.eventId]));
    stop.abort();
    await iterator.return?.();
    await writer.close();
    await store.close();
  });
});

describe('RedisStore.watchAll on a quiet feed', () => {
  // Found on 2026-12-02 (mutation testing): with an XREAD that waited out its block empty taken for
  // the end of the feed, no test failed: a watchAll() ended quietly after watchBlockMs without an
  // append, instead of following until it is stopped.
  it('goes on following after reads that waited out their block with nothing new', async () => {
    const store = makeStore(prefixes, { watchBlockMs: 100 });
    const stop = new AbortController();
    const iterator = store.watchAll({ signal: stop.signal })[Symbol.asyncIterator]();
    const first = iterator.next();
    await until('the watcher to read', () => store.info().watchers === 1);
    await pause(500); // several empty reads
    const [written] = await appendBatch(store, new EventFactory('edge-quiet-all'), 1);
    expect((await within(first)) as IteratorResult<ProgressEvent>).toEqual({ done: false, value: written });
    stop.abort();
    expect((await iterator.next()).done).toBe(true);
    await store.close();
  });
});

describe('RedisStore.watchAll and a feed it cannot read', () => {
  // Found on 2026-12-02 (mutation testing): with the start point's failure taken for the end of the
  // iteration, no test failed: a watchAll() through a client its owner had closed ended quietly, as if
  // stopped, instead of with STORE_UNAVAILABLE.
  it('ends with STORE_UNAVAILABLE when its start point cannot be read (a client passed in, closed by its owner)', async () => {
    const client = new Redis(redisUrl());
    const store = makeStore(prefixes, { redis: client, watchBlockMs: 200, commandTimeoutMs: 1000 });
    await store.list(); // connected
    client.disconnect();
    const err = await within(endOf(store.watchAll()));
    expect(isProgressError(err, 'STORE_UNAVAILABLE')).toBe(true);
    await store.close();
  });

  // Found on 2026-12-02 (mutation testing): the same for a read of the feed that failed for good (not
  // a lost connection): the iteration ended quietly instead of with the error (here DATA_CORRUPTED,
  // as the store names a key holding another kind of value).
  it('ends with the error naming Redis\' answer when a read of the feed is refused', async () => {
    const store = makeStore(prefixes, { watchBlockMs: 100 });
    const admin = adminClient();
    const { iterator } = await followAll(store);
    // The feed key holds a string now: every XREAD of it is refused (WRONGTYPE).
    await admin.set(store.keys.feed, 'not a stream');
    const err = await within(iterator.next().then(() => undefined, (e: unknown) => e));
    expect(isProgressError(err, 'DATA_CORRUPTED')).toBe(true);
    expect((err as ProgressError).message).toMatch(/watchAll failed.*WRONGTYPE/);
    await admin.del(store.keys.feed);
    await admin.quit();
    await store.close();
  });
});

describe('RedisStore.watchAll and a seq handed out that another event took', () => {
  // Found on 2026-12-02 (mutation testing): with a page's range that points only at seqs handed out
  // already left unread, no test on one Redis failed. That range is the one check that the event
  // handed out at the last seq is still there: after a failover that lost the last appends of an
  // upgrade (its slot's master, while the feed was on another), the next writer writes another event
  // under that seq, and the follower must hand the upgrade out again from its start. Here the loss is
  // made by hand on one Redis (the stream's last entry removed and the meta set back), the feed kept.
  it('hands the upgrade out again from seq 1 when a feed entry points at a seq whose event was replaced', async () => {
    const store = makeStore(prefixes, { watchBlockMs: 200 });
    const admin = adminClient();
    const { stop, iterator } = await followAll(store);
    const f = new EventFactory('edge-replaced');
    const before = [...(await appendBatch(store, f, 2)), ...(await appendBatch(store, f, 1))];
    for (let i = 0; i < 3; i++) expect((await iterator.next()).value!.seq).toBe(i + 1);
    // Seq 3 lost (its entry and the meta's lastSeq), then another writer writes another seq 3.
    const keys = store.keys.upgrade(f.upgradeId);
    const [[, kept]] = (await admin.xrange(keys.events, '0-2', '0-2')) as [[string, string[]]];
    await admin.pipeline().del(keys.events).xadd(keys.events, '0-2', ...kept).hset(keys.meta, 'lastSeq', '2').exec();
    const writer = makeStore(prefixes, { keyPrefix: store.keys.prefix });
    const other = new EventFactory(f.upgradeId);
    other.batch(2); // (its own seqs 1 and 2, not written: only its state for seq 3)
    const events = other.batch(1);
    await writer.append(f.upgradeId, events, 2, other.snapshot());
    const [marker] = await appendBatch(writer, new EventFactory('edge-replaced-marker'), 1);
    const got = await readUpTo(iterator, marker!.eventId);
    expect(got.map((ev) => [ev.seq, ev.eventId])).toEqual([...before.slice(0, 2), events[0]!].map((ev) => [ev.seq, ev.eventId]));
    stop.abort();
    await iterator.return?.();
    await admin.quit();
    await writer.close();
    await store.close();
  });
});
