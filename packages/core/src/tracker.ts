import { ProgressError, isProgressError } from './errors.js';
import { isLogger, safeLogger, silentLogger, type Logger, type ProgressSink, type ProgressStore } from './interfaces.js';
import { MemoryStore } from './memory-store.js';
import type { EventType, ProgressEvent, ProgressStatus, ProgressSummary, StoreInfo, TaskProgress, TaskType, UpgradeProgress } from './model.js';
import { cloneState, cloneTask, foldEvent } from './reducer.js';
import { estimateCompletion, findCurrentTask, summarize } from './summary.js';
import { assertTaskTransition, assertUpgradeTransition } from './transitions.js';
import { isoTimestamp } from './iso-time.js';
import { fastUUID } from './uuid.js';
import { MAX_DATE_MS, assertCount, assertPercentage, assertText, assertTimeout, assertValidId, assertWeight, describe, errorDetails, readOptions, toDetails } from './validation.js';
import { assertAppendState, assertReadEvents } from './store-helpers.js';

const RESOLVED = Promise.resolve();

/** Options of {@link ProgressTracker.open}. */
export interface ProgressTrackerOptions {
  /** The operation's id: 1..128 characters of `[A-Za-z0-9_.:-]`. */
  upgradeId: string;
  /** The plan's id, same rules. Ignored (a mismatch logged) when the store already holds the upgrade. */
  planId: string;
  /** Free text, 1..256 characters. Ignored like `planId` when the upgrade exists. */
  clusterName: string;
  /** Recorded on `upgrade.created`. A JSON-serializable object, nesting at most 100 levels of objects and arrays. */
  metadata?: Record<string, unknown>;
  /** Where events are kept. @default a new {@link MemoryStore}, closed with the tracker */
  store?: ProgressStore;
  /** Who hears of every durable event, in order. */
  sinks?: readonly ProgressSink[];
  /** A pino-compatible logger. @default silent */
  logger?: Logger;
  /** The clock, in ms since the epoch (for tests). Event timestamps never go backwards. @default Date.now */
  now?: () => number;
  /**
   * How long `flush()` and `close()` wait for each sink's `flush()`, in ms; a sink that takes
   * longer is logged and left behind, so that one stuck sink cannot hold the close (and the store's
   * lock) for ever. @default {@link DEFAULT_SINK_FLUSH_TIMEOUT_MS}
   */
  sinkFlushTimeoutMs?: number;
  /**
   * How long the tracker waits for the store to answer one call, in ms: each `append` (a write of
   * one or more commands), and `acquire` and `load` in `open()`, `release` in `close()`. A store
   * that does not answer in time (a hung network filesystem, a driver without a timeout) is given
   * up on: the write is refused with `STORE_UNAVAILABLE` (`context.reason` `'timeout'`), as are the
   * commands queued behind it, and the next command writes again. The outcome of such a write is
   * unknown (the store may still complete it), so it is handled as every write of unknown outcome
   * (see {@link ProgressTracker}): adopted should it land after all. Set it above
   * the store's own timeouts, so that a store that reports its failures gets the chance to.
   * `Infinity` waits for ever (a hung store then holds every command, `flush()` and `close()`).
   * @default {@link DEFAULT_STORE_TIMEOUT_MS}
   */
  storeTimeoutMs?: number;
}

/** How long `flush()` and `close()` wait for each sink's `flush()` unless told otherwise: 30 s. */
export const DEFAULT_SINK_FLUSH_TIMEOUT_MS = 30_000;

/**
 * How long the tracker waits for one call to the store unless told otherwise: 60 s. A healthy store
 * answers in milliseconds, and the stores of this family give up on their own well before (the
 * JSON store's lock lease, 30 s; the Redis store's command timeout, 10 s): this ends a hang.
 */
export const DEFAULT_STORE_TIMEOUT_MS = 60_000;

/** Options of {@link ProgressTracker.addTask}. */
export interface AddTaskOptions {
  /** Makes this task a child: the parent's percentage becomes the weighted mean of its children. */
  parentTaskId?: string;
  /** The number of steps, for {@link ProgressTracker.advanceTask}. */
  totalSteps?: number;
  /** Weight in the parent's (or the upgrade's) mean. @default 1 */
  weight?: number;
}

/** One task for {@link ProgressTracker.addTasks}. */
export interface TaskSpec extends AddTaskOptions {
  taskId: string;
  taskName: string;
  taskType?: TaskType;
}

/** Options of {@link ProgressTracker.advanceTask}. */
export interface AdvanceTaskOptions {
  /** Steps done so far. @default one more than before */
  completedSteps?: number;
  /** A label for the step now running. */
  currentStep?: string;
  /**
   * The event's message. @default `Step n/m: <currentStep>`, or `Step n/m` without a `currentStep`
   * (`Step n` for a task without `totalSteps`)
   */
  message?: string;
}

/** Hears every durable event, in seq order, with the durable state right after it. */
export type ProgressListener = (event: ProgressEvent, state: Readonly<UpgradeProgress>) => void;

/** What `getSystemInfo()` returns. */
export interface TrackerSystemInfo {
  upgradeId: string;
  status: ProgressStatus;
  lastSeq: number;
  durableSeq: number;
  pendingEvents: number;
  closed: boolean;
  store: StoreInfo;
  sinks: string[];
  subscribers: number;
}

interface Commit {
  events: ProgressEvent[];
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  value: unknown;
}

const MAX_TEXT = 4096;
/** What ends an error message cut to {@link MAX_TEXT} characters. */
const CUT_MARK = '…[truncated]';

/**
 * The details of a failure (failTask, failUpgrade): `errorMessage`, a string of at least one
 * character (a longer one than MAX_TEXT is cut, not refused: see failureDetails), or an Error, the
 * one a catch block holds. Refused, that Error left the failure recorded nowhere, in the very path
 * that reports it. Its message is the error message (its name when it has none), and `error` holds
 * its name, own fields (a `code`) and cause (see errorDetails).
 */
function failureOf(errorMessage: unknown): { errorMessage: string; errorMessageLength?: number; error?: Record<string, unknown> } {
  if (typeof errorMessage === 'string' && errorMessage.length > 0) return failureDetails(errorMessage);
  if (errorMessage instanceof Error) {
    const error = errorDetails(errorMessage);
    let text: unknown;
    try {
      text = errorMessage.message;
    } catch {
      // A message that cannot be read: the name stands for it.
    }
    const name = typeof error.name === 'string' && error.name.length > 0 ? error.name : 'Error';
    return { ...failureDetails(typeof text === 'string' && text.length > 0 ? text : name), error };
  }
  throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] errorMessage must be a non-empty string or an Error, got ${describe(errorMessage)}`, { context: { errorMessage } });
}

/**
 * The details of a failure with `errorMessage` (a string of at least one character): the message
 * itself, or, when it is longer than {@link MAX_TEXT} (a command's whole output), its start cut to
 * that length, ending with {@link CUT_MARK} and never splitting a character of two UTF-16 code units,
 * plus `errorMessageLength`, the length given. Refusing it would leave the failure recorded nowhere,
 * in the very path that reports it.
 */
function failureDetails(errorMessage: string): { errorMessage: string; errorMessageLength?: number } {
  if (errorMessage.length <= MAX_TEXT) return { errorMessage };
  let end = MAX_TEXT - CUT_MARK.length;
  const last = errorMessage.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return { errorMessage: errorMessage.slice(0, end) + CUT_MARK, errorMessageLength: errorMessage.length };
}

/**
 * How many events of writes whose outcome is unknown the tracker keeps for a later adoption (see
 * #adoptOrFail): beyond it the writes between the first and the latest are forgotten (see
 * #rememberUnsure), then the first; the latest one is always kept.
 */
const MAX_UNSURE_EVENTS = 10_000;
/** How long the tracker waits for the store's readEvents when it checks for a write to adopt. */
const ADOPT_READ_TIMEOUT_MS = 10_000;
/**
 * How many of the events it made durable last the tracker keeps, to write them again should the
 * store lose them (see #restoreLost). A bound on memory (~1,000 event objects per tracker), not on
 * age: a slow writer's last events may be minutes old when a failover loses them.
 */
const KEPT_EVENTS = 1_000;

/** The option names each method knows: any other is refused (see readOptions). */
const OPEN_OPTIONS = ['upgradeId', 'planId', 'clusterName', 'metadata', 'store', 'sinks', 'logger', 'now', 'sinkFlushTimeoutMs', 'storeTimeoutMs'] as const satisfies readonly (keyof ProgressTrackerOptions)[];
const TASK_SPEC_KEYS = ['taskId', 'taskName', 'taskType', 'parentTaskId', 'totalSteps', 'weight'] as const satisfies readonly (keyof TaskSpec)[];
const ADD_TASK_OPTIONS = ['parentTaskId', 'totalSteps', 'weight'] as const satisfies readonly (keyof AddTaskOptions)[];
const ADVANCE_OPTIONS = ['completedSteps', 'currentStep', 'message'] as const satisfies readonly (keyof AdvanceTaskOptions)[];

/**
 * The engine: validates commands, records them as events, makes them durable in a
 * {@link ProgressStore} (appends that arrive while a write is in flight are committed together) and
 * hands them to the sinks and subscribers, in order, once durable.
 *
 * Commands change the in-memory state at once (`progress`) and resolve when the event is durable.
 * Queries are synchronous. Bad input throws (rejects with) a {@link ProgressError} and changes
 * nothing.
 *
 * When the store fails an append, the events of that write and every command queued behind it are
 * rejected (`STORE_UNAVAILABLE`, `CONFLICT` when another writer moved the upgrade, or the store's
 * own `INVALID_ARGUMENT` / `DATA_CORRUPTED` for events or a state it refuses to write), the
 * in-memory state goes back to the last durable state, and the tracker stays usable: the next
 * command writes from the last durable seq. A resolved command is never lost; a rejected one was not
 * acknowledged.
 *
 * A failure other than `CONFLICT`, `INVALID_ARGUMENT`, `DATA_CORRUPTED` or `CLOSED` (a driver's
 * timeout, a lost connection: `STORE_UNAVAILABLE` to the caller) leaves the outcome unknown: the
 * store may have kept the write and lost only its answer. The tracker remembers the events of such
 * writes until a write succeeds. When a later write then gets `CONFLICT`, it reads the store after
 * its durable seq; if the store holds exactly one of those writes (the same event ids at the same
 * seqs, and nothing after them), that write is adopted: its events become durable, go to the sinks
 * and subscribers in seq order, and `progress` moves to the new durable state (a command a sink or
 * subscriber issues on one of them is recorded after them, and written next). The write that found
 * it, and every command queued behind it, are refused with `STORE_UNAVAILABLE` (`context.reason`
 * `'adopted'`, with `adoptedFromSeq` / `adoptedToSeq`): they were checked against a state without
 * the adopted events, so they are not retried; the next command succeeds. Check `progress` before
 * retrying a refused command: its first attempt may be among the adopted events (a second
 * `startTask` is then `INVALID_TRANSITION`). Events of anyone else (other ids), or a store that
 * cannot be read (within 10 s), leave the `CONFLICT` as it was. `close()` makes the same check
 * when such a write is still remembered, so that the sinks get its events before they flush.
 *
 * A store that lost events it had acknowledged (a Redis failover to a replica they had not reached)
 * answers the next write with `CONFLICT` whose `context.storedSeq` is behind the durable seq. The
 * tracker keeps the last 1,000 events it made durable: when it
 * still has those from `storedSeq` on and the store's event at `storedSeq` has the kept one's id, it
 * appends the lost events again (same ids and seqs; the sinks and subscribers do not get them
 * again), logs a warning, and sends the write again, once: the command succeeds. Not for a store at
 * seq 0, nor when the check cannot be made or differs: the `CONFLICT` stays (see #restoreLost).
 *
 * A store that does not answer an append within `storeTimeoutMs` (60 s by default) is given up on:
 * that write and the commands queued behind it are refused with `STORE_UNAVAILABLE`
 * (`context.reason` `'timeout'`), and the next command writes again. The store may still complete
 * the append: it is a write of unknown outcome like the others. A late success is adopted at once
 * when the tracker is idle (nothing written, queued or accepted since, and `close()` not called),
 * else by the write that finds it stored; once `close()` has begun, only its own check can adopt it
 * (else it is logged as a warning: the sinks never get those events). A late refusal changes
 * nothing (a late `CONFLICT`, when a later write took its seqs first, is only logged). `acquire`
 * and `load` in `open()`, and `release` in `close()`, are bounded alike, so that `flush()` and
 * `close()` end whatever the store does.
 *
 * @example
 * await using tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p1', clusterName: 'prod' });
 * await tracker.startUpgrade();
 * await tracker.addTask('drain', 'Drain nodes', 'upgrade_step', { totalSteps: 3 });
 * await tracker.advanceTask('drain', { currentStep: 'node-1' });
 */
export class ProgressTracker implements AsyncDisposable {
  readonly #store: ProgressStore;
  readonly #ownsStore: boolean;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #sinkFlushTimeoutMs: number;
  readonly #storeTimeoutMs: number;
  /**
   * One timer for every append (not one per append: the sequential path is the hot one). Each
   * append re-arms it as it starts (refresh()), so it fires `storeTimeoutMs` after the start of the
   * latest append: if that append is still in flight then (#inFlight), it is given up on
   * (#storeTimedOut); otherwise the timer stays idle until the next append. It keeps the process
   * alive only while the write loop runs (so that even a hang that holds no socket or file ends in
   * a refusal, not in a process that exits with the command unsettled), never once it is idle.
   */
  #storeTimer: NodeJS.Timeout | undefined;
  /** The commands of the append in flight, until it settles or is given up on. */
  #inFlight: Commit[] | undefined;
  // Copy-on-write: add and remove replace these arrays, never mutate them, so #emit iterates the
  // ones there were when the event was emitted, whatever a sink or listener adds or removes meanwhile.
  #sinks: readonly ProgressSink[];
  #listeners: readonly ProgressListener[] = [];
  /** How many registrations each listener and each sink has (see #registration). */
  readonly #listenerCounts = new Map<ProgressListener, number>();
  readonly #sinkCounts = new Map<ProgressSink, number>();
  #live: UpgradeProgress;
  #durable: UpgradeProgress;
  #lastTime: number;
  #lastIso = '';
  #queue: Commit[] = [];
  #writing = false;
  #scheduled = false;
  /** flush() calls waiting for the events up to `seq` to be stored or refused. */
  #flushes: FlushWaiter[] = [];
  #closing: Promise<void> | undefined;
  /**
   * The events of the writes that failed with an unknown outcome since the last durable write,
   * oldest first; `undefined` when there are none (see #adoptOrFail). Each was written at the
   * durable seq, so the store holds at most one of them.
   */
  #unsure: ProgressEvent[][] | undefined;
  /**
   * The events made durable most recently, in seq order, for #restoreLost: a circular buffer of at
   * most KEPT_EVENTS, `#keptSize` of them from index `#keptStart`.
   */
  readonly #kept: ProgressEvent[] = [];
  #keptStart = 0;
  #keptSize = 0;

  private constructor(state: UpgradeProgress, store: ProgressStore, ownsStore: boolean, options: ProgressTrackerOptions) {
    // Both are copies: a store may hand back an object it keeps (or one parsed from JSON, whose
    // `tasks` has Object.prototype, where a task id like "constructor" would seem to exist already).
    this.#durable = cloneState(state);
    this.#live = cloneState(state);
    this.#store = store;
    this.#ownsStore = ownsStore;
    this.#logger = options.logger ? safeLogger(options.logger) : silentLogger;
    this.#now = options.now ?? Date.now;
    this.#sinkFlushTimeoutMs = options.sinkFlushTimeoutMs ?? DEFAULT_SINK_FLUSH_TIMEOUT_MS;
    this.#storeTimeoutMs = options.storeTimeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
    // A sink given twice is one sink, as with addSink: it gets each event once.
    this.#sinks = [...new Set(options.sinks ?? [])];
    for (const sink of this.#sinks) this.#sinkCounts.set(sink, 1);
    this.#lastTime = Date.parse(state.updatedAt) || 0;
  }

  /**
   * Opens the tracker of an upgrade: takes the store's writer lock, loads the stored state when the
   * store holds the upgrade, and otherwise records `upgrade.created`.
   *
   * @throws ProgressError `INVALID_ARGUMENT` for bad options, `CONFLICT` when another writer holds
   * the upgrade, `STORE_UNAVAILABLE` / `DATA_CORRUPTED` from the store.
   */
  static async open(input: ProgressTrackerOptions): Promise<ProgressTracker> {
    if (!input || typeof input !== 'object') throw new ProgressError('INVALID_ARGUMENT', '[@progress/core] ProgressTracker.open() needs an options object');
    // Each option read once, and a misspelt one refused: `sink: [...]` or `stores: ...` left out
    // without a word would lose every event to nobody, or to a MemoryStore gone with the process.
    const o = readOptions<ProgressTrackerOptions>(input, OPEN_OPTIONS, 'ProgressTracker.open() options');
    assertValidId(o.upgradeId, 'upgradeId');
    assertValidId(o.planId, 'planId');
    assertText(o.clusterName, 'clusterName', 1, 256);
    const options: ProgressTrackerOptions = { ...o, upgradeId: o.upgradeId, planId: o.planId, clusterName: o.clusterName };
    const metadata = toDetails(options.metadata, 'metadata');
    // Array.from: some() skips the hole of `[a, , b]`, which then reached #emit as a sink.
    if (options.sinks !== undefined && (!Array.isArray(options.sinks) || Array.from(options.sinks).some((s) => !isSink(s)))) {
      throw new ProgressError('INVALID_ARGUMENT', '[@progress/core] sinks must be an array of objects with a handle(event, state) method');
    }
    // (null too: it is not "no store", which would be a MemoryStore that loses every event with the process.)
    if (options.store !== undefined && (options.store === null || typeof options.store !== 'object')) {
      throw new ProgressError('INVALID_ARGUMENT', '[@progress/core] store must implement ProgressStore');
    }
    // Every method the tracker calls: one missing failed later, as if the store were down (load:
    // STORE_UNAVAILABLE from open; readEvents when it restores), or as a TypeError (info, in getSystemInfo).
    const missing = options.store && STORE_CALLS.find((name) => !hasMethod(options.store, name));
    if (missing) throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] store must implement ProgressStore: it has no ${missing}()`);
    if (options.logger !== undefined && !isLogger(options.logger)) {
      throw new ProgressError('INVALID_ARGUMENT', '[@progress/core] logger must have debug, info, warn and error methods (pino-compatible)');
    }
    if (options.sinkFlushTimeoutMs !== undefined) assertTimeout(options.sinkFlushTimeoutMs, 'sinkFlushTimeoutMs');
    if (options.storeTimeoutMs !== undefined) assertTimeout(options.storeTimeoutMs, 'storeTimeoutMs', true);
    if (options.now !== undefined && typeof options.now !== 'function') throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] now must be a function returning ms since the epoch, got ${describe(options.now)}`);
    const store = options.store ?? new MemoryStore();
    const logger = options.logger ? safeLogger(options.logger) : silentLogger;
    const { upgradeId } = options;
    // What the store throws that is not a ProgressError (a driver's error) is STORE_UNAVAILABLE,
    // as for every command.
    const storeFailed = (err: unknown): unknown =>
      isProgressError(err) ? err : new ProgressError('STORE_UNAVAILABLE', `[@progress/core] upgrade "${upgradeId}": the store could not open it`, { cause: err, context: { upgradeId } });
    // Every call to the store is bounded (storeTimeoutMs): a store that does not answer must not
    // hold open() for ever. What such a call does later is logged, and changes nothing here.
    const timeoutMs = options.storeTimeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
    const lateLog = (what: string) => (err: unknown) => logger.warn({ err, upgradeId, timeoutMs }, `the store answered ${what} after open() gave up on it`);
    const release = () => boundedCall(() => store.release?.(upgradeId), timeoutMs, upgradeId, 'release (the writer lock)').catch(() => {});
    try {
      await boundedCall(() => store.acquire?.(upgradeId), timeoutMs, upgradeId, 'acquire (the writer lock)', (err) => {
        lateLog('acquire')(err);
        // It took the lock after all, for a tracker that will never be: given back, or no one
        // could open the upgrade again.
        if (err === undefined) void release();
      });
    } catch (err) {
      throw storeFailed(err);
    }
    let created: ProgressEvent | undefined;
    let state: UpgradeProgress | undefined;
    try {
      state = await boundedCall(() => store.load(upgradeId), timeoutMs, upgradeId, 'load', lateLog('load'));
      if (!state) {
        const timestamp = isoTimestamp(clockTime(options.now ?? Date.now));
        created = event(upgradeId, 1, 'upgrade.created', timestamp, 'not_started', 'Upgrade created', {
          planId: options.planId,
          clusterName: options.clusterName,
          metadata,
        });
        state = foldEvent(undefined, created);
        try {
          // Given up on, it may still land: the next open() then loads it, as one created elsewhere.
          await boundedCall(() => store.append(upgradeId, [created!], 0, state!), timeoutMs, upgradeId, 'the append of seq 1 (upgrade.created)', lateLog('the append of upgrade.created'));
        } catch (err) {
          // Another process created it between our load and append: use theirs.
          if (!isProgressError(err, 'CONFLICT')) throw err;
          created = undefined;
          state = await boundedCall(() => store.load(upgradeId), timeoutMs, upgradeId, 'load', lateLog('load'));
          if (!state) throw err;
        }
      }
    } catch (err) {
      await release();
      throw storeFailed(err);
    }
    if (!created && (state.planId !== options.planId || state.clusterName !== options.clusterName)) {
      logger.warn(
        { upgradeId, storedPlanId: state.planId, planId: options.planId, storedClusterName: state.clusterName, clusterName: options.clusterName },
        'upgrade already stored with another planId or clusterName; the stored values are kept',
      );
    }
    let tracker: ProgressTracker;
    try {
      // A state the store hands back that is not one (a store's bug, a damaged record it did not
      // catch) is refused here, with the upgrade let go, rather than fail later in the reducer.
      if (!created) assertLoadedState(upgradeId, state);
      tracker = new ProgressTracker(state, store, options.store === undefined, options);
    } catch (err) {
      await release();
      throw isProgressError(err)
        ? err
        : new ProgressError('DATA_CORRUPTED', `[@progress/core] upgrade "${upgradeId}": the state the store loaded cannot be used (${err instanceof Error ? err.message : String(err)})`, { cause: err, context: { upgradeId } });
    }
    if (created) {
      tracker.#keep([created]);
      tracker.#emit(created);
    }
    return tracker;
  }

  /** The id of the upgrade this tracker writes. */
  get upgradeId(): string {
    return this.#live.upgradeId;
  }

  /** The state including every accepted command (some may not be durable yet). Read-only. */
  get progress(): Readonly<UpgradeProgress> {
    return this.#live;
  }

  /** The state at the last durable seq: what sinks and subscribers have seen. Read-only. */
  get durableProgress(): Readonly<UpgradeProgress> {
    return this.#durable;
  }

  /** True once `close()` has been called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  // ---------------------------------------------------------------- upgrade commands

  /** not_started -> in_progress, in the given phase. */
  startUpgrade(phase = 'Initialization'): Promise<ProgressEvent> {
    try {
      assertText(phase, 'phase', 1, 256);
      return this.#upgradeEvent('upgrade.started', 'in_progress', `Upgrade started: ${phase}`, { phase });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Records the phase the upgrade is in (while not_started, in_progress or paused). */
  setCurrentPhase(phase: string): Promise<ProgressEvent> {
    try {
      assertText(phase, 'phase', 1, 256);
      return this.#upgradeEvent('upgrade.phase_changed', this.#live.status, `Phase changed to ${phase}`, { phase });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** in_progress -> completed; the overall percentage becomes 100. */
  completeUpgrade(message = 'Upgrade completed'): Promise<ProgressEvent> {
    try {
      assertText(message, 'message', 0, MAX_TEXT);
      return this.#upgradeEvent('upgrade.completed', 'completed', message, {});
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * -> failed, with the error message (one longer than 4096 characters cut to them: see
   * failureDetails), or an Error: its message, and its name, own fields and cause in `details.error`.
   */
  failUpgrade(errorMessage: string | Error): Promise<ProgressEvent> {
    try {
      const details = failureOf(errorMessage);
      return this.#upgradeEvent('upgrade.failed', 'failed', `Upgrade failed: ${details.errorMessage}`, details);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** in_progress -> paused. Tasks keep their statuses. */
  pauseUpgrade(reason?: string): Promise<ProgressEvent> {
    try {
      if (reason !== undefined) assertText(reason, 'reason', 0, MAX_TEXT);
      return this.#upgradeEvent('upgrade.paused', 'paused', reason ? `Upgrade paused: ${reason}` : 'Upgrade paused', reason ? { reason } : {});
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** paused -> in_progress. */
  resumeUpgrade(message = 'Upgrade resumed'): Promise<ProgressEvent> {
    try {
      assertText(message, 'message', 0, MAX_TEXT);
      return this.#upgradeEvent('upgrade.resumed', 'in_progress', message, {});
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** -> cancelled. Tasks keep their statuses. */
  cancelUpgrade(reason?: string): Promise<ProgressEvent> {
    try {
      if (reason !== undefined) assertText(reason, 'reason', 0, MAX_TEXT);
      return this.#upgradeEvent('upgrade.cancelled', 'cancelled', reason ? `Upgrade cancelled: ${reason}` : 'Upgrade cancelled', reason ? { reason } : {});
    } catch (err) {
      return Promise.reject(err);
    }
  }

  // ---------------------------------------------------------------- task commands

  /**
   * Adds a task (not_started). Resolves with the task once durable.
   *
   * @throws ProgressError `DUPLICATE_TASK`, `TASK_NOT_FOUND` (unknown parent), `INVALID_ARGUMENT`.
   */
  async addTask(taskId: string, taskName: string, taskType: TaskType = 'upgrade_step', options?: AddTaskOptions): Promise<TaskProgress> {
    // A whole task as an object (addTasks takes them so, and the old module's callers had dicts):
    // say what to write instead, which the id rule alone did not.
    if (taskId !== null && typeof taskId === 'object') {
      throw new ProgressError(
        'INVALID_ARGUMENT',
        '[@progress/core] taskId an object is not valid: addTask takes (taskId, taskName, taskType?, options?), its fields in order; a task given as an object goes in addTasks([{ taskId, taskName, ... }])',
      );
    }
    // A string here is most likely a parent id given in the place of the options: refused, not a top-level task.
    const [task] = await this.addTasks([{ ...readOptions<AddTaskOptions>(options, ADD_TASK_OPTIONS, 'addTask options'), taskId, taskName, taskType }]);
    return task!;
  }

  /** Adds several tasks in one commit: all or none. A task may name a parent added earlier in the list. */
  async addTasks(specs: readonly TaskSpec[]): Promise<TaskProgress[]> {
    this.#assertOpen();
    if (!Array.isArray(specs) || specs.length === 0) throw new ProgressError('INVALID_ARGUMENT', '[@progress/core] addTasks needs a non-empty array of tasks');
    assertUpgradeTransition(this.#live, 'task.added');
    // Each spec's fields are read once, into a copy that is checked and recorded: a getter (or a
    // proxy) answering otherwise on a second read must not record what was not checked.
    const copies = Array.from(specs, (spec): TaskSpec => {
      if (!spec || typeof spec !== 'object') throw new ProgressError('INVALID_ARGUMENT', '[@progress/core] each task must be an object');
      const { taskId, taskName, taskType, parentTaskId, totalSteps, weight } = readOptions<TaskSpec>(spec, TASK_SPEC_KEYS, 'a task of addTasks');
      return { taskId: taskId!, taskName: taskName!, taskType, parentTaskId, totalSteps, weight };
    });
    const ids = new Set<string>();
    for (const spec of copies) {
      assertValidId(spec.taskId, 'taskId');
      assertText(spec.taskName, 'taskName', 1, 256);
      if (spec.taskType !== undefined) assertText(spec.taskType, 'taskType', 1, 128);
      if (spec.totalSteps !== undefined) assertCount(spec.totalSteps, 'totalSteps', true);
      if (spec.weight !== undefined) assertWeight(spec.weight);
      if (this.#live.tasks[spec.taskId] || ids.has(spec.taskId)) {
        throw new ProgressError('DUPLICATE_TASK', `[@progress/core] upgrade "${this.upgradeId}" already has a task "${spec.taskId}"`, {
          context: { upgradeId: this.upgradeId, taskId: spec.taskId },
        });
      }
      if (spec.parentTaskId !== undefined) {
        assertValidId(spec.parentTaskId, 'parentTaskId');
        if (!this.#live.tasks[spec.parentTaskId] && !ids.has(spec.parentTaskId)) throw this.#taskNotFound(spec.parentTaskId);
      }
      ids.add(spec.taskId);
    }
    // The clock is read once, before the first event is recorded: one that failed on a later read
    // would leave the events before it in the live state.
    const now = clockTime(this.#now);
    const events = copies.map((spec) =>
      this.#record(
        'task.added',
        'not_started',
        `Task added: ${spec.taskName}`,
        {
          taskId: spec.taskId,
          taskType: spec.taskType ?? 'upgrade_step',
          details: { taskName: spec.taskName, parentTaskId: spec.parentTaskId ?? null, totalSteps: spec.totalSteps ?? null, weight: spec.weight ?? 1 },
        },
        now,
      ),
    );
    await this.#commit(events, undefined);
    return copies.map((spec) => cloneTask(this.#durable.tasks[spec.taskId] ?? this.#live.tasks[spec.taskId]!));
  }

  /** not_started -> in_progress. */
  startTask(taskId: string, message = 'Task started'): Promise<ProgressEvent> {
    try {
      assertText(message, 'message', 0, MAX_TEXT);
      const task = this.#task(taskId, 'task.started');
      return this.#taskEvent(task, 'task.started', 'in_progress', message, { percentage: task.percentage });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Records a task's percentage (0..100). Starts a not_started task.
   *
   * @param details JSON-serializable data recorded on the event (an object nesting at most 100 levels). A number `completedSteps` and a
   * string `currentStep` in it move the task's steps as {@link advanceTask} does, and are checked
   * as it checks them.
   */
  updateTaskProgress(taskId: string, percentage: number, message?: string, details?: Record<string, unknown>): Promise<ProgressEvent> {
    try {
      assertPercentage(percentage);
      if (message !== undefined) assertText(message, 'message', 0, MAX_TEXT);
      const copy = toDetails(details);
      const task = this.#task(taskId, 'task.progress');
      // The reducer takes these two from any task.progress event.
      if (typeof copy.completedSteps === 'number') this.#assertSteps(task, copy.completedSteps, 'details.completedSteps');
      if (typeof copy.currentStep === 'string') assertText(copy.currentStep, 'details.currentStep', 0, 256);
      return this.#taskEvent(task, 'task.progress', 'in_progress', message ?? `Progress: ${percentage}%`, { percentage, details: copy });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Moves a task on by steps: `completedSteps` (default one more than before) out of `totalSteps`;
   * the percentage follows when the task has `totalSteps`. Starts a not_started task.
   */
  advanceTask(taskId: string, options?: AdvanceTaskOptions): Promise<ProgressEvent> {
    try {
      // Each option read once: what is checked is what is recorded (a getter may answer differently).
      const { currentStep, message: given, completedSteps: steps } = readOptions<AdvanceTaskOptions>(options, ADVANCE_OPTIONS, 'advanceTask options');
      if (currentStep !== undefined) assertText(currentStep, 'currentStep', 0, 256);
      if (given !== undefined) assertText(given, 'message', 0, MAX_TEXT);
      const task = this.#task(taskId, 'task.progress');
      const completedSteps = steps ?? task.completedSteps + 1;
      this.#assertSteps(task, completedSteps, 'completedSteps');
      const details: Record<string, unknown> = { completedSteps };
      if (currentStep !== undefined) details.currentStep = currentStep;
      // (A stored task may say 0 steps, from an import or an older writer: no percentage then, not 0/0.)
      const percentage = task.totalSteps !== null && task.totalSteps > 0 ? Math.round((completedSteps / task.totalSteps) * 10_000) / 100 : undefined;
      const label = task.totalSteps !== null ? `${completedSteps}/${task.totalSteps}` : String(completedSteps);
      const message = given ?? (currentStep ? `Step ${label}: ${currentStep}` : `Step ${label}`);
      return this.#taskEvent(task, 'task.progress', 'in_progress', message, { percentage, details });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** A whole `completedSteps` >= 0, and no more than the task's `totalSteps` when it has them. */
  #assertSteps(task: TaskProgress, completedSteps: number, name: string): void {
    assertCount(completedSteps, name);
    if (task.totalSteps !== null && completedSteps > task.totalSteps) {
      throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] task "${task.taskId}" has ${task.totalSteps} steps; ${name} ${completedSteps} is too many`, {
        context: { upgradeId: this.upgradeId, taskId: task.taskId, completedSteps, totalSteps: task.totalSteps },
      });
    }
  }

  /** not_started | in_progress -> completed (100%). */
  completeTask(taskId: string, message = 'Task completed'): Promise<ProgressEvent> {
    try {
      assertText(message, 'message', 0, MAX_TEXT);
      const task = this.#task(taskId, 'task.completed');
      return this.#taskEvent(task, 'task.completed', 'completed', message, { percentage: 100 });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * not_started | in_progress -> failed. The event's message is `Task failed: ${errorMessage}` (an
   * error message longer than 4096 characters cut to them: see failureDetails). An Error is taken
   * for its message, its name, own fields and cause going to `details.error`.
   */
  failTask(taskId: string, errorMessage: string | Error): Promise<ProgressEvent> {
    try {
      const details = failureOf(errorMessage);
      const task = this.#task(taskId, 'task.failed');
      return this.#taskEvent(task, 'task.failed', 'failed', `Task failed: ${details.errorMessage}`, { details });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** failed -> in_progress, `retryCount + 1`. */
  retryTask(taskId: string, message?: string): Promise<ProgressEvent> {
    try {
      if (message !== undefined) assertText(message, 'message', 0, MAX_TEXT);
      const task = this.#task(taskId, 'task.retried');
      return this.#taskEvent(task, 'task.retried', 'in_progress', message ?? `Task retried (attempt ${task.retryCount + 2})`, {});
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** not_started -> skipped (left out of every mean). */
  skipTask(taskId: string, reason?: string): Promise<ProgressEvent> {
    try {
      if (reason !== undefined) assertText(reason, 'reason', 0, MAX_TEXT);
      const task = this.#task(taskId, 'task.skipped');
      return this.#taskEvent(task, 'task.skipped', 'skipped', reason ? `Task skipped: ${reason}` : 'Task skipped', { details: reason ? { reason } : {} });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** not_started | in_progress -> cancelled (left out of every mean). */
  cancelTask(taskId: string, reason?: string): Promise<ProgressEvent> {
    try {
      if (reason !== undefined) assertText(reason, 'reason', 0, MAX_TEXT);
      const task = this.#task(taskId, 'task.cancelled');
      return this.#taskEvent(task, 'task.cancelled', 'cancelled', reason ? `Task cancelled: ${reason}` : 'Task cancelled', { details: reason ? { reason } : {} });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  // ---------------------------------------------------------------- queries

  /** The summary of DESIGN section 4, JSON-serializable. */
  getProgressSummary(): ProgressSummary {
    return summarize(this.#live, clockTime(this.#now));
  }

  /** A copy of a task with its last 5 events, or `undefined`. `INVALID_ARGUMENT` for a `taskId` that is not a string. */
  getTaskProgress(taskId: string): TaskProgress | undefined {
    // Refused as every task command refuses it: Object.hasOwn would look a number or an object up by
    // its string form, and throw a bare TypeError for an object without a prototype.
    if (typeof taskId !== 'string') assertValidId(taskId, 'taskId');
    const task = Object.hasOwn(this.#live.tasks, taskId) ? this.#live.tasks[taskId] : undefined;
    if (!task) return undefined;
    const copy = cloneTask(task);
    copy.recentEvents = copy.recentEvents.slice(-5);
    return copy;
  }

  /** A copy of the first in_progress task, or `undefined`. */
  getCurrentTask(): TaskProgress | undefined {
    const task = findCurrentTask(this.#live);
    return task && cloneTask(task);
  }

  /** The overall percentage (0..100). */
  calculateProgressPercentage(): number {
    return this.#live.overallPercentage;
  }

  /** When the upgrade should be done (ISO), from elapsed time and percentage; or `undefined`. */
  getEstimatedCompletionTime(): string | undefined {
    return estimateCompletion(this.#live, clockTime(this.#now));
  }

  /** The stored events after `afterSeq`, at most `limit` of them, for replay (delegates to the store). */
  readEvents(afterSeq = 0, limit?: number): AsyncIterable<ProgressEvent> {
    assertReadEvents('@progress/core', this.upgradeId, afterSeq, limit === undefined ? Infinity : limit);
    return this.#store.readEvents(this.upgradeId, afterSeq, limit);
  }

  /**
   * Calls `listener` with every durable event from now on, in seq order. A throwing listener is
   * logged and isolated. Returns the function that unsubscribes. (Un)subscribing while an event is
   * being handed out takes effect from the next event.
   *
   * @throws ProgressError `CLOSED` once `close()` has been called: no event is handed out after it,
   * so the listener would wait for ever (a program awaiting the upgrade's end so hung without a word).
   */
  subscribe(listener: ProgressListener): () => void {
    if (typeof listener !== 'function') throw new ProgressError('INVALID_ARGUMENT', '[@progress/core] subscribe needs a function');
    this.#assertOpen();
    if (!this.#listeners.includes(listener)) this.#listeners = [...this.#listeners, listener];
    return this.#registration(this.#listenerCounts, listener, () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    });
  }

  /**
   * Adds a sink after opening (the ws-server's `track()` does). Returns the function that removes it.
   * Adding or removing a sink while an event is being handed out takes effect from the next event.
   */
  addSink(sink: ProgressSink): () => void {
    if (!isSink(sink)) throw new ProgressError('INVALID_ARGUMENT', '[@progress/core] a sink needs a handle(event, state) method');
    if (!this.#sinks.includes(sink)) this.#sinks = [...this.#sinks, sink];
    return this.#registration(this.#sinkCounts, sink, () => {
      this.#sinks = this.#sinks.filter((s) => s !== sink);
    });
  }

  /**
   * Counts one more registration of `item` (a listener or sink is called once per event however
   * often it is registered) and returns its remover: each remover takes away its own registration
   * once, and `remove` runs when the last one goes. Two parts of a program that register the same
   * function each keep it until they remove it.
   */
  #registration<T>(counts: Map<T, number>, item: T, remove: () => void): () => void {
    counts.set(item, (counts.get(item) ?? 0) + 1);
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      const left = (counts.get(item) ?? 1) - 1;
      if (left > 0) return void counts.set(item, left);
      counts.delete(item);
      remove();
    };
  }

  /** The store and sinks, for diagnostics. */
  getSystemInfo(): TrackerSystemInfo {
    return {
      upgradeId: this.upgradeId,
      status: this.#live.status,
      lastSeq: this.#live.lastSeq,
      durableSeq: this.#durable.lastSeq,
      pendingEvents: this.#live.lastSeq - this.#durable.lastSeq,
      closed: this.closed,
      store: this.#store.info(),
      sinks: this.#sinks.map(sinkName),
      subscribers: this.#listeners.length,
    };
  }

  // ---------------------------------------------------------------- lifecycle

  /** Resolves once every accepted command is durable (or rejected) and every sink has flushed. */
  async flush(): Promise<void> {
    await this.#whenDurable();
    await Promise.all(
      this.#sinks.map(async (sink) => {
        let timer: NodeJS.Timeout | undefined;
        try {
          // Read once, inside the try: a getter that throws (a class instance whose client is gone)
          // is that sink's failure, not the rejection of flush() and close() (which then never
          // released the store's lock).
          const flush = sink.flush;
          if (typeof flush !== 'function') return;
          const timedOut = new Promise<'timeout'>((resolve) => {
            timer = setTimeout(resolve, this.#sinkFlushTimeoutMs, 'timeout');
          });
          if ((await Promise.race([Reflect.apply(flush, sink, []) as Promise<void> | undefined, timedOut])) === 'timeout') {
            this.#logger.warn({ upgradeId: this.upgradeId, sink: sinkName(sink), timeoutMs: this.#sinkFlushTimeoutMs }, 'sink flush timed out; going on without it');
          }
        } catch (err) {
          this.#logger.warn({ err, upgradeId: this.upgradeId, sink: sinkName(sink) }, 'sink flush failed');
        } finally {
          clearTimeout(timer);
        }
      }),
    );
  }

  /**
   * Stops taking commands (`CLOSED`), waits for pending writes (and adopts a write of unknown
   * outcome the store kept: see the class notes), flushes the sinks and releases the store's lock
   * (waiting for each store call at most `storeTimeoutMs`, but for the `readEvents` of that check at
   * most 10 s whatever `storeTimeoutMs` is, and for each sink `sinkFlushTimeoutMs`).
   * Sinks and a store passed in are not closed (they may be shared); the default MemoryStore is.
   * Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#whenDurable();
      // A write of unknown outcome the store kept: its events go to the sinks before they flush.
      await this.#adoptBeforeClose();
      // No append starts from here on.
      clearTimeout(this.#storeTimer);
      this.#storeTimer = undefined;
      // Nor a write of lost events (#restoreLost): the kept ones go (a closed tracker is still read).
      this.#kept.length = 0;
      this.#keptStart = 0;
      this.#keptSize = 0;
      await this.flush();
      this.#listeners = [];
      this.#listenerCounts.clear();
      try {
        await boundedCall(() => this.#store.release?.(this.upgradeId), this.#storeTimeoutMs, this.upgradeId, 'release (the writer lock)');
      } catch (err) {
        const timedOut = isProgressError(err, 'STORE_UNAVAILABLE') && err.context.reason === 'timeout';
        this.#logger.warn({ err, upgradeId: this.upgradeId }, timedOut ? 'store release did not answer in time; closed without it' : 'store release failed');
      }
      if (this.#ownsStore) await this.#store.close();
    })();
    return this.#closing;
  }

  /** `await using tracker = ...` closes it. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---------------------------------------------------------------- internals

  #assertOpen(): void {
    if (this.#closing) throw new ProgressError('CLOSED', `[@progress/core] the tracker of upgrade "${this.upgradeId}" is closed`, { context: { upgradeId: this.upgradeId } });
  }

  #taskNotFound(taskId: string): ProgressError {
    return new ProgressError('TASK_NOT_FOUND', `[@progress/core] upgrade "${this.upgradeId}" has no task "${taskId}"`, {
      context: { upgradeId: this.upgradeId, taskId },
    });
  }

  #task(taskId: string, type: EventType): TaskProgress {
    this.#assertOpen();
    // A string that names a task is a valid id (it was checked when the task was added): the id
    // pattern is only tested for the error, off the hot path.
    const tasks = this.#live.tasks;
    const task = typeof taskId === 'string' && Object.hasOwn(tasks, taskId) ? tasks[taskId] : undefined;
    if (!task) {
      assertValidId(taskId, 'taskId');
      throw this.#taskNotFound(taskId);
    }
    assertTaskTransition(this.#live, task, type);
    return task;
  }

  #upgradeEvent(type: EventType, status: ProgressStatus, message: string, details: Record<string, unknown>): Promise<ProgressEvent> {
    this.#assertOpen();
    assertUpgradeTransition(this.#live, type);
    const ev = this.#record(type, status, message, { details });
    return this.#commit([ev], ev);
  }

  #taskEvent(
    task: TaskProgress,
    type: EventType,
    status: ProgressStatus,
    message: string,
    extra: { percentage?: number | undefined; details?: Record<string, unknown> },
  ): Promise<ProgressEvent> {
    const ev = this.#record(type, status, message, { taskId: task.taskId, taskType: task.taskType, percentage: extra.percentage, details: extra.details ?? {} });
    return this.#commit([ev], ev);
  }

  /** Makes the next event and folds it into the live state. Validation is done by then. */
  #record(
    type: EventType,
    status: ProgressStatus,
    message: string,
    fields: { taskId?: string; taskType?: TaskType; percentage?: number | undefined; details: Record<string, unknown> },
    now = clockTime(this.#now),
  ): ProgressEvent {
    const time = Math.max(now, this.#lastTime);
    // Events within the same millisecond share the string.
    if (time !== this.#lastTime || this.#lastIso === '') this.#lastIso = isoTimestamp(time);
    this.#lastTime = time;
    const ev = event(this.upgradeId, this.#live.lastSeq + 1, type, this.#lastIso, status, message, fields.details, fields);
    foldEvent(this.#live, ev);
    return ev;
  }

  /** Queues `events` for the next write; resolves with `value` once they are durable. */
  #commit<T>(events: ProgressEvent[], value: T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ events, resolve: resolve as (value: unknown) => void, reject, value });
      if (!this.#writing && !this.#scheduled) {
        this.#scheduled = true;
        // Wait one microtask, so that the commands issued in the same tick go out in one write. (A
        // resolved promise's reaction rather than queueMicrotask, which wraps every call in an
        // AsyncResource: measurable on the one-awaited-call-at-a-time path.)
        void RESOLVED.then(this.#startDrain);
      }
    });
  }

  readonly #startDrain = (): void => {
    this.#scheduled = false;
    void this.#drain();
  };

  async #drain(): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    /** The first command of the write that wrote lost events again (#restoreLost) and is retried: once per write. */
    let restoredFor: Commit | undefined;
    while (this.#queue.length > 0) {
      const batch = this.#queue;
      this.#queue = [];
      // A loop, not flatMap: V8's flatMap took ~17 us for a burst of 100 one-event commands, ~20x the loop.
      let events = batch[0]!.events;
      if (batch.length > 1) {
        events = [];
        for (const c of batch) for (const ev of c.events) events.push(ev);
      }
      const expectedSeq = this.#durable.lastSeq;
      // Watched by the store timer: an append still in flight storeTimeoutMs after it started is
      // given up on (#storeTimedOut), and this loop then waits on it no more.
      this.#inFlight = batch;
      this.#armStoreTimer();
      try {
        // Every queued event is in this batch, so the live state is the state after them.
        await this.#store.append(this.upgradeId, events, expectedSeq, this.#live);
      } catch (err) {
        // Given up on: refused already, and another write loop may be running since.
        if (this.#inFlight !== batch) return this.#settledLate(events, err);
        this.#inFlight = undefined;
        let error = err;
        // The store is behind the durable seq: it lost acknowledged events (a failover to a replica
        // they had not reached). Written again when this tracker still has them, then this write is
        // retried, once, with the commands queued meanwhile (recorded on top of it).
        const storedSeq = isProgressError(err, 'CONFLICT') ? err.context.storedSeq : undefined;
        if (typeof storedSeq === 'number' && batch[0] !== restoredFor && Number.isSafeInteger(storedSeq) && storedSeq > 0 && storedSeq < expectedSeq) {
          restoredFor = batch[0];
          const restored = await this.#restoreLost(storedSeq);
          if (restored === true) {
            this.#queue = batch.concat(this.#queue);
            continue;
          }
          if (restored !== false) {
            error = restored.error;
            // Not stored, nor the write behind it (never sent): refused, nothing to remember.
            if (!isProgressError(error, 'CONFLICT')) {
              this.#rollBack(batch, this.#storeError(error, events));
              continue;
            }
          }
        }
        // The store is ahead of us after a write whose outcome was unknown: it may hold that write.
        if (this.#unsure !== undefined && isProgressError(error, 'CONFLICT')) await this.#adoptOrFail(batch, error, events);
        else this.#fail(batch, error, events);
        continue;
      }
      if (this.#inFlight !== batch) return this.#settledLate(events, undefined);
      this.#inFlight = undefined;
      // Stored: no earlier unknown write can be in the store at these seqs.
      if (this.#unsure !== undefined) this.#unsure = undefined;
      this.#keep(events);
      try {
        for (const ev of events) {
          foldEvent(this.#durable, ev);
          this.#emit(ev);
        }
      } catch (err) {
        // Cannot happen while both states fold the same events from copies of one state. Should it,
        // the loop must not die with #writing set (every later command, flush() and close() would
        // wait for ever). The events are stored, so their commands resolve. The durable state stops
        // before the one that failed: the commands queued since were recorded on top of events it
        // does not hold, and are refused; the next write gets CONFLICT (the store is ahead), until
        // the tracker is reopened.
        this.#logger.error({ err, upgradeId: this.upgradeId, lastSeq: this.#durable.lastSeq }, 'stored events could not be folded into the durable state; reopen the tracker');
        const behind = this.#queue;
        this.#queue = [];
        this.#live = cloneState(this.#durable);
        const error = new ProgressError('DATA_CORRUPTED', `[@progress/core] upgrade "${this.upgradeId}": stored events after seq ${this.#durable.lastSeq} could not be folded into the tracker's state; reopen the tracker`, {
          cause: err,
          context: { upgradeId: this.upgradeId, lastSeq: this.#durable.lastSeq },
        });
        for (const c of behind) c.reject(error);
      }
      for (const c of batch) c.resolve(c.value);
      this.#settleFlushes();
    }
    this.#writing = false;
    // Idle: the timer may fire once more (and find nothing in flight), but holds the process no longer.
    this.#storeTimer?.unref();
    this.#settleFlushes();
  }

  /** Re-arms the store timer for the append starting now (creates it the first time). */
  #armStoreTimer(): void {
    const timer = this.#storeTimer;
    if (timer !== undefined) timer.refresh().ref();
    else if (this.#storeTimeoutMs !== Infinity) this.#storeTimer = setTimeout(this.#storeTimedOut, this.#storeTimeoutMs);
  }

  /**
   * The store timer fired: `storeTimeoutMs` have passed since the latest append started. When it
   * is still in flight, it is given up on: refused, with the commands queued behind it, as a write
   * of unknown outcome (the store may complete it yet: remembered for adoption), and the write loop
   * is let go, so that the next command writes again. The append's own answer, whenever it comes,
   * goes to #settledLate.
   */
  readonly #storeTimedOut = (): void => {
    const batch = this.#inFlight;
    if (batch === undefined) return;
    // Given up on after the I/O of this turn of the loop: Node runs the due timers before it reads
    // what came in, so after the process was blocked past the bound (an execSync, a big parse), an
    // answer already received would otherwise count as none, and be refused (then adopted).
    setImmediate(() => {
      if (this.#inFlight === batch) this.#giveUp(batch);
    });
  };

  /** Refuses the append in flight, `batch`, after the store timer fired (see #storeTimedOut). */
  #giveUp(batch: Commit[]): void {
    this.#inFlight = undefined;
    const events = batch.length === 1 ? batch[0]!.events : batch.flatMap((c) => c.events);
    const fromSeq = events[0]!.seq;
    const toSeq = events[events.length - 1]!.seq;
    const timeoutMs = this.#storeTimeoutMs;
    const error = new ProgressError(
      'STORE_UNAVAILABLE',
      `[@progress/core] upgrade "${this.upgradeId}": the store did not answer the append of seq ${fromSeq}..${toSeq} within ${timeoutMs} ms (storeTimeoutMs); not acknowledged, though the store may still complete it`,
      { context: { upgradeId: this.upgradeId, reason: 'timeout', timeoutMs, fromSeq, toSeq } },
    );
    this.#fail(batch, error, events);
    this.#writing = false;
    this.#settleFlushes();
  }

  /**
   * The answer of an append given up on (#storeTimedOut), come after all. Refused (CONFLICT when a
   * later write took its seqs, or any failure), it changes nothing: its commands were refused
   * already. Stored, it is adopted here when the tracker is idle (nothing written, queued or
   * accepted since, and still at the seq it was written at, so the store holds it right after the
   * durable state; not while closing): the store acknowledged it, so no read is needed, and the next
   * command is not refused for it. Otherwise the next write finds it (CONFLICT) and adopts it; once
   * close() has begun, only close()'s own check can, so such a success is a warning.
   */
  #settledLate(events: ProgressEvent[], err: unknown): void {
    const idle =
      err === undefined && this.#closing === undefined && !this.#writing && this.#queue.length === 0 && this.#live.lastSeq === this.#durable.lastSeq && this.#durable.lastSeq === events[0]!.seq - 1;
    if (!idle) {
      const fromSeq = events[0]!.seq;
      const toSeq = events[events.length - 1]!.seq;
      const fields = { err, upgradeId: this.upgradeId, fromSeq, toSeq, stored: err === undefined };
      // Stored and not adopted yet: remembered again, in case the 10,000-event bound let it go (it sat
      // between other writes of unknown outcome), so that the check that finds it knows it as ours.
      if (err === undefined && this.#durable.lastSeq < toSeq && !this.#unsure?.some((w) => w[0]?.eventId === events[0]!.eventId)) this.#rememberUnsure(events);
      const what = 'an append given up on after storeTimeoutMs was answered late';
      // Said as it is: an operator reads this to know whether the sinks got these events.
      if (err !== undefined) this.#logger.info(fields, `${what}: refused; nothing changes (its commands were refused already)`);
      // Stored right after seq fromSeq - 1: the durable state got past it only by adopting it.
      else if (this.#durable.lastSeq >= toSeq) this.#logger.info(fields, `${what}: stored, and adopted already (a check of the store found it)`);
      // Not adopted here once closing (the sinks may be flushing already): only close()'s own check
      // of the store can still find it, and once that is done the sinks never get these events.
      else if (this.#closing !== undefined) this.#logger.warn(fields, `${what}: stored once close() had begun, so adopted only if the check close() makes finds it; else the store holds its events and the sinks and subscribers never get them`);
      else this.#logger.info(fields, `${what}: stored; adopted by the write under way or queued, which finds it stored`);
      return;
    }
    // (#adopt logs it.)
    this.#adopt(events);
    this.#settleFlushes();
  }

  /**
   * Resolves the flush() calls whose events are now stored, or refused: after a failed write the
   * live state went back to the durable one, so no accepted event is left waiting. Run after each
   * write, so that a flush() issued while commands keep coming resolves once the events accepted
   * before it are durable, not when the stream of commands stops.
   */
  #settleFlushes(): void {
    if (this.#flushes.length === 0) return;
    const stored = this.#durable.lastSeq;
    const settled = this.#live.lastSeq <= stored;
    const waiting: FlushWaiter[] = [];
    for (const f of this.#flushes) {
      if (settled || f.seq <= stored) f.done();
      else waiting.push(f);
    }
    this.#flushes = waiting;
  }

  /** A failed write: reject it and everything queued behind it, and go back to the durable state. */
  #fail(batch: Commit[], err: unknown, events: ProgressEvent[]): void {
    const known = isProgressError(err) && (err.code === 'CONFLICT' || err.code === 'CLOSED' || err.code === 'DATA_CORRUPTED' || err.code === 'INVALID_ARGUMENT');
    const error = this.#storeError(err, events);
    this.#logger.error({ err, upgradeId: this.upgradeId, fromSeq: events[0]!.seq, toSeq: events[events.length - 1]!.seq }, 'append failed; events not acknowledged');
    // These codes say that nothing was stored; anything else (a timeout, a lost connection) may have
    // come after the store kept the write: remembered, so that the next CONFLICT can tell.
    if (!known) this.#rememberUnsure(events);
    this.#rollBack(batch, error);
  }

  /**
   * What the commands of `events` are refused with for `err` of the store's append: `CONFLICT`,
   * `CLOSED`, `DATA_CORRUPTED`, `INVALID_ARGUMENT` and `STORE_UNAVAILABLE` as they are, anything
   * else `STORE_UNAVAILABLE`.
   */
  #storeError(err: unknown, events: ProgressEvent[]): unknown {
    if (isProgressError(err) && (err.code === 'CONFLICT' || err.code === 'CLOSED' || err.code === 'DATA_CORRUPTED' || err.code === 'INVALID_ARGUMENT' || err.code === 'STORE_UNAVAILABLE')) return err;
    return new ProgressError('STORE_UNAVAILABLE', `[@progress/core] upgrade "${this.upgradeId}": the store could not append seq ${events[0]!.seq}..${events[events.length - 1]!.seq}`, {
      cause: err,
      context: { upgradeId: this.upgradeId },
    });
  }

  /**
   * Keeps `events`, just made durable, for #restoreLost (see #kept): the last KEPT_EVENTS. On the
   * path of every write: no allocation but the buffer's slots.
   */
  #keep(events: readonly ProgressEvent[]): void {
    const kept = this.#kept;
    let start = this.#keptStart;
    let size = this.#keptSize;
    for (const ev of events) {
      let i = start + size;
      if (i >= KEPT_EVENTS) i -= KEPT_EVENTS;
      kept[i] = ev;
      if (size < KEPT_EVENTS) size++;
      else if (++start === KEPT_EVENTS) start = 0;
    }
    this.#keptStart = start;
    this.#keptSize = size;
  }

  /**
   * The kept events from seq `from` to the durable seq, when the tracker still keeps every one of
   * them; otherwise undefined.
   */
  #keptFrom(from: number): ProgressEvent[] | undefined {
    const to = this.#durable.lastSeq;
    const count = to - from + 1;
    if (count > this.#keptSize) return undefined;
    let i = this.#keptStart + this.#keptSize - count;
    if (i >= KEPT_EVENTS) i -= KEPT_EVENTS;
    const out: ProgressEvent[] = [];
    for (let seq = from; seq <= to; seq++) {
      const ev = this.#kept[i];
      if (ev?.seq !== seq) return undefined;
      out.push(ev);
      if (++i === KEPT_EVENTS) i = 0;
    }
    return out;
  }

  /**
   * A write got `CONFLICT` from a store at seq `storedSeq`, behind the durable seq (0 < storedSeq <
   * durable): the store lost events it had acknowledged (a failover to a replica they had not
   * reached yet). When the tracker still keeps every event from `storedSeq` (see #keep) and the
   * store's event at `storedSeq` is the kept one (the same history: not another writer's, not an
   * upgrade deleted and created again), writes the kept events after it again, as they were (same
   * ids and seqs, expected seq `storedSeq`, the durable state), without handing them to the sinks
   * and subscribers again (they had them). Resolves with true when they are stored again; false when
   * they are not written (the CONFLICT stays); `{ error }` when their append failed.
   *
   * None of the writes of unknown outcome (#unsure) can be stored after the durable seq of a store
   * behind it; they are kept as they are, in case one lands yet (a driver re-sending it), which the
   * retried write then finds. The append here has an unknown outcome too when it fails so (a
   * timeout, a lost connection), but its events are durable for the tracker already: stored late,
   * they make the store what the tracker holds it to be; not stored, the next write finds the store
   * behind again and writes them again. Never rejects.
   */
  async #restoreLost(storedSeq: number): Promise<boolean | { error: unknown }> {
    const to = this.#durable.lastSeq;
    const fields = { upgradeId: this.upgradeId, storedSeq, lastSeq: to };
    const kept = this.#keptFrom(storedSeq);
    if (kept === undefined) {
      this.#logger.warn(
        fields,
        `the store is behind the events this tracker made durable (it lost acknowledged events: a failover?), and the tracker does not keep them all (it keeps the last ${KEPT_EVENTS} events it made durable itself since it was opened): not written again (CONFLICT)`,
      );
      return false;
    }
    let found: ProgressEvent[];
    try {
      found = await this.#readTail(storedSeq - 1, 1);
    } catch (err) {
      this.#logger.warn({ err, ...fields }, 'the store is behind the events this tracker made durable, and could not be read to compare; not written again (CONFLICT)');
      return false;
    }
    // (`?.`: a store's bug may hand back something that is not an event; taken for another one.)
    const at = found[0] as ProgressEvent | null | undefined;
    if (found.length !== 1 || at?.seq !== storedSeq || at.eventId !== kept[0]!.eventId) {
      this.#logger.warn({ ...fields, storedEventId: at?.eventId, eventId: kept[0]!.eventId }, 'the store is behind the events this tracker made durable, with another history (another writer, or the upgrade created again); not written again (CONFLICT)');
      return false;
    }
    const lost = kept.slice(1);
    try {
      await boundedCall(
        () => this.#store.append(this.upgradeId, lost, storedSeq, this.#durable),
        this.#storeTimeoutMs,
        this.upgradeId,
        `the append of seq ${storedSeq + 1}..${to} (acknowledged events the store had lost, written again)`,
        (err) => this.#logger.info({ err, ...fields, stored: err === undefined }, 'the append of acknowledged events written again, given up on after storeTimeoutMs, was answered late'),
      );
    } catch (err) {
      this.#logger.error({ err, ...fields, fromSeq: storedSeq + 1, toSeq: to }, 'the store had lost acknowledged events (a failover?); writing them again failed');
      return { error: err };
    }
    this.#logger.warn({ upgradeId: this.upgradeId, count: lost.length, fromSeq: storedSeq + 1, toSeq: to }, 'the store had lost acknowledged events (a failover?); written again');
    return true;
  }

  /** Rejects `batch` with `error` and everything queued behind it, and goes back to the durable state. */
  #rollBack(batch: Commit[], error: unknown): void {
    const behind = this.#queue;
    this.#queue = [];
    this.#live = cloneState(this.#durable);
    this.#refuse(batch, behind, error);
  }

  /** Rejects `batch` with `error`, and `behind` (the commands queued behind it) for its sake. */
  #refuse(batch: Commit[], behind: Commit[], error: unknown): void {
    for (const c of batch) c.reject(error);
    if (behind.length === 0) return;
    // The tracker's own reasons (`'timeout'`, `'adopted'`, with their seqs) go to the commands
    // queued behind too: a caller decides on a retry by them (after an adoption, check `progress`).
    const why = isProgressError(error, 'STORE_UNAVAILABLE') && error.context.reason !== undefined ? error.context : undefined;
    for (const c of behind) {
      c.reject(
        new ProgressError('STORE_UNAVAILABLE', `[@progress/core] upgrade "${this.upgradeId}": an earlier event could not be stored, so this one was not either`, {
          cause: error,
          context: { ...why, upgradeId: this.upgradeId },
        }),
      );
    }
  }

  /** Keeps the events of a write whose outcome is unknown, within MAX_UNSURE_EVENTS. */
  #rememberUnsure(events: ProgressEvent[]): void {
    const unsure = (this.#unsure ??= []);
    unsure.push(events);
    let count = 0;
    for (const w of unsure) count += w.length;
    // Over the bound, the writes in between go first. The store keeps at most one of them, the
    // first to reach it: most likely the first (in flight when the store went away: its answer
    // lost, or given up on and landed late; an offline queue sends them in order) or the latest (in
    // flight when it came back); those in between failed while it was away. Forgetting the first
    // would leave a CONFLICT on every write once the store is back, until the tracker is reopened.
    while (count > MAX_UNSURE_EVENTS && unsure.length > 2) count -= unsure.splice(1, 1)[0]!.length;
    if (count > MAX_UNSURE_EVENTS && unsure.length > 1) unsure.shift();
  }

  /**
   * A write got `CONFLICT` while writes of unknown outcome are remembered: the store is ahead of the
   * durable seq, by another writer's events or by one of those writes, stored after all. When it is
   * one of ours (#findStored), adopts it (#adopt), and refuses this write (recorded on a state
   * without those events, so not retried) and everything queued behind it, leaving the tracker to
   * go on from the new durable seq. Anything else is the CONFLICT it was. Never throws: #drain must
   * go on.
   */
  async #adoptOrFail(batch: Commit[], conflict: unknown, events: ProgressEvent[]): Promise<void> {
    const from = this.#durable.lastSeq;
    const found = await this.#findStored();
    if (!Array.isArray(found)) return this.#fail(batch, found ?? conflict, events);
    // Taken out before the adopted events go out (#adopt moves the live state to them): a sink or
    // subscriber that reacts to one with a command records it on top of them, and this loop writes
    // it next, as after any write; it is not refused with these, recorded on a state without them.
    const behind = this.#queue;
    this.#queue = [];
    const failed = this.#adopt(found);
    if (failed) return this.#rollBack([...batch, ...behind], failed);
    const to = this.#durable.lastSeq;
    this.#refuse(
      batch,
      behind,
      new ProgressError(
        'STORE_UNAVAILABLE',
        `[@progress/core] upgrade "${this.upgradeId}": an earlier append reported as failed had been stored after all (seq ${from + 1}..${to}); its events are now durable, and this command was not stored: check progress, and retry it if it is still wanted`,
        { cause: conflict, context: { upgradeId: this.upgradeId, reason: 'adopted', adoptedFromSeq: from + 1, adoptedToSeq: to } },
      ),
    );
  }

  /**
   * On close, with writes of unknown outcome remembered and nothing else left to write: adopts the
   * one the store holds, if any, so that the sinks get its events before they are flushed.
   */
  async #adoptBeforeClose(): Promise<void> {
    if (this.#unsure === undefined || this.#writing || this.#queue.length > 0) return;
    // Holds the write loop while the store is read (no command is taken once closing).
    this.#writing = true;
    try {
      const found = await this.#findStored();
      if (Array.isArray(found)) this.#adopt(found);
    } finally {
      this.#writing = false;
      this.#settleFlushes();
    }
  }

  /**
   * Reads the store after the durable seq for one of the remembered writes of unknown outcome.
   * Resolves with its events as the store holds them when it holds exactly one of those writes
   * (the same event ids at the same seqs, nothing after them: a store appends all or nothing, so a
   * part of a write is someone else's) and they fold onto the durable state. Otherwise with
   * `undefined` when the store holds something else (the writes are forgotten: none of them can
   * be stored after the durable seq), or nothing yet, or the first part of one of them (kept: it
   * may still be on its way, see below); with `undefined` too, logged and the writes kept for the
   * next time, when the store cannot be read; with a `DATA_CORRUPTED` error, the writes kept, when
   * the events read back cannot be folded. Never rejects.
   */
  async #findStored(): Promise<ProgressEvent[] | ProgressError | undefined> {
    const unsure = this.#unsure!;
    const from = this.#durable.lastSeq;
    let stored: ProgressEvent[];
    let match: ProgressEvent[] | undefined;
    try {
      let longest = 0;
      for (const w of unsure) longest = Math.max(longest, w.length);
      stored = await this.#readTail(from, longest + 1);
      match = unsure.find((w) => w.length === stored.length && w.every((ev, i) => stored[i]?.eventId === ev.eventId && stored[i]?.seq === ev.seq));
    } catch (err) {
      this.#logger.warn({ err, upgradeId: this.upgradeId, lastSeq: from }, 'the store could not be read to check for an earlier write of unknown outcome; not adopted (a CONFLICT stays one)');
      return undefined;
    }
    if (match === undefined) {
      // Nothing after the durable seq yet, or only the first events of one of those writes: it may
      // still be on its way (a store refuses at the seq its queued writes will reach, as JsonFileStore
      // does, before they can be read): kept, so that the next check (a write, close()) finds it
      // once it lands. Anything else cannot be one of them: forgotten.
      const onItsWay = unsure.some((w) => stored.length < w.length && stored.every((ev, i) => ev?.eventId === w[i]!.eventId && ev?.seq === w[i]!.seq));
      if (!onItsWay) this.#unsure = undefined;
      return undefined;
    }
    try {
      // Folded into a copy first: events the tracker cannot fold leave the durable state as it was.
      const check = cloneState(this.#durable);
      for (const ev of stored) foldEvent(check, ev);
    } catch (err) {
      this.#logger.error({ err, upgradeId: this.upgradeId, lastSeq: from }, 'an earlier write found in the store cannot be folded; not adopted');
      return new ProgressError('DATA_CORRUPTED', `[@progress/core] upgrade "${this.upgradeId}": the store holds an earlier write of this tracker (seq ${from + 1}..${from + stored.length}) whose events it read back cannot be folded; the next write checks again (reopen the tracker if this persists)`, {
        cause: err,
        context: { upgradeId: this.upgradeId, lastSeq: from },
      });
    }
    return stored;
  }

  /**
   * Makes `stored` (found by #findStored) durable: moves the live state to the state after them,
   * folds them into the durable state and hands them to the sinks and subscribers, in order (the
   * caller has taken the queued commands out). Returns the error to refuse commands with when a
   * fold fails after all.
   */
  #adopt(stored: ProgressEvent[]): ProgressError | undefined {
    this.#unsure = undefined;
    const from = this.#durable.lastSeq;
    try {
      // The live state first, as a write's events are in it before they go out: a command issued
      // by a sink or subscriber on an adopted event is checked against, and follows, all of them.
      const live = cloneState(this.#durable);
      for (const ev of stored) foldEvent(live, ev);
      this.#live = live;
      this.#keep(stored);
      for (const ev of stored) {
        foldEvent(this.#durable, ev);
        this.#emit(ev);
      }
    } catch (err) {
      // Cannot happen: a copy folded them. Should it, the durable state stops before the event
      // that failed, and the write loop goes on (as after a failed fold of a write of ours).
      this.#live = cloneState(this.#durable);
      this.#logger.error({ err, upgradeId: this.upgradeId, lastSeq: this.#durable.lastSeq }, 'adopted events could not be folded into the durable state; reopen the tracker');
      return new ProgressError('DATA_CORRUPTED', `[@progress/core] upgrade "${this.upgradeId}": stored events after seq ${this.#durable.lastSeq} could not be folded into the tracker's state; reopen the tracker`, {
        cause: err,
        context: { upgradeId: this.upgradeId, lastSeq: this.#durable.lastSeq },
      });
    }
    this.#logger.warn({ upgradeId: this.upgradeId, fromSeq: from + 1, toSeq: this.#durable.lastSeq }, 'an append reported as failed had been stored; its events are adopted');
    return undefined;
  }

  /** The stored events after `afterSeq`, at most `limit`, or a rejection when the store does not answer in time. */
  async #readTail(afterSeq: number, limit: number): Promise<ProgressEvent[]> {
    const iterator = this.#store.readEvents(this.upgradeId, afterSeq, limit)[Symbol.asyncIterator]();
    /** Ends the store's read (its cursor, its connection's command) when it is not read to its end; never throws. */
    const stop = (): void => {
      try {
        void Promise.resolve(iterator.return?.()).catch(() => {});
      } catch {
        // A store's return() that throws: nothing more to end.
      }
    };
    const read = (async () => {
      const out: ProgressEvent[] = [];
      while (out.length < limit) {
        const next = await iterator.next();
        if (next.done) return out;
        out.push(next.value);
      }
      stop();
      return out;
    })();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Given up on: the read is ended too, rather than left holding what the store holds for it.
        stop();
        reject(new ProgressError('STORE_UNAVAILABLE', `[@progress/core] upgrade "${this.upgradeId}": the store did not answer readEvents within ${ADOPT_READ_TIMEOUT_MS} ms`, { context: { upgradeId: this.upgradeId } }));
      }, ADOPT_READ_TIMEOUT_MS);
    });
    try {
      return await Promise.race([read, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  #emit(ev: ProgressEvent): void {
    const state = this.#durable;
    // Both lists as they are when the event starts going out (each is replaced, never changed, on
    // a (un)registration): a sink that (un)subscribes a listener acts from the next event, as
    // documented, rather than make it miss this one or get the event it was subscribed on.
    const sinks = this.#sinks;
    const listeners = this.#listeners;
    for (const sink of sinks) {
      try {
        const result = sink.handle(ev, state);
        if (result && typeof (result as Promise<void>).then === 'function') {
          (result as Promise<void>).then(undefined, (err: unknown) => this.#sinkFailed(sink, ev, err));
        }
      } catch (err) {
        this.#sinkFailed(sink, ev, err);
      }
    }
    for (const listener of listeners) {
      try {
        // An async listener's rejection is caught as a throw is: it must not end the process.
        const result: unknown = listener(ev, state);
        if (result && typeof (result as Promise<void>).then === 'function') {
          (result as Promise<void>).then(undefined, (err: unknown) => this.#logger.warn({ err, upgradeId: this.upgradeId, seq: ev.seq }, 'subscriber threw'));
        }
      } catch (err) {
        this.#logger.warn({ err, upgradeId: this.upgradeId, seq: ev.seq }, 'subscriber threw');
      }
    }
  }

  #sinkFailed(sink: ProgressSink, ev: ProgressEvent, err: unknown): void {
    this.#logger.warn({ err, upgradeId: this.upgradeId, seq: ev.seq, type: ev.type, sink: sinkName(sink) }, 'sink failed to handle an event');
  }

  /** Resolves once every event accepted so far is stored or refused. */
  #whenDurable(): Promise<void> {
    const seq = this.#live.lastSeq;
    if (seq <= this.#durable.lastSeq) return Promise.resolve();
    return new Promise((resolve) => this.#flushes.push({ seq, done: resolve }));
  }
}

/** `DATA_CORRUPTED` unless `state`, loaded from a store, has the shape every store checks before it writes one. */
function assertLoadedState(upgradeId: string, state: unknown): asserts state is UpgradeProgress {
  try {
    assertAppendState('@progress/core', upgradeId, state);
  } catch (err) {
    throw new ProgressError('DATA_CORRUPTED', `[@progress/core] upgrade "${upgradeId}": the store loaded a state that is not one: ${(err as Error).message.replace(/^\[@progress\/core\] upgrade "[^]*?": /, '')}`, {
      cause: err,
      context: { upgradeId },
    });
  }
}

/**
 * Calls the store, bounded by `timeoutMs` (`Infinity`: unbounded): rejects with `STORE_UNAVAILABLE`
 * (`context.reason` `'timeout'`) when the store has not answered by then, and hands what the call
 * does later to `late` (`undefined` for a success), so that it is never an unhandled rejection. A
 * timer per call: for open() and close(), not for the appends of the write loop, which share one.
 */
function boundedCall<T>(call: () => Promise<T> | T, timeoutMs: number, upgradeId: string, what: string, late?: (err: unknown) => void): Promise<T> {
  let pending: Promise<T>;
  try {
    pending = Promise.resolve(call());
  } catch (err) {
    return Promise.reject(err);
  }
  if (timeoutMs === Infinity) return pending;
  return new Promise<T>((resolve, reject) => {
    let timedOut = false;
    let settled = false;
    const timer = setTimeout(() => {
      // Given up on after the I/O of this turn of the loop, as the write loop does (#storeTimedOut):
      // after the process was blocked past the bound, an answer already received still counts.
      setImmediate(() => {
        if (settled) return;
        timedOut = true;
        reject(
          new ProgressError('STORE_UNAVAILABLE', `[@progress/core] upgrade "${upgradeId}": the store did not answer ${what} within ${timeoutMs} ms (storeTimeoutMs); its outcome is unknown`, {
            context: { upgradeId, reason: 'timeout', timeoutMs },
          }),
        );
      });
    }, timeoutMs);
    pending.then(
      (value) => {
        if (timedOut) return late?.(undefined);
        settled = true;
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        if (timedOut) return late?.(err ?? new Error('rejected without a reason'));
        settled = true;
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/**
 * A sink's name, for logs and diagnostics. A getter that throws must not turn the failure of the
 * sink being reported into the tracker's own (it escaped the hand-out of an event: the other sinks
 * missed it and the durable state stopped short of the store).
 */
function sinkName(sink: ProgressSink): string {
  try {
    return sink.name;
  } catch {
    return '(a sink whose name getter threw)';
  }
}

/**
 * Whether `value` has a `handle` method. A getter that throws (a class instance whose client is not
 * made yet) makes it no sink: refused with `INVALID_ARGUMENT`, not with the getter's TypeError (so
 * is a store whose method getter throws).
 */
function isSink(value: unknown): value is ProgressSink {
  return !!value && hasMethod(value, 'handle');
}

/** Whether `value[name]` is a function; `false` when reading it throws (a getter). */
function hasMethod(value: unknown, name: string): boolean {
  try {
    return typeof (value as Record<string, unknown>)[name] === 'function';
  } catch {
    return false;
  }
}

/** The ProgressStore methods the tracker calls on a store passed in (acquire and release are optional). */
const STORE_CALLS = ['append', 'load', 'readEvents', 'info'] as const;

/** A flush() call waiting for the events up to `seq`. */
interface FlushWaiter {
  seq: number;
  done: () => void;
}

/** Reads the clock option: a finite number of ms, or `INVALID_ARGUMENT` (before anything changes). */
function clockTime(now: () => number): number {
  let time: unknown;
  try {
    time = now();
  } catch (err) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] the now() option threw: ${(err as Error)?.message ?? describe(err)}`, { cause: err });
  }
  if (typeof time !== 'number' || !Number.isFinite(time) || Math.abs(time) > MAX_DATE_MS) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] the now() option returned ${describe(time)}, not a time in ms since the epoch`);
  }
  return time;
}

function event(
  upgradeId: string,
  seq: number,
  type: EventType,
  timestamp: string,
  status: ProgressStatus,
  message: string,
  details: Record<string, unknown>,
  fields: { taskId?: string; taskType?: TaskType; percentage?: number | undefined } = {},
): ProgressEvent {
  const ev: { -readonly [K in keyof ProgressEvent]: ProgressEvent[K] } = { eventId: fastUUID(), seq, upgradeId, type, timestamp, status, message, details };
  if (fields.taskId !== undefined) ev.taskId = fields.taskId;
  if (fields.taskType !== undefined) ev.taskType = fields.taskType;
  if (fields.percentage !== undefined) ev.percentage = fields.percentage;
  return ev;
}
