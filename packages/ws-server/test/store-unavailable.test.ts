import { describe, expect, it } from 'vitest';
import { ProgressError, silentLogger, type ProgressTracker } from '@progress/core';
import { ProgressWebSocketServer, type ProgressWebSocketServerOptions } from '../src/index.js';
import { closedAfterEach, openTracker, sleep, type Msg, type TestClient } from './helpers.js';
import { UnreliableStore, WatchableMemoryStore } from './watchable-store.js';

// A store that cannot be read (Redis unreachable from the server, a timeout, damaged data) is not an
// upgrade that does not exist: the client is told so, nothing of the failure is kept, and the next
// request reads the store again.

const opened = closedAfterEach();
const { trackers, connect } = opened;


/** Upgrade `upgradeId` started with one task "t" (seq 3) in `shared`, by a tracker the server does not track. */
async function writeStarted(shared: WatchableMemoryStore, upgradeId: string): Promise<ProgressTracker> {
  const writer = await openTracker(upgradeId, shared);
  trackers.push(writer);
  await writer.startUpgrade();
  await writer.addTask('t', 'T');
  return writer;
}

/** A server whose store is `store` (reads that fail on demand over a shared store). */
async function serve(store: UnreliableStore, options: ProgressWebSocketServerOptions = {}): Promise<string> {
  opened.server = new ProgressWebSocketServer({ port: 0, store, ...options });
  return (await opened.server.start()).url;
}

/** The messages about `upgradeId`, from index `from`. */
const about = (c: TestClient, upgradeId: string, from = 0): Msg[] => c.messages.slice(from).filter((m) => m.upgradeId === upgradeId);

/** Waits for `done()`, polling: for what the server does that no message shows. */
async function eventually(done: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !done(); i++) await sleep(10);
}

describe('a subscribe whose store load fails', () => {
  it('gets an error naming the upgrade instead of `subscribed` exists:false, leaves nothing behind, and is served once the store is back', async () => {
    const shared = new WatchableMemoryStore();
    const writer = await writeStarted(shared, 'u1');
    const store = new UnreliableStore(shared);
    store.down.add('u1');
    const c = await connect(await serve(store));

    c.send({ type: 'subscribe', upgradeId: 'u1' });
    const refused = await c.next((m) => m.upgradeId === 'u1');
    expect(refused).toMatchObject({ type: 'error', code: 'STORE_UNAVAILABLE', upgradeId: 'u1' });
    expect(refused.message).toContain('u1');
    expect(refused.message).not.toContain('10.0.0.7'); // the store's own message stays in the log
    await c.answered(); // the connection stays
    expect(about(c, 'u1')).toEqual([refused]);
    // No subscription, no topic kept, no store watch started for it.
    expect(opened.server!.getStats()).toMatchObject({ topics: 0, watchedUpgrades: 0 });
    expect(shared.activeWatches).toBe(0);

    store.down.clear();
    const from = c.messages.length;
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    expect(await c.next((m) => m.type === 'subscribed', from)).toEqual({ type: 'subscribed', upgradeId: 'u1', exists: true });
    expect(await c.next((m) => m.type === 'snapshot', from)).toMatchObject({ upgradeId: 'u1', seq: 3 });
    await writer.updateTaskProgress('t', 10);
    expect((await c.next((m) => m.type === 'progress_event', from)).data.seq).toBe(4);
  });

  it('answers every subscriber waiting on the same failed load, and the next subscribe reads the store again', async () => {
    const shared = new WatchableMemoryStore();
    await writeStarted(shared, 'u1');
    const store = new UnreliableStore(shared);
    let release!: () => void;
    store.gate = new Promise((resolve) => (release = resolve));
    store.down.add('u1');
    // authorize runs at the start of a subscribe, with nothing awaited until it waits on the topic's load.
    const asked: string[] = [];
    const url = await serve(store, {
      authorize: (_principal, upgradeId) => {
        asked.push(upgradeId);
        return true;
      },
    });
    const a = await connect(url);
    const b = await connect(url);
    a.send({ type: 'subscribe', upgradeId: 'u1' });
    b.send({ type: 'subscribe', upgradeId: 'u1' });
    await eventually(() => asked.length === 2);
    expect(asked).toEqual(['u1', 'u1']);
    expect(store.loads).toBe(1); // b waits on a's load

    release();
    for (const c of [a, b]) expect(await c.next((m) => m.upgradeId === 'u1')).toMatchObject({ type: 'error', code: 'STORE_UNAVAILABLE', upgradeId: 'u1' });
    await a.answered();
    await b.answered();
    expect(opened.server!.getStats()).toMatchObject({ topics: 0, watchedUpgrades: 0 });

    store.gate = undefined;
    store.down.clear();
    for (const c of [a, b]) {
      const from = c.messages.length;
      c.send({ type: 'subscribe', upgradeId: 'u1' });
      expect(await c.next((m) => m.type === 'subscribed', from)).toMatchObject({ upgradeId: 'u1', exists: true });
      expect(await c.next((m) => m.type === 'snapshot', from)).toMatchObject({ upgradeId: 'u1', seq: 3 });
    }
    // The first of them loads it; the second asks the store whether it still holds that run (confirmRun).
    expect(store.loads).toBe(3);
  });

  it("sends the store's ProgressError code (DATA_CORRUPTED), and STORE_UNAVAILABLE for an error that is not one", async () => {
    const shared = new WatchableMemoryStore();
    await writeStarted(shared, 'u1');
    const store = new UnreliableStore(shared);
    store.down.add('u1');
    const c = await connect(await serve(store));

    store.error = () => new ProgressError('DATA_CORRUPTED', 'key progress:u1:state holds no upgrade state');
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    expect(await c.next((m) => m.type === 'error')).toMatchObject({ code: 'DATA_CORRUPTED', upgradeId: 'u1' });
    store.error = () => new Error('socket hang up');
    const from = c.messages.length;
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    expect(await c.next((m) => m.type === 'error', from)).toMatchObject({ code: 'STORE_UNAVAILABLE', upgradeId: 'u1' });
    // A store's error with a code of the protocol's own would read as this server refusing the client.
    for (const code of ['RATE_LIMITED', 'FORBIDDEN', 'INVALID_MESSAGE'] as const) {
      store.error = () => new ProgressError(code, 'the store refused the read');
      const at = c.messages.length;
      c.send({ type: 'subscribe', upgradeId: 'u1' });
      expect(await c.next((m) => m.type === 'error', at), code).toMatchObject({ code: 'STORE_UNAVAILABLE', upgradeId: 'u1' });
    }
    expect(c.ofType('subscribed')).toEqual([]);
  });

  it('gets an error for get_summary too, naming the upgrade, whether the topic is known or not', async () => {
    const shared = new WatchableMemoryStore();
    await writeStarted(shared, 'u1');
    const store = new UnreliableStore(shared);
    const c = await connect(await serve(store));
    c.send({ type: 'subscribe', upgradeId: 'u1' }); // u1's topic is loaded and followed
    await c.next((m) => m.type === 'snapshot');
    store.down.add('*');
    c.send({ type: 'get_summary', upgradeId: 'u2' });
    expect(await c.next((m) => m.type === 'error')).toMatchObject({ code: 'STORE_UNAVAILABLE', upgradeId: 'u2' });
    c.send({ type: 'get_summary', upgradeId: 'u1' }); // served from the followed state
    expect((await c.next((m) => m.type === 'progress_summary')).data).toMatchObject({ lastSeq: 3 });
  });
});

describe('an untracked upgrade asked of a store that fails', () => {
  it('is not served from the state kept of its tracker as if current: an error, and the store is asked again', async () => {
    const shared = new WatchableMemoryStore();
    const store = new UnreliableStore(shared);
    const warnings: string[] = [];
    const url = await serve(store, { logger: { ...silentLogger, warn: (_: unknown, msg?: string) => void warnings.push(msg ?? '') } });
    const local = await openTracker('u1', shared);
    const untrack = opened.server!.track(local);
    await local.startUpgrade();
    await local.addTask('a', 'A'); // seq 3
    await local.close();
    untrack(); // nobody subscribed: the next reader asks the store first
    const other = await openTracker('u1', shared); // another process goes on with u1
    trackers.push(other);
    await other.completeTask('a');
    const stored = (await shared.load('u1'))!.lastSeq;

    store.down.add('u1');
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    expect(await c.next((m) => m.upgradeId === 'u1')).toMatchObject({ type: 'error', code: 'STORE_UNAVAILABLE', upgradeId: 'u1' });
    const asked = c.messages.length;
    const warned = warnings.length;
    c.send({ type: 'get_summary', upgradeId: 'u1' });
    expect(await c.next((m) => m.upgradeId === 'u1', asked)).toMatchObject({ type: 'error', code: 'STORE_UNAVAILABLE', upgradeId: 'u1' });
    expect(c.ofType('snapshot')).toEqual([]);
    // The failed load is logged once, by the topic that tried it.
    expect(warnings.slice(warned)).toEqual(['could not load an upgrade from the store']);

    store.down.clear();
    const from = c.messages.length;
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    expect(await c.next((m) => m.type === 'snapshot', from)).toMatchObject({ seq: stored });
    await other.addTask('late', 'Late');
    expect((await c.next((m) => m.type === 'progress_event', from)).data.seq).toBe(stored + 1);
  });

  it('keeps its last state through the failure, and serves it once the store answers that it holds no such upgrade', async () => {
    const store = new UnreliableStore(new WatchableMemoryStore());
    const url = await serve(store);
    const local = await openTracker('local-1'); // its own memory store, not the server's
    const untrack = opened.server!.track(local);
    await local.startUpgrade();
    await local.completeUpgrade(); // seq 3
    await local.close();
    untrack();

    store.down.add('local-1');
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'local-1' });
    expect(await c.next((m) => m.upgradeId === 'local-1')).toMatchObject({ type: 'error', code: 'STORE_UNAVAILABLE' });
    store.down.clear();
    const from = c.messages.length;
    c.send({ type: 'subscribe', upgradeId: 'local-1' });
    expect(await c.next((m) => m.type === 'subscribed', from)).toMatchObject({ exists: true });
    expect(await c.next((m) => m.type === 'snapshot', from)).toMatchObject({ seq: 3, data: { status: 'completed' } });
  });
});

describe('a resume whose seq the server cannot check', () => {
  it('is resynced as "unavailable", not "ahead", when the store cannot be read to check a seq past what the server knows', async () => {
    const shared = new WatchableMemoryStore();
    await writeStarted(shared, 'u1');
    const store = new UnreliableStore(shared);
    const url = await serve(store);
    const first = await connect(url);
    first.send({ type: 'subscribe', upgradeId: 'u1' });
    await first.next((m) => m.type === 'snapshot');
    store.down.add('u1');
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 10 });
    expect(await c.next((m) => m.type === 'resync')).toEqual({ type: 'resync', upgradeId: 'u1', reason: 'unavailable', exists: true });
    expect(await c.next((m) => m.type === 'snapshot')).toMatchObject({ upgradeId: 'u1', seq: 3 });
  });
});

describe('a "*" subscription over a store that fails', () => {
  it('gets an error instead of `subscribed` when the store cannot list, holds no subscription, and lists again on the next subscribe', async () => {
    const shared = new WatchableMemoryStore();
    await writeStarted(shared, 'u1');
    const store = new UnreliableStore(shared);
    store.listDown = true;
    const star = await connect(await serve(store));

    star.send({ type: 'subscribe', upgradeId: '*' });
    expect(await star.next((m) => m.upgradeId === '*')).toMatchObject({ type: 'error', code: 'STORE_UNAVAILABLE', upgradeId: '*' });
    await star.answered();
    expect(star.ofType('subscribed')).toEqual([]);
    // The store's watchAll, started for it, is stopped: no `*` subscription is left.
    await eventually(() => shared.activeWatches === 0);
    expect(shared.activeWatches).toBe(0);

    store.listDown = false;
    const from = star.messages.length;
    star.send({ type: 'subscribe', upgradeId: '*' });
    expect(await star.next((m) => m.type === 'subscribed', from)).toMatchObject({ upgradeId: '*', exists: true });
    expect(await star.next((m) => m.type === 'snapshot', from)).toMatchObject({ upgradeId: 'u1', seq: 3 });
  });

  it('tells the subscriber which upgrades the store could not read, once each, and sends each when it can be read', async () => {
    const shared = new WatchableMemoryStore();
    await writeStarted(shared, 'u1');
    await writeStarted(shared, 'u2');
    const store = new UnreliableStore(shared);
    store.down.add('u1');
    const star = await connect(await serve(store));

    star.send({ type: 'subscribe', upgradeId: '*' });
    expect(await star.next((m) => m.type === 'subscribed')).toMatchObject({ upgradeId: '*' });
    expect(await star.next((m) => m.type === 'snapshot')).toMatchObject({ upgradeId: 'u2', seq: 3 });
    expect(await star.next((m) => m.upgradeId === 'u1')).toMatchObject({ type: 'error', code: 'STORE_UNAVAILABLE', upgradeId: 'u1' });

    // An upgrade that appears while its load fails: told too.
    store.down.add('u3');
    const born = await openTracker('u3', shared);
    trackers.push(born);
    await born.startUpgrade();
    expect(await star.next((m) => m.upgradeId === 'u3')).toMatchObject({ type: 'error', code: 'STORE_UNAVAILABLE', upgradeId: 'u3' });

    // u1 writes nothing more: only the server loading it again can bring it.
    store.down.clear();
    expect(await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'u1', 0, 15_000)).toMatchObject({ seq: 3 });
    expect(await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'u3', 0, 15_000)).toMatchObject({ seq: 2 });
    expect(star.ofType('error', 'u1')).toHaveLength(1);
    expect(star.ofType('error', 'u3')).toHaveLength(1);
  });

  it('tells it once while the store keeps failing: the reload that fails again sends no second error', async () => {
    const shared = new WatchableMemoryStore();
    await writeStarted(shared, 'u1');
    const store = new UnreliableStore(shared);
    store.down.add('u1');
    const star = await connect(await serve(store));
    star.send({ type: 'subscribe', upgradeId: '*' });
    expect(await star.next((m) => m.upgradeId === 'u1')).toMatchObject({ type: 'error', code: 'STORE_UNAVAILABLE' });
    // The reload the server makes for it (after 1 s) fails too: the subscriber was told already.
    const loads = store.loads;
    await eventually(() => store.loads > loads);
    expect(store.loads).toBeGreaterThan(loads);
    await star.answered();
    expect(star.ofType('error', 'u1')).toHaveLength(1);
  });
});

/**
 * A `*` subscriber (A) whose load of the store's one upgrade waits on a gate leaves (watchAll stops,
 * the topic goes), and another (B) subscribes `*`, its load waiting too. Returns B and what opens the gate.
 */
async function starComesBackWhileLoading(store: UnreliableStore, url: string): Promise<{ b: TestClient; open: () => void }> {
  let open!: () => void;
  store.gate = new Promise((resolve) => (open = resolve));
  const a = await connect(url);
  a.send({ type: 'subscribe', upgradeId: '*' });
  await a.next((m) => m.type === 'subscribed');
  await eventually(() => store.loads === 1);
  await a.close();
  await eventually(() => opened.server!.getStats().topics === 0);
  expect(opened.server!.getStats().topics).toBe(0);
  const b = await connect(url);
  b.send({ type: 'subscribe', upgradeId: '*' });
  await b.next((m) => m.type === 'subscribed');
  await eventually(() => store.loads === 2);
  return {
    b,
    open: () => {
      store.gate = undefined;
      open();
    },
  };
}

describe('failed loads and the "*" subscribers (found by review)', () => {
  it('a "*" subscriber that comes back while a load fails follows the upgrade live once it is read (not a topic the server let go)', async () => {
    const shared = new WatchableMemoryStore();
    const writer = await writeStarted(shared, 'u1');
    const store = new UnreliableStore(shared);
    const { b, open } = await starComesBackWhileLoading(store, await serve(store));
    // Both loads fail, then the store is back.
    store.down.add('u1');
    open();
    await b.next((m) => m.type === 'error' && m.upgradeId === 'u1');
    store.down.clear();

    expect(await b.next((m) => m.type === 'snapshot' && m.upgradeId === 'u1', 0, 15_000)).toMatchObject({ seq: 3 });
    await writer.updateTaskProgress('t', 10);
    expect((await b.next((m) => m.type === 'progress_event' && m.upgradeId === 'u1')).data.seq).toBe(4);
    // The released topic's reload would have read the store after stop().
    await b.close();
    await opened.server!.stop();
    opened.server = undefined;
    const loads = store.loads;
    await sleep(1500);
    expect(store.loads).toBe(loads);
  }, 30_000);

  it('a "*" subscriber that comes back while a load is slow follows the upgrade live (not the topic the server let go)', async () => {
    const shared = new WatchableMemoryStore();
    const writer = await writeStarted(shared, 'u1');
    const store = new UnreliableStore(shared);
    const { b, open } = await starComesBackWhileLoading(store, await serve(store));
    // Both loads succeed; the released topic's finishes first.
    open();
    expect(await b.next((m) => m.type === 'snapshot' && m.upgradeId === 'u1')).toMatchObject({ seq: 3 });
    await writer.updateTaskProgress('t', 10);
    expect((await b.next((m) => m.type === 'progress_event' && m.upgradeId === 'u1')).data.seq).toBe(4);
  });

  it('events of an upgrade whose load fails do not each load it again: the reload keeps its backoff', async () => {
    const shared = new WatchableMemoryStore();
    const writer = await writeStarted(shared, 'u2');
    const store = new UnreliableStore(shared);
    store.error = () => new ProgressError('DATA_CORRUPTED', 'bad json at key progress:u2');
    store.down.add('u2');
    const star = await connect(await serve(store));
    star.send({ type: 'subscribe', upgradeId: '*' });
    expect(await star.next((m) => m.upgradeId === 'u2')).toMatchObject({ type: 'error', code: 'DATA_CORRUPTED' });
    const loads = store.loads;
    for (let i = 1; i <= 100; i++) await writer.updateTaskProgress('t', i / 2);
    await star.answered();
    // At most the one reload its backoff allows meanwhile (1 s), not one per event.
    expect(store.loads - loads).toBeLessThanOrEqual(1);
    expect(star.ofType('error', 'u2')).toHaveLength(1);
  });

  it('a subscribe by name that fails is answered to that subscriber alone, not to the "*" subscribers', async () => {
    const shared = new WatchableMemoryStore();
    await writeStarted(shared, 'real');
    const store = new UnreliableStore(shared);
    const url = await serve(store);
    const star = await connect(url);
    star.send({ type: 'subscribe', upgradeId: '*' });
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'real');
    store.down.add('*');
    const c = await connect(url);
    for (let i = 0; i < 5; i++) c.send({ type: 'subscribe', upgradeId: `ghost-${i}` });
    for (let i = 0; i < 5; i++) await c.next((m) => m.type === 'error' && m.upgradeId === `ghost-${i}`);
    // A `*` error would have gone out before the subscriber's own; the pong comes after anything sent before it.
    await star.answered();
    expect(star.ofType('error')).toEqual([]);
  });
});
