import { EventFactory } from '@progress/core/testing';
import { ProgressTracker, isProgressError, type ProgressEvent } from '@progress/core';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { adminClient, appendBatch, cleanup, collect, errorOf, freshPrefix, makeStore, redisUrl } from './helpers.js';
import { silencingProxy } from './silencing-proxy.js';
import type { RedisStore } from '../src/index.js';
import { againOnConnectionLoss } from '../src/connection.js';
import { isConnectionLoss } from '../src/errors.js';
import { startRedisProxy, type RedisProxy } from '../../../tools/test-utils/src/redis-proxy.js';

const prefixes = new Set<string>();
const admin = adminClient();

afterAll(async () => {
  await cleanup(admin, prefixes);
  await admin.quit();
});

/** Polls `check` every 10 ms until it holds or `ms` pass (the test asserts what it needs afterwards). */
async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !(await check()) && Date.now() < end; ) await new Promise((r) => setTimeout(r, 10));
}

/** The ids of the connections named `<name>:watch` that Redis sees blocked in an XREAD now. */
async function blockedWatchers(name: string): Promise<string[]> {
  return ((await admin.call('CLIENT', 'LIST')) as string)
    .split('\n')
    .filter((l) => l.includes(`name=${name}:watch`) && l.includes('cmd=xread'))
    .map((l) => /\bid=(\d+)/.exec(l)![1]!);
}

/** Follows what `open` returns in the background: the seqs it hands out, the error it ended with (if any), and stop() (aborts it and waits for its end). */
function follow(open: (signal: AbortSignal) => AsyncIterable<ProgressEvent>): { seen: number[]; failure: () => unknown; stop: () => Promise<void> } {
  const seen: number[] = [];
  const controller = new AbortController();
  let failure: unknown;
  const following = (async () => {
    for await (const ev of open(controller.signal)) seen.push(ev.seq);
  })().catch((err: unknown) => (failure = err));
  return {
    seen,
    failure: () => failure,
    stop: async () => {
      controller.abort();
      await following;
    },
  };
}

/**
 * Kills the connections named `name...` ({@link killConnections}) every `minMs` plus up to `spreadMs`
 * ms until `stop()`; `kills()` counts the connections killed so far.
 */
function killEvery(name: string, minMs: number, spreadMs: number): { kills: () => number; stop: () => Promise<void> } {
  let killing = true;
  let kills = 0;
  const loop = (async () => {
    while (killing) {
      await new Promise((r) => setTimeout(r, minMs + Math.random() * spreadMs));
      kills += await killConnections(name);
    }
  })();
  return {
    kills: () => kills,
    stop: async () => {
      killing = false;
      await loop;
    },
  };
}

/** Kills every connection whose name starts with `name` (the store's and its watchers'). */
async function killConnections(name: string): Promise<number> {
  const list = (await admin.call('CLIENT', 'LIST')) as string;
  let killed = 0;
  for (const line of list.split('\n')) {
    const id = /\bid=(\d+)/.exec(line)?.[1];
    const client = /\bname=(\S*)/.exec(line)?.[1];
    if (id && client?.startsWith(name)) {
      await admin.call('CLIENT', 'KILL', 'ID', id).catch(() => {});
      killed++;
    }
  }
  return killed;
}

describe('RedisStore under connection loss', () => {
  it('stores every acknowledged event exactly once, contiguously, while its connections are killed every few tens of ms', async () => {
    const name = `kill-test-${randomUUID().slice(0, 8)}`;
    const store = makeStore(prefixes, { connectionName: name, commandTimeoutMs: 5_000 });
    const upgradeId = 'killed';
    let tracker = await ProgressTracker.open({ upgradeId, planId: 'plan-1', clusterName: 'cluster-1', store });
    await tracker.startUpgrade();
    await tracker.addTask('t1', 'Task 1');
    const initial = tracker.progress.lastSeq;

    // A watcher on the same store follows along; its connection is killed too.
    const stop = new AbortController();
    const watched: ProgressEvent[] = [];
    const watching = (async () => {
      for await (const ev of store.watch(upgradeId, 0, { signal: stop.signal })) watched.push(ev);
    })();

    const killer = killEvery(name, 20, 30);

    const acked: ProgressEvent[] = [];
    let failures = 0;
    let conflicts = 0;
    let done = 0;
    while (done < 1000) {
      // Bursts of 1..10 concurrent commands (group commit), as a busy agent would issue them.
      const size = Math.min(1000 - done, 1 + ((done * 7) % 10));
      const results = await Promise.allSettled(Array.from({ length: size }, (_, i) => tracker.updateTaskProgress('t1', (done + i) % 100, `step ${done + i}`)));
      // Pace it so that the run spans many kills (about 2 s).
      await new Promise((r) => setTimeout(r, 10));
      for (const r of results) {
        if (r.status === 'fulfilled') {
          acked.push(r.value);
          done++;
        } else if (isProgressError(r.reason, 'CONFLICT')) {
          // Only after an append whose outcome was unknown: reopen from what Redis holds.
          conflicts++;
          await tracker.close();
          tracker = await ProgressTracker.open({ upgradeId, planId: 'plan-1', clusterName: 'cluster-1', store });
          break;
        } else {
          expect(isProgressError(r.reason, 'STORE_UNAVAILABLE')).toBe(true);
          failures++;
        }
      }
    }
    await killer.stop();
    await tracker.close();

    const stored = await collect(store.readEvents(upgradeId, 0));
    expect(stored.map((e) => e.seq)).toEqual(stored.map((_, i) => i + 1));
    expect(new Set(stored.map((e) => e.eventId)).size).toBe(stored.length);
    for (const ev of acked) expect(stored[ev.seq - 1]?.eventId).toBe(ev.eventId);
    if (failures === 0 && conflicts === 0) expect(stored.length).toBe(initial + 1000);
    expect(killer.kills()).toBeGreaterThan(10);
    expect(await store.load(upgradeId)).toEqual(JSON.parse(JSON.stringify(tracker.progress)));

    // The watcher saw the same log, in order, without gaps or duplicates.
    const deadline = Date.now() + 10_000;
    while (watched.length < stored.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    stop.abort();
    await watching;
    expect(watched.map((e) => e.eventId)).toEqual(stored.map((e) => e.eventId));
    await store.close();
  }, 120_000);
});

// A review repro of 2026-11-29, kept: watch() was tested under killed connections, watchAll() was not.
// (A real Redis Cluster under lost connections: cluster-connection-loss.integration.test.ts.)
// Found on 2026-12-01 (see test/cluster-connection-loss.integration.test.ts, where a Cluster soak
// met it): an append waiting for the server clock failed at once with STORE_UNAVAILABLE "could not
// read the server clock" when the TIME of that reading lost its connection, long before
// commandTimeoutMs. On one Redis, ioredis re-sends a lone TIME itself; not one of a pipeline answered
// in part, which auto-pipelining (`enableAutoPipelining` on a client passed in) makes of whatever a
// tick sends: that TIME fails with an AbortError. Made deterministic: the tick of the TIME also sends
// a SET (answered) and a BLPOP (it holds the connection, the TIME unanswered behind it), then the
// connection is closed.
describe('an append on a client passed in with enableAutoPipelining whose clock reading loses its connection', () => {
  it('reads the server clock again, and appends', async () => {
    const client = new Redis(redisUrl(), { enableAutoPipelining: true, maxRetriesPerRequest: null });
    const store = makeStore(prefixes, { redis: client, commandTimeoutMs: 10_000 });
    await client.ping();
    const f = new EventFactory('clock-cut');
    const events = f.batch(2);
    const time = client.time;
    let held: Promise<unknown> = Promise.resolve();
    client.time = function (this: Redis, ...args: Parameters<Redis['time']>) {
      client.time = time;
      void client.set(`${store.keys.prefix}cut:set`, 'x');
      held = client.blpop(`${store.keys.prefix}cut:list`, 1).catch(() => null);
      return time.apply(this, args);
    } as Redis['time'];
    const appending = store.append(f.upgradeId, events, 0, f.snapshot());
    appending.catch(() => {});
    const queued = (): string[] => (client.commandQueue as unknown as { toArray(): Array<{ command: { name: string } }> }).toArray().map((c) => c.command.name);
    await until(() => queued().join() === 'blpop,time');
    expect(queued()).toEqual(['blpop', 'time']);
    client.stream.destroy();
    await appending;
    expect((await store.load(f.upgradeId))?.lastSeq).toBe(2);
    await held;
    await store.close();
    client.disconnect();
  });
});

// Found on 2026-11-30 (review): an upgrade's first append whose reply was lost ran again when
// ioredis re-sent it after a delete() of the upgrade (the meta gone, so the seq check passed): the
// delete had answered true, and the deleted upgrade came back, with the same events.
describe('a first append re-sent after its upgrade was deleted', () => {
  /**
   * A writer (through a proxy) whose first append of `id` (3 events) runs and loses its reply; the
   * other store deletes the upgrade before the writer can connect again; then the append is re-sent,
   * and answered as done (it ran before the delete), as a re-send of an append that ran is.
   */
  async function resentAfterDelete(id: string, mode?: 'single' | 'cluster'): Promise<{ proxy: RedisProxy; writer: RedisStore; other: RedisStore; f: EventFactory }> {
    const proxy = await startRedisProxy(redisUrl());
    const keyPrefix = freshPrefix(id);
    const writer = makeStore(prefixes, { keyPrefix, url: proxy.url, mode });
    const other = makeStore(prefixes, { keyPrefix, mode });
    // The writer's clock is read: its next append goes out at once.
    await appendBatch(writer, new EventFactory('warm'), 1);
    const f = new EventFactory(id);
    // The first append runs, its reply is lost, and the writer cannot connect again until up().
    proxy.dropNextReply({ thenDown: true });
    const appending = appendBatch(writer, f, 3);
    await until(async () => (await admin.exists(writer.keys.upgrade(f.upgradeId).meta)) === 1);
    expect(await other.delete(f.upgradeId)).toBe(true);
    proxy.up();
    await appending;
    return { proxy, writer, other, f };
  }

  it.each(['single', 'cluster'] as const)('%s mode: stores nothing again, and the upgrade stays deleted', async (mode) => {
    const { proxy, writer, other: deleter, f } = await resentAfterDelete('resent-first', mode);
    // Nor an index member written for it again (in cluster mode the index is written after the
    // script, and close() waits for that write); checked before list(), which prunes such a member.
    await writer.close();
    expect(await admin.zscore(writer.keys.index, 'warm')).not.toBeNull();
    expect(await admin.zscore(writer.keys.index, f.upgradeId)).toBeNull();
    expect(await deleter.load(f.upgradeId)).toBeUndefined();
    expect(await collect(deleter.readEvents(f.upgradeId, 0))).toEqual([]);
    expect((await deleter.list()).map((r) => r.upgradeId)).not.toContain(f.upgradeId);
    // The id can be used again at once, from seq 1.
    const again = new EventFactory('resent-first');
    await appendBatch(deleter, again, 2);
    expect((await deleter.load(f.upgradeId))?.lastSeq).toBe(2);
    await deleter.close();
    await proxy.close();
  });

  // Found on 2026-12-01 (mutation run): a writer whose re-sent first append was answered as done (it
  // ran before the delete) knew no run of the upgrade, so its next append was checked by seq alone:
  // with the upgrade created again by another writer up to that very seq, it went into the new run.
  it('refuses the next append of that writer with CONFLICT once another writer created the upgrade again at its seq', async () => {
    const { proxy, writer, other, f } = await resentAfterDelete('resent-first-stale');
    // Created again by another writer, up to the seq the first writer goes on from.
    const again = new EventFactory('resent-first-stale');
    const created = await appendBatch(other, again, 3);
    const err = await errorOf(appendBatch(writer, f, 1));
    expect(err.code).toBe('CONFLICT');
    expect((await other.load(f.upgradeId))?.lastSeq).toBe(3);
    expect((await collect(other.readEvents(f.upgradeId, 0))).map((e) => e.eventId)).toEqual(created.map((e) => e.eventId));
    await writer.close();
    await other.close();
    await proxy.close();
  });
});

describe('againOnConnectionLoss', () => {
  it('stops waiting to send again, and leaves no timer, once the store stops it', async () => {
    // A real loss, made as above: a command of an auto-pipeline answered in part, its socket cut.
    const client = new Redis(redisUrl(), { enableAutoPipelining: true, maxRetriesPerRequest: null });
    const prefix = freshPrefix('again');
    prefixes.add(prefix);
    await client.ping();
    void client.set(`${prefix}set`, 'x');
    const held = client.blpop(`${prefix}list`, 1).catch(() => null);
    const cut = client.time();
    const queued = (): string[] => (client.commandQueue as unknown as { toArray(): Array<{ command: { name: string } }> }).toArray().map((c) => c.command.name);
    await until(() => queued().join() === 'blpop,time');
    client.stream.destroy();
    const loss = await cut.then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isConnectionLoss(loss)).toBe(true);
    await client.ping(); // connected again
    // Its timers are fake (and never advanced): the wait to send again ends only if the abort ends it.
    // A wait that ran out its timer first (10 ms at least) would also have rejected with the loss, and
    // left no timer, by the time a real-timer check looked: this one cannot be passed that way.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      let sends = 0;
      const stop = new AbortController();
      const again = againOnConnectionLoss(
        client,
        () => {
          sends += 1;
          return Promise.reject(loss);
        },
        60_000,
        stop.signal,
      );
      const settled = again.then(
        () => 'sent',
        (err: unknown) => (err === loss ? 'gave up' : err),
      );
      await new Promise((resolve) => setImmediate(resolve)); // the first send failed: waiting to send again
      expect(sends).toBe(1);
      expect(vi.getTimerCount()).toBe(1);
      stop.abort(); // the store closes
      const now = await Promise.race([settled, new Promise((resolve) => setImmediate(() => resolve('still waiting')))]);
      expect(now).toBe('gave up');
      expect(sends).toBe(1);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
    await held;
    client.disconnect();
  });
});

describe('RedisStore.watchAll under connection loss', () => {
  it.each(['single', 'cluster'] as const)('hands out every stored event once, in order per upgrade, while connections are killed (%s mode)', async (mode) => {
    const name = `wa-kill-${randomUUID().slice(0, 8)}`;
    const writer = makeStore(prefixes, { connectionName: `${name}-w`, commandTimeoutMs: 3000, mode });
    const reader = makeStore(prefixes, { keyPrefix: writer.keys.prefix, connectionName: `${name}-r`, watchBlockMs: 100, pageSize: 7, mode });
    await reader.list(); // connected: the start point is the end of the feed now
    const stop = new AbortController();
    const seen: ProgressEvent[] = [];
    let ended: unknown;
    const following = (async () => {
      for await (const ev of reader.watchAll({ signal: stop.signal })) seen.push(ev);
    })().catch((err: unknown) => (ended = err));
    await reader.list(); // the start point was taken (same connection)
    const killer = killEvery(name, 15, 30);
    const factories = ['a', 'b', 'c'].map((id) => new EventFactory(id));
    // At least 150 rounds, and on until the connections were killed more than 10 times: on a fast
    // machine 150 rounds can end before the killer has struck often enough to test anything.
    for (let round = 0; round < 150 || (killer.kills() <= 10 && round < 5000); round++) {
      await Promise.all(
        factories.map(async (f) => {
          const expected = f.lastSeq;
          const events = f.batch(1 + (round % 3));
          try {
            await writer.append(f.upgradeId, events, expected, f.snapshot());
          } catch (err) {
            // Not acknowledged (perhaps stored anyway): go on from what Redis holds.
            if (!isProgressError(err)) throw err;
            const stored = await writer.load(f.upgradeId);
            f.state = stored;
          }
        }),
      );
    }
    await killer.stop();
    const stored = new Map<string, string[]>();
    for (const f of factories) stored.set(f.upgradeId, (await collect(writer.readEvents(f.upgradeId, 0))).map((e) => e.eventId));
    const total = [...stored.values()].reduce((n, ids) => n + ids.length, 0);
    const deadline = Date.now() + 20_000;
    while (seen.length < total && ended === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    stop.abort();
    await following;
    expect(ended).toBeUndefined();
    expect(killer.kills()).toBeGreaterThan(10);
    for (const f of factories) expect(seen.filter((e) => e.upgradeId === f.upgradeId).map((e) => e.eventId)).toEqual(stored.get(f.upgradeId));
    expect(seen).toHaveLength(total);
    await writer.close();
    await reader.close();
  }, 90_000);
});

// A review repro of 2026-11-29: ioredis drops the commands in flight on a lost connection, never
// settling them, when a client has `autoResendUnfulfilledCommands: false`; a watch connection
// duplicated from such a client passed in waited for its XREAD for good.
describe('watchers of a client passed in with autoResendUnfulfilledCommands: false', () => {
  it.each(['watch', 'watchAll'] as const)('%s() reads on after its connection is killed while its XREAD blocks', async (how) => {
    const name = `no-resend-${randomUUID().slice(0, 8)}`;
    const client = new Redis(redisUrl(), { autoResendUnfulfilledCommands: false, maxRetriesPerRequest: null });
    const reader = makeStore(prefixes, { redis: client, connectionName: name, watchBlockMs: 60_000 });
    const writer = makeStore(prefixes, { keyPrefix: reader.keys.prefix });
    await reader.list(); // connected: watchAll's start point is the end of the feed now
    const f = new EventFactory('no-resend');
    const watcher = follow((signal) => (how === 'watch' ? reader.watch(f.upgradeId, 0, { signal }) : reader.watchAll({ signal })));
    await reader.list(); // watchAll's start point was taken (same connection)
    await appendBatch(writer, f, 2);
    await until(() => watcher.seen.length === 2 || watcher.failure() !== undefined);
    // The next XREAD blocks in Redis (a minute); then its connection is killed.
    await until(async () => (await blockedWatchers(name)).length > 0);
    expect(await killConnections(`${name}:watch`)).toBe(1);
    await appendBatch(writer, f, 2);
    await until(() => watcher.seen.length === 4 || watcher.failure() !== undefined);
    await watcher.stop();
    await reader.close();
    await writer.close();
    client.disconnect();
    expect(watcher.failure()).toBeUndefined();
    expect(watcher.seen).toEqual([1, 2, 3, 4]);
  });
});

// A review repro of 2026-11-29: a watcher's connection is a duplicate of a client passed in, and
// inherited its `socketTimeout`, which drops a socket that receives nothing for that long: below
// watchBlockMs, every quiet XREAD BLOCK had its connection dropped and made again. Watchers check
// their own links (watchBlockMs + commandTimeoutMs), so they take no socketTimeout.
describe('watchers of a client passed in with a socketTimeout below watchBlockMs', () => {
  it.each(['watch', 'watchAll'] as const)('%s() keeps one connection through quiet blocking reads', async (how) => {
    const name = `sock-timeout-${randomUUID().slice(0, 8)}`;
    const client = new Redis(redisUrl(), { socketTimeout: 200, maxRetriesPerRequest: null });
    const reader = makeStore(prefixes, { redis: client, connectionName: name, watchBlockMs: 5_000 });
    const f = new EventFactory('sock-timeout');
    const watcher = follow((signal) => (how === 'watch' ? reader.watch(f.upgradeId, 0, { signal }) : reader.watchAll({ signal })));
    await until(async () => (await blockedWatchers(name)).length > 0);
    const first = await blockedWatchers(name);
    expect(first).toHaveLength(1);
    // Several socketTimeouts within one blocking read (5 s): the same connection still blocks in it.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await blockedWatchers(name)).toEqual(first);
    await watcher.stop();
    await reader.close();
    client.disconnect();
    expect(watcher.failure()).toBeUndefined();
  });
});

// A review repro of 2026-11-29: an XREAD BLOCK on a link that went silent was waited for for good
// (TCP keepalive tells only after hours); watch() stopped delivering without an error.
describe('watch() on a link that goes silent', () => {
  it('connects again and reads on when its blocking read is not answered within watchBlockMs + commandTimeoutMs', async () => {
    const proxy = await silencingProxy(redisUrl());
    const keyPrefix = freshPrefix('silent');
    const reader = makeStore(prefixes, { url: proxy.url, keyPrefix, watchBlockMs: 200, commandTimeoutMs: 500 });
    const writer = makeStore(prefixes, { keyPrefix });
    const f = new EventFactory('silent');
    await appendBatch(writer, f, 2);
    const watcher = follow((signal) => reader.watch(f.upgradeId, 0, { signal }));
    await until(() => watcher.seen.length >= 2 || watcher.failure() !== undefined);
    proxy.silence(); // every connection open now: nothing passes, and nothing tells the client
    await appendBatch(writer, f, 2);
    await until(() => watcher.seen.length >= 4 || watcher.failure() !== undefined);
    await watcher.stop();
    await reader.close();
    await writer.close();
    await proxy.close();
    expect(watcher.failure()).toBeUndefined();
    expect(watcher.seen).toEqual([1, 2, 3, 4]);
  });
});

// A review repro of 2026-11-29: the check of a silent link timed a blocking read from when it was
// queued, also while its connection was down: one sent after a reconnect that took longer than
// commandTimeoutMs was taken for a dead link before Redis was due to answer it, and the healthy new
// connection was dropped (with a warning) right after every such outage.
describe('watch() after an outage longer than commandTimeoutMs', () => {
  it('keeps the connection it made again: its blocking read is timed from when it was sent', async () => {
    const proxy = await startRedisProxy(redisUrl());
    const keyPrefix = freshPrefix('outage');
    const warnings: string[] = [];
    const logger = { debug: () => {}, info: () => {}, warn: (_: object, msg?: string) => void warnings.push(msg ?? ''), error: () => {} };
    const reader = makeStore(prefixes, { url: proxy.url, keyPrefix, watchBlockMs: 3_000, commandTimeoutMs: 300, logger });
    const writer = makeStore(prefixes, { keyPrefix });
    await reader.list(); // the store's connection: the proxy's first
    const f = new EventFactory('outage');
    const watcher = follow((signal) => reader.watch(f.upgradeId, 0, { signal }));
    await appendBatch(writer, f, 2);
    await until(() => watcher.seen.length >= 2 || watcher.failure() !== undefined);
    expect(proxy.connections).toBe(2);
    // The watcher's connection is cut, and no new one gets through for a second (over commandTimeoutMs):
    // its read, sent again at once, waits in the offline queue meanwhile.
    proxy.down(2);
    await new Promise((r) => setTimeout(r, 1_000));
    proxy.up();
    // Past watchBlockMs + commandTimeoutMs after the cut, and past the first blocking read on the new connection.
    await new Promise((r) => setTimeout(r, 5_000));
    await appendBatch(writer, f, 2);
    await until(() => watcher.seen.length >= 4 || watcher.failure() !== undefined);
    await watcher.stop();
    await reader.close();
    await writer.close();
    await proxy.close();
    expect(watcher.failure()).toBeUndefined();
    expect(watcher.seen).toEqual([1, 2, 3, 4]);
    expect(warnings.filter((w) => w.includes('no answer from Redis on a blocking read'))).toEqual([]);
  }, 30_000);
});

// A review repro of 2026-11-29: after the event loop was blocked past watchBlockMs + commandTimeoutMs
// (a long synchronous task elsewhere in the process), Node runs due timers before it reads the
// sockets: the check of a silent link fired before the answer Redis had sent was read, and dropped
// the healthy connection (withTimeout and the store's own check give up after the loop's I/O).
describe('watch() after its event loop was blocked past watchBlockMs + commandTimeoutMs', () => {
  it('reads the answer Redis sent meanwhile, and keeps its connection', async () => {
    const name = `blocked-loop-${randomUUID().slice(0, 8)}`;
    const warnings: string[] = [];
    const logger = { debug: () => {}, info: () => {}, warn: (_: object, msg?: string) => void warnings.push(msg ?? ''), error: () => {} };
    const keyPrefix = freshPrefix('blocked-loop');
    const reader = makeStore(prefixes, { keyPrefix, connectionName: name, watchBlockMs: 200, commandTimeoutMs: 300, logger });
    const writer = makeStore(prefixes, { keyPrefix });
    const f = new EventFactory('blocked-loop');
    const watcher = follow((signal) => reader.watch(f.upgradeId, 0, { signal }));
    // Not the first XREAD, sent while the connection was being made: one sent on it once it was up.
    await new Promise((r) => setTimeout(r, 500));
    await until(async () => (await blockedWatchers(name)).length > 0);
    // The XREAD blocks in Redis now; Redis answers it (nothing new) while this process cannot read. (In
    // a check-phase callback: the next turn of the loop runs its due timers before it reads sockets.)
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        for (const end = Date.now() + 1_500; Date.now() < end; );
        resolve();
      }),
    );
    await new Promise((r) => setTimeout(r, 100));
    await appendBatch(writer, f, 2);
    await until(() => watcher.seen.length >= 2 || watcher.failure() !== undefined);
    await watcher.stop();
    await reader.close();
    await writer.close();
    expect(watcher.failure()).toBeUndefined();
    expect(watcher.seen).toEqual([1, 2]);
    expect(warnings.filter((w) => w.includes('no answer from Redis on a blocking read'))).toEqual([]);
  });
});

// A review repro of 2026-11-29: watchAll()'s start point, read on the store's connection, was waited
// for without a bound; on a link gone silent the iteration neither started nor failed.
describe('watchAll() whose start point gets no answer', () => {
  it('ends with STORE_UNAVAILABLE after commandTimeoutMs, as when that read fails', async () => {
    const proxy = await silencingProxy(redisUrl());
    const store = makeStore(prefixes, { url: proxy.url, commandTimeoutMs: 300 });
    await store.list(); // connected
    proxy.silence();
    const it = store.watchAll()[Symbol.asyncIterator]();
    const outcome = await Promise.race([
      it.next().then(
        () => 'ended',
        (err: unknown) => err,
      ),
      new Promise((r) => setTimeout(r, 5_000)).then(() => 'still waiting'),
    ]);
    await it.return!(undefined);
    await store.close();
    await proxy.close();
    expect(isProgressError(outcome, 'STORE_UNAVAILABLE')).toBe(true);
  });
});

// A review repro of 2026-11-29: the store's own connection, on a link gone silent without a reset,
// stayed 'ready' in ioredis (TCP tells only after 15 min to 2 h): every append and read timed out
// with STORE_UNAVAILABLE, and nothing made ioredis connect again, though a new connection would work.
describe("the store's own connection on a link that goes silent", () => {
  it.each(['append', 'load', 'readEvents', 'list'] as const)('connects again after a timed-out %s, and appends on with every acknowledged event stored once', async (how) => {
    const proxy = await silencingProxy(redisUrl());
    const warnings: string[] = [];
    const logger = { debug: () => {}, info: () => {}, warn: (_: object, msg?: string) => void warnings.push(msg ?? ''), error: () => {} };
    const store = makeStore(prefixes, { url: proxy.url, commandTimeoutMs: 300, logger });
    const f = new EventFactory(`silent-${how}`);
    const acked: ProgressEvent[] = [...(await appendBatch(store, f, 3))];
    proxy.silence(); // the store's connection open now: nothing passes, and nothing tells the client
    const expected = f.lastSeq;
    const events = f.batch(2);
    const state = f.snapshot();
    const attempt = async (): Promise<unknown> => {
      if (how === 'append') return store.append(f.upgradeId, events, expected, state);
      if (how === 'load') return store.load(f.upgradeId);
      if (how === 'readEvents') return collect(store.readEvents(f.upgradeId, 0));
      return store.list();
    };
    const first = await attempt().then(
      () => 'answered',
      (err: unknown) => err,
    );
    expect(isProgressError(first, 'STORE_UNAVAILABLE')).toBe(true);
    // The same call again, until it is answered (generous: only eventual success is asserted).
    let answered = false;
    for (const end = Date.now() + 20_000; !answered && Date.now() < end; ) {
      answered = await attempt().then(
        () => true,
        (err: unknown) => {
          if (!isProgressError(err, 'STORE_UNAVAILABLE')) throw err;
          return false;
        },
      );
    }
    expect(answered).toBe(true);
    // Not acknowledged before (a read, or a timed-out append Redis refuses once its deadline passed): sent again.
    if (how !== 'append') await store.append(f.upgradeId, events, expected, state);
    acked.push(...events);
    acked.push(...(await appendBatch(store, f, 2)));
    const stored = await collect(store.readEvents(f.upgradeId, 0));
    expect(stored.map((e) => e.eventId)).toEqual(acked.map((e) => e.eventId));
    expect(stored.map((e) => e.seq)).toEqual(acked.map((_, i) => i + 1));
    expect(await store.load(f.upgradeId)).toEqual(JSON.parse(JSON.stringify(f.snapshot())));
    expect(warnings.some((w) => w.includes('dropping the connection'))).toBe(true);
    await store.close();
    await proxy.close();
  }, 60_000);
});

describe('a client passed in on a link that goes silent', () => {
  it("is left to its owner: the store warns once that its link looks dead, and leaves its socket alone", async () => {
    const proxy = await silencingProxy(redisUrl());
    const client = new Redis(proxy.url, { maxRetriesPerRequest: null });
    const warnings: string[] = [];
    const logger = { debug: () => {}, info: () => {}, warn: (_: object, msg?: string) => void warnings.push(msg ?? ''), error: () => {} };
    const store = makeStore(prefixes, { redis: client, commandTimeoutMs: 300, logger });
    await store.list(); // connected
    const socket = client.stream;
    proxy.silence();
    const dead = (): number => warnings.filter((w) => w.includes('looks dead')).length;
    for (let round = 0; round < 3; round++) {
      expect((await errorOf(store.list())).code).toBe('STORE_UNAVAILABLE');
      // The PING that checks the link gets no answer either (generous: only that it comes is asserted).
      await until(() => dead() > 0);
      // Later rounds: time for their PING to go unanswered too (a second warning would show then).
      if (round > 0) await new Promise((r) => setTimeout(r, 1000));
    }
    expect(dead()).toBe(1);
    expect(warnings.some((w) => w.includes('dropping the connection'))).toBe(false);
    expect(client.status).toBe('ready');
    expect(client.stream).toBe(socket);
    await store.close();
    client.disconnect();
    await proxy.close();
  }, 60_000);
});

// Found 2026-11-30 (watchAll under connection loss failed about one run in ten with "entry is not
// iterable"): ioredis re-sends the commands a lost connection left unanswered, and when the new
// connection is lost again while it writes them, it queues the rest behind commands issued
// meanwhile. A page read that was MULTI ... EXEC was cut in two that way: its MULTI and first read
// ran, then another read's MULTI (refused: nested), its commands, and its EXEC, which ran the
// first read's HMGET with its own and handed that read another upgrade's meta as its page.
describe('RedisStore.readEvents under connection loss', () => {
  it("hands out each upgrade's own events when the re-sent reads are cut after the first one's XRANGE", async () => {
    const client = new Redis(redisUrl(), { maxRetriesPerRequest: null });
    const store = makeStore(prefixes, { redis: client });
    const a = new EventFactory('split-a');
    const b = new EventFactory('split-b');
    const storedA = await appendBatch(store, a, 3);
    const storedB = await appendBatch(store, b, 3);
    // Once connected again, the socket dies (as on ECONNRESET) right after ioredis has re-sent the
    // XRANGE of the first read: the commands after it are queued for the next connection.
    client.once('connect', () => {
      const socket = client.stream as unknown as { write: (chunk: unknown, ...rest: unknown[]) => boolean; destroy: () => void };
      const write = socket.write.bind(socket);
      socket.write = (chunk: unknown, ...rest: unknown[]) => {
        const done = write(chunk, ...rest);
        if (/xrange/i.test(String(chunk)) && String(chunk).includes(`{${a.upgradeId}}`)) socket.destroy();
        return done;
      };
    });
    // Both reads are sent, then their connection is lost before Redis answers them.
    const readA = collect(store.readEvents(a.upgradeId, 0)).catch((err: unknown) => err);
    const readB = collect(store.readEvents(b.upgradeId, 0)).catch((err: unknown) => err);
    client.stream.destroy();
    const [gotA, gotB] = await Promise.all([readA, readB]);
    await store.close();
    client.disconnect();
    // The first read may fail (a lost connection: STORE_UNAVAILABLE, read again by a watcher), or
    // return its events; the second, re-sent whole after the next reconnect, returns its own.
    if (isProgressError(gotA)) expect(gotA.code).toBe('STORE_UNAVAILABLE');
    else expect((gotA as ProgressEvent[]).map((e) => [e.upgradeId, e.eventId])).toEqual(storedA.map((e) => [e.upgradeId, e.eventId]));
    expect((gotB as ProgressEvent[]).map((e) => [e.upgradeId, e.eventId])).toEqual(storedB.map((e) => [e.upgradeId, e.eventId]));
  });

  it('answers each read with its own upgrade’s events, or STORE_UNAVAILABLE, while connections are killed during re-sends', async () => {
    const name = `re-kill-${randomUUID().slice(0, 8)}`;
    const writer = makeStore(prefixes);
    const ids = ['a', 'b', 'c'];
    const expected = new Map<string, string[]>();
    for (const id of ids) {
      const f = new EventFactory(id);
      for (let i = 0; i < 8; i++) await appendBatch(writer, f, 1 + (i % 3));
      expected.set(id, (await collect(writer.readEvents(id, 0))).map((e) => e.eventId));
    }
    // Small pages: each read is several page reads, so more of them are in flight when a kill lands.
    const reader = makeStore(prefixes, { keyPrefix: writer.keys.prefix, connectionName: name, pageSize: 2 });
    await reader.list();
    const killer = killEvery(name, 2, 10);
    const wrong: string[] = [];
    let whole = 0;
    const started = Date.now();
    while (killer.kills() < 150 && Date.now() - started < 20_000) {
      await Promise.all(
        [...ids, ...ids].map(async (id) => {
          try {
            const ids = (await collect(reader.readEvents(id, 0))).map((e) => e.eventId);
            if (JSON.stringify(ids) === JSON.stringify(expected.get(id))) whole++;
            else wrong.push(`${id}: ${ids.length} events, not the ${expected.get(id)!.length} stored`);
          } catch (err) {
            // A read cut by a lost connection (STORE_UNAVAILABLE) is an answer too: read again by its caller.
            if (!isProgressError(err, 'STORE_UNAVAILABLE')) wrong.push(`${id}: ${String(err)}`);
          }
        }),
      );
    }
    await killer.stop();
    expect(wrong).toEqual([]);
    expect(killer.kills()).toBeGreaterThanOrEqual(150);
    // (ioredis re-sends plain reads cut by a lost connection: most, if not all, are whole.)
    expect(whole).toBeGreaterThan(0);
    await writer.close();
    await reader.close();
  }, 60_000);
});
