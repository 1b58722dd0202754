import { describe, expect, it } from 'vitest';
import type { UpgradeProgress } from '@progress/core';
import { ProgressWebSocketServer } from '../src/index.js';
import { closedAfterEach, openTracker, sleep, type Msg } from './helpers.js';
import { GatedLoadStore, WatchableMemoryStore } from './watchable-store.js';

// The store events a topic holds while it waits for the store are bounded: past half of
// maxBufferedBytes they are dropped, and a load or reload that was out meanwhile is followed by one
// more (#reloadAgain). These are the cases around that.

const opened = closedAfterEach();

const LIMIT = 16 * 1024;

/** The seq a client holds of `upgradeId`: its last snapshot with the events after it; throws on an event that does not follow it (a gap, a duplicate, out of order). */
function strictView(messages: Msg[], upgradeId: string): number | undefined {
  let at: number | undefined;
  for (const m of messages) {
    if (m.upgradeId !== upgradeId) continue;
    if (m.type === 'snapshot') at = m.seq as number;
    else if (m.type === 'resync') at = undefined;
    else if (m.type === 'progress_event') {
      if (at === undefined || m.data.seq !== at + 1) throw new Error(`event ${m.data.seq} after ${at}`);
      at = m.data.seq as number;
    }
  }
  return at;
}

/**
 * Upgrade u1 started on `store`, a server on it (`maxBufferedBytes` LIMIT), and a client subscribed to
 * `*` that has u1's snapshot.
 */
async function serveWithStar(store: WatchableMemoryStore): Promise<{ server: ProgressWebSocketServer; star: Awaited<ReturnType<typeof opened.connect>> }> {
  const first = await openTracker('u1', store);
  opened.trackers.push(first);
  await first.startUpgrade();
  const server = new ProgressWebSocketServer({ port: 0, store, maxBufferedBytes: LIMIT });
  opened.server = server;
  const { url } = await server.start();
  const star = await opened.connect(url);
  star.send({ type: 'subscribe', upgradeId: '*' });
  await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'u1');
  return { server, star };
}

describe('store events dropped while a load is out', () => {
  it('a load in flight when the server stops, that dropped events, reloads nothing after the stop and arms no timer', async () => {
    const store = new GatedLoadStore();
    const { server } = await serveWithStar(store);
    // A new upgrade: its first event makes the server load it, and that load is held while more
    // events than the bound come (they are dropped: the load is followed by a reload).
    const second = await openTracker('u2', store);
    opened.trackers.push(second);
    let open!: () => void;
    store.gate = new Promise<void>((resolve) => (open = resolve));
    await second.startUpgrade();
    await second.addTask('t', 'T');
    const pad = 'p'.repeat(2000);
    for (let i = 0; i < 10; i++) await second.updateTaskProgress('t', 1 + i, undefined, { pad, i });
    await sleep(50);
    const loadsAtStop = store.loads;
    await server.stop();
    opened.server = undefined;
    // The held load answers after the stop; the store goes away then: nothing may load again.
    store.failing = 'asked';
    open();
    await sleep(1500);
    expect(store.loads).toBe(loadsAtStop);
  });
});

/**
 * A store whose load() reads the state when it is asked, and answers only once `gate` (the one set
 * then) opens: a slow answer, as a network store's, which the events written meanwhile overtake.
 */
class SlowAnswerStore extends WatchableMemoryStore {
  loads = 0;
  gate: Promise<void> | undefined;
  /** How many of the next loads are answered at once whatever `gate` says (a tracker's own, in open()). */
  ungated = 0;
  override async load(upgradeId: string): Promise<UpgradeProgress | undefined> {
    this.loads++;
    const gate = this.ungated > 0 ? void this.ungated-- : this.gate;
    const state = await super.load(upgradeId);
    if (gate) await gate;
    return state;
  }
}

describe('store events dropped while a reload is out, again and again', () => {
  it('each reload overrun by events is followed by the next after a wait that grows, not at once, and the subscriber ends with the store\'s state', async () => {
    const store = new SlowAnswerStore();
    const { star } = await serveWithStar(store);
    const pad = 'p'.repeat(2000);
    let n = 0;
    /** More events than the bound, while the load out now is held: they are dropped, the last ones held. */
    const overrun = async () => {
      for (let i = 0; i < 6; i++) await writer.updateTaskProgress('t', 1 + (n++ % 90), undefined, { pad });
    };
    const gates: Array<() => void> = [];
    const gate = () => (store.gate = new Promise<void>((resolve) => gates.push(resolve)));
    const waitLoads = async (count: number) => {
      for (let i = 0; i < 500 && store.loads < count; i++) await sleep(10);
      expect(store.loads).toBeGreaterThanOrEqual(count);
    };

    // Held from before u2 exists, so that the server's first load of it is held however soon after
    // the writer's open() it comes (its upgrade.created makes the server load it); the writer's own
    // load in open(), which comes first, is answered at once.
    gate();
    store.ungated = 1;
    const loads0 = store.loads;
    const writer = await openTracker('u2', store);
    opened.trackers.push(writer);
    await writer.startUpgrade();
    await writer.addTask('t', 'T');
    await waitLoads(loads0 + 2); // the writer's, and the server's (its answer held)
    await overrun();
    gate(); // the next load waits too
    gates.shift()!(); // the first load answers (a state before the dropped events): a reload follows
    await waitLoads(loads0 + 3);
    await overrun(); // and is overrun as well
    gate();
    gates.shift()!();
    // The reload after a second overrun in a row waits: a store that answers slowly under a busy
    // upgrade is not read back to back, each read resyncing every subscriber.
    const loadsAfter = store.loads;
    await sleep(300);
    expect(store.loads).toBe(loadsAfter);

    // Once the writes calm down, the subscriber ends with the store's state (by the reload, or live),
    // never an event out of its place meanwhile; and then it is live.
    store.gate = undefined;
    for (const open of gates.splice(0)) open();
    await writer.updateTaskProgress('t', 99);
    const last = writer.durableProgress.lastSeq;
    await star.until((ms) => strictView(ms, 'u2') === last, 20_000, `u2 at ${last}`);
    await waitLoads(loadsAfter + 1); // the reload that waited has run, not overrun: none follows it
    const from = star.messages.length;
    await writer.updateTaskProgress('t', 100);
    expect((await star.next((m) => m.type === 'progress_event' && m.upgradeId === 'u2', from)).data.seq).toBe(last + 1);
    expect(strictView(star.messages, 'u2')).toBe(last + 1);
    expect(star.closeCode).toBeUndefined();
  });
});
