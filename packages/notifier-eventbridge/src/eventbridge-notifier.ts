import { EventBridgeClient, PutEventsCommand, type PutEventsCommandOutput, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { MAX_TIMER_MS, ProgressError, assertHandleArgs, describeValue, safeLogger, silentLogger, type Logger, type ProgressEvent, type ProgressSink, type UpgradeProgress } from '@progress/core';
import { Deque } from './deque.js';
import { entrySize } from './entry-size.js';
import { buildDetail, fitDetail, trimDetail } from './event-mapping.js';
import { REGION, environmentRegion, resolveOptions, type DeliveryFailure, type DeliveryFailureReason, type EventBridgeNotifierOptions, type ResolvedOptions, type UndeliveredEvent } from './options.js';
import { backoffDelay, classifyRequestError } from './retry-policy.js';

/**
 * Whether `err` is what aborting a request makes the SDK throw: an `AbortError` (no answer yet), or
 * an answer with a 2xx status whose body the abort cut off (`Error`, "aborted ... Deserialization error").
 */
function endedByAbort(err: unknown): boolean {
  const e = (err ?? {}) as { name?: unknown; $metadata?: { httpStatusCode?: unknown } };
  const status = e.$metadata?.httpStatusCode;
  return e.name === 'AbortError' || (typeof status === 'number' && status >= 200 && status < 300);
}

/** Counters of {@link EventBridgeNotifier.stats}. */
export interface NotifierStats {
  /** Entries EventBridge accepted. */
  sent: number;
  /** Entries given up on: rejected, retries exhausted, too large, or undelivered at close. */
  failed: number;
  /** Entry retries scheduled (one entry retried three times counts three). */
  retried: number;
  /** Entries dropped by a full queue (or handed in after close). */
  dropped: number;
  /** Entries whose detail was trimmed to fit `maxBatchBytes`. */
  trimmed: number;
  /** Entries waiting to be sent, retries included. */
  queued: number;
  /** Entries in requests in flight. */
  inFlight: number;
  /** PutEvents requests made. */
  requests: number;
}

/** What `flush()` reports. */
export interface FlushReport {
  /** True when everything was delivered or given up on before the timeout. */
  complete: boolean;
  /** The events still queued or in flight when the flush gave up (empty when complete). */
  undelivered: UndeliveredEvent[];
}

/** What `close()` reports. */
export interface CloseReport extends FlushReport {
  stats: NotifierStats;
}

interface Item {
  /** The order `handle()` took it in (1, 2, ...): a flush waits for the items up to its call's. */
  no: number;
  entry: PutEventsRequestEntry;
  size: number;
  ref: UndeliveredEvent;
  attempts: number;
  queuedAt: number;
  readyAt: number;
}

/** A flush waiting for the items up to `upTo`. */
interface FlushWaiter {
  upTo: number;
  settle: (report: FlushReport) => void;
}

interface Flight {
  items: Item[];
  controller: AbortController;
  /** Clears the flight's timers (requestTimeoutMs, and the grace after its abort). */
  stopTimers: () => void;
}

const DROP_LOG_INTERVAL_MS = 10_000;

/** `INVALID_ARGUMENT` for an event `handle()` cannot make an entry of (`context`: its upgradeId, seq, type). */
const invalidEvent = (event: ProgressEvent, needs: string, cause?: unknown): ProgressError =>
  new ProgressError('INVALID_ARGUMENT', `[@progress/notifier-eventbridge] handle() needs ${needs}`, { cause, context: { upgradeId: event.upgradeId, seq: event.seq, type: event.type } });

/**
 * How long a request aborted by `requestTimeoutMs` may take to end before it is given up on: as long
 * again, and at least a second (an error of its own that comes meanwhile keeps its own code).
 */
const abortGraceMs = (requestTimeoutMs: number): number => Math.min(MAX_TIMER_MS, Math.max(requestTimeoutMs, 1000));

/**
 * The clock of every deadline here (linger, backoff, pause, drop log): monotonic. Date.now() set
 * back (an NTP step, a VM restored from a snapshot) held a pause or a backoff for as long as the
 * clock went back (nothing sent for an hour after a step of an hour), and set forward cut them short.
 */
const clock = (): number => performance.now();

/**
 * A {@link ProgressSink} that sends progress events to an AWS EventBridge bus, under the old
 * module's DetailTypes and details (see the README's mapping table), without ever slowing the
 * tracker: `handle()` formats the entry and queues it; entries go out in batches (at most 10
 * entries and `maxBatchBytes` a request, sized as AWS counts them); failed entries are retried
 * one by one with exponential backoff and full jitter; a bounded queue drops (and counts) when
 * EventBridge cannot keep up. Delivery is at least once: consumers deduplicate by `event_id` (or
 * `upgrade_id` + `seq`).
 *
 * @example
 * const notifier = new EventBridgeNotifier({ busName: 'upgrades', region: 'us-east-1' });
 * const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p1', clusterName: 'prod', sinks: [notifier] });
 * // ...
 * await tracker.close();
 * const { undelivered } = await notifier.shutdown(); // or close(), which logs it
 */
export class EventBridgeNotifier implements ProgressSink, AsyncDisposable {
  /** The sink's name, for logs and diagnostics. */
  readonly name = 'eventbridge';
  readonly #opts: ResolvedOptions;
  readonly #client: EventBridgeClient;
  readonly #ownsClient: boolean;
  readonly #logger: Logger;
  readonly #onError: ((failure: DeliveryFailure) => void) | undefined;
  readonly #fresh = new Deque<Item>();
  #freshBytes = 0;
  #retry: Item[] = [];
  readonly #inFlight = new Set<Flight>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #immediate: ReturnType<typeof setImmediate> | undefined;
  #pausedUntil = 0;
  #lastSendAt = -Infinity;
  #requestFailures = 0;
  #flushing = 0;
  /** The number of the last item taken (see Item.no). */
  #lastNo = 0;
  /** Flushes waiting: each for the items up to `upTo`. */
  #waiters: FlushWaiter[] = [];
  #closing: Promise<CloseReport> | undefined;
  #closed = false;
  #lastDropLog = -Infinity;
  #dropsSinceLog = 0;
  #dropWhy = '';
  #dropLogTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #counters = { sent: 0, failed: 0, retried: 0, dropped: 0, trimmed: 0, requests: 0 };
  /**
   * The region of the client the notifier made: known (a client of yours counts as known), still
   * looked for (nothing is sent meanwhile), or missing, with why (every event is then given up on).
   */
  #region: 'known' | 'pending' | { code: string; message: string } = 'known';
  /** Settles (never rejects) once {@link #region} is no longer pending. */
  #regionCheck: Promise<void> = Promise.resolve();
  /** Ends the wait for the region (at requestTimeoutMs, or by close()); set while it is pending. */
  #stopRegionWait: ((why: Error) => void) | undefined;

  /** @throws ProgressError `INVALID_ARGUMENT` for bad options. */
  constructor(options: EventBridgeNotifierOptions) {
    this.#opts = resolveOptions(options);
    // Wrapped: a logger that throws (a closed transport) must not lose an event's retry, its count or
    // its report (the log calls come before the bookkeeping they describe), nor fail handle() or close().
    this.#logger = options.logger ? safeLogger(options.logger) : silentLogger;
    this.#onError = options.onError;
    if (options.client) {
      this.#client = options.client;
      this.#ownsClient = false;
    } else {
      const config = this.#opts.clientConfig;
      // `?? 1`, not a default spread over: a `maxAttempts: undefined` in clientConfig (a setting left
      // unset) replaced the 1, and the SDK retried every failed request itself, 3 attempts inside each of ours.
      this.#client = new EventBridgeClient({ ...config, maxAttempts: config.maxAttempts ?? 1, region: options.region ?? config.region ?? environmentRegion() });
      this.#ownsClient = true;
      this.#region = 'pending';
      this.#regionCheck = this.#lookForRegion();
    }
  }

  /**
   * Resolves once the client the notifier made knows its AWS region: at once for a region given or
   * in the environment; else after the SDK's own search, in the profile of the shared config files
   * (`AWS_PROFILE`, else `default`; `~/.aws/config`, `~/.aws/credentials`), then in the EC2 instance
   * metadata. Nothing is sent meanwhile (`handle()` still only queues). With a `client` of yours,
   * resolves at once.
   *
   * @throws ProgressError `INVALID_ARGUMENT` (rejects) when there is no region, or the one found is
   *   not a region name. The notifier then gives every event up at once, as `rejected` with
   *   errorCode `RegionMissing` (reported to `onError`), instead of retrying requests that cannot be
   *   signed. `@progress/tracker`'s `createProgressTracker` waits for it, and refuses to start.
   */
  async ready(): Promise<void> {
    await this.#regionCheck;
    const region = this.#region;
    if (typeof region === 'object') throw new ProgressError('INVALID_ARGUMENT', `[@progress/notifier-eventbridge] ${region.message}`);
  }

  /** Asks the client for its region (see {@link ready}), and sends what waited for it. */
  async #lookForRegion(): Promise<void> {
    const { requestTimeoutMs } = this.#opts;
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Bounded, as a request is: a region provider of yours (clientConfig.region) that never settles
    // held every event, unsent and unreported, until close().
    const stopped = new Promise<never>((_, reject) => {
      this.#stopRegionWait = reject;
      timer = setTimeout(() => reject(new Error(`no region within requestTimeoutMs (${requestTimeoutMs} ms)`)), requestTimeoutMs);
    });
    try {
      const region: unknown = await Promise.race([this.#client.config.region(), stopped]);
      // The SDK checks a region only as a host name label; ours also refuses what it would not sign.
      if (typeof region !== 'string' || !REGION.test(region)) throw new Error(`Region not accepted: ${describeValue(region)} is not a region name`);
      this.#region = 'known';
    } catch (err) {
      const profile = process.env.AWS_PROFILE || 'default';
      const files = `${process.env.AWS_CONFIG_FILE || '~/.aws/config'} or ${process.env.AWS_SHARED_CREDENTIALS_FILE || '~/.aws/credentials'}`;
      const why = err instanceof Error ? err.message : describeValue(err);
      this.#region = {
        code: 'RegionMissing',
        message: /region is missing/i.test(why)
          ? `no AWS region for the client the notifier makes: give the \`region\` option (or a client), or set AWS_REGION, or a region in the profile "${profile}" of ${files}; and the EC2 instance metadata gave none (the SDK says: ${why})`
          : `the AWS region of the client the notifier makes is not usable (the SDK's search: the \`clientConfig.region\` option, AWS_REGION, the profile "${profile}" of ${files}, the EC2 instance metadata): ${why}`,
      };
      if (!this.#closed) this.#logger.error({ err, busName: this.#opts.busName }, 'eventbridge notifier has no AWS region: every event is given up on');
    } finally {
      clearTimeout(timer);
      this.#stopRegionWait = undefined;
    }
    if (this.#closed) return;
    this.#pump();
    this.#checkWaiters();
  }

  /** Formats the event's entry and queues it; never waits for I/O. Ignores types not in `eventTypes`. */
  handle(event: ProgressEvent, state: Readonly<UpgradeProgress>): void {
    assertHandleArgs('@progress/notifier-eventbridge', event, state);
    if (!this.#opts.eventTypes.has(event.type)) return;
    const ref: UndeliveredEvent = { eventId: event.eventId, upgradeId: event.upgradeId, seq: event.seq, type: event.type };
    if (this.#closing) {
      this.#drop(ref, 'the notifier is closed');
      return;
    }
    const item = this.#makeItem(event, state, ref);
    if (!item) return;
    if (this.#queued() >= this.#opts.maxQueue) {
      if (this.#opts.dropPolicy === 'drop-newest') {
        this.#drop(ref, 'queue full');
        return;
      }
      const oldest = this.#retry.length > 0 ? this.#retry.shift() : this.#shiftFresh();
      if (oldest) this.#drop(oldest.ref, 'queue full');
    }
    this.#fresh.push(item);
    this.#freshBytes += item.size;
    // A flush may have waited for the item just dropped for this one.
    this.#checkWaiters();
    this.#schedulePump();
  }

  /**
   * Waits until everything handed to `handle()` so far has been delivered or given up on, or until
   * `timeoutMs` has passed; events handed in after the call (by other trackers sharing this
   * notifier) are not waited for. Never rejects, but for a bad `timeoutMs`. {@link drain} does the
   * same and says what is still pending.
   *
   * @param timeoutMs @default `flushTimeoutMs`
   * @throws ProgressError `INVALID_ARGUMENT` (rejects) for a `timeoutMs` that is not a number >= 0.
   */
  async flush(timeoutMs?: number): Promise<void> {
    await this.drain(timeoutMs);
  }

  /**
   * {@link flush}, reporting what of it is still queued or in flight when `timeoutMs` has passed
   * (those events stay queued and keep being retried), or was abandoned by a `close()` meanwhile.
   * Never rejects, but for a bad `timeoutMs`.
   *
   * @param timeoutMs @default `flushTimeoutMs`; `Infinity` waits for as long as it takes.
   * @throws ProgressError `INVALID_ARGUMENT` (rejects) for a `timeoutMs` that is not a number >= 0.
   */
  async drain(timeoutMs: number = this.#opts.flushTimeoutMs): Promise<FlushReport> {
    // Checked as close() checks it: a `null` (which skips a default parameter), NaN or '5' waited
    // 0 ms and reported "incomplete", as if it had waited.
    if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs) || timeoutMs < 0) {
      throw new ProgressError('INVALID_ARGUMENT', `[@progress/notifier-eventbridge] the flush timeout must be a number of ms >= 0, got ${describeValue(timeoutMs)}`);
    }
    const upTo = this.#lastNo;
    if (this.#closed || this.#oldestPending() > upTo) return { complete: true, undelivered: [] };
    this.#flushing += 1;
    this.#pump();
    // The pump may have settled them all at once (given up: a notifier with no region).
    if (this.#oldestPending() > upTo) {
      this.#flushing -= 1;
      return { complete: true, undelivered: [] };
    }
    let waiter: FlushWaiter | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const report = await new Promise<FlushReport>((resolve) => {
      waiter = { upTo, settle: resolve };
      this.#waiters.push(waiter);
      // A delay past setTimeout's limit would fire at once: Infinity (or more) means no timeout.
      if (!(timeoutMs > MAX_TIMER_MS)) timer = setTimeout(() => resolve({ complete: false, undelivered: this.#pendingRefs(upTo) }), Math.max(0, timeoutMs || 0));
    });
    clearTimeout(timer);
    this.#waiters = this.#waiters.filter((w) => w !== waiter);
    this.#flushing -= 1;
    return report;
  }

  /**
   * Stops taking events, flushes (for at most `timeoutMs`), then aborts what is still in flight,
   * releases every timer and destroys the client if the notifier created it. What was not delivered
   * is logged and handed to `onError`; {@link shutdown} also returns it. Idempotent (the first
   * call's `timeoutMs` holds).
   *
   * @param timeoutMs @default `flushTimeoutMs`. 0 gives up at once on what is not delivered yet
   *   (after a flush that already waited: `@progress/tracker`'s `close()` passes what is left of
   *   `flushTimeoutMs` for a notifier it created; core's `ProgressTracker` never closes a sink).
   * @throws ProgressError `INVALID_ARGUMENT` for a `timeoutMs` that is not a number >= 0.
   */
  async close(timeoutMs?: number): Promise<void> {
    await this.shutdown(timeoutMs);
  }

  /** {@link close}, resolving with what was not delivered and the final counters. Idempotent. */
  shutdown(timeoutMs: number = this.#opts.flushTimeoutMs): Promise<CloseReport> {
    if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs) || timeoutMs < 0) {
      return Promise.reject(new ProgressError('INVALID_ARGUMENT', `[@progress/notifier-eventbridge] the close timeout must be a number of ms >= 0, got ${describeValue(timeoutMs)}`));
    }
    this.#closing ??= (async () => {
      const report = await this.drain(timeoutMs);
      this.#closed = true;
      this.#clearTimers();
      this.#logDrops();
      const undelivered = this.#pendingRefs();
      // Flushes still waiting (called beside this close) learn which of their events were abandoned.
      for (const { upTo, settle } of this.#waiters.splice(0)) {
        const theirs = this.#pendingRefs(upTo);
        settle({ complete: theirs.length === 0, undelivered: theirs });
      }
      for (const flight of this.#inFlight) {
        flight.stopTimers();
        flight.controller.abort();
      }
      this.#inFlight.clear();
      this.#fresh.clear();
      this.#freshBytes = 0;
      this.#retry = [];
      if (undelivered.length > 0) {
        this.#counters.failed += undelivered.length;
        this.#logger.warn({ undelivered: undelivered.length, busName: this.#opts.busName }, 'eventbridge notifier closed with undelivered events');
        this.#report({ reason: 'closed', events: undelivered });
      }
      if (this.#ownsClient) this.#client.destroy();
      return { complete: report.complete && undelivered.length === 0, undelivered, stats: this.stats() };
    })();
    return this.#closing;
  }

  /** `await using notifier = ...` closes it. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** The counters, and what is queued and in flight now. */
  stats(): NotifierStats {
    let inFlight = 0;
    for (const flight of this.#inFlight) inFlight += flight.items.length;
    return { ...this.#counters, queued: this.#queued(), inFlight };
  }

  // ---------------------------------------------------------------- formatting

  #makeItem(event: ProgressEvent, state: Readonly<UpgradeProgress>, ref: UndeliveredEvent): Item | undefined {
    const { source, busName, maxBatchBytes } = this.#opts;
    const detail = buildDetail(event, state);
    // Refused here, as what is not an event is: the SDK wrote an invalid date's Time as NaN, which
    // made the body of the whole request invalid JSON, and EventBridge refused (400) every event
    // batched with it; and JSON.stringify threw its TypeError (a BigInt, a cycle) out of handle().
    // A string first, as every store requires: new Date() reads null, a number or true as a time too.
    const time = new Date(typeof event.timestamp === 'string' ? event.timestamp : NaN);
    if (Number.isNaN(time.getTime())) throw invalidEvent(event, `an event whose timestamp is a date string, got ${describeValue(event.timestamp)}`);
    let json: string;
    try {
      json = JSON.stringify(detail);
    } catch (cause) {
      // An upgrade.created's entry holds the state's metadata, the others' (some) the event's details.
      const what = event.type === 'upgrade.created' ? 'a state whose metadata' : 'an event whose details';
      throw invalidEvent(event, `${what} can be written as JSON (${(cause as Error)?.message ?? describeValue(cause)})`, cause);
    }
    const entry: PutEventsRequestEntry = { Source: source, DetailType: event.type, Detail: json, EventBusName: busName, Resources: [], Time: time };
    let size = entrySize(entry);
    if (size > maxBatchBytes) {
      const full = size;
      // The room left for the detail: the limit less the entry's other parts (nothing when a long
      // `source` alone is over it: the entry is then too large, as one whose identifiers are).
      const fitted = fitDetail(event.type, detail, Math.max(0, maxBatchBytes - (size - Buffer.byteLength(entry.Detail!, 'utf8'))));
      this.#counters.trimmed += 1;
      if (fitted === undefined) {
        entry.Detail = JSON.stringify(trimDetail(event.type, detail));
        this.#giveUp([ref], 'too_large', 'EntryTooLarge', `entry of ${entrySize(entry)} bytes exceeds maxBatchBytes ${maxBatchBytes} even trimmed (its identifiers and source are never cut)`);
        return undefined;
      }
      entry.Detail = fitted;
      size = entrySize(entry);
      this.#logger.warn({ upgradeId: event.upgradeId, seq: event.seq, type: event.type, bytes: full, maxBatchBytes }, 'eventbridge entry too large: detail trimmed');
    }
    const now = clock();
    return { no: ++this.#lastNo, entry, size, ref, attempts: 0, queuedAt: now, readyAt: now };
  }

  // ---------------------------------------------------------------- sending

  #schedulePump(): void {
    if (this.#immediate !== undefined || this.#closed) return;
    this.#immediate = setImmediate(() => {
      this.#immediate = undefined;
      this.#pump();
    });
  }

  /** Sends as many batches as the free request slots and the batching rules allow. */
  #pump(): void {
    if (this.#closed || this.#region === 'pending') return;
    if (this.#region !== 'known') {
      // Nothing can be signed without a region: given up on at once, not retried.
      const items = [...this.#retry.splice(0), ...this.#fresh];
      this.#fresh.clear();
      this.#freshBytes = 0;
      if (items.length > 0) this.#giveUp(items.sort((a, b) => a.no - b.no).map((i) => i.ref), 'rejected', this.#region.code, this.#region.message);
      return;
    }
    const now = clock();
    if (now < this.#pausedUntil) {
      this.#arm(this.#pausedUntil);
      return;
    }
    const { maxBatchEntries, maxBatchBytes, lingerMs, maxConcurrentRequests } = this.#opts;
    while (this.#inFlight.size < maxConcurrentRequests) {
      let readyRetries = 0;
      let readyBytes = this.#freshBytes;
      let nextReadyAt = Infinity;
      for (const item of this.#retry) {
        if (item.readyAt <= now) {
          readyRetries += 1;
          readyBytes += item.size;
        } else if (item.readyAt < nextReadyAt) nextReadyAt = item.readyAt;
      }
      if (nextReadyAt < Infinity) this.#arm(nextReadyAt);
      const ready = readyRetries + this.#fresh.length;
      if (ready === 0) return;
      // A partial batch waits up to lingerMs for more entries, unless the notifier is idle: nothing
      // in flight and nothing sent for lingerMs (then a lone event goes at once).
      const oldest = this.#fresh.peek()?.queuedAt ?? now;
      const full = ready >= maxBatchEntries || readyBytes >= maxBatchBytes;
      const deadline = (this.#inFlight.size === 0 ? Math.min(oldest, this.#lastSendAt) : oldest) + lingerMs;
      if (!full && readyRetries === 0 && this.#flushing === 0 && deadline > now) {
        this.#arm(deadline);
        return;
      }
      this.#send(this.#takeBatch(now));
    }
  }

  #takeBatch(now: number): Item[] {
    const { maxBatchEntries, maxBatchBytes } = this.#opts;
    const batch: Item[] = [];
    let bytes = 0;
    if (this.#retry.length > 0) {
      const keep: Item[] = [];
      for (const item of this.#retry) {
        if (batch.length < maxBatchEntries && item.readyAt <= now && bytes + item.size <= maxBatchBytes) {
          batch.push(item);
          bytes += item.size;
        } else keep.push(item);
      }
      this.#retry = keep;
    }
    while (batch.length < maxBatchEntries) {
      const next = this.#fresh.peek();
      if (!next || bytes + next.size > maxBatchBytes) break;
      this.#shiftFresh();
      batch.push(next);
      bytes += next.size;
    }
    return batch;
  }

  #send(items: Item[]): void {
    const { requestTimeoutMs } = this.#opts;
    let timedOut = false;
    const timers: { request?: ReturnType<typeof setTimeout>; grace?: ReturnType<typeof setTimeout> } = {};
    const flight: Flight = {
      items,
      controller: new AbortController(),
      stopTimers: () => {
        clearTimeout(timers.request);
        clearTimeout(timers.grace);
      },
    };
    this.#inFlight.add(flight);
    this.#counters.requests += 1;
    this.#lastSendAt = clock();
    for (const item of items) item.attempts += 1;
    const offsetAtSend = this.#clockOffset();
    timers.request = setTimeout(() => {
      timedOut = true;
      flight.controller.abort();
      // The SDK's abort ends the HTTP exchange only: a request still loading its credentials (an STS
      // or a metadata endpoint that never answers: the SDK's own STS client sets no timeout) goes on
      // until they come, if ever. It held its entries and its request slot for good, unretried and
      // unreported. It may still end on its own for a while (its own error keeps its own code);
      // then it is given up on, as the timeout it is, and a late end of it is ignored.
      timers.grace = setTimeout(() => {
        if (!this.#inFlight.has(flight)) return;
        this.#inFlight.delete(flight);
        try {
          this.#onRequestError(items, undefined, offsetAtSend, true, abortGraceMs(requestTimeoutMs));
        } catch (err) {
          // As for an answer (see below): a timer callback that threw would end the process.
          this.#logger.error({ err }, 'eventbridge notifier: internal error while handling an answer');
        }
        this.#pump();
        this.#checkWaiters();
      }, abortGraceMs(requestTimeoutMs));
    }, requestTimeoutMs);
    let request: Promise<PutEventsCommandOutput>;
    try {
      request = Promise.resolve(this.#client.send(new PutEventsCommand({ Entries: items.map((i) => i.entry) }), { abortSignal: flight.controller.signal }));
    } catch (err) {
      request = Promise.reject(err);
    }
    request
      .then(
        (out) => {
          if (this.#inFlight.has(flight)) this.#onAnswer(items, out);
        },
        (err: unknown) => {
          if (this.#inFlight.has(flight)) this.#onRequestError(items, err, offsetAtSend, timedOut);
        },
      )
      .catch((err: unknown) => this.#logger.error({ err }, 'eventbridge notifier: internal error while handling an answer'))
      .finally(() => {
        flight.stopTimers();
        this.#inFlight.delete(flight);
        this.#pump();
        this.#checkWaiters();
      });
  }

  #onAnswer(items: Item[], out: PutEventsCommandOutput): void {
    this.#requestFailures = 0;
    const results = out.Entries ?? [];
    const failedCount = out.FailedEntryCount ?? 0;
    const rejected = new Map<string, { message: string; refs: UndeliveredEvent[] }>();
    const now = clock();
    let unanswered = 0;
    let unansweredGivenUp = 0;
    // The entries to send again, with why. They share one backoff (see #onRequestError): each drawing
    // its own jittered delay sent the throttled entries of one answer as as many requests, in a random order.
    const again: Array<{ item: Item; code: string; message: string; missing?: true }> = [];
    items.forEach((item, i) => {
      const result = results[i];
      const code = result?.ErrorCode;
      if (code) {
        if (this.#opts.retry.retryableEntryCodes.includes(code)) again.push({ item, code, message: result.ErrorMessage ?? '' });
        else {
          const group = rejected.get(code) ?? { message: result.ErrorMessage ?? '', refs: [] };
          group.refs.push(item.ref);
          rejected.set(code, group);
        }
      } else if (result?.EventId) this.#counters.sent += 1;
      else {
        // No result for this entry (a short Entries array, or one with neither EventId nor ErrorCode):
        // nothing says it was delivered, even when FailedEntryCount is 0. Retried (within retry.maxAttempts), then
        // reported as MissingResult when the answers keep lacking it.
        unanswered += 1;
        again.push({ item, code: 'MissingResult', message: 'the PutEvents answer has no result for this entry', missing: true });
      }
    });
    if (again.length > 0) {
      const readyAt = now + backoffDelay(Math.max(...again.map((a) => a.item.attempts)), this.#opts.retry);
      for (const { item, code, message, missing } of again) {
        if (!this.#retryItem(item, now, code, message, readyAt) && missing) unansweredGivenUp += 1;
      }
    }
    if (unanswered > 0) {
      this.#logger.warn(
        { unanswered, retried: unanswered - unansweredGivenUp, givenUp: unansweredGivenUp, entries: items.length, results: results.length, failedEntryCount: failedCount },
        unansweredGivenUp === unanswered ? 'PutEvents answer without a result for some entries; out of attempts, given up' : 'PutEvents answer without a result for some entries; retrying them',
      );
    }
    for (const [code, { message, refs }] of rejected) this.#giveUp(refs, 'rejected', code, message);
    this.#sortRetries();
  }

  /**
   * @param abandonedAfterMs Set when the request did not end when aborted, and was given up on this
   *   long after the abort (`err` is then undefined).
   */
  #onRequestError(items: Item[], err: unknown, offsetAtSend: number | undefined, timedOut: boolean, abandonedAfterMs?: number): void {
    const offsetNow = this.#clockOffset();
    const { requestTimeoutMs } = this.#opts;
    // Aborted by our own timer: named as the timeout it is. The SDK's error for it is an `AbortError`,
    // "Request aborted", which said neither that the request had timed out nor which setting to look at.
    // Only an error the abort made: one the request got on its own after the timer fired (its
    // credentials provider failing late, before anything was sent) keeps its own code and message.
    const info =
      abandonedAfterMs !== undefined
        ? { retryable: true, code: 'RequestTimeout', message: `no answer within requestTimeoutMs (${requestTimeoutMs} ms), and the request did not end when aborted (its credentials still loading?): given up on ${abandonedAfterMs} ms later`, status: undefined }
        : timedOut && endedByAbort(err)
          ? { retryable: true, code: 'RequestTimeout', message: `no answer within requestTimeoutMs (${requestTimeoutMs} ms): the request was aborted`, status: undefined }
          : classifyRequestError(err, offsetAtSend === undefined || offsetNow === undefined ? undefined : offsetNow - offsetAtSend);
    if (!info.retryable) {
      this.#logger.error({ err, busName: this.#opts.busName, entries: items.length }, 'eventbridge rejected a PutEvents request; its entries are given up on');
      this.#giveUp(
        items.map((i) => i.ref),
        'rejected',
        info.code,
        info.message,
      );
      return;
    }
    this.#requestFailures += 1;
    const now = clock();
    // One backoff for the whole request (grown with the consecutive failures, or with its entries'
    // attempts when other requests succeeded meanwhile): its entries wait out the pause together and
    // go again as the request they were, in their order, ahead of the events handled since. Each
    // entry drawing its own jittered delay split a throttled request of 10 into up to 10 requests,
    // to an endpoint that had asked for less, in a random order, after newer events.
    const failures = Math.max(this.#requestFailures, ...items.map((i) => i.attempts));
    this.#pausedUntil = Math.max(this.#pausedUntil, now + backoffDelay(failures, this.#opts.retry));
    this.#logger.warn({ err, code: info.code, status: info.status, entries: items.length, failures: this.#requestFailures }, 'PutEvents request failed; retrying');
    for (const item of items) this.#retryItem(item, now, info.code, info.message, this.#pausedUntil);
    this.#sortRetries();
  }

  /**
   * Queues `item` to be sent again after its backoff (at `readyAt` when given: the pause of a failed
   * request); false when it is out of attempts and was given up instead.
   */
  #retryItem(item: Item, now: number, code: string, message: string, readyAt?: number): boolean {
    if (item.attempts >= this.#opts.retry.maxAttempts) {
      this.#giveUp([item.ref], 'retries_exhausted', code, message);
      return false;
    }
    item.readyAt = readyAt ?? now + backoffDelay(item.attempts, this.#opts.retry);
    this.#retry.push(item);
    this.#counters.retried += 1;
    return true;
  }

  /**
   * Keeps the retries in the order `handle()` took them: requests answer in any order, and both the
   * drop-oldest policy (which drops `#retry[0]`) and the order of resent entries rely on it.
   */
  #sortRetries(): void {
    this.#retry.sort((a, b) => a.no - b.no);
  }

  // ---------------------------------------------------------------- bookkeeping

  #giveUp(refs: UndeliveredEvent[], reason: DeliveryFailureReason, errorCode: string, errorMessage: string): void {
    this.#counters.failed += refs.length;
    this.#logger.error({ reason, errorCode, errorMessage, events: refs.length, first: refs[0] }, 'eventbridge entries given up on');
    this.#report({ reason, errorCode, errorMessage, events: refs });
  }

  #drop(ref: UndeliveredEvent, why: string): void {
    this.#counters.dropped += 1;
    this.#dropsSinceLog += 1;
    this.#dropWhy = why;
    const now = clock();
    if (now - this.#lastDropLog >= DROP_LOG_INTERVAL_MS) this.#logDrops();
    else if (this.#dropLogTimer === undefined && !this.#closed) {
      // The drops of this interval are logged when it ends (or at close), even if no other drop
      // comes then: otherwise a burst would be logged as its first drop alone. Unref'd: a log line
      // is no reason to keep the process alive. Not after close, which released every timer: the
      // drops of a closed notifier (each one reported to onError) are logged at most every 10 s.
      this.#dropLogTimer = setTimeout(() => this.#logDrops(), this.#lastDropLog + DROP_LOG_INTERVAL_MS - now);
      this.#dropLogTimer.unref?.();
    }
    this.#report({ reason: 'dropped', errorMessage: why, events: [ref] });
  }

  /** Logs the drops not logged yet (at most every 10 s; see #drop). */
  #logDrops(): void {
    clearTimeout(this.#dropLogTimer);
    this.#dropLogTimer = undefined;
    if (this.#dropsSinceLog === 0) return;
    const dropped = this.#dropsSinceLog;
    this.#lastDropLog = clock();
    this.#dropsSinceLog = 0;
    this.#logger.warn({ dropped, totalDropped: this.#counters.dropped, maxQueue: this.#opts.maxQueue, policy: this.#opts.dropPolicy, why: this.#dropWhy }, 'eventbridge notifier dropped events');
  }

  #report(failure: DeliveryFailure): void {
    if (!this.#onError) return;
    const threw = (err: unknown): void => this.#logger.warn({ err }, 'eventbridge notifier: onError threw');
    try {
      // An async hook (a `(failure) => void` to TypeScript) that rejects: contained as a throw is,
      // not left as an unhandled rejection, which ends the process.
      const result: unknown = this.#onError(failure);
      if (result !== null && (typeof result === 'object' || typeof result === 'function') && typeof (result as PromiseLike<unknown>).then === 'function') {
        Promise.resolve(result).then(undefined, threw);
      }
    } catch (err) {
      threw(err);
    }
  }

  #shiftFresh(): Item | undefined {
    const item = this.#fresh.shift();
    if (item) this.#freshBytes -= item.size;
    return item;
  }

  #queued(): number {
    return this.#fresh.length + this.#retry.length;
  }

  /** The lowest number of an item queued or in flight (Infinity when none is). */
  #oldestPending(): number {
    // Fresh items are in the order they were taken: the first is the oldest of them.
    let oldest = this.#fresh.peek()?.no ?? Infinity;
    for (const item of this.#retry) if (item.no < oldest) oldest = item.no;
    for (const flight of this.#inFlight) for (const item of flight.items) if (item.no < oldest) oldest = item.no;
    return oldest;
  }

  /** Settles the flushes whose items are all delivered or given up on. */
  #checkWaiters(): void {
    if (this.#waiters.length === 0) return;
    const oldest = this.#oldestPending();
    for (const waiter of this.#waiters) if (waiter.upTo < oldest) waiter.settle({ complete: true, undelivered: [] });
  }

  /** The events queued or in flight, up to item number `upTo`. */
  #pendingRefs(upTo = Infinity): UndeliveredEvent[] {
    const refs: UndeliveredEvent[] = [];
    for (const flight of this.#inFlight) for (const item of flight.items) if (item.no <= upTo) refs.push(item.ref);
    for (const item of this.#retry) if (item.no <= upTo) refs.push(item.ref);
    for (const item of this.#fresh) if (item.no <= upTo) refs.push(item.ref);
    return refs.sort((a, b) => (a.upgradeId === b.upgradeId ? a.seq - b.seq : a.upgradeId < b.upgradeId ? -1 : 1));
  }

  /** The client's clock offset (`config.systemClockOffset`, which the SDK corrects by the server's Date header), if it has one. */
  #clockOffset(): number | undefined {
    const offset = (this.#client.config as { systemClockOffset?: unknown } | undefined)?.systemClockOffset;
    return typeof offset === 'number' ? offset : undefined;
  }

  #arm(at: number): void {
    if (this.#closed || (this.#timer !== undefined && this.#timerAt <= at)) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#pump();
    }, Math.max(0, at - clock()));
  }

  #clearTimers(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
    if (this.#immediate !== undefined) clearImmediate(this.#immediate);
    this.#immediate = undefined;
    this.#stopRegionWait?.(new Error('the notifier was closed before the region was known'));
  }
}
