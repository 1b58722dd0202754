import { describe, expect, it } from 'vitest';
import { ProgressError, type ProgressEvent, type UpgradeProgress } from '@progress/core';
import { ProgressWebSocketServer } from '../src/index.js';
import { heldForStore } from '../src/server.js';
import { closedAfterEach, expectConsecutive, openTracker, sleep } from './helpers.js';
import { WatchableMemoryStore } from './watchable-store.js';

// A gap in what a store watch delivers is filled from the store's readEvents. When that read could not
// be made (nor the state reloaded), or made but found a hole, the fill ran again at once, with nothing
// in between but microtasks: the server spun for as long as the store stayed down (or for ever, for a
// hole), answering nobody, and hammered the store. (Found by a review on 2026-11-29; each test failed
// before the fix: the store's safety valve below ended the spin, after VALVE reads.)

const opened = closedAfterEach();

/** After this many reads the store "comes back" (or its hole closes): a server that spins would otherwise hang the test run. */
const VALVE = 50_000;

/**
 * A store shared with a writer of another process: its watch can lose the next event (`dropNext`),
 * its reads fail, within microtasks, while `down`, and `hole` is a seq its readEvents never returns.
 */
class FlakyStore extends WatchableMemoryStore {
  down = false;
  dropNext = false;
  hole: number | undefined;
  reads = 0;
  loads = 0;
  override async *watch(upgradeId: string, afterSeq: number, options: { signal?: AbortSignal } = {}): AsyncIterable<ProgressEvent> {
    for await (const ev of super.watch(upgradeId, afterSeq, options)) {
      if (this.dropNext) {
        this.dropNext = false;
        continue;
      }
      yield ev;
    }
  }
  override readEvents(upgradeId: string, afterSeq: number, limit?: number): AsyncIterable<ProgressEvent> {
    this.reads++;
    if (this.reads >= VALVE) {
      this.down = false;
      this.hole = undefined;
    }
    if (this.down) {
      // eslint-disable-next-line require-yield
      return (async function* () {
        throw new ProgressError('STORE_UNAVAILABLE', 'connect ECONNREFUSED 10.0.0.7:6379');
      })();
    }
    const events = super.readEvents(upgradeId, afterSeq, limit);
    const hole = this.hole;
    if (hole === undefined) return events;
    return (async function* () {
      for await (const ev of events) if (ev.seq !== hole) yield ev;
    })();
  }
  override async load(upgradeId: string): Promise<UpgradeProgress | undefined> {
    this.loads++;
    if (this.down) throw new ProgressError('STORE_UNAVAILABLE', 'connect ECONNREFUSED 10.0.0.7:6379');
    return super.load(upgradeId);
  }
}

/** A server over `store`, with a client subscribed to u1, written by a tracker the server does not track (seq 3). */
async function subscribed(store: FlakyStore, maxBufferedBytes?: number) {
  const writer = await openTracker('u1', store);
  opened.trackers.push(writer);
  await writer.startUpgrade();
  await writer.addTask('t', 'T');
  opened.server = new ProgressWebSocketServer({ port: 0, store, ...(maxBufferedBytes === undefined ? {} : { maxBufferedBytes }) });
  const { url } = await opened.server.start();
  const c = await opened.connect(url);
  c.send({ type: 'subscribe', upgradeId: 'u1' });
  expect((await c.next((m) => m.type === 'snapshot')).seq).toBe(3);
  return { writer, c };
}

/** Counts the turns of a 10 ms timer for `ms`: it runs only while the event loop is not held by microtasks. */
async function timerTurns(ms: number): Promise<number> {
  let turns = 0;
  const ticker = setInterval(() => turns++, 10);
  await sleep(ms);
  clearInterval(ticker);
  return turns;
}

describe('a gap fill the store cannot serve', () => {
  it('while the store cannot be read, is tried again with a backoff (the event loop runs), and the held events arrive in order once it is back', async () => {
    const store = new FlakyStore();
    const { writer, c } = await subscribed(store);
    store.down = true;
    store.dropNext = true;
    await writer.startTask('t'); // seq 4, lost by the watch
    const reads = store.reads;
    await writer.updateTaskProgress('t', 10); // seq 5 shows the gap; the fill's read and reload fail
    for (let i = 0; i < 500 && store.reads === reads; i++) await sleep(10);
    expect(store.reads).toBeGreaterThan(reads);

    // A window in which the store stays down: a fill tried again once or twice, not thousands of times.
    const [readsBefore, loadsBefore] = [store.reads, store.loads];
    const turns = await timerTurns(1000);
    expect(store.reads - readsBefore).toBeLessThan(10);
    expect(store.loads - loadsBefore).toBeLessThan(10);
    expect(turns).toBeGreaterThan(0);
    expect(store.down).toBe(true); // the valve was not reached
    // The connection is answered meanwhile.
    await c.answered();

    // More events while the fill waits: held with the others, none of them a fill of its own (each
    // would read the store that is down at once, bypassing the backoff).
    const readsWaiting = store.reads;
    for (let p = 20; p < 40; p++) await writer.updateTaskProgress('t', p); // seqs 6..25
    await c.answered();
    expect(store.reads - readsWaiting).toBeLessThan(10);
    store.down = false;
    await c.until((ms) => ms.filter((m) => m.type === 'progress_event').length >= 22, 20_000, 'seqs 4..25');
    await writer.updateTaskProgress('t', 50); // seq 26, live
    await c.until((ms) => ms.filter((m) => m.type === 'progress_event').length >= 23, 10_000, 'seq 26');
    await c.answered();
    expectConsecutive(c.seqs('u1'), 4, 26);
    expect(c.ofType('resync')).toEqual([]);
    expect(c.closeCode).toBeUndefined();
  });

  it('whose read finds a hole in the store\'s history, reloads the state and resyncs, instead of reading again at once for ever', async () => {
    const store = new FlakyStore();
    const { writer, c } = await subscribed(store);
    store.hole = 4;
    store.dropNext = true;
    await writer.startTask('t'); // seq 4: lost by the watch, and not in the store's events
    await writer.updateTaskProgress('t', 10); // seq 5 shows the gap the store cannot fill
    const snapshot = await c.next((m) => m.type === 'snapshot' && m.seq === 5, 1);
    expect(c.ofType('resync')).toEqual([expect.objectContaining({ upgradeId: 'u1', reason: 'gap' })]);
    expect(snapshot.data.lastSeq).toBe(5);
    expect(store.reads).toBeLessThan(10);
    expect(store.hole).toBe(4); // the valve was not reached
    // Live again from there.
    const from = c.messages.length;
    await writer.updateTaskProgress('t', 20); // seq 6
    expect((await c.next((m) => m.type === 'progress_event', from)).data.seq).toBe(6);
    expect(await timerTurns(100)).toBeGreaterThan(0);
    expect(store.reads).toBeLessThan(10);
  });

  // The events that come while the fill waits were held with no limit: a store down for minutes under
  // a busy upgrade grew the server's memory for as long. (Found by a review on 2026-11-29; this test
  // failed before the fix: 120 events, some 240 KB, were held.)
  it('holds at most half of maxBufferedBytes of events while it waits, then reloads the state and resyncs the subscribers once the store answers', async () => {
    const LIMIT = 64 * 1024;
    const store = new FlakyStore();
    const { writer, c } = await subscribed(store, LIMIT);
    const server = opened.server!;
    store.down = true;
    store.dropNext = true;
    await writer.startTask('t'); // seq 4, lost by the watch
    await writer.updateTaskProgress('t', 1); // seq 5 shows the gap; the fill's read and reload fail
    for (let i = 0; i < 500 && (heldForStore(server, 'u1')?.events ?? 0) === 0; i++) await sleep(10);
    expect(heldForStore(server, 'u1')!.events).toBeGreaterThan(0);

    // A busy upgrade while the store stays down: 120 events of 2 KB, four times the bound together.
    const pad = 'h'.repeat(2000);
    let most = 0;
    for (let i = 0; i < 120; i++) {
      await writer.updateTaskProgress('t', 2 + (i % 90), undefined, { pad, i }); // seqs 6..125
      most = Math.max(most, heldForStore(server, 'u1')!.bytes);
    }
    expect(120 * pad.length).toBeGreaterThan(2 * LIMIT);
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(LIMIT / 2);
    expect(heldForStore(server, 'u1')!.events).toBeLessThan(LIMIT / 2 / pad.length);
    expect(store.down).toBe(true); // the valve was not reached
    await c.answered();
    // Nothing of the upgrade was sent meanwhile: the subscriber has what it had.
    expect(c.ofType('progress_event')).toEqual([]);

    // The store answers again: a resync and the snapshot of what it holds, then live events.
    store.down = false;
    const last = writer.durableProgress.lastSeq;
    expect(last).toBe(125);
    const snapshot = await c.next((m) => m.type === 'snapshot' && m.seq === last, 1, 20_000);
    expect(c.ofType('resync')).toEqual([expect.objectContaining({ upgradeId: 'u1', reason: 'gap' })]);
    expect(snapshot.data).toEqual(JSON.parse(JSON.stringify(writer.durableProgress)));
    const from = c.messages.length;
    await writer.updateTaskProgress('t', 99); // seq 126, live
    await c.next((m) => m.type === 'progress_event' && m.data.seq === last + 1, from);
    await c.answered();
    // Every event sent follows the snapshot, in order; none from before it.
    expect(c.messages.findIndex((m) => m.type === 'progress_event')).toBeGreaterThan(c.messages.indexOf(snapshot));
    expectConsecutive(c.seqs('u1'), last + 1, last + 1);
    expect(heldForStore(server, 'u1')).toEqual({ events: 0, bytes: 0 });
    expect(c.closeCode).toBeUndefined();
  });
});
