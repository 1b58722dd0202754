import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore, ProgressError, type ProgressEvent, type ProgressTracker } from '@progress/core';
import { ProgressWebSocketServer } from '../src/index.js';
import { TestClient, copyOfStore, deferred, expectConsecutive, foldClient, openTracker, sleep } from './helpers.js';

let server: ProgressWebSocketServer | undefined;
let tracker: ProgressTracker | undefined;
const clients: TestClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await server?.stop();
  await tracker?.close();
  server = undefined;
  tracker = undefined;
});

/**
 * A store that answers reads late (a remote one) while `delayMs` is above 0: each read then waits
 * that long first. `reads` counts those reads as they start, `returned` as their wait ends.
 */
class SlowReadStore extends MemoryStore {
  delayMs = 0;
  reads = 0;
  returned = 0;
  override async *readEvents(upgradeId: string, afterSeq: number, limit?: number): AsyncIterable<ProgressEvent> {
    if (this.delayMs > 0) {
      this.reads++;
      await sleep(this.delayMs);
      this.returned++;
    }
    yield* super.readEvents(upgradeId, afterSeq, limit);
  }
}

/** A store whose reads wait for `gate` while it is set: a replay held open for as long as a test needs. */
class GatedReadStore extends MemoryStore {
  gate: Promise<void> | undefined;
  override async *readEvents(upgradeId: string, afterSeq: number, limit?: number): AsyncIterable<ProgressEvent> {
    if (this.gate) await this.gate;
    yield* super.readEvents(upgradeId, afterSeq, limit);
  }
}

async function setup(store?: MemoryStore): Promise<string> {
  server = new ProgressWebSocketServer({ port: 0 });
  const { url } = await server.start();
  tracker = await openTracker('u1', store);
  server.track(tracker);
  await tracker.startUpgrade();
  await tracker.addTask('t', 'Long task');
  return url;
}

async function connect(url: string): Promise<TestClient> {
  const c = await TestClient.connect(url);
  clients.push(c);
  return c;
}

/** Writes progress events until `total` is the last seq, in bursts, yielding to the event loop between bursts. */
async function writeUntil(t: ProgressTracker, total: number): Promise<void> {
  let i = 0;
  while (t.durableProgress.lastSeq < total) {
    const left = total - t.progress.lastSeq;
    const burst = Math.min(50, left);
    const pending: Promise<unknown>[] = [];
    for (let k = 0; k < burst; k++) pending.push(t.updateTaskProgress('t', (i++ % 99) + 1, undefined, { i }));
    await Promise.all(pending);
    await new Promise((r) => setImmediate(r));
  }
}

describe('resume from a sequence number (acceptance 1)', () => {
  it('a reconnecting client receives exactly the events it missed, then live ones, while 10,000 events are written', async () => {
    const url = await setup();
    const total = 10_000;
    const first = await connect(url);
    first.send({ type: 'subscribe', upgradeId: 'u1' });
    const snap = await first.next((m) => m.type === 'snapshot');
    const writing = writeUntil(tracker!, total);
    await first.until((ms) => ms.filter((m) => m.type === 'progress_event').length >= 500, 20_000, '500 events');
    await first.close();
    const seen = [snap.seq as number, ...first.seqs('u1')];
    expectConsecutive(seen, snap.seq, seen.at(-1)!);
    const last = seen.at(-1)!;
    expect(tracker!.durableProgress.lastSeq).toBeLessThan(total); // still writing while we reconnect

    const again = await connect(url);
    again.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: last });
    await again.next((m) => m.type === 'progress_event');
    // The replay has begun and the writer is still going: replay and live events overlap.
    expect(tracker!.durableProgress.lastSeq).toBeLessThan(total);
    await writing;
    await again.until((ms) => ms.filter((m) => m.type === 'progress_event').length >= total - last, 30_000, 'every missed and live event');
    await tracker!.updateTaskProgress('t', 100, 'live after the replay');
    await again.until((ms) => ms.filter((m) => m.type === 'progress_event').length >= total - last + 1, 10_000, 'the live event');
    expect(again.ofType('snapshot')).toHaveLength(0);
    expect(again.ofType('resync')).toHaveLength(0);
    expectConsecutive(again.seqs('u1'), last + 1, total + 1);
    expect(again.ofType('progress_event').at(-1)!.data.message).toBe('live after the replay');
  });

  it('sends once an event that came live during the replay and that the replay read from the store too', async () => {
    // A store that answers a read late (a remote one): the live events written meanwhile are held for
    // the subscriber, and the read, once it starts, returns them as well.
    const store = new SlowReadStore();
    const url = await setup(store);
    await writeUntil(tracker!, 10);
    const c = await connect(url);
    store.delayMs = 200;
    c.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 5 });
    await c.next((m) => m.type === 'subscribed');
    await writeUntil(tracker!, 15);
    await c.until((ms) => ms.filter((m) => m.type === 'progress_event').length >= 10, 5000, 'events 6..15');
    await tracker!.updateTaskProgress('t', 100, 'live after the replay');
    await c.until((ms) => ms.some((m) => m.type === 'progress_event' && m.data.seq === 16), 5000, 'event 16');
    expectConsecutive(c.seqs('u1'), 6, 16);
  });

  it('counts the live events it held for a replay no more once they are sent: a client that resumes again and again is not closed as slow', async () => {
    // Each round holds ~12 KB of live events for the replay, far under the limit; 20 rounds hold 240 KB
    // in all, far over it, when what was held stays counted against the client after its replay.
    const store = new GatedReadStore();
    server = new ProgressWebSocketServer({ port: 0, maxBufferedBytes: 64 * 1024 });
    const { url } = await server.start();
    tracker = await openTracker('u1', store);
    server.track(tracker);
    await tracker.startUpgrade();
    await tracker.addTask('t', 'T');
    const c = await connect(url);
    const pad = 'p'.repeat(1000);
    for (let round = 0; round < 20; round++) {
      const gate = deferred();
      store.gate = gate.promise;
      const from = c.messages.length;
      c.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: tracker.durableProgress.lastSeq });
      await c.next((m) => m.type === 'subscribed', from);
      // Live while the replay's read waits: held for the subscriber.
      for (let i = 0; i < 10; i++) await tracker.updateTaskProgress('t', 1 + ((round * 10 + i) % 98), undefined, { pad });
      store.gate = undefined;
      gate.resolve();
      const last = tracker.durableProgress.lastSeq;
      await c.until(() => c.seqs('u1').at(-1) === last, 10_000, `event ${last}`);
    }
    expect(server.getStats().slowClientsClosed).toBe(0);
    expect(c.closeCode).toBeUndefined();
    expectConsecutive(c.seqs('u1'), 4, tracker.durableProgress.lastSeq);
  });

  it('holds the live events that come during a replay for it, rather than start a replay of its own for each', async () => {
    // Each live event ahead of what the subscriber was sent would otherwise read the store again
    // from there: a resume during a busy upgrade cost one read of the whole tail per event.
    const store = new SlowReadStore();
    const url = await setup(store);
    await writeUntil(tracker!, 10);
    const c = await connect(url);
    store.delayMs = 200;
    c.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 0 });
    await c.next((m) => m.type === 'subscribed');
    await writeUntil(tracker!, 30); // live while the replay's read is out
    await c.until((ms) => ms.filter((m) => m.type === 'progress_event').length >= 30, 10_000, 'events 1..30');
    expectConsecutive(c.seqs('u1'), 1, 30);
    expect(store.reads).toBe(1);
  });

  it('reads again when the replay\'s read ends before the live events held for it begin (a lagging read), rather than hand out a gap', async () => {
    // A read answered from a view of the store a little behind (a replica): it ends at seq 10 while
    // 11 and 12 were written before the subscribe, and the live events 13 and 14 are held meanwhile.
    let lagging = false;
    class LaggingStore extends MemoryStore {
      override async *readEvents(upgradeId: string, afterSeq: number, limit?: number): AsyncIterable<ProgressEvent> {
        if (!lagging) return yield* super.readEvents(upgradeId, afterSeq, limit);
        lagging = false;
        const seen: ProgressEvent[] = [];
        for await (const e of super.readEvents(upgradeId, afterSeq, limit)) seen.push(e);
        await new Promise((r) => setTimeout(r, 200));
        yield* seen.slice(0, -2);
      }
    }
    const url = await setup(new LaggingStore());
    await writeUntil(tracker!, 12);
    const c = await connect(url);
    lagging = true;
    c.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 0 });
    await c.next((m) => m.type === 'subscribed');
    await writeUntil(tracker!, 14); // live while the read is out
    await c.until(() => c.seqs('u1').includes(14), 10_000, 'event 14');
    await c.answered();
    expectConsecutive(c.seqs('u1'), 1, 14);
    expect(c.ofType('resync')).toHaveLength(0);
  });

  it('resyncs a subscriber to the new run when the id is started again while its replay of the old run is out', async () => {
    // The new run's resync skips subscribers that are replaying: each is resynced when its replay
    // returns, which must see that the run changed under it, else the client kept the old run's
    // state and got the new run's events on top of it. The old run's live events held for the
    // replay (11, 12) are dropped then: the new run's snapshot is at seq 10, and they would follow it.
    const store = new SlowReadStore();
    const url = await setup(store);
    await writeUntil(tracker!, 10);
    const c = await connect(url);
    store.delayMs = 500;
    c.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 2 });
    await c.next((m) => m.type === 'subscribed');
    await writeUntil(tracker!, 12); // held for the replay
    await tracker!.close();
    await store.delete('u1');
    await sleep(5); // another createdAt
    tracker = await openTracker('u1', store);
    server!.track(tracker);
    await tracker.startUpgrade();
    await tracker.addTask('t', 'New run');
    await writeUntil(tracker, 10);
    while (store.returned === 0) await sleep(10); // the replay's read returned
    const createdAt = tracker.durableProgress.createdAt;
    await c.until(() => c.ofType('snapshot').some((m) => m.data.createdAt === createdAt), 10_000, 'the new run\'s snapshot');
    await tracker.updateTaskProgress('t', 50, 'seq 11 of the new run');
    await c.until(() => c.ofType('progress_event').some((m) => m.data.message === 'seq 11 of the new run'), 10_000, 'the new run\'s seq 11');
    await c.answered();
    // What came before the resync is the old run's replay, on the client's own state at seq 2.
    const resync = c.messages.findIndex((m) => m.type === 'resync');
    expect(resync).toBeGreaterThan(0);
    const { state, gaps } = foldClient(c.messages.slice(resync), 'u1');
    expect(gaps).toEqual([]);
    expect(c.ofType('resync')).toHaveLength(1); // once, when its replay returned
    expect(state).toMatchObject({ createdAt, lastSeq: 11 });
  });

  it('resyncs a subscriber when another run, further on than it, is tracked under the id: not replayed on top of the old run', async () => {
    const store = new MemoryStore();
    const url = await setup(store);
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    expect((await c.next((m) => m.type === 'snapshot')).seq).toBe(3);
    await tracker!.close(); // untracked by itself: its last state is kept
    await store.delete('u1');
    await sleep(5); // another createdAt
    tracker = await openTracker('u1', store);
    await tracker.startUpgrade();
    await tracker.addTask('t', 'The same task, run again');
    await writeUntil(tracker, 10); // past the seq the subscriber has
    server!.track(tracker);
    await c.until(() => c.ofType('snapshot').length === 2, 10_000, 'the new run\'s snapshot');
    await c.answered();
    expect(c.ofType('resync')).toEqual([{ type: 'resync', upgradeId: 'u1', reason: 'gap', exists: true }]);
    expect(c.ofType('snapshot')[1]).toMatchObject({ seq: 10, data: { createdAt: tracker.durableProgress.createdAt } });
    expect(c.ofType('progress_event')).toHaveLength(0);
  });

  it('brings a subscriber up to a tracker of the same run tracked further on, without waiting for its next event', async () => {
    // The tracker closed, was reopened on the same run and wrote on before it was tracked again: the
    // subscriber is owed those events now (an upgrade that writes nothing more would never send them).
    const store = new MemoryStore();
    const url = await setup(store);
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    expect((await c.next((m) => m.type === 'snapshot')).seq).toBe(3);
    await tracker!.close();
    tracker = await openTracker('u1', store);
    await writeUntil(tracker, 6);
    server!.track(tracker);
    await c.until(() => c.seqs('u1').includes(6), 10_000, 'events 4..6');
    expectConsecutive(c.seqs('u1'), 4, 6);
    expect(c.ofType('resync')).toHaveLength(0);
  });

  it('resyncs a subscriber that is ahead of a tracker of the same run tracked again (its store lacks the last events served)', async () => {
    // The subscriber holds seq 5; the tracker reopened from a copy of the store that ends at seq 3
    // writes other events under seqs 4 and 5, which it would take for ones it already has.
    const url = await setup(new MemoryStore());
    await writeUntil(tracker!, 5);
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    expect((await c.next((m) => m.type === 'snapshot')).seq).toBe(5);
    const copy = await copyOfStore('u1', tracker!.readEvents(0), 3);
    await tracker!.close();
    tracker = await openTracker('u1', copy);
    server!.track(tracker);
    await c.next((m) => m.type === 'resync');
    await tracker.updateTaskProgress('t', 40, 'seq 4 of the reopened tracker');
    await c.until(() => c.seqs('u1').includes(4), 10_000, 'the reopened tracker\'s seq 4');
    expect(c.ofType('resync')).toEqual([{ type: 'resync', upgradeId: 'u1', reason: 'gap', exists: true }]);
    expect(c.ofType('snapshot').at(-1)).toMatchObject({ seq: 3 });
    expect(c.ofType('progress_event').at(-1)!.data.message).toBe('seq 4 of the reopened tracker');
  });

  it('sends resync (gap) and the snapshot, not a gap, when the stored history it replays has a hole', async () => {
    // An event the store lost (a failover that dropped an acknowledged append): the replay cannot
    // bring the client across it, and handing out the events after it would leave the client on a gap.
    class HoleStore extends MemoryStore {
      override async *readEvents(upgradeId: string, afterSeq: number, limit?: number): AsyncIterable<ProgressEvent> {
        for await (const e of super.readEvents(upgradeId, afterSeq, limit)) if (e.seq !== 6) yield e;
      }
    }
    const url = await setup(new HoleStore());
    await writeUntil(tracker!, 10);
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 2 });
    const snap = await c.next((m) => m.type === 'snapshot');
    expect(snap.seq).toBe(10);
    expect(c.ofType('resync')).toEqual([{ type: 'resync', upgradeId: 'u1', reason: 'gap', exists: true }]);
    // What came before the resync is the replay up to the hole.
    expect(c.seqs('u1')).toEqual([3, 4, 5]);
  });

  it('replays from sinceSeq 0 the whole history', async () => {
    const url = await setup();
    await writeUntil(tracker!, 40);
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 0 });
    await c.until((ms) => ms.filter((m) => m.type === 'progress_event').length === 40);
    expectConsecutive(c.seqs('u1'), 1, 40);
    expect(c.ofType('progress_event')[0]!.data.type).toBe('upgrade.created');
  });

  it('sends resync then a snapshot when the store trimmed the history after sinceSeq', async () => {
    class TrimmingStore extends MemoryStore {
      override async *readEvents(upgradeId: string, afterSeq: number, limit?: number): AsyncIterable<ProgressEvent> {
        if (afterSeq < 10) throw new ProgressError('NOT_FOUND', `events of "${upgradeId}" before seq 10 are trimmed`, { context: { upgradeId, reason: 'trimmed' } });
        yield* super.readEvents(upgradeId, afterSeq, limit);
      }
    }
    const url = await setup(new TrimmingStore());
    await writeUntil(tracker!, 20);
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 3 });
    const snap = await c.next((m) => m.type === 'snapshot');
    expect(c.messages.map((m) => m.type).slice(1, 4)).toEqual(['subscribed', 'resync', 'snapshot']);
    expect(c.ofType('resync')[0]).toEqual({ type: 'resync', upgradeId: 'u1', reason: 'trimmed', exists: true });
    expect(snap.seq).toBe(20);
    expect(snap.data.lastSeq).toBe(20);
    await tracker!.updateTaskProgress('t', 5);
    await c.until((ms) => ms.some((m) => m.type === 'progress_event'));
    expect(c.seqs('u1')).toEqual([21]);

    const ok = await connect(url);
    ok.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 15 });
    await ok.until((ms) => ms.filter((m) => m.type === 'progress_event').length === 6);
    expect(ok.ofType('resync')).toHaveLength(0);
    expectConsecutive(ok.seqs('u1'), 16, 21);
  });

  it('sends resync (ahead) then a snapshot for a sinceSeq beyond what exists', async () => {
    const url = await setup();
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 999 });
    const snap = await c.next((m) => m.type === 'snapshot');
    expect(c.ofType('resync')[0]).toEqual({ type: 'resync', upgradeId: 'u1', reason: 'ahead', exists: true });
    expect(snap.seq).toBe(3);
    await tracker!.completeTask('t');
    await c.until((ms) => ms.some((m) => m.type === 'progress_event'));
    expect(c.seqs('u1')).toEqual([4]);
  });

  it('resumes a client that has the last seq without a resync: nothing is replayed, the next event comes live', async () => {
    // The client missed nothing (it reconnected before anything new was written): the boundary of
    // 'ahead' is one past the last seq, not the last seq itself.
    const url = await setup();
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 3 });
    await c.next((m) => m.type === 'subscribed');
    await c.answered();
    await tracker!.completeTask('t');
    await c.until((ms) => ms.some((m) => m.type === 'progress_event'), 5000, 'event 4');
    expect(c.ofType('resync')).toHaveLength(0);
    expect(c.ofType('snapshot')).toHaveLength(0);
    expect(c.seqs('u1')).toEqual([4]);
  });

  it('sends resync (ahead, exists: false) and no snapshot for a sinceSeq of an upgrade that does not exist', async () => {
    // The reason tells the client its seq is beyond anything served (not a hole in a history), and
    // exists: false that no snapshot follows; the upgrade's events then come from seq 1.
    const url = await setup();
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'nope', sinceSeq: 5 });
    await c.next((m) => m.type === 'resync');
    await c.answered();
    expect(c.ofType('resync')).toEqual([{ type: 'resync', upgradeId: 'nope', reason: 'ahead', exists: false }]);
    expect(c.ofType('snapshot')).toHaveLength(0);
  });

  it('sends resync (ahead) for a sinceSeq just one past the last seq, and then the next event: none is taken as already had', async () => {
    // A client whose last event the server never made durable (a store that lost it) holds one seq
    // more than exists: resumed from there, the next event written under that seq would be skipped.
    const url = await setup();
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 4 });
    const snap = await c.next((m) => m.type === 'snapshot');
    expect(c.ofType('resync')[0]).toEqual({ type: 'resync', upgradeId: 'u1', reason: 'ahead', exists: true });
    expect(snap.seq).toBe(3);
    await tracker!.completeTask('t');
    await c.until((ms) => ms.some((m) => m.type === 'progress_event'), 5000, 'event 4');
    expect(c.seqs('u1')).toEqual([4]);
  });

  it('sends resync then the snapshot of the run there is now when the client resumes another run (createdAt), though its seq fits', async () => {
    const store = new MemoryStore();
    const url = await setup(store);
    await writeUntil(tracker!, 10);
    const oldRun = tracker!.durableProgress.createdAt;
    // The id is started again (a new run, seqs from 1) and written past the old run's seq.
    await tracker!.close();
    await store.delete('u1');
    await new Promise((r) => setTimeout(r, 5));
    tracker = await openTracker('u1', store);
    server!.track(tracker);
    await tracker.startUpgrade();
    await tracker.addTask('t', 'The same task, run again');
    await writeUntil(tracker, 20);
    expect(tracker.durableProgress.createdAt).not.toBe(oldRun);
    // A client that held the old run at seq 10.
    const stale = await connect(url);
    stale.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 10, createdAt: oldRun });
    const snap = await stale.next((m) => m.type === 'snapshot');
    expect(stale.ofType('resync')[0]).toEqual({ type: 'resync', upgradeId: 'u1', reason: 'gap', exists: true });
    expect(snap.data.createdAt).toBe(tracker.durableProgress.createdAt);
    expect(stale.ofType('progress_event')).toHaveLength(0);
    // One that holds this run resumes as before, and one without createdAt too (older clients).
    for (const msg of [{ createdAt: tracker.durableProgress.createdAt }, {}]) {
      const current = await connect(url);
      current.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 15, ...msg });
      await current.until((ms) => ms.filter((m) => m.type === 'progress_event').length >= 5, 10_000, 'events 16..20');
      expectConsecutive(current.seqs('u1'), 16, 20);
      expect(current.ofType('resync')).toHaveLength(0);
    }
    // createdAt belongs to a resume: without sinceSeq it is a bad message.
    const bad = await connect(url);
    bad.send({ type: 'subscribe', upgradeId: 'u1', createdAt: oldRun });
    expect((await bad.next((m) => m.type === 'error')).code).toBe('INVALID_MESSAGE');
  });
});
