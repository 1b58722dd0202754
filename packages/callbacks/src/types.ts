import type { EventType, Logger, ProgressEvent, ProgressStatus, TaskProgress, UpgradeProgress } from '@progress/core';

/**
 * What a callback returns. A promise (any thenable) is awaited, up to `timeoutMs`, before that
 * callback's next call; anything else is ignored. `unknown` so that `(e) => list.push(e)` fits.
 */
export type CallbackResult = unknown;

/**
 * Called with every event (`addEventCallback`, `on('*')`) or the events of one type (`on(type)`).
 *
 * `state` is a frozen copy of the durable state right after the event (its events are the tracker's
 * own objects, to be treated as read-only), shared by the
 * callbacks of that event that run together, and made only for an event that some callback that
 * may read it takes. The tasks an event did not change are the same (frozen) objects as in the
 * previous event's state. Every such callback is given it (declared with or without a default value, a rest
 * parameter, `arguments[1]`); an arrow `(event) => ...` cannot read it and costs no copy.
 */
export type EventCallback = (event: ProgressEvent, state: Readonly<UpgradeProgress>) => CallbackResult;

/**
 * Called when a task enters a status (`addStatusCallback`), with a frozen copy of the task after
 * the event, the event, and the state (as for {@link EventCallback}).
 */
export type StatusCallback = (task: Readonly<TaskProgress>, event: ProgressEvent, state: Readonly<UpgradeProgress>) => CallbackResult;

/** Called when the upgrade enters a status (`onUpgradeStatus`), with a frozen copy of its state and the event. */
export type UpgradeStatusCallback = (upgrade: Readonly<UpgradeProgress>, event: ProgressEvent) => CallbackResult;

/** Any callback the manager holds. */
export type AnyCallback = EventCallback | StatusCallback | UpgradeStatusCallback;

/** What `on()` takes: an event type, or `'*'` for every event. */
export type EventTypeFilter = EventType | '*';

/** Removes the callback it was returned for. Calling it again does nothing. */
export type Unsubscribe = () => void;

/**
 * Why a callback was reported:
 * - `threw`: it threw synchronously;
 * - `rejected`: the promise it returned rejected;
 * - `timeout`: the promise it returned did not settle within `timeoutMs` (its queue moved on);
 * - `dropped`: its queue was full, so an event was not delivered to it.
 */
export type CallbackFailureReason = 'threw' | 'rejected' | 'timeout' | 'dropped';

/** The second argument of the `onError` hook. */
export interface CallbackErrorInfo {
  /** The callback concerned, as it was registered. */
  callback: AnyCallback;
  /** The event it was called with (or, for `dropped`, the event it did not get). */
  event: ProgressEvent;
  /** What happened. */
  reason: CallbackFailureReason;
}

/** Options of {@link CallbackManager}. */
export interface CallbackManagerOptions {
  /**
   * How long an asynchronous call may take before its callback's queue moves on to the next event
   * (the call is reported as `timeout`; its promise is no longer awaited). `Infinity` waits forever.
   * @default 5000
   */
  timeoutMs?: number;
  /**
   * How many events may wait in one callback's queue (behind a call still running). Beyond that,
   * events are dropped for that callback only, and reported.
   * @default 10000
   */
  maxQueueSize?: number;
  /**
   * Which event a full queue drops: `'oldest'` keeps the latest events (the end of an upgrade is
   * never lost), `'newest'` keeps an unbroken prefix.
   * @default 'oldest'
   */
  dropPolicy?: 'oldest' | 'newest';
  /** A pino-compatible logger; failures are logged at `warn`. @default silent */
  logger?: Logger;
  /**
   * Called once per failure of a callback (throw, rejection, timeout, dropped event). What it throws
   * or rejects with is logged and contained.
   */
  onError?: (error: unknown, info: CallbackErrorInfo) => void | PromiseLike<unknown>;
}

/** What `getCallbackCounts()` returns: only statuses that have callbacks are listed. */
export interface CallbackCounts {
  /** Callbacks added with `addEventCallback` or `on()`. */
  eventCallbacks: number;
  /** Task status callbacks (`addStatusCallback`), by status. */
  statusCallbacks: Partial<Record<ProgressStatus, number>>;
  /** Upgrade status callbacks (`onUpgradeStatus`), by status; present only when there are any. */
  upgradeStatusCallbacks?: Partial<Record<ProgressStatus, number>>;
}

/** Counters since the manager was made, for diagnostics (`getStats()`). */
export interface CallbackStats {
  /** Events handed to the manager. */
  events: number;
  /** Calls made to callbacks (whatever their outcome). */
  calls: number;
  /** Calls that threw or rejected. */
  failed: number;
  /** Asynchronous calls given up on after `timeoutMs`. */
  timedOut: number;
  /** Events dropped from full queues. */
  dropped: number;
  /** Calls queued or running now. */
  pending: number;
}
