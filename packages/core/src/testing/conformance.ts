import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ProgressError, isProgressError, type ErrorCode } from '../errors.js';
import type { ProgressStore } from '../interfaces.js';
import { KNOWN_EVENT_TYPES, type EventType, type ListFilter, type ProgressEvent, type ProgressStatus, type UpgradeProgress } from '../model.js';
import { cloneState, foldEvent } from '../reducer.js';
import { toSummaryRow } from '../summary.js';
import { ProgressTracker } from '../tracker.js';
import { MAX_TIMER_MS, assertKnownOptions, describe as describeValue } from '../validation.js';

/** The test runner's functions, passed in so that this suite imports no runner (as keyv's does). */
export interface TestApi {
  describe(name: string, fn: () => void): void;
  it(name: string, fn: () => Promise<void> | void, timeout?: number): void;
}

/** How the suite gets stores. */
export interface StoreFactory {
  /** A store over fresh, empty data (a new folder, a new key prefix ...). */
  create(): ProgressStore | Promise<ProgressStore>;
  /**
   * A store over the same data as `store`, as after a restart: close `store` first if the store
   * needs it (a store over memory may return `store` itself).
   */
  reopen(store: ProgressStore): ProgressStore | Promise<ProgressStore>;
  /**
   * A second store over the same data, open at the same time as `store` (another process). Leave it
   * out for a store that cannot share its data while open.
   */
  second?(store: ProgressStore): ProgressStore | Promise<ProgressStore>;
  /**
   * A store over fresh, empty data that removes old events of an upgrade (retention), set to keep
   * few of them: of about fifty events appended to one upgrade, some must go. Leave it out for a
   * store without retention. The suite checks that a reader never gets a silent gap: `readEvents()`
   * after a removed event throws `NOT_FOUND` with `context.reason = 'trimmed'` (a `watch()` may end
   * so too), and `load()` and `list()` still give the whole state.
   */
  retaining?(): ProgressStore | Promise<ProgressStore>;
  /**
   * What `store`'s data still holds of `upgradeId` that its `delete()` must remove (its events,
   * state, snapshot, index entry: file paths, key names), as the store's own layout knows it; leave
   * out what is meant to stay (a marker that expires). The delete case asks it after each delete:
   * the API cannot tell a delete that left the data behind (a folder renamed and never removed, a
   * snapshot key not deleted) from one that removed it. Leave it out to skip that check.
   */
  remains?(store: ProgressStore, upgradeId: string): readonly string[] | Promise<readonly string[]>;
}

/** Options of {@link describeProgressStore}. */
export interface ConformanceOptions {
  /** Bytes of the large-details case. @default 512 KiB */
  largeDetailsBytes?: number;
  /** Timeout of each case, ms. @default 30000 */
  timeout?: number;
  /**
   * How long a `watch()` / `watchAll()` case waits for one event, or for an iteration to end, before
   * it fails (a broken store fails the case rather than hang the suite), ms. Keep it below `timeout`.
   * @default 10000
   */
  waitTimeout?: number;
}

const FACTORY_NAMES = Object.keys({ create: 0, reopen: 0, second: 0, retaining: 0, remains: 0 } satisfies Record<keyof StoreFactory, 0>);
const OPTION_NAMES = Object.keys({ largeDetailsBytes: 0, timeout: 0, waitTimeout: 0 } satisfies Record<keyof ConformanceOptions, 0>);

/**
 * Refuses what the suite would misread: a misspelt `second` (or option) was left out without a word,
 * and every case that needs a second store then passed at once, as for a store that cannot have one.
 */
function checkArguments(factory: StoreFactory, api: TestApi, options: ConformanceOptions): void {
  const bad = (what: string): ProgressError => new ProgressError('INVALID_ARGUMENT', `[@progress/core/testing] describeProgressStore: ${what}`);
  if (factory === null || typeof factory !== 'object') throw bad(`the factory must be an object with create() and reopen(), got ${describeValue(factory)}`);
  assertKnownOptions(factory, FACTORY_NAMES, { source: '@progress/core/testing', what: 'describeProgressStore factory' });
  for (const method of FACTORY_NAMES) {
    const fn = (factory as unknown as Record<string, unknown>)[method];
    if (fn === undefined && (method === 'second' || method === 'retaining' || method === 'remains')) continue;
    if (typeof fn !== 'function') throw bad(`factory.${method} must be a function, got ${describeValue(fn)}`);
  }
  if (api === null || typeof api !== 'object' || typeof api.describe !== 'function' || typeof api.it !== 'function') {
    throw bad("the runner's api must be an object with its describe and it functions ({ describe, it })");
  }
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw bad(`options must be an object, got ${describeValue(options)}`);
  assertKnownOptions(options, OPTION_NAMES, { source: '@progress/core/testing', what: 'describeProgressStore options' });
  for (const [option, max] of [['largeDetailsBytes', Number.MAX_SAFE_INTEGER], ['timeout', MAX_TIMER_MS], ['waitTimeout', MAX_TIMER_MS]] as const) {
    const value: unknown = options[option];
    if (value !== undefined && (!Number.isSafeInteger(value) || (value as number) < 1 || (value as number) > max)) {
      throw bad(`${option} must be a whole number from 1 to ${max}, got ${describeValue(value)}`);
    }
  }
}

/** `INVALID_ARGUMENT` for what an {@link EventFactory} is given that does not fit. */
function factoryError(message: string): ProgressError {
  return new ProgressError('INVALID_ARGUMENT', `[@progress/core/testing] ${message}`);
}

/** Builds consecutive valid events for one upgrade, keeping the state they fold to. */
export class EventFactory {
  state: UpgradeProgress | undefined;
  readonly upgradeId: string;
  #time = Date.parse('2026-01-01T00:00:00.000Z');

  constructor(upgradeId: string) {
    this.upgradeId = upgradeId;
  }

  get lastSeq(): number {
    return this.state?.lastSeq ?? 0;
  }

  /** The next event, folded into `state`. */
  next(type: EventType, fields: { taskId?: string; status?: ProgressStatus; message?: string; percentage?: number; details?: Record<string, unknown> } = {}): ProgressEvent {
    if (typeof type !== 'string' || !KNOWN_EVENT_TYPES.has(type)) throw factoryError(`EventFactory.next() needs an event type, got ${describeValue(type)}`);
    if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) throw factoryError(`EventFactory.next() needs a fields object, got ${describeValue(fields)}`);
    this.#time += 1;
    const event: ProgressEvent = {
      eventId: randomUUID(),
      seq: this.lastSeq + 1,
      upgradeId: this.upgradeId,
      type,
      timestamp: new Date(this.#time).toISOString(),
      status: fields.status ?? 'in_progress',
      message: fields.message ?? type,
      details: fields.details ?? {},
      ...(fields.taskId !== undefined ? { taskId: fields.taskId, taskType: 'upgrade_step' } : {}),
      ...(fields.percentage !== undefined ? { percentage: fields.percentage } : {}),
    };
    this.state = foldEvent(this.state, event);
    return event;
  }

  /** `upgrade.created` (when needed), `upgrade.started`, one task, then `n` progress events in all. */
  batch(n: number): ProgressEvent[] {
    // (Infinity looped until memory ran out.)
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) throw factoryError(`EventFactory.batch() needs a whole number of events >= 1, got ${describeValue(n)}`);
    const out: ProgressEvent[] = [];
    if (!this.state) out.push(this.next('upgrade.created', { status: 'not_started', details: { planId: 'plan-1', clusterName: 'cluster-1', metadata: { k: 'v' } } }));
    if (this.state!.status === 'not_started' && out.length < n) out.push(this.next('upgrade.started', { details: { phase: 'Init' } }));
    while (out.length < n) {
      let tasks = Object.keys(this.state!.tasks).length;
      if (tasks === 0 || out.length % 25 === 0) {
        tasks += 1;
        out.push(this.next('task.added', { taskId: `t${tasks}`, status: 'not_started', details: { taskName: `Task ${tasks}`, parentTaskId: null, totalSteps: null, weight: 1 } }));
      } else {
        out.push(this.next('task.progress', { taskId: `t${tasks}`, percentage: (out.length * 7) % 101 }));
      }
    }
    return out;
  }

  /** A copy of the current state (what a tracker would pass to `append`). */
  snapshot(): UpgradeProgress {
    return cloneState(this.state!);
  }
}

async function collect(iterable: AsyncIterable<ProgressEvent>): Promise<ProgressEvent[]> {
  const out: ProgressEvent[] = [];
  for await (const e of iterable) out.push(e);
  return out;
}

const json = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isProgressError(err, code), `expected ProgressError ${code}, got ${String((err as Error)?.stack ?? err)}`);
    return true;
  });
}

/**
 * `promise` rejects with `CONFLICT`; a store that says its seq (`context.storedSeq`, which the
 * tracker acts on) must say the right one.
 */
async function conflictAt(promise: Promise<unknown>, storedSeq: number, what: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isProgressError(err, 'CONFLICT'), `${what}: expected ProgressError CONFLICT, got ${String((err as Error)?.stack ?? err)}`);
    const said = err.context?.storedSeq;
    assert.ok(said === undefined || said === storedSeq, `${what}: context.storedSeq must be the stored seq ${storedSeq} (or absent), got ${String(said)}`);
    return true;
  });
}

async function appendAll(store: ProgressStore, factory: EventFactory, sizes: number[]): Promise<ProgressEvent[]> {
  const all: ProgressEvent[] = [];
  for (const size of sizes) {
    const expected = factory.lastSeq;
    const events = factory.batch(size);
    await store.append(factory.upgradeId, events, expected, factory.state!);
    all.push(...events);
  }
  return all;
}

const uid = (label: string): string => `${label}-${randomUUID().slice(0, 8)}`;

/**
 * `promise`, or an assertion error once `ms` pass. A rejection of `promise` after that is handled
 * here: the case has failed already, and it must not surface as an unhandled rejection.
 */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  promise.catch(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new assert.AssertionError({ message: `${what} within ${ms} ms` })), ms);
    (timer as { unref?: () => void }).unref?.();
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads a `watch()` / `watchAll()` iteration by hand, every wait bounded. */
class Follower {
  readonly #it: AsyncIterator<ProgressEvent>;
  readonly #ms: number;
  readonly what: string;
  /** A `next()` already asked for (see `pull`). */
  #pending: Promise<IteratorResult<ProgressEvent>> | undefined;

  constructor(iterable: AsyncIterable<ProgressEvent>, ms: number, what: string) {
    this.#it = iterable[Symbol.asyncIterator]();
    this.#ms = ms;
    this.what = what;
  }

  #next(): Promise<IteratorResult<ProgressEvent>> {
    const next = this.#pending ?? this.#it.next();
    this.#pending = undefined;
    return next;
  }

  /** Asks for the next event now, so that the iteration waits while the case goes on. */
  pull(): void {
    this.#pending ??= this.#it.next();
    this.#pending.catch(() => {});
  }

  /** The next `n` events. */
  async take(n: number): Promise<ProgressEvent[]> {
    const out: ProgressEvent[] = [];
    while (out.length < n) {
      const r = await within(this.#next(), this.#ms, `${this.what}: event ${out.length + 1} of ${n} did not come`);
      assert.ok(!r.done, `${this.what}: the iteration ended after ${out.length} of ${n} events`);
      out.push(r.value);
    }
    return out;
  }

  /** Waits for the iteration to end: it must return, with no further event and no error. */
  async ends(): Promise<void> {
    const r = await within(this.#next(), this.#ms, `${this.what}: the iteration did not end`);
    assert.equal(r.done, true, `${this.what}: expected the end, got ${r.done ? '' : `${r.value.upgradeId} seq ${r.value.seq}`}`);
  }

  /** Ends the iteration whatever state it is in (cleanup: errors and a hanging `return()` are ignored). */
  async stop(): Promise<void> {
    this.#pending = undefined;
    await within(Promise.resolve(this.#it.return?.()), this.#ms, `${this.what}: return() did not settle`).catch(() => {});
  }
}

/** The events of each upgrade, in the order they came (as JSON: for deepEqual, which ignores the order of the upgrades). */
function byUpgrade(events: ProgressEvent[]): Record<string, ProgressEvent[]> {
  const out: Record<string, ProgressEvent[]> = {};
  for (const e of events) (out[e.upgradeId] ??= []).push(e);
  return json(out);
}

/** What a watch case may use besides its store; every signal and iteration it makes ends with the case. */
interface Watching {
  /** A controller aborted when the case ends. */
  controller(): AbortController;
  /** Reads `iterable` by hand; stopped when the case ends. */
  follow(iterable: AsyncIterable<ProgressEvent>, what: string): Follower;
  /** The factory's second store over the same data (closed with the case), or the store itself when it has none. */
  second(): Promise<ProgressStore>;
}

/** Listens for unhandled rejections while a case runs (a watcher that rejects where nobody listens). */
function unhandledRejections(): { check(): Promise<void>; off(): void } {
  const seen: unknown[] = [];
  const listener = (reason: unknown): void => void seen.push(reason);
  const proc = (globalThis as { process?: { on?(e: string, l: (r: unknown) => void): void; off?(e: string, l: (r: unknown) => void): void } }).process;
  proc?.on?.('unhandledRejection', listener);
  const off = (): void => proc?.off?.('unhandledRejection', listener);
  return {
    async check() {
      // A rejection is reported as unhandled after the microtasks of its turn: let one more turn pass.
      await new Promise((resolve) => setTimeout(resolve, 0));
      off();
      assert.deepEqual(seen.map((r) => String((r as Error)?.stack ?? r)), [], 'no unhandled rejection while the case ran');
    },
    off,
  };
}

/**
 * The conformance suite every {@link ProgressStore} runs: ordering, no gaps, `CONFLICT` on a stale
 * `expectedSeq`, replay after any seq, reopen returns the same state, concurrent appenders, large
 * details, unicode, delete, list, the writer lock, a whole tracker on top, and, for a store that has
 * them, `watch()` and `watchAll()` as {@link ProgressStore} documents them (every wait bounded by
 * `waitTimeout`).
 *
 * @example
 * import { describe, it } from 'vitest';
 * import { describeProgressStore } from '@progress/core/testing';
 * describeProgressStore('JsonFileStore', { create: () => new JsonFileStore({ directory: fresh() }), reopen: ... }, { describe, it });
 */
export function describeProgressStore(name: string, factory: StoreFactory, api: TestApi, options: ConformanceOptions = {}): void {
  checkArguments(factory, api, options);
  const { describe, it } = api;
  const timeout = options.timeout ?? 30_000;
  const largeBytes = options.largeDetailsBytes ?? 512 * 1024;

  /** Runs `fn` with a fresh store and closes every store it made, whatever happens. */
  const withStore = (fn: (store: ProgressStore, opened: ProgressStore[]) => Promise<void>) => async () => {
    const store = await factory.create();
    const opened = [store];
    try {
      await fn(store, opened);
    } finally {
      for (const s of opened.reverse()) await s.close().catch(() => {});
    }
  };
  const waitMs = options.waitTimeout ?? 10_000;
  /**
   * Runs `fn` with a fresh store when `has(store)` (returns at once otherwise: a store without
   * `watch` / `watchAll` passes these cases, as one without a lock passes the lock case), then ends
   * every iteration the case started and checks that none rejected unhandled.
   */
  const withWatching = (has: (store: ProgressStore) => boolean, fn: (store: ProgressStore, w: Watching) => Promise<void>) =>
    withStore(async (store, opened) => {
      if (!has(store)) return;
      const unhandled = unhandledRejections();
      const controllers: AbortController[] = [];
      const followers: Follower[] = [];
      const w: Watching = {
        controller() {
          const c = new AbortController();
          controllers.push(c);
          return c;
        },
        follow(iterable, what) {
          const f = new Follower(iterable, waitMs, what);
          followers.push(f);
          return f;
        },
        async second() {
          if (!factory.second) return store;
          const other = await factory.second(store);
          opened.push(other);
          return other;
        },
      };
      try {
        await fn(store, w);
      } catch (err) {
        unhandled.off();
        throw err;
      } finally {
        for (const c of controllers) c.abort();
        for (const f of followers) await f.stop();
      }
      await unhandled.check();
    });
  /** `start()` is refused with `code`: thrown by the call, or by the iteration's first `next()` (bounded). */
  const refused = async (start: (signal: AbortSignal) => AsyncIterable<ProgressEvent>, code: ErrorCode, what: string): Promise<void> => {
    const stop = new AbortController();
    let follower: Follower | undefined;
    try {
      await assert.rejects(
        (async () => {
          follower = new Follower(start(stop.signal), waitMs, what);
          const [event] = await follower.take(1);
          assert.fail(`${what}: expected ProgressError ${code}, got an event (${event!.upgradeId} seq ${event!.seq})`);
        })(),
        (err: unknown) => {
          assert.ok(isProgressError(err, code), `${what}: expected ProgressError ${code}, got ${String((err as Error)?.stack ?? err)}`);
          return true;
        },
      );
    } finally {
      stop.abort();
      await follower?.stop();
    }
  };
  const reopen = async (store: ProgressStore, opened: ProgressStore[]) => {
    const again = await factory.reopen(store);
    opened.push(again);
    return again;
  };

  describe(`${name}: ProgressStore conformance`, () => {
    it('knows nothing of an upgrade it does not hold', withStore(async (store) => {
      const id = uid('none');
      assert.equal(await store.load(id), undefined);
      assert.deepEqual(await collect(store.readEvents(id, 0)), []);
      assert.equal(await store.delete(id), false);
      assert.equal(typeof store.info().name, 'string');
      assert.equal(typeof store.info().durable, 'boolean');
    }), timeout);

    it('stores events in order, without gaps, and loads the state they fold to', withStore(async (store) => {
      const f = new EventFactory(uid('order'));
      const all = await appendAll(store, f, [1, 3, 50, 1, 17, 120]);
      const read = await collect(store.readEvents(f.upgradeId, 0));
      assert.deepEqual(read.map((e) => e.seq), all.map((_, i) => i + 1));
      assert.deepEqual(json(read), json(all));
      assert.deepEqual(json(await store.load(f.upgradeId)), json(f.state));
    }), timeout);

    it('refuses a stale or future expectedSeq with CONFLICT and stores nothing', withStore(async (store) => {
      const f = new EventFactory(uid('conflict'));
      await appendAll(store, f, [10]);
      const before = json(await store.load(f.upgradeId));
      // Another writer's events (other event ids) at each expectedSeq but the stored one: far behind,
      // one behind (an off-by-one check), behind with a batch that runs past the stored seq (a store
      // that writes each seq it does not hold yet would keep its tail), one and two ahead, and 0.
      for (const [expectedSeq, size] of [[5, 1], [9, 1], [9, 3], [8, 5], [11, 1], [12, 1], [0, 1], [0, 12]] as const) {
        const other = new EventFactory(f.upgradeId);
        if (expectedSeq > 0) other.batch(expectedSeq);
        const events = other.batch(size);
        await conflictAt(store.append(f.upgradeId, events, expectedSeq, other.state!), 10, `an append at expectedSeq ${expectedSeq} (${size} events) to an upgrade at seq 10`);
      }
      assert.deepEqual(json(await store.load(f.upgradeId)), before);
      assert.equal((await collect(store.readEvents(f.upgradeId, 0))).length, 10);
      // Nor its list row: a refused append must not leave its state there either.
      const [row] = (await store.list()).filter((r) => r.upgradeId === f.upgradeId);
      assert.equal(row?.lastSeq, 10);
      assert.equal(row?.updatedAt, before?.updatedAt);
    }), timeout);

    it('refuses an append past seq 0 to an upgrade it does not hold (never created, or deleted) with CONFLICT and stores nothing', withStore(async (store) => {
      // The seq check must not need an upgrade to compare with: a store that checks expectedSeq only
      // against an upgrade it finds started one at seq 4 (or went on after a delete from the seq it
      // had), which no load() can fold.
      const f = new EventFactory(uid('conflict-none'));
      for (const [expectedSeq, size] of [[1, 1], [3, 2], [10, 3]] as const) {
        const other = new EventFactory(f.upgradeId);
        other.batch(expectedSeq);
        const events = other.batch(size);
        await conflictAt(store.append(f.upgradeId, events, expectedSeq, other.state!), 0, `an append at expectedSeq ${expectedSeq} (${size} events) to an upgrade the store does not hold`);
      }
      const nothing = async (what: string): Promise<void> => {
        assert.equal(await store.load(f.upgradeId), undefined, `${what}: load()`);
        assert.deepEqual(await collect(store.readEvents(f.upgradeId, 0)), [], `${what}: readEvents()`);
        assert.ok(!(await store.list()).some((r) => r.upgradeId === f.upgradeId), `${what}: list()`);
      };
      await nothing('after appends refused to an upgrade never created');
      await appendAll(store, f, [5]);
      assert.equal(await store.delete(f.upgradeId), true);
      const expected = f.lastSeq;
      await conflictAt(store.append(f.upgradeId, f.batch(2), expected, f.state!), 0, `an append at expectedSeq ${expected} to an upgrade deleted at that seq`);
      await nothing('after an append refused to a deleted upgrade');
      // The id is free all the same: a first append (expectedSeq 0) creates it.
      const again = new EventFactory(f.upgradeId);
      await appendAll(store, again, [2]);
      assert.deepEqual(json(await store.load(f.upgradeId)), json(again.state));
    }), timeout);

    it('lists what load() gives after an append whose state is not the one after its events, or refuses it with INVALID_ARGUMENT', withStore(async (store, opened) => {
      // The state must be the one after the events (ProgressStore.append). A caller that hands over
      // another (the state from before them, one ahead of them) gets INVALID_ARGUMENT and nothing
      // stored, or, from a store that takes nothing from it but a snapshot it checks, a store whose
      // list row is still the state load() gives: never a row that load() contradicts.
      const states: [string, (before: UpgradeProgress, f: EventFactory) => UpgradeProgress][] = [
        ['the state from before the events', (before) => before],
        ['a state ahead of the events', (_, f) => {
          const ahead = new EventFactory(f.upgradeId);
          ahead.batch(f.lastSeq + 4);
          return ahead.state!;
        }],
      ];
      const expected: [string, string, UpgradeProgress][] = [];
      for (const [what, stateOf] of states) {
        const f = new EventFactory(uid('state-after'));
        await appendAll(store, f, [3]);
        const before = f.snapshot();
        // Seqs 4..8, past the snapshot point of a store that writes one every 7 events: a store that
        // took such a state as its snapshot there would load() it (the one ahead) from then on.
        const events = [...[40, 55, 70, 85].map((percentage) => f.next('task.progress', { taskId: 't1', percentage })), f.next('upgrade.completed', { status: 'completed' })];
        const state = stateOf(before, f);
        let accepted = true;
        try {
          await store.append(f.upgradeId, events, 3, state);
        } catch (err) {
          assert.ok(isProgressError(err, 'INVALID_ARGUMENT'), `${what}: stored, or refused with INVALID_ARGUMENT, got ${String((err as Error)?.stack ?? err)}`);
          accepted = false;
        }
        const loaded = await store.load(f.upgradeId);
        const [row] = (await store.list()).filter((r) => r.upgradeId === f.upgradeId);
        if (accepted) {
          assert.deepEqual(json(loaded), json(f.state), `${what}: load() after the append`);
        } else {
          assert.equal(loaded?.lastSeq, 3, `${what}: refused, nothing stored`);
          assert.equal((await collect(store.readEvents(f.upgradeId, 0))).length, 3, `${what}: refused, nothing stored`);
        }
        assert.deepEqual(json(row), json(toSummaryRow(loaded!)), `${what}: the list row is the state load() gives`);
        expected.push([what, f.upgradeId, loaded!]);
      }
      // The same after a reopen: a snapshot written in the background (JsonFileStore) is read then.
      const again = await reopen(store, opened);
      for (const [what, id, state] of expected) {
        assert.deepEqual(json(await again.load(id)), json(state), `${what}: load() after a reopen`);
        const [row] = (await again.list()).filter((r) => r.upgradeId === id);
        assert.deepEqual(json(row), json(toSummaryRow(state)), `${what}: the list row after a reopen`);
      }
    }), timeout);

    it('refuses malformed appends with INVALID_ARGUMENT and stores nothing', withStore(async (store) => {
      const f = new EventFactory(uid('bad'));
      await appendAll(store, f, [3]);
      const g = new EventFactory(f.upgradeId);
      g.batch(3);
      const events = g.batch(3);
      const gap = [events[0]!, events[2]!];
      await rejectsWith(store.append(f.upgradeId, gap, 3, g.state!), 'INVALID_ARGUMENT');
      // The right first and last seqs, the right count, but not consecutive: a store that checks the
      // ends alone would store them out of order, or one seq twice.
      await rejectsWith(store.append(f.upgradeId, [events[1]!, events[0]!, events[2]!], 3, g.state!), 'INVALID_ARGUMENT');
      await rejectsWith(store.append(f.upgradeId, [events[0]!, { ...events[1]!, seq: 4 }, events[2]!], 3, g.state!), 'INVALID_ARGUMENT');
      await rejectsWith(store.append(f.upgradeId, [], 3, g.state!), 'INVALID_ARGUMENT');
      await rejectsWith(store.append('other-upgrade', events, 3, g.state!), 'INVALID_ARGUMENT');
      // Events the store could not read back or fold: no eventId (or an empty one, or one with a lone
      // surrogate, which UTF-8 cannot hold: it would read back as another id), an unknown type or status,
      // a task event without a taskId, no timestamp, details that are not an object.
      const unreadable = [{ eventId: undefined }, { eventId: '' }, { eventId: 'e-\ud800' }, { type: 7 }, { type: 'task.exploded' }, { type: 'task.progress', taskId: undefined }, { status: 'bogus' }, { status: undefined }, { timestamp: undefined }, { details: null }, { details: [] }, { details: 'x' }];
      // In the first event and in the last: a store that writes the events one by one as it checks
      // them would keep the ones before a bad last event (an append is all or nothing).
      for (const change of unreadable) {
        await rejectsWith(store.append(f.upgradeId, [{ ...events[0]!, ...change } as never, ...events.slice(1)], 3, g.state!), 'INVALID_ARGUMENT');
        await rejectsWith(store.append(f.upgradeId, [...events.slice(0, -1), { ...events[2]!, ...change } as never], 3, g.state!), 'INVALID_ARGUMENT');
      }
      // The state after the events (a store may write it as a snapshot) must be one.
      const good = g.state!;
      const halfFormed = [{ lastSeq: 6 }, { ...good, lastSeq: -1 }, { ...good, lastSeq: 6.5 }, { ...good, tasks: null }, { ...good, overallPercentage: Number.NaN }, { ...good, updatedAt: undefined }, { ...good, status: 'bogus' }, { ...good, upgradeId: 'another-upgrade' }, { ...good, upgradeId: undefined }];
      for (const state of [undefined, null, {}, { lastSeq: -1 }, 'state', ...halfFormed]) {
        await rejectsWith(store.append(f.upgradeId, events, 3, state as never), 'INVALID_ARGUMENT');
      }
      await rejectsWith(store.load('../escape'), 'INVALID_ARGUMENT');
      await rejectsWith(store.load('a/b'), 'INVALID_ARGUMENT');
      await rejectsWith(store.load(''), 'INVALID_ARGUMENT');
      await rejectsWith(store.load('x'.repeat(129)), 'INVALID_ARGUMENT');
      assert.equal((await collect(store.readEvents(f.upgradeId, 0))).length, 3);
    }), timeout);

    it('refuses a bad upgrade id in every method with INVALID_ARGUMENT, before it touches anything', withStore(async (store) => {
      // Ids end up in file names, keys and URLs: a store that checks them in load() alone lets
      // append('../x') or delete('../x') reach outside its data.
      for (const bad of ['../escape', 'a/b', 'a\\b', '', '.', '..', 'x'.repeat(129), 'sp ace', 'ünï']) {
        const f = new EventFactory(bad);
        const events = f.batch(2);
        await rejectsWith(store.append(bad, events, 0, f.state!), 'INVALID_ARGUMENT');
        await rejectsWith(store.load(bad), 'INVALID_ARGUMENT');
        await rejectsWith(collect(store.readEvents(bad, 0)), 'INVALID_ARGUMENT');
        await rejectsWith(store.delete(bad), 'INVALID_ARGUMENT');
        if (store.acquire) await rejectsWith(store.acquire(bad), 'INVALID_ARGUMENT');
        if (store.release) await rejectsWith(store.release(bad), 'INVALID_ARGUMENT');
      }
      assert.ok(!(await store.list()).some((r) => !/^[A-Za-z0-9_.:-]{1,128}$/.test(r.upgradeId)));
    }), timeout);

    it('never mixes two upgrades whose ids differ only in case or punctuation', withStore(async (store) => {
      // A store that maps ids to names (a case-insensitive file system, a key or file name that
      // replaces "." or ":") may refuse the second id with CONFLICT, but must never hand one
      // upgrade's events or state out as the other's.
      const base = uid('ids');
      const pairs = [[`${base}-case`, `${base}-CASE`], [`${base}.dot`, `${base}_dot`], [`${base}:colon`, `${base}_colon`], [`${base}-dash`, `${base}_dash`]] as const;
      for (const [first, second] of pairs) {
        const a = new EventFactory(first);
        await appendAll(store, a, [3]);
        const b = new EventFactory(second);
        let separate = true;
        try {
          await appendAll(store, b, [2]);
        } catch (err) {
          assert.ok(isProgressError(err, 'CONFLICT'), `appending to "${second}" after "${first}": CONFLICT or success, got ${String(err)}`);
          separate = false;
        }
        const own = async (id: string): Promise<{ state: UpgradeProgress | undefined; events: ProgressEvent[] } | 'conflict'> => {
          try {
            return { state: await store.load(id), events: await collect(store.readEvents(id, 0)) };
          } catch (err) {
            assert.ok(isProgressError(err, 'CONFLICT'), `reading "${id}": CONFLICT at most, got ${String(err)}`);
            return 'conflict';
          }
        };
        const mine = await own(first);
        assert.notEqual(mine, 'conflict', `"${first}" was stored first and reads back`);
        if (mine !== 'conflict') {
          assert.deepEqual(json(mine.state), json(a.state), `"${first}" keeps its own state`);
          assert.deepEqual(mine.events.map((e) => [e.upgradeId, e.seq]), [[first, 1], [first, 2], [first, 3]]);
        }
        const theirs = await own(second);
        if (separate) {
          assert.notEqual(theirs, 'conflict', `"${second}" was stored and reads back`);
          if (theirs !== 'conflict') {
            assert.deepEqual(json(theirs.state), json(b.state), `"${second}" has its own state`);
            assert.deepEqual(theirs.events.map((e) => [e.upgradeId, e.seq]), [[second, 1], [second, 2]]);
          }
        } else if (theirs !== 'conflict') {
          assert.equal(theirs.state, undefined, `"${second}" was refused, so it holds nothing`);
          assert.deepEqual(theirs.events, []);
        }
        const rows = (await store.list()).filter((r) => r.upgradeId === first || r.upgradeId === second);
        assert.deepEqual(rows.map((r) => [r.upgradeId, r.lastSeq]).sort(), (separate ? [[first, 3], [second, 2]] : [[first, 3]]).sort());
      }
    }), timeout);

    it('replays after any seq, with and without a limit', withStore(async (store) => {
      const f = new EventFactory(uid('replay'));
      const all = await appendAll(store, f, [7, 20, 1, 32]);
      const n = all.length;
      for (let k = 0; k <= n; k++) {
        const read = await collect(store.readEvents(f.upgradeId, k));
        assert.deepEqual(read.map((e) => e.seq), all.slice(k).map((e) => e.seq), `after seq ${k}`);
        const limited = await collect(store.readEvents(f.upgradeId, k, 7));
        assert.deepEqual(limited.map((e) => e.seq), all.slice(k, k + 7).map((e) => e.seq), `after seq ${k}, limit 7`);
      }
      assert.deepEqual(await collect(store.readEvents(f.upgradeId, n + 5)), []);
    }), timeout);

    it('refuses a bad afterSeq or limit for readEvents with INVALID_ARGUMENT', withStore(async (store) => {
      const f = new EventFactory(uid('read-args'));
      await appendAll(store, f, [3]);
      for (const afterSeq of [-1, 1.5, Number.NaN, Infinity]) await rejectsWith(collect(store.readEvents(f.upgradeId, afterSeq)), 'INVALID_ARGUMENT');
      for (const limit of [-1, 2.5, Number.NaN]) await rejectsWith(collect(store.readEvents(f.upgradeId, 0, limit)), 'INVALID_ARGUMENT');
      assert.deepEqual(await collect(store.readEvents(f.upgradeId, 0, 0)), []);
      assert.equal((await collect(store.readEvents(f.upgradeId, 0, Infinity))).length, 3);
    }), timeout);

    it('gives the same state and events after a reopen, and appends on from there', withStore(async (store, opened) => {
      const f = new EventFactory(uid('reopen'));
      const all = await appendAll(store, f, [2, 300, 1, 999, 5]);
      const again = await reopen(store, opened);
      assert.deepEqual(json(await again.load(f.upgradeId)), json(f.state));
      assert.deepEqual(json(await collect(again.readEvents(f.upgradeId, 0))), json(all));
      // A limit larger than a store's page (a range read, a batch of lines) is kept whole: a reader
      // that pages with it takes fewer events for the end of the log.
      for (const [afterSeq, limit] of [[0, 1000], [300, 1000], [1, 1306]] as const) {
        const page = await collect(again.readEvents(f.upgradeId, afterSeq, limit));
        assert.deepEqual(page.map((e) => e.seq), all.slice(afterSeq, afterSeq + limit).map((e) => e.seq), `after seq ${afterSeq}, limit ${limit}`);
      }
      // Its list() still shows it, as it was: an index kept only in memory would forget it.
      const [row] = (await again.list()).filter((r) => r.upgradeId === f.upgradeId);
      assert.equal(row?.lastSeq, all.length, 'list() after a reopen shows the upgrade held before it');
      assert.equal(row?.updatedAt, f.state!.updatedAt);
      const more = f.batch(4);
      await again.append(f.upgradeId, more, all.length, f.state!);
      assert.deepEqual(json(await again.load(f.upgradeId)), json(f.state));
    }), timeout);

    it('lets exactly one of two concurrent appenders at the same seq win', withStore(async (store, opened) => {
      const id = uid('race');
      const base = new EventFactory(id);
      await appendAll(store, base, [4]);
      const second = factory.second ? await factory.second(store) : store;
      if (second !== store) opened.push(second);
      for (let round = 0; round < 6; round++) {
        // Two stores over the same data (two processes), and one store twice: the tracker sends an
        // append while one it gave up on (storeTimeoutMs) may still be in flight, at the same seq.
        const other = round % 2 === 0 ? second : store;
        const seq = base.lastSeq;
        const a = new EventFactory(id);
        a.state = cloneState(base.state!);
        const b = new EventFactory(id);
        b.state = cloneState(base.state!);
        const ea = a.batch(3);
        const eb = b.batch(2);
        const results = await Promise.allSettled([store.append(id, ea, seq, a.state!), other.append(id, eb, seq, b.state!)]);
        const won = results.filter((r) => r.status === 'fulfilled');
        assert.equal(won.length, 1, `round ${round} (${other === store ? 'one store' : 'two stores'}): exactly one append wins`);
        const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
        assert.ok(isProgressError(lost.reason, 'CONFLICT'), `the other gets CONFLICT, got ${String(lost.reason)}`);
        const winner = results[0]!.status === 'fulfilled' ? a : b;
        const stored = await collect(store.readEvents(id, seq));
        assert.deepEqual(json(stored), json(results[0]!.status === 'fulfilled' ? ea : eb));
        base.state = cloneState(winner.state!);
      }
      assert.deepEqual(json(await store.load(id)), json(base.state));
    }), timeout);

    it('takes appends to different upgrades at the same time, by one store and by two', withStore(async (store, opened) => {
      // CONFLICT is for a stale expectedSeq alone: a store that refuses (or mixes up) an append
      // because one to another upgrade is in flight (a lock or a queue over the whole store) fails.
      const second = factory.second ? await factory.second(store) : store;
      if (second !== store) opened.push(second);
      const factories = Array.from({ length: 6 }, (_, i) => new EventFactory(uid(`parallel-${i}`)));
      const written = await Promise.all(factories.map((f, i) => appendAll(i % 3 === 2 ? second : store, f, [3, 1, 4])));
      for (let i = 0; i < factories.length; i++) {
        const f = factories[i]!;
        assert.deepEqual(json(await collect(store.readEvents(f.upgradeId, 0))), json(written[i]), `the events of ${f.upgradeId}`);
        assert.deepEqual(json(await store.load(f.upgradeId)), json(f.state), `the state of ${f.upgradeId}`);
      }
    }), timeout);

    it('reads what a second store over the same data wrote or deleted (load, readEvents, list)', withStore(async (store, opened) => {
      // A store that serves reads from what it wrote itself (a cache of its own appends' states or
      // list rows) hands out another process's upgrade as it was before that process wrote.
      if (!factory.second) return;
      const other = await factory.second(store);
      opened.push(other);
      const f = new EventFactory(uid('second-writer'));
      await appendAll(store, f, [5]);
      assert.deepEqual(json(await store.load(f.upgradeId)), json(f.state));
      await store.list();
      // A store that takes its writer lock on append (JsonFileStore) lets it go here.
      if (store.release) await store.release(f.upgradeId);
      const all = [...(await collect(store.readEvents(f.upgradeId, 0))), ...(await appendAll(other, f, [3, 1]))];
      assert.deepEqual(json(await store.load(f.upgradeId)), json(f.state), 'load() after the second store appended');
      assert.deepEqual(json(await collect(store.readEvents(f.upgradeId, 0))), json(all), 'readEvents() after the second store appended');
      const [row] = (await store.list()).filter((r) => r.upgradeId === f.upgradeId);
      assert.equal(row?.lastSeq, 9, 'list() after the second store appended');
      assert.equal(row?.updatedAt, f.state!.updatedAt);
      assert.equal(await other.delete(f.upgradeId), true);
      assert.equal(await store.load(f.upgradeId), undefined, 'load() after the second store deleted it');
      assert.deepEqual(await collect(store.readEvents(f.upgradeId, 0)), []);
      assert.ok(!(await store.list()).some((r) => r.upgradeId === f.upgradeId), 'list() after the second store deleted it');
    }), timeout);

    it('keeps large details and unicode exactly', withStore(async (store, opened) => {
      const f = new EventFactory(uid('unicode'));
      await appendAll(store, f, [3]);
      const text = 'héllo wörld ✓ 日本語 עברית العربية 🚀👩‍👩‍👧 e\u0301 \u2028\u2029 "quoted" \\back\\slash\n\ttab \u0000 end';
      const events = [
        f.next('task.progress', { taskId: 't1', percentage: 50, message: text, details: { text, nested: { list: [1, 'двa', null, true], emoji: '🧪' } } }),
        f.next('task.progress', { taskId: 't1', percentage: 51, details: { big: 'x'.repeat(largeBytes), tail: 'end' } }),
      ];
      await store.append(f.upgradeId, events, 3, f.state!);
      const read = await collect(store.readEvents(f.upgradeId, 3));
      assert.deepEqual(json(read), json(events));
      assert.equal(read[0]!.message, text);
      const again = await reopen(store, opened);
      assert.deepEqual(json(await collect(again.readEvents(f.upgradeId, 3))), json(events));
      assert.deepEqual(json(await again.load(f.upgradeId)), json(f.state));
    }), timeout);

    it('deletes an upgrade, and the id can be used again from seq 1', withStore(async (store) => {
      const f = new EventFactory(uid('delete'));
      const keep = new EventFactory(uid('keep'));
      await appendAll(store, f, [10]);
      await appendAll(store, keep, [5]);
      assert.equal(await store.delete(f.upgradeId), true);
      // Asked first: a read may tidy up after a delete (list() dropping an index entry left behind).
      if (factory.remains) {
        assert.deepEqual([...(await factory.remains(store, f.upgradeId))], [], 'what the data still holds of the deleted upgrade');
        assert.notDeepEqual([...(await factory.remains(store, keep.upgradeId))], [], 'remains() finds the data of an upgrade the store holds');
      }
      assert.equal(await store.load(f.upgradeId), undefined);
      assert.deepEqual(await collect(store.readEvents(f.upgradeId, 0)), []);
      assert.ok(!(await store.list()).some((r) => r.upgradeId === f.upgradeId));
      assert.equal(await store.delete(f.upgradeId), false);
      assert.equal((await store.load(keep.upgradeId))?.lastSeq, 5);
      const again = new EventFactory(f.upgradeId);
      await appendAll(store, again, [2]);
      assert.equal((await store.load(f.upgradeId))?.lastSeq, 2);
    }), timeout);

    it('lists every upgrade it holds, filtered, newest first', withStore(async (store) => {
      const ids = [uid('list-a'), uid('list-b'), uid('list-c')];
      const finals: Array<[EventType, ProgressStatus]> = [
        ['upgrade.phase_changed', 'in_progress'],
        ['upgrade.completed', 'completed'],
        ['upgrade.failed', 'failed'],
      ];
      const factories: EventFactory[] = [];
      for (let i = 0; i < ids.length; i++) {
        const f = new EventFactory(ids[i]!);
        factories.push(f);
        await appendAll(store, f, [5 + i]);
        const [type, status] = finals[i]!;
        const last = f.next(type, { status, details: type === 'upgrade.failed' ? { errorMessage: 'boom' } : { phase: 'P' } });
        await store.append(f.upgradeId, [last], f.lastSeq - 1, f.state!);
      }
      // The first one created is updated last: the order is by update, not by creation (an index
      // kept in creation order, newest first, would list c, b, a).
      const a = factories[0]!;
      const phases = [1, 2, 3].map((n) => a.next('upgrade.phase_changed', { details: { phase: `P${n}` } }));
      await store.append(a.upgradeId, phases, a.lastSeq - phases.length, a.state!);
      // Then progress alone (no task added, no status or phase changed: a tracker's most frequent
      // append), which moves only the row's lastSeq, overallPercentage and updatedAt: a store that
      // keeps those apart from the rest of the row must list them as they are now.
      const progress = [37, 64].map((percentage) => a.next('task.progress', { taskId: 't1', percentage }));
      await store.append(a.upgradeId, progress, a.lastSeq - progress.length, a.state!);
      const rows = (await store.list()).filter((r) => ids.includes(r.upgradeId));
      // The most recently updated first (the factories' clocks, 1 ms an event from the same start:
      // a ends at +11 ms, b at +7, c at +8).
      assert.deepEqual(
        rows.map((r) => r.upgradeId),
        [ids[0], ids[2], ids[1]],
      );
      assert.equal(rows[0]?.updatedAt, a.state!.updatedAt);
      const byId = new Map(rows.map((r) => [r.upgradeId, r]));
      assert.equal(byId.get(ids[0]!)?.status, 'in_progress');
      assert.equal(byId.get(ids[1]!)?.status, 'completed');
      assert.equal(byId.get(ids[1]!)?.overallPercentage, 100);
      assert.equal(byId.get(ids[2]!)?.status, 'failed');
      assert.equal(byId.get(ids[2]!)?.lastSeq, 8);
      assert.equal(byId.get(ids[0]!)?.clusterName, 'cluster-1');
      assert.equal(byId.get(ids[0]!)?.totalTasks, 1);
      // Every field of a row is the upgrade's state now (planId, currentPhase, createdAt, startedAt,
      // completedAt ... as toSummaryRow makes it), not a field kept from an earlier append.
      for (const f of factories) assert.deepEqual(json(byId.get(f.upgradeId)), json(toSummaryRow(f.state!)), `the row of ${f.upgradeId}`);
      const failed = await store.list({ status: 'failed' });
      assert.ok(failed.some((r) => r.upgradeId === ids[2]) && failed.every((r) => r.status === 'failed'));
      const two = await store.list({ status: ['completed', 'failed'] });
      // Every status of the list, not only the first (an empty answer passed an every() alone).
      assert.ok([ids[1], ids[2]].every((id) => two.some((r) => r.upgradeId === id)), 'a list of statuses lists the upgrades of each');
      assert.ok(two.every((r) => r.status === 'completed' || r.status === 'failed'));
      // The limit keeps the most recently updated rows, cut after sorting (not the first ones found,
      // nor the oldest). Compared with the unlimited list: the store may hold other upgrades.
      const all = await store.list();
      for (const limit of [1, 2]) assert.deepEqual((await store.list({ limit })).map((r) => r.upgradeId), all.slice(0, limit).map((r) => r.upgradeId), `limit ${limit}: the newest rows`);
      // 0 is a limit (no rows), not "no limit".
      assert.deepEqual(await store.list({ limit: 0 }), [], 'limit 0: no rows');
      // The limit is applied after the filter: the newest rows of those that match, not the
      // matching ones among the newest rows.
      assert.deepEqual((await store.list({ status: ['completed', 'failed'], limit: 1 })).map((r) => r.upgradeId), two.slice(0, 1).map((r) => r.upgradeId), 'status and limit: the newest matching row');
      // Every filter given applies, together.
      assert.deepEqual(await store.list({ status: 'failed', clusterName: 'no-such-cluster' }), [], 'status and clusterName together');
      assert.ok((await store.list({ status: 'failed', clusterName: 'cluster-1' })).some((r) => r.upgradeId === ids[2]));
      assert.equal((await store.list({ clusterName: 'no-such-cluster' })).length, 0);
      const cluster = await store.list({ clusterName: 'cluster-1' });
      assert.ok(ids.every((id) => cluster.some((r) => r.upgradeId === id)) && cluster.every((r) => r.clusterName === 'cluster-1'));
      await rejectsWith(store.list({ status: 'bogus' as ProgressStatus }), 'INVALID_ARGUMENT');
      // A misspelt filter (`statuses`, `cluster`) or a cluster that is not a string would otherwise
      // list every upgrade, as if unfiltered.
      await rejectsWith(store.list({ statuses: ['failed'] } as ListFilter), 'INVALID_ARGUMENT');
      await rejectsWith(store.list({ cluster: 'cluster-1' } as ListFilter), 'INVALID_ARGUMENT');
      await rejectsWith(store.list({ clusterName: 1 } as unknown as ListFilter), 'INVALID_ARGUMENT');
    }), timeout);

    it('lists every upgrade of many (more than a page of a scan or a directory read)', withStore(async (store) => {
      const ids = Array.from({ length: 150 }, (_, i) => uid(`many-${String(i).padStart(3, '0')}`));
      for (let i = 0; i < ids.length; i += 10) await Promise.all(ids.slice(i, i + 10).map((id) => appendAll(store, new EventFactory(id), [1])));
      const listed = new Set((await store.list()).map((r) => r.upgradeId));
      assert.deepEqual(ids.filter((id) => !listed.has(id)), [], 'every upgrade listed');
      assert.equal((await store.list({ limit: 120 })).length, 120);
    }), timeout);

    it('copies the state it is given: changing it once append was called changes nothing stored', withStore(async (store, opened) => {
      const f = new EventFactory(uid('state-copy'));
      // Changes every field a snapshot or a list row holds, in place; `whole` false keeps the ones a
      // store may check its snapshot by (lastSeq, createdAt, updatedAt: the seq, the run it began):
      // scribbled, a store that checks its snapshot against its log read past one written from them
      // after an await, and a store that kept the object and replays from its lastSeq (scribbled to 1)
      // rebuilt the state from the events after seq 1. planId, clusterName and metadata are set by
      // upgrade.created alone: no later event rebuilds them.
      const scribble = (state: UpgradeProgress, whole: boolean): void => {
        for (const task of Object.values(state.tasks)) Object.assign(task, { status: 'failed', percentage: -1, recentEvents: [] });
        Object.assign(state, { status: 'failed', currentPhase: 'scribbled', overallPercentage: -1, tasks: {}, planId: 'scribbled', clusterName: 'scribbled', metadata: { scribbled: true } });
        if (whole) Object.assign(state, { lastSeq: 1, createdAt: '1970-01-01T00:00:00.000Z', updatedAt: '1970-01-01T00:00:00.000Z' });
      };
      // Sizes that cross the snapshot points of usual settings, then the terminal append (which
      // stores may snapshot at once).
      for (const n of [1, 3, 50, 97, 200, 5, 1]) {
        const expected = f.lastSeq;
        const events = f.batch(n);
        const state = f.snapshot();
        const pending = store.append(f.upgradeId, events, expected, state);
        scribble(state, false);
        await pending;
      }
      const last = f.next('upgrade.completed', { status: 'completed' });
      const state = f.snapshot();
      const pending = store.append(f.upgradeId, [last], f.lastSeq - 1, state);
      scribble(state, true);
      await pending;
      assert.deepEqual(json(await store.load(f.upgradeId)), json(f.state));
      const [row] = (await store.list()).filter((r) => r.upgradeId === f.upgradeId);
      assert.deepEqual(json(row), json(toSummaryRow(f.state!)));
      // And after a reopen: a store that writes its snapshots in the background (JsonFileStore) may
      // not have one on disk for the load() just after the append, but has once closed.
      const again = await reopen(store, opened);
      assert.deepEqual(json(await again.load(f.upgradeId)), json(f.state), 'load() after a reopen');
      const [after] = (await again.list()).filter((r) => r.upgradeId === f.upgradeId);
      assert.deepEqual(json(after), json(toSummaryRow(f.state!)), 'the list row after a reopen');
    }), timeout);

    it('hands out what it holds, not its own copy: changing what load() or readEvents() returned changes nothing stored', withStore(async (store) => {
      // A store in memory that returns the objects it keeps (or caches and returns again) lets any
      // reader (a dashboard, a tool that folds an event onto a loaded state) rewrite its data.
      const f = new EventFactory(uid('read-copy'));
      const all = await appendAll(store, f, [3, 5, 12]);
      const tryTo = (change: () => void): void => {
        try {
          change();
        } catch {
          // A store may hand out frozen objects.
        }
      };
      for (let round = 0; round < 2; round++) {
        const state = (await store.load(f.upgradeId))!;
        tryTo(() => Object.assign(state, { status: 'failed', lastSeq: 1, currentPhase: 'scribbled', overallPercentage: -1 }));
        // Fields only upgrade.created sets: a store that handed out its snapshot and replays from its
        // lastSeq (scribbled to 1) rebuilt the others from the events after seq 1.
        tryTo(() => Object.assign(state, { planId: 'scribbled', clusterName: 'scribbled', createdAt: '1970-01-01T00:00:00.000Z' }));
        tryTo(() => Object.assign(state.metadata, { scribbled: true }));
        for (const task of Object.values(state.tasks ?? {})) tryTo(() => Object.assign(task, { status: 'failed', percentage: -1 }));
        tryTo(() => {
          state.tasks = {};
        });
        for (const event of await collect(store.readEvents(f.upgradeId, 0))) {
          tryTo(() => Object.assign(event, { seq: -1, message: 'scribbled', status: 'failed' }));
          tryTo(() => Object.assign(event.details, { scribbled: true }));
        }
        assert.deepEqual(json(await store.load(f.upgradeId)), json(f.state), `round ${round}: load() after its result was changed`);
        assert.deepEqual(json(await collect(store.readEvents(f.upgradeId, 0))), json(all), `round ${round}: readEvents() after its events were changed`);
      }
    }), timeout);

    it('loads the right state across many appends (snapshots and tails)', withStore(async (store, opened) => {
      const f = new EventFactory(uid('many'));
      const sizes = Array.from({ length: 40 }, (_, i) => 1 + ((i * 37) % 97));
      await appendAll(store, f, sizes);
      assert.deepEqual(json(await store.load(f.upgradeId)), json(f.state));
      const again = await reopen(store, opened);
      assert.deepEqual(json(await again.load(f.upgradeId)), json(f.state));
    }), timeout);

    it('gives one writer at a time the lock, when it has one', withStore(async (store, opened) => {
      if (!store.acquire) return;
      const id = uid('lock');
      // Locks are per upgrade: releasing another upgrade's lock leaves this one held.
      const neighbour = uid('lock-neighbour');
      await store.acquire(neighbour);
      await store.acquire(id);
      await store.release!(neighbour);
      await rejectsWith(store.acquire(id), 'CONFLICT');
      if (factory.second) {
        const other = await factory.second(store);
        opened.push(other);
        await rejectsWith(other.acquire!(id), 'CONFLICT');
        await store.release!(id);
        await other.acquire!(id);
        await other.release!(id);
      } else {
        await store.release!(id);
      }
      await store.acquire(id);
      await store.release!(id);
    }), timeout);

    it('carries a whole tracker across a reopen', withStore(async (store, opened) => {
      const upgradeId = uid('tracker');
      const t1 = await ProgressTracker.open({ upgradeId, planId: 'plan-9', clusterName: 'prod-eu', metadata: { region: 'eu-west-1' }, store });
      await t1.startUpgrade('Pre-flight');
      await t1.addTasks([
        { taskId: 'plan', taskName: 'Plan', taskType: 'upgrade_plan' },
        { taskId: 'nodes', taskName: 'Node groups', weight: 2 },
        { taskId: 'ng-1', taskName: 'Node group 1', parentTaskId: 'nodes', totalSteps: 4 },
        { taskId: 'ng-2', taskName: 'Node group 2', parentTaskId: 'nodes' },
      ]);
      await t1.completeTask('plan');
      await t1.advanceTask('ng-1', { currentStep: 'drain' });
      await t1.failTask('ng-2', 'timeout');
      await t1.retryTask('ng-2');
      await Promise.all([t1.updateTaskProgress('ng-2', 40), t1.setCurrentPhase('Upgrade nodes'), t1.advanceTask('ng-1', { completedSteps: 3 })]);
      const live = json(t1.progress);
      if (store.acquire) await rejectsWith(ProgressTracker.open({ upgradeId, planId: 'plan-9', clusterName: 'prod-eu', store }), 'CONFLICT');
      await t1.close();
      const again = await reopen(store, opened);
      const t2 = await ProgressTracker.open({ upgradeId, planId: 'plan-9', clusterName: 'prod-eu', store: again });
      assert.deepEqual(json(t2.progress), live);
      await t2.completeTask('ng-1');
      assert.equal(t2.progress.lastSeq, live.lastSeq + 1);
      await t2.close();
    }), timeout);

    it('loads tasks whose ids name Object.prototype members, added after a snapshot, and after a reopen', withStore(async (store, opened) => {
      const upgradeId = uid('proto-ids');
      const t1 = await ProgressTracker.open({ upgradeId, planId: 'p', clusterName: 'c', store });
      await t1.startUpgrade();
      // Seqs 1-7 (a store that snapshots every 7, as the suite runs some, writes one at 7), then the
      // tasks at 8-11: folded onto the snapshot read back, before the next one.
      for (let i = 0; i < 5; i++) await t1.addTask(`t${i}`, `Task ${i}`);
      for (const id of ['constructor', 'toString', '__proto__']) await t1.addTask(id, `Task ${id}`);
      await t1.startTask('__proto__');
      const live = json(t1.progress);
      await t1.close();
      const loaded = (await store.load(upgradeId))!;
      assert.deepEqual(Object.keys(loaded.tasks).slice(-3), ['constructor', 'toString', '__proto__']);
      const again = await reopen(store, opened);
      const t2 = await ProgressTracker.open({ upgradeId, planId: 'p', clusterName: 'c', store: again });
      assert.deepEqual(json(t2.progress), live);
      await t2.completeTask('constructor');
      // A task added after the reopen, on the state the store loaded.
      const added: string = 'hasOwnProperty';
      await t2.addTask(added, `Task ${added}`);
      assert.equal(t2.durableProgress.tasks[added]?.taskName, `Task ${added}`);
      await t2.close();
    }), timeout);

    it('closes idempotently', async () => {
      const store = await factory.create();
      await store.close();
      await store.close();
    }, timeout);

    it('reports the events retention removed as trimmed, never as a gap (with a retaining store)', async () => {
      if (!factory.retaining) return;
      const store = await factory.retaining();
      const stop = new AbortController();
      let follower: Follower | undefined;
      try {
        const f = new EventFactory(uid('retention'));
        const all = await appendAll(store, f, [1, 2, 3, 5, 8, 13, 1, 1, 2, 3, 5, 8]);
        const n = all.length;
        assert.deepEqual(json(await store.load(f.upgradeId)), json(f.state), 'load() once retention removed events');
        const [row] = (await store.list()).filter((r) => r.upgradeId === f.upgradeId);
        assert.deepEqual(json(row), json(toSummaryRow(f.state!)), 'the list row once retention removed events');
        // After each seq: the events from the next one on, in full, or NOT_FOUND 'trimmed' (for the
        // first seqs alone: once one is readable, so is every later one). A store that starts from
        // its oldest kept event hands out a log with a hole a reader cannot see.
        let trimmed = 0;
        let readable: number | undefined;
        for (let k = 0; k <= n; k++) {
          for (const limit of [Infinity, 3]) {
            const what = `readEvents after seq ${k}${limit === Infinity ? '' : `, limit ${limit}`}`;
            let read: ProgressEvent[];
            try {
              read = await collect(store.readEvents(f.upgradeId, k, limit));
            } catch (err) {
              assert.ok(isProgressError(err, 'NOT_FOUND') && err.context?.reason === 'trimmed', `${what}: the events or NOT_FOUND with context.reason 'trimmed', got ${String((err as Error)?.stack ?? err)}`);
              assert.equal(readable, undefined, `${what}: trimmed, while the events after seq ${readable} were readable`);
              trimmed++;
              continue;
            }
            assert.deepEqual(read.map((e) => e.seq), all.slice(k, k + limit).map((e) => e.seq), what);
            assert.deepEqual(json(read), json(all.slice(k, k + limit)), what);
            readable ??= k;
          }
        }
        assert.ok(trimmed > 0, `the retaining store removed none of ${n} events: set it to keep fewer`);
        // A watch from seq 0 hands out seq 1 first, or ends with NOT_FOUND.
        if (store.watch) {
          follower = new Follower(store.watch(f.upgradeId, 0, { signal: stop.signal }), waitMs, 'watch from seq 0 once retention removed events');
          try {
            const [first] = await follower.take(1);
            assert.equal(first!.seq, 1, `${follower.what}: the first event handed out`);
          } catch (err) {
            assert.ok(isProgressError(err, 'NOT_FOUND'), `${follower.what}: seq 1 first, or NOT_FOUND, got ${String((err as Error)?.stack ?? err)}`);
          }
        }
      } finally {
        stop.abort();
        await follower?.stop();
        await store.close().catch(() => {});
      }
    }, timeout);

    it('refuses every call after close with CLOSED', async () => {
      // A store that goes on after close() (a client that reconnects by itself, a handle reopened on
      // demand) would take writes from a tracker its owner believes stopped.
      const store = await factory.create();
      const f = new EventFactory(uid('closed'));
      try {
        await appendAll(store, f, [3]);
      } finally {
        await store.close();
      }
      const expected = f.lastSeq;
      const more = f.batch(2);
      await rejectsWith(store.append(f.upgradeId, more, expected, f.state!), 'CLOSED');
      await rejectsWith(store.load(f.upgradeId), 'CLOSED');
      await rejectsWith(collect(store.readEvents(f.upgradeId, 0)), 'CLOSED');
      await rejectsWith(store.list(), 'CLOSED');
      await rejectsWith(store.delete(f.upgradeId), 'CLOSED');
      if (store.acquire) await rejectsWith(store.acquire(uid('closed-lock')), 'CLOSED');
      if (store.watch) await refused((signal) => store.watch!(f.upgradeId, 0, { signal }), 'CLOSED', 'watch() after close');
      if (store.watchAll) await refused((signal) => store.watchAll!({ signal }), 'CLOSED', 'watchAll() after close');
    }, timeout);
  });

  // The optional readers. Every wait is bounded by `waitTimeout`: a store that never hands out an
  // event, or never ends, fails its case instead of hanging the suite.
  describe(`${name}: watch() and watchAll() (when the store has them)`, () => {
    const hasWatch = (store: ProgressStore): boolean => typeof store.watch === 'function';
    const hasWatchAll = (store: ProgressStore): boolean => typeof store.watchAll === 'function';

    it('watch replays the events after afterSeq, then follows appends of this store and of a second one, without gaps or duplicates', withWatching(hasWatch, async (store, w) => {
      const f = new EventFactory(uid('watch'));
      const all = await appendAll(store, f, [3, 5]);
      const stop = w.controller();
      const fromStart = w.follow(store.watch!(f.upgradeId, 0, { signal: stop.signal }), 'watch from seq 0');
      const fromMiddle = w.follow(store.watch!(f.upgradeId, 4, { signal: stop.signal }), 'watch from seq 4');
      assert.deepEqual(json(await fromStart.take(8)), json(all));
      assert.deepEqual(json(await fromMiddle.take(4)), json(all.slice(4)));
      const other = await w.second();
      const followers = [fromStart, fromMiddle];
      // A reader in another process (the second store) follows the writes of this one.
      if (other !== store && other.watch) {
        const remote = w.follow(other.watch(f.upgradeId, 6, { signal: stop.signal }), 'watch from seq 6 on the second store');
        assert.deepEqual(json(await remote.take(2)), json(all.slice(6)));
        followers.push(remote);
      }
      // Appended while they wait: by this store, by the second one, by this one again. Each event comes
      // once, right after the last one handed out (a duplicate or a gap shows as the wrong event here).
      // Another upgrade's events, appended first each time, are not this watch's: none is handed out.
      const neighbour = new EventFactory(uid('watch-neighbour'));
      for (const [writer, n] of [[store, 2], [other, 3], [store, 1]] as const) {
        for (const x of followers) x.pull();
        await appendAll(writer, neighbour, [1]);
        const more = await appendAll(writer, f, [n]);
        for (const x of followers) assert.deepEqual(json(await x.take(n)), json(more), `${x.what}: the events appended after seq ${more[0]!.seq - 1}`);
      }
      stop.abort();
      for (const x of followers) await x.ends();
    }), timeout);

    it('watch misses nothing and repeats nothing when appends race its start', withWatching(hasWatch, async (store, w) => {
      // A store that replays, then subscribes (or subscribes, then replays without skipping what it
      // handed out) loses or repeats the events appended in between.
      const f = new EventFactory(uid('watch-race'));
      const before = await appendAll(store, f, [2]);
      const other = await w.second();
      const stop = w.controller();
      const followers = [w.follow(store.watch!(f.upgradeId, 1, { signal: stop.signal }), 'watch from seq 1 started as appends began')];
      if (other !== store && other.watch) followers.push(w.follow(other.watch(f.upgradeId, 0, { signal: stop.signal }), 'watch from seq 0 on the second store started as appends began'));
      for (const x of followers) x.pull();
      const appended: ProgressEvent[] = [];
      for (let i = 0; i < 12; i++) appended.push(...(await appendAll(i % 2 === 0 ? store : other, f, [1 + (i % 3)])));
      assert.deepEqual(json(await followers[0]!.take(1 + appended.length)), json([before[1]!, ...appended]), followers[0]!.what);
      if (followers[1]) assert.deepEqual(json(await followers[1].take(2 + appended.length)), json([...before, ...appended]), followers[1].what);
      stop.abort();
      for (const x of followers) await x.ends();
      // Made, then left unread while appends land (by both stores), then read: a store that
      // subscribes at the call but replays at the first read hands those appends out twice, one that
      // replays at the call and subscribes at the first read loses them.
      const later = w.controller();
      const idle = w.follow(store.watch!(f.upgradeId, 2, { signal: later.signal }), 'watch made, then read only after appends');
      const meanwhile = [...(await appendAll(store, f, [2])), ...(await appendAll(other, f, [1]))];
      assert.deepEqual(json(await idle.take(appended.length + meanwhile.length)), json([...appended, ...meanwhile]), idle.what);
      idle.pull();
      const last = await appendAll(store, f, [1]);
      assert.deepEqual(json(await idle.take(1)), json(last), `${idle.what}: the next event appended, once`);
      later.abort();
      await idle.ends();
    }), timeout);

    it('watch of an upgrade that does not exist yet hands out its events from seq 1 once it is created', withWatching(hasWatch, async (store, w) => {
      const f = new EventFactory(uid('watch-later'));
      const stop = w.controller();
      const early = w.follow(store.watch!(f.upgradeId, 0, { signal: stop.signal }), 'watch started before the upgrade existed');
      const other = await w.second();
      const followers = [early];
      if (other !== store && other.watch) followers.push(w.follow(other.watch(f.upgradeId, 0, { signal: stop.signal }), 'watch on the second store started before the upgrade existed'));
      for (const x of followers) x.pull();
      const first = await appendAll(store, f, [3]);
      for (const x of followers) assert.deepEqual(json(await x.take(3)), json(first), x.what);
      for (const x of followers) x.pull();
      const more = await appendAll(other, f, [2]);
      for (const x of followers) assert.deepEqual(json(await x.take(2)), json(more), x.what);
      stop.abort();
      for (const x of followers) await x.ends();
    }), timeout);

    it('watch ends when its signal aborts (already aborted, during the replay, while it waits) or its loop breaks', withWatching(hasWatch, async (store, w) => {
      const f = new EventFactory(uid('watch-abort'));
      const all = await appendAll(store, f, [5]);
      const already = new AbortController();
      already.abort();
      await w.follow(store.watch!(f.upgradeId, 0, { signal: already.signal }), 'watch with a signal already aborted').ends();
      const midway = w.controller();
      const replaying = w.follow(store.watch!(f.upgradeId, 0, { signal: midway.signal }), 'watch aborted during its replay');
      assert.deepEqual(json(await replaying.take(2)), json(all.slice(0, 2)));
      midway.abort();
      await replaying.ends();
      const waiting = w.controller();
      const idle = w.follow(store.watch!(f.upgradeId, 0, { signal: waiting.signal }), 'watch aborted while it waits for events');
      await idle.take(5);
      idle.pull();
      waiting.abort();
      await idle.ends();
      // A loop that breaks ends the iteration (its return() settles), without a signal.
      let seen = 0;
      await within(
        (async () => {
          for await (const event of store.watch!(f.upgradeId, 0)) {
            seen = event.seq;
            if (seen === 3) break;
          }
        })(),
        waitMs,
        'a for await loop over watch() that breaks did not end',
      );
      assert.equal(seen, 3);
    }), timeout);

    it('watch and watchAll end when the store closes (while they wait, or during a replay)', withWatching((s) => hasWatch(s) || hasWatchAll(s), async (store, w) => {
      const f = new EventFactory(uid('watch-close'));
      const all = await appendAll(store, f, [3]);
      const followers: Follower[] = [];
      if (store.watch) {
        const one = w.follow(store.watch(f.upgradeId, 0), 'watch when the store closes');
        assert.deepEqual(json(await one.take(3)), json(all));
        const none = w.follow(store.watch(uid('watch-never'), 0), 'watch of an upgrade never created when the store closes');
        followers.push(one, none);
      }
      if (store.watchAll) followers.push(w.follow(store.watchAll(), 'watchAll when the store closes'));
      for (const x of followers) x.pull();
      // And one in the middle of its replay: it hands out nothing more.
      if (store.watch) {
        const replaying = w.follow(store.watch(f.upgradeId, 0), 'watch in the middle of its replay when the store closes');
        assert.deepEqual(json(await replaying.take(1)), json(all.slice(0, 1)));
        followers.push(replaying);
      }
      await within(store.close(), waitMs, 'close() with watchers waiting did not settle');
      for (const x of followers) await x.ends();
    }), timeout);

    it('watchAll hands out the new events of every upgrade, also of upgrades created after it started, each in seq order', withWatching(hasWatchAll, async (store, w) => {
      const a = new EventFactory(uid('all-a'));
      await appendAll(store, a, [3]);
      const stop = w.controller();
      const every = w.follow(store.watchAll!({ signal: stop.signal }), 'watchAll');
      every.pull();
      // a's first three events came before the start: only the new ones are handed out.
      const b = new EventFactory(uid('all-b'));
      const first = [...(await appendAll(store, a, [2])), ...(await appendAll(store, b, [3]))];
      assert.deepEqual(byUpgrade(await every.take(first.length)), byUpgrade(first));
      // Then from another store over the same data (when the factory makes one): a new upgrade too.
      const other = await w.second();
      const c = new EventFactory(uid('all-c'));
      every.pull();
      const second = [...(await appendAll(other, c, [2])), ...(await appendAll(other, b, [2])), ...(await appendAll(store, a, [1])), ...(await appendAll(store, c, [1]))];
      assert.deepEqual(byUpgrade(await every.take(second.length)), byUpgrade(second));
      // Several upgrades appended at the same time, by both stores: each upgrade's events in seq order.
      every.pull();
      const together = [uid('all-d'), uid('all-e'), uid('all-f'), uid('all-g')].map((id) => new EventFactory(id));
      const third = (await Promise.all(together.map((g, i) => appendAll(i % 2 === 0 ? store : other, g, [2, 1, 3])))).flat();
      assert.deepEqual(byUpgrade(await every.take(third.length)), byUpgrade(third));
      // Nothing twice, nothing more: the next event handed out is the next one appended.
      every.pull();
      const last = await appendAll(store, b, [1]);
      assert.deepEqual(json(await every.take(1)), json(last));
      stop.abort();
      await every.ends();
      // Made, then left unread while this store appends: it starts at the call, not at its first read.
      const later = w.controller();
      const idle = w.follow(store.watchAll!({ signal: later.signal }), 'watchAll made, then read only after appends');
      const meanwhile = [...(await appendAll(store, a, [2])), ...(await appendAll(store, c, [1]))];
      assert.deepEqual(byUpgrade(await idle.take(meanwhile.length)), byUpgrade(meanwhile), idle.what);
      later.abort();
      await idle.ends();
    }), timeout);

    it('watchAll ends when its signal aborts (already aborted, while it waits)', withWatching(hasWatchAll, async (store, w) => {
      const already = new AbortController();
      already.abort();
      await w.follow(store.watchAll!({ signal: already.signal }), 'watchAll with a signal already aborted').ends();
      // Connected first (any read): a store may take the start point once its connection is up
      // (RedisStore on a Cluster still discovering its slots), and this case wants the first events.
      await store.list();
      const stop = w.controller();
      const every = w.follow(store.watchAll!({ signal: stop.signal }), 'watchAll aborted while it waits for events');
      every.pull();
      const f = new EventFactory(uid('all-abort'));
      const events = await appendAll(store, f, [2]);
      assert.deepEqual(json(await every.take(2)), json(events));
      every.pull();
      stop.abort();
      await every.ends();
    }), timeout);

    it('refuses a bad upgrade id or afterSeq for watch with INVALID_ARGUMENT', withWatching(hasWatch, async (store) => {
      const f = new EventFactory(uid('watch-args'));
      await appendAll(store, f, [3]);
      for (const bad of ['../escape', 'a/b', 'a\\b', '', '.', '..', 'x'.repeat(129), 'sp ace', 'ünï']) {
        await refused((signal) => store.watch!(bad, 0, { signal }), 'INVALID_ARGUMENT', `watch(${JSON.stringify(bad)}, 0)`);
      }
      for (const afterSeq of [-1, 1.5, Number.NaN, Infinity, -Infinity]) {
        await refused((signal) => store.watch!(f.upgradeId, afterSeq, { signal }), 'INVALID_ARGUMENT', `watch(id, ${afterSeq})`);
      }
    }), timeout);
  });
}
