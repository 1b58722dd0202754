// A store that lost the last events it had acknowledged (a Redis failover to a replica that had not
// received them) while the tracker that wrote them is still running: the tracker writes them again
// from the events it keeps, when the store still holds the same history up to where it lost them.
import { randomUUID } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { MemoryStore, ProgressTracker, isProgressError, replayEvents, type Logger, type ProgressEvent, type ProgressStore, type UpgradeProgress } from '../src/index.js';
import { expectCode, manualClock } from './helpers.js';

const UPGRADE = 'u-lost-tail';

/**
 * A MemoryStore that can lose its last events. MemoryStore keeps its events in a private field, so
 * the loss goes through its own API: the upgrade is deleted and its first `seq` events appended
 * again (with the state they fold to), which leaves it exactly as if it had never received the rest.
 * The writer lock is kept apart from the events, so the tracker keeps it.
 */
class LossyStore extends MemoryStore {
  /** Appends seen, with their expected seq and first seq. */
  readonly appends: Array<{ expectedSeq: number; fromSeq: number; n: number }> = [];
  /** The `state` argument of each append (a JSON copy, as a store writes its snapshot), in the order of `appends`. */
  readonly states: string[] = [];
  /** Run before each append reaches the store (once it is set); may throw. */
  beforeAppend: ((expectedSeq: number, events: readonly ProgressEvent[]) => Promise<void> | void) | undefined;
  /** Makes readEvents fail. */
  readFails = false;
  /** The readEvents calls made. */
  reads = 0;

  /** Runs `run` once, before the first append that expects `expectedSeq` reaches the store (it may throw). */
  onceAt(expectedSeq: number, run: () => Promise<void> | void): void {
    this.beforeAppend = (seq) => {
      if (seq !== expectedSeq) return;
      this.beforeAppend = undefined;
      return run();
    };
  }

  async loseAfter(upgradeId: string, seq: number): Promise<void> {
    const kept = (await this.events(upgradeId)).slice(0, seq);
    await this.delete(upgradeId);
    if (kept.length > 0) await super.append(upgradeId, kept, 0, replayEvents(kept)!);
  }

  async events(upgradeId: string): Promise<ProgressEvent[]> {
    const out: ProgressEvent[] = [];
    for await (const e of super.readEvents(upgradeId, 0)) out.push(e);
    return out;
  }

  override async append(upgradeId: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    this.appends.push({ expectedSeq, fromSeq: events[0]!.seq, n: events.length });
    this.states.push(JSON.stringify(state));
    await this.beforeAppend?.(expectedSeq, events);
    return super.append(upgradeId, events, expectedSeq, state);
  }

  override readEvents(upgradeId: string, afterSeq: number, limit?: number): AsyncIterable<ProgressEvent> {
    this.reads++;
    if (this.readFails) return { [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(new Error('read refused')) }) };
    return super.readEvents(upgradeId, afterSeq, limit);
  }
}

function recordingLogger() {
  const warnings: Array<{ fields: Record<string, unknown>; msg: string }> = [];
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    warn: (fields: unknown, msg?: string) => void warnings.push({ fields: fields as Record<string, unknown>, msg: msg ?? '' }),
    error: () => {},
  };
  return { logger, warnings };
}

/** A tracker on `store` with a sink and a subscriber that record what they hear, and `n` durable events. */
async function tracker(store: LossyStore, options: { now?: () => number; logger?: Logger; storeTimeoutMs?: number } = {}) {
  const sink: ProgressEvent[] = [];
  const heard: ProgressEvent[] = [];
  const t = await ProgressTracker.open({ upgradeId: UPGRADE, planId: 'p', clusterName: 'c', store, sinks: [{ name: 'rec', handle: (e) => void sink.push(e) }], ...options });
  t.subscribe((e) => heard.push(e));
  // seq 1 upgrade.created (open), 2 upgrade.started, 3-4 task.added, 5 task.started, 6-8 task.progress
  await t.startUpgrade();
  await Promise.all([t.addTask('a', 'A'), t.addTask('b', 'B')]);
  await t.startTask('a');
  for (const p of [10, 20, 30]) await t.updateTaskProgress('a', p);
  expect(t.durableProgress.lastSeq).toBe(8);
  return { t, sink, heard };
}

const ids = (events: readonly ProgressEvent[]) => events.map((e) => `${e.seq}:${e.eventId}`);

describe('a store that lost the last events it acknowledged, the tracker still running', () => {
  it('writes them again (same ids, same seqs) and then the command: it resolves, and the sinks and subscribers hear each event once', async () => {
    const store = new LossyStore();
    const { logger, warnings } = recordingLogger();
    const { t, sink, heard } = await tracker(store, { logger });
    const acknowledged = await store.events(UPGRADE);
    await store.loseAfter(UPGRADE, 5);
    expect((await store.events(UPGRADE)).length).toBe(5);
    store.appends.length = 0;
    store.states.length = 0;

    const [ev, ev2] = await Promise.all([t.updateTaskProgress('a', 40), t.updateTaskProgress('a', 50)]);
    expect([ev.seq, ev2.seq]).toEqual([9, 10]);
    // The lost events went back at seq 5 (in one append), then the command's write at seq 8, as it was.
    expect(store.appends).toEqual([
      { expectedSeq: 8, fromSeq: 9, n: 2 },
      { expectedSeq: 5, fromSeq: 6, n: 3 },
      { expectedSeq: 8, fromSeq: 9, n: 2 },
    ]);
    const storedNow = await store.events(UPGRADE);
    expect(ids(storedNow)).toEqual(ids([...acknowledged, ev, ev2]));
    expect(storedNow.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(JSON.stringify(await store.load(UPGRADE))).toBe(JSON.stringify(t.durableProgress));
    // Each event heard once, in seq order: the restored ones were heard when first made durable.
    expect(ids(sink)).toEqual(ids(storedNow));
    expect(ids(heard)).toEqual(ids(storedNow.slice(1)));
    // Each with the state after its own events: the lost ones with the durable state (seq 8), not the
    // live one ahead of them (seq 10), which a store that keeps snapshots would refuse or keep as theirs.
    expect(store.states.map((s) => (JSON.parse(s) as UpgradeProgress).lastSeq)).toEqual([10, 8, 10]);
    expect(store.states[1]).toBe(JSON.stringify(replayEvents(acknowledged)));
    const restored = warnings.filter((w) => w.msg.includes('the store had lost acknowledged events (a failover?); written again'));
    expect(restored).toHaveLength(1);
    expect(restored[0]!.fields).toMatchObject({ upgradeId: UPGRADE, count: 3, fromSeq: 6, toSeq: 8 });
    // And the tracker goes on as usual.
    expect((await t.completeTask('a')).seq).toBe(11);
    await t.close();
  });

  it('restores also after a write of unknown outcome cut by the failover (the store is behind: that write is not in it)', async () => {
    const store = new LossyStore();
    const { t, sink } = await tracker(store);
    const acknowledged = await store.events(UPGRADE);
    // The failover: the store loses seqs 7-8, and the append in flight is cut before it lands.
    store.beforeAppend = async () => {
      store.beforeAppend = undefined;
      await store.loseAfter(UPGRADE, 6);
      throw new Error('connection reset');
    };
    await expectCode(() => t.updateTaskProgress('a', 40), 'STORE_UNAVAILABLE');
    const ev = await t.updateTaskProgress('a', 45);
    expect(ev.seq).toBe(9);
    expect(ids(await store.events(UPGRADE))).toEqual(ids([...acknowledged, ev]));
    expect(ids(sink)).toEqual(ids(await store.events(UPGRADE)));
    await t.close();
  });

  it('keeps CONFLICT when the store holds another history at the seq it is at (another writer, a re-created upgrade)', async () => {
    const store = new LossyStore();
    const { t, sink } = await tracker(store);
    const acknowledged = await store.events(UPGRADE);
    await store.loseAfter(UPGRADE, 4);
    // Another writer wrote its own event at seq 5.
    const theirs = { ...acknowledged[4]!, eventId: randomUUID() };
    await store.append(UPGRADE, [theirs], 4, replayEvents([...acknowledged.slice(0, 4), theirs])!);
    store.appends.length = 0;
    const err = await t.updateTaskProgress('a', 40).catch((e: unknown) => e);
    expect(isProgressError(err, 'CONFLICT')).toBe(true);
    expect((err as { context: Record<string, unknown> }).context.storedSeq).toBe(5);
    // Nothing written over it.
    expect(store.appends).toEqual([{ expectedSeq: 8, fromSeq: 9, n: 1 }]);
    expect(ids(await store.events(UPGRADE))).toEqual(ids([...acknowledged.slice(0, 4), theirs]));
    await expectCode(() => t.updateTaskProgress('a', 41), 'CONFLICT');
    expect(sink).toHaveLength(8);
    await t.close();
  });

  it('restores every event after upgrade.created when the store kept only that one: open() made it durable, and keeps it', async () => {
    const store = new LossyStore();
    const { t, sink } = await tracker(store);
    const acknowledged = await store.events(UPGRADE);
    await store.loseAfter(UPGRADE, 1);
    store.appends.length = 0;
    const ev = await t.updateTaskProgress('a', 40);
    expect(ev.seq).toBe(9);
    expect(store.appends).toEqual([
      { expectedSeq: 8, fromSeq: 9, n: 1 },
      { expectedSeq: 1, fromSeq: 2, n: 7 },
      { expectedSeq: 8, fromSeq: 9, n: 1 },
    ]);
    expect(ids(await store.events(UPGRADE))).toEqual(ids([...acknowledged, ev]));
    expect(ids(sink)).toEqual(ids([...acknowledged, ev]));
    await t.close();
  });

  it('restores events it adopted (a write of unknown outcome found stored): they are durable events it made, and kept', async () => {
    const store = new LossyStore();
    const { t, sink } = await tracker(store);
    // Seq 9 lands, and its answer is lost (STORE_UNAVAILABLE); the next write finds it and adopts it.
    store.beforeAppend = async (expectedSeq, events) => {
      store.beforeAppend = undefined;
      await MemoryStore.prototype.append.call(store, UPGRADE, events, expectedSeq, replayEvents([...(await store.events(UPGRADE)), ...events])!);
      throw new Error('socket timeout (the write landed)');
    };
    await expectCode(() => t.updateTaskProgress('a', 40), 'STORE_UNAVAILABLE');
    const refused = await t.updateTaskProgress('a', 41).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'adopted', adoptedFromSeq: 9, adoptedToSeq: 9 } });
    const acknowledged = await store.events(UPGRADE);
    expect(acknowledged).toHaveLength(9);
    // The failover loses the adopted event: written again from the events the tracker keeps.
    await store.loseAfter(UPGRADE, 8);
    const ev = await t.updateTaskProgress('a', 42);
    expect(ev.seq).toBe(10);
    expect(ids(await store.events(UPGRADE))).toEqual(ids([...acknowledged, ev]));
    expect(ids(sink)).toEqual(ids([...acknowledged, ev]));
    await t.close();
  });

  it('keeps CONFLICT when the store lost every event (seq 0: an upgrade deleted on purpose does not come back)', async () => {
    const store = new LossyStore();
    const { t } = await tracker(store);
    await store.loseAfter(UPGRADE, 0);
    store.appends.length = 0;
    await expectCode(() => t.updateTaskProgress('a', 40), 'CONFLICT');
    expect(store.appends).toHaveLength(1);
    expect(await store.load(UPGRADE)).toBeUndefined();
    await t.close();
  });

  it('keeps CONFLICT when the store cannot be read to compare', async () => {
    const store = new LossyStore();
    const { t } = await tracker(store);
    await store.loseAfter(UPGRADE, 5);
    store.readFails = true;
    store.appends.length = 0;
    await expectCode(() => t.updateTaskProgress('a', 40), 'CONFLICT');
    expect(store.appends).toHaveLength(1);
    expect((await store.events(UPGRADE)).length).toBe(5);
    // Readable again: the next write restores.
    store.readFails = false;
    expect((await t.updateTaskProgress('a', 41)).seq).toBe(9);
    await t.close();
  });

  it('restores events made durable long before (a slow writer): the bound is a count, not an age', async () => {
    const clock = manualClock();
    const store = new LossyStore();
    const { t } = await tracker(store, { now: clock.now });
    await store.loseAfter(UPGRADE, 5);
    clock.advance(3_600_000);
    expect((await t.updateTaskProgress('a', 40)).seq).toBe(9);
    expect((await store.events(UPGRADE)).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await t.close();
  });

  it('keeps the last 1,000 events: restores a loss of 999 events, not one of 1,000', async () => {
    for (const lost of [999, 1_000]) {
      const store = new LossyStore();
      const t = await ProgressTracker.open({ upgradeId: UPGRADE, planId: 'p', clusterName: 'c', store });
      await t.addTask('a', 'A');
      await t.startTask('a');
      // seqs 1-3, then a burst of 1,200 progress events (group commit), then 3 more: lastSeq 1,206.
      await Promise.all(Array.from({ length: 1_200 }, (_, i) => t.updateTaskProgress('a', i % 100)));
      for (const p of [1, 2, 3]) await t.updateTaskProgress('a', p);
      const last = t.durableProgress.lastSeq;
      // The ring must hold seq S (compared) to the last one: lost + 1 events.
      await store.loseAfter(UPGRADE, last - lost);
      if (lost === 999) {
        expect((await t.updateTaskProgress('a', 50)).seq).toBe(last + 1);
        expect((await store.events(UPGRADE)).map((e) => e.seq)).toEqual(Array.from({ length: last + 1 }, (_, i) => i + 1));
      } else {
        await expectCode(() => t.updateTaskProgress('a', 50), 'CONFLICT');
        expect((await store.events(UPGRADE)).length).toBe(last - lost);
      }
      await t.close();
    }
  });

  it('refuses the command with CONFLICT, without another try, when the write of the lost events itself gets CONFLICT (another writer moved it meanwhile)', async () => {
    const store = new LossyStore();
    const { t } = await tracker(store);
    const acknowledged = await store.events(UPGRADE);
    await store.loseAfter(UPGRADE, 5);
    const theirs = { ...acknowledged[5]!, eventId: randomUUID() };
    // Another writer gets in between the check and the restore.
    store.onceAt(5, () => MemoryStore.prototype.append.call(store, UPGRADE, [theirs], 5, replayEvents([...acknowledged.slice(0, 5), theirs])!));
    store.appends.length = 0;
    const err = await t.updateTaskProgress('a', 40).catch((e: unknown) => e);
    expect(isProgressError(err, 'CONFLICT')).toBe(true);
    expect(store.appends).toEqual([
      { expectedSeq: 8, fromSeq: 9, n: 1 },
      { expectedSeq: 5, fromSeq: 6, n: 3 },
    ]);
    expect(ids(await store.events(UPGRADE))).toEqual(ids([...acknowledged.slice(0, 5), theirs]));
    expect(t.progress.lastSeq).toBe(8);
    await t.close();
  });

  it('refuses the command with STORE_UNAVAILABLE when the write of the lost events fails; the next command writes them again', async () => {
    const store = new LossyStore();
    const { t } = await tracker(store);
    const acknowledged = await store.events(UPGRADE);
    await store.loseAfter(UPGRADE, 5);
    store.onceAt(5, () => {
      throw new Error('connection reset');
    });
    await expectCode(() => t.updateTaskProgress('a', 40), 'STORE_UNAVAILABLE');
    expect((await store.events(UPGRADE)).length).toBe(5);
    const ev = await t.updateTaskProgress('a', 41);
    expect(ev.seq).toBe(9);
    expect(ids(await store.events(UPGRADE))).toEqual(ids([...acknowledged, ev]));
    await t.close();
  });

  it('remembers nothing of the command refused when the write of the lost events fails (its own write was never sent): close() reads nothing', async () => {
    const store = new LossyStore();
    const { t } = await tracker(store);
    await store.loseAfter(UPGRADE, 5);
    store.onceAt(5, () => {
      throw new Error('connection reset');
    });
    await expectCode(() => t.updateTaskProgress('a', 40), 'STORE_UNAVAILABLE');
    store.reads = 0;
    await t.close();
    expect(store.reads).toBe(0);
  });

  it('gives up on a write of the lost events that does not answer within storeTimeoutMs: STORE_UNAVAILABLE, and the next command goes on', async () => {
    const store = new LossyStore();
    const { t } = await tracker(store, { storeTimeoutMs: 200 });
    const acknowledged = await store.events(UPGRADE);
    await store.loseAfter(UPGRADE, 5);
    let landLate: (() => void) | undefined;
    // The restore hangs, then lands (after the tracker gave up on it).
    store.onceAt(5, () => new Promise<void>((resolve) => (landLate = resolve)));
    const err = await t.updateTaskProgress('a', 50).catch((e: unknown) => e);
    expect(isProgressError(err, 'STORE_UNAVAILABLE')).toBe(true);
    expect((err as { context: Record<string, unknown> }).context.reason).toBe('timeout');
    expect(t.progress.lastSeq).toBe(8);
    landLate!();
    await vi.waitFor(async () => expect((await store.events(UPGRADE)).length).toBe(8));
    const ev = await t.updateTaskProgress('a', 60);
    expect(ev.seq).toBe(9);
    expect(ids(await store.events(UPGRADE))).toEqual(ids([...acknowledged, ev]));
    await t.close();
  });

  it('writes a command issued while the lost events are written again right after the write it retries, in seq order', async () => {
    const store = new LossyStore();
    const { t } = await tracker(store);
    await store.loseAfter(UPGRADE, 5);
    let during: Promise<ProgressEvent> | undefined;
    // Recorded on top of the write being retried (seq 9), queued while the restore is out.
    store.onceAt(5, () => {
      during = t.updateTaskProgress('a', 45);
    });
    store.appends.length = 0;
    const ev = await t.updateTaskProgress('a', 40);
    const ev2 = await during!;
    expect([ev.seq, ev2.seq]).toEqual([9, 10]);
    expect(store.appends).toEqual([
      { expectedSeq: 8, fromSeq: 9, n: 1 },
      { expectedSeq: 5, fromSeq: 6, n: 3 },
      { expectedSeq: 8, fromSeq: 9, n: 2 },
    ]);
    expect((await store.events(UPGRADE)).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(JSON.stringify(await store.load(UPGRADE))).toBe(JSON.stringify(t.durableProgress));
    await t.close();
  });

  it('writes the lost events again once per write: a retried write that finds the store behind again is refused with CONFLICT', async () => {
    const store = new LossyStore();
    const { t } = await tracker(store);
    await store.loseAfter(UPGRADE, 5);
    let tries = 0;
    store.beforeAppend = async (_expectedSeq, events) => {
      // The command's write (seq 9): the retry after the restore finds the store behind again (a
      // second failover), and so would two more tries.
      if (events[0]!.seq === 9 && tries++ > 0 && tries <= 3) await store.loseAfter(UPGRADE, 5);
    };
    store.appends.length = 0;
    await expectCode(() => t.updateTaskProgress('a', 40), 'CONFLICT');
    expect(store.appends).toEqual([
      { expectedSeq: 8, fromSeq: 9, n: 1 },
      { expectedSeq: 5, fromSeq: 6, n: 3 },
      { expectedSeq: 8, fromSeq: 9, n: 1 },
    ]);
    expect(t.progress.lastSeq).toBe(8);
    // The next command restores again and goes on.
    store.beforeAppend = undefined;
    expect((await t.updateTaskProgress('a', 41)).seq).toBe(9);
    expect((await store.events(UPGRADE)).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await t.close();
  });
});

// Checks that the test store really is a ProgressStore (compile-time).
const _check: ProgressStore = new LossyStore();
void _check;
