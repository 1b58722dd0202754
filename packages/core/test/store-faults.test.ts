import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore, ProgressError, ProgressTracker, isProgressError, replayEvents, type ProgressEvent, type UpgradeProgress } from '../src/index.js';
import { delegatingStore } from './delegating-store.js';

// Random commands (bursts and awaited ones) against a store that fails or delays appends at random,
// and a close() at a random point. The promises of the README's "Durability and failure semantics":
// a resolved command's event is stored exactly once; the store's log has no gaps and folds to what
// load() gives; the sinks get the stored events once each, in seq order (all but those of a write
// that lands only once close() has begun: documented); a refused command gets a ProgressError with a
// code; close() ends. Fake timers: a run is a function of its input, so fast-check shrinks it.

const UPGRADE = 'u-fuzz';
const TIMEOUT = 1000;

/** What the store does with one append call. */
const FAULTS = ['ok', 'okSoon', 'failBefore', 'failAfter', 'slowOk', 'slowFailBefore', 'slowFailAfter'] as const;
type Fault = (typeof FAULTS)[number];
const fault = fc.oneof({ weight: 10, arbitrary: fc.constant<Fault>('ok') }, { weight: 6, arbitrary: fc.constantFrom<Fault>(...FAULTS) });

const step = fc.record({
  op: fc.nat({ max: 99 }),
  pick: fc.nat({ max: 99 }),
  burst: fc.oneof({ weight: 3, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 5 }) }),
  awaited: fc.boolean(),
  wait: fc.constantFrom(0, 0, 1, 10, TIMEOUT + 1, 3 * TIMEOUT),
});
type Step = typeof step extends fc.Arbitrary<infer S> ? S : never;

function faultyStore(faults: readonly Fault[]) {
  const inner = new MemoryStore({ snapshotEvery: 3 });
  let calls = 0;
  let pending = 0;
  const wrapper = {
    inner,
    /** Set once close() is called: a write that lands from then on may go unseen by the sinks. */
    closing: false,
    /** The event ids of the writes stored once close() had begun. */
    landedLate: new Set<string>(),
    get pending() {
      return pending;
    },
  };
  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
  const write = async (id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>) => {
    await inner.append(id, events, expectedSeq, state);
    if (wrapper.closing) for (const e of events) wrapper.landedLate.add(e.eventId);
  };
  const unavailable = () => new ProgressError('STORE_UNAVAILABLE', 'connection reset', { context: { upgradeId: UPGRADE } });
  const store = delegatingStore(inner, {
    async append(id, events, expectedSeq, state) {
      // The first call is open()'s upgrade.created: left alone.
      const f: Fault = calls++ === 0 ? 'ok' : (faults[(calls - 2) % Math.max(faults.length, 1)] ?? 'ok');
      pending++;
      try {
        switch (f) {
          case 'ok':
            return await write(id, events, expectedSeq, state);
          case 'okSoon':
            await sleep(10);
            return await write(id, events, expectedSeq, state);
          case 'failBefore':
            throw unavailable();
          case 'failAfter':
            await write(id, events, expectedSeq, state);
            throw new Error('socket timeout (the write landed)');
          case 'slowOk':
            await sleep(TIMEOUT + 500);
            return await write(id, events, expectedSeq, state);
          case 'slowFailBefore':
            await sleep(TIMEOUT + 500);
            throw unavailable();
          case 'slowFailAfter':
            await sleep(TIMEOUT + 500);
            await write(id, events, expectedSeq, state);
            throw new Error('socket timeout (the write landed)');
        }
      } finally {
        pending--;
      }
    },
  });
  return { store, wrapper };
}

interface Issued {
  promise: Promise<unknown>;
  settled: boolean;
  ok?: unknown;
  error?: unknown;
  /** For a command that resolves with its event: whether the sink had it by then. */
  sunkBeforeResolve?: boolean;
  /** For addTask(s): the ids added. */
  taskIds?: string[];
}

/** Issues one command chosen by `op` and `pick` against the live state: mostly valid ones. */
function command(t: ProgressTracker, s: Step, n: number): { promise: Promise<unknown>; taskIds?: string[] } {
  const live = t.progress;
  const ids = Object.keys(live.tasks);
  const task = ids.length > 0 ? live.tasks[ids[s.pick % ids.length]!]! : undefined;
  // Without a task, a task command would only be TASK_NOT_FOUND: one is added instead.
  const op = task === undefined && s.op >= 25 ? 10 + (s.op % 15) : s.op;
  if (op < 6) {
    if (live.status === 'not_started') return { promise: t.startUpgrade() };
    if (live.status === 'paused') return { promise: t.resumeUpgrade() };
    return { promise: op < 3 ? t.setCurrentPhase(`phase ${n}`) : t.pauseUpgrade() };
  }
  if (op < 10) return { promise: live.status === 'paused' ? t.resumeUpgrade() : t.setCurrentPhase(`phase ${n}`) };
  if (op === 10 && s.pick < 30) return { promise: s.pick % 3 === 0 ? t.completeUpgrade() : s.pick % 3 === 1 ? t.failUpgrade('boom') : t.cancelUpgrade() };
  if (op < 20) {
    const id = `t${n}`;
    const parent = task !== undefined && s.pick % 3 === 0 ? task.taskId : undefined;
    return { promise: t.addTask(id, `Task ${id}`, 'upgrade_step', { parentTaskId: parent, totalSteps: s.pick % 2 ? 4 : undefined }), taskIds: [id] };
  }
  if (op < 25) return { promise: t.addTasks([{ taskId: `t${n}x`, taskName: 'X' }, { taskId: `t${n}y`, taskName: 'Y', parentTaskId: `t${n}x` }]), taskIds: [`t${n}x`, `t${n}y`] };
  const id = task!.taskId;
  // What an in_progress task takes (a not_started one too).
  const going = () => {
    if (op < 60) return { promise: t.updateTaskProgress(id, s.pick, undefined, { n }) };
    if (op < 75) return { promise: task!.totalSteps !== null && task!.completedSteps >= task!.totalSteps ? t.completeTask(id) : t.advanceTask(id) };
    if (op < 88) return { promise: t.completeTask(id) };
    if (op < 96) return { promise: t.failTask(id, 'boom') };
    return { promise: t.cancelTask(id) };
  };
  switch (task!.status) {
    case 'failed':
      return { promise: t.retryTask(id) };
    case 'not_started':
      if (op < 30) return { promise: op < 28 ? t.skipTask(id) : t.cancelTask(id) };
      if (op < 50) return { promise: t.startTask(id) };
      return going();
    case 'in_progress':
      return going();
    default:
      // Ended: a command it refuses (INVALID_TRANSITION), now and then.
      return { promise: t.startTask(id) };
  }
}

async function until(cond: () => boolean, rounds = 200): Promise<void> {
  for (let i = 0; i < rounds && !cond(); i++) await vi.advanceTimersByTimeAsync(i < 5 ? 0 : 200);
}

async function runCase(faults: readonly Fault[], steps: readonly Step[], closeAt: number): Promise<void> {
  const { store, wrapper } = faultyStore(faults);
  const sunk: { event: ProgressEvent; stateSeq: number }[] = [];
  const sunkIds = new Set<string>();
  const t = await ProgressTracker.open({
    upgradeId: UPGRADE,
    planId: 'p',
    clusterName: 'c',
    store,
    storeTimeoutMs: TIMEOUT,
    sinks: [
      {
        name: 'rec',
        handle: (event, state) => {
          sunk.push({ event, stateSeq: state.lastSeq });
          sunkIds.add(event.eventId);
        },
      },
    ],
  });
  const issued: Issued[] = [];
  const issue = (s: Step, n: number): Issued => {
    const { promise, taskIds } = command(t, s, n);
    const entry: Issued = { promise, settled: false, taskIds };
    promise.then(
      (value) => {
        entry.settled = true;
        entry.ok = value;
        if (value && typeof value === 'object' && 'eventId' in value) entry.sunkBeforeResolve = sunkIds.has((value as ProgressEvent).eventId);
      },
      (err: unknown) => {
        entry.settled = true;
        entry.error = err;
      },
    );
    issued.push(entry);
    return entry;
  };
  // A subscriber that reacts to a failed task by retrying it (a command issued on a durable event,
  // adopted ones included), and hears what the sink hears.
  const heard: string[] = [];
  t.subscribe((event) => {
    heard.push(event.eventId);
    if (event.type === 'task.failed' && !t.closed && t.progress.tasks[event.taskId!]?.status === 'failed') {
      const promise = t.retryTask(event.taskId!);
      const entry: Issued = { promise, settled: false };
      promise.then(
        (value) => {
          entry.settled = true;
          entry.ok = value;
          entry.sunkBeforeResolve = sunkIds.has(value.eventId);
        },
        (err: unknown) => {
          entry.settled = true;
          entry.error = err;
        },
      );
      issued.push(entry);
    }
  });
  let closing: Promise<void> | undefined;
  let closed = false;
  let n = 0;
  for (let i = 0; i < steps.length; i++) {
    if (i === closeAt) {
      wrapper.closing = true;
      closing = t.close();
      void closing.then(() => (closed = true));
    }
    const s = steps[i]!;
    const burst = Array.from({ length: s.burst }, () => issue(s.burst === 1 ? s : { ...s, op: (s.op * 7 + n * 13) % 100, pick: (s.pick + n) % 100 }, n++));
    if (s.awaited) await until(() => burst.every((e) => e.settled));
    if (s.wait > 0) await vi.advanceTimersByTimeAsync(s.wait);
  }
  if (!closing) {
    wrapper.closing = true;
    closing = t.close();
    void closing.then(() => (closed = true));
  }
  await until(() => closed);
  expect(closed, 'close() resolves').toBe(true);
  // Every command issued before close() began is settled once it has resolved (those issued after
  // it began are refused, CLOSED, in a few microtasks).
  await vi.advanceTimersByTimeAsync(0);
  for (const e of issued) expect(e.settled, 'a command still pending after close()').toBe(true);
  // The store's calls given up on finish in their own time: wait for them, then look at the store.
  await until(() => wrapper.pending === 0);
  expect(wrapper.pending).toBe(0);

  const stored: ProgressEvent[] = [];
  for await (const e of wrapper.inner.readEvents(UPGRADE, 0)) stored.push(e);
  // Contiguous, and what load() folds is the fold of the log (the snapshots agree with the events).
  expect(stored.map((e) => e.seq)).toEqual(stored.map((_, i) => i + 1));
  const json = (v: unknown): unknown => JSON.parse(JSON.stringify(v));
  expect(json(await wrapper.inner.load(UPGRADE))).toEqual(json(replayEvents(stored)));

  const byId = new Map<string, number>();
  for (const e of stored) byId.set(e.eventId, (byId.get(e.eventId) ?? 0) + 1);
  for (const e of issued) {
    if (!e.settled) continue;
    if (e.error !== undefined) {
      expect(isProgressError(e.error), String(e.error)).toBe(true);
      expect(typeof (e.error as ProgressError).code).toBe('string');
      continue;
    }
    if (e.taskIds) {
      for (const id of e.taskIds) expect(stored.filter((ev) => ev.type === 'task.added' && ev.taskId === id), `task.added ${id}`).toHaveLength(1);
    } else {
      const ev = e.ok as ProgressEvent;
      expect(byId.get(ev.eventId), `resolved event ${ev.seq} ${ev.type} stored once`).toBe(1);
      expect(json(stored[ev.seq - 1])).toEqual(json(ev));
      expect(e.sunkBeforeResolve, `sink had ${ev.seq} before it resolved`).toBe(true);
    }
  }

  // The sinks: a prefix of the log, in order, each once, with the durable state right after it.
  expect(sunk.map((s) => s.event.seq)).toEqual(sunk.map((_, i) => i + 1));
  for (const s of sunk) {
    expect(s.stateSeq).toBe(s.event.seq);
    expect(s.event.eventId).toBe(stored[s.event.seq - 1]?.eventId);
  }
  // Anything stored past what the sinks got landed once close() had begun (a write given up on).
  for (const e of stored.slice(sunk.length)) expect(wrapper.landedLate.has(e.eventId), `seq ${e.seq} stored before close() began yet never sunk`).toBe(true);
  expect(heard).toEqual(sunk.slice(1).map((s) => s.event.eventId));
  expect(t.durableProgress.lastSeq).toBe(sunk.length);
  expect(json(t.durableProgress)).toEqual(json(replayEvents(stored.slice(0, sunk.length))));
  expect(json(t.progress)).toEqual(json(t.durableProgress));
}

afterEach(() => {
  vi.useRealTimers();
});

describe('ProgressTracker over a store that fails and delays appends at random', () => {
  it('never loses or duplicates an acknowledged event; the sink gets the stored log in order; close() ends', async () => {
    vi.useFakeTimers();
    await fc.assert(
      fc.asyncProperty(fc.array(fault, { maxLength: 40, size: 'medium' }), fc.array(step, { minLength: 1, maxLength: 40, size: 'medium' }), fc.nat({ max: 100 }), async (faults, steps, closeAt) => {
        // close() in the second half of the run, or after it (over 100).
        await runCase(faults, steps, Math.floor((steps.length * (50 + closeAt)) / 100));
      }),
      // Seeded, so that a failure reproduces; 300 runs take about a second (raise it to explore).
      { numRuns: 300, seed: 0x5eed15 },
    );
  });
});
