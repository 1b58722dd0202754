// RedisStore.watchAll() on a real Redis Cluster (three masters, a replica each) whose master fails
// over after acknowledging appends its replica never got.
//
// Found on 2026-11-30 (review): with the feed's slot on another master than the upgrade's (so the
// feed keeps the entries of the lost appends), watchAll() handed out the lost seqs 5-6, then the
// new history's 7-8 as their continuation, and never the new 5-6, silently. watch() ends with
// NOT_FOUND there; watchAll() (which never ends for one upgrade: see the README) must hand out the
// upgrade's history as it is now, from seq 1, as for an upgrade deleted and created again. In
// single-node mode the feed entry it read last is lost with the appends, and it ends (checked too).
import { EventFactory } from '@progress/core/testing';
import { isProgressError, type ProgressEvent } from '@progress/core';
import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type TestRedis } from '../../../tools/test-utils/src/redis.js';
import { RedisStore } from '../src/index.js';
import { replicatedCluster } from './cluster-replicas.js';
import { freshPrefix, pause, until } from './helpers.js';

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;
const describeCluster = describe.skipIf(!hasRedisServer);

const rc = replicatedCluster();
const { clusterStore, ownerOf } = rc;
/** Single-node mode: a master and the replica promoted in its place, and what the tests made on them. */
let pair: TestRedis[] = [];
const admins: Redis[] = [];
const stores: RedisStore[] = [];

beforeAll(async () => {
  if (!hasRedisServer) return;
  pair = await Promise.all([startRedisServer(), startRedisServer()]);
  await rc.start();
}, 60_000);

afterAll(async () => {
  for (const store of stores) await store.close();
  for (const admin of admins) admin.disconnect();
  await Promise.all(pair.map((s) => s.stop()));
  await rc.stop();
});

describeCluster('RedisStore.watchAll() across a Cluster failover that lost acknowledged appends', () => {
  it("hands out the upgrade's new history from seq 1 rather than go on past events the promoted replica never got (feed on another master)", async () => {
    // Three upgrades on one master, the feed on another (which survives the failover): the next
    // writer writes seqs 5-6 of `staged` alone first (a feed entry that points only at seqs handed
    // out already), seqs 5-8 of `whole` in one append (an entry that goes past them), and seq 5 of
    // `short` alone first (a history shorter than the one handed out: nothing at seq 6 to compare).
    let prefix = '';
    let writer: RedisStore;
    const ids = { staged: 'lossy-staged', whole: '', short: '' };
    let owner: number;
    for (;;) {
      prefix = freshPrefix('cluster-lossy-all');
      writer = clusterStore(prefix);
      owner = await ownerOf(writer.keys.upgrade(ids.staged).events);
      if ((await ownerOf(writer.keys.feed)) !== owner) break;
    }
    for (const name of ['whole', 'short'] as const) {
      for (let i = 0; ; i++) {
        ids[name] = `lossy-${name}-${i}`;
        if ((await ownerOf(writer.keys.upgrade(ids[name]).events)) === owner) break;
      }
    }
    const reader = clusterStore(prefix, { watchBlockMs: 500 });
    await reader.list();
    const it = reader.watchAll()[Symbol.asyncIterator]();
    const f = { staged: new EventFactory(ids.staged), whole: new EventFactory(ids.whole), short: new EventFactory(ids.short) };
    for (const u of [f.staged, f.whole, f.short]) await writer.append(u.upgradeId, u.batch(4), 0, u.snapshot());
    const meta = (u: EventFactory): string => writer.keys.upgrade(u.upgradeId).meta;
    // The replica stops copying its master once it holds seqs 1-4: seqs 5-6 are acknowledged by the
    // master only (their feed entries are on another master, in step with its replica).
    const other = { staged: new EventFactory(ids.staged), whole: new EventFactory(ids.whole), short: new EventFactory(ids.short) };
    for (const name of ['staged', 'whole', 'short'] as const) other[name].state = f[name].snapshot();
    await rc.detach(owner, {
      what: 'the replica to hold seqs 1-4',
      check: async (replica) => (await Promise.all([f.staged, f.whole, f.short].map((u) => replica.hget(meta(u), 'lastSeq')))).every((s) => s === '4'),
    });
    const lost = [...f.staged.batch(2), ...f.whole.batch(2), ...f.short.batch(2)];
    await writer.append(ids.staged, lost.slice(0, 2), 4, f.staged.snapshot());
    await writer.append(ids.whole, lost.slice(2, 4), 4, f.whole.snapshot());
    await writer.append(ids.short, lost.slice(4), 4, f.short.snapshot());
    // The follower hands out seqs 1-6 of the three and is not asked for more meanwhile.
    const seen: ProgressEvent[] = [];
    for (let i = 0; i < 18; i++) seen.push((await it.next()).value as ProgressEvent);
    expect(seen.filter((e) => e.seq > 4).map((e) => e.eventId)).toEqual(lost.map((e) => e.eventId));
    // The master dies; its replica takes over without the lost seqs.
    await rc.takeOver(owner, writer.keys.upgrade(ids.staged).events);
    const next = clusterStore(prefix);
    await until('the next writer to find seq 4', async () => (await Promise.all([ids.staged, ids.whole, ids.short].map((id) => next.load(id)))).every((s) => s?.lastSeq === 4), undefined, rc.views);
    const more: ProgressEvent[] = [];
    /** What it hands out next, up to the event `last` (or until nothing more comes for a while: a bound, not a timing). */
    const upTo = async (last: string): Promise<void> => {
      while (!more.some((e) => e.eventId === last)) {
        const r = await Promise.race([it.next(), pause(15_000).then(() => undefined)]);
        if (!r || r.done) break;
        more.push(r.value);
      }
    };
    const of = (id: string): ProgressEvent[] => more.filter((e) => e.upgradeId === id);
    // `staged`: the new seqs 5-6 alone first, then 7-8.
    const reused = other.staged.batch(2);
    await next.append(ids.staged, reused, 4, other.staged.snapshot());
    await upTo(reused[1]!.eventId);
    expect(of(ids.staged).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    const later = other.staged.batch(2);
    await next.append(ids.staged, later, 6, other.staged.snapshot());
    await upTo(later[1]!.eventId);
    // `whole`: seqs 5-8 in one append.
    const whole = other.whole.batch(4);
    await next.append(ids.whole, whole, 4, other.whole.snapshot());
    await upTo(whole[3]!.eventId);
    // `short`: seq 5 alone (the upgrade handed out again, up to it), then 6-8.
    const first = other.short.batch(1);
    await next.append(ids.short, first, 4, other.short.snapshot());
    await upTo(first[0]!.eventId);
    expect(of(ids.short).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    const rest = other.short.batch(3);
    await next.append(ids.short, rest, 5, other.short.snapshot());
    await upTo(rest[2]!.eventId);
    await it.return?.();
    for (const id of [ids.staged, ids.whole, ids.short]) {
      const stored: ProgressEvent[] = [];
      for await (const e of next.readEvents(id, 0)) stored.push(e);
      expect(stored.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(of(id).map((e) => e.eventId)).toEqual(stored.map((e) => e.eventId));
    }
  }, 90_000);
});

describe.skipIf(!hasRedisServer)('RedisStore.watchAll() across a failover that lost acknowledged appends, in single-node mode', () => {
  it('ends with NOT_FOUND: the feed entry it read last was lost with the appends', async () => {
    const [master, promoted] = pair as [TestRedis, TestRedis];
    const prefix = freshPrefix('lossy-all-single');
    const admin = (url: string): Redis => {
      const r = new Redis(url);
      r.on('error', () => {});
      admins.push(r);
      return r;
    };
    const onMaster = new RedisStore({ url: master.url, keyPrefix: prefix });
    const onPromoted = new RedisStore({ url: promoted.url, keyPrefix: prefix });
    stores.push(onMaster, onPromoted);
    const f = new EventFactory('lossy-all-single');
    await onMaster.append(f.upgradeId, f.batch(4), 0, f.snapshot());
    const other = new EventFactory(f.upgradeId);
    other.state = f.snapshot();
    // The replica copies seqs 1-4 (and their feed entry), then loses its master.
    const replica = admin(promoted.url);
    const { port } = new URL(master.url);
    await replica.call('REPLICAOF', '127.0.0.1', port);
    await until('the replica to hold seqs 1-4', async () => String(await replica.info('replication')).includes('master_link_status:up') && (await replica.hget(onMaster.keys.upgrade(f.upgradeId).meta, 'lastSeq')) === '4');
    await replica.call('REPLICAOF', 'NO', 'ONE');
    // The follower reads the master (whose replica it stays when it is demoted, as Sentinel does).
    const reader = new RedisStore({ url: master.url, keyPrefix: prefix, watchBlockMs: 200 });
    stores.push(reader);
    await reader.list();
    const it = reader.watchAll()[Symbol.asyncIterator]();
    const first = it.next();
    // Seqs 5-6 (and their feed entry) on the master only; the follower hands them out.
    const lost = f.batch(2);
    await onMaster.append(f.upgradeId, lost, 4, f.snapshot());
    const seen = [(await first).value as ProgressEvent, (await it.next()).value as ProgressEvent];
    expect(seen.map((e) => e.eventId)).toEqual(lost.map((e) => e.eventId));
    // The replica is promoted; the next writer writes other events at seqs 5-8 there, and the old
    // master is demoted under the follower: the sync with its new master replaces its data.
    await onPromoted.append(f.upgradeId, other.batch(2), 4, other.snapshot());
    await onPromoted.append(f.upgradeId, other.batch(2), 6, other.snapshot());
    await admin(master.url).call('REPLICAOF', '127.0.0.1', new URL(promoted.url).port);
    const more: ProgressEvent[] = [];
    let ended: unknown;
    try {
      for (;;) {
        const r = await Promise.race([it.next(), pause(15_000).then(() => undefined)]);
        if (!r || r.done) break;
        more.push(r.value);
      }
    } catch (err) {
      ended = err;
    }
    await it.return?.();
    expect(more).toEqual([]);
    expect(isProgressError(ended, 'NOT_FOUND')).toBe(true);
    expect((ended as { context: Record<string, unknown> }).context.reason).toBe('trimmed');
    // What is known, not that it fell behind (it did not): the entry it read last is gone, trimmed or lost in a failover.
    const message = (ended as Error).message;
    expect(message).not.toMatch(/fell behind/);
    expect(message).toMatch(/feed entry \d+-\d+, the last one it read, is no longer in the feed/);
    expect(message).toMatch(/lost .*failover/);
    expect(message).toMatch(/start a new watchAll\(\) and load the upgrades again/);
  }, 60_000);
});
