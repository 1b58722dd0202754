import { applyEventInPlace, cloneState, isProgressError, type Logger, type ProgressEvent, type ProgressStore, type ProgressTracker, type UpgradeProgress } from '@progress/core';
import { textFrame } from './frame.js';
import type { ResyncReason } from './protocol.js';
import type { ServerStats } from './stats.js';
import type { Subscription } from './subscription.js';

/** What a {@link Topic} needs from its server. */
export interface TopicHost {
  readonly store: ProgressStore | undefined;
  readonly logger: Logger;
  readonly stats: ServerStats;
  readonly maxBufferedBytes: number;
  /** A topic became readable or took a new event: give the `*` subscribers their part. */
  attachWildcards(topic: Topic): void;
  /**
   * A load made for the `*` subscribers (an event of watchAll for a topic not loaded yet, or a reload)
   * failed: tell them, and have the topic load again later while they are owed it.
   */
  loadFailed(topic: Topic, err: unknown): void;
  /** The store holds this upgrade no more (deleted, expired): `*` subscribers let go of it, and it goes unless someone follows it by name. */
  gone(topic: Topic): void;
}

const WATCH_RETRY_MS = 1000;
/** How long {@link Topic.confirmRun} waits for a load or reload of the store running now to end. */
const CONFIRM_WAIT_MS = 2000;
/** How many reads {@link Topic.confirmRun} makes at most when each comes back overtaken by the topic's own moves. */
const CONFIRM_READS = 3;
/** The first wait before loading again after a failed load (see {@link Topic.reloadLater}); it doubles up to RELOAD_MAX_MS. */
const RELOAD_MIN_MS = 1000;
const RELOAD_MAX_MS = 10_000;
/** The wait after `ms` in a backoff: RELOAD_MIN_MS first, then doubling up to RELOAD_MAX_MS. */
const nextWait = (ms: number): number => Math.min(RELOAD_MAX_MS, ms === 0 ? RELOAD_MIN_MS : ms * 2);

/** The JSON of a `progress_event` frame. */
export function progressEventText(event: ProgressEvent): string {
  return `{"type":"progress_event","upgradeId":${JSON.stringify(event.upgradeId)},"data":${JSON.stringify(event)}}`;
}

/**
 * Everything the server knows of one upgrade: where its events come from (a tracker of this
 * process, the store's `watch()`/`watchAll()`, or a bare sink call), its current durable state, and
 * its subscribers. Each live event is serialized and framed once here, then the same bytes go to
 * every subscriber.
 */
export class Topic {
  tracker: ProgressTracker | undefined;
  readonly subs = new Set<Subscription>();
  readonly #host: TopicHost;
  #sinkState: Readonly<UpgradeProgress> | undefined;
  #storeState: UpgradeProgress | undefined;
  #storeFed = false;
  /** A refill came while a fill was running: fill once more when it is done. */
  #fillAgain = false;
  #loading: Promise<void> | undefined;
  /**
   * How many store events {@link ingest} did not apply in order (held, dropped for a reload, or of
   * another run): a confirming read sent before one may be older than what the topic knows (see
   * {@link confirmRun}). Events of the run held, applied in order, tell nothing a read could contradict.
   */
  #unordered = 0;
  /** The confirming read in flight, and the one that follows it for those who asked meanwhile (see {@link confirmRun}). */
  #confirming: Promise<void> | undefined;
  #confirmQueued: Promise<void> | undefined;
  #busyNow = false;
  /** Who waits for a load, fill or reload of the store to end (see {@link confirmRun}). */
  #idleWaiters: Array<() => void> = [];
  /** A load, fill or reload of the store runs now. */
  get #busy(): boolean {
    return this.#busyNow;
  }
  set #busy(value: boolean) {
    this.#busyNow = value;
    if (!value) for (const wake of this.#idleWaiters.splice(0)) wake();
  }
  /** Store events held until the load, fill or reload they wait for ends (see {@link #holdEvent}), and their bytes as frames. */
  #pending: ProgressEvent[] = [];
  #pendingBytes = 0;
  /**
   * Held events were dropped (see {@link #holdEvent}) while a load or reload of the store was out: it
   * may have read the store before them, so the state is reloaded once more when it ends.
   */
  #reloadAgain = false;
  /**
   * The wait before the reload that follows a load or reload overrun by events (see #reloadAgain):
   * RELOAD_MIN_MS after the first of a row, doubling up to RELOAD_MAX_MS, back to none once one is not
   * overrun. Not #refitMs, which each event applied in order resets: a busy upgrade whose slow store
   * is overrun on every read would otherwise be read back to back, every subscriber resynced each time.
   */
  #dropMs = 0;
  #watch: AbortController | undefined;
  #retry: NodeJS.Timeout | undefined;
  /** The next load after a failed one (see {@link reloadLater}), and the wait before it. */
  #reload: NodeJS.Timeout | undefined;
  #reloadMs = 0;
  /**
   * The next reload of the store's state after its events stopped fitting ours (another run under
   * the same id, or an event that does not apply), the wait after it, and whether one runs now.
   * Events that come while one waits are dropped (the reload reads past them); while it runs, held.
   */
  #refit: NodeJS.Timeout | undefined;
  #refitMs = 0;
  #refitting = false;
  /**
   * The next gap fill after one that could read neither the events nor the state (the store is
   * down), and the wait before it (RELOAD_MIN_MS doubling up to RELOAD_MAX_MS). Until it runs, the
   * events that show the gap stay in #pending: filling again at once would loop in microtasks, with
   * nothing else running, for as long as the store stays down. (Not for ever: past a bound they are
   * dropped, and a reload of the state takes the place of the fill, see {@link #holdEvent}.)
   */
  #fillRetry: NodeJS.Timeout | undefined;
  #fillMs = 0;
  /** Moves at close(): a reload begun before it changes nothing after it and arms no timer. (A topic the server keeps across stop() and start() is used again: not a flag that stays set.) */
  #lifetime = 0;
  #snapshot: { seq: number; frame: Buffer } | undefined;
  /** Moves when the upgrade was deleted (and maybe created again): a replay begun before is void. */
  #generation = 0;
  /**
   * Set when a tracker was untracked with nobody subscribed and the store can watch: the tracker's
   * last state is kept, but the next reader asks the store first, which may hold more of the same
   * upgrade (another process went on writing it) or nothing (the tracker wrote to another store).
   */
  #askStore = false;
  /**
   * The store event applied last (its seq and eventId), and the state it was applied to: valid while
   * that state object is still the one held (a load or reload replaces it). The store's history can
   * change under a seq already served: a failover that lost acknowledged appends, where the next
   * writer wrote other events under their seqs. `watchAll()` then hands the upgrade out again from
   * seq 1 (RedisStore on a Cluster), or ends and the server reads on from the seq held (single-node
   * mode): both would put the new history's later events on the lost ones. The fill confirms the
   * event served last first (see {@link #served} and {@link #fill}).
   */
  #appliedTo: UpgradeProgress | undefined;
  #appliedSeq = 0;
  #appliedId = '';

  constructor(
    readonly upgradeId: string,
    host: TopicHost,
  ) {
    this.#host = host;
  }

  /** The durable state subscribers see, or undefined when the upgrade does not exist (yet). */
  get state(): Readonly<UpgradeProgress> | undefined {
    if (this.tracker) return this.tracker.durableProgress;
    return this.#storeFed ? this.#storeState : this.#sinkState;
  }

  get exists(): boolean {
    return this.state !== undefined;
  }

  get lastSeq(): number {
    return this.state?.lastSeq ?? 0;
  }

  /** True when {@link ensureLoaded} has nothing to read from the store (loaded, or served by a tracker or as a sink). */
  get loaded(): boolean {
    return !this.#askStore && (!this.storeBacked || this.#storeFed);
  }

  /** True while a load of the store runs that a caller of {@link ensureLoaded} would join (it was sent before that caller asked). */
  get loadInFlight(): boolean {
    return !this.loaded && this.#loading !== undefined;
  }

  /** True while this topic follows the store (no tracker of this process writes it). */
  get storeBacked(): boolean {
    return !this.tracker && this.#host.store !== undefined && this.#sinkState === undefined;
  }

  /**
   * Reads what the store holds after this topic's last seq and hands it out: after the store's
   * `watchAll()` failed, events it never delivered would otherwise wait for the next event of this
   * upgrade to show the gap (and the last events of an upgrade never would).
   */
  refill(): void {
    if (this.tracker || !this.#storeFed) return;
    // A fill running now may have read before what was missed: it fills again when it is done.
    if (this.#busy) this.#fillAgain = true;
    else void this.#fill();
  }

  /**
   * Loads a store-backed topic's state once (no-op for a tracked one). Rejects with the store's error
   * when the store fails, to every caller waiting on that load, and keeps nothing of it: a failure is
   * not an upgrade that does not exist, and the next call asks the store again.
   */
  ensureLoaded(): Promise<void> {
    if (this.#askStore) {
      this.#loading ??= this.#settled(this.#adoptStore());
      return this.#loading;
    }
    if (!this.storeBacked) return Promise.resolve();
    this.#loading ??= this.#settled(this.#load());
    return this.#loading;
  }

  /** A load that, when it fails, is forgotten (unless another took its place meanwhile), so that the next reader tries again. */
  #settled(load: Promise<void>): Promise<void> {
    const loading: Promise<void> = load.catch((err: unknown) => {
      if (this.#loading === loading) this.#loading = undefined;
      throw err;
    });
    return loading;
  }

  /**
   * Loads again after a while, after a failed load that `*` subscribers are owed (nobody asks for the
   * topic by name then, and an upgrade that writes no more events would never be asked for again).
   * The wait doubles from RELOAD_MIN_MS up to RELOAD_MAX_MS while loads fail.
   */
  reloadLater(): void {
    if (this.#reload) return;
    this.#reloadMs = nextWait(this.#reloadMs);
    this.#reload = setTimeout(() => {
      this.#reload = undefined;
      // A failure goes to loadFailed again, which asks for the next try.
      this.ensureLoaded().catch((err: unknown) => this.#host.loadFailed(this, err));
    }, this.#reloadMs);
  }

  #stopReload(): void {
    if (this.#reload) clearTimeout(this.#reload);
    this.#reload = undefined;
    this.#reloadMs = 0;
  }

  /** See #askStore: follows the store when it holds this upgrade (the same one, as far or further). */
  async #adoptStore(): Promise<void> {
    const lifetime = this.#lifetime;
    let stored: UpgradeProgress | undefined;
    try {
      stored = await this.#host.store!.load(this.upgradeId);
    } catch (err) {
      // Not "the store does not hold it": the kept state may be behind what the store holds, and
      // serving it as current (and never asking again) would hide that. The next reader asks again.
      this.#dropPending();
      this.#reloadAgain = false;
      this.#host.logger.warn({ err, upgradeId: this.upgradeId }, 'could not load an upgrade from the store');
      throw err;
    }
    this.#askStore = false;
    this.#loading = undefined;
    this.#stopReload();
    const last = this.#sinkState;
    if (this.tracker || !stored || !last || stored.createdAt !== last.createdAt || stored.lastSeq < last.lastSeq) {
      this.#dropPending();
      this.#reloadAgain = false;
      // `*` subscribers that were told this upgrade could not be read get it now.
      if (this.exists) this.#host.attachWildcards(this);
      return;
    }
    this.#sinkState = undefined;
    this.#storeState = stored;
    this.#storeFed = true;
    this.#loading = Promise.resolve();
    this.#snapshot = undefined;
    this.#drainPending();
    this.syncWatch();
    this.#host.attachWildcards(this);
    this.#reloadIfDropped(lifetime);
  }

  async #load(): Promise<void> {
    const store = this.#host.store!;
    const lifetime = this.#lifetime;
    this.#busy = true;
    try {
      this.#storeState = await store.load(this.upgradeId);
    } catch (err) {
      // Not "the upgrade does not exist": nothing is cached, and every caller waiting on this load
      // gets the error. The events held for it are dropped: the next load reads them from the store.
      this.#busy = false;
      this.#dropPending();
      this.#reloadAgain = false;
      this.#host.logger.warn({ err, upgradeId: this.upgradeId }, 'could not load an upgrade from the store');
      throw err;
    }
    this.#stopReload();
    this.#storeFed = true;
    this.#snapshot = undefined;
    this.#busy = false;
    this.#drainPending();
    if (this.exists) this.#host.attachWildcards(this);
    this.#reloadIfDropped(lifetime);
  }

  /** A tracker of this process now writes this upgrade: it becomes the source. */
  useTracker(tracker: ProgressTracker): void {
    const before = this.state;
    this.tracker = tracker;
    this.#askStore = false;
    this.#stopWatch();
    this.#stopReload();
    this.#stopFillRetry();
    this.#storeFed = false;
    this.#storeState = undefined;
    this.#sinkState = undefined;
    this.#loading = undefined;
    this.#dropPending();
    this.#reloadAgain = false;
    this.#snapshot = undefined;
    const now = tracker.durableProgress;
    // Another run under the same id (created anew: its seqs start again at 1): what subscribers
    // have is of the old one, and the new one's events must not land on it. A replay running now
    // sees the generation move and starts over.
    if (before !== undefined && before.createdAt !== now.createdAt) return this.#resyncAll();
    for (const sub of this.subs) {
      if (sub.closed || sub.replaying) continue;
      // Ahead of the new source: it cannot be the same history.
      if (sub.lastSent > now.lastSeq) this.#resync(sub, 'gap');
      else if (sub.lastSent < now.lastSeq) void this.catchUp(sub, sub.lastSent, false);
    }
  }

  /**
   * The tracker is gone: keep its last state, and follow the store again when it can be followed.
   * With nobody subscribed now, the next reader asks the store first (see #askStore).
   */
  dropTracker(): void {
    if (!this.tracker) return;
    const last = cloneState(this.tracker.durableProgress);
    this.tracker = undefined;
    this.#sinkState = last;
    this.#snapshot = undefined;
    this.#loading = undefined;
    if (this.#host.store?.watch && this.subs.size === 0) this.#askStore = true;
    else if (this.#host.store?.watch) {
      this.#sinkState = undefined;
      this.#storeState = last;
      this.#storeFed = true;
      this.#loading = Promise.resolve();
      this.syncWatch();
    }
  }

  /** An event handed to the server as a sink. */
  fromSink(event: ProgressEvent, state: Readonly<UpgradeProgress>): void {
    // Only the tracked tracker's: another one of the same upgrade id (an older run not untracked yet,
    // a second writer) hands its own events and state, which are not this topic's history.
    if (this.tracker) return state === this.tracker.durableProgress ? this.dispatch(event) : undefined;
    if (this.#storeFed) return this.ingest(event);
    // A tracker that has the server as a sink without track(): its state object is its durable state.
    const before = this.#sinkState;
    if (before !== undefined && state !== before) {
      // Another tracker of this id. An older run (one still closing after a new one started) is not
      // served: it would take the subscribers back to it. A newer run (created anew: its seqs start
      // again at 1), also one created in the same millisecond (it starts with seq 1 again, or below
      // the seq held), replaces it: subscribers are sent its state, as when another run is tracked.
      // A tracker reopened on the same run goes on from the seq held: nothing to do. (A run's
      // `upgrade.created` is a new run whatever its time says: a clock stepped back may date it
      // before the old one, and an old run still closing never sends one.)
      if (state.createdAt < before.createdAt && event.type !== 'upgrade.created') return;
      if (state.createdAt > before.createdAt || event.type === 'upgrade.created' || event.seq <= before.lastSeq) {
        this.#sinkState = state;
        return this.#resyncAll();
      }
    }
    this.#sinkState = state;
    this.dispatch(event);
  }

  /** An event from the store (watch, watchAll): applied in seq order, gaps filled from the store. */
  ingest(event: ProgressEvent): void {
    // A tracker of this process, or a kept last state that is not the store's: not for the store's events.
    if (this.tracker || (!this.storeBacked && !this.#askStore)) return;
    if (this.#busy || !this.#storeFed) {
      this.#unordered++;
      this.#holdEvent(event);
      // An event of watchAll, for the `*` subscribers: a failed load is theirs to hear of (loadFailed),
      // and while a reload waits, events do not load again (that would bypass its backoff).
      if (!this.#storeFed && this.#reload === undefined) this.ensureLoaded().catch((err: unknown) => this.#host.loadFailed(this, err));
      return;
    }
    if (this.#refit) {
      this.#unordered++;
      return;
    }
    // Another run under this id (deleted and created again): its seqs start again at 1, and none of
    // them belongs on the state held here. A store watch() ends with NOT_FOUND then (see #restart);
    // watchAll() just hands out the new run's events.
    if (event.type === 'upgrade.created' && this.#storeState !== undefined && event.timestamp !== this.#storeState.createdAt) {
      this.#unordered++;
      return this.#refitLater('it was created again');
    }
    const last = this.lastSeq;
    if (event.seq <= last) {
      // The upgrade handed out again from its start, of the run served here: watchAll() does that
      // when the store's history changed under seqs it handed out. The fill confirms the event
      // served last (a repeat of a start read before the load costs a read of one event).
      if (event.seq === 1 && last > 1 && this.#served() !== undefined) this.refill();
      return;
    }
    if (event.seq > last + 1) {
      this.#unordered++;
      this.#holdEvent(event);
      // While a fill waits to try again (see #fillRetry), the events wait with it.
      if (this.#fillRetry === undefined) void this.#fill();
      return;
    }
    this.#apply(event);
  }

  #apply(event: ProgressEvent): void {
    try {
      this.#storeState = applyEventInPlace(this.#storeState, event);
      this.#appliedTo = this.#storeState;
      this.#appliedSeq = event.seq;
      this.#appliedId = event.eventId;
    } catch (err) {
      // Not ignored: the next event would look like a gap, the fill would read this one again, and
      // fail again, for ever. The state held here does not fit the store's history: reload it.
      return this.#refitLater('an event from the store does not apply to the state held', err);
    }
    this.#refitMs = 0;
    this.dispatch(event);
  }

  /**
   * The store event at the seq served last, as the state held knows it: the event applied last (its
   * eventId), while the state held is still the one it was applied to and at its seq; else (a state
   * loaded or reloaded from the store, with no event applied since) that seq with its event's
   * timestamp, which the reducer keeps as the state's `updatedAt`. A loaded state may hold events a
   * failover lost too (a '*' client connected, or watchAll brought the upgrade, after they were
   * written): unchecked, the new history's later events landed on them.
   */
  #served(): { seq: number; eventId?: string; timestamp?: string } | undefined {
    const state = this.#storeState;
    if (state === undefined) return undefined;
    if (this.#appliedTo === state && state.lastSeq === this.#appliedSeq) return { seq: this.#appliedSeq, eventId: this.#appliedId };
    return { seq: state.lastSeq, timestamp: state.updatedAt };
  }

  /** Reloads the store's state and resyncs every subscriber: at once the first time, then after a doubling wait while it keeps not fitting. */
  #refitLater(why: string, err?: unknown): void {
    this.#dropPending();
    if (this.#refit || this.#refitting) return;
    this.#host.logger.warn({ err, upgradeId: this.upgradeId, waitMs: this.#refitMs }, `${why}; reloading it from the store and resyncing subscribers`);
    const wait = this.#refitMs;
    this.#refitMs = nextWait(wait);
    this.#refitIn(wait);
  }

  #refitIn(ms: number): void {
    this.#refit = setTimeout(() => {
      this.#refit = undefined;
      void this.#refitNow();
    }, ms);
  }

  async #refitNow(): Promise<void> {
    const store = this.#host.store;
    if (!store || !this.storeBacked || !this.#storeFed) return;
    const lifetime = this.#lifetime;
    // A fill or load runs: let it end first (what it applies is replaced by the reload anyway).
    if (this.#busy) return this.#refitIn(10);
    this.#refitting = true;
    this.#busy = true;
    const generation = this.#generation;
    let state: UpgradeProgress | undefined;
    try {
      state = await store.load(this.upgradeId);
    } catch (err) {
      this.#busy = false;
      this.#refitting = false;
      if (lifetime !== this.#lifetime) return;
      // The next reload reads past whatever was dropped meanwhile.
      this.#reloadAgain = false;
      return this.#refitLater('could not reload it from the store', err);
    }
    this.#busy = false;
    this.#refitting = false;
    // Closed meanwhile, or a tracker of this process took over (it is the source now).
    if (lifetime !== this.#lifetime || !this.storeBacked) return;
    // Started over meanwhile (the watch found the upgrade deleted and read the store again): that
    // read may be the later one; this one would take the topic back to it. Held events follow on.
    if (generation === this.#generation) this.#startOver(state);
    // What came while it loaded follows the reloaded state (what it already holds is dropped).
    this.#drainPending();
    this.#reloadIfDropped(lifetime);
  }

  async #fill(): Promise<void> {
    if (this.#busy) return;
    // A fill asked for meanwhile (refill) runs now: the retry it would have been is this one.
    if (this.#fillRetry) clearTimeout(this.#fillRetry);
    this.#fillRetry = undefined;
    this.#busy = true;
    const store = this.#host.store!;
    const lifetime = this.#lifetime;
    const from = this.lastSeq;
    // Read from the event served last, to confirm the store still holds it (see #served).
    let applied = this.#served();
    let confirmed = applied === undefined;
    let failed = false;
    try {
      for (;;) {
        try {
          for await (const event of store.readEvents(this.upgradeId, applied ? from - 1 : from)) {
            if (!confirmed) {
              const same = applied!.eventId !== undefined ? event.eventId === applied!.eventId : event.timestamp === applied!.timestamp;
              if (event.seq !== applied!.seq || !same) break;
              confirmed = true;
            } else if (event.seq === this.lastSeq + 1) this.#apply(event);
          }
          break;
        } catch (err) {
          // Retention removed the event to confirm, maybe not the ones after it: read from the seq held.
          if (confirmed || !isTrimmed(err)) throw err;
          applied = undefined;
          confirmed = true;
        }
      }
    } catch (err) {
      confirmed = true;
      this.#host.logger.warn({ err, upgradeId: this.upgradeId }, 'could not fill a gap from the store; resyncing subscribers');
      try {
        this.#storeState = await store.load(this.upgradeId);
        this.#snapshot = undefined;
        for (const sub of this.subs) if (!sub.replaying) this.#resync(sub, isTrimmed(err) ? 'trimmed' : 'gap');
      } catch (loadErr) {
        this.#host.logger.warn({ err: loadErr, upgradeId: this.upgradeId, waitMs: nextWait(this.#fillMs) }, 'could not reload an upgrade from the store; filling the gap later');
        failed = true;
      }
    }
    this.#busy = false;
    if (failed) {
      // The store answered nothing: the events held still show the gap, and draining them now would
      // start this fill again at once, for ever (each failure answers within microtasks, and the
      // server would do nothing else). They stay held, in order, and the fill is tried again later.
      this.#fillAgain = false;
      // Not when a reload waits (held events were dropped): it reads the store, and backs off, instead.
      if (lifetime === this.#lifetime && this.storeBacked && this.#storeFed && this.#refit === undefined) {
        this.#fillMs = nextWait(this.#fillMs);
        this.#fillRetry = setTimeout(() => {
          this.#fillRetry = undefined;
          if (this.storeBacked && this.#storeFed) void this.#fill();
        }, this.#fillMs);
      }
      return;
    }
    this.#fillMs = 0;
    if (!confirmed) {
      this.#fillAgain = false;
      if (lifetime !== this.#lifetime || !this.storeBacked || !this.#storeFed) return;
      return this.#refitLater(`the store no longer holds event ${from} as served (acknowledged events lost in a failover?)`);
    }
    if (this.#fillAgain && this.#storeFed) {
      this.#fillAgain = false;
      return this.#fill();
    }
    // The store was read and holds nothing after our last seq, yet it delivered a later event: a hole
    // in its history. Draining would show the gap again and read again at once, for ever; the state
    // is reloaded instead (subscribers resynced), as for an event that does not fit.
    const next = this.#pending.reduce((min, e) => Math.min(min, e.seq), Infinity);
    if (this.lastSeq === from && next !== Infinity && next > this.lastSeq + 1 && lifetime === this.#lifetime && this.storeBacked) {
      return this.#refitLater(`the store holds no event ${this.lastSeq + 1} but delivered ${next}`);
    }
    this.#drainPending();
  }

  #stopFillRetry(): void {
    if (this.#fillRetry) clearTimeout(this.#fillRetry);
    this.#fillRetry = undefined;
    this.#fillMs = 0;
  }

  /**
   * Holds a store event until the load, fill or reload it waits for ends. What is held is bounded: a
   * store that cannot be read for minutes under a busy upgrade would otherwise grow the server's
   * memory for as long. Past half of `maxBufferedBytes` (counted as the frames they make: draining
   * more would write more than that to every subscriber at once, which closes it as slow) the held
   * events are dropped and the state is reloaded from the store instead, each subscriber sent
   * `resync` and the snapshot (see {@link #refitLater}): the store holds them, and nothing is sent
   * out of order. Until the reload is done, the events that come are dropped (while it waits) or held
   * (while it reads), as for any reload.
   */
  #holdEvent(event: ProgressEvent): void {
    this.#pending.push(event);
    this.#pendingBytes += Buffer.byteLength(progressEventText(event));
    if (this.#pendingBytes <= this.#host.maxBufferedBytes / 2) return;
    const why = `${this.#pending.length} events held for the store (${this.#pendingBytes} bytes) passed half of maxBufferedBytes; dropped them`;
    this.#dropPending();
    if (!this.#storeFed) {
      // Nothing of the store is served yet: the next load reads past them, but one out now may have
      // read before them (it reloads once more when it is done).
      if (this.#loading !== undefined) this.#reloadAgain = true;
      this.#host.logger.warn({ upgradeId: this.upgradeId }, why);
      return;
    }
    // The reload replaces the fill that waited to try again (and it backs off the same way).
    this.#stopFillRetry();
    if (this.#refitting) {
      this.#reloadAgain = true;
      this.#host.logger.warn({ upgradeId: this.upgradeId }, `${why}; reloading the upgrade again once the reload running now is done`);
    } else this.#refitLater(why);
  }

  /** Lets go of the held events. */
  #dropPending(): void {
    this.#pending = [];
    this.#pendingBytes = 0;
  }

  /**
   * After a load or reload begun in `lifetime`: one more when held events were dropped while it was
   * out (see #reloadAgain). Not for a topic closed meanwhile (the server stopped, or let it go while
   * it loaded): its reload would read a store that may be closed, and try again for ever.
   */
  #reloadIfDropped(lifetime: number): void {
    if (!this.#reloadAgain) {
      this.#dropMs = 0;
      return;
    }
    this.#reloadAgain = false;
    if (lifetime !== this.#lifetime || !this.storeBacked || !this.#storeFed) return;
    // The events that come until it runs are dropped (the reload reads past them).
    this.#dropPending();
    if (this.#refit || this.#refitting) return;
    const wait = this.#dropMs;
    this.#dropMs = nextWait(wait);
    this.#host.logger.warn({ upgradeId: this.upgradeId, waitMs: wait }, 'events held for the store were dropped while it was being read; reloading it from the store and resyncing subscribers');
    this.#refitIn(wait);
  }

  /** The store events held now (see {@link #holdEvent}): how many, and their bytes as frames. */
  get held(): { events: number; bytes: number } {
    return { events: this.#pending.length, bytes: this.#pendingBytes };
  }

  #drainPending(): void {
    const pending = this.#pending;
    this.#dropPending();
    pending.sort((a, b) => a.seq - b.seq);
    for (const event of pending) this.ingest(event);
  }

  /** Sends a durable event, in seq order, to every subscriber: serialized and framed once. */
  dispatch(event: ProgressEvent): void {
    this.#snapshot = undefined;
    this.#host.attachWildcards(this);
    if (this.subs.size === 0) return;
    const frame = textFrame(progressEventText(event));
    this.#host.stats.eventsFramed++;
    for (const sub of this.subs) {
      if (sub.closed) continue;
      if (sub.replaying) {
        sub.hold(event.seq, frame);
      } else if (event.seq === sub.lastSent + 1) {
        sub.lastSent = event.seq;
        sub.client.sendFrame(frame);
      } else if (event.seq > sub.lastSent) {
        // The subscriber is behind (it waited for an upgrade that appeared, or the source changed).
        sub.hold(event.seq, frame);
        void this.catchUp(sub, sub.lastSent, false);
      }
    }
  }

  /**
   * The `snapshot` message of the current state as a complete WebSocket frame, cached per seq: the
   * largest message is serialized and framed once, however many clients subscribe or resync at
   * that seq (as `dispatch` does for events).
   */
  #snapshotFrame(): { seq: number; frame: Buffer } | undefined {
    const state = this.state;
    if (!state) return undefined;
    if (this.#snapshot?.seq !== state.lastSeq) {
      this.#snapshot = { seq: state.lastSeq, frame: textFrame(JSON.stringify({ type: 'snapshot', upgradeId: this.upgradeId, seq: state.lastSeq, data: state })) };
    }
    return this.#snapshot;
  }

  /** Sends the snapshot to a subscriber and moves it to the snapshot's seq. */
  sendSnapshot(sub: Subscription): void {
    const snap = this.#snapshotFrame();
    if (snap) {
      sub.client.sendFrame(snap.frame);
      sub.lastSent = snap.seq;
    }
  }

  /**
   * Brings a subscriber from `afterSeq` to live: replays the stored events after it while holding
   * the live ones, then sends the held ones that follow the replay. No gap, no duplicate; `resync`
   * and a snapshot when the history is gone.
   *
   * @param fromClient The client asked for `afterSeq` (it may be beyond what exists).
   * @param createdAt The run the client's state is of (`subscribe`'s `createdAt`): another run than
   *   this one's gets a resync, even when its seq fits this one.
   */
  async catchUp(sub: Subscription, afterSeq: number, fromClient: boolean, createdAt?: string): Promise<void> {
    sub.replaying = true;
    sub.lastSent = afterSeq;
    const generation = this.#generation;
    try {
      if (fromClient && createdAt !== undefined && this.exists) {
        // A store that cannot be read cannot confirm the run: the catch below resyncs ('unavailable').
        const now = this.state ?? (this.storeBacked ? await this.#host.store!.load(this.upgradeId) : undefined);
        if (this.#generation !== generation) return this.#restartReplay(sub);
        if (now !== undefined && now.createdAt !== createdAt) return this.#resync(sub, 'gap');
      }
      if (fromClient && afterSeq > this.lastSeq) {
        if (!this.exists) return this.#resync(sub, 'ahead');
        // Not 'ahead' when the store cannot be read: the catch below says 'unavailable'.
        const fresh = this.storeBacked ? await this.#host.store!.load(this.upgradeId) : undefined;
        if (this.#generation !== generation) return this.#restartReplay(sub);
        if (!fresh || afterSeq > fresh.lastSeq) return this.#resync(sub, 'ahead');
      }
      for (let round = 0; round < 5; round++) {
        const result = await this.#replay(sub);
        if (result === 'closed') return;
        // Deleted (and maybe created again) while replaying: what was sent and held is of the old upgrade.
        if (this.#generation !== generation) return this.#restartReplay(sub);
        if (result !== 'ok') return this.#resync(sub, result);
        if (this.#drain(sub)) {
          if (sub.lastSent < this.lastSeq) {
            // The topic moved past what this replay read from a store that cannot watch (it took on
            // the store's newer state for another subscriber, while a sink's event was on its way):
            // the store has the rest, read it again.
            if (!this.tracker && this.#host.store && !this.#host.store.watch && round < 4) {
              sub.replaying = true;
              continue;
            }
            // The source ended before the state this topic holds, and nothing held follows: an upgrade
            // sent to this server as a sink (or kept after its tracker went) that the store does not
            // hold. No replay can bring the subscriber there: the snapshot does.
            this.#resync(sub, 'unavailable');
          }
          return;
        }
      }
      this.#resync(sub, 'gap');
    } catch (err) {
      this.#host.logger.warn({ err, upgradeId: this.upgradeId }, 'replay failed; resyncing the subscriber');
      this.#resync(sub, 'unavailable');
    }
  }

  async #replay(sub: Subscription): Promise<'ok' | 'closed' | ResyncReason> {
    const source = this.tracker ?? this.#host.store;
    if (!source) return sub.lastSent >= this.lastSeq ? 'ok' : 'unavailable';
    const client = sub.client;
    const limit = this.#host.maxBufferedBytes / 2;
    try {
      const events = this.tracker ? this.tracker.readEvents(sub.lastSent) : this.#host.store!.readEvents(this.upgradeId, sub.lastSent);
      for await (const event of events) {
        if (sub.closed || !client.open) return 'closed';
        if (event.seq <= sub.lastSent) continue;
        if (event.seq > sub.lastSent + 1) return 'gap';
        client.sendText(progressEventText(event));
        sub.lastSent = event.seq;
        if (client.bufferedAmount > limit) await client.drained();
      }
    } catch (err) {
      if (isTrimmed(err)) return 'trimmed';
      this.#host.logger.warn({ err, upgradeId: this.upgradeId }, 'could not read events for a replay');
      return 'unavailable';
    }
    return sub.closed || !client.open ? 'closed' : 'ok';
  }

  /** Sends the held frames that follow `lastSent`; false (frames kept) on a gap. */
  #drain(sub: Subscription): boolean {
    const held = sub.take();
    for (let i = 0; i < held.length; i++) {
      const { seq, frame } = held[i]!;
      if (seq <= sub.lastSent) continue;
      if (seq > sub.lastSent + 1) {
        for (const rest of held.slice(i)) sub.hold(rest.seq, rest.frame);
        return false;
      }
      sub.client.sendFrame(frame);
      sub.lastSent = seq;
    }
    sub.replaying = false;
    return true;
  }

  /** A replay overtaken by a deletion: drop what it held, and start the subscriber from the store's state now. */
  #restartReplay(sub: Subscription): void {
    sub.take();
    this.#resync(sub, 'gap');
  }

  #resync(sub: Subscription, reason: ResyncReason): void {
    if (sub.closed) return;
    // Says whether a snapshot follows: a client cannot tell "no snapshot" from "not yet" otherwise.
    sub.client.send({ type: 'resync', upgradeId: this.upgradeId, reason, exists: this.state !== undefined });
    sub.lastSent = 0;
    this.sendSnapshot(sub);
    this.#drain(sub);
    sub.replaying = false;
  }

  /** Whether this topic runs a store `watch()` now, or will again after a failed one (its retry is pending). */
  get watching(): boolean {
    return this.#watch !== undefined || this.#retry !== undefined;
  }

  /** Whether one more direct subscriber would make this topic start a store `watch()`. */
  get wouldWatch(): boolean {
    return !this.watching && this.storeBacked && this.#host.store?.watch !== undefined;
  }

  /** Runs one store `watch()` while a direct subscriber listens to a store-backed upgrade. */
  syncWatch(): void {
    const store = this.#host.store;
    let direct = false;
    for (const sub of this.subs) if (!sub.wildcard && !sub.closed) direct = true;
    if (!direct || !this.storeBacked || !store?.watch) return this.#stopWatch();
    if (this.#watch) return;
    const ac = new AbortController();
    this.#watch = ac;
    void this.#follow(store, ac);
  }

  async #follow(store: ProgressStore, ac: AbortController): Promise<void> {
    try {
      await this.ensureLoaded();
      if (ac.signal.aborted) return;
      for await (const event of store.watch!(this.upgradeId, this.lastSeq, { signal: ac.signal })) {
        if (ac.signal.aborted) break;
        this.ingest(event);
      }
    } catch (err) {
      if (ac.signal.aborted) return;
      if (isProgressError(err, 'NOT_FOUND') && err.context.reason === 'deleted') {
        // Deleted, expired, or created again: start over from what the store holds now (nothing,
        // or the new upgrade), and tell every subscriber so; the next watch follows from there.
        this.#host.logger.info({ upgradeId: this.upgradeId }, 'the upgrade was deleted in the store; resyncing subscribers');
        await this.#restart(store, ac.signal);
      } else if (isTrimmed(err)) {
        // Retention removed events after the seq held here before the watch read them (a burst
        // under a small `maxEvents`, a server that fell behind, or the events written between the
        // load and the watch's first read). A watch from that seq fails the same way every time:
        // taken for a failed watch and started again from it, it left the subscribers by name
        // waiting for good, without a resync. The fill reads the store from that seq, finds the
        // events gone too, loads the state and resyncs every subscriber ('trimmed'); the next watch
        // follows from the state's seq, at once (a second later, a busy upgrade would be trimmed
        // past it again). When the fill could not move the topic (a load or fill of the store was
        // running, or the store cannot be read), the watch is tried again after the usual wait.
        const from = this.lastSeq;
        this.#host.logger.warn({ err, upgradeId: this.upgradeId }, 'the store trimmed events before its watch read them; resyncing subscribers');
        await this.#fill();
        if (!ac.signal.aborted && this.#watch === ac && this.lastSeq > from) {
          this.#watch = undefined;
          return this.syncWatch();
        }
      } else {
        this.#host.logger.warn({ err, upgradeId: this.upgradeId }, 'store watch failed; retrying');
      }
    }
    if (ac.signal.aborted || this.#watch !== ac) return;
    this.#watch = undefined;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.syncWatch();
    }, WATCH_RETRY_MS);
  }

  async #restart(store: ProgressStore, signal: AbortSignal): Promise<void> {
    let state: UpgradeProgress | undefined;
    try {
      state = await store.load(this.upgradeId);
    } catch (err) {
      this.#host.logger.warn({ err, upgradeId: this.upgradeId }, 'could not reload an upgrade from the store');
      return;
    }
    // Stopped meanwhile (no direct subscriber left, or a tracker of this process took over).
    if (signal.aborted || !this.storeBacked) return;
    // Events of the old upgrade waiting for a gap to be filled must not land on the new one.
    this.#dropPending();
    this.#startOver(state);
  }

  /** Follows the store from `state` (as it holds the upgrade now, or undefined), resyncing every subscriber to it. */
  #startOver(state: UpgradeProgress | undefined): void {
    this.#storeState = state;
    this.#resyncAll();
    if (state === undefined) this.#host.gone(this);
    // `*` subscribers that do not have it (it did not exist when they subscribed, or they let go of it
    // when it was deleted) get its snapshot, as after a load: over a store without watchAll(), no
    // event of it would ever bring it to them.
    else this.#host.attachWildcards(this);
  }

  /**
   * Asks the store whether it still holds the run this topic serves, before an answer that must be
   * the store's (`get_summary`, `list_upgrades`, a new subscriber's `subscribed` and snapshot): a `*`
   * subscription's watchAll reports no deletion or expiry, and a store watch learns of a run created
   * again under the same id only when its block times out. When the store holds another run, or
   * none, the topic starts over from what it holds (every subscriber resynced). Rejects with the
   * store's error, having changed nothing. A no-op for a topic that does not follow the store or has
   * not loaded it yet (its load reads the store anyway).
   */
  confirmRun(): Promise<void> {
    // Shared: a caller gets a read sent after it asked. One in flight is too early for a new caller,
    // who joins the next (which everybody asking meanwhile shares): at most two reads per burst.
    if (this.#confirmQueued) return this.#confirmQueued;
    const run = (): Promise<void> => {
      const read: Promise<void> = this.#confirmOnce().finally(() => {
        if (this.#confirming === read) this.#confirming = undefined;
      });
      this.#confirming = read;
      return read;
    };
    if (!this.#confirming) return run();
    const queued = this.#confirming
      .catch(() => undefined)
      .then(() => {
        this.#confirmQueued = undefined;
        return run();
      });
    this.#confirmQueued = queued;
    return queued;
  }

  /**
   * One confirmation: reads again when a read comes back overtaken (the topic moved while it was in
   * flight), so that the caller's answer is not the state held before its request for want of a read
   * that counted. A topic that keeps moving gets its events live anyway: after a few tries, it is answered.
   */
  async #confirmOnce(): Promise<void> {
    for (let attempt = 0; attempt < CONFIRM_READS; attempt++) if ((await this.#confirmRead()) !== 'overtaken') return;
  }

  async #confirmRead(): Promise<'done' | 'overtaken'> {
    const store = this.#host.store;
    if (!store || !this.storeBacked || !this.#storeFed) return 'done';
    const lifetime = this.#lifetime;
    // A load, fill or reload of the store running now ends first (it may start the topic over, and
    // it drains the events held meanwhile); then the store is asked. Not waited for beyond a while:
    // the state held is answered then.
    // On the monotonic clock: a wall clock set back meanwhile would stretch the wait by as much.
    const until = performance.now() + CONFIRM_WAIT_MS;
    while (this.#busy && lifetime === this.#lifetime && performance.now() < until) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, until - performance.now()));
        this.#idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (this.#busy || lifetime !== this.#lifetime || !this.storeBacked || !this.#storeFed) return 'done';
    const generation = this.#generation;
    const held = this.#storeState;
    const heldSeq = this.lastSeq;
    const unordered = this.#unordered;
    const refit = this.#refit;
    const stored = await store.load(this.upgradeId);
    // Closed, or taken over by a tracker (even if given back): nothing for this topic to confirm.
    if (lifetime !== this.#lifetime || !this.storeBacked || !this.#storeFed) return 'done';
    // What was read is no news when the topic moved meanwhile: started over, a reload begun or armed,
    // a state where there was none, or store events it did not apply in order (a read sent before them
    // may be answered after them). It is read again. (Events of the run held, applied in order, do not
    // count: a busy upgrade would have every read overtaken.)
    if (generation !== this.#generation || this.#busy || held !== this.#storeState || unordered !== this.#unordered || refit !== this.#refit) return 'overtaken';
    // The same run (perhaps further on: the watch brings that): nothing to do. A run never goes back:
    // one behind the state held when the read was sent is another run created in the same millisecond.
    // (Behind the state held now is not: in-order events came while the read was out.)
    if (stored?.createdAt === this.#storeState?.createdAt && (stored?.lastSeq ?? 0) >= heldSeq) {
      // A store that cannot watch brings this topic none of the events it took since the topic loaded:
      // the state it holds now is the answer, as get_summary's is (a new subscriber's snapshot must not
      // depend on whether another client holds the topic). The subscribers it holds are brought up to
      // it from the store now: the events in between may be a sink's still on their way (the store has
      // them before the tracker hands them to its sinks), which this topic, past them, would drop, and
      // for the last event of an upgrade nothing later would catch them up.
      if (stored !== undefined && !store.watch && stored.lastSeq > this.lastSeq) {
        this.#storeState = stored;
        this.#snapshot = undefined;
        for (const sub of this.subs) if (!sub.closed && !sub.replaying && sub.lastSent > 0 && sub.lastSent < stored.lastSeq) void this.catchUp(sub, sub.lastSent, false);
      }
      return 'done';
    }
    this.#host.logger.info({ upgradeId: this.upgradeId }, 'the store holds another run of this upgrade, or none; resyncing subscribers');
    // Events of the old run waiting for a gap to be filled must not land on the new one.
    this.#dropPending();
    // A reload waiting to run (the state held did not fit the store's history) is done by this one.
    if (this.#refit) clearTimeout(this.#refit);
    this.#refit = undefined;
    this.#startOver(stored);
    // A store watch follows the old run from its last seq: it starts again from the new state's.
    if (lifetime === this.#lifetime && this.#watch) {
      this.#stopWatch();
      this.syncWatch();
    }
    return 'done';
  }

  /**
   * The state held now is another history than the one subscribers have (another run, a reload):
   * each is sent `resync` and the state. Subscribers replaying now are resynced when their replay
   * returns (they see the generation move).
   */
  #resyncAll(): void {
    this.#snapshot = undefined;
    this.#generation++;
    for (const sub of this.subs) if (!sub.replaying) this.#resync(sub, 'gap');
  }

  #stopWatch(): void {
    this.#watch?.abort();
    this.#watch = undefined;
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = undefined;
  }

  /** Releases the watch and timers. */
  close(): void {
    this.#lifetime++;
    for (const wake of this.#idleWaiters.splice(0)) wake();
    this.#stopWatch();
    this.#stopReload();
    this.#stopFillRetry();
    if (this.#refit) clearTimeout(this.#refit);
    this.#refit = undefined;
    // A load or reload out now reloads nothing after it (see #reloadIfDropped), and what was held goes.
    this.#reloadAgain = false;
    this.#dropPending();
    for (const sub of this.subs) sub.closed = true;
    this.subs.clear();
  }
}

function isTrimmed(err: unknown): boolean {
  return isProgressError(err, 'NOT_FOUND') && err.context.reason === 'trimmed';
}
