import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore, ProgressError, ProgressTracker, cloneState, type ProgressEvent, type ProgressStore, type UpgradeProgress } from '../src/index.js';
import { delegatingStore } from './delegating-store.js';
import { expectCode } from './helpers.js';

const UPGRADE = 'u-unknown';

/**
 * A MemoryStore whose append, on the calls listed in `storeThenThrow`, stores the events and then
 * throws (an ack lost after the write landed: a driver timeout, a dropped connection).
 */
function lyingStore(options: { storeThenThrow?: number[]; throwOnly?: number[] } = {}) {
  const inner = new MemoryStore();
  let calls = 0;
  const store: ProgressStore & { inner: MemoryStore; readFails: boolean; readHangs: boolean; reads: number; readsEnded: number } = Object.assign(
    delegatingStore(inner, {
      async append(id, events, expectedSeq, state) {
        calls++;
        if (options.throwOnly?.includes(calls)) throw new Error('connection reset before the write');
        await inner.append(id, events, expectedSeq, state);
        if (options.storeThenThrow?.includes(calls)) throw new Error('socket timeout (the write landed)');
      },
      readEvents(id, afterSeq, limit) {
        store.reads++;
        if (store.readHangs) {
          return {
            [Symbol.asyncIterator]: () => ({
              next: () => new Promise<IteratorResult<ProgressEvent>>(() => {}),
              return: () => {
                store.readsEnded++;
                return Promise.resolve({ done: true as const, value: undefined });
              },
            }),
          };
        }
        if (store.readFails) return { [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(new Error('read refused')) }) };
        return inner.readEvents(id, afterSeq, limit);
      },
    }),
    { inner, readFails: false, readHangs: false, reads: 0, readsEnded: 0 },
  );
  return store;
}

async function stored(store: ProgressStore): Promise<ProgressEvent[]> {
  const out: ProgressEvent[] = [];
  for await (const e of store.readEvents(UPGRADE, 0)) out.push(e);
  return out;
}

const open = (store: ProgressStore, extra: Partial<Parameters<typeof ProgressTracker.open>[0]> = {}) =>
  ProgressTracker.open({ upgradeId: UPGRADE, planId: 'p', clusterName: 'c', store, ...extra });

afterEach(() => {
  vi.useRealTimers();
});

describe('an append the store kept but reported as failed', () => {
  it('is adopted on the next write: that write is refused STORE_UNAVAILABLE, the one after it succeeds with contiguous seqs', async () => {
    // Append calls: 1 = upgrade.created (open), 2 = addTask, 3 = startTask (stored, then throws).
    const store = lyingStore({ storeThenThrow: [3] });
    const t = await open(store);
    await t.addTask('a', 'A');
    await expectCode(() => t.startTask('a'), 'STORE_UNAVAILABLE');
    // The outcome was unknown: the tracker went back to what it knew to be durable.
    expect(t.progress.lastSeq).toBe(2);
    expect(t.progress.tasks.a!.status).toBe('not_started');
    // The next write finds the store ahead, holding exactly the write that "failed": it is adopted.
    let refused: unknown;
    await t.updateTaskProgress('a', 10).catch((err: unknown) => (refused = err));
    expect(refused).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { upgradeId: UPGRADE, reason: 'adopted', adoptedFromSeq: 3, adoptedToSeq: 3 } });
    expect(t.durableProgress.lastSeq).toBe(3);
    expect(t.progress.lastSeq).toBe(3);
    expect(t.progress.tasks.a!.status).toBe('in_progress');
    // The tracker is usable again: the next command is stored right after the adopted event.
    const ev = await t.updateTaskProgress('a', 20);
    expect(ev.seq).toBe(4);
    expect((await stored(store)).map((e) => `${e.seq}:${e.type}`)).toEqual(['1:upgrade.created', '2:task.added', '3:task.started', '4:task.progress']);
    expect(JSON.stringify(t.durableProgress)).toBe(JSON.stringify(await store.load(UPGRADE)));
    // Retrying the adopted command itself is now refused for what it is: already done.
    await expectCode(() => t.startTask('a'), 'INVALID_TRANSITION');
    await t.close();
  });

  it('hands the adopted events to sinks and subscribers once, in seq order, with the durable state after each', async () => {
    const store = lyingStore({ storeThenThrow: [2] });
    const sink: string[] = [];
    const t = await open(store, { sinks: [{ name: 'rec', handle: (e, s) => void sink.push(`${e.seq}:${e.type}:${s.lastSeq}`) }] });
    const heard: string[] = [];
    t.subscribe((e, s) => heard.push(`${e.seq}:${e.type}:${s.lastSeq}`));
    // One write of several commands (group commit), stored then reported failed.
    const first = await Promise.allSettled([t.startUpgrade(), t.addTask('a', 'A'), t.addTask('b', 'B')]);
    expect(first.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(t.progress.lastSeq).toBe(1);
    await expectCode(() => t.startUpgrade(), 'STORE_UNAVAILABLE');
    await t.startTask('b');
    await t.flush();
    const expected = ['1:upgrade.created:1', '2:upgrade.started:2', '3:task.added:3', '4:task.added:4', '5:task.started:5'];
    expect(sink).toEqual(expected);
    expect(heard).toEqual(expected.slice(1));
    expect((await stored(store)).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    await t.close();
  });

  it('stores a command that a subscriber issues in reply to an adopted event, right after the adopted events', async () => {
    // Append calls: 1 = upgrade.created (open), 2 = addTasks, 3 = completeTask (stored, then throws).
    const store = lyingStore({ storeThenThrow: [3] });
    const t = await open(store);
    await t.addTasks([
      { taskId: 'a', taskName: 'A' },
      { taskId: 'b', taskName: 'B' },
    ]);
    // "When a completes, start b": the reply is recorded while the event is handed out.
    const replies: Promise<ProgressEvent>[] = [];
    t.subscribe((e) => {
      if (e.type === 'task.completed' && e.taskId === 'a') replies.push(t.startTask('b'));
    });
    await expectCode(() => t.completeTask('a'), 'STORE_UNAVAILABLE');
    expect(replies).toHaveLength(0);
    // The next write finds seq 4 stored and adopts it: the subscriber hears task.completed now.
    await expectCode(() => t.setCurrentPhase('X'), 'STORE_UNAVAILABLE');
    expect(replies).toHaveLength(1);
    // Its reply was checked against the adopted state, not the refused one, and is stored after it.
    const started = await replies[0]!;
    expect(started.seq).toBe(5);
    expect(t.durableProgress.tasks.b!.status).toBe('in_progress');
    expect(t.progress.lastSeq).toBe(5);
    expect(t.progress.currentPhase).not.toBe('X');
    expect((await stored(store)).map((e) => `${e.seq}:${e.type}`)).toEqual(['1:upgrade.created', '2:task.added', '3:task.added', '4:task.completed', '5:task.started']);
    expect(JSON.stringify(t.durableProgress)).toBe(JSON.stringify(await store.load(UPGRADE)));
    await t.close();
  });

  it('gives the commands queued behind the write that adopted the reason and seqs it gives that write', async () => {
    const store = lyingStore({ storeThenThrow: [2] });
    const t = await open(store);
    await expectCode(() => t.startUpgrade(), 'STORE_UNAVAILABLE');
    const inner = store.readEvents.bind(store);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let reading!: () => void;
    const readStarted = new Promise<void>((resolve) => (reading = resolve));
    store.readEvents = (id, afterSeq, limit) => {
      reading();
      return (async function* () {
        await gate;
        yield* inner(id, afterSeq, limit);
      })();
    };
    const first = t.setCurrentPhase('A').then(() => undefined, (err: unknown) => err);
    await readStarted;
    const behind = t.setCurrentPhase('B').then(() => undefined, (err: unknown) => err);
    release();
    const adopted = { code: 'STORE_UNAVAILABLE', context: { upgradeId: UPGRADE, reason: 'adopted', adoptedFromSeq: 2, adoptedToSeq: 2 } };
    expect(await first).toMatchObject(adopted);
    // A caller that checks the reason before a retry must not be told less for a queued command.
    expect(await behind).toMatchObject(adopted);
    await t.close();
  });

  it('is found among several failed writes: the one stored before later ones failed without reaching the store', async () => {
    // 2 = stored then throws; 3 = throws before the store is reached (the store would have said CONFLICT).
    const store = lyingStore({ storeThenThrow: [2], throwOnly: [3] });
    const t = await open(store);
    await expectCode(() => t.startUpgrade('one'), 'STORE_UNAVAILABLE');
    await expectCode(() => t.startUpgrade('two'), 'STORE_UNAVAILABLE');
    await expectCode(() => t.startUpgrade('three'), 'STORE_UNAVAILABLE');
    expect(t.progress.currentPhase).toBe('one');
    const ev = await t.setCurrentPhase('four');
    expect(ev.seq).toBe(3);
    expect((await stored(store)).map((e) => e.details.phase)).toEqual([undefined, 'one', 'four']);
    await t.close();
  });

  it('still finds the first failed write after a long outage of failed writes past the 10,000-event bound', async () => {
    // 2 = stored, then the connection drops (the answer is lost); 3..13 = the outage: each write
    // fails before it reaches the store (11 writes of 1,000 events: 11,000 events remembered).
    const outage = Array.from({ length: 11 }, (_, i) => i + 3);
    const store = lyingStore({ storeThenThrow: [2], throwOnly: outage });
    const t = await open(store);
    await expectCode(() => t.startUpgrade(), 'STORE_UNAVAILABLE');
    const tasks = Array.from({ length: 1000 }, (_, i) => ({ taskId: `t${i}`, taskName: `T${i}` }));
    for (let i = 0; i < outage.length; i++) await expectCode(() => t.addTasks(tasks), 'STORE_UNAVAILABLE');
    // The store is back, and holds the first write: adopted, not CONFLICT until the tracker is reopened.
    let refused: unknown;
    await t.setCurrentPhase('X').catch((err: unknown) => (refused = err));
    expect(refused).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'adopted', adoptedFromSeq: 2, adoptedToSeq: 2 } });
    expect((await t.setCurrentPhase('Y')).seq).toBe(3);
    await t.close();
  });

  it('still finds the latest failed write past the 10,000-event bound (the one in flight when the store came back)', async () => {
    const outage = Array.from({ length: 11 }, (_, i) => i + 2);
    const store = lyingStore({ throwOnly: outage, storeThenThrow: [13] });
    const t = await open(store);
    const tasks = Array.from({ length: 1000 }, (_, i) => ({ taskId: `t${i}`, taskName: `T${i}` }));
    for (let i = 0; i < outage.length; i++) await expectCode(() => t.addTasks(tasks), 'STORE_UNAVAILABLE');
    await expectCode(() => t.startUpgrade(), 'STORE_UNAVAILABLE');
    let refused: unknown;
    await t.setCurrentPhase('X').catch((err: unknown) => (refused = err));
    expect(refused).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'adopted', adoptedFromSeq: 2, adoptedToSeq: 2 } });
    await t.close();
  });

  it('keeps the latest failed write, not the first, when the two alone pass the 10,000-event bound', async () => {
    // 2 = 6,000 tasks, failed before the store; 3 = 5,000 tasks, stored, then its answer lost.
    const store = lyingStore({ throwOnly: [2], storeThenThrow: [3] });
    const t = await open(store);
    const tasks = (n: number) => Array.from({ length: n }, (_, i) => ({ taskId: `t${i}`, taskName: `T${i}` }));
    await expectCode(() => t.addTasks(tasks(6000)), 'STORE_UNAVAILABLE');
    await expectCode(() => t.addTasks(tasks(5000)), 'STORE_UNAVAILABLE');
    let refused: unknown;
    await t.setCurrentPhase('X').catch((err: unknown) => (refused = err));
    expect(refused).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'adopted', adoptedFromSeq: 2, adoptedToSeq: 5001 } });
    expect(t.durableProgress.lastSeq).toBe(5001);
    await t.close();
  });

  it('keeps every failed write while they hold 10,000 events in all (the bound itself), the one between the first and the latest included', async () => {
    // 2 = 1 event, failed before the store; 3 = 9,998 tasks, stored, then its answer lost; 4 = 1
    // event, failed before the store: 10,000 events remembered, none of them beyond the bound.
    const store = lyingStore({ throwOnly: [2, 4], storeThenThrow: [3] });
    const t = await open(store);
    await expectCode(() => t.startUpgrade(), 'STORE_UNAVAILABLE');
    await expectCode(() => t.addTasks(Array.from({ length: 9998 }, (_, i) => ({ taskId: `t${i}`, taskName: `T${i}` }))), 'STORE_UNAVAILABLE');
    await expectCode(() => t.setCurrentPhase('X'), 'STORE_UNAVAILABLE');
    let refused: unknown;
    await t.setCurrentPhase('Y').catch((err: unknown) => (refused = err));
    expect(refused).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'adopted', adoptedFromSeq: 2, adoptedToSeq: 9999 } });
    expect(t.durableProgress.lastSeq).toBe(9999);
    await t.close();
  });

  it('rejects the commands queued while the store is read, settles flush(), and lets close() finish', async () => {
    const store = lyingStore({ storeThenThrow: [2] });
    const t = await open(store);
    await expectCode(() => t.startUpgrade(), 'STORE_UNAVAILABLE');
    const inner = store.readEvents.bind(store);
    let reading!: () => void;
    const readStarted = new Promise<void>((resolve) => (reading = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let readCalled = false;
    store.readEvents = (id, afterSeq, limit) => {
      readCalled = true;
      reading();
      return (async function* () {
        await gate;
        yield* inner(id, afterSeq, limit);
      })();
    };
    const conflicted = t.setCurrentPhase('A');
    await Promise.race([readStarted, conflicted.then(() => {}, () => {})]);
    expect(readCalled).toBe(true);
    // Recorded on top of the refused write, while the store is read.
    const behind = t.setCurrentPhase('B');
    const flushed = t.flush();
    const closed = t.close();
    release();
    const results = await Promise.allSettled([conflicted, behind]);
    expect(results.map((r) => r.status === 'rejected' && (r.reason as { code: string }).code)).toEqual(['STORE_UNAVAILABLE', 'STORE_UNAVAILABLE']);
    await flushed;
    await closed;
    expect(t.durableProgress.status).toBe('in_progress');
    expect((await stored(store.inner)).map((e) => e.seq)).toEqual([1, 2]);
    await expectCode(() => t.setCurrentPhase('C'), 'CLOSED');
  });

  it('is adopted on close when no later write came, so that the sinks get its events before they flush', async () => {
    const store = lyingStore({ storeThenThrow: [3] });
    const seen: string[] = [];
    let flushedAfter = '';
    const sink = { name: 'rec', handle: (e: ProgressEvent) => void seen.push(`${e.seq}:${e.type}`), flush: async () => void (flushedAfter = seen.at(-1)!) };
    const t = await open(store, { sinks: [sink] });
    await t.startUpgrade();
    await expectCode(() => t.completeUpgrade(), 'STORE_UNAVAILABLE');
    expect(t.progress.status).toBe('in_progress');
    await t.close();
    expect(seen).toEqual(['1:upgrade.created', '2:upgrade.started', '3:upgrade.completed']);
    expect(flushedAfter).toBe('3:upgrade.completed');
    expect(t.durableProgress.status).toBe('completed');
    expect(t.progress.status).toBe('completed');
  });

  it('closes without adopting when the failed write is not in the store, or the store does not answer', async () => {
    const store = lyingStore({ throwOnly: [2] });
    const seen: number[] = [];
    const t = await open(store, { sinks: [{ name: 'rec', handle: (e) => void seen.push(e.seq) }] });
    await expectCode(() => t.startUpgrade(), 'STORE_UNAVAILABLE');
    await t.close();
    expect(seen).toEqual([1]);
    expect(store.reads).toBe(1);

    vi.useFakeTimers();
    const hanging = lyingStore({ storeThenThrow: [2] });
    const u = await open(hanging);
    await expectCode(() => u.startUpgrade(), 'STORE_UNAVAILABLE');
    hanging.readHangs = true;
    let closed = false;
    const closing = u.close().then(() => (closed = true));
    await vi.advanceTimersByTimeAsync(60_000);
    await closing;
    expect(closed).toBe(true);
    expect(u.durableProgress.lastSeq).toBe(1);
  });

  it('stays CONFLICT when the store holds another writer\'s events after the durable seq', async () => {
    const store = lyingStore({ throwOnly: [2] });
    const t = await open(store);
    // Our write fails before reaching the store; another writer (no lock) then appends seq 2.
    await expectCode(() => t.startUpgrade('ours'), 'STORE_UNAVAILABLE');
    const [created] = await stored(store);
    await store.inner.append(UPGRADE, [{ ...created!, eventId: 'foreign', seq: 2, type: 'upgrade.started', status: 'in_progress', details: { phase: 'theirs' } }], 1, t.progress);
    await expectCode(() => t.setCurrentPhase('X'), 'CONFLICT');
    expect(t.durableProgress.lastSeq).toBe(1);
    // Found not ours, the failed write is forgotten: the next CONFLICT and close() read nothing.
    store.reads = 0;
    await expectCode(() => t.setCurrentPhase('Y'), 'CONFLICT');
    await t.close();
    expect(store.reads).toBe(0);
  });

  it('stays CONFLICT when the store holds our failed write followed by another writer\'s event', async () => {
    const store = lyingStore({ storeThenThrow: [2] });
    const t = await open(store);
    await expectCode(() => t.startUpgrade('ours'), 'STORE_UNAVAILABLE');
    const [, ours] = await stored(store);
    await store.inner.append(UPGRADE, [{ ...ours!, eventId: 'foreign', seq: 3, type: 'upgrade.phase_changed', details: { phase: 'theirs' } }], 2, t.progress);
    await expectCode(() => t.setCurrentPhase('X'), 'CONFLICT');
    expect(t.durableProgress.lastSeq).toBe(1);
    await t.close();
  });

  it('stays CONFLICT when the store holds only the first part of a failed write (an append is all or nothing: not ours)', async () => {
    const store = lyingStore({ throwOnly: [2] });
    const t = await open(store);
    const original = store.append.bind(store);
    let calls = 0;
    store.append = async (id, events, expectedSeq, state) => {
      // A store that breaks the contract: keeps the first event of the second write, then fails.
      if (++calls === 2) {
        await store.inner.append(id, events.slice(0, 1), expectedSeq, state);
        throw new Error('half written');
      }
      return original(id, events, expectedSeq, state);
    };
    await expectCode(() => t.startUpgrade(), 'STORE_UNAVAILABLE');
    const burst = await Promise.allSettled([t.addTask('a', 'A'), t.addTask('b', 'B')]);
    expect(burst.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    await expectCode(() => t.startUpgrade(), 'CONFLICT');
    expect(t.durableProgress.lastSeq).toBe(1);
    await t.close();
  });

  it('refuses with DATA_CORRUPTED, the durable state unchanged, a failed write the store reads back as events it cannot fold', async () => {
    const store = lyingStore({ storeThenThrow: [2] });
    const t = await open(store);
    await expectCode(() => t.startUpgrade(), 'STORE_UNAVAILABLE');
    const inner = store.readEvents.bind(store);
    store.readEvents = (id, afterSeq, limit) =>
      (async function* () {
        for await (const e of inner(id, afterSeq, limit)) yield { ...e, status: 'bogus' as ProgressEvent['status'] };
      })();
    const seen: number[] = [];
    t.subscribe((e) => seen.push(e.seq));
    await expectCode(() => t.setCurrentPhase('X'), 'DATA_CORRUPTED');
    expect(t.durableProgress.lastSeq).toBe(1);
    expect(t.progress.lastSeq).toBe(1);
    expect(seen).toEqual([]);
    // Still remembered: once the store reads back what it holds, the write is adopted.
    store.readEvents = inner;
    await expectCode(() => t.setCurrentPhase('Y'), 'STORE_UNAVAILABLE');
    expect(seen).toEqual([2]);
    expect((await t.setCurrentPhase('Z')).seq).toBe(3);
    await t.close();
  });

  it('stays CONFLICT, logged, when the store cannot be read; adopts once it can', async () => {
    const store = lyingStore({ storeThenThrow: [2] });
    const errors: object[] = [];
    const t = await open(store, { logger: { debug() {}, info() {}, warn: (o) => void errors.push(o), error: (o) => void errors.push(o) } });
    await expectCode(() => t.startUpgrade(), 'STORE_UNAVAILABLE');
    store.readFails = true;
    errors.length = 0;
    await expectCode(() => t.setCurrentPhase('X'), 'CONFLICT');
    expect(errors.some((o) => (o as { err?: Error }).err?.message === 'read refused')).toBe(true);
    expect(t.durableProgress.lastSeq).toBe(1);
    // The failed write is still remembered: once the store answers, it is adopted.
    store.readFails = false;
    await expectCode(() => t.setCurrentPhase('Y'), 'STORE_UNAVAILABLE');
    expect((await t.setCurrentPhase('Z')).seq).toBe(3);
    await t.close();
  });

  it('stays CONFLICT when reading the store does not answer, rather than hang', async () => {
    vi.useFakeTimers();
    const store = lyingStore({ storeThenThrow: [2] });
    const t = await open(store);
    await expectCode(() => t.startUpgrade(), 'STORE_UNAVAILABLE');
    store.readHangs = true;
    let outcome: unknown;
    const pending = t.setCurrentPhase('X').catch((err: unknown) => (outcome = err));
    await vi.advanceTimersByTimeAsync(60_000);
    await pending;
    expect(outcome).toMatchObject({ code: 'CONFLICT' });
    expect(store.reads).toBe(1);
    // The read given up on is ended (its iterator returned), not left holding the store's cursor.
    expect(store.readsEnded).toBe(1);
    vi.useRealTimers();
    store.readHangs = false;
    await expectCode(() => t.setCurrentPhase('Y'), 'STORE_UNAVAILABLE');
    await t.close();
  });

  it('does not read the store on a CONFLICT when no write of unknown outcome is remembered', async () => {
    const store = lyingStore();
    const t = await open(store);
    await t.startUpgrade();
    const [created] = await stored(store);
    await store.inner.append(UPGRADE, [{ ...created!, eventId: 'foreign', seq: 3, type: 'upgrade.phase_changed', status: 'in_progress', details: { phase: 'theirs' } }], 2, t.progress);
    store.reads = 0;
    await expectCode(() => t.setCurrentPhase('X'), 'CONFLICT');
    expect(store.reads).toBe(0);
    await t.close();
  });

  it.each(['CLOSED', 'INVALID_ARGUMENT', 'DATA_CORRUPTED'] as const)('does not remember a write the store refused with %s (nothing stored): a later CONFLICT and close() do not read the store', async (code) => {
    const store = lyingStore();
    const t = await open(store);
    const append = store.append;
    store.append = async () => {
      throw new ProgressError(code, `refused: ${code}`);
    };
    await expectCode(() => t.startUpgrade('refused'), code);
    store.append = append;
    const [created] = await stored(store);
    await store.inner.append(UPGRADE, [{ ...created!, eventId: 'foreign', seq: 2, type: 'upgrade.started', status: 'in_progress', details: { phase: 'theirs' } }], 1, t.progress);
    store.reads = 0;
    await expectCode(() => t.setCurrentPhase('X'), 'CONFLICT');
    await t.close();
    expect(store.reads).toBe(0);
  });

  it('forgets a failed write once a later write succeeds', async () => {
    // 2 throws before the store; 3 succeeds; then another writer appends exactly the events of 2.
    const store = lyingStore({ throwOnly: [2] });
    const t = await open(store);
    let lost: ProgressEvent[] = [];
    const original = store.append.bind(store);
    store.append = async (id, events, expectedSeq, state) => {
      if (lost.length === 0) lost = events.map((e) => ({ ...e }));
      return original(id, events, expectedSeq, state);
    };
    await expectCode(() => t.startUpgrade('lost'), 'STORE_UNAVAILABLE');
    await t.startUpgrade('kept');
    store.reads = 0;
    await store.inner.append(UPGRADE, [{ ...lost[0]!, seq: 3, type: 'upgrade.phase_changed' }], 2, t.progress);
    await expectCode(() => t.setCurrentPhase('X'), 'CONFLICT');
    expect(store.reads).toBe(0);
    await t.close();
  });
});

describe('an append of unknown outcome still in flight in the store when the next write gets CONFLICT', () => {
  /**
   * A store whose append, on the call listed, fails (an unknown outcome, as a timeout) while its
   * events are still on their way to the log: the next append is refused CONFLICT at the seq they
   * will reach (as JsonFileStore checks against the seq its queued writes will reach), but
   * readEvents does not show them until `land()`.
   */
  function inFlightStore(failing: number) {
    const inner = new MemoryStore();
    let calls = 0;
    let inFlight: { events: ProgressEvent[]; expectedSeq: number; state: UpgradeProgress } | undefined;
    const store: ProgressStore & { land(): Promise<void> } = Object.assign(
      delegatingStore(inner, {
        async append(id, events, expectedSeq, state) {
          calls++;
          if (calls === failing) {
            inFlight = { events: [...events], expectedSeq, state: cloneState(state) };
            throw new Error('socket timeout (the write is still on its way)');
          }
          if (inFlight && expectedSeq === inFlight.expectedSeq) {
            const storedSeq = inFlight.expectedSeq + inFlight.events.length;
            throw new ProgressError('CONFLICT', `upgrade "${id}" is at seq ${storedSeq}, not ${expectedSeq}`, { context: { upgradeId: id, expectedSeq, storedSeq } });
          }
          await inner.append(id, events, expectedSeq, state);
        },
      }),
      {
        async land() {
          const w = inFlight!;
          inFlight = undefined;
          await inner.append(UPGRADE, w.events, w.expectedSeq, w.state);
        },
      },
    );
    return store;
  }

  it('is still adopted once it lands: the CONFLICT read that saw nothing yet does not forget it', async () => {
    // Append calls: 1 = upgrade.created, 2 = startUpgrade, 3 = addTask (fails, still in flight).
    const store = inFlightStore(3);
    const seen: string[] = [];
    const t = await open(store, { sinks: [{ name: 'rec', handle: (e) => void seen.push(`${e.seq}:${e.type}`) }] });
    await t.startUpgrade();
    await expectCode(() => t.addTask('a', 'A'), 'STORE_UNAVAILABLE');
    // The store is ahead (the write is on its way) but shows nothing after seq 2 yet: CONFLICT.
    await expectCode(() => t.setCurrentPhase('Nodes'), 'CONFLICT');
    await store.land();
    // Now the store holds that write of ours: it is adopted, not CONFLICT for every write from here on.
    let refused: unknown;
    await t.setCurrentPhase('Nodes').catch((err: unknown) => (refused = err));
    expect(refused).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'adopted', adoptedFromSeq: 3, adoptedToSeq: 3 } });
    expect(t.progress.tasks.a?.status).toBe('not_started');
    const ev = await t.setCurrentPhase('Nodes');
    expect(ev.seq).toBe(4);
    expect(seen).toEqual(['1:upgrade.created', '2:upgrade.started', '3:task.added', '4:upgrade.phase_changed']);
    await t.close();
  });

  it('is adopted by close() once it lands, so that the sinks get its events', async () => {
    const store = inFlightStore(3);
    const seen: string[] = [];
    const t = await open(store, { sinks: [{ name: 'rec', handle: (e) => void seen.push(`${e.seq}:${e.type}`) }] });
    await t.startUpgrade();
    await expectCode(() => t.completeUpgrade(), 'STORE_UNAVAILABLE');
    await expectCode(() => t.setCurrentPhase('Nodes'), 'CONFLICT');
    await store.land();
    await t.close();
    expect(seen).toEqual(['1:upgrade.created', '2:upgrade.started', '3:upgrade.completed']);
    expect(t.durableProgress.status).toBe('completed');
  });
});
