import type { ProgressEvent } from '@progress/core';
import { CallbackError } from './callback-error.js';
import { Fifo } from './fifo.js';
import { mayReadArgument } from './arity.js';
import type { StateCache, StateVersion } from './state-versions.js';
import type { AnyCallback, CallbackFailureReason } from './types.js';

/**
 * One call waiting for its callback: the event and the arguments. The state argument, when the
 * callback takes it, is not copied when the call is handed over: the call holds the state's
 * {@link StateVersion} (what its event changed), and the state is made from it, at index
 * `stateAt` of `args`, right before the call.
 */
export interface QueuedCall {
  readonly event: ProgressEvent;
  /** The arguments; the one at `stateAt` is filled in at call time. Owned by the call. */
  readonly args: unknown[];
  readonly version?: StateVersion | undefined;
  readonly stateAt?: number;
}

/** What a queue needs from its manager: settings, bookkeeping and reporting. @internal */
export interface QueueHost {
  readonly timeoutMs: number;
  readonly maxQueueSize: number;
  readonly dropNewest: boolean;
  /** A call was accepted (queued or run at once). */
  accepted(queue: CallbackQueue): void;
  /** A call is about to run. */
  calling(): void;
  /** `count` accepted calls of `queue` are finished: run, given up on, or discarded. */
  settled(queue: CallbackQueue, count: number): void;
  /** A failure to report (once). */
  fail(queue: CallbackQueue, error: unknown, event: ProgressEvent, reason: CallbackFailureReason): void;
  /** A call given up on after its timeout rejected later on. */
  lateRejection(queue: CallbackQueue, error: unknown, event: ProgressEvent): void;
  /** The queue became empty after dropping events. */
  recovered(queue: CallbackQueue): void;
}

/** Which events a registration wants. @internal */
export type RegistrationKind = 'event' | 'status' | 'upgradeStatus';

/**
 * One registered callback with its own ordered queue. A call runs at once (inside `push`) when the
 * callback is idle; a callback that returned a promise is busy until the promise settles or
 * `timeoutMs` passes, and the events that arrive meanwhile wait, in order, in its queue (bounded by
 * `maxQueueSize`). Whatever the callback does, it cannot hold up another queue.
 *
 * @internal
 */
export class CallbackQueue {
  /** Registration order, which is also call order within one event. */
  readonly id: number;
  readonly kind: RegistrationKind;
  /** `'*'` or an event type for `event`; a status otherwise. */
  readonly key: string;
  readonly callback: AnyCallback;
  /** Whether the callback may read the state argument: when it certainly cannot, no copy is made for it. */
  readonly wantsState: boolean;
  #removed = false;
  #busy = false;
  #overflowing = false;
  readonly #calls = new Fifo<QueuedCall & { readonly n: number }>();
  /** How many calls this queue accepted: call n is the n-th. */
  #accepted = 0;
  /** The number of the call running now. */
  #running: number | undefined;
  readonly #host: QueueHost;

  constructor(host: QueueHost, id: number, kind: RegistrationKind, key: string, callback: AnyCallback) {
    this.#host = host;
    this.id = id;
    this.kind = kind;
    this.key = key;
    this.callback = callback;
    this.wantsState = kind === 'upgradeStatus' || mayReadArgument(callback as (...args: never[]) => unknown, kind === 'status' ? 2 : 1);
  }

  /** True once unsubscribed. */
  get removed(): boolean {
    return this.#removed;
  }

  /** True from the first dropped event until the queue is empty again. */
  get overflowing(): boolean {
    return this.#overflowing;
  }

  /** The number of the last call accepted (calls are numbered 1, 2, ... in the order handed over). */
  get lastAccepted(): number {
    return this.#accepted;
  }

  /**
   * The number of the oldest call not finished yet (`lastAccepted + 1` when none): every call
   * before it has run, failed, timed out or been dropped. A running call is older than any waiting one.
   */
  get unfinishedFrom(): number {
    return this.#running ?? this.#calls.peek()?.n ?? this.#accepted + 1;
  }

  /** The callback's name, for logs. */
  get label(): string {
    return this.callback.name || 'anonymous';
  }

  /** Hands a call over: runs it now when idle, else queues it (dropping one when full). */
  push(call: QueuedCall): void {
    if (this.#removed) return;
    if (this.#calls.length >= this.#host.maxQueueSize) {
      let dropped: QueuedCall | undefined = call;
      if (!this.#host.dropNewest) {
        dropped = this.#calls.shift();
        // The state made last (for the call running now) is older than every call left: kept, its
        // version would keep alive every version since, dropped ones included, for as long as the
        // callback hangs. The next call's state is made from the newest instead. The history keeps it
        // too, as the state made last, when no other callback has been given a state since.
        const made = this.#stateCache.made;
        this.#stateCache.made = undefined;
        made?.version.release(made);
        this.#host.settled(this, 1);
        this.#accept(call);
      }
      this.#host.fail(this, new CallbackError('dropped', `[@progress/callbacks] callback "${this.label}": its queue is full (${this.#host.maxQueueSize}); event seq ${dropped!.event.seq} dropped`), dropped!.event, 'dropped');
      this.#overflowing = true;
      return;
    }
    this.#accept(call);
    this.#pump();
  }

  #accept(call: QueuedCall): void {
    this.#calls.push({ ...call, n: ++this.#accepted });
    this.#host.accepted(this);
  }

  /** Unsubscribes: queued calls are discarded; a running asynchronous call is left to finish. */
  remove(): void {
    if (this.#removed) return;
    this.#removed = true;
    this.#stateCache.made = undefined;
    const discarded = this.#calls.clear();
    if (discarded > 0) this.#host.settled(this, discarded);
  }

  /** Takes the calls still waiting out of the queue (a running one is left to finish) and returns them. */
  takeQueued(): QueuedCall[] {
    const taken: QueuedCall[] = [];
    for (let call = this.#calls.shift(); call !== undefined; call = this.#calls.shift()) taken.push(call);
    // Emptied by a close, not drained: no "no longer dropping" line to come.
    this.#overflowing = false;
    if (taken.length > 0) this.#host.settled(this, taken.length);
    return taken;
  }

  /**
   * Gives up on the call running now, if it is an asynchronous one: reported as timed out (`why`),
   * its timer cleared, the queue idle. What it does later is ignored (a rejection is logged at debug,
   * as after a timeout). For a close that ran out of time: no timer of ours outlives it.
   */
  abandonRunning(why: string): void {
    this.#abandon?.(why);
  }

  #pump(): void {
    while (!this.#busy && !this.#removed) {
      const call = this.#calls.shift();
      if (call === undefined) break;
      this.#run(call);
    }
    // Idle with nothing queued: the state made last is no start for anything (and its version would
    // keep every later one alive).
    if (!this.#busy && this.#calls.length === 0) this.#stateCache.made = undefined;
    if (this.#overflowing && this.#calls.length === 0) {
      this.#overflowing = false;
      this.#host.recovered(this);
    }
  }

  /** The state this queue made last, which the next one is made from while it drains (see StateVersion.state). */
  readonly #stateCache: StateCache = {};

  /** Set while an asynchronous call runs: gives up on it (see {@link abandonRunning}). */
  #abandon: ((why: string) => void) | undefined;

  #run(call: QueuedCall & { readonly n: number }): void {
    // Busy during a synchronous call too, so that an event handed over re-entrantly waits its turn.
    this.#busy = true;
    this.#running = call.n;
    this.#host.calling();
    let result: unknown;
    let thenable: boolean;
    try {
      if (call.version !== undefined) call.args[call.stateAt!] = call.version.state(this.#stateCache);
      result = Reflect.apply(this.callback, undefined, call.args);
      // Inside the try: reading `then` can throw too (a revoked Proxy, a throwing getter), and must
      // not escape into the tracker's sink call with this queue left busy.
      thenable = isThenable(result);
    } catch (err) {
      this.#idle();
      this.#host.fail(this, err, call.event, 'threw');
      return;
    }
    if (thenable) {
      // Only the event: the call holds its state's version, which would keep every later one alive
      // (through `next`) for as long as the callback hangs.
      this.#await(result as PromiseLike<unknown>, call.event);
    } else {
      this.#idle();
    }
  }

  #idle(): void {
    this.#busy = false;
    this.#running = undefined;
    this.#host.settled(this, 1);
  }

  #await(result: PromiseLike<unknown>, event: ProgressEvent): void {
    let done = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (failure?: { error: unknown; reason: CallbackFailureReason }): void => {
      done = true;
      this.#abandon = undefined;
      if (timer !== undefined) clearTimeout(timer);
      if (failure) this.#host.fail(this, failure.error, event, failure.reason);
      this.#idle();
      this.#pump();
    };
    this.#abandon = (why) => {
      if (!done) finish({ error: new CallbackError('timeout', `[@progress/callbacks] callback "${this.label}" had not settled (event seq ${event.seq}, ${event.type}) when ${why}`), reason: 'timeout' });
    };
    const { timeoutMs } = this.#host;
    if (Number.isFinite(timeoutMs)) {
      timer = setTimeout(() => {
        if (done) return;
        const error = new CallbackError('timeout', `[@progress/callbacks] callback "${this.label}" did not settle within ${timeoutMs} ms (event seq ${event.seq}, ${event.type}); moving on`);
        finish({ error, reason: 'timeout' });
      }, timeoutMs);
    }
    // Adopted through a new promise's resolve: a hostile thenable (a throwing `then` getter or method,
    // a native promise with its own `then` or a throwing `constructor`, which Promise.resolve reads)
    // rejects it instead of throwing into us, and `then` runs on a clean stack.
    new Promise<unknown>((resolve) => resolve(result)).then(
      () => {
        if (!done) finish();
      },
      (err: unknown) => {
        if (done) this.#host.lateRejection(this, err, event);
        else finish({ error: err, reason: 'rejected' });
      },
    );
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
