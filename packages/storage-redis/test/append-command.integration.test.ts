import { isProgressError, toSummaryRow } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { APPEND_LUA, pushAppendArgs } from '../src/scripts.js';
import { ALL_ACCESS, aclUser, adminClient, cleanup, collect, errorOf, freshPrefix, makeStore } from './helpers.js';

const prefixes = new Set<string>();
const admin = adminClient();

/** The Redis server's clock in ms (its own TIME, the clock its deadlines and TTLs go by). */
const serverMs = async (): Promise<number> => {
  const [sec, usec] = await admin.time();
  return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
};

afterAll(async () => {
  await cleanup(admin, prefixes);
  await admin.quit();
});

describe('RedisStore: the append command', () => {
  it('stores each append as one stream entry, id 0-<last seq>, holding the JSON array of its events', async () => {
    const store = makeStore(prefixes);
    const f = new EventFactory('layout-1');
    const events = f.batch(3);
    await store.append(f.upgradeId, events, 0, f.snapshot());
    const more = f.batch(1);
    await store.append(f.upgradeId, more, 3, f.snapshot());
    const entries = await admin.xrange(store.keys.upgrade(f.upgradeId).events, '-', '+');
    expect(entries.map(([id]) => id)).toEqual(['0-3', '0-4']);
    expect(entries.map(([, fields]) => fields)).toEqual([
      ['b', JSON.stringify(events)],
      ['b', JSON.stringify(more)],
    ]);
    expect(await admin.hget(store.keys.upgrade(f.upgradeId).meta, 'lastSeq')).toBe('4');
    await store.close();
  });

  it('re-sends the append as EVAL when Redis has lost the script (NOSCRIPT), and stores it once', async () => {
    const store = makeStore(prefixes);
    const f = new EventFactory('noscript-1');
    await store.append(f.upgradeId, f.batch(2), 0, f.snapshot());
    await admin.script('FLUSH');
    await store.append(f.upgradeId, f.batch(2), 2, f.snapshot());
    // Several upgrades in one pipeline after another flush: each falls back on its own.
    const others = [new EventFactory('noscript-2'), new EventFactory('noscript-3')];
    await admin.script('FLUSH');
    await Promise.all(others.map((o) => store.append(o.upgradeId, o.batch(3), 0, o.snapshot())));
    expect((await collect(store.readEvents(f.upgradeId, 0))).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    for (const o of others) expect((await collect(store.readEvents(o.upgradeId, 0))).map((e) => e.seq)).toEqual([1, 2, 3]);
    await store.close();
  });

  it('passes free text that needs no escaping: an eventId and updatedAt holding | are stored, retried and listed intact', async () => {
    const store = makeStore(prefixes);
    const f = new EventFactory('head-1');
    await store.append(f.upgradeId, f.batch(3), 0, f.snapshot());
    const odd = { ...f.next('task.progress', { taskId: 't1', percentage: 42 }), eventId: 'id|with|bars,and,commas|é' };
    const state = { ...f.snapshot(), updatedAt: '2026|11|28 é' };
    await store.append(f.upgradeId, [odd], 3, state);
    // The same call again (a retry after a lost reply) is recognised by its eventId: stored once.
    await store.append(f.upgradeId, [odd], 3, state);
    const stored = await collect(store.readEvents(f.upgradeId, 0));
    expect(stored.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(stored[3]!.eventId).toBe('id|with|bars,and,commas|é');
    const [row] = await store.list();
    expect(row).toMatchObject({ upgradeId: f.upgradeId, lastSeq: 4, overallPercentage: state.overallPercentage, updatedAt: '2026|11|28 é' });
    await store.close();
  });

  it('refuses a deadline that is not a number with nothing written, also after it added the feed entry', async () => {
    const store = makeStore(prefixes);
    const f = new EventFactory('bad-deadline-1');
    await store.append(f.upgradeId, f.batch(1), 0, f.snapshot());
    const keys = store.keys.upgrade(f.upgradeId);
    const feedBefore = await admin.xlen(store.keys.feed);
    const event = f.batch(1);
    // As the store sends it, with the deadline's slot left as built ('') or filled with junk; flags
    // 1 (single mode: the feed entry comes first) and 0 (cluster mode: the deadline is read first).
    for (const [flags, deadline] of [[1, ''], [1, 'NaN'], [0, ''], [0, 'soon']] as const) {
      const args = flags ? [keys.events, keys.meta, store.keys.feed] : [keys.events, keys.meta];
      const at = args.length;
      pushAppendArgs(args, flags, 1, 1, '', f.upgradeId, `2|50|${f.snapshot().updatedAt}`, event[0]!.eventId);
      args[at] = deadline;
      args.push(JSON.stringify(event));
      await expect(admin.eval(APPEND_LUA, at, ...args)).rejects.toThrow(/malformed deadline/);
    }
    expect(await admin.xlen(store.keys.feed)).toBe(feedBefore);
    expect(await admin.hget(keys.meta, 'lastSeq')).toBe('1');
    expect(await admin.xlen(keys.events)).toBe(1);
    await store.close();
  });

  it('checks the deadline by TIME to the millisecond (cluster mode), also within the deadline\'s second and for other lengths', async () => {
    const store = makeStore(prefixes);
    const f = new EventFactory('time-deadline-1');
    await store.append(f.upgradeId, f.batch(1), 0, f.snapshot());
    const keys = store.keys.upgrade(f.upgradeId);
    let stored = 1;
    /** Sends one event as a cluster-mode append (flags 0: no feed key, the deadline checked by TIME). */
    const send = async (deadline: string): Promise<unknown> => {
      const event = { ...f.batch(1)[0]!, seq: stored + 1 };
      const args = [keys.events, keys.meta];
      const at = args.length;
      pushAppendArgs(args, 0, stored, 1, '', f.upgradeId, `${stored + 1}|50|${f.snapshot().updatedAt}`, event.eventId);
      args[at] = deadline;
      args.push(JSON.stringify([event]));
      const reply = await admin.eval(APPEND_LUA, at, ...args);
      if (reply === 1) stored++;
      return reply;
    };
    // Within the deadline's second, its last ms is ahead: in time. Which ms the call runs at is not
    // ours to choose, so a call whose TIME before and after fall in two seconds proves nothing and
    // is sent again (it is in time or late by the second's rule then, and counted either way).
    let inTime: unknown;
    for (let i = 0; i < 20 && inTime === undefined; i++) {
      const second = Math.floor((await serverMs()) / 1000) * 1000;
      const reply = await send(String(second + 999));
      if (Math.floor((await serverMs()) / 1000) * 1000 === second) inTime = reply;
    }
    expect(inTime).toBe(1);
    // A ms already past is late, whether it is in this second or the one before.
    const now = await serverMs();
    expect(await send(String(now - 1))).toEqual([-1, stored]);
    // Seconds apart, either way.
    expect(await send(String(now - 1000))).toEqual([-1, stored]);
    expect(await send(String(now + 60_000))).toBe(1);
    // 12 and 14 digits (before 2001, after 2286) take the numeric path.
    expect(await send('999999999999')).toEqual([-1, stored]);
    expect(await send('10000000000000')).toBe(1);
    expect(await admin.hget(keys.meta, 'lastSeq')).toBe(String(stored));
    expect((await collect(store.readEvents(f.upgradeId, 0))).map((e) => e.seq)).toEqual(Array.from({ length: stored }, (_, i) => i + 1));
    await store.close();
  });

  it('keeps the watchAll() feed near feedMaxLen although it trims only every few appends', async () => {
    const store = makeStore(prefixes, { feedMaxLen: 10 });
    const factories = Array.from({ length: 4 }, (_, i) => new EventFactory(`feed-trim-${i}`));
    // The longest the feed got, read after each append.
    let longest = 0;
    for (let round = 0; round < 250; round++) {
      for (const f of factories) {
        const expected = f.lastSeq;
        await store.append(f.upgradeId, f.batch(1), expected, f.snapshot());
        longest = Math.max(longest, await admin.xlen(store.keys.feed));
      }
    }
    // 1,000 appends. MAXLEN ~ drops whole nodes (at most 100 entries by default), and the trim runs
    // on every 32nd append: the feed holds at most feedMaxLen + 100 entries, plus 31 (README,
    // feedMaxLen), never the 1,000 written. (Found on 2026-12-02, mutation testing: read at the end
    // alone, the length let a trim every 64th append pass.)
    const length = await admin.xlen(store.keys.feed);
    expect(length).toBeGreaterThan(0);
    expect(longest).toBeLessThanOrEqual(10 + 100 + 31);
    await store.close();
  });

  it('keeps the feed near feedMaxLen under many short-lived stores (each trims on its first append)', async () => {
    const keyPrefix = freshPrefix('short-lived');
    let feed = '';
    for (let w = 0; w < 60; w++) {
      const store = makeStore(prefixes, { keyPrefix, feedMaxLen: 10 });
      feed = store.keys.feed;
      const f = new EventFactory(`short-${w}`);
      for (let i = 0; i < 5; i++) {
        const expected = f.lastSeq;
        await store.append(f.upgradeId, f.batch(1), expected, f.snapshot());
      }
      await store.close();
    }
    // 300 appends by 60 stores: without a trim on each store's first append, none would trim.
    const length = await admin.xlen(feed);
    expect(length).toBeGreaterThan(0);
    expect(length).toBeLessThanOrEqual(150);
  });

  // A store that appends only once (a short-lived process) must still trim: the trim runs on a
  // store's first append, not only on its later ones.
  it("trims the feed on a store's very first append", async () => {
    const keyPrefix = freshPrefix('first-trim');
    const store = makeStore(prefixes, { keyPrefix, feedMaxLen: 10 });
    const pipeline = admin.pipeline();
    for (let i = 0; i < 300; i++) pipeline.xadd(store.keys.feed, '*', 'p', `1|1|other-${i}`);
    await pipeline.exec();
    const f = new EventFactory('first-trim');
    await store.append(f.upgradeId, f.batch(1), 0, f.snapshot());
    const length = await admin.xlen(store.keys.feed);
    expect(length).toBeGreaterThan(0);
    expect(length).toBeLessThanOrEqual(150);
    await store.close();
  });

  it('recognises a retried append against entries written in the earlier layout (fields i and e)', async () => {
    const store = makeStore(prefixes);
    const f = new EventFactory('legacy-1');
    const [first] = f.batch(1);
    const keys = store.keys.upgrade(f.upgradeId);
    await admin.xadd(keys.events, '0-1', 'i', first!.eventId, 'e', JSON.stringify(first));
    await admin.hset(keys.meta, 'lastSeq', '1');
    // The same event again is the retry of an append that already ran: success, stored once.
    await store.append(f.upgradeId, [first!], 0, f.snapshot());
    expect(await admin.xlen(keys.events)).toBe(1);
    // Another event at the same seq is a conflict.
    const other = new EventFactory('legacy-1').batch(1);
    const err = await store.append(f.upgradeId, other, 0, f.snapshot()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isProgressError(err, 'CONFLICT')).toBe(true);
    await store.close();
  });
});

describe('RedisStore: list rows', () => {
  it('writes the row only when more than lastSeq, percentage and updatedAt change, and list() still returns the current row', async () => {
    const store = makeStore(prefixes);
    const f = new EventFactory('rows-1');
    await store.append(f.upgradeId, f.batch(3), 0, f.snapshot()); // created, started, task.added
    const meta = store.keys.upgrade(f.upgradeId).meta;
    const rowAfterSetup = await admin.hget(meta, 'row');
    // Progress-only appends, one at a time: the stored row JSON stays, the fast field moves.
    for (let i = 0; i < 5; i++) {
      const expected = f.lastSeq;
      const ev = f.next('task.progress', { taskId: 't1', percentage: 10 * (i + 1) });
      await store.append(f.upgradeId, [ev], expected, f.snapshot());
    }
    expect(await admin.hget(meta, 'row')).toBe(rowAfterSetup);
    expect(await admin.hget(meta, 'fast')).toBe(`8|${f.state!.overallPercentage}|${f.state!.updatedAt}`);
    expect(await store.list()).toEqual([toSummaryRow(f.state!)]);
    // A batch with a row-changing event (task.added) rewrites the row.
    const expected = f.lastSeq;
    const events = f.batch(25);
    expect(events.some((e) => e.type === 'task.added')).toBe(true);
    await store.append(f.upgradeId, events, expected, f.snapshot());
    expect(JSON.parse((await admin.hget(meta, 'row'))!)).toEqual(toSummaryRow(f.state!));
    expect(await store.list()).toEqual([toSummaryRow(f.state!)]);
    await store.close();
  });

  it('lets a row written after the fast field (by an earlier version, which wrote no fast field) win', async () => {
    const store = makeStore(prefixes);
    const f = new EventFactory('rows-2');
    await store.append(f.upgradeId, f.batch(5), 0, f.snapshot());
    const meta = store.keys.upgrade(f.upgradeId).meta;
    const later = { ...toSummaryRow(f.state!), lastSeq: 9, overallPercentage: 77, updatedAt: '2030-01-01T00:00:00.000Z' };
    await admin.hset(meta, 'row', JSON.stringify(later), 'lastSeq', '9');
    expect(await store.list()).toEqual([later]);
    await store.close();
  });
});

describe('RedisStore: the snapshot, staged with a plain SET and renamed by the append script', () => {
  /** The staged snapshot keys left in Redis for `snapshotKey`. */
  const stagedLeft = (snapshotKey: string): Promise<string[]> => admin.keys(`${snapshotKey}:*`);

  it('holds the state at snapSeq, with no TTL, and leaves no staged key behind', async () => {
    const store = makeStore(prefixes, { snapshotEvery: 3 });
    const f = new EventFactory('staged-1');
    const keys = store.keys.upgrade(f.upgradeId);
    await store.append(f.upgradeId, f.batch(3), 0, f.snapshot());
    const atThree = f.snapshot();
    await store.append(f.upgradeId, f.batch(2), 3, f.snapshot());
    expect(await admin.hget(keys.meta, 'snapSeq')).toBe('3');
    expect(JSON.parse((await admin.get(keys.snapshot))!)).toEqual(JSON.parse(JSON.stringify(atThree)));
    expect(await admin.pttl(keys.snapshot)).toBe(-1);
    // The next one replaces it, and again nothing staged stays.
    await store.append(f.upgradeId, f.batch(1), 5, f.snapshot());
    expect(await admin.hget(keys.meta, 'snapSeq')).toBe('6');
    expect(JSON.parse((await admin.get(keys.snapshot))!)).toMatchObject({ lastSeq: 6 });
    expect(await admin.pttl(keys.snapshot)).toBe(-1);
    expect(await stagedLeft(keys.snapshot)).toEqual([]);
    expect((await store.load(f.upgradeId))?.lastSeq).toBe(6);
    await store.close();
  });

  it('writes no snapshot for an append refused with CONFLICT (a stale writer), and deletes its staged key', async () => {
    const store = makeStore(prefixes, { snapshotEvery: 3 });
    const stale = makeStore(prefixes, { keyPrefix: store.keys.prefix, snapshotEvery: 3 });
    const f = new EventFactory('staged-conflict');
    const keys = store.keys.upgrade(f.upgradeId);
    await store.append(f.upgradeId, f.batch(3), 0, f.snapshot());
    const kept = await admin.get(keys.snapshot);
    // Another run of the same id, from seq 0: its 3 events would snapshot at 3 too.
    const other = new EventFactory('staged-conflict');
    const err = await stale.append(other.upgradeId, other.batch(3), 0, other.snapshot()).catch((e: unknown) => e);
    expect(isProgressError(err, 'CONFLICT')).toBe(true);
    expect(await admin.get(keys.snapshot)).toBe(kept);
    expect(await stagedLeft(keys.snapshot)).toEqual([]);
    await stale.close();
    await store.close();
  });

  // README, Key layout: a staged key whose append never ran lives `commandTimeoutMs` + 60 s, past
  // the append's deadline (after it, Redis refuses to run the append: nothing would adopt the key).
  // Found on 2026-12-02 (documentation audit): no test read that TTL. Here the append never runs
  // because the user may not run scripts: the SET before it is stored, and nothing deletes its key.
  it('leaves a staged key whose append never ran with a TTL of commandTimeoutMs + 60 s; the same append, sent again when it can run, adopts it', async () => {
    const commandTimeoutMs = 300_000;
    const { user, url } = await aclUser(admin, 'staged-no-script', [...ALL_ACCESS, '-evalsha', '-eval']);
    const store = makeStore(prefixes, { url, snapshotEvery: 3, commandTimeoutMs });
    try {
      const f = new EventFactory('staged-left');
      const keys = store.keys.upgrade(f.upgradeId);
      const events = f.batch(3);
      const before = await serverMs();
      const err = await errorOf(store.append(f.upgradeId, events, 0, f.snapshot()));
      expect(err.code).toBe('STORE_UNAVAILABLE');
      expect(await admin.exists(keys.events, keys.meta, keys.snapshot)).toBe(0);
      expect(await stagedLeft(keys.snapshot)).toEqual([`${keys.snapshot}:${events[2]!.eventId}`]);
      const ttl = await admin.pttl(`${keys.snapshot}:${events[2]!.eventId}`);
      // By the server's clock: the SET ran after `before`, the PTTL before `after`, so the key expires
      // no sooner than before + commandTimeoutMs + 60 s, which after + ttl is at least. (A TTL only
      // above commandTimeoutMs let a mutant's commandTimeoutMs + 1 s pass.)
      const after = await serverMs();
      expect(after + ttl).toBeGreaterThanOrEqual(before + commandTimeoutMs + 60_000);
      expect(ttl).toBeLessThanOrEqual(commandTimeoutMs + 60_000);
      await admin.call('ACL', 'SETUSER', user, '+evalsha', '+eval');
      await store.append(f.upgradeId, events, 0, f.snapshot());
      expect(await admin.hget(keys.meta, 'snapSeq')).toBe('3');
      expect(await admin.pttl(keys.snapshot)).toBe(-1);
      expect(await stagedLeft(keys.snapshot)).toEqual([]);
      expect(await store.load(f.upgradeId)).toEqual(f.state);
    } finally {
      await store.close();
      await admin.call('ACL', 'DELUSER', user);
    }
  });

  it('stores an append whose staged snapshot is missing (its SET lost with a connection) without a snapshot: snapSeq stays', async () => {
    const store = makeStore(prefixes, { snapshotEvery: 1000 });
    const f = new EventFactory('staged-missing');
    const keys = store.keys.upgrade(f.upgradeId);
    await store.append(f.upgradeId, f.batch(2), 0, f.snapshot());
    const event = f.batch(1);
    // As the store sends an append that writes a snapshot (flag 4: the snapshot and staged keys), but
    // the staged key was never written.
    const args = [keys.events, keys.meta, store.keys.feed, keys.snapshot, `${keys.snapshot}:${event[0]!.eventId}`];
    const at = args.length;
    pushAppendArgs(args, 1 + 4, 2, 1, '', f.upgradeId, `3|50|${f.snapshot().updatedAt}`, event[0]!.eventId);
    args[at] = String(Date.now() + 60_000);
    args.push(JSON.stringify(event));
    expect(await admin.eval(APPEND_LUA, at, ...args)).toBe(1);
    expect(await admin.hget(keys.meta, 'lastSeq')).toBe('3');
    expect(await admin.hget(keys.meta, 'snapSeq')).toBeNull();
    expect(await admin.exists(keys.snapshot)).toBe(0);
    expect((await store.load(f.upgradeId))?.lastSeq).toBe(3);
    await store.close();
  });

  it('gives the snapshot the retention TTL on a terminal append, as the events and meta', async () => {
    const store = makeStore(prefixes, { snapshotEvery: 1000, retention: { ttlSeconds: 120 } });
    const f = new EventFactory('staged-ttl');
    const keys = store.keys.upgrade(f.upgradeId);
    await store.append(f.upgradeId, f.batch(2), 0, f.snapshot());
    const done = f.next('upgrade.completed', { status: 'completed' });
    await store.append(f.upgradeId, [done], 2, f.snapshot());
    expect(await admin.hget(keys.meta, 'snapSeq')).toBe('3');
    for (const key of [keys.events, keys.meta, keys.snapshot]) {
      const ttl = await admin.ttl(key);
      expect(ttl, key).toBeGreaterThan(60);
      expect(ttl, key).toBeLessThanOrEqual(120);
    }
    expect(await stagedLeft(keys.snapshot)).toEqual([]);
    await store.close();
  });

  it('keeps the retention TTL on a snapshot written by an append after the terminal one (not PERSIST: it would outlive the rest)', async () => {
    const store = makeStore(prefixes, { snapshotEvery: 5, retention: { ttlSeconds: 120 } });
    const f = new EventFactory('staged-after-terminal');
    const keys = store.keys.upgrade(f.upgradeId);
    await store.append(f.upgradeId, f.batch(2), 0, f.snapshot());
    await store.append(f.upgradeId, [f.next('upgrade.completed', { status: 'completed' })], 2, f.snapshot());
    // Through the store API (the tracker never sends one): a non-terminal append after the terminal
    // one, across the snapshot boundary at 5. The events and meta keep their TTL, so must the snapshot.
    const more = [f.next('upgrade.phase_changed', { details: { phase: 'Again' } }), f.next('upgrade.phase_changed', { details: { phase: 'Again' } })];
    expect(f.state!.status).toBe('in_progress');
    await store.append(f.upgradeId, more, 3, f.snapshot());
    expect(await admin.hget(keys.meta, 'snapSeq')).toBe('5');
    const metaTtl = await admin.pttl(keys.meta);
    expect(metaTtl).toBeGreaterThan(60_000);
    const snapTtl = await admin.pttl(keys.snapshot);
    expect(snapTtl).toBeGreaterThan(60_000);
    expect(snapTtl).toBeLessThanOrEqual(120_000);
    expect(Math.abs(snapTtl - metaTtl)).toBeLessThan(1000);
    expect(await stagedLeft(keys.snapshot)).toEqual([]);
    expect((await store.load(f.upgradeId))?.lastSeq).toBe(5);
    await store.close();
  });
});
