// RedisStore on a real Redis Cluster while the slot of an upgrade moves to another master
// (CLUSTER SETSLOT IMPORTING / MIGRATING, MIGRATE key by key, CLUSTER SETSLOT NODE), as a
// resharding does (`redis-cli --cluster reshard` moves a slot's keys a batch at a time, so one
// upgrade's keys may sit on both masters for a moment).
//
// Found on 2026-11-30 (review): watch() ended with NOT_FOUND "it was deleted or expired" while the
// upgrade's stream had moved and its meta not yet. Its read (XREAD with an HMGET of the meta, one
// Cluster pipeline) got ASK for the stream, and ioredis sent the whole pipeline to the target, where
// the meta was missing. The append sent meanwhile is answered TRYAGAIN (its keys on both sides) and
// ioredis sends it again until the keys have moved (up to `maxRedirections` times, 100 ms apart):
// it is stored once, with its staged snapshot (written on the target, by ASK).
//
// Found on 2026-12-01 (hunt): watch() and watchAll() ended with STORE_UNAVAILABLE "MOVED ..." when
// the slot they read moved again while their read, sent on to the target after an ASK, was blocked
// there (a resharding and a rebalance in a row; 1,000 appends with the upgrade's, the feed's and the
// index's slots moving back and forth ended both watchers after ~200 events). ioredis sends such a
// pipeline on with ASKING before each command, and does not follow a MOVED for a pipeline with
// another answer (ASKING's OK) in it: the watcher took the MOVED for a failure.
//
// Found on 2026-12-01 (hunt): readEvents() returned no events at all for an upgrade of five whose
// meta had moved and whose stream not yet (its page read, sent whole to the target by ASK, found
// the meta there and no stream), and a read of several pages that began while the stream had moved
// and the meta not (no epoch on its first page) ended with NOT_FOUND "deleted and created again"
// once the meta arrived. watchAll() reads the events of an upgrade it learns of the same way.
import { EventFactory } from '@progress/core/testing';
import type { ProgressEvent } from '@progress/core';
import { spawnSync } from 'node:child_process';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisCluster, type TestRedisCluster } from '../../../tools/test-utils/src/redis-cluster.js';
import { RedisStore } from '../src/index.js';
import { collect, freshPrefix, watchBoth } from './helpers.js';

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;
const describeCluster = describe.skipIf(!hasRedisServer);

let cluster: TestRedisCluster;
let admins: Redis[] = [];
const clients: Cluster[] = [];
const stores: RedisStore[] = [];

beforeAll(async () => {
  if (!hasRedisServer) return;
  cluster = await startRedisCluster(3);
  admins = cluster.nodes.map((n) => new Redis(n.port, n.host));
}, 60_000);

afterAll(async () => {
  for (const store of stores) await store.close();
  for (const client of clients) client.disconnect();
  for (const admin of admins) admin.disconnect();
  await cluster?.stop();
});

function clusterStore(keyPrefix: string, options: { snapshotEvery?: number; watchBlockMs?: number; pageSize?: number; commandTimeoutMs?: number } = {}, clusterOptions: { maxRedirections?: number } = {}): RedisStore {
  const client = new Cluster(cluster.nodes, { ...clusterOptions, redisOptions: { maxRetriesPerRequest: null } });
  clients.push(client);
  const store = new RedisStore({ redis: client, keyPrefix, ...options });
  stores.push(store);
  return store;
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How many times `admin`'s server answered an error (INFO errorstats), e.g. TRYAGAIN. */
async function errorCount(admin: Redis, error: string): Promise<number> {
  return Number(new RegExp(`errorstat_${error}:count=(\\d+)`).exec(String(await admin.info('errorstats')))?.[1] ?? 0);
}

/** How many times `admin`'s server ran a command (INFO commandstats; a script's calls count too). */
async function callCount(admin: Redis, command: string): Promise<number> {
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(String(await admin.info('commandstats')))?.[1] ?? 0);
}

/** The master (index in `cluster.nodes`) that serves `slot`, as master `via` sees it. */
async function ownerOfSlot(slot: number, via = 0): Promise<number> {
  const slots = (await admins[via]!.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>;
  const port = slots.find(([from, to]) => from <= slot && slot <= to)![2][1];
  return cluster.nodes.findIndex((n) => n.port === port);
}

/** Starts moving `slot` to master `dst` and moves all its keys (the slot stays MIGRATING / IMPORTING); returns its source. */
async function beginMove(slot: number, dst: number): Promise<number> {
  const ids = await Promise.all(admins.map(async (a) => String(await a.call('CLUSTER', 'MYID'))));
  // The owner by its own word (an instant after a move, another master's view may lag behind).
  let src = -1;
  for (let tries = 0; src < 0; tries++) {
    const owner = await ownerOfSlot(slot);
    if ((await ownerOfSlot(slot, owner)) === owner) src = owner;
    else if (tries > 100) throw new Error(`no master owns slot ${slot}`);
    else await pause(20);
  }
  await admins[dst]!.call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', ids[src]!);
  await admins[src]!.call('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', ids[dst]!);
  for (;;) {
    const keys = (await admins[src]!.call('CLUSTER', 'GETKEYSINSLOT', String(slot), '2')) as string[];
    if (keys.length === 0) return src;
    await admins[src]!.call('MIGRATE', '127.0.0.1', String(cluster.nodes[dst]!.port), '', '0', '5000', 'KEYS', ...keys);
  }
}

/** Ends the move of `slot` from `src` to `dst` (CLUSTER SETSLOT NODE on every master, the target first). */
async function endMove(slot: number, src: number, dst: number): Promise<void> {
  const id = String(await admins[dst]!.call('CLUSTER', 'MYID'));
  for (const i of [dst, src, ...[0, 1, 2].filter((k) => k !== src && k !== dst)]) await admins[i]!.call('CLUSTER', 'SETSLOT', String(slot), 'NODE', id);
  // Every master agrees (as redis-cli waits for): the next move starts from the right one.
  await until(`every master to see slot ${slot} on master ${dst}`, async () => (await Promise.all([0, 1, 2].map((i) => ownerOfSlot(slot, i)))).every((o) => o === dst));
}

/** Moves `slot` to master `dst`, two keys at a time, as `redis-cli --cluster reshard` does. */
async function moveSlot(slot: number, dst: number): Promise<void> {
  if ((await ownerOfSlot(slot)) === dst) return;
  await endMove(slot, await beginMove(slot, dst), dst);
}

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await Promise.resolve().then(check).catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pause(10);
  }
}

describeCluster('RedisStore while the slot of an upgrade moves to another master', () => {
  it('an append sent while its keys are half moved is stored once when the move completes; watch() and watchAll() follow across', async () => {
    const prefix = freshPrefix('reshard');
    const writer = clusterStore(prefix, { snapshotEvery: 4 }, { maxRedirections: 100 });
    const reader = clusterStore(prefix, { watchBlockMs: 200 });
    await reader.list();
    const f = new EventFactory('moving');
    const keys = writer.keys.upgrade(f.upgradeId);
    const both = watchBoth(reader, f.upgradeId);
    const { watched, followed, errors } = both;
    const acked: ProgressEvent[] = [];
    const append = async (n: number): Promise<void> => {
      const expected = f.lastSeq;
      const events = f.batch(n);
      await writer.append(f.upgradeId, events, expected, f.snapshot());
      acked.push(...events);
    };
    await append(4); // seqs 1-4, with a snapshot
    const slot = Number(await admins[0]!.call('CLUSTER', 'KEYSLOT', keys.events));
    const ids = await Promise.all(admins.map(async (a) => String(await a.call('CLUSTER', 'MYID'))));
    const src = (await Promise.all(admins.map(async (a) => Number(await a.call('CLUSTER', 'COUNTKEYSINSLOT', String(slot)))))).findIndex((n) => n > 0);
    const dst = (src + 1) % admins.length;
    const migrate = (key: string) => admins[src]!.call('MIGRATE', '127.0.0.1', String(cluster.nodes[dst]!.port), '', '0', '5000', 'KEYS', key);
    await admins[dst]!.call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', ids[src]!);
    await admins[src]!.call('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', ids[dst]!);
    await append(1); // seq 5: every key still on the source
    await until('both watchers to hand out seqs 1-5', () => errors.length > 0 || (watched.length >= 5 && followed.length >= 5));
    // The stream moves first: the next append's script finds one of its keys on each side, and
    // watch()'s next read (XREAD and HMGET of the meta) goes to the target (ASK), without the meta.
    const metaReads = await callCount(admins[dst]!, 'hmget');
    await migrate(keys.events);
    const refused = await errorCount(admins[src]!, 'TRYAGAIN');
    let stored = false;
    const halfway = append(3).then(() => void (stored = true)); // seqs 6-8, with a snapshot (staged on the target, by ASK)
    await until('the source to answer the append TRYAGAIN', async () => (await errorCount(admins[src]!, 'TRYAGAIN')) > refused);
    await until("watch() to read the half moved slot on the target", async () => (await callCount(admins[dst]!, 'hmget')) > metaReads);
    expect(stored).toBe(false);
    await migrate(keys.meta);
    await migrate(keys.snapshot);
    await halfway;
    for (const i of [dst, src, ...[0, 1, 2].filter((k) => k !== src && k !== dst)]) await admins[i]!.call('CLUSTER', 'SETSLOT', String(slot), 'NODE', ids[dst]!);
    await append(2); // seqs 9-10, on the target (MOVED)
    await until('both watchers to hand out seqs 1-10', () => errors.length > 0 || (watched.length >= 10 && followed.length >= 10));
    await both.stop();
    const log: ProgressEvent[] = [];
    for await (const e of writer.readEvents(f.upgradeId, 0)) log.push(e);
    expect(log.map((e) => e.eventId)).toEqual(acked.map((e) => e.eventId));
    expect(log.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // The snapshot of seq 8, staged on the target while the stream had moved, landed with its append.
    expect(await admins[dst]!.hmget(keys.meta, 'lastSeq', 'snapSeq')).toEqual(['10', '8']);
    expect((await writer.load(f.upgradeId))?.lastSeq).toBe(10);
    expect(errors).toEqual([]);
    expect(watched.map((e) => e.eventId)).toEqual(acked.map((e) => e.eventId));
    expect(followed.map((e) => e.eventId)).toEqual(acked.map((e) => e.eventId));
  }, 30_000);

  it('a read sent on to the target after an ASK, blocked there when the slot moves on again: watch() and watchAll() read again', async () => {
    const prefix = freshPrefix('reshard-twice');
    const writer = clusterStore(prefix);
    const reader = clusterStore(prefix, { watchBlockMs: 1000 });
    await reader.list();
    const f = new EventFactory('moving-twice');
    const slot = Number(await admins[0]!.call('CLUSTER', 'KEYSLOT', writer.keys.upgrade(f.upgradeId).events));
    const feedSlot = Number(await admins[0]!.call('CLUSTER', 'KEYSLOT', writer.keys.feed));
    const acked: ProgressEvent[] = [];
    const append = async (n: number): Promise<void> => {
      const expected = f.lastSeq;
      const events = f.batch(n);
      await writer.append(f.upgradeId, events, expected, f.snapshot());
      acked.push(...events);
    };
    const both = watchBoth(reader, f.upgradeId);
    const { watched, followed, errors } = both;
    await pause(200);
    await append(3);
    await until('both watchers to hand out seqs 1-3', () => errors.length > 0 || (watched.length >= 3 && followed.length >= 3));
    // Every key of both slots moves, the slots stay MIGRATING: the watchers' reads blocked on the
    // sources end (watchBlockMs), their next ones are answered ASK and block on the targets.
    const [a, b] = [await ownerOfSlot(slot), await ownerOfSlot(feedSlot)];
    const [ta, tb] = [(a + 1) % 3, (b + 1) % 3];
    const asked = await Promise.all(admins.map((admin) => callCount(admin, 'asking')));
    await beginMove(slot, ta);
    await beginMove(feedSlot, tb);
    const askedAgain = async (i: number, n: number) => (await callCount(admins[i]!, 'asking')) >= asked[i]! + n;
    await until('both watchers to read on the targets (ASKING)', async () => (ta === tb ? await askedAgain(ta, 4) : (await askedAgain(ta, 2)) && (await askedAgain(tb, 2))));
    await endMove(slot, a, ta);
    await endMove(feedSlot, b, tb);
    // The slots move on while those reads block: the targets answer them MOVED.
    await moveSlot(slot, (a + 2) % 3);
    await moveSlot(feedSlot, (b + 2) % 3);
    await append(2);
    await until('both watchers to hand out seqs 1-5', () => errors.length > 0 || (watched.length >= 5 && followed.length >= 5));
    await both.stop();
    expect(errors).toEqual([]);
    expect(watched.map((e) => e.eventId)).toEqual(acked.map((e) => e.eventId));
    expect(followed.map((e) => e.eventId)).toEqual(acked.map((e) => e.eventId));
  }, 30_000);

  it('1,000 events appended while the slots of the upgrade, the feed and the index move round the masters: each stored once, in order, and handed out once by watch() and watchAll()', async () => {
    const prefix = freshPrefix('reshard-load');
    const writer = clusterStore(prefix, { snapshotEvery: 50 });
    const reader = clusterStore(prefix, { watchBlockMs: 300 });
    await reader.list();
    const f = new EventFactory('moving-round');
    const slot = Number(await admins[0]!.call('CLUSTER', 'KEYSLOT', writer.keys.upgrade(f.upgradeId).events));
    const feedSlot = Number(await admins[0]!.call('CLUSTER', 'KEYSLOT', writer.keys.feed));
    const indexSlot = Number(await admins[0]!.call('CLUSTER', 'KEYSLOT', writer.keys.index));
    const both = watchBoth(reader, f.upgradeId);
    const { watched, followed, errors } = both;
    const acked: ProgressEvent[] = [];
    const failures: string[] = [];
    await pause(100);
    const writes = (async () => {
      while (acked.length < 1000) {
        const expected = f.lastSeq;
        const events = f.batch(Math.min(1 + (expected % 4), 1000 - acked.length));
        await writer.append(f.upgradeId, events, expected, f.snapshot()).catch((e: Error & { code?: string }) => {
          failures.push(`${e.code} ${e.message}`);
          throw e;
        });
        acked.push(...events);
      }
    })();
    let writing = true;
    void writes.finally(() => (writing = false)).catch(() => {});
    let moves = 0;
    while (writing) {
      await moveSlot(slot, moves % 3);
      await moveSlot(feedSlot, (moves + 1) % 3);
      await moveSlot(indexSlot, (moves + 2) % 3);
      moves++;
      await pause(100);
    }
    await writes;
    await until('both watchers to hand out 1,000 events', () => errors.length > 0 || (watched.length >= 1000 && followed.length >= 1000));
    await both.stop();
    expect(moves).toBeGreaterThan(1);
    expect(failures).toEqual([]);
    const stored: ProgressEvent[] = [];
    for await (const e of writer.readEvents(f.upgradeId, 0)) stored.push(e);
    expect(stored.map((e) => e.eventId)).toEqual(acked.map((e) => e.eventId));
    expect(stored.map((e) => e.seq)).toEqual(acked.map((_, i) => i + 1));
    expect(errors).toEqual([]);
    expect(watched.map((e) => e.eventId)).toEqual(acked.map((e) => e.eventId));
    expect(followed.map((e) => e.eventId)).toEqual(acked.map((e) => e.eventId));
    expect((await writer.load(f.upgradeId))?.lastSeq).toBe(1000);
    expect((await writer.list()).map((r) => r.upgradeId)).toEqual([f.upgradeId]);
  }, 60_000);

  it.each(['meta', 'events'] as const)('readEvents(), load(), list() and delete() while the %s of an upgrade moved to the new master before its other keys', async (first) => {
    const prefix = freshPrefix('reshard-reads');
    const store = clusterStore(prefix, { snapshotEvery: 4 });
    const paged = clusterStore(prefix, { pageSize: 2 });
    const upgrades = ['a', 'b', 'c'].map((x) => new EventFactory(`half-${first}-${x}`));
    // Five entries each (one append an event): the paged read takes three pages.
    for (const u of upgrades) for (let seq = 0; seq < 5; seq++) await store.append(u.upgradeId, u.batch(1), seq, u.snapshot());
    const f = upgrades[0]!;
    const keys = store.keys.upgrade(f.upgradeId);
    const slot = Number(await admins[0]!.call('CLUSTER', 'KEYSLOT', keys.events));
    const ids = await Promise.all(admins.map(async (a) => String(await a.call('CLUSTER', 'MYID'))));
    const src = await ownerOfSlot(slot);
    const dst = (src + 1) % admins.length;
    const migrate = (key: string) => admins[src]!.call('MIGRATE', '127.0.0.1', String(cluster.nodes[dst]!.port), '', '0', '5000', 'KEYS', key);
    await admins[dst]!.call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', ids[src]!);
    await admins[src]!.call('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', ids[dst]!);
    await migrate(keys[first]);
    const settled = <T>(p: Promise<T>): Promise<T | string> => p.catch((e: Error & { code?: string }) => `${e.code} ${e.message}`);
    const read = settled(collect(store.readEvents(f.upgradeId, 0)).then((events) => events.map((e) => e.seq)));
    const loaded = settled(store.load(f.upgradeId).then((s) => s?.lastSeq));
    const listed = settled(store.list().then((rows) => rows.map((r) => r.upgradeId)));
    // A read of several pages: its first page asked for now, the others once the move is over.
    const pages = paged.readEvents(f.upgradeId, 0)[Symbol.asyncIterator]();
    const firstPage = pages.next();
    await pause(300);
    await migrate(keys.meta === keys[first] ? keys.events : keys.meta);
    await migrate(keys.snapshot);
    for (const i of [dst, src, ...[0, 1, 2].filter((k) => k !== src && k !== dst)]) await admins[i]!.call('CLUSTER', 'SETSLOT', String(slot), 'NODE', ids[dst]!);
    const seqs = await settled(
      (async () => {
        const out = [((await firstPage).value as ProgressEvent | undefined)?.seq];
        for (let n = await pages.next(); !n.done; n = await pages.next()) out.push(n.value.seq);
        return out;
      })(),
    );
    expect(await read).toEqual([1, 2, 3, 4, 5]);
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
    expect(await loaded).toBe(5);
    expect(((await listed) as string[]).sort()).toEqual(upgrades.map((u) => u.upgradeId).sort());
    // A delete sent while the keys sit on both masters: TRYAGAIN until they have moved, then done.
    await admins[src]!.call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', ids[dst]!);
    await admins[dst]!.call('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', ids[src]!);
    await admins[dst]!.call('MIGRATE', '127.0.0.1', String(cluster.nodes[src]!.port), '', '0', '5000', 'KEYS', keys.events);
    const deleted = settled(store.delete(f.upgradeId));
    await pause(300);
    await admins[dst]!.call('MIGRATE', '127.0.0.1', String(cluster.nodes[src]!.port), '', '0', '5000', 'KEYS', keys.meta, keys.snapshot);
    for (const i of [src, dst, ...[0, 1, 2].filter((k) => k !== src && k !== dst)]) await admins[i]!.call('CLUSTER', 'SETSLOT', String(slot), 'NODE', ids[src]!);
    expect(await deleted).toBe(true);
    expect(await store.load(f.upgradeId)).toBeUndefined();
    expect((await store.list()).map((r) => r.upgradeId).sort()).toEqual(upgrades.slice(1).map((u) => u.upgradeId).sort());
  }, 30_000);

  // Found on 2026-12-01 (review): the check for a stream that lost its tail (no entry past the
  // watched seq while the meta is past it) took a slot half moved for one: with the meta moved and
  // the stream not, the watcher's read (XREAD and the meta's HMGET) got ASK for the meta, and ioredis
  // sent it whole to the target, where XREAD blocked on no stream and the meta was past the watched
  // seq. A resharding whose meta and stream move in different batches (or one paused half way)
  // ended watch() with DATA_CORRUPTED "entries were lost", though nothing was.
  it('watch() of an upgrade whose meta moved before its stream, for longer than watchBlockMs, waits for the move rather than report lost entries', async () => {
    const prefix = freshPrefix('reshard-meta-first');
    const writer = clusterStore(prefix);
    const reader = clusterStore(prefix, { watchBlockMs: 200 });
    const f = new EventFactory('meta-first');
    for (let seq = 0; seq < 3; seq++) await writer.append(f.upgradeId, f.batch(1), seq, f.snapshot());
    const keys = writer.keys.upgrade(f.upgradeId);
    const slot = Number(await admins[0]!.call('CLUSTER', 'KEYSLOT', keys.events));
    const ids = await Promise.all(admins.map(async (a) => String(await a.call('CLUSTER', 'MYID'))));
    const src = await ownerOfSlot(slot);
    const dst = (src + 1) % admins.length;
    const migrate = (...moved: string[]) => admins[src]!.call('MIGRATE', '127.0.0.1', String(cluster.nodes[dst]!.port), '', '0', '5000', 'KEYS', ...moved);
    await admins[dst]!.call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', ids[src]!);
    await admins[src]!.call('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', ids[dst]!);
    await migrate(keys.meta);
    const controller = new AbortController();
    const watched: number[] = [];
    const errors: string[] = [];
    const watching = (async () => {
      for await (const e of reader.watch(f.upgradeId, 0, { signal: controller.signal })) watched.push(e.seq);
    })().catch((e: Error & { code?: string }) => errors.push(`${e.code} ${e.message}`));
    // Several of its reads (watchBlockMs 200) while the slot stays half moved.
    await pause(1500);
    expect(errors).toEqual([]);
    await migrate(keys.events, keys.snapshot);
    for (const i of [dst, src, ...[0, 1, 2].filter((k) => k !== src && k !== dst)]) await admins[i]!.call('CLUSTER', 'SETSLOT', String(slot), 'NODE', ids[dst]!);
    await until('watch() to hand out seqs 1-3', () => errors.length > 0 || watched.length >= 3);
    controller.abort();
    await watching;
    expect(errors).toEqual([]);
    expect(watched).toEqual([1, 2, 3]);
    // A stream lost for real (deleted by hand) is still told, on a Cluster too.
    await admins[dst]!.del(keys.events);
    const lost = await (async () => {
      for await (const e of reader.watch(f.upgradeId, 0, { signal: AbortSignal.timeout(20_000) })) void e;
    })().then(
      () => 'ended',
      (e: Error & { code?: string }) => `${e.code} ${e.message}`,
    );
    expect(lost).toMatch(/^DATA_CORRUPTED .*lastSeq 3: entries were lost/);
  }, 30_000);

  // Found on 2026-12-01 (review): readEvents() reads a page that finds the meta without the stream
  // again for up to commandTimeoutMs; past that, the check for a stream that lost its tail took the
  // slot half moved for lost entries, and answered DATA_CORRUPTED "entries were lost, evicted or
  // deleted", whose way out the README gives as delete(): an operator would delete an upgrade whose
  // events sat whole on the other master of a resharding paused half way.
  it('readEvents() of an upgrade whose meta moved before its stream, for longer than commandTimeoutMs, fails with STORE_UNAVAILABLE, not as lost entries', async () => {
    const prefix = freshPrefix('reshard-stuck');
    const writer = clusterStore(prefix);
    const reader = clusterStore(prefix, { commandTimeoutMs: 500 });
    const f = new EventFactory('stuck-half-moved');
    for (let seq = 0; seq < 3; seq++) await writer.append(f.upgradeId, f.batch(1), seq, f.snapshot());
    const keys = writer.keys.upgrade(f.upgradeId);
    const slot = Number(await admins[0]!.call('CLUSTER', 'KEYSLOT', keys.events));
    const ids = await Promise.all(admins.map(async (a) => String(await a.call('CLUSTER', 'MYID'))));
    const src = await ownerOfSlot(slot);
    const dst = (src + 1) % admins.length;
    const migrate = (...moved: string[]) => admins[src]!.call('MIGRATE', '127.0.0.1', String(cluster.nodes[dst]!.port), '', '0', '5000', 'KEYS', ...moved);
    await admins[dst]!.call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', ids[src]!);
    await admins[src]!.call('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', ids[dst]!);
    await migrate(keys.meta);
    const err = await collect(reader.readEvents(f.upgradeId, 0)).then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    expect(err?.code).toBe('STORE_UNAVAILABLE');
    expect(err?.message).toMatch(/two masters/);
    // A timeout, as a stall is: watchAll() waits it out and reads again.
    expect((err as { context?: { reason?: string } } | undefined)?.context?.reason).toBe('timeout');
    await migrate(keys.events, keys.snapshot);
    for (const i of [dst, src, ...[0, 1, 2].filter((k) => k !== src && k !== dst)]) await admins[i]!.call('CLUSTER', 'SETSLOT', String(slot), 'NODE', ids[dst]!);
    expect((await collect(reader.readEvents(f.upgradeId, 0))).map((e) => e.seq)).toEqual([1, 2, 3]);
    // A stream lost for real is still told, on a Cluster too (after the reads again).
    await admins[dst]!.del(keys.events);
    const lost = await collect(reader.readEvents(f.upgradeId, 0)).then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    expect(lost?.code).toBe('DATA_CORRUPTED');
  }, 30_000);

  it('readEvents() of an upgrade whose meta has no epoch (written before epochs existed) reads it in one page, not taken for a half moved slot', async () => {
    const store = clusterStore(freshPrefix('reshard-legacy'), { pageSize: 10 });
    const f = new EventFactory('before-epochs');
    await store.append(f.upgradeId, f.batch(3), 0, f.snapshot());
    const keys = store.keys.upgrade(f.upgradeId);
    const owner = admins[await ownerOfSlot(Number(await admins[0]!.call('CLUSTER', 'KEYSLOT', keys.meta)))]!;
    await owner.hdel(keys.meta, 'epoch');
    const pages = await callCount(owner, 'xrange');
    expect((await collect(store.readEvents(f.upgradeId, 0))).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect((await callCount(owner, 'xrange')) - pages).toBe(1);
  }, 30_000);
});
