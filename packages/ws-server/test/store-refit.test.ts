import { describe, expect, it } from 'vitest';
import { MemoryStore, type ProgressEvent, type UpgradeProgress } from '@progress/core';
import { ProgressWebSocketServer } from '../src/index.js';
import { closedAfterEach, openTracker, sleep, type Msg, type TestClient } from './helpers.js';
import { GatedLoadStore, WatchableMemoryStore } from './watchable-store.js';

// A '*' subscriber over a store follows upgrades through the store's watchAll() only. These are the
// cases where the store's events stop fitting the state the server holds.

const opened = closedAfterEach();
const { trackers, connect } = opened;

/** A store whose reads answer on a later turn of the event loop, as a network store does, and are counted. */
class CountingStore extends WatchableMemoryStore {
  reads = 0;
  /** Appends without telling the watchers (a watchAll that lost an entry of its feed). */
  muted = false;
  override async append(upgradeId: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    if (this.muted) return MemoryStore.prototype.append.call(this, upgradeId, events, expectedSeq, state);
    return super.append(upgradeId, events, expectedSeq, state);
  }
  override async *readEvents(upgradeId: string, afterSeq: number, limit?: number): AsyncIterable<ProgressEvent> {
    this.reads++;
    await new Promise((resolve) => setImmediate(resolve));
    yield* super.readEvents(upgradeId, afterSeq, limit);
  }
}

/** What the client holds of `upgradeId`: its last snapshot, with the events after it folded in by seq. */
function view(client: TestClient, upgradeId: string): { createdAt: string; seq: number } | undefined {
  let at: { createdAt: string; seq: number } | undefined;
  for (const m of client.messages as Msg[]) {
    if (m.upgradeId !== upgradeId) continue;
    if (m.type === 'snapshot') at = { createdAt: m.data.createdAt, seq: m.seq };
    else if (m.type === 'resync') at = undefined;
    else if (m.type === 'progress_event' && at && m.data.seq === at.seq + 1) at = { ...at, seq: m.data.seq };
  }
  return at;
}

async function starOver(store: WatchableMemoryStore, logger?: object): Promise<TestClient> {
  const first = await openTracker('u1', store);
  await first.startUpgrade();
  await first.addTask('t', 'T');
  for (let i = 1; i <= 5; i++) await first.updateTaskProgress('t', i * 10);
  await first.close(); // seq 8
  opened.server = new ProgressWebSocketServer({ port: 0, store, ...(logger ? { logger: logger as never } : {}) });
  const { url } = await opened.server.start();
  const star = await connect(url);
  star.send({ type: 'subscribe', upgradeId: '*' });
  await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'u1');
  return star;
}

describe("'*' over a store: an upgrade deleted and created again", () => {
  it('is resynced to the new run, never given its events on top of the old state', async () => {
    const store = new WatchableMemoryStore();
    const star = await starOver(store);
    await store.delete('u1');
    const again = await openTracker('u1', store);
    trackers.push(again);
    await again.startUpgrade();
    await again.addTask('t', 'T');
    for (let i = 1; i <= 8; i++) await again.updateTaskProgress('t', i);
    const want = { createdAt: again.progress.createdAt, seq: again.progress.lastSeq };
    await star.until(() => view(star, 'u1')?.seq === want.seq && view(star, 'u1')?.createdAt === want.createdAt, 5000, 'the new run at its last seq');
    expect(star.messages.some((m) => m.type === 'resync' && m.upgradeId === 'u1')).toBe(true);
  });

  it('an event that does not apply to the state held makes the server reload it, not read the store in a loop', async () => {
    const store = new CountingStore();
    const first = await openTracker('u1', store);
    await first.addTask('t', 'T'); // seq 2
    await first.close();
    const warned: unknown[] = [];
    opened.server = new ProgressWebSocketServer({ port: 0, store, logger: { debug() {}, info() {}, error() {}, warn: (obj: object) => void warned.push(obj) } });
    const { url } = await opened.server.start();
    const star = await connect(url);
    star.send({ type: 'subscribe', upgradeId: '*' });
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'u1');
    // Run again, and the server misses the new run's seq 1 (as a watchAll that lost an entry of its
    // feed would): its seq 3 adds task t again, which does not apply to the old state.
    await store.delete('u1');
    store.muted = true;
    const again = await openTracker('u1', store);
    trackers.push(again);
    store.muted = false;
    await again.startUpgrade();
    await again.addTask('t', 'T');
    await again.updateTaskProgress('t', 10);
    await star.until(() => view(star, 'u1')?.createdAt === again.progress.createdAt && view(star, 'u1')?.seq === again.progress.lastSeq, 5000, 'the new run');
    const before = store.reads;
    await sleep(500);
    expect(store.reads - before).toBe(0);
    expect(warned.length).toBeLessThan(5);
  });

  it('a tracked upgrade kept across stop() and start(), untracked and then created again in the store, is resynced to the new run', async () => {
    const store = new WatchableMemoryStore();
    const first = await openTracker('u1', store);
    await first.startUpgrade();
    await first.addTask('t', 'T');
    opened.server = new ProgressWebSocketServer({ port: 0, store });
    opened.server.track(first);
    await opened.server.start();
    // Trackers stay tracked over a stop(), so start() may be called again: its topic is used again.
    await opened.server.stop();
    const { url } = await opened.server.start();
    const star = await connect(url);
    star.send({ type: 'subscribe', upgradeId: '*' });
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'u1');
    opened.server.untrack(first);
    await first.close();
    await store.delete('u1');
    const again = await openTracker('u1', store);
    trackers.push(again);
    await again.startUpgrade();
    await again.addTask('t', 'T');
    for (let i = 1; i <= 4; i++) await again.updateTaskProgress('t', i);
    const want = { createdAt: again.progress.createdAt, seq: again.progress.lastSeq };
    await star.until(() => view(star, 'u1')?.seq === want.seq && view(star, 'u1')?.createdAt === want.createdAt, 5000, 'the new run at its last seq');
  });

  it('a reload in flight when the server stops changes nothing after, and arms no timer to load again', async () => {
    const store = new GatedLoadStore();
    const first = await openTracker('u1', store);
    await first.startUpgrade();
    await first.close();
    opened.server = new ProgressWebSocketServer({ port: 0, store });
    const { url } = await opened.server.start();
    const star = await connect(url);
    star.send({ type: 'subscribe', upgradeId: '*' });
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'u1');
    // Created again: the new run's upgrade.created starts a reload, whose load() is held.
    await store.delete('u1');
    const again = await openTracker('u1', store);
    trackers.push(again);
    let open!: () => void;
    store.gate = new Promise<void>((resolve) => (open = resolve));
    await again.startUpgrade();
    await sleep(50);
    const loadsAtStop = store.loads;
    await opened.server.stop();
    opened.server = undefined;
    // The held load fails now (the store went away after the server): nothing may load again.
    store.failing = 'answered';
    open();
    await sleep(1500);
    expect(store.loads).toBe(loadsAtStop);
  });
});

