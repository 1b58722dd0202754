import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressError, ProgressTracker, applyEventInPlace, type ProgressEvent, type UpgradeProgress } from '@progress/core';
import { ProgressWebSocketServer } from '../src/index.js';
import { closedAfterEach, copyOfStore, deferred, expectConsecutive, foldClient, openTracker, sleep, type TestClient } from './helpers.js';
import { WatchableMemoryStore } from './watchable-store.js';

const opened = closedAfterEach();
const { trackers, connect } = opened;


/** A server on `store`, which holds upgrade u1 (started, one task "t") written by a tracker the server does not track. */
async function serveStartedUpgrade(store: WatchableMemoryStore): Promise<{ writer: ProgressTracker; url: string }> {
  const writer = await openTracker('u1', store);
  trackers.push(writer);
  await writer.startUpgrade();
  await writer.addTask('t', 'T');
  opened.server = new ProgressWebSocketServer({ port: 0, store });
  const { url } = await opened.server.start();
  return { writer, url };
}

/**
 * A store whose watchAll() can lose the next event (a feed entry lost) or fail on it (a feed trimmed
 * under it, the event never handed out), and whose reads can be held after they have read (a page
 * read but not yet returned).
 */
class FlakyFeedStore extends WatchableMemoryStore {
  dropNext = false;
  failNext = false;
  gate: Promise<void> | undefined;
  reads = 0;

  override async *watchAll(options: { signal?: AbortSignal } = {}): AsyncIterable<ProgressEvent> {
    for await (const ev of super.watchAll(options)) {
      if (this.failNext) {
        this.failNext = false;
        throw new ProgressError('NOT_FOUND', 'the feed was trimmed past this follower', { context: { reason: 'trimmed' } });
      }
      if (this.dropNext) {
        this.dropNext = false;
        continue;
      }
      yield ev;
    }
  }

  override async *readEvents(upgradeId: string, afterSeq: number, limit?: number): AsyncIterable<ProgressEvent> {
    const page: ProgressEvent[] = [];
    for await (const ev of super.readEvents(upgradeId, afterSeq, limit)) page.push(ev);
    this.reads++;
    if (this.gate) await this.gate;
    yield* page;
  }
}

/** A server on a FlakyFeedStore holding u1 (see serveStartedUpgrade), and a `*` client that has its snapshot (seq 3). */
async function followAllOfFlakyStore(): Promise<{ store: FlakyFeedStore; writer: ProgressTracker; star: TestClient }> {
  const store = new FlakyFeedStore();
  const { writer, url } = await serveStartedUpgrade(store);
  const star = await connect(url);
  star.send({ type: 'subscribe', upgradeId: '*' });
  expect((await star.next((m) => m.type === 'snapshot')).seq).toBe(3);
  return { store, writer, star };
}

// The store path with an in-process store that can watch (the Redis test runs the same across processes).
describe('a store with watch() as the source', () => {
  it('serves upgrades written by a tracker it does not track: snapshot, replay, live, "*", one shared watch', async () => {
    const store = new WatchableMemoryStore();
    const { writer, url } = await serveStartedUpgrade(store);

    const a = await connect(url);
    const b = await connect(url);
    const star = await connect(url);
    a.send({ type: 'subscribe', upgradeId: 'u1' });
    b.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 1 });
    star.send({ type: 'subscribe', upgradeId: '*' });
    expect((await a.next((m) => m.type === 'snapshot')).seq).toBe(3);
    await b.until((ms) => ms.filter((m) => m.type === 'progress_event').length === 2);
    expect((await star.next((m) => m.type === 'snapshot')).seq).toBe(3);
    expect(store.activeWatches).toBe(2); // one watch for u1 (shared by a and b), one watchAll

    for (let i = 0; i < 50; i++) await writer.updateTaskProgress('t', i + 1);
    const later = await openTracker('u2', store); // a new upgrade appears
    trackers.push(later);
    await later.startUpgrade();
    await a.until((ms) => ms.filter((m) => m.type === 'progress_event').length === 50);
    await b.until((ms) => ms.filter((m) => m.type === 'progress_event').length === 52);
    await star.until((ms) => ms.some((m) => m.upgradeId === 'u2' && m.type === 'progress_event'));
    expectConsecutive(a.seqs('u1'), 4, 53);
    expectConsecutive(b.seqs('u1'), 2, 53);
    expectConsecutive(star.seqs('u1'), 4, 53);
    expect(star.ofType('snapshot', 'u2')[0]!.seq).toBeLessThanOrEqual(2);

    a.send({ type: 'get_summary', upgradeId: 'u1' });
    a.send({ type: 'list_upgrades' });
    expect((await a.next((m) => m.type === 'progress_summary')).data.lastSeq).toBe(53);
    expect((await a.next((m) => m.type === 'upgrades')).data.map((r: { upgradeId: string }) => r.upgradeId).sort()).toEqual(['u1', 'u2']);

    await a.close();
    await b.close();
    await star.close();
    for (let i = 0; i < 50 && store.activeWatches > 0; i++) await sleep(10);
    expect(store.activeWatches).toBe(0);
  });

  it('stops the store watch of an upgrade once its last subscriber by name leaves, though a "*" subscriber keeps it', async () => {
    const store = new WatchableMemoryStore();
    const { writer, url } = await serveStartedUpgrade(store);
    const star = await connect(url);
    star.send({ type: 'subscribe', upgradeId: '*' });
    expect((await star.next((m) => m.type === 'snapshot')).seq).toBe(3);
    const byName = await connect(url);
    byName.send({ type: 'subscribe', upgradeId: 'u1' });
    await byName.next((m) => m.type === 'snapshot');
    expect(opened.server!.getStats().watchedUpgrades).toBe(1);
    byName.send({ type: 'unsubscribe', upgradeId: 'u1' });
    await byName.answered();
    // watchAll feeds the "*" subscriber: a watch nobody needs would count against maxWatchedUpgrades.
    expect(opened.server!.getStats().watchedUpgrades).toBe(0);
    for (let i = 0; i < 50 && store.activeWatches > 1; i++) await sleep(10);
    expect(store.activeWatches).toBe(1);
    await writer.updateTaskProgress('t', 5);
    await star.until(() => star.seqs('u1').includes(4));
  });

  it('sends resync (ahead) and the snapshot to a sinceSeq beyond what the store holds', async () => {
    const { url } = await serveStartedUpgrade(new WatchableMemoryStore());
    const first = await connect(url);
    first.send({ type: 'subscribe', upgradeId: 'u1' });
    expect((await first.next((m) => m.type === 'snapshot')).seq).toBe(3);
    // The topic is loaded and watched now; a client resuming past it is asked the store's word.
    const ahead = await connect(url);
    ahead.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 99 });
    expect(await ahead.next((m) => m.type === 'resync')).toMatchObject({ upgradeId: 'u1', reason: 'ahead', exists: true });
    expect((await ahead.next((m) => m.type === 'snapshot')).seq).toBe(3);
  });

  it('counts the live events held during a replay against the client no more once they were sent: replay after replay, it stays open', async () => {
    const store = new FlakyFeedStore();
    const writer = await openTracker('u1', store);
    trackers.push(writer);
    await writer.startUpgrade();
    await writer.addTask('t', 'T');
    opened.server = new ProgressWebSocketServer({ port: 0, store, maxBufferedBytes: 64 * 1024 });
    const { url } = await opened.server.start();
    const c = await connect(url);
    const pad = 'h'.repeat(2000);
    // Each round holds 10 events of 2 KB while the replay waits: 6 rounds hold about twice maxBufferedBytes in all.
    for (let round = 0; round < 6; round++) {
      let release!: () => void;
      store.gate = new Promise((resolve) => (release = resolve));
      const reads = store.reads;
      const from = c.messages.length;
      c.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 0 });
      for (let i = 0; i < 200 && store.reads === reads; i++) await sleep(5);
      expect(store.reads).toBeGreaterThan(reads);
      for (let i = 0; i < 10; i++) await writer.updateTaskProgress('t', (round * 10 + i) % 99 + 1, undefined, { pad });
      const last = writer.durableProgress.lastSeq;
      // The live events reach the server (and are held) before the replay goes on.
      for (let i = 0; i < 200 && opened.server.getStats().eventsFramed < 10 * (round + 1); i++) await sleep(5);
      store.gate = undefined;
      release();
      await c.until((ms) => ms.slice(from).some((m) => m.type === 'progress_event' && m.data.seq === last), 10_000, `round ${round}`);
      expectConsecutive(c.messages.slice(from).filter((m) => m.type === 'progress_event').map((m) => m.data.seq as number), 1, last);
      c.send({ type: 'unsubscribe', upgradeId: 'u1' });
    }
    expect(c.closeCode).toBeUndefined();
  });

  it('catches up what "*" subscribers missed while watchAll was down: later events of served upgrades, and upgrades that appeared', async () => {
    const { store, writer, star } = await followAllOfFlakyStore();
    await writer.updateTaskProgress('t', 10);
    await star.until(() => star.seqs('u1').includes(4));
    store.failNext = true;
    await writer.updateTaskProgress('t', 50); // lost with the failing watchAll
    await writer.completeTask('t'); // while no watchAll runs; the last event of this upgrade
    const born = await openTracker('u2', store); // an upgrade that appears while no watchAll runs
    trackers.push(born);
    await born.startUpgrade();
    await star.until(() => star.seqs('u1').includes(6), 5_000, 'seq 6 after watchAll came back');
    expectConsecutive(star.seqs('u1'), 4, 6);
    expect((await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'u2', 0, 5_000)).seq).toBe(2);
  });

  it('catches up after watchAll came back also when a gap fill was running then (it fills again)', async () => {
    const { store, writer, star } = await followAllOfFlakyStore();
    let release!: () => void;
    store.gate = new Promise((resolve) => (release = resolve));
    store.dropNext = true;
    await writer.updateTaskProgress('t', 10); // seq 4, lost by the feed
    await writer.updateTaskProgress('t', 20); // seq 5 shows the gap: the server fills it, and its read is held
    for (let i = 0; i < 200 && store.reads === 0; i++) await sleep(10);
    expect(store.reads).toBe(1);
    store.failNext = true;
    await writer.updateTaskProgress('t', 30); // seq 6: watchAll fails
    await writer.completeTask('t'); // seq 7, while no watchAll runs
    // watchAll comes back (and the catch-up runs) while the fill's read is still held.
    for (let i = 0; i < 300 && store.activeWatches !== 0; i++) await sleep(10);
    for (let i = 0; i < 300 && store.activeWatches === 0; i++) await sleep(10);
    expect(store.activeWatches).toBe(1);
    release();
    await star.until(() => star.seqs('u1').includes(7), 5_000, 'seq 7');
    expectConsecutive(star.seqs('u1'), 4, 7);
  });

  it('moves a subscriber from the tracker to the store when the tracker is untracked, without a gap', async () => {
    const store = new WatchableMemoryStore();
    const writer = await openTracker('u1', store);
    trackers.push(writer);
    opened.server = new ProgressWebSocketServer({ port: 0, store });
    const { url } = await opened.server.start();
    opened.server.track(writer);
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    await c.next((m) => m.type === 'snapshot');
    await writer.startUpgrade();
    opened.server.untrack(writer);
    await writer.addTask('t', 'T');
    await writer.updateTaskProgress('t', 10);
    await c.until((ms) => ms.filter((m) => m.type === 'progress_event').length === 3);
    expectConsecutive(c.seqs('u1'), 2, 4);
  });
});

describe('a failing store', () => {
  it('answers STORE_UNAVAILABLE, not NOT_FOUND, when the store cannot serve a request, and keeps the connection', async () => {
    class DownStore extends WatchableMemoryStore {
      override async list(): Promise<never> {
        throw new ProgressError('STORE_UNAVAILABLE', 'redis is down');
      }
      override async load(): Promise<never> {
        throw new ProgressError('STORE_UNAVAILABLE', 'redis is down');
      }
    }
    opened.server = new ProgressWebSocketServer({ port: 0, store: new DownStore() });
    const { url } = await opened.server.start();
    const c = await connect(url);
    c.send({ type: 'list_upgrades' });
    const listed = await c.next((m) => m.type === 'error');
    expect(listed).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(listed.message).not.toContain('redis is down');
    c.send({ type: 'get_summary', upgradeId: 'u1' });
    expect(await c.next((m) => m.type === 'error' && m !== listed)).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    c.send({ type: 'ping' });
    await c.next((m) => m.type === 'pong');
  });
});

describe('a tracker that comes and goes', () => {
  it('resyncs a subscriber when another run of the same upgrade id is tracked (its seqs start again at 1)', async () => {
    opened.server = new ProgressWebSocketServer({ port: 0 });
    const { url } = await opened.server.start();
    const first = await openTracker('u1');
    const untrackFirst = opened.server.track(first);
    await first.startUpgrade();
    for (let i = 0; i < 5; i++) await first.addTask(`old-${i}`, `Old ${i}`);
    await first.failUpgrade('first run failed'); // seq 8
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    expect((await c.next((m) => m.type === 'snapshot')).seq).toBe(8);
    await first.close();
    untrackFirst();
    const second = await openTracker('u1'); // a fresh store: seq 1 again
    trackers.push(second);
    opened.server.track(second);
    await second.startUpgrade(); // 2
    await second.addTask('new', 'New'); // 3
    await second.completeTask('new'); // 4
    await second.completeUpgrade(); // 5
    await c.until((ms) => ms.some((m) => m.type === 'progress_event' && m.data.seq === 5));
    const after = c.messages.slice(c.messages.findIndex((m) => m.type === 'resync'));
    expect(after[0]).toMatchObject({ type: 'resync', upgradeId: 'u1' });
    expect(after[1]).toMatchObject({ type: 'snapshot', upgradeId: 'u1' });
    const events = after.filter((m) => m.type === 'progress_event').map((m) => m.data.seq as number);
    expectConsecutive([after[1]!.seq as number, ...events], after[1]!.seq as number, 5);
    expect(after.filter((m) => m.type === 'progress_event').at(-1)!.data.type).toBe('upgrade.completed');
  });

  it('serves what the store holds to a later subscriber after the tracker was untracked and another process wrote on', async () => {
    const store = new WatchableMemoryStore();
    opened.server = new ProgressWebSocketServer({ port: 0, store });
    const { url } = await opened.server.start();
    const local = await openTracker('u1', store);
    const untrack = opened.server.track(local);
    await local.startUpgrade();
    await local.addTask('a', 'A'); // seq 3
    await local.close();
    untrack(); // as the meta package does on close; nobody subscribed
    const other = await openTracker('u1', store); // another process goes on with u1
    trackers.push(other);
    await other.completeTask('a'); // seq 4 (task.started and completed: at least one more)
    const stored = (await store.load('u1'))!.lastSeq;
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    expect((await c.next((m) => m.type === 'snapshot')).seq).toBe(stored);
    await other.addTask('late', 'Late');
    expect((await c.next((m) => m.type === 'progress_event')).data.seq).toBe(stored + 1);
  });
});

describe('an upgrade deleted from the store while a "*" subscriber follows it', () => {
  it('is not listed any more', async () => {
    const store = new WatchableMemoryStore();
    const { writer, url } = await serveStartedUpgrade(store);
    const star = await connect(url);
    star.send({ type: 'subscribe', upgradeId: '*' });
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'u1');
    await writer.close();
    expect(await store.delete('u1')).toBe(true);
    const other = await connect(url);
    other.send({ type: 'list_upgrades' });
    expect((await other.next((m) => m.type === 'upgrades')).data).toEqual([]);
  });
});

describe('two runs of one upgrade id at once', () => {
  it('the events of an older run still tracked do not reach the subscribers of the run tracked last', async () => {
    opened.server = new ProgressWebSocketServer({ port: 0 });
    const { url } = await opened.server.start();
    const old = await openTracker('two-runs');
    trackers.push(old);
    opened.server.track(old);
    await old.startUpgrade();
    await old.addTask('old-task', 'Old');
    await sleep(5); // another createdAt
    const fresh = await openTracker('two-runs');
    trackers.push(fresh);
    opened.server.track(fresh);
    await fresh.startUpgrade();
    await fresh.addTask('fresh-first', 'Fresh first');
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'two-runs' });
    expect(await c.next((m) => m.type === 'snapshot')).toMatchObject({ seq: 3, data: { createdAt: fresh.durableProgress.createdAt } });
    await old.updateTaskProgress('old-task', 50, 'from the old run'); // its seq 4
    await fresh.addTask('new-task', 'New'); // the new run's seq 4
    await c.until(() => c.seqs('two-runs').includes(4), 5000, 'the new run\'s seq 4');
    expect(c.ofType('progress_event', 'two-runs').map((m) => [m.data.seq, m.data.taskId])).toEqual([[4, 'new-task']]);
  });

  it('a new run of an upgrade the server is a sink of (not tracked) resyncs its subscribers to the new run', async () => {
    opened.server = new ProgressWebSocketServer({ port: 0 });
    const { url } = await opened.server.start();
    const run1 = await ProgressTracker.open({ upgradeId: 'sink-runs', planId: 'p', clusterName: 'c', sinks: [opened.server] });
    await run1.startUpgrade();
    for (let i = 0; i < 5; i++) await run1.addTask(`old${i}`, `Old ${i}`);
    await run1.close();
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'sink-runs' });
    expect(await c.next((m) => m.type === 'snapshot')).toMatchObject({ seq: 7 });
    await sleep(5); // another createdAt
    const run2 = await ProgressTracker.open({ upgradeId: 'sink-runs', planId: 'p', clusterName: 'c', sinks: [opened.server] });
    trackers.push(run2);
    await run2.startUpgrade();
    for (let i = 0; i < 8; i++) await run2.addTask(`new${i}`, `New ${i}`);
    await c.until(() => c.seqs('sink-runs').includes(run2.durableProgress.lastSeq), 5000, 'the new run\'s last event');
    expect(c.ofType('resync', 'sink-runs')).toEqual([expect.objectContaining({ reason: 'gap' })]);
    // After the resync: the new run's snapshot (seq 1), then every one of its events in order.
    const snapshots = c.ofType('snapshot', 'sink-runs');
    expect(snapshots.at(-1)).toMatchObject({ seq: 1, data: { createdAt: run2.durableProgress.createdAt } });
    const after = c.messages.slice(c.messages.indexOf(snapshots.at(-1)!));
    expect(after.filter((m) => m.type === 'progress_event').map((m) => m.data.seq)).toEqual(Array.from({ length: run2.durableProgress.lastSeq - 1 }, (_, i) => i + 2));
  });
});

describe('runs of an upgrade the server is a sink of (not tracked)', () => {
  it('an older run still writing after a new one started does not take the subscribers back to it', async () => {
    opened.server = new ProgressWebSocketServer({ port: 0 });
    const { url } = await opened.server.start();
    const run1 = await ProgressTracker.open({ upgradeId: 'flip', planId: 'p', clusterName: 'c', sinks: [opened.server] });
    trackers.push(run1);
    await run1.startUpgrade();
    await run1.addTask('old', 'Old');
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'flip' });
    await c.next((m) => m.type === 'snapshot');
    await sleep(5); // another createdAt
    const run2 = await ProgressTracker.open({ upgradeId: 'flip', planId: 'p', clusterName: 'c', sinks: [opened.server] });
    trackers.push(run2);
    await run2.startUpgrade(); // seq 2 of the new run
    await run1.updateTaskProgress('old', 50, 'the old run, closing'); // seq 4 of the old run
    await run2.addTask('new', 'New'); // seq 3 of the new run
    await c.until(() => c.seqs('flip').includes(3), 5000, 'the new run\'s seq 3');
    const snapshots = c.ofType('snapshot', 'flip');
    expect(snapshots.at(-1)).toMatchObject({ data: { createdAt: run2.durableProgress.createdAt } });
    expect(c.ofType('resync', 'flip')).toHaveLength(1);
    c.send({ type: 'get_summary', upgradeId: 'flip' });
    expect((await c.next((m) => m.type === 'progress_summary')).data).toMatchObject({ lastSeq: 3 });
  });

  it('a new run created in the same millisecond as the old one still resyncs the subscribers', async () => {
    opened.server = new ProgressWebSocketServer({ port: 0 });
    const { url } = await opened.server.start();
    const now = () => Date.parse('2026-01-01T00:00:00.000Z');
    const run1 = await ProgressTracker.open({ upgradeId: 'same-ms', planId: 'p', clusterName: 'c', sinks: [opened.server], now });
    await run1.startUpgrade();
    await run1.addTask('old', 'Old');
    await run1.close();
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'same-ms' });
    await c.next((m) => m.type === 'snapshot');
    const run2 = await ProgressTracker.open({ upgradeId: 'same-ms', planId: 'p', clusterName: 'c', sinks: [opened.server], now });
    trackers.push(run2);
    await run2.startUpgrade();
    await run2.addTask('n1', 'N1');
    await run2.addTask('n2', 'N2');
    await c.until(() => c.seqs('same-ms').includes(4), 5000, 'the new run\'s seq 4');
    expect(c.ofType('resync', 'same-ms')).toHaveLength(1);
    expect(c.ofType('progress_event', 'same-ms').map((m) => m.data.taskId ?? m.data.type)).toEqual(['upgrade.started', 'n1', 'n2']);
  });
});

describe('runs of a sink-fed upgrade: clocks and reopened trackers', () => {
  it('a new run dated before the old one (a clock stepped back) is still served: its upgrade.created resyncs', async () => {
    opened.server = new ProgressWebSocketServer({ port: 0 });
    const { url } = await opened.server.start();
    const t0 = Date.parse('2026-01-01T00:00:10.000Z');
    const run1 = await ProgressTracker.open({ upgradeId: 'back', planId: 'p', clusterName: 'c', sinks: [opened.server], now: () => t0 });
    await run1.startUpgrade();
    await run1.addTask('old', 'Old');
    await run1.close();
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'back' });
    await c.next((m) => m.type === 'snapshot');
    const run2 = await ProgressTracker.open({ upgradeId: 'back', planId: 'p', clusterName: 'c', sinks: [opened.server], now: () => t0 - 5000 });
    trackers.push(run2);
    await run2.startUpgrade();
    await run2.addTask('n1', 'N1');
    await run2.addTask('n2', 'N2');
    await c.until(() => c.seqs('back').includes(4), 5000, 'the new run\'s seq 4');
    expect(c.ofType('resync', 'back')).toHaveLength(1);
    c.send({ type: 'get_summary', upgradeId: 'back' });
    expect((await c.next((m) => m.type === 'progress_summary')).data).toMatchObject({ lastSeq: 4 });
  });

  it('a tracker reopened on the same run after the first closed is served on from the seq held, without a resync', async () => {
    const store = new WatchableMemoryStore();
    opened.server = new ProgressWebSocketServer({ port: 0 });
    const { url } = await opened.server.start();
    const first = await ProgressTracker.open({ upgradeId: 're', planId: 'p', clusterName: 'c', sinks: [opened.server], store });
    await first.startUpgrade();
    await first.addTask('t1', 'T1');
    await first.close();
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 're' });
    await c.next((m) => m.type === 'snapshot');
    const again = await ProgressTracker.open({ upgradeId: 're', planId: 'p', clusterName: 'c', sinks: [opened.server], store });
    trackers.push(again);
    await again.addTask('t2', 'T2');
    await again.addTask('t3', 'T3');
    await c.until(() => c.seqs('re').includes(5), 5000, 'seq 5');
    expect(c.seqs('re')).toEqual([4, 5]);
    expect(c.ofType('resync', 're')).toHaveLength(0);
  });

  it('a tracker reopened on the same run from a store that lacks the last event served resyncs the subscribers to its own history', async () => {
    // The first tracker's last event went to the server but not to the store the second one reopens
    // from (its copy ends one event earlier): the second writes another event under that seq. Served
    // on from the seq held, it was skipped as already had, and what followed landed on the first's.
    const store = new MemoryStore();
    opened.server = new ProgressWebSocketServer({ port: 0 });
    const { url } = await opened.server.start();
    const first = await ProgressTracker.open({ upgradeId: 'lost', planId: 'p', clusterName: 'c', sinks: [opened.server], store });
    await first.startUpgrade();
    await first.addTask('kept', 'Kept');
    const copy = await copyOfStore('lost', store.readEvents('lost', 0));
    await first.addTask('gone', 'Written by the first only'); // seq 4, not in the copy
    await first.close();
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'lost' });
    expect((await c.next((m) => m.type === 'snapshot')).seq).toBe(4);
    const again = await ProgressTracker.open({ upgradeId: 'lost', planId: 'p', clusterName: 'c', sinks: [opened.server], store: copy });
    trackers.push(again);
    await again.addTask('other', 'Seq 4 of the reopened tracker');
    await again.addTask('next', 'Seq 5');
    await c.until(() => c.seqs('lost').includes(5), 5000, 'seq 5');
    expect(c.ofType('resync', 'lost')).toHaveLength(1);
    const { state: folded, gaps } = foldClient(c.messages, 'lost');
    expect(gaps).toEqual([]);
    expect(Object.keys(folded!.tasks).sort()).toEqual(['kept', 'next', 'other']);
  });
});

describe('list_upgrades while the store lists', () => {
  it('lists an upgrade created meanwhile that a "*" subscriber already follows', async () => {
    class SlowListStore extends WatchableMemoryStore {
      listDelayMs = 0;
      override async list(filter?: Parameters<WatchableMemoryStore['list']>[0]) {
        const rows = await super.list(filter);
        if (this.listDelayMs) await sleep(this.listDelayMs);
        return rows;
      }
    }
    const store = new SlowListStore();
    opened.server = new ProgressWebSocketServer({ port: 0, store });
    const { url } = await opened.server.start();
    const star = await connect(url);
    star.send({ type: 'subscribe', upgradeId: '*' });
    await star.next((m) => m.type === 'subscribed');
    store.listDelayMs = 300;
    const other = await connect(url);
    other.send({ type: 'list_upgrades' }); // the store lists now (nothing yet) and answers 300 ms later
    await sleep(20);
    const writer = await openTracker('late', store);
    trackers.push(writer);
    await writer.startUpgrade();
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'late');
    expect((await other.next((m) => m.type === 'upgrades')).data.map((r: { upgradeId: string }) => r.upgradeId)).toEqual(['late']);
  });

  it('lists an upgrade deleted in the store that a tracker of this process took over while the store was asked again', async () => {
    class SlowLoadStore extends WatchableMemoryStore {
      loadDelayMs = 0;
      override async load(id: string) {
        const state = await super.load(id);
        if (this.loadDelayMs) await sleep(this.loadDelayMs);
        return state;
      }
    }
    const store = new SlowLoadStore();
    const writer = await openTracker('x', store);
    await writer.startUpgrade();
    await writer.close();
    opened.server = new ProgressWebSocketServer({ port: 0, store });
    const { url } = await opened.server.start();
    const star = await connect(url);
    star.send({ type: 'subscribe', upgradeId: '*' });
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'x');
    await store.delete('x'); // watchAll does not report it: the topic keeps its state
    store.loadDelayMs = 300;
    const other = await connect(url);
    other.send({ type: 'list_upgrades' });
    await sleep(100); // the server asks the store again about 'x', which answers "gone" 300 ms later
    const local = await openTracker('x'); // a new run of x in this process, on its own store
    trackers.push(local);
    opened.server.track(local);
    await local.startUpgrade();
    expect((await other.next((m) => m.type === 'upgrades')).data.map((r: { upgradeId: string }) => r.upgradeId)).toEqual(['x']);
  });
});

describe('a tracker untracked with nobody subscribed', () => {
  it('keeps its last state for later subscribers when it wrote to another store than the server\'s', async () => {
    opened.server = new ProgressWebSocketServer({ port: 0, store: new WatchableMemoryStore() });
    const { url } = await opened.server.start();
    const local = await openTracker('local-1'); // its own memory store
    const untrack = opened.server.track(local);
    await local.startUpgrade();
    await local.completeUpgrade(); // seq 3
    await local.close();
    untrack();
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'local-1' });
    expect(await c.next((m) => m.type === 'subscribed')).toMatchObject({ exists: true });
    expect(await c.next((m) => m.type === 'snapshot')).toMatchObject({ seq: 3, data: { status: 'completed' } });
    c.send({ type: 'get_summary', upgradeId: 'local-1' });
    expect((await c.next((m) => m.type === 'progress_summary')).data).toMatchObject({ status: 'completed' });
  });

  it('keeps its last state when the server\'s store holds another run of the id, even one further on', async () => {
    // Another run (another createdAt) is not the tracker's upgrade gone on in another process:
    // following the store there would serve a run the tracker never wrote as its continuation.
    const store = new WatchableMemoryStore();
    opened.server = new ProgressWebSocketServer({ port: 0, store });
    const { url } = await opened.server.start();
    const local = await openTracker('local-2'); // its own memory store
    const untrack = opened.server.track(local);
    await local.startUpgrade();
    await local.completeUpgrade(); // seq 3
    await local.close();
    untrack();
    await sleep(5); // another createdAt
    const other = await openTracker('local-2', store);
    trackers.push(other);
    await other.startUpgrade();
    await other.addTask('a', 'A');
    await other.addTask('b', 'B'); // seq 4, past the kept state
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'local-2' });
    expect(await c.next((m) => m.type === 'snapshot')).toMatchObject({ seq: 3, data: { status: 'completed', createdAt: local.durableProgress.createdAt } });
  });
});

describe('a subscriber resuming an upgrade the server\'s store does not hold', () => {
  // The upgrade reached the server as a sink, or its tracker was untracked: the server holds its
  // state, the store none of its events. A replay from the store would hand out nothing.
  const resumes = async (c: TestClient, upgradeId: string, lastSeq: number): Promise<void> => {
    c.send({ type: 'subscribe', upgradeId, sinceSeq: 1 });
    expect(await c.next((m) => m.type === 'resync' && m.upgradeId === upgradeId)).toMatchObject({ reason: 'unavailable' });
    expect(await c.next((m) => m.type === 'snapshot' && m.upgradeId === upgradeId)).toMatchObject({ seq: lastSeq });
  };

  it('gets resync (unavailable) and the snapshot when the upgrade comes as a sink', async () => {
    opened.server = new ProgressWebSocketServer({ port: 0, store: new WatchableMemoryStore() });
    const { url } = await opened.server.start();
    const sinkFed = await openTracker('sink-1'); // its own memory store; the server is one of its sinks
    trackers.push(sinkFed);
    sinkFed.addSink(opened.server);
    await sinkFed.startUpgrade();
    await sinkFed.addTask('t', 'T');
    await sinkFed.startTask('t');
    await resumes(await connect(url), 'sink-1', sinkFed.durableProgress.lastSeq);
  });

  it('gets resync (unavailable) and the snapshot when the upgrade\'s tracker was untracked', async () => {
    opened.server = new ProgressWebSocketServer({ port: 0, store: new WatchableMemoryStore() });
    const { url } = await opened.server.start();
    const local = await openTracker('local-2');
    trackers.push(local);
    const untrack = opened.server.track(local);
    await local.startUpgrade();
    await local.addTask('t', 'T');
    untrack();
    await resumes(await connect(url), 'local-2', local.durableProgress.lastSeq);
  });
});

describe('a subscriber of an upgrade deleted in the store', () => {
  it('gets the run created again under its id from its first event, after the resync that said it was gone', async () => {
    const store = new WatchableMemoryStore();
    const { writer, url } = await serveStartedUpgrade(store);
    for (let p = 10; p <= 50; p += 10) await writer.updateTaskProgress('t', p);
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    expect((await c.next((m) => m.type === 'snapshot')).seq).toBe(8);
    await writer.close();
    await store.delete('u1');
    expect(await c.next((m) => m.type === 'resync')).toMatchObject({ upgradeId: 'u1', exists: false });
    // The new run's seqs start again at 1, below the seq the subscriber had of the old one.
    const again = await openTracker('u1', store);
    trackers.push(again);
    await again.startUpgrade();
    await again.addTask('t2', 'T2');
    const want = again.durableProgress;
    // No snapshot follows a resync that says the upgrade is gone: the new run comes from its upgrade.created.
    const afterResync = () => c.messages.slice(c.messages.findIndex((m) => m.type === 'resync') + 1).filter((m) => m.upgradeId === 'u1');
    await c.until(() => afterResync().some((m) => m.type === 'progress_event' && m.data.seq === want.lastSeq), 10_000, `the new run up to seq ${want.lastSeq}`);
    expect(afterResync().map((m) => m.type)).toEqual(Array.from({ length: want.lastSeq }, () => 'progress_event'));
    expect(afterResync().map((m) => m.data.seq)).toEqual(Array.from({ length: want.lastSeq }, (_, i) => i + 1));
    let state: UpgradeProgress | undefined;
    for (const m of afterResync()) state = applyEventInPlace(state, m.data as ProgressEvent);
    expect(state).toEqual(want);
  });
});

describe('a "*" subscriber of an upgrade deleted in the store', () => {
  it('is given the run created again under its id, after list_upgrades found the old one gone', async () => {
    const store = new WatchableMemoryStore();
    const { writer, url } = await serveStartedUpgrade(store);
    const star = await connect(url);
    star.send({ type: 'subscribe', upgradeId: '*' });
    expect((await star.next((m) => m.type === 'snapshot')).seq).toBe(3);
    await writer.close();
    await store.delete('u1');
    // watchAll reports no deletion: list_upgrades asks the store, which holds it no more.
    star.send({ type: 'list_upgrades' });
    expect(await star.next((m) => m.type === 'resync')).toMatchObject({ upgradeId: 'u1', exists: false });
    const from = star.messages.length;
    const again = await openTracker('u1', store);
    trackers.push(again);
    await again.startUpgrade();
    const created = again.durableProgress.createdAt;
    // Its snapshot (or its events from upgrade.created on) reaches the "*" subscriber as for any new upgrade.
    await star.until(
      (ms) => ms.slice(from).some((m) => m.upgradeId === 'u1' && ((m.type === 'snapshot' && m.data.createdAt === created) || (m.type === 'progress_event' && m.data.type === 'upgrade.created'))),
      10_000,
      'the new run of u1',
    );
  });
});

describe('a subscriber waiting for an upgrade that appears mid-run', () => {
  it('gets its state before any event when the first event the server sees is not seq 1 (a reopened tracker that has the server as a sink)', async () => {
    opened.server = new ProgressWebSocketServer({ port: 0 });
    const { url } = await opened.server.start();
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'late-1' });
    expect(await c.next((m) => m.type === 'subscribed')).toMatchObject({ exists: false });
    // Written by another process first (seqs 1..3), then reopened by one that hands it to this server.
    const store = new MemoryStore();
    const first = await openTracker('late-1', store);
    await first.startUpgrade();
    await first.addTask('t', 'T');
    await first.close();
    const reopened = await openTracker('late-1', store);
    trackers.push(reopened);
    reopened.addSink(opened.server);
    await reopened.startTask('t');
    const lastSeq = reopened.durableProgress.lastSeq;
    await c.until((ms) => foldClient(ms, 'late-1').state?.lastSeq === lastSeq || foldClient(ms, 'late-1').gaps.length > 0, 5000, `seq ${lastSeq}`);
    // Event 4 alone, on no state, is a state no client can make.
    const { state, gaps } = foldClient(c.messages, 'late-1');
    expect(gaps).toEqual([]);
    expect(state).toEqual(reopened.durableProgress);
  });
});

describe('what a "*" subscriber keeps', () => {
  it('no topic of an upgrade that does not exist: subscribing to made-up ids and leaving them leaves nothing behind', async () => {
    const store = new WatchableMemoryStore();
    const writer = await openTracker('u1', store);
    trackers.push(writer);
    await writer.startUpgrade();
    opened.server = new ProgressWebSocketServer({ port: 0, store, rateLimit: { messagesPerSecond: 1000, burst: 1000 } });
    const { url } = await opened.server.start();
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: '*' });
    await c.next((m) => m.type === 'subscribed');
    const before = opened.server.getStats().topics;
    for (let i = 0; i < 50; i++) {
      c.send({ type: 'subscribe', upgradeId: `made-up-${i}` });
      c.send({ type: 'unsubscribe', upgradeId: `made-up-${i}` });
    }
    await c.answered();
    expect(opened.server.getStats().topics).toBe(before);
    // One of them appearing later is served to the "*" subscriber all the same.
    const late = await openTracker('made-up-7', store);
    trackers.push(late);
    await late.startUpgrade();
    await c.until(() => c.seqs('made-up-7').includes(2), 5000, 'the new upgrade to reach "*"');
  });
});

describe('a "*" subscriber whose listing of the store is out', () => {
  it('gets its `subscribed` before anything of an upgrade that appeared in the store meanwhile', async () => {
    const asked = deferred();
    class HeldListStore extends WatchableMemoryStore {
      gate: Promise<void> | undefined;
      override async list(filter?: Parameters<WatchableMemoryStore['list']>[0]) {
        if (this.gate) {
          asked.resolve();
          await this.gate;
        }
        return super.list(filter);
      }
    }
    const store = new HeldListStore();
    opened.server = new ProgressWebSocketServer({ port: 0, store });
    const { url } = await opened.server.start();
    const first = await connect(url);
    first.send({ type: 'subscribe', upgradeId: '*' });
    await first.next((m) => m.type === 'subscribed');
    const gate = deferred();
    store.gate = gate.promise;
    const star = await connect(url);
    star.send({ type: 'subscribe', upgradeId: '*' });
    await asked.promise;
    const writer = await openTracker('u1', store);
    trackers.push(writer);
    await writer.startUpgrade();
    // The server has handed u1 to the `*` subscribers that were ready: star's listing is still out.
    await first.next((m) => m.type === 'snapshot' && m.upgradeId === 'u1');
    gate.resolve();
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'u1');
    expect(star.messages.filter((m) => m.upgradeId === '*' || m.upgradeId === 'u1').map((m) => m.type)[0]).toBe('subscribed');
  });
});
