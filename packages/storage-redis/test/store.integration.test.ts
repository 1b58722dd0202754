import { EventFactory } from '@progress/core/testing';
import { readFileSync } from 'node:fs';
import type { ProgressEvent } from '@progress/core';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { deleteKeysWith } from '../../../tools/test-utils/src/redis.js';
import { startRedisProxy } from '../../../tools/test-utils/src/redis-proxy.js';
import { RedisStore } from '../src/index.js';
import { CLOCK_REFRESH_MS } from '../src/server-clock.js';
import { ALL_ACCESS, aclUser, adminClient, appendBatch, cleanup, collect, errorOf, freshPrefix, makeStore, pause, redisUrl } from './helpers.js';

const prefixes = new Set<string>();
const admin = adminClient();

/** README, Failure semantics, Permissions. */
const permissions = /\*\*Permissions\.\*\*([\s\S]*?)(?=\n- \*\*)/.exec(readFileSync(new URL('../README.md', import.meta.url), 'utf8'))?.[1] ?? '';

/** The key patterns the README gives a store's ACL user (`~<prefix>...`), for `keyPrefix`. */
/**
 * Holds the read of the meta after a page (the first HMGET after its XRANGE) on `client` until
 * `release()`: the page is answered, and what another client does then falls between its reads.
 */
function holdMetaReadAfterPage(client: Redis): { held: () => boolean; release: () => void } {
  const send = client.sendCommand.bind(client);
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let paged = false;
  let held = false;
  client.sendCommand = ((command: Parameters<Redis['sendCommand']>[0], ...rest: unknown[]) => {
    paged ||= command.name === 'xrange';
    if (held || !paged || command.name !== 'hmget') return send(command, ...(rest as []));
    held = true;
    void released.then(() => send(command, ...(rest as [])));
    return command.promise;
  }) as Redis['sendCommand'];
  return { held: () => held, release };
}

const keyPatterns = (keyPrefix: string): string[] => {
  // Those of its sentence "Limit the user to the store's keys with ..., not with `~<prefix>*`".
  const advice = /Limit the user to the store's keys([\s\S]*?)not with/.exec(permissions)?.[1] ?? '';
  const patterns = [...advice.matchAll(/`(~<prefix>[^`\s]*)`/g)].map((m) => m[1]!);
  expect(patterns).not.toEqual([]);
  return patterns.map((p) => p.replace('<prefix>', keyPrefix));
};

/** A Redis ACL user limited to the keys of `keyPrefix` (the patterns the README gives), given `grants`, with the URL that logs in as it. */
const scopedUser = (keyPrefix: string, grants: readonly string[]): Promise<{ user: string; url: string }> => aclUser(admin, 'acl', [...keyPatterns(keyPrefix), 'resetchannels', ...grants]);

afterAll(async () => {
  await cleanup(admin, prefixes);
  await admin.quit();
});

describe('RedisStore: appends', () => {
  it('treats a retried append (same events, same expectedSeq) as success and stores it once', async () => {
    const store = makeStore(prefixes);
    const f = new EventFactory('retry-1');
    await appendBatch(store, f, 3);
    const events = f.batch(4);
    const state = f.snapshot();
    await store.append(f.upgradeId, events, 3, state);
    await store.append(f.upgradeId, events, 3, state);
    const stored = await collect(store.readEvents(f.upgradeId, 0));
    expect(stored.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(new Set(stored.map((e) => e.eventId)).size).toBe(7);
    // The same seqs with other events are a conflict, not a retry.
    const other = new EventFactory('retry-1');
    other.batch(3);
    const err = await errorOf(store.append(f.upgradeId, other.batch(4), 3, other.snapshot()));
    expect(err.code).toBe('CONFLICT');
    expect(err.context.storedSeq).toBe(7);
    // It says what happened and what to do.
    expect(err.message).toMatch(/is at seq 7 in Redis, not 3: another writer moved it \(open the upgrade again, ProgressTracker\.open, to go on from what is stored\)$/);
    // Behind the writer's seq: not another writer, Redis lost what it had acknowledged (or a re-create).
    const ahead = new EventFactory('retry-1');
    ahead.batch(9);
    const behind = await errorOf(store.append(f.upgradeId, ahead.batch(1), 9, ahead.snapshot()));
    expect(behind.code).toBe('CONFLICT');
    expect(behind.context.storedSeq).toBe(7);
    expect(behind.message).toMatch(/is at seq 7 in Redis, not 9: Redis lost appends it had acknowledged \(a failover to a replica they had not reached\?\), or the upgrade was deleted and created again \(open the upgrade again/);
    await store.close();
  });

  // Found on 2026-11-30 (review): Redis has no writer lock, so delete() runs while a writer is open;
  // a new run created under the id then reached the stale writer's seq, and its next append went in
  // after the new run's events (two runs mixed, the new run's own writer refused).
  it('refuses a stale writer with CONFLICT once its upgrade was deleted and created again at its very seq, whether it wrote the run or loaded it', async () => {
    const keyPrefix = freshPrefix('stale-run');
    const oldWriter = makeStore(prefixes, { keyPrefix });
    const resumed = makeStore(prefixes, { keyPrefix });
    const other = makeStore(prefixes, { keyPrefix });
    const old = new EventFactory('stale-run');
    await appendBatch(oldWriter, old, 3);
    // A writer that went on from what it loaded (a tracker opened again) knows the run as well.
    expect((await resumed.load(old.upgradeId))?.lastSeq).toBe(3);
    expect(await other.delete(old.upgradeId)).toBe(true);
    const fresh = new EventFactory('stale-run');
    const freshEvents = await appendBatch(other, fresh, 3);
    for (const stale of [oldWriter, resumed]) {
      const next = new EventFactory('stale-run');
      next.batch(3);
      const err = await errorOf(stale.append(old.upgradeId, next.batch(2), 3, next.snapshot()));
      expect(err.code).toBe('CONFLICT');
      expect(err.context.storedSeq).toBe(3);
      expect(err.message).toMatch(/was deleted and created again since this store last wrote or read it/);
    }
    // Nothing of the old run went in; the new run's writer goes on.
    expect((await collect(other.readEvents(old.upgradeId, 0))).map((e) => e.eventId)).toEqual(freshEvents.map((e) => e.eventId));
    await appendBatch(other, fresh, 2);
    expect((await other.load(old.upgradeId))?.lastSeq).toBe(5);
    // A store that reads the new run (load) writes to it: what it knows follows the store.
    await resumed.load(old.upgradeId);
    await resumed.append(old.upgradeId, fresh.batch(1), 5, fresh.snapshot());
    expect((await other.load(old.upgradeId))?.lastSeq).toBe(6);
    await Promise.all([oldWriter.close(), resumed.close(), other.close()]);
  });

  // Found on 2026-11-30 (review): a load() answered after this store's first append or delete of any
  // upgrade was not taken as what the store knows: trackers opened together with new ones (one
  // process starting several upgrades) appended by seq alone, and a stale one went into a new run.
  it('knows the run it loaded while it created or deleted other upgrades, and refuses a stale writer of it', async () => {
    const keyPrefix = freshPrefix('stale-run-busy');
    const writer = makeStore(prefixes, { keyPrefix });
    const other = makeStore(prefixes, { keyPrefix });
    const old = new EventFactory('stale-run-busy');
    await appendBatch(other, old, 3);
    // The writer opens it (load) while it creates another upgrade and deletes a third, in the same tick.
    const created = new EventFactory('stale-run-busy-other');
    const [loaded] = await Promise.all([writer.load(old.upgradeId), appendBatch(writer, created, 1), writer.delete('stale-run-busy-gone')]);
    expect(loaded?.lastSeq).toBe(3);
    expect(await other.delete(old.upgradeId)).toBe(true);
    const fresh = new EventFactory('stale-run-busy');
    await appendBatch(other, fresh, 3);
    const err = await errorOf(appendBatch(writer, old, 2));
    expect(err.code).toBe('CONFLICT');
    expect(err.message).toMatch(/was deleted and created again since this store last wrote or read it/);
    expect((await other.load(old.upgradeId))?.lastSeq).toBe(3);
    await Promise.all([writer.close(), other.close()]);
  });

  // Found on 2026-11-30 (review): a load() sent while this store's delete() waited for the server
  // clock read the run the delete then removed, and the store kept it as the run it writes to: its
  // append to the run another process created since was refused as a stale writer's.
  it('does not keep, as the run it writes to, one its own delete removed after a load read it', async () => {
    const keyPrefix = freshPrefix('own-delete-run');
    const store = makeStore(prefixes, { keyPrefix });
    const other = makeStore(prefixes, { keyPrefix });
    const old = new EventFactory('own-delete-run');
    await appendBatch(other, old, 3);
    // The clock is known: the delete's script goes out right after the load, which reads the old run.
    await store.load('own-delete-run-warm');
    const [deleted, loaded] = await Promise.all([store.delete(old.upgradeId), store.load(old.upgradeId)]);
    expect(deleted).toBe(true);
    expect(loaded?.lastSeq).toBe(3);
    const fresh = new EventFactory('own-delete-run');
    await appendBatch(other, fresh, 3);
    // Appended by seq, as to an upgrade this store never read since its delete.
    await appendBatch(store, fresh, 1);
    expect((await other.load(old.upgradeId))?.lastSeq).toBe(4);
    await Promise.all([store.close(), other.close()]);
  });

  // Found on 2026-11-30 (review): the run check answered an upgrade that is gone (nothing stored
  // under the id: deleted, or lost whole by a failover) as "another run of it is stored".
  it('says an upgrade that is gone, not created again, was lost or deleted: not that another run of it is stored', async () => {
    const keyPrefix = freshPrefix('gone-run');
    const writer = makeStore(prefixes, { keyPrefix });
    const f = new EventFactory('gone-run');
    await appendBatch(writer, f, 3);
    // Gone as a failover that lost it whole leaves it (the writer's store did not delete it).
    await admin.del(writer.keys.upgrade(f.upgradeId).events, writer.keys.upgrade(f.upgradeId).meta);
    const err = await errorOf(appendBatch(writer, f, 1));
    expect(err.code).toBe('CONFLICT');
    expect(err.context.storedSeq).toBe(0);
    expect(err.message).toMatch(/is at seq 0 in Redis, not 3: Redis lost appends it had acknowledged \(a failover to a replica they had not reached\?\), or the upgrade was deleted/);
    await writer.close();
  });

  // Found on 2026-11-30: the run check compared the end of the append's ids, `|<run>`, with `|` and
  // the meta's epoch. An eventId may hold `|`: a writer of run `x|b` passed for run `b`, and a writer
  // of run `b` whose next event's id was `a` passed for run `a|b` (its ids ending `|a|b`).
  it.each([
    ['single', 'x|b', 'b', 'next'],
    ['single', 'b', 'a|b', 'a'],
    ['cluster', 'x|b', 'b', 'next'],
    ['cluster', 'b', 'a|b', 'a'],
    // Not told apart by an escape that wrote `|` as `\x01b` alone.
    ['single', '\x01b', '|', 'next'],
    // A run holding \x01 (sent escaped, \x01 as \x01a) matched the meta's epoch only if the script
    // escaped that the same way: else its own writer got CONFLICT at its next append.
    ['single', 'b', 'a\x01', 'next'],
    ['cluster', 'b', 'a\x01|', 'next'],
  ] as const)('tells runs apart whose first eventIds hold | (%s mode: run %j, then %j)', async (mode, oldRun, newRun, nextId) => {
    const keyPrefix = freshPrefix('bar-run');
    const oldWriter = makeStore(prefixes, { keyPrefix, mode });
    const other = makeStore(prefixes, { keyPrefix, mode });
    const withFirstId = (events: ProgressEvent[], eventId: string): ProgressEvent[] => events.map((e, i) => (i === 0 ? { ...e, eventId } : e));
    const old = new EventFactory('bar-run');
    await oldWriter.append(old.upgradeId, withFirstId(old.batch(3), oldRun), 0, old.snapshot());
    expect(await other.delete(old.upgradeId)).toBe(true);
    const fresh = new EventFactory('bar-run');
    await other.append(old.upgradeId, withFirstId(fresh.batch(3), newRun), 0, fresh.snapshot());
    const err = await errorOf(oldWriter.append(old.upgradeId, withFirstId(old.batch(2), nextId), 3, old.snapshot()));
    expect(err.code).toBe('CONFLICT');
    expect(err.message).toMatch(/was deleted and created again since this store last wrote or read it/);
    // The new run's writer, whose run holds the same characters, goes on.
    await other.append(old.upgradeId, withFirstId(fresh.batch(2), nextId), 3, fresh.snapshot());
    expect((await collect(other.readEvents(old.upgradeId, 0))).map((e) => e.eventId)[0]).toBe(newRun);
    expect((await other.load(old.upgradeId))?.lastSeq).toBe(5);
    await Promise.all([oldWriter.close(), other.close()]);
  });

  // Found on 2026-11-30 (review): the delete records the deleted run's first eventId so that ioredis'
  // re-send of that run's first append stores nothing; a new call with the same events (a re-import,
  // test fixtures written again) was answered as done too, and nothing was stored.
  it.each(['single', 'cluster'] as const)('stores an upgrade deleted and written again with the same events (a new call, not a re-send; %s mode)', async (mode) => {
    const store = makeStore(prefixes, { mode });
    const f = new EventFactory('reimport');
    const events = f.batch(3);
    const state = f.snapshot();
    await store.append(f.upgradeId, events, 0, state);
    expect(await store.delete(f.upgradeId)).toBe(true);
    await store.append(f.upgradeId, events, 0, state);
    expect((await store.load(f.upgradeId))?.lastSeq).toBe(3);
    expect((await collect(store.readEvents(f.upgradeId, 0))).map((e) => e.eventId)).toEqual(events.map((e) => e.eventId));
    expect((await store.list()).map((r) => r.upgradeId)).toContain(f.upgradeId);
    await store.close();
  });

  // Found on 2026-12-01 (mutation testing): a delete leaves two keys in the upgrade's slot, its
  // call's marker and the deleted runs (README, Key layout), each meant to expire. No test failed
  // when the script wrote either without its TTL: every delete() would have left a key for good.
  // They live 60 s or 10 x commandTimeoutMs, whichever is longer: long enough for a re-send of the
  // delete, or of the deleted run's first append, that waited out an outage to be recognised. Found
  // on 2026-12-02 (documentation audit): no other test failed when it was 60 s or 1 x commandTimeoutMs.
  it.each([
    ['single', 1_000, 60_000],
    ['cluster', 10_000, 100_000],
  ] as const)('leaves no key of a deleted upgrade for good: its marker and the deleted runs expire, after 60 s or 10 x commandTimeoutMs, whichever is longer (%s mode, commandTimeoutMs %i: %i ms)', async (mode, commandTimeoutMs, ttl) => {
    const store = makeStore(prefixes, { mode, commandTimeoutMs });
    const f = new EventFactory('delete-leaves');
    await appendBatch(store, f, 3);
    expect(await store.delete(f.upgradeId)).toBe(true);
    const left = await admin.keys(`${store.keys.prefix}{${f.upgradeId}}*`);
    expect(left).toHaveLength(2);
    expect(left).toContain(store.keys.deletedRuns(f.upgradeId));
    expect(left.filter((key) => key.startsWith(`${store.keys.prefix}{${f.upgradeId}}:delete:`))).toHaveLength(1);
    for (const key of left) {
      const pttl = await admin.pttl(key);
      expect(pttl, key).toBeGreaterThan(ttl - 10_000);
      expect(pttl, key).toBeLessThanOrEqual(ttl);
    }
    await store.close();
  });

  it('recognises a re-sent append even when a later append of the same upgrade ran after it (both replies lost)', async () => {
    const store = makeStore(prefixes);
    const f = new EventFactory('retry-later');
    const first = f.batch(3);
    const firstState = f.snapshot();
    const second = f.batch(2);
    // Issued together (one pipeline), both applied; ioredis re-sends both after a lost connection.
    await Promise.all([store.append(f.upgradeId, first, 0, firstState), store.append(f.upgradeId, second, 3, f.snapshot())]);
    await store.append(f.upgradeId, first, 0, firstState);
    await store.append(f.upgradeId, second, 3, f.snapshot());
    expect((await collect(store.readEvents(f.upgradeId, 0))).map((e) => e.eventId)).toEqual([...first, ...second].map((e) => e.eventId));
    // Other events at the first append's seqs are still a conflict.
    const other = new EventFactory('retry-later');
    const err = await errorOf(store.append(f.upgradeId, other.batch(3), 0, other.snapshot()));
    expect(err.code).toBe('CONFLICT');
    expect(err.context.storedSeq).toBe(5);
    await store.close();
  });

  it('sends appends of several upgrades issued together in one pipeline', async () => {
    const client = new Redis(redisUrl());
    let pipelines = 0;
    const original = client.pipeline.bind(client);
    client.pipeline = ((...args: Parameters<typeof original>) => {
      pipelines++;
      return original(...args);
    }) as typeof client.pipeline;
    const store = makeStore(prefixes, { redis: client });
    const factories = Array.from({ length: 10 }, (_, i) => new EventFactory(`pipe-${i}`));
    await Promise.all(factories.map((f) => appendBatch(store, f, 5)));
    expect(pipelines).toBe(1);
    for (const f of factories) expect((await store.load(f.upgradeId))?.lastSeq).toBe(5);
    await store.close();
    // A client passed in stays open.
    expect(client.status).toBe('ready');
    expect(await client.ping()).toBe('PONG');
    await client.quit();
  });

  it('acknowledges the appends of a pipeline cut after its first reply once (ioredis aborts the rest; they may have run)', async () => {
    const proxy = await startRedisProxy(redisUrl());
    const store = makeStore(prefixes, { url: proxy.url, commandTimeoutMs: 5_000 });
    const factories = [new EventFactory('cut-1'), new EventFactory('cut-2'), new EventFactory('cut-3')];
    for (const f of factories) await appendBatch(store, f, 1); // connected, clock measured
    proxy.cutAfterFirstLine();
    // One tick: one pipeline. Redis runs all three; only the first reply gets through.
    const results = await Promise.allSettled(factories.map((f) => appendBatch(store, f, 1)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    for (const f of factories) expect((await collect(store.readEvents(f.upgradeId, 0))).map((e) => e.seq)).toEqual([1, 2]);
    // The next appends follow on: nothing was reported failed that was stored.
    for (const f of factories) await appendBatch(store, f, 1);
    await store.close();
    await proxy.close();
  });

  it('closes in bounded time in cluster mode when the link stalls right after an append was acknowledged (its index and feed writes wait)', async () => {
    const proxy = await startRedisProxy(redisUrl());
    const store = makeStore(prefixes, { url: proxy.url, mode: 'cluster', commandTimeoutMs: 300 });
    const f = new EventFactory('followup-stall');
    await appendBatch(store, f, 2);
    proxy.holdAfterNextReply(); // the script's reply passes; the follow-up's index and feed writes are held
    await appendBatch(store, f, 1);
    await store.close(); // without a bound, it waited for those writes for as long as the link stalled
    proxy.release();
    await proxy.close();
  });

  it("bounds an append by its own deadline, not by the commandTimeout of a client passed in (never failed, then stored)", async () => {
    const proxy = await startRedisProxy(redisUrl());
    const client = new Redis(proxy.url, { commandTimeout: 100 });
    const store = makeStore(prefixes, { redis: client, commandTimeoutMs: 5_000 });
    const f = new EventFactory('client-timeout');
    await appendBatch(store, f, 2);
    proxy.hold();
    const pending = appendBatch(store, f, 1);
    await new Promise((r) => setTimeout(r, 300));
    proxy.release();
    // ioredis' own timeout would have rejected it at 100 ms while the command stayed queued.
    await expect(pending).resolves.toHaveLength(1);
    expect((await store.load(f.upgradeId))?.lastSeq).toBe(3);
    await store.close();
    await client.quit();
    await proxy.close();
  });

  it("bounds the server clock reading an append waits for by its deadline too, not by the commandTimeout of a client passed in", async () => {
    // The first append reads Redis' clock (TIME) for its deadline, as every append after a reconnect
    // does: that read, timed out by the client at 500 ms, failed the append long before commandTimeoutMs.
    // (500 ms, not less: every other command of this client is timed out at it too, and a machine at
    // a load of 16 on 2 cores took longer than 100 ms to answer the load() below.)
    const proxy = await startRedisProxy(redisUrl());
    const client = new Redis(proxy.url, { commandTimeout: 500 });
    const store = makeStore(prefixes, { redis: client, commandTimeoutMs: 5_000 });
    const f = new EventFactory('client-timeout-clock');
    await client.ping();
    proxy.hold();
    const pending = appendBatch(store, f, 2);
    await new Promise((r) => setTimeout(r, 1500));
    proxy.release();
    await expect(pending).resolves.toHaveLength(2);
    expect((await store.load(f.upgradeId))?.lastSeq).toBe(2);
    await store.close();
    await client.quit();
    await proxy.close();
  });

  it('writes and reads under the keyPrefix of a client passed in, like every other command of that client', async () => {
    const clientPrefix = freshPrefix('client-prefix');
    prefixes.add(clientPrefix);
    const client = new Redis(redisUrl(), { keyPrefix: clientPrefix });
    const store = makeStore(prefixes, { redis: client });
    const f = new EventFactory('client-prefix');
    await appendBatch(store, f, 2);
    // Redis loses the script: the EVAL re-sent in its place gets the prefix once, not twice.
    await admin.script('FLUSH');
    await appendBatch(store, f, 1);
    expect((await store.load(f.upgradeId))?.lastSeq).toBe(3);
    expect((await collect(store.readEvents(f.upgradeId, 0))).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect((await store.list()).map((r) => r.upgradeId)).toEqual([f.upgradeId]);
    // Every key under the client's prefix, none without it.
    const { events, meta } = store.keys.upgrade(f.upgradeId);
    expect(await admin.exists(clientPrefix + events, clientPrefix + meta, clientPrefix + store.keys.feed, clientPrefix + store.keys.index)).toBe(4);
    expect(await admin.exists(events, meta, store.keys.feed, store.keys.index)).toBe(0);
    // info() says where they are.
    expect(store.info().keyPrefix).toBe(clientPrefix + store.keys.prefix);
    await store.close();
    await client.quit();
  });

  it('watch(), watchAll() and delete() work under the keyPrefix of a client passed in', async () => {
    // (A review repro of 2026-11-29, kept: the watchers duplicate the client, which carries its prefix.)
    const clientPrefix = freshPrefix('client-prefix-watch');
    prefixes.add(clientPrefix);
    const client = new Redis(redisUrl(), { keyPrefix: clientPrefix });
    const store = makeStore(prefixes, { redis: client, watchBlockMs: 200 });
    const f = new EventFactory('client-prefix-watch');
    await appendBatch(store, f, 2);
    const stop = new AbortController();
    const watching = store.watch(f.upgradeId, 0, { signal: stop.signal })[Symbol.asyncIterator]();
    const following = store.watchAll({ signal: stop.signal })[Symbol.asyncIterator]();
    await store.list(); // after the watchAll() start point (same connection)
    await appendBatch(store, f, 2);
    const seqs = async (iterator: AsyncIterator<ProgressEvent>, n: number): Promise<number[]> => {
      const out: number[] = [];
      while (out.length < n) out.push(((await iterator.next()).value as ProgressEvent).seq);
      return out;
    };
    expect(await seqs(watching, 4)).toEqual([1, 2, 3, 4]);
    expect(await seqs(following, 2)).toEqual([3, 4]);
    stop.abort();
    expect(await store.delete(f.upgradeId)).toBe(true);
    expect(await store.load(f.upgradeId)).toBeUndefined();
    expect(await admin.exists(clientPrefix + store.keys.upgrade(f.upgradeId).meta)).toBe(0);
    await store.close();
    await client.quit();
  });

  it.each(['single', 'cluster'] as const)('answers appends, deletes and prunes truly with a client passed in that reads numbers as strings (ioredis stringNumbers, %s mode)', async (mode) => {
    // Such a client answers the scripts' integer replies as text ('1', ['0', '7']): a stored append
    // was reported STORE_UNAVAILABLE (the tracker rolled back events Redis held), a conflict too,
    // and a delete that deleted returned false.
    const client = new Redis(redisUrl(), { stringNumbers: true });
    const store = makeStore(prefixes, { redis: client, mode });
    const f = new EventFactory('string-numbers');
    await appendBatch(store, f, 2);
    const events = f.batch(2);
    await store.append(f.upgradeId, events, 2, f.snapshot());
    await store.append(f.upgradeId, events, 2, f.snapshot()); // a retry, recognised
    const other = new EventFactory(f.upgradeId);
    const err = await errorOf(store.append(f.upgradeId, other.batch(2), 0, other.snapshot()));
    expect(err.code).toBe('CONFLICT');
    expect(err.context.storedSeq).toBe(4);
    expect((await collect(store.readEvents(f.upgradeId, 0))).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    // An index entry whose upgrade is gone is pruned.
    await admin.zadd(store.keys.index, 1, 'gone');
    // Cluster mode: the index entry is written after the script (a follow-up); wait for it, not for a time.
    for (const end = Date.now() + 10_000; !(await admin.zrange(store.keys.index, 0, -1)).includes(f.upgradeId) && Date.now() < end; ) await new Promise((r) => setTimeout(r, 10));
    expect((await store.list()).map((r) => r.upgradeId)).toEqual([f.upgradeId]);
    expect(await admin.zrange(store.keys.index, 0, -1)).toEqual([f.upgradeId]);
    expect(await store.delete(f.upgradeId)).toBe(true);
    expect(await store.delete(f.upgradeId)).toBe(false);
    await store.close();
    await client.quit();
  });

  it('lets many stores share one client passed in (a store per tenant) without a false MaxListenersExceededWarning on it', async () => {
    const client = new Redis(redisUrl());
    const warned: Error[] = [];
    const onWarning = (w: Error & { emitter?: unknown }): void => void (w.emitter === client && warned.push(w));
    process.on('warning', onWarning);
    try {
      const stores = Array.from({ length: 12 }, () => makeStore(prefixes, { redis: client }));
      await new Promise((r) => setTimeout(r, 20)); // warnings are emitted on a later tick
      // Each still works, and closing some leaves the others working.
      for (const store of stores.slice(0, 6)) await store.close();
      for (const [i, store] of stores.slice(6).entries()) {
        const f = new EventFactory(`tenant-${i}`);
        await appendBatch(store, f, 2);
        expect((await store.load(f.upgradeId))?.lastSeq).toBe(2);
        await store.close();
      }
      expect(warned.map((w) => w.message)).toEqual([]);
      // Nothing of the stores is left on the client, which outlives them.
      expect(client.listenerCount('ready') + client.listenerCount('+node')).toBe(0);
    } finally {
      process.off('warning', onWarning);
      await client.quit();
    }
  });

  it('runs many reads at once (load, list, delete, watchAll) without a MaxListenersExceededWarning (each listens to the store closing)', async () => {
    const store = makeStore(prefixes);
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    try {
      await Promise.all(Array.from({ length: 12 }, (_, i) => Promise.all([store.load(`many-${i}`), store.list(), store.delete(`many-${i}`)])));
      for (let i = 0; i < 12; i++) store.watchAll();
      await new Promise((r) => setTimeout(r, 20)); // warnings are emitted on a later tick
      expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
      await store.close();
    }
  });

  it('refuses a client passed in that is in subscriber mode with INVALID_ARGUMENT, rather than fail every call as if Redis were down', async () => {
    const client = new Redis(redisUrl());
    await client.subscribe('progress-test-channel');
    // It took only (P|S)SUBSCRIBE, PING and QUIT: every call failed with STORE_UNAVAILABLE, which no retry mends.
    expect(() => makeStore(prefixes, { redis: client })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/subscriber mode/) }));
    await client.quit();
  });

  it('answers calls on a client passed in that its owner put in subscriber mode later with INVALID_ARGUMENT, and works again once it unsubscribed', async () => {
    const client = new Redis(redisUrl());
    await client.ping();
    const store = makeStore(prefixes, { redis: client });
    const f = new EventFactory('subscribed-later');
    try {
      await appendBatch(store, f, 2);
      await client.subscribe('progress-test-channel');
      // ioredis refuses every other command on it at once: no retry mends that, so not STORE_UNAVAILABLE ("Redis is down").
      const events = f.batch(1);
      const refused = await errorOf(store.append(f.upgradeId, events, 2, f.snapshot()));
      expect(refused).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/subscriber mode.*duplicate\(\)/) });
      expect(await errorOf(store.load(f.upgradeId))).toMatchObject({ code: 'INVALID_ARGUMENT' });
      await client.unsubscribe();
      expect((await store.load(f.upgradeId))?.lastSeq).toBe(2);
      await store.append(f.upgradeId, events, 2, f.snapshot());
      expect((await collect(store.readEvents(f.upgradeId, 0))).map((e) => e.seq)).toEqual([1, 2, 3]);
    } finally {
      await store.close();
      await client.quit();
    }
  });

  // What ioredis can leave on a connection when a lost connection cuts a transaction in two (see
  // connection-loss.integration.test.ts): a MULTI, and commands queued in it, ahead of the store's.
  it('does not take replies queued in a transaction open on a client passed in for a read of its own', async () => {
    const client = new Redis(redisUrl());
    const store = makeStore(prefixes, { redis: client });
    const f = new EventFactory('open-transaction');
    try {
      await appendBatch(store, f, 3);
      const other = `${store.keys.prefix}{other}:meta`;
      const opened = [client.call('multi'), client.call('hmget', other, 'a', 'b')];
      const read = await errorOf(collect(store.readEvents(f.upgradeId, 0)));
      expect(read).toMatchObject({ code: 'STORE_UNAVAILABLE', message: expect.stringMatching(/not this read's answers/) });
      expect(read.cause).toMatchObject({ name: 'AbortError' });
      await client.call('discard');
      expect(await Promise.all(opened)).toEqual(['OK', 'QUEUED']);
      expect((await collect(store.readEvents(f.upgradeId, 0))).map((e) => e.seq)).toEqual([1, 2, 3]);
    } finally {
      await store.close();
      await client.quit();
    }
  });

  it('refuses events that JSON cannot represent, or no state, with INVALID_ARGUMENT (a rejection, not a throw), and sends nothing', async () => {
    const store = makeStore(prefixes);
    const f = new EventFactory('unserializable');
    await appendBatch(store, f, 2);
    const [event] = f.batch(1);
    const bad = { ...event!, details: { count: 10n } };
    const sent = store.append(f.upgradeId, [bad as never], 2, f.snapshot());
    await expect(sent).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(store.append(f.upgradeId, [event!], 2, undefined as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((await store.load(f.upgradeId))?.lastSeq).toBe(2);
    await store.close();
  });

  it('stores a reply-lost append once: ioredis re-sends it and the script recognises it', async () => {
    const proxy = await startRedisProxy(redisUrl());
    const store = makeStore(prefixes, { url: proxy.url });
    const f = new EventFactory('lost-reply');
    await appendBatch(store, f, 2);
    proxy.dropNextReply();
    await appendBatch(store, f, 3);
    expect(proxy.connections).toBeGreaterThan(1);
    const stored = await collect(store.readEvents(f.upgradeId, 0));
    expect(stored.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect((await store.load(f.upgradeId))?.lastSeq).toBe(5);
    await store.close();
    await proxy.close();
  });

  it('recognises a re-sent append whose events hold a lone surrogate (text cut inside an emoji), which Redis\' JSON decoder refuses', async () => {
    const proxy = await startRedisProxy(redisUrl());
    const store = makeStore(prefixes, { url: proxy.url });
    const f = new EventFactory('lone-surrogate');
    await appendBatch(store, f, 1);
    const events = [f.next('upgrade.phase_changed', { message: 'cut \ud83d', details: { phase: 'p1' } }), f.next('upgrade.phase_changed', { details: { phase: 'p2' } })];
    proxy.dropNextReply();
    await store.append(f.upgradeId, events, 1, f.snapshot());
    expect(proxy.connections).toBeGreaterThan(1);
    const stored = await collect(store.readEvents(f.upgradeId, 0));
    expect(stored.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(stored[1]!.message).toBe('cut \ud83d');
    await store.close();
    await proxy.close();
  });

  // README, Failure semantics: an append not answered within commandTimeoutMs (plus the clock's
  // uncertainty, at most ~50 ms and half a round trip here) rejects. Found on 2026-12-02 (mutation
  // testing): the test above checks only that it waited that long, and none failed when the store
  // gave up three times later. The store's timers and clock are faked here, so that "not later" is
  // checked without timing anything: 200 ms of fake time past commandTimeoutMs settle it.
  it('rejects an unanswered append once commandTimeoutMs (and the clock uncertainty) has passed, not later', async () => {
    const proxy = await startRedisProxy(redisUrl());
    // From before the store's first command: its timers (the sweep of the appends in flight among
    // them) and its clock are all fake.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate', 'performance'], now: Date.now() });
    const store = makeStore(prefixes, { url: proxy.url, commandTimeoutMs: 300 });
    const f = new EventFactory('bounded');
    try {
      await appendBatch(store, f, 1); // connected, server clock read
      proxy.hold();
      let outcome: unknown = 'pending';
      void appendBatch(store, f, 1).then(
        () => (outcome = 'stored'),
        (err: unknown) => (outcome = err),
      );
      await vi.advanceTimersByTimeAsync(250);
      expect(outcome).toBe('pending');
      await vi.advanceTimersByTimeAsync(250);
      expect(outcome).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { timeoutMs: 300 } });
    } finally {
      vi.useRealTimers();
      proxy.release();
      await store.close();
      await proxy.close();
    }
  });

  it('rejects with STORE_UNAVAILABLE after commandTimeoutMs, and Redis never applies that append later', async () => {
    const proxy = await startRedisProxy(redisUrl());
    const keyPrefix = freshPrefix('deadline');
    const store = makeStore(prefixes, { url: proxy.url, keyPrefix, commandTimeoutMs: 300 });
    const f = new EventFactory('deadline');
    await appendBatch(store, f, 2);
    proxy.hold();
    const started = Date.now();
    const err = await errorOf(appendBatch(store, f, 1));
    expect(err.code).toBe('STORE_UNAVAILABLE');
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    proxy.release();
    // The held command now reaches Redis, after its deadline: the script refuses it.
    const direct = new RedisStore({ url: redisUrl(), keyPrefix });
    await new Promise((r) => setTimeout(r, 100));
    expect((await direct.load(f.upgradeId))?.lastSeq).toBe(2);
    expect(await admin.hget(`${keyPrefix}{deadline}:meta`, 'lastSeq')).toBe('2');
    // The feed entry the refused script wrote to read the clock was taken back out.
    const feed = await admin.xrange(`${keyPrefix}feed`, '-', '+');
    expect(feed.map(([, fields]) => fields)).toEqual([['p', '1|2|deadline']]);
    await direct.close();
    await store.close();
    await proxy.close();
  });

  it('never applies a rejected append later, also when the local wall clock stepped forward after the server clock was read', async () => {
    const proxy = await startRedisProxy(redisUrl());
    const keyPrefix = freshPrefix('clock-step');
    const store = makeStore(prefixes, { url: proxy.url, keyPrefix, commandTimeoutMs: 300 });
    const f = new EventFactory('clock-step');
    await appendBatch(store, f, 1); // connected, server clock read
    const realNow = Date.now;
    Date.now = () => realNow() + 60_000; // an NTP step, or a VM resumed: one minute forward
    try {
      proxy.hold();
      expect((await errorOf(appendBatch(store, f, 1))).code).toBe('STORE_UNAVAILABLE');
      proxy.release();
      await new Promise((r) => setTimeout(r, 300));
      expect(await admin.hget(store.keys.upgrade(f.upgradeId).meta, 'lastSeq')).toBe('1');
    } finally {
      Date.now = realNow;
    }
    await store.close();
    await proxy.close();
  });

  it("never applies a rejected append later, also when Redis' clock went back after it was read: the clock is read again while appends go on", async () => {
    const proxy = await startRedisProxy(redisUrl());
    const keyPrefix = freshPrefix('server-step');
    const warned: Array<{ ms?: number }> = [];
    const logger = { debug() {}, info() {}, error() {}, warn: (obj: object) => void warned.push(obj) };
    const store = makeStore(prefixes, { url: proxy.url, keyPrefix, commandTimeoutMs: 300, logger });
    const client = store.client as Redis;
    const time = client.time.bind(client);
    // Redis' clock reads 5 s ahead when the store measures it, and is stepped back (NTP) after.
    client.time = (async () => {
      const [sec, usec] = await time();
      return [String(Number(sec) + 5), usec];
    }) as typeof client.time;
    const f = new EventFactory('server-step');
    await appendBatch(store, f, 1); // the offset read 5 s too far ahead
    client.time = time;
    await new Promise((r) => setTimeout(r, CLOCK_REFRESH_MS + 50));
    await appendBatch(store, f, 1); // an append that finds the offset old reads the clock again (in the background)
    await new Promise((r) => setTimeout(r, 100));
    // It saw the step back (appends in flight then would have waited that much longer).
    expect(warned.map((w) => Math.round((w.ms ?? 0) / 1000))).toEqual([5]);
    proxy.hold();
    expect((await errorOf(appendBatch(store, f, 1))).code).toBe('STORE_UNAVAILABLE');
    proxy.release();
    await new Promise((r) => setTimeout(r, 300));
    expect(await admin.hget(store.keys.upgrade(f.upgradeId).meta, 'lastSeq')).toBe('2');
    await store.close();
    await proxy.close();
  });

  /** Runs `body` with the monotonic clock a minute behind (it stood still for a minute: a resumed VM), as the store reads it. */
  async function withClockHeldBack(body: () => Promise<void>): Promise<void> {
    const realNow = performance.now.bind(performance);
    performance.now = () => realNow() - 60_000;
    try {
      await body();
    } finally {
      performance.now = realNow;
    }
  }

  it('reads the server clock again after Redis refused an append as late, so a local clock that fell behind (a resumed VM) heals', async () => {
    const store = makeStore(prefixes, { commandTimeoutMs: 1_000 });
    const f = new EventFactory('clock-behind');
    await appendBatch(store, f, 1); // server clock read
    await withClockHeldBack(async () => {
      // Its deadline is a minute in the past by Redis' clock: refused, and not applied.
      const err = await errorOf(appendBatch(store, f, 1));
      expect(err.code).toBe('STORE_UNAVAILABLE');
      expect(err.message).toContain('after its deadline');
      // The next one reads the clock again and goes through.
      const retry = new EventFactory('clock-behind');
      retry.batch(1);
      await appendBatch(store, retry, 1);
      expect((await store.load(f.upgradeId))?.lastSeq).toBe(2);
    });
    await store.close();
  });

  // Found on 2026-12-01 (mutation testing): no test failed when delete() set its deadline on the
  // local clock instead of the server's (the store runs on the same host as Redis in the tests, so
  // the offset is ~0). On a host whose clock is behind Redis', every delete() would be refused as late.
  it("delete() runs when the local clock is a minute behind Redis' (its deadline is on the server clock)", async () => {
    await withClockHeldBack(async () => {
      const store = makeStore(prefixes, { commandTimeoutMs: 1_000 });
      const f = new EventFactory('delete-clock-behind');
      await appendBatch(store, f, 2);
      expect(await store.delete(f.upgradeId)).toBe(true);
      expect(await store.load(f.upgradeId)).toBeUndefined();
      await store.close();
    });
  });

  it('a delete Redis refuses as late is reported failed (STORE_UNAVAILABLE), not as "nothing to delete", and deletes nothing; the next one reads the clock again', async () => {
    const store = makeStore(prefixes, { commandTimeoutMs: 1_000 });
    const f = new EventFactory('delete-late');
    await appendBatch(store, f, 2); // server clock read
    await withClockHeldBack(async () => {
      // Its deadline is a minute in the past by Redis' clock.
      const err = await errorOf(store.delete(f.upgradeId));
      expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { upgradeId: f.upgradeId } });
      expect(err.message).toContain('the delete reached Redis after its deadline and was not applied');
      expect((await store.load(f.upgradeId))?.lastSeq).toBe(2);
      expect(await store.delete(f.upgradeId)).toBe(true);
    });
    expect(await store.load(f.upgradeId)).toBeUndefined();
    await store.close();
  });

  it('counts the wait from the append, also when the server clock must be read first: a late append is refused', async () => {
    const proxy = await startRedisProxy(redisUrl());
    const keyPrefix = freshPrefix('clock-first');
    const store = makeStore(prefixes, { url: proxy.url, keyPrefix, commandTimeoutMs: 1_000 });
    const f = new EventFactory('clock-first');
    await store.load(f.upgradeId); // connected; the server clock is read by the first append
    proxy.hold();
    const started = Date.now();
    const outcome = errorOf(appendBatch(store, f, 2));
    // The clock read (TIME) waits 600 ms, then the append itself until 1,600 ms after the call.
    // The deadline is 1,000 ms after the call, give or take half the clock read's round trip
    // (+300 ms here: its request was held, its reply was not), so at most 1,300 ms: Redis refuses
    // the append. Counted from the clock read, it would be 1,900 ms, and the append stored.
    await new Promise((r) => setTimeout(r, 600 - (Date.now() - started)));
    proxy.release();
    proxy.hold();
    await new Promise((r) => setTimeout(r, 1_600 - (Date.now() - started)));
    proxy.release();
    expect((await outcome).code).toBe('STORE_UNAVAILABLE');
    expect(await admin.hget(`${keyPrefix}{clock-first}:meta`, 'lastSeq')).toBeNull();
    await store.close();
    await proxy.close();
  });

  it('sends appends in the order they were made while the server clock is being read', async () => {
    const store = makeStore(prefixes);
    const f = new EventFactory('clock-order');
    const first = f.batch(2);
    const firstState = f.snapshot();
    const second = f.batch(1);
    const a = store.append(f.upgradeId, first, 0, firstState);
    await new Promise((r) => setImmediate(r)); // the first append waits for the clock read (TIME)
    // A reply that comes right behind TIME's makes the second append in the same tick as the clock
    // becomes known, before the first one has been sent.
    const b = (store.client as Redis).ping().then(() => store.append(f.upgradeId, second, 2, f.snapshot()));
    await Promise.all([a, b]);
    expect((await collect(store.readEvents(f.upgradeId, 0))).map((e) => e.eventId)).toEqual([...first, ...second].map((e) => e.eventId));
    await store.close();
  });

  // The events key too (found on 2026-12-02, mutation testing: no test failed when the script, refused
  // at the events' XADD of a first append, left the index entry it had added before).
  it.each(['meta', 'events'] as const)('reports a key that holds another kind of value (%s) as DATA_CORRUPTED, and writes nothing', async (which) => {
    const keyPrefix = freshPrefix('wrongtype');
    const store = makeStore(prefixes, { keyPrefix });
    const f = new EventFactory('wrongtype');
    await admin.set(store.keys.upgrade(f.upgradeId)[which], 'not a hash');
    expect((await errorOf(appendBatch(store, f, 2))).code).toBe('DATA_CORRUPTED');
    expect((await errorOf(store.load(f.upgradeId))).code).toBe('DATA_CORRUPTED');
    expect(await admin.exists(store.keys.upgrade(f.upgradeId)[which === 'meta' ? 'events' : 'meta'], store.keys.index)).toBe(0);
    // (A feed entry the script added before the refusal is taken back out: the stream may stay, empty.)
    expect(await admin.xlen(store.keys.feed)).toBe(0);
    await store.close();
  });

  it('writes nothing either when the index key holds another kind of value, and appends once it is repaired', async () => {
    const keyPrefix = freshPrefix('wrongtype-index');
    const store = makeStore(prefixes, { keyPrefix });
    const f = new EventFactory('wrongtype-index');
    await admin.set(store.keys.index, 'not a sorted set');
    const events = f.batch(2);
    expect((await errorOf(store.append(f.upgradeId, events, 0, f.snapshot()))).code).toBe('DATA_CORRUPTED');
    expect(await admin.exists(store.keys.upgrade(f.upgradeId).events, store.keys.upgrade(f.upgradeId).meta)).toBe(0);
    expect(await admin.xlen(store.keys.feed)).toBe(0);
    await admin.del(store.keys.index);
    await store.append(f.upgradeId, events, 0, f.snapshot());
    expect((await collect(store.readEvents(f.upgradeId, 0))).map((e) => e.seq)).toEqual([1, 2]);
    expect(await admin.zscore(store.keys.index, f.upgradeId)).not.toBeNull();
    await store.close();
  });

  // A delete reported failed must have changed nothing: the caller keeps the upgrade (and may go on
  // appending to it) and would not expect its events gone.
  it('delete() deletes nothing when the index key holds another kind of value (DATA_CORRUPTED), and deletes once it is repaired', async () => {
    const keyPrefix = freshPrefix('wrongtype-delete');
    const store = makeStore(prefixes, { keyPrefix });
    const f = new EventFactory('wrongtype-delete');
    await appendBatch(store, f, 3);
    await admin.del(store.keys.index);
    await admin.set(store.keys.index, 'not a sorted set');
    expect((await errorOf(store.delete(f.upgradeId))).code).toBe('DATA_CORRUPTED');
    expect(await store.load(f.upgradeId)).toEqual(f.state);
    await admin.del(store.keys.index);
    expect(await store.delete(f.upgradeId)).toBe(true);
    expect(await store.load(f.upgradeId)).toBeUndefined();
    await store.close();
  });

  // delete() removes the upgrade whole: a snapshot left behind would stay in Redis for good (it has
  // no TTL, and nothing of the upgrade points at it any more).
  it('delete() removes the snapshot with the events and the meta', async () => {
    const store = makeStore(prefixes, { snapshotEvery: 2 });
    const f = new EventFactory('delete-snapshot');
    await appendBatch(store, f, 3);
    const keys = store.keys.upgrade(f.upgradeId);
    expect(await admin.exists(keys.snapshot)).toBe(1);
    expect(await store.delete(f.upgradeId)).toBe(true);
    expect(await admin.exists(keys.events, keys.meta, keys.snapshot)).toBe(0);
    await store.close();
  });

  it('reports a stream that disagrees with lastSeq as DATA_CORRUPTED, and writes nothing (not the feed, not the index)', async () => {
    const keyPrefix = freshPrefix('damage');
    const store = makeStore(prefixes, { keyPrefix });
    const f = new EventFactory('damage');
    await appendBatch(store, f, 3);
    const keys = store.keys.upgrade('damage');
    await admin.xadd(keys.events, '0-10', 'b', '[]'); // an entry past lastSeq (3): damage
    const feedBefore = await admin.xlen(`${keyPrefix}feed`);
    const err = await errorOf(appendBatch(store, f, 2));
    expect(err.code).toBe('DATA_CORRUPTED');
    expect(err.message).toContain('nothing was appended');
    expect(await admin.hget(keys.meta, 'lastSeq')).toBe('3');
    expect(await admin.xlen(`${keyPrefix}feed`)).toBe(feedBefore);
    await store.close();
  });

  it('accepts an append in time although the feed ids run ahead of the server clock (a clock stepped back)', async () => {
    const keyPrefix = freshPrefix('clock');
    const store = makeStore(prefixes, { keyPrefix, commandTimeoutMs: 1000 });
    const f = new EventFactory('clock');
    // A feed entry an hour ahead: every new feed id is at least that, far past any deadline.
    await admin.xadd(`${keyPrefix}feed`, `${Date.now() + 3_600_000}-0`, 'u', 'other', 's', '1', 'n', '1');
    await appendBatch(store, f, 2);
    await appendBatch(store, f, 1);
    expect((await collect(store.readEvents(f.upgradeId, 0))).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(await admin.xlen(`${keyPrefix}feed`)).toBe(3);
    await store.close();
  });

  it('rejects with STORE_UNAVAILABLE when Redis cannot be reached at all', async () => {
    const store = new RedisStore({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 200 });
    const f = new EventFactory('nowhere');
    const err = await errorOf(appendBatch(store, f, 1));
    expect(err.code).toBe('STORE_UNAVAILABLE');
    expect((await errorOf(store.load('nowhere'))).code).toBe('STORE_UNAVAILABLE');
    await store.close();
    expect((await errorOf(store.load('nowhere'))).code).toBe('CLOSED');
  });

  it('tells its URL without credentials, and refuses bad options', async () => {
    const store = new RedisStore({ url: 'redis://user:secret@127.0.0.1:1/2', commandTimeoutMs: 100 });
    const info = store.info();
    expect(info.url).toBe('redis://user:***@127.0.0.1:1/2');
    expect(JSON.stringify(info)).not.toContain('secret');
    expect(info).toMatchObject({ name: 'RedisStore', durable: true, mode: 'single', keyPrefix: 'progress:' });
    // Retention not set is null (kept for ever), as the README says; set, as given.
    expect(info.retention).toEqual({ ttlSeconds: null, maxEvents: null });
    expect(info.closed).toBe(false);
    await store.close();
    expect(store.info().closed).toBe(true);
    // The mode as given (the default for a plain client is 'single').
    const clustered = new RedisStore({ url: 'redis://127.0.0.1:1', mode: 'cluster' });
    expect(clustered.info().mode).toBe('cluster');
    await clustered.close();
    const kept = new RedisStore({ url: 'redis://127.0.0.1:1', retention: { ttlSeconds: 60, maxEvents: 5 } });
    expect(kept.info().retention).toEqual({ ttlSeconds: 60, maxEvents: 5 });
    await kept.close();
    expect(() => new RedisStore({ keyPrefix: 'a{b}' })).toThrow(/keyPrefix/);
    expect(() => new RedisStore({ snapshotEvery: 0 })).toThrow(/snapshotEvery/);
    expect(() => new RedisStore({ url: 'http://x' })).toThrow(/url/);
    // Every bad option is an INVALID_ARGUMENT from the constructor, not a TypeError later.
    const cluster = Object.assign(new Redis(redisUrl(), { lazyConnect: true }), { isCluster: true });
    const bad: unknown[] = [
      { url: 'redis://127.0.0.1:99999' },
      { commandTimeoutMs: 2 ** 31 },
      { watchBlockMs: 2 ** 31 },
      { redis: {} },
      { redis: cluster, mode: 'single' },
      { retention: 5 },
      { logger: {} },
      { logger: { debug() {}, info() {}, warn() {} } },
    ];
    for (const options of bad) expect(() => new RedisStore(options as never), JSON.stringify(options)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    cluster.disconnect();
  });
});

describe('RedisStore in cluster mode: the index and an upgrade created again meanwhile', () => {
  /** A store whose client runs `between` right before its next ZREM: another process's work in that window. */
  function hookedStore(keyPrefix: string, between: () => Promise<void>): RedisStore {
    const store = makeStore(prefixes, { keyPrefix, mode: 'cluster' });
    const client = store.client as Redis;
    const zrem = client.zrem.bind(client);
    (client as unknown as { zrem: (...args: unknown[]) => Promise<number> }).zrem = async (...args: unknown[]) => {
      await between();
      return (zrem as (...a: unknown[]) => Promise<number>)(...args);
    };
    return store;
  }

  it('delete() leaves listed an upgrade created again between its script and its index removal', async () => {
    const keyPrefix = freshPrefix('cluster-delete');
    const writer = makeStore(prefixes, { keyPrefix, mode: 'cluster' });
    let f = new EventFactory('again');
    await appendBatch(writer, f, 2);
    const deleter = hookedStore(keyPrefix, async () => {
      f = new EventFactory('again');
      await appendBatch(writer, f, 3);
    });
    expect(await deleter.delete('again')).toBe(true);
    expect((await writer.load('again'))?.lastSeq).toBe(3);
    expect((await writer.list()).map((r) => r.upgradeId)).toEqual(['again']);
    await deleter.close();
    await writer.close();
  });

  it('list() does not prune an upgrade created again between its check and its index removal', async () => {
    const keyPrefix = freshPrefix('cluster-prune');
    const writer = makeStore(prefixes, { keyPrefix, mode: 'cluster' });
    const f = new EventFactory('expired');
    await appendBatch(writer, f, 2);
    // Expired (retention): its keys go, its index entry stays behind for list() to prune.
    await admin.del(...Object.values(writer.keys.upgrade('expired')));
    const lister = hookedStore(keyPrefix, async () => {
      await appendBatch(writer, new EventFactory('expired'), 1);
    });
    expect(await lister.list()).toEqual([]);
    expect((await writer.list()).map((r) => r.upgradeId)).toEqual(['expired']);
    await lister.close();
    await writer.close();
  });
});

// Found on 2026-11-29 (review): in cluster mode delete() reported STORE_UNAVAILABLE when the index
// update that follows its script failed, although the script had deleted the upgrade; README: a
// delete reported failed has changed nothing.
describe('RedisStore in cluster mode: delete() and the index update after it', () => {
  it('reports a delete whose script ran as done though the index update after it fails, and list() drops the entry left behind', async () => {
    const proxy = await startRedisProxy(redisUrl());
    const store = makeStore(prefixes, { url: proxy.url, mode: 'cluster', commandTimeoutMs: 500 });
    const f = new EventFactory('deleted-unindexed');
    await appendBatch(store, f, 3);
    const keys = store.keys.upgrade(f.upgradeId);
    // The follow-up (index, feed) is sent as the append resolves: indexed once it has run.
    while ((await admin.zscore(store.keys.index, f.upgradeId)) === null) await new Promise((r) => setTimeout(r, 10));
    // A delete of another id first: the server clock is fresh, so the next delete sends its script first.
    expect(await store.delete('never-created')).toBe(false);
    proxy.holdAfterNextReply(); // the delete script's reply passes; the index update after it stalls
    expect(await store.delete(f.upgradeId)).toBe(true);
    expect(await admin.exists(keys.meta, keys.events, keys.snapshot)).toBe(0);
    expect(await admin.zscore(store.keys.index, f.upgradeId)).not.toBeNull(); // left behind
    const lister = makeStore(prefixes, { keyPrefix: store.keys.prefix, mode: 'cluster' });
    expect(await lister.list()).toEqual([]);
    expect(await admin.zscore(store.keys.index, f.upgradeId)).toBeNull();
    proxy.release();
    await lister.close();
    await store.close();
    await proxy.close();
  });
});

describe('RedisStore: readEvents across a delete', () => {
  it('ends with NOT_FOUND (reason deleted) when the upgrade is deleted, or deleted and created again, between two pages', async () => {
    for (const recreate of [false, true]) {
      const store = makeStore(prefixes, { pageSize: 1 });
      const old = new EventFactory('paged');
      for (let i = 0; i < 3; i++) await appendBatch(store, old, 1);
      const seen: string[] = [];
      const err = await errorOf(
        (async () => {
          for await (const ev of store.readEvents('paged', 0)) {
            seen.push(ev.eventId);
            if (seen.length > 1) continue;
            await store.delete('paged');
            if (recreate) {
              const fresh = new EventFactory('paged');
              for (let i = 0; i < 4; i++) await appendBatch(store, fresh, 1);
            }
          }
        })(),
      );
      expect(err.code).toBe('NOT_FOUND');
      expect(err.context).toMatchObject({ upgradeId: 'paged', reason: 'deleted', afterSeq: 1 });
      // Only the first page was handed out: nothing of the new upgrade followed it.
      expect(seen).toHaveLength(1);
      await store.close();
    }
  });

  // README, Reading: each page's XRANGE is written with a read of the epoch before and after it; the
  // same epoch on both sides means the page is of that upgrade, otherwise it is read again. Found on
  // 2026-12-02 (mutation testing): no test failed without that check, which handed out the deleted
  // upgrade's events as the first page of the one created again under its id.
  it('reads a page again when the upgrade was deleted and created again between its XRANGE and the epoch read after it', async () => {
    const writer = makeStore(prefixes);
    const client = new Redis(redisUrl());
    const reader = makeStore(prefixes, { redis: client, keyPrefix: writer.keys.prefix });
    const old = new EventFactory('page-recreated');
    try {
      await appendBatch(writer, old, 3);
      const { held, release } = holdMetaReadAfterPage(client);
      const reading = collect(reader.readEvents(old.upgradeId, 0));
      while (!held()) await new Promise((r) => setTimeout(r, 1));
      await client.ping(); // the page's XRANGE was answered: the old upgrade's events
      expect(await writer.delete(old.upgradeId)).toBe(true);
      const renewed = new EventFactory('page-recreated');
      const written = await appendBatch(writer, renewed, 3);
      release();
      expect((await reading).map((e) => e.eventId)).toEqual(written.map((e) => e.eventId));
    } finally {
      await reader.close();
      await writer.close();
      client.disconnect();
    }
  });
});

describe('RedisStore: list() and a damaged row', () => {
  it.each(['{}', '[]', '{"upgradeId":"someone-else","status":"running","updatedAt":"2026-01-01T00:00:00.000Z","lastSeq":1}'])(
    'refuses a row that is JSON but not this upgrade\'s row (%s) with DATA_CORRUPTED naming the key, rather than list it',
    async (row) => {
      const store = makeStore(prefixes);
      const f = new EventFactory('rowdy');
      await appendBatch(store, f, 2);
      const meta = store.keys.upgrade('rowdy').meta;
      await admin.hset(meta, 'row', row);
      const err = await errorOf(store.list());
      expect(err.code).toBe('DATA_CORRUPTED');
      expect(err.message).toContain(meta);
      await store.close();
    },
  );
});

describe('RedisStore: reads the store closes under', () => {
  it.each(['owned', 'passed in'] as const)('ends a readEvents iteration that goes on after close() with CLOSED (client %s)', async (kind) => {
    const client = kind === 'passed in' ? new Redis(redisUrl(), { maxRetriesPerRequest: null }) : undefined;
    const store = makeStore(prefixes, { pageSize: 1, ...(client ? { redis: client } : {}) });
    const f = new EventFactory('closing');
    for (let i = 0; i < 3; i++) await appendBatch(store, f, 1);
    const reading = store.readEvents(f.upgradeId, 0)[Symbol.asyncIterator]();
    expect((await reading.next()).value).toMatchObject({ seq: 1 });
    await store.close();
    // Not "Redis is unavailable" (an owned connection the store quit), nor more events (a client passed in, still open).
    expect((await errorOf(reading.next())).code).toBe('CLOSED');
    client?.disconnect();
  });

  it('fails a read that was waiting for the connection when close() came with CLOSED, not STORE_UNAVAILABLE', async () => {
    const store = makeStore(prefixes);
    // Issued before the connection is up: queued, then dropped by close().
    const listing = store.list();
    const deleting = store.delete('never-there');
    await store.close();
    expect((await errorOf(listing)).code).toBe('CLOSED');
    expect((await errorOf(deleting)).code).toBe('CLOSED');
  });

  // A delete whose script a client passed in holds to send again once it connects (close() does not
  // end that client) may still run: it is not reported CLOSED at close() (the upgrade was then deleted
  // all the same), but answered as before, by Redis or by its deadline.
  it('does not fail with CLOSED a delete() whose script a client passed in, waiting to reconnect, still holds: it is answered when the client sends it', async () => {
    const proxy = await startRedisProxy(redisUrl());
    const client = new Redis(proxy.url, { maxRetriesPerRequest: null });
    client.on('error', () => {});
    const store = makeStore(prefixes, { redis: client, commandTimeoutMs: 5000 });
    try {
      const f = new EventFactory('closing-held-delete');
      await appendBatch(store, f, 2); // connected, and the server clock read
      proxy.hold();
      const deleting = store.delete(f.upgradeId).then(
        (existed) => existed,
        (err: unknown) => err,
      );
      // The script is written (held by the proxy), then the connection is cut: ioredis keeps it to send again.
      await new Promise((r) => setTimeout(r, 50));
      const reconnecting = new Promise((r) => client.once('reconnecting', r));
      proxy.down(1);
      await reconnecting;
      await store.close();
      proxy.release();
      proxy.up();
      expect(await deleting).toBe(true);
      expect(await admin.exists(`${store.keys.prefix}{${f.upgradeId}}:meta`)).toBe(0);
    } finally {
      client.disconnect();
      await proxy.close();
    }
  });

  // README, close(): "waits for the appends in flight". Found on 2026-12-02 (mutation testing): no
  // test failed when it did not. An append still waiting for the server clock's first reading then
  // went out behind the QUIT and failed; and in cluster mode the index and feed writes that follow
  // an append's script would go out behind it: an upgrade stored but never listed, nor handed out
  // by watchAll().
  it.each(['single', 'cluster'] as const)('waits for an append in flight, and its index and feed writes, before it quits (%s mode)', async (mode) => {
    const store = makeStore(prefixes, { mode });
    const f = new EventFactory('closing-append');
    const appending = appendBatch(store, f, 2);
    await store.close();
    await appending;
    expect(await admin.zscore(store.keys.index, f.upgradeId)).not.toBeNull();
    expect((await admin.xrange(store.keys.feed, '-', '+')).map(([, fields]) => fields)).toEqual([['p', `1|2|${f.upgradeId}`]]);
  });

  // A delete() first reads the server clock (or waits for its cached offset), and list() reads the
  // rows after the index: their next command went out after close()'s QUIT, which Redis never ran,
  // and each failed with CLOSED although it was called first, on a connection that was up.
  it('finishes a delete(), a list() and a load() called before close() on a connected store, as it does an append', async () => {
    const store = makeStore(prefixes);
    const f = new EventFactory('closing-delete');
    await appendBatch(store, f, 3);
    const other = new EventFactory('closing-kept');
    await appendBatch(store, other, 2);
    const deleting = store.delete(f.upgradeId);
    const listing = store.list();
    const loading = store.load(other.upgradeId);
    await store.close();
    expect(await deleting).toBe(true);
    // (With or without the upgrade being deleted: the two race.)
    expect((await listing).map((row) => row.upgradeId)).toContain(other.upgradeId);
    expect((await loading)?.lastSeq).toBe(2);
    expect(await admin.exists(`${store.keys.prefix}{${f.upgradeId}}:meta`)).toBe(0);
    // Calls after close() are still refused.
    expect((await errorOf(store.delete(other.upgradeId))).code).toBe('CLOSED');
  });
});

describe('RedisStore: retention', () => {
  it('trims only events covered by the snapshot, and tells a reader of trimmed events so', async () => {
    const store = makeStore(prefixes, { snapshotEvery: 10, retention: { maxEvents: 5 } });
    const f = new EventFactory('trim');
    for (let i = 0; i < 8; i++) await appendBatch(store, f, 4);
    // 32 events; snapshot at 30; keep >= 5: events 1..27 trimmed.
    expect(await store.load(f.upgradeId)).toEqual(f.state);
    const kept = await collect(store.readEvents(f.upgradeId, 27));
    expect(kept.map((e) => e.seq)).toEqual([28, 29, 30, 31, 32]);
    const err = await errorOf(collect(store.readEvents(f.upgradeId, 3)));
    expect(err.code).toBe('NOT_FOUND');
    expect(err.context).toMatchObject({ reason: 'trimmed', upgradeId: 'trim', trimmedSeq: 27 });
    const watchErr = await errorOf(collect(store.watch(f.upgradeId, 0)));
    expect(watchErr.context.reason).toBe('trimmed');
    // Nothing after the snapshot is trimmed, however small maxEvents is.
    const g = new EventFactory('trim-2');
    const store2 = makeStore(prefixes, { snapshotEvery: 100, retention: { maxEvents: 1 } });
    // Five entries (found on 2026-12-02, mutation testing: in one entry, a trim past the snapshot,
    // cut = lastSeq - maxEvents, kept it whole, and no test failed).
    for (let i = 0; i < 5; i++) await appendBatch(store2, g, 10);
    expect((await collect(store2.readEvents(g.upgradeId, 0))).length).toBe(50);
    expect(await store2.load(g.upgradeId)).toEqual(g.state);
    // One event per entry: the entry ending exactly at the cut is covered whole, and goes too
    // (XTRIM MINID 0-<cut + 1>). Snapshot at 10, keep >= 5: at seq 15 the cut is 10, events 1..10 go.
    const h = new EventFactory('trim-3');
    for (let i = 0; i < 15; i++) await appendBatch(store, h, 1);
    expect((await collect(store.readEvents(h.upgradeId, 10))).map((e) => e.seq)).toEqual([11, 12, 13, 14, 15]);
    const edge = await errorOf(collect(store.readEvents(h.upgradeId, 9)));
    expect(edge.context).toMatchObject({ reason: 'trimmed', trimmedSeq: 10 });
    expect(await store.load(h.upgradeId)).toEqual(h.state);
    await store.close();
    await store2.close();
  });

  // A page's reads are written together but are not a transaction: Redis may run another client's
  // append between the XRANGE and the read of the trim mark after it (when they reach it in two reads
  // of the socket). Such an append that trims past the reader's seq must not make the page it read
  // before look trimmed.
  it('does not report as trimmed an empty page read just before an append that trimmed past it', async () => {
    const writer = makeStore(prefixes, { snapshotEvery: 5, retention: { maxEvents: 1 } });
    const client = new Redis(redisUrl());
    const reader = makeStore(prefixes, { redis: client, keyPrefix: writer.keys.prefix });
    const f = new EventFactory('trim-after-page');
    try {
      await appendBatch(writer, f, 2);
      const { held, release } = holdMetaReadAfterPage(client);
      const reading = collect(reader.readEvents(f.upgradeId, 2)).catch((err: unknown) => err);
      while (!held()) await new Promise((r) => setTimeout(r, 1));
      await client.ping(); // the page's XRANGE was answered: nothing after seq 2
      // Events 3-5, a snapshot at 5: the trim mark moves to min(5, 5 - 1) = 4, the entry of 1-2 goes.
      await appendBatch(writer, f, 3);
      release();
      expect(await reading).toEqual([]);
      expect((await collect(reader.readEvents(f.upgradeId, 2))).map((e) => e.seq)).toEqual([3, 4, 5]);
    } finally {
      await reader.close();
      await writer.close();
      client.disconnect();
    }
  });

  it('sets a TTL on every key of an upgrade once it is terminal, and list() forgets it when expired', async () => {
    const store = makeStore(prefixes, { snapshotEvery: 50, retention: { ttlSeconds: 1 } });
    const f = new EventFactory('ttl');
    await appendBatch(store, f, 5);
    const keys = store.keys.upgrade('ttl');
    expect(await admin.ttl(keys.events)).toBe(-1);
    const done = f.next('upgrade.completed', { status: 'completed' });
    await store.append('ttl', [done], 5, f.snapshot());
    for (const key of [keys.events, keys.meta, keys.snapshot]) {
      const ttl = await admin.pttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(1000);
    }
    expect((await store.list()).map((r) => r.upgradeId)).toEqual(['ttl']);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await store.list()).toEqual([]);
    expect(await admin.zcard(store.keys.index)).toBe(0);
    await store.close();
  });

  // Found on 2026-11-30 (review): list() sent every expired upgrade's id and meta key as the
  // arguments of one call (`progressPruneV1(...metas, ...gone)`): past ~60,000 of them (expired
  // since the last list()), that spread overflowed the JavaScript stack ("Maximum call stack size
  // exceeded", logged at debug), nothing was pruned, and since the index only grew from then on,
  // every later list() read them all again and failed the same way.
  it.each(['single', 'cluster'] as const)(
    'list() prunes the index entries of 100,000 expired upgrades (%s mode), not only a few',
    { timeout: 60_000 },
    async (mode) => {
      const store = makeStore(prefixes, { mode, commandTimeoutMs: 30_000 });
      const f = new EventFactory('kept');
      await appendBatch(store, f, 2);
      if (mode === 'cluster') while ((await admin.zscore(store.keys.index, f.upgradeId)) === null) await new Promise((r) => setTimeout(r, 10));
      const n = 100_000;
      for (let i = 0; i < n; i += 10_000) {
        const members: Array<string | number> = [];
        for (let j = i; j < i + 10_000; j++) members.push(j, `expired-${j}`);
        await admin.zadd(store.keys.index, ...members);
      }
      expect((await store.list()).map((r) => r.upgradeId)).toEqual(['kept']);
      expect(await admin.zrange(store.keys.index, 0, -1)).toEqual(['kept']);
      await store.close();
    },
  );

  it.each(['single', 'cluster'] as const)('list() prunes an index entry only while its upgrade is still gone (%s mode)', async (mode) => {
    const store = makeStore(prefixes, { mode });
    const f = new EventFactory('listed');
    await appendBatch(store, f, 2);
    if (mode === 'cluster') await new Promise((r) => setTimeout(r, 50)); // the index follow-up
    // 'gone-a' expired; 'back-b' has no row yet but its meta exists again (created anew while
    // list() ran): list() skips both, and prunes only the one still gone.
    await admin.zadd(store.keys.index, 1, 'gone-a', 2, 'back-b');
    await admin.hset(store.keys.upgrade('back-b').meta, 'lastSeq', '1');
    expect((await store.list()).map((r) => r.upgradeId)).toEqual(['listed']);
    expect(await admin.zrange(store.keys.index, 0, -1)).toEqual(['back-b', 'listed']);
    await store.close();
  });
});

describe('RedisStore: the database of the url', () => {
  const withDb = (db: string, query = false): string => {
    const url = new URL(redisUrl());
    if (query) url.searchParams.set('db', db);
    else url.pathname = `/${db}`;
    return url.toString();
  };

  it.each([
    ['abc', false],
    ['1x', false],
    ['0/', false],
    ['-1', true],
  ])('refuses a database that is not a whole number (%s) at construction', (db, query) => {
    expect(() => new RedisStore({ url: withDb(db, query) })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('a SELECT refused for another reason (Redis at maxclients) is not taken for a bad database: the store connects again', async () => {
    const proxy = await startRedisProxy(redisUrl());
    const keyPrefix = freshPrefix('db-busy');
    prefixes.add(keyPrefix);
    proxy.refuseNextConnection();
    const url = new URL(proxy.url);
    url.pathname = '/1';
    const store = new RedisStore({ url: url.toString(), keyPrefix, commandTimeoutMs: 5000 });
    const f = new EventFactory('u-db-busy');
    await appendBatch(store, f, 2);
    expect((await store.load('u-db-busy'))?.lastSeq).toBe(2);
    expect(proxy.connections).toBeGreaterThanOrEqual(2);
    const db1 = new Redis(url.toString().replace(proxy.url, redisUrl()));
    expect(await db1.keys(`${keyPrefix}*`)).not.toEqual([]);
    await deleteKeysWith(db1, keyPrefix);
    await db1.quit();
    await store.close();
    await proxy.close();
  });

  it('an ACL that denies SELECT is a refusal for good too (INVALID_ARGUMENT), not a reason to connect again and again', async () => {
    const { user, url } = await aclUser(admin, 'nosel', [...ALL_ACCESS, '-select'], withDb('1'));
    try {
      const keyPrefix = freshPrefix('db-acl');
      prefixes.add(keyPrefix);
      const store = new RedisStore({ url, keyPrefix, commandTimeoutMs: 2000 });
      expect(await errorOf(store.list())).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('NOPERM') });
      await store.close();
    } finally {
      await admin.call('ACL', 'DELUSER', user);
    }
  });

  /** How an iterator ends: 'done', or what its next() threw (values handed out before are skipped). */
  const endOf = async (it: AsyncIterator<unknown>): Promise<unknown> => {
    for (;;) {
      try {
        if ((await it.next()).done) return 'done';
      } catch (err) {
        return err;
      }
    }
  };

  it('a watcher whose connection Redis no longer lets select the database ends with INVALID_ARGUMENT, rather than follow database 0', async () => {
    const { user, url } = await aclUser(admin, 'nosel-w', ALL_ACCESS, withDb('1'));
    const db1 = new Redis(withDb('1'));
    const keyPrefix = freshPrefix('db-watch');
    try {
      const store = new RedisStore({ url, keyPrefix, commandTimeoutMs: 2000, watchBlockMs: 200 });
      const f = new EventFactory('u-dbw');
      await appendBatch(store, f, 2);
      const one = store.watch('u-dbw', 0)[Symbol.asyncIterator]();
      const all = store.watchAll()[Symbol.asyncIterator]();
      expect((await one.next()).value).toMatchObject({ seq: 1 });
      const fromAll = all.next();
      await appendBatch(store, f, 1);
      expect((await fromAll).value).toMatchObject({ seq: 3 });
      // What a Redis restarted with fewer databases answers too: every connection of the store
      // reconnects, and its SELECT is refused.
      await admin.call('ACL', 'SETUSER', user, '-select');
      await admin.call('CLIENT', 'KILL', 'USER', user);
      for (const ended of await Promise.all([endOf(one), endOf(all)])) {
        expect(ended).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('refused to select its database') });
      }
      expect(await errorOf(store.list())).toMatchObject({ code: 'INVALID_ARGUMENT' });
      await store.close();
    } finally {
      await admin.call('ACL', 'DELUSER', user);
      await deleteKeysWith(db1, keyPrefix);
      await db1.quit();
    }
  });

  it('a watcher whose credentials Redis refuses (its ACL user deleted) ends with STORE_UNAVAILABLE after commandTimeoutMs, rather than wait for good', async () => {
    const { user, url } = await aclUser(admin, 'gone-w');
    const keyPrefix = freshPrefix('auth-watch');
    prefixes.add(keyPrefix);
    const store = new RedisStore({ url, keyPrefix, commandTimeoutMs: 1500, watchBlockMs: 200 });
    try {
      const f = new EventFactory('u-authw');
      await appendBatch(store, f, 2);
      const one = store.watch('u-authw', 0)[Symbol.asyncIterator]();
      const all = store.watchAll()[Symbol.asyncIterator]();
      expect((await one.next()).value).toMatchObject({ seq: 1 });
      const fromAll = all.next();
      await appendBatch(store, f, 1);
      expect((await fromAll).value).toMatchObject({ seq: 3 });
      // Deleting the user closes its connections; every reconnect's AUTH is refused (WRONGPASS).
      await admin.call('ACL', 'DELUSER', user);
      for (const ended of await Promise.all([endOf(one), endOf(all)])) {
        expect(ended).toMatchObject({ code: 'STORE_UNAVAILABLE', message: expect.stringContaining('WRONGPASS') });
        expect((ended as Error).message).toContain('commandTimeoutMs');
        expect((ended as Error).message).not.toContain(':pw@');
      }
    } finally {
      await store.close();
    }
  }, 30_000);

  it('a watcher whose credentials are refused for less than commandTimeoutMs (a password put back) goes on, without a gap', async () => {
    const { user, url } = await aclUser(admin, 'rot-w');
    const keyPrefix = freshPrefix('auth-rot');
    prefixes.add(keyPrefix);
    const store = new RedisStore({ url, keyPrefix, commandTimeoutMs: 20_000, watchBlockMs: 200 });
    const writer = makeStore(prefixes, { keyPrefix });
    try {
      const f = new EventFactory('u-authr');
      await appendBatch(writer, f, 1);
      const one = store.watch('u-authr', 0)[Symbol.asyncIterator]();
      expect((await one.next()).value).toMatchObject({ seq: 1 });
      await admin.call('ACL', 'SETUSER', user, 'resetpass', '>other');
      await admin.call('CLIENT', 'KILL', 'USER', user);
      await appendBatch(writer, f, 2);
      // Refused a few times (ioredis reconnects after 50, 100, 150 ms...), then let in again.
      await pause(600);
      await admin.call('ACL', 'SETUSER', user, 'resetpass', '>pw');
      expect((await one.next()).value).toMatchObject({ seq: 2 });
      expect((await one.next()).value).toMatchObject({ seq: 3 });
      await one.return?.();
    } finally {
      await admin.call('ACL', 'DELUSER', user);
      await writer.close();
      await store.close();
    }
  }, 30_000);

  it('a database Redis refuses (out of range) fails every call with INVALID_ARGUMENT, and nothing reaches database 0', async () => {
    const keyPrefix = freshPrefix('db');
    prefixes.add(keyPrefix);
    // Redis' default is 16 databases; 9999 is refused by any usual configuration.
    const store = new RedisStore({ url: withDb('9999'), keyPrefix, commandTimeoutMs: 2000 });
    const f = new EventFactory('u-db');
    // Issued at once, while the connection is still being set up: these queue behind the SELECT.
    const append = errorOf(appendBatch(store, f, 1));
    const list = errorOf(store.list());
    expect(await append).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('refused to select its database') });
    expect(await list).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(await errorOf(store.load('u-db'))).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(await admin.keys(`${keyPrefix}*`)).toEqual([]);
    await store.close();
  });
});

describe('RedisStore: a password Redis refuses', () => {
  /** Every enumerable property of an error and its causes, as pino's error serializer prints them. */
  const serialized = (value: unknown): string =>
    JSON.stringify(value, (_key, v: unknown) => {
      if (!(v instanceof Error)) return v;
      const own: Record<string, unknown> = { message: v.message, stack: v.stack, cause: v.cause };
      for (const key of Object.keys(v)) own[key] = (v as unknown as Record<string, unknown>)[key];
      return own;
    });

  it('is in none of its errors (nor their causes) and none of its logs', async () => {
    const user = `auth-${Math.random().toString(36).slice(2, 8)}`;
    await admin.call('ACL', 'SETUSER', user, 'on', '>right-pw', '~*', '&*', '+@all');
    try {
      const logged: unknown[] = [];
      const record = (obj: object, msg?: string): void => void logged.push({ obj, msg });
      const url = new URL(redisUrl());
      url.username = user;
      url.password = 'Wr0ngSecretPw';
      const store = new RedisStore({ url: url.toString(), keyPrefix: freshPrefix('auth'), commandTimeoutMs: 1500, logger: { debug: record, info: record, warn: record, error: record } });
      const f = new EventFactory('u-auth');
      const errors = await Promise.all([errorOf(store.list()), errorOf(store.append('u-auth', f.batch(1), 0, f.snapshot())), errorOf(store.load('u-auth'))]);
      await store.close();
      // What Redis said reached the caller and the log (the proof that the refused AUTH was seen)...
      expect(serialized(errors) + serialized(logged)).toMatch(/WRONGPASS|invalid username-password/);
      // ...without the password.
      expect(serialized(errors)).not.toContain('Wr0ngSecretPw');
      expect(serialized(logged)).not.toContain('Wr0ngSecretPw');
    } finally {
      await admin.call('ACL', 'DELUSER', user);
    }
  });
});

// README, Failure semantics, Permissions: the commands it lists, or the categories it names, are
// all a Redis ACL user limited to the store's keys needs. Redis checks the commands a script runs
// too, so a list that leaves one out fails the append scripts in their middle.
describe('RedisStore: a Redis ACL user limited to its keyPrefix, with what the README says it needs', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const paragraph = /\*\*Permissions\.\*\*([\s\S]*?)(?=\n- \*\*)/.exec(readme)?.[1] ?? '';
  const [commandsPart, categoriesPart] = paragraph.split('the categories');
  const commands = [...(commandsPart ?? '').matchAll(/`([A-Z_]+(?:\s[A-Z]+)?)`/g)].map((m) => `+${m[1]!.toLowerCase().replace(/\s/, '|')}`);
  const categories = /`([+-]@[a-z]+(?:\s+[+-]@[a-z]+)*)`/.exec(categoriesPart ?? '')?.[1]?.split(/\s+/) ?? [];

  // Keyless commands no key pattern limits: granted to one tenant's user, they reach every tenant.
  // The categories the README gave (`+@read +@write +@scripting +@connection +@fast`) granted all
  // of these: FLUSHALL wiped every tenant's upgrades, CLIENT PAUSE stalled every client of the server.
  it.each([
    ['the commands', commands],
    ['the categories', categories],
  ] as const)('%s it lists grant none of the keyless commands that reach other tenants (FLUSHALL, SWAPDB, CLIENT KILL, ...)', async (_what, grants) => {
    const keyPrefix = freshPrefix('acl-keyless');
    const { user } = await scopedUser(keyPrefix, grants);
    try {
      for (const command of [['FLUSHALL'], ['FLUSHDB'], ['SWAPDB', '0', '1'], ['KEYS', '*'], ['CLIENT', 'KILL', 'ID', '1'], ['CLIENT', 'LIST'], ['CLIENT', 'PAUSE', '10'], ['CONFIG', 'SET', 'maxmemory', '1'], ['DEBUG', 'SLEEP', '0'], ['SHUTDOWN']]) {
        expect(await admin.call('ACL', 'DRYRUN', user, ...command), command.join(' ')).toMatch(/no permissions/);
      }
    } finally {
      await admin.call('ACL', 'DELUSER', user);
    }
  });

  it.each([
    ['the commands', 'single', commands],
    ['the commands', 'cluster', commands],
    ['the categories', 'single', categories],
  ] as const)('%s it lists (%s mode): appends with retention, load(), readEvents(), list(), delete(), watch() and watchAll() work', async (_what, mode, grants) => {
    expect(grants).toEqual(expect.arrayContaining(grants === commands ? ['+evalsha', '+hset', '+client|setname'] : ['+@scripting', '+@fast']));
    const keyPrefix = freshPrefix('acl');
    prefixes.add(keyPrefix);
    const { user, url } = await scopedUser(keyPrefix, grants);
    const store = new RedisStore({ url, keyPrefix, mode, commandTimeoutMs: 3000, watchBlockMs: 100, snapshotEvery: 2, retention: { maxEvents: 1, ttlSeconds: 60 } });
    const stop = new AbortController();
    try {
      const all: number[] = [];
      const following = (async () => {
        for await (const e of store.watchAll({ signal: stop.signal })) all.push(e.seq);
      })();
      await store.list(); // watchAll() reads its start first
      const f = new EventFactory('acl-u');
      for (let i = 0; i < 3; i++) await appendBatch(store, f, 2);
      await store.append(f.upgradeId, [f.next('upgrade.completed', { status: 'completed' })], 6, f.snapshot());
      expect(await store.load(f.upgradeId)).toEqual(f.state);
      expect((await errorOf(collect(store.readEvents(f.upgradeId, 0)))).context.reason).toBe('trimmed');
      // From seq 6 (kept: after the last snapshot), until the signal ends it.
      expect((await collect(store.watch(f.upgradeId, 6, { signal: AbortSignal.timeout(300) }))).map((e) => e.seq)).toEqual([7]);
      expect(await admin.ttl(store.keys.upgrade(f.upgradeId).events)).toBeGreaterThan(0);
      // list() drops the index entry of an upgrade that is gone (a script in single mode).
      await admin.zadd(store.keys.index, 1, 'gone');
      expect((await store.list()).map((r) => r.upgradeId)).toEqual([f.upgradeId]);
      expect(await admin.zscore(store.keys.index, 'gone')).toBeNull();
      while (!all.includes(7)) await new Promise((r) => setTimeout(r, 10));
      expect(await store.delete(f.upgradeId)).toBe(true);
      expect(await store.load(f.upgradeId)).toBeUndefined();
      stop.abort();
      await following;
    } finally {
      stop.abort();
      await store.close();
      await admin.call('ACL', 'DELUSER', user);
    }
  });
  // `replicas` sends WAIT after the script: a user granted the commands the README listed without it
  // had every append refused with NOPERM, never acknowledged, as if no replica were in step.
  it('the commands it lists run `replicas` (WAIT): an append with no replica in time is refused for the replicas, not by the ACL', async () => {
    const keyPrefix = freshPrefix('acl-wait');
    prefixes.add(keyPrefix);
    const { user, url } = await scopedUser(keyPrefix, commands);
    const store = new RedisStore({ url, keyPrefix, commandTimeoutMs: 3000, replicas: { count: 1, timeoutMs: 1 } });
    try {
      const f = new EventFactory('acl-wait-u');
      const err = await errorOf(store.append(f.upgradeId, f.batch(1), 0, f.snapshot()));
      expect(err.code).toBe('STORE_UNAVAILABLE');
      expect(err.message).not.toMatch(/NOPERM/);
      expect(err.context).toMatchObject({ reason: 'replicas', acked: 0 });
    } finally {
      await store.close();
      await admin.call('ACL', 'DELUSER', user);
    }
  });
});

// keyPrefix is for tenants: a Redis ACL user per tenant, limited to its store's keys. With the
// pattern the README gave (`~<prefix>*`), the user of prefix `a:` could read and write every key of
// the tenant `a:b:` (or `t1` those of `t10`): its pattern matches them.
describe('RedisStore: tenants whose prefixes start alike, each a Redis ACL user with the key patterns the README gives', () => {
  it.each([
    ['a:', 'a:b:'],
    ['t1', 't10'],
    ['t1', 't1:'],
  ])('the user of %s runs its store and cannot touch the keys of %s, nor the other way round', async (one, other) => {
    const base = freshPrefix('tenants');
    const grants = ['+@read', '+@write', '+@scripting', '+@connection', '+@fast'];
    const tenants = await Promise.all(
      [base + one, base + other].map(async (keyPrefix) => {
        prefixes.add(keyPrefix);
        const { user, url } = await scopedUser(keyPrefix, grants);
        return { user, url, keyPrefix, store: new RedisStore({ url, keyPrefix, commandTimeoutMs: 3000, watchBlockMs: 100, snapshotEvery: 2 }) };
      }),
    );
    try {
      for (const { store } of tenants) {
        const f = new EventFactory('same-id');
        await appendBatch(store, f, 3);
        expect(await store.load('same-id')).toEqual(f.state);
        expect((await store.list()).map((r) => r.upgradeId)).toEqual(['same-id']);
      }
      for (const [mine, theirs] of [tenants, [...tenants].reverse()] as const) {
        const raw = new Redis(mine!.url, { enableReadyCheck: false, maxRetriesPerRequest: 0 });
        try {
          const keys = theirs!.store.keys;
          for (const read of [() => raw.xrange(keys.upgrade('same-id').events, '-', '+'), () => raw.hgetall(keys.upgrade('same-id').meta), () => raw.zrange(keys.index, 0, -1), () => raw.xrange(keys.feed, '-', '+')]) {
            await expect(read()).rejects.toThrow(/NOPERM/);
          }
          await expect(raw.del(keys.upgrade('same-id').meta)).rejects.toThrow(/NOPERM/);
        } finally {
          raw.disconnect();
        }
      }
      expect(await tenants[0]!.store.delete('same-id')).toBe(true);
      expect((await tenants[1]!.store.list()).map((r) => r.upgradeId)).toEqual(['same-id']);
    } finally {
      for (const { store, user } of tenants) {
        await store.close();
        await admin.call('ACL', 'DELUSER', user);
      }
    }
  });
});

// A reader (a dashboard, a ws-server instance) needs no write access: Redis 7's read-only key
// patterns (`%R~`). load() ran its script with EVALSHA / EVAL, whose keys Redis counts as written
// whatever the script does ("no permissions to access one of the keys"): it failed for such a user.
describe('RedisStore: a reader whose Redis ACL user may only read the store\'s keys (%R~)', () => {
  it.each(['single', 'cluster'] as const)('load(), readEvents(), list(), watch() and watchAll() work (%s mode); writes are refused', async (mode) => {
    const keyPrefix = freshPrefix('acl-reader');
    prefixes.add(keyPrefix);
    const patterns = keyPatterns(keyPrefix).map((p) => `%R${p}`);
    const { user, url } = await aclUser(admin, 'reader', [...patterns, 'resetchannels', '+@read', '+@write', '+@scripting', '+@connection', '+@fast']);
    const writer = new RedisStore({ url: redisUrl(), keyPrefix, mode, snapshotEvery: 2 });
    const reader = new RedisStore({ url, keyPrefix, mode, commandTimeoutMs: 3000, watchBlockMs: 100 });
    const stop = new AbortController();
    try {
      const all: number[] = [];
      const following = (async () => {
        for await (const e of reader.watchAll({ signal: stop.signal })) all.push(e.seq);
      })();
      await reader.list();
      const f = new EventFactory('read-only');
      await appendBatch(writer, f, 2);
      await appendBatch(writer, f, 3);
      expect(await reader.load(f.upgradeId)).toEqual(f.state);
      // Redis lost the script (a restart, SCRIPT FLUSH): sent again as EVAL_RO, read-only too.
      await admin.script('FLUSH');
      expect(await reader.load(f.upgradeId)).toEqual(f.state);
      expect(await reader.load('absent')).toBeUndefined();
      expect((await collect(reader.readEvents(f.upgradeId, 1))).map((e) => e.seq)).toEqual([2, 3, 4, 5]);
      expect((await reader.list()).map((r) => r.upgradeId)).toEqual([f.upgradeId]);
      expect((await collect(reader.watch(f.upgradeId, 3, { signal: AbortSignal.timeout(300) }))).map((e) => e.seq)).toEqual([4, 5]);
      while (all.length < 5) await new Promise((r) => setTimeout(r, 10));
      expect(all).toEqual([1, 2, 3, 4, 5]);
      expect(await errorOf(reader.delete(f.upgradeId))).toMatchObject({ code: 'STORE_UNAVAILABLE', message: expect.stringContaining('NOPERM') });
      expect(await errorOf(appendBatch(reader, new EventFactory('by-reader'), 1))).toMatchObject({ code: 'STORE_UNAVAILABLE', message: expect.stringContaining('NOPERM') });
      expect(await writer.load(f.upgradeId)).toEqual(f.state);
      stop.abort();
      await following;
    } finally {
      stop.abort();
      await reader.close();
      await writer.close();
      await admin.call('ACL', 'DELUSER', user);
    }
  });
});

describe('RedisStore: a client passed in with a keyPrefix of its own, as a Redis ACL user limited to the patterns of info().keyPrefix', () => {
  it('appends, load(), list(), watch(), watchAll() and delete() work on the keys of both prefixes together', async () => {
    const outer = freshPrefix('outer');
    const keyPrefix = 'inner:';
    prefixes.add(outer);
    const { user, url } = await scopedUser(outer + keyPrefix, ['+@read', '+@write', '+@scripting', '+@connection', '+@fast']);
    const client = new Redis(url, { keyPrefix: outer, maxRetriesPerRequest: null, enableReadyCheck: false });
    const store = new RedisStore({ redis: client, keyPrefix, commandTimeoutMs: 3000, watchBlockMs: 100, snapshotEvery: 2 });
    const stop = new AbortController();
    try {
      expect(store.info().keyPrefix).toBe(outer + keyPrefix);
      const all: number[] = [];
      const following = (async () => {
        for await (const e of store.watchAll({ signal: stop.signal })) all.push(e.seq);
      })();
      await store.list();
      const f = new EventFactory('nested');
      await appendBatch(store, f, 2);
      await appendBatch(store, f, 3);
      expect(await store.load('nested')).toEqual(f.state);
      expect((await store.list()).map((r) => r.upgradeId)).toEqual(['nested']);
      expect((await collect(store.watch('nested', 0, { signal: AbortSignal.timeout(300) }))).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
      while (all.length < 5) await new Promise((r) => setTimeout(r, 10));
      expect(all).toEqual([1, 2, 3, 4, 5]);
      expect(await admin.exists(`${outer}${keyPrefix}{nested}:meta`)).toBe(1);
      expect(await store.delete('nested')).toBe(true);
      expect(await admin.exists(`${outer}${keyPrefix}{nested}:meta`, `${outer}${keyPrefix}{nested}:events`)).toBe(0);
      stop.abort();
      await following;
    } finally {
      stop.abort();
      await store.close();
      client.disconnect();
      await admin.call('ACL', 'DELUSER', user);
    }
  });
});

// Redis checks each command a script runs when it runs, so an ACL that leaves one out used to fail
// the scripts in their middle, keeping what they wrote before: a first append refused at its HSET
// left its entries without their meta (every later first append of the id: DATA_CORRUPTED), a
// delete refused at its ZREM or SET had deleted the upgrade (and, with the index first, one refused
// at its DEL would take it out of the index). Both now check first.
describe('RedisStore: a Redis ACL user missing a command the scripts run (Redis 7)', () => {
  const base = ['+evalsha', '+eval', '+time', '+xadd', '+xrange', '+xrevrange', '+xread', '+xdel', '+xtrim', '+hget', '+hmget', '+hset', '+exists', '+get', '+set', '+del', '+rename', '+expire', '+pexpire', '+pttl', '+persist', '+zadd', '+zrange', '+zrem', '+ping', '+client|setname', '+info'];

  it.each([
    ['single', '-hset'],
    ['single', '-zadd'],
    ['cluster', '-hset'],
    ['cluster', '-zadd'],
    // Read before anything is written, and by every later append (HMGET: each append of a store
    // that knows the upgrade's run, and every cluster-mode one): a first append stored without them
    // left an upgrade that no later append could write, refused without naming the command.
    ['single', '-hget'],
    ['single', '-hmget'],
    ['cluster', '-hget'],
    ['cluster', '-hmget'],
  ] as const)('refuses a first append (%s mode, %s) with NOPERM and writes nothing; with the grant, the same append is stored', async (mode, denied) => {
    const keyPrefix = freshPrefix('acl-missing');
    prefixes.add(keyPrefix);
    const { user, url } = await scopedUser(keyPrefix, [...base, denied]);
    const store = new RedisStore({ url, keyPrefix, mode, commandTimeoutMs: 3000 });
    try {
      const f = new EventFactory('acl-first');
      const events = f.batch(2);
      const err = await errorOf(store.append(f.upgradeId, events, 0, f.snapshot()));
      expect(err.code).toBe('STORE_UNAVAILABLE');
      const keys = store.keys.upgrade(f.upgradeId);
      expect(await admin.exists(keys.events, keys.meta, store.keys.feed)).toBe(0);
      expect(await admin.zscore(store.keys.index, f.upgradeId)).toBeNull();
      // Saying which command to grant (Redis 7.0's own refusal inside a script names none).
      expect(err.message).toContain(`NOPERM progress append: this Redis user may not run ${denied.slice(1).toUpperCase()}`);
      await admin.call('ACL', 'SETUSER', user, `+${denied.slice(1)}`);
      await store.append(f.upgradeId, events, 0, f.snapshot());
      expect(await store.load(f.upgradeId)).toEqual(f.state);
    } finally {
      await store.close();
      await admin.call('ACL', 'DELUSER', user);
    }
  });

  // load() is a script too: Redis 7.0 refused a command of it with "The user executing the script
  // can't run this command", naming none.
  it.each(['-hmget', '-get', '-xrange'])('refuses a load() whose command the ACL denies (%s) with NOPERM naming it', async (denied) => {
    const keyPrefix = freshPrefix('acl-load');
    prefixes.add(keyPrefix);
    const { user, url } = await scopedUser(keyPrefix, base);
    const store = new RedisStore({ url, keyPrefix, commandTimeoutMs: 3000, snapshotEvery: 2 });
    try {
      const f = new EventFactory('acl-load');
      await appendBatch(store, f, 3);
      await admin.call('ACL', 'SETUSER', user, denied);
      const err = await errorOf(store.load(f.upgradeId));
      expect(err.code).toBe('STORE_UNAVAILABLE');
      expect(err.message).toContain(`NOPERM progress load: this Redis user may not run ${denied.slice(1).toUpperCase()} on `);
      await admin.call('ACL', 'SETUSER', user, `+${denied.slice(1)}`);
      expect(await store.load(f.upgradeId)).toEqual(f.state);
    } finally {
      await store.close();
      await admin.call('ACL', 'DELUSER', user);
    }
  });

  // GET: the delete's first command (its marker), which ran before the check and failed with Redis
  // 7.0's message naming no command.
  it.each(['-del', '-get'])('refuses a delete whose command the ACL denies (%s) with NOPERM naming it, the upgrade still listed and whole', async (denied) => {
    const keyPrefix = freshPrefix('acl-delete');
    prefixes.add(keyPrefix);
    const { user, url } = await scopedUser(keyPrefix, base);
    const store = new RedisStore({ url, keyPrefix, commandTimeoutMs: 3000 });
    try {
      const f = new EventFactory('acl-delete');
      await appendBatch(store, f, 2);
      await admin.call('ACL', 'SETUSER', user, denied);
      const err = await errorOf(store.delete(f.upgradeId));
      expect(err.message).toContain(`NOPERM progress delete: this Redis user may not run ${denied.slice(1).toUpperCase()} on `);
      await admin.call('ACL', 'SETUSER', user, `+${denied.slice(1)}`);
      expect((await store.list()).map((r) => r.upgradeId)).toEqual([f.upgradeId]);
      expect(await store.load(f.upgradeId)).toEqual(f.state);
    } finally {
      await store.close();
      await admin.call('ACL', 'DELUSER', user);
    }
  });
});
