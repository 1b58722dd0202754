import { MAX_TIMER_MS, ProgressError, assertHandleArgs, assertKnownOptions, describeValue, isLogger, silentLogger, type Logger, type ProgressEvent, type ProgressSink, type ProgressStatus, type TaskProgress, type UpgradeProgress } from '@progress/core';
import { CallbackQueue, type QueueHost, type RegistrationKind } from './callback-queue.js';
import { CallbackError } from './callback-error.js';
import { StateHistory, frozenTask, type StateVersion } from './state-versions.js';
import { UPGRADE_STATUS_SET, assertCallback, assertEventType, assertStatus, isUpgradeStatusChange, taskEnteringStatus } from './matching.js';
import type {
  AnyCallback,
  CallbackCounts,
  CallbackErrorInfo,
  CallbackFailureReason,
  CallbackManagerOptions,
  CallbackStats,
  EventCallback,
  EventTypeFilter,
  StatusCallback,
  Unsubscribe,
  UpgradeStatusCallback,
} from './types.js';

const DEFAULT_TIMEOUT_MS = 5000;
const DEFAULT_MAX_QUEUE_SIZE = 10_000;

/**
 * Runs in-process callbacks on the events of one or more {@link ProgressTracker}s: pass it in the
 * tracker's `sinks`. It keeps the old Python `CallbackManager`'s API in camelCase and adds event
 * type and upgrade status filters.
 *
 * Every callback has its own ordered queue, so each sees the events in seq order; a synchronous
 * callback runs inside `handle` (before the tracker's command resolves) unless it is still busy
 * with an earlier asynchronous call. A callback that throws, rejects or hangs past `timeoutMs` is
 * reported (logger and `onError`) and never blocks or breaks the others, nor the tracker.
 *
 * @example
 * const callbacks = new CallbackManager({ timeoutMs: 10_000, onError: (err, { event }) => alert(err, event) });
 * callbacks.addStatusCallback('failed', (task) => openTicket(task.taskName, task.errorMessage));
 * const off = callbacks.on('upgrade.completed', async (event, state) => notify(state.clusterName));
 * const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p1', clusterName: 'prod', sinks: [callbacks] });
 */
export class CallbackManager implements ProgressSink, AsyncDisposable {
  /** The sink's name, in the tracker's diagnostics. */
  readonly name = 'callbacks';
  /** All registrations, in registration order (which is call order within an event). */
  readonly #queues = new Set<CallbackQueue>();
  readonly #host: QueueHost;
  readonly #logger: Logger;
  readonly #onError: CallbackManagerOptions['onError'];
  #nextId = 0;
  #pending = 0;
  /** Queues with calls not finished (removed ones included, while a call of theirs runs). */
  readonly #busy = new Set<CallbackQueue>();
  /** Each flush: the last call, per queue, it waits for. */
  #flushes: Array<{ waitFor: Map<CallbackQueue, number>; done: () => void }> = [];
  #closing: Promise<void> | undefined;
  /** True while `handle` hands an event to the callbacks: a `handle` called meanwhile (from a synchronous callback) waits in {@link #deferred}. */
  #delivering = false;
  /** Events handed over during another one's delivery, with their state's version, delivered in turn once it is done. */
  readonly #deferred: Array<{ event: ProgressEvent; version: StateVersion }> = [];
  /** The versions of the state handed over by each tracker (keyed by its live state object, so that a tracker gone takes its history along). */
  readonly #histories = new WeakMap<object, StateHistory>();
  /** Flushes asked for during a delivery (from a callback): each takes its snapshot once the delivery is done. */
  readonly #flushesAfterDelivery: Array<() => void> = [];
  readonly #stats = { events: 0, calls: 0, failed: 0, timedOut: 0, dropped: 0 };

  /**
   * @param options See {@link CallbackManagerOptions}: `timeoutMs` (default 5000), `maxQueueSize`
   * (default 10000), `dropPolicy` (default `'oldest'`), `logger` (default silent), `onError`.
   * @throws ProgressError `INVALID_ARGUMENT` for an option out of range.
   */
  constructor(options: CallbackManagerOptions = {}) {
    if (options === null || typeof options !== 'object' || Array.isArray(options)) throw invalid('options must be an object');
    // A misspelt `onErorr` or `timeout` was left out without a word: failures went unreported, or
    // callbacks got the default 5 s.
    assertKnownOptions(options, OPTION_NAMES, { source: '@progress/callbacks', what: 'CallbackManager options' });
    // Each read once, here: a getter or Proxy trap that throws is refused like any bad option.
    let read: CallbackManagerOptions;
    try {
      const { timeoutMs, maxQueueSize, dropPolicy, logger, onError } = options;
      read = { timeoutMs, maxQueueSize, dropPolicy, logger, onError };
    } catch (err) {
      throw new ProgressError('INVALID_ARGUMENT', `[@progress/callbacks] CallbackManager options could not be read: ${err instanceof Error ? err.message : describeValue(err)}`, { cause: err });
    }
    options = read;
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs) || timeoutMs <= 0 || (Number.isFinite(timeoutMs) && timeoutMs > MAX_TIMER_MS)) {
      throw invalid(`timeoutMs must be a number of milliseconds > 0 (at most ${MAX_TIMER_MS}) or Infinity, got ${describeValue(timeoutMs)}`);
    }
    const maxQueueSize = options.maxQueueSize ?? DEFAULT_MAX_QUEUE_SIZE;
    if (typeof maxQueueSize !== 'number' || !Number.isSafeInteger(maxQueueSize) || maxQueueSize < 1) {
      throw invalid(`maxQueueSize must be a whole number >= 1, got ${describeValue(maxQueueSize)}`);
    }
    const dropPolicy = options.dropPolicy ?? 'oldest';
    if (dropPolicy !== 'oldest' && dropPolicy !== 'newest') throw invalid(`dropPolicy must be 'oldest' or 'newest', got ${describeValue(dropPolicy)}`);
    if (options.onError !== undefined && typeof options.onError !== 'function') throw invalid('onError must be a function');
    if (options.logger !== undefined && !isLogger(options.logger)) throw invalid('logger must have debug, info, warn and error methods');
    this.#logger = options.logger ?? silentLogger;
    this.#onError = options.onError;
    this.#host = this.#makeHost(timeoutMs, maxQueueSize, dropPolicy === 'newest');
  }

  // ---------------------------------------------------------------- the old module's API

  /** Calls `callback(event, state)` with every event. Returns the function that removes it. */
  addEventCallback(callback: EventCallback): Unsubscribe {
    assertCallback(callback, 'addEventCallback');
    return this.#add('event', '*', callback);
  }

  /**
   * Removes every registration of `callback` for all events (made with `addEventCallback` or
   * `on('*')`). Returns true when there was one.
   */
  removeEventCallback(callback: EventCallback): boolean {
    return this.#remove('event', '*', callback);
  }

  /**
   * Calls `callback(task, event, state)` each time a task enters `status`: on `task.started`,
   * `task.completed`, `task.failed`, `task.retried` (back to `in_progress`), `task.skipped` and
   * `task.cancelled`, and on the `task.progress` that starts a task that was not started. Never on
   * `task.added` nor on a progress update of a running task. Returns the function that removes it.
   *
   * @throws ProgressError `INVALID_ARGUMENT` for an unknown status or a non-function.
   */
  addStatusCallback(status: ProgressStatus, callback: StatusCallback): Unsubscribe {
    assertStatus(status, 'addStatusCallback');
    assertCallback(callback, 'addStatusCallback');
    return this.#add('status', status, callback);
  }

  /** Removes every registration of `callback` for `status`. Returns true when there was one. */
  removeStatusCallback(status: ProgressStatus, callback: StatusCallback): boolean {
    assertStatus(status, 'removeStatusCallback');
    return this.#remove('status', status, callback);
  }

  /** Removes every callback; their queued calls are discarded (running ones finish). */
  clearAllCallbacks(): void {
    for (const queue of this.#queues) queue.remove();
    this.#queues.clear();
  }

  /** How many callbacks are registered. Only statuses that have callbacks are listed. */
  getCallbackCounts(): CallbackCounts {
    let eventCallbacks = 0;
    const statusCallbacks: Partial<Record<ProgressStatus, number>> = {};
    let upgradeStatusCallbacks: Partial<Record<ProgressStatus, number>> | undefined;
    for (const queue of this.#queues) {
      const status = queue.key as ProgressStatus;
      if (queue.kind === 'event') eventCallbacks += 1;
      else if (queue.kind === 'status') statusCallbacks[status] = (statusCallbacks[status] ?? 0) + 1;
      else {
        upgradeStatusCallbacks ??= {};
        upgradeStatusCallbacks[status] = (upgradeStatusCallbacks[status] ?? 0) + 1;
      }
    }
    return upgradeStatusCallbacks ? { eventCallbacks, statusCallbacks, upgradeStatusCallbacks } : { eventCallbacks, statusCallbacks };
  }

  // ---------------------------------------------------------------- filters

  /**
   * Calls `callback(event, state)` with the events of one type, or of every type with `'*'`.
   * Returns the function that removes it.
   *
   * @throws ProgressError `INVALID_ARGUMENT` for an unknown event type or a non-function.
   */
  on(type: EventTypeFilter, callback: EventCallback): Unsubscribe {
    assertEventType(type, 'on');
    assertCallback(callback, 'on');
    return this.#add('event', type, callback);
  }

  /**
   * Calls `callback(upgrade, event)` each time the upgrade enters `status`: `upgrade.started` and
   * `upgrade.resumed` (`in_progress`), `upgrade.paused`, `upgrade.completed`, `upgrade.failed`,
   * `upgrade.cancelled`. `upgrade` is a frozen copy of the state after the event. Returns the function
   * that removes it.
   *
   * @throws ProgressError `INVALID_ARGUMENT` for a status an upgrade cannot have or a non-function.
   */
  onUpgradeStatus(status: ProgressStatus, callback: UpgradeStatusCallback): Unsubscribe {
    assertStatus(status, 'onUpgradeStatus', UPGRADE_STATUS_SET);
    assertCallback(callback, 'onUpgradeStatus');
    return this.#add('upgradeStatus', status, callback);
  }

  /** Counters since the manager was made, and the calls pending now. */
  getStats(): CallbackStats {
    return { ...this.#stats, pending: this.#pending };
  }

  // ---------------------------------------------------------------- ProgressSink

  /**
   * Hands an event to every matching callback (the tracker calls this). Synchronous callbacks that
   * are idle run now; the others get the call queued. What `state` changed since the previous
   * event is recorded here, because it is only valid during this call (and only when a callback
   * that may read it takes the event); each call is given a frozen copy made from that record.
   * Ignored once closed.
   */
  handle(event: ProgressEvent, state: Readonly<UpgradeProgress>): void {
    assertHandleArgs('@progress/callbacks', event, state);
    if (this.#closing) {
      this.#log('debug', { upgradeId: event.upgradeId, seq: event.seq }, 'callback manager closed; event ignored');
      return;
    }
    this.#stats.events += 1;
    // Handed over from inside a synchronous callback: delivered once the event being delivered is,
    // so that a callback later in the list, idle now, does not get it before that one.
    if (this.#delivering) {
      this.#deferred.push({ event, version: this.#record(state) });
      return;
    }
    this.#delivering = true;
    try {
      this.#deliver(event, state, undefined);
      for (let next = this.#deferred.shift(); next; next = this.#deferred.shift()) this.#deliver(next.event, undefined, next.version);
    } finally {
      this.#delivering = false;
      for (let start = this.#flushesAfterDelivery.shift(); start; start = this.#flushesAfterDelivery.shift()) start();
    }
  }

  /**
   * Records `state` (the tracker's live one) as the newest version of its history. Called by
   * `handle()` before any callback is handed the event: a state it cannot copy (a program's own,
   * holding a function) is refused with `INVALID_ARGUMENT`, uncounted, and changes nothing.
   */
  #record(state: Readonly<UpgradeProgress>): StateVersion {
    let history = this.#histories.get(state);
    if (history === undefined) {
      history = new StateHistory();
      this.#histories.set(state, history);
    }
    try {
      return history.record(state);
    } catch (err) {
      throw this.#uncopyable(state, err);
    }
  }

  /** The refusal of a state that cannot be copied for the callbacks (its event uncounted). */
  #uncopyable(state: Readonly<UpgradeProgress>, err: unknown): ProgressError {
    this.#stats.events -= 1;
    return new ProgressError('INVALID_ARGUMENT', `[@progress/callbacks] handle() was given a state of upgrade '${state.upgradeId}' that cannot be copied for the callbacks (${err instanceof Error ? err.message : String(err)}); no callback was handed the event`, {
      cause: err,
      context: { upgradeId: state.upgradeId },
    });
  }

  /**
   * Hands `event` to its callbacks, with the state right after it: `live` (the tracker's, valid
   * only now) or, for an event handed over during another one's delivery, its recorded `version`.
   */
  #deliver(event: ProgressEvent, live: Readonly<UpgradeProgress> | undefined, version: StateVersion | undefined): void {
    // Callbacks added while this event is being delivered start with the next one.
    const limit = this.#nextId;
    // Which callbacks take it, before any runs (a synchronous one may hand over the next event).
    let takers: CallbackQueue[] | undefined;
    let wantsState = false;
    let wantsTask = false;
    for (const queue of this.#queues) {
      if (queue.id >= limit) break;
      if (!matches(queue, event)) continue;
      (takers ??= []).push(queue);
      if (queue.wantsState) wantsState = true;
      if (queue.kind === 'status') wantsTask = true;
    }
    if (takers === undefined) return;
    // The state is recorded (what changed since the last version) only for an event that a
    // callback that may read it takes; queued calls hold the version, not a copy of the state.
    if (wantsState && version === undefined) version = this.#record(live!);
    let task: Readonly<TaskProgress> | undefined;
    if (wantsTask) {
      const found = taskEnteringStatus(event, (id) => (version !== undefined ? version.task(id) : Object.hasOwn(live!.tasks, id) ? live!.tasks[id] : undefined));
      if (found === undefined || version !== undefined) task = found;
      else {
        // Copied on its own when no callback takes the state (so it was not recorded): a task that
        // cannot be copied (a field holding a function) is refused as #record refuses it.
        try {
          task = frozenTask(found);
        } catch (err) {
          throw this.#uncopyable(live!, err);
        }
      }
    }
    for (const queue of takers) {
      if (queue.kind === 'event') {
        queue.push(queue.wantsState ? { event, args: [event, undefined], version, stateAt: 1 } : { event, args: [event, undefined] });
      } else if (queue.kind === 'status') {
        if (task === undefined) continue;
        queue.push(queue.wantsState ? { event, args: [task, event, undefined], version, stateAt: 2 } : { event, args: [task, event, undefined] });
      } else {
        queue.push({ event, args: [undefined, event], version, stateAt: 0 });
      }
    }
  }

  /**
   * Resolves once every call handed over so far has run, failed, timed out or been dropped. Calls
   * handed over later are not waited for, so a steady stream of events cannot hold a flush up.
   */
  flush(): Promise<void> {
    // Asked from a callback while an event is being delivered (`() => { void callbacks.close(); }`):
    // the callbacks after it, and the events handed over meanwhile, are not handed their calls yet.
    // A snapshot taken now missed them: close() resolved, and left their timers, while they ran.
    if (this.#delivering) return new Promise((resolve) => this.#flushesAfterDelivery.push(() => resolve(this.flush())));
    const waitFor = new Map<CallbackQueue, number>();
    for (const queue of this.#busy) waitFor.set(queue, queue.lastAccepted);
    if (waitFor.size === 0) return Promise.resolve();
    return new Promise((done) => this.#flushes.push({ waitFor, done }));
  }

  /**
   * Stops taking events (later ones are ignored; adding a callback throws `CLOSED`) and resolves
   * once every call already handed over has run, failed or timed out. Idempotent.
   *
   * @param timeoutMs How long to wait at most (default: until every call is done). Calls that each
   * take up to `timeoutMs` of the options, queued behind a callback that hangs, would otherwise hold
   * a close up for their number times that. When it runs out, the calls still queued are not run:
   * each is reported to `onError` as `dropped`, with one log line for all; a call running then is
   * given up on (reported as `timeout`; what it does later is ignored), so that no timer is left.
   * @throws ProgressError `INVALID_ARGUMENT` (as a rejection) for a `timeoutMs` that is not a number of ms >= 0.
   */
  close(timeoutMs?: number): Promise<void> {
    if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs) || timeoutMs < 0 || (Number.isFinite(timeoutMs) && timeoutMs > MAX_TIMER_MS))) {
      return Promise.reject(invalid(`close() timeoutMs must be a number of milliseconds >= 0 (at most ${MAX_TIMER_MS}) or Infinity, got ${describeValue(timeoutMs)}`));
    }
    const closing = (this.#closing ??= this.flush());
    if (timeoutMs === undefined || timeoutMs === Infinity) return closing;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#dropQueued();
        resolve();
      }, timeoutMs);
      void closing.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /**
   * close() ran out of time: the calls still queued are not run, and the ones running are given up
   * on (reported as timed out, their timers cleared: nothing of this manager outlives its close).
   */
  #dropQueued(): void {
    let dropped = 0;
    for (const queue of [...this.#busy]) {
      for (const call of queue.takeQueued()) {
        dropped += 1;
        const error = new CallbackError('dropped', `[@progress/callbacks] callback "${queue.label}": closed before its call for event seq ${call.event.seq} ran; not run`);
        this.#report(queue, error, call.event, 'dropped', false);
      }
      queue.abandonRunning('close() gave up waiting');
    }
    if (dropped > 0) this.#log('warn', { dropped }, 'callbacks closed before these queued calls ran; they were dropped');
  }

  /** `await using callbacks = new CallbackManager()` closes it. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---------------------------------------------------------------- internals

  #add(kind: RegistrationKind, key: string, callback: AnyCallback): Unsubscribe {
    if (this.#closing) throw new ProgressError('CLOSED', '[@progress/callbacks] the callback manager is closed');
    const queue = new CallbackQueue(this.#host, this.#nextId++, kind, key, callback);
    this.#queues.add(queue);
    return () => {
      queue.remove();
      this.#queues.delete(queue);
    };
  }

  #remove(kind: RegistrationKind, key: string, callback: AnyCallback): boolean {
    let found = false;
    for (const queue of this.#queues) {
      if (queue.kind === kind && queue.key === key && queue.callback === callback) {
        queue.remove();
        this.#queues.delete(queue);
        found = true;
      }
    }
    return found;
  }

  #makeHost(timeoutMs: number, maxQueueSize: number, dropNewest: boolean): QueueHost {
    return {
      timeoutMs,
      maxQueueSize,
      dropNewest,
      accepted: (queue) => {
        this.#pending += 1;
        this.#busy.add(queue);
      },
      calling: () => {
        this.#stats.calls += 1;
      },
      settled: (queue, count) => {
        this.#pending -= count;
        const from = queue.unfinishedFrom;
        if (from > queue.lastAccepted) this.#busy.delete(queue);
        if (this.#flushes.length === 0) return;
        const finished: Array<() => void> = [];
        this.#flushes = this.#flushes.filter(({ waitFor, done }) => {
          const last = waitFor.get(queue);
          if (last !== undefined && from > last) waitFor.delete(queue);
          if (waitFor.size > 0) return true;
          finished.push(done);
          return false;
        });
        for (const done of finished) done();
      },
      fail: (queue, error, event, reason) => this.#report(queue, error, event, reason),
      lateRejection: (queue, err, event) => {
        this.#log('debug', { err, upgradeId: event.upgradeId, seq: event.seq, callback: queue.label }, 'callback rejected after its timeout');
      },
      recovered: (queue) => {
        this.#log('info', { callback: queue.label }, 'callback queue drained; no longer dropping events');
      },
    };
  }

  #report(queue: CallbackQueue, error: unknown, event: ProgressEvent, reason: CallbackFailureReason, log = true): void {
    if (reason === 'timeout') this.#stats.timedOut += 1;
    else if (reason === 'dropped') this.#stats.dropped += 1;
    else this.#stats.failed += 1;
    const fields = { err: error, upgradeId: event.upgradeId, seq: event.seq, type: event.type, callback: queue.label, reason };
    // Log one line per overflow episode, not one per dropped event (onError still hears of each).
    if (log && (reason !== 'dropped' || !queue.overflowing)) {
      this.#log('warn', fields, MESSAGES[reason]);
    }
    const onError = this.#onError;
    if (!onError) return;
    const info: CallbackErrorInfo = { callback: queue.callback, event, reason };
    try {
      const result = onError(error, info);
      if (result && typeof (result as PromiseLike<unknown>).then === 'function') {
        Promise.resolve(result).then(undefined, (err: unknown) => this.#onErrorFailed(err, event));
      }
    } catch (err) {
      this.#onErrorFailed(err, event);
    }
  }

  /** Logs, containing a logger that throws: a broken logger must not leave a queue stuck. */
  #log(level: keyof Logger, obj: object, msg: string): void {
    try {
      this.#logger[level](obj, msg);
    } catch {
      // Nothing better to do with it.
    }
  }

  #onErrorFailed(err: unknown, event: ProgressEvent): void {
    this.#log('error', { err, upgradeId: event.upgradeId, seq: event.seq }, 'the onError hook threw');
  }
}

const MESSAGES: Record<CallbackFailureReason, string> = {
  threw: 'callback threw',
  rejected: 'callback rejected',
  timeout: 'callback timed out; its queue moved on',
  dropped: 'callback queue full; event dropped',
};

// An object checked against the interface, so that a new option cannot be left out of this list.
const OPTION_NAMES = Object.keys({ timeoutMs: 0, maxQueueSize: 0, dropPolicy: 0, logger: 0, onError: 0 } satisfies Record<keyof CallbackManagerOptions, 0>);

/** Whether `queue` takes `event` (a task status callback: if the event moves a task into that status). */
function matches(queue: CallbackQueue, event: ProgressEvent): boolean {
  if (queue.kind === 'event') return queue.key === '*' || queue.key === event.type;
  if (queue.kind === 'status') return queue.key === event.status;
  return queue.key === event.status && isUpgradeStatusChange(event);
}

function invalid(message: string): ProgressError {
  return new ProgressError('INVALID_ARGUMENT', `[@progress/callbacks] ${message}`);
}
