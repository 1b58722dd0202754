import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import {
  ProgressError,
  appendInputError,
  assertAppend,
  assertAppendState,
  assertKnownOptions,
  assertListFilter,
  assertReadEvents,
  assertValidId,
  describeValue,
  eventsToJson,
  filterRows,
  isProgressError,
  MAX_TIMER_MS,
  redactUrl,
  isTerminal,
  replayEvents,
  safeLogger,
  silentLogger,
  toSummaryRow,
  type ListFilter,
  type Logger,
  type ProgressEvent,
  type ProgressStore,
  type StoreInfo,
  type UpgradeProgress,
  type UpgradeSummaryRow,
} from '@progress/core';
import { Command, Redis, type Cluster } from 'ioredis';
import { decodeEntry, decodeRow, decodeSnapshot, feedPointer } from './codec.js';
import { CONNECT_TIMEOUT, againOnConnectionLoss, connectionErrorOf, endConnection, isClusterClient, readTogether, unansweredHandshake, type RedisCommand } from './connection.js';
import { closedError, corrupted, goneError, isClientTimeout, isConnectionLoss, isNoAnswer, isOfflineRefusal, lostEntriesError, scrubbingLogger, trimmedError, unavailable, withTimeout, withoutSecrets } from './errors.js';
import { EPOCH_READS, KeyLayout, entryId, seqOf, upgradeKeys, type UpgradeKeys } from './keys.js';
import { normalizedUrl, resolveOptions, type RedisStoreOptions, type ResolvedOptions } from './options.js';
import { APPEND_SHA, keyPrefixOf, sendAppend, type AppendReply } from './append-command.js';
import { LOAD_READ_ONLY_LUA, LOAD_READ_ONLY_SHA, defineScripts, isReadOnlyEvalRefusal, isScriptFlagsRefusal, pushAppendArgs, type LoadReply, type ScriptCommands, type StreamEntry } from './scripts.js';
import { localNow, ServerClock } from './server-clock.js';
import { watchAllUpgrades, watchUpgrade, type WatchContext } from './watch.js';
import { findKeyPrefixes } from './prefixes.js';

type Client = (Redis | Cluster) & ScriptCommands;

interface PendingAppend {
  upgradeId: string;
  expectedSeq: number;
  n: number;
  /** The whole EVALSHA argument list; the deadline (ARGV[1], at `deadlineAt`) is filled in at send time. */
  args: string[];
  deadlineAt: number;
  /** The snapshot, when one is written: sent first to its staged key, which the script renames over the snapshot (see APPEND_LUA). */
  staged: { key: string; json: string } | undefined;
  /** Cluster mode: the follow-up index write. */
  score: number;
  /** Cluster mode: the script found the upgrade's first feed entry not known written (its meta's `unfed`, see APPEND_LUA). */
  unfed: boolean;
  /**
   * Cluster mode: the upgrade's epoch (the eventId of its seq 1), for taking the meta's `unfed` out
   * once a feed entry from seq 1 is written (see #followUp): a first append's own, or the one the
   * script answered with the mark.
   */
  epoch: string | Buffer | undefined;
  /** A first append: its run's epoch (its first event's id), which this store knows once it is stored (see #runs). */
  run: string | undefined;
  /** When the sweeper rejects it (deadline + clock uncertainty), local ms. */
  expiresAt: number;
  /** With `replicas`: 'waiting' once the script has run it and WAIT is to confirm it (see #awaitReplicas), 'confirmed' once WAIT did. */
  replicas?: 'waiting' | 'confirmed';
  settled: boolean;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const NO_ARGS: string[] = [];

/** How long a staged snapshot lives past the append's deadline, should its append never run (see `#stage`). */
const STAGED_TTL_MS = 60_000;

/** The least a delete's marker lives (see `delete`); 10 x commandTimeoutMs when that is longer. */
const DELETE_MARKER_MIN_TTL_MS = 60_000;

/** The most upgrades whose failed feed entries cluster mode keeps track of (see `#unfed`). */
const UNFED_LIMIT = 10_000;

/** The most upgrades whose run (epoch) a store keeps (see `#runs`). */
const RUNS_LIMIT = 10_000;

/** Upgrades `list()` reads (and prunes from the index) per round trip. */
const LIST_CHUNK = 500;

/** How often an append trims the feed (see `append`). */
const FEED_TRIM_EVERY = 32;

/** The wait before the `times`-th attempt to connect again of the connection the store creates (jitter aside): 40 ms doubling to 2 s. */
const reconnectDelay = (times: number): number => Math.min(20 * 2 ** Math.min(times, 10), 2000);

/** The fewest attempts to connect again whose waits ({@link reconnectDelay}) add up to `ms` at least. */
function attemptsWithin(ms: number): number {
  let attempts = 0;
  let waited = 0;
  while (waited < ms && reconnectDelay(attempts + 1) < 2000) waited += reconnectDelay(++attempts);
  return waited >= ms ? attempts : attempts + Math.ceil((ms - waited) / 2000);
}

/** The part of an ioredis Pipeline the store uses (`sendCommand` is public but missing from its type). */
interface PipelineSink {
  sendCommand(command: Command): unknown;
  exec(): Promise<unknown>;
}

const PKG = '[@progress/storage-redis]';
/**
 * What Redis answers a SELECT that will never pass: a database it does not have (7.x: "DB index is
 * out of range"; older: "invalid DB index"), an ACL that denies SELECT (NOPERM), a Cluster node
 * (SELECT is not allowed), a proxy without the command.
 */
const DATABASE_REFUSED = /DB index is out of range|invalid DB index|value is not an integer|^NOPERM|not allowed in cluster mode|unknown command/i;
const RESOLVED = Promise.resolve();
/**
 * Whether a batch can change the `list()` row beyond its fast fields (lastSeq, overallPercentage,
 * updatedAt). In core's reducer only `upgrade.*` events change status, phase, startedAt and
 * completedAt, and only `task.added` changes the number of tasks; every other event changes the fast
 * fields alone. So a batch of other events sends the fast fields only (a few bytes instead of the
 * row's ~300 and its JSON encoding), and `list()` lays them over the stored row.
 */
function rowChanges(events: readonly ProgressEvent[]): boolean {
  for (const e of events) if (e.type === 'task.added' || e.type.startsWith('upgrade.')) return true;
  return false;
}

/**
 * A {@link ProgressStore} on Redis: per upgrade a stream of events and a snapshot, appended
 * atomically with the seq check by one Lua script that touches only that upgrade's hash slot; an
 * index of upgrades and a feed for `watchAll()`; `watch()` follows any upgrade from any process.
 *
 * Appends issued in the same tick (group commits of several trackers) go out in one pipeline. A
 * retried append (after a lost connection) is recognised by its first event id and never stored
 * twice. An append not acknowledged within `commandTimeoutMs` rejects with `STORE_UNAVAILABLE`, and
 * Redis refuses to run it afterwards (a deadline checked by the script on the server clock).
 *
 * @example
 * const store = new RedisStore({ url: 'redis://127.0.0.1:6379', keyPrefix: 'acme:' });
 * const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p1', clusterName: 'prod', store });
 * for await (const event of store.watch('u1', 0, { signal })) console.log(event.seq, event.message);
 */
export class RedisStore implements ProgressStore {
  readonly #options: ResolvedOptions;
  readonly #redis: Client;
  readonly #owns: boolean;
  readonly #url: string;
  readonly #cluster: boolean;
  /** The client's own `keyPrefix` (a client passed in), which appends must carry like its other commands. */
  readonly #clientKeyPrefix: string | undefined;
  readonly #keys: KeyLayout;
  readonly #logger: Logger;
  readonly #clock: ServerClock;
  readonly #stop = new AbortController();
  /**
   * Aborted at the end of close() when the client is not connected (a client passed in, waiting to
   * reconnect): the store's reads still waiting for it fail with CLOSED then, and leave no timer, nor
   * does a reading of the server clock (a delete's) still waiting. Not a delete's script, which that
   * client may still send (see #delete).
   */
  readonly #ended = new AbortController();
  /**
   * Appends handed to Redis (or waiting for the clock), in order; answered ones leave lazily (a Set
   * add and delete per append showed on the sequential path). `#unsettled` counts the unanswered.
   */
  #inFlight: PendingAppend[] = [];
  #unsettled = 0;
  /** Keys of upgrades whose id was checked: a writer appends to the same few upgrades again and again. */
  readonly #checkedKeys = new Map<string, UpgradeKeys>();
  /**
   * The run (epoch: the eventId of seq 1) of each upgrade this store wrote from its first event or
   * loaded last, sent with its appends: Redis has no writer lock, so a writer open while another
   * process deletes the upgrade and creates it again, and the new run reaches its seq, would have its
   * next append taken into the new run. The script refuses it (CONFLICT) instead. Only what this store
   * saw itself: an upgrade it never loaded or wrote from seq 1 is appended to by seq alone, as before.
   * With each, `changedAt`: the count (#runChanges) at this store's last first append or delete of it,
   * after which a load of it that started before does not set the run (it may have read before). Per
   * upgrade, so that loads of the others do. Bounded (see #setRun).
   */
  readonly #runs = new Map<string, { run: string | undefined; changedAt: number }>();
  /** Counts this store's first appends and deletes (see #runs). */
  #runChanges = 0;
  /** The highest `changedAt` of an entry #runs let go of for its bound: a load that started before it sets nothing. */
  #runsForgottenAt = 0;
  /** The last deadline sent, and its text (String() of a 13-digit number is not free). */
  #deadlineMs = NaN;
  #deadlineText = '';
  #drained: Array<() => void> = [];
  /** Follow-up writes of cluster mode. */
  readonly #followUps = new Set<Promise<void>>();
  /**
   * Cluster mode, per upgrade whose feed entry failed to be written: the seqs from the first to the
   * last that such entries pointed to, until an entry that covers them is written (see #followUp).
   * Bounded (the oldest is forgotten first).
   */
  readonly #unfed = new Map<string, { from: number; upTo: number }>();
  /**
   * Cluster mode (see #followUp): upgrades whose feed entry from seq 1 this store is writing, until
   * the meta's `unfed` is taken out after it: an append whose script still finds the mark meanwhile
   * is not told of a lost entry. Bounded (the oldest is forgotten first: a later append then points
   * from seq 1 once more).
   */
  readonly #founded = new Set<string>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweepAt: number | undefined;
  readonly #watchers = new Set<Redis | Cluster>();
  /** Watcher connections ending (see #release). */
  readonly #releasing = new Set<Promise<void>>();
  /**
   * The `delete()`, `load()` and `list()` calls in flight, which close() lets finish on a connected
   * store (see close): their next command (after the clock's reading, after the index) would
   * otherwise go out behind its QUIT, which Redis runs last.
   */
  readonly #calls = new Set<Promise<unknown>>();
  readonly #onReady = (): void => {
    this.#connectionError = undefined;
    this.#clock.invalidate();
    this.#session++;
  };
  /** Counts the connection's 'ready' events: a WAIT vouches only for the writes of its own connection (see #awaitReplicas). */
  #session = 0;
  /** With `replicas`: appends the script has run, waiting for the next WAIT (see #awaitReplicas). */
  #replicaWaits: Array<{ p: PendingAppend; reply: AppendReply; session: number }> = [];
  #replicaWaitScheduled = false;
  readonly #offReady: () => void;
  /** Why the connection the store created is down (its last error since it was last ready), for the timeout errors. */
  #connectionError: string | undefined;
  #pending: PendingAppend[] = [];
  #scheduled = false;
  /** Flushed batches waiting for the server clock, in flush order (see #flush). */
  #awaitingClock: Array<{ batch: PendingAppend[]; flushedAt: number }> = [];
  #closing: Promise<void> | undefined;
  /** Set when Redis refused the URL's database: every call fails with it from then on. */
  #misconfigured: ProgressError | undefined;
  /** Option values as the append script takes them (strings made once). */
  readonly #ttlArg: string;
  readonly #maxEventsArg: string;
  readonly #feedMaxLenArg: string;
  /** How long a delete's marker lives (ms): past any wait for its answer, when a re-send still matters. */
  readonly #deleteMarkerTtl: string;
  #feedAppends = 0;
  /** False once Redis refused a script declared read-only (before Redis 7): load() sends the undeclared one from then on. */
  #readOnlyScripts = true;
  /**
   * Whether load() sends its script as EVALSHA_RO / EVAL_RO (Redis 7), which a user with read-only key
   * permissions (`%R~`) may run: Redis takes the keys of EVALSHA / EVAL as written, whatever the
   * script does. False from the start on a Cluster that sends reads to replicas (`scaleReads`), where
   * load() stays on the master as before; false once Redis or the user's ACL refused these commands.
   */
  #evalReadOnly: boolean;
  /** The timer of the PING that checks the link after a command got no answer (see #checkLink), while one is out. */
  #probeTimer: NodeJS.Timeout | undefined;
  /** A client passed in whose link looked dead was reported (once, until it answers a PING again). */
  #deadLinkReported = false;

  /** @param options See {@link RedisStoreOptions}; every option has a default. */
  constructor(options: RedisStoreOptions = {}) {
    // Every watcher listens for the store closing (and removes its listener when it ends): any
    // number of them is expected, not a leak.
    setMaxListeners(0, this.#stop.signal);
    // Likewise every call waiting for Redis (see withTimeout).
    setMaxListeners(0, this.#ended.signal);
    this.#options = resolveOptions(options);
    this.#keys = new KeyLayout(this.#options.keyPrefix);
    this.#ttlArg = String(this.#options.ttlSeconds);
    this.#maxEventsArg = String(this.#options.maxEvents);
    this.#feedMaxLenArg = String(this.#options.feedMaxLen);
    this.#deleteMarkerTtl = String(Math.max(DELETE_MARKER_MIN_TTL_MS, 10 * this.#options.commandTimeoutMs));
    // Wrapped: a logger that throws (a closed transport) must not leave an append unanswered or fail a cleanup.
    // Scrubbed: a refused AUTH error carries the password (see withoutSecrets).
    this.#logger = options.logger ? scrubbingLogger(safeLogger(options.logger)) : silentLogger;
    if (options.redis) {
      this.#owns = false;
      this.#redis = defineScripts(options.redis);
      this.#url = describeClient(options.redis);
    } else {
      const url = normalizedUrl(options.url ?? 'redis://127.0.0.1:6379');
      this.#owns = true;
      this.#url = redactUrl(url);
      assertDatabase(url, this.#url);
      let redis: Redis;
      try {
        redis = new Redis(url, {
          connectionName: this.#options.connectionName,
          // No command dropped by a short outage: our own deadline bounds the wait, and commands in
          // flight are re-sent after a reconnect (the append script makes that idempotent). But not
          // kept for as long as Redis stays away either: ioredis holds every command queued
          // meanwhile (~3 KB each, an append's batch more) until it is back, long after the store
          // gave up on it, so a process that goes on calling the store through an outage of hours
          // grew all that time (and sent them all at once on the reconnect). So ioredis rejects its
          // queue every so many failed attempts: no sooner than commandTimeoutMs after the link
          // went, when the store has given up on the commands sent before (or is about to, by the
          // clock's uncertainty); one let go so is never sent again, as one given up on must not be.
          maxRetriesPerRequest: attemptsWithin(this.#options.commandTimeoutMs),
          enableOfflineQueue: true,
          autoResendUnfulfilledCommands: true,
          retryStrategy: (times) => reconnectDelay(times) + Math.floor(Math.random() * 20),
        });
      } catch (err) {
        throw new ProgressError('INVALID_ARGUMENT', `${PKG} url ${this.#url} is not one ioredis can use: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      }
      redis.on('error', (err: unknown) => {
        // The same error may reject the commands queued meanwhile: mask a refused AUTH's password first.
        withoutSecrets(err);
        if (redis.status !== 'ready') this.#connectionError = connectionErrorOf(err, redis);
        if (this.#selectFailure(err, redis) === undefined) this.#logger.debug({ err }, 'redis connection error (ioredis reconnects)');
      });
      this.#redis = defineScripts(redis);
    }
    this.#cluster = options.mode ? options.mode === 'cluster' : isClusterClient(this.#redis);
    const scaleReads = isClusterClient(this.#redis) ? ((this.#redis as { options?: { scaleReads?: unknown } }).options?.scaleReads ?? 'master') : 'master';
    this.#evalReadOnly = scaleReads === 'master';
    this.#clientKeyPrefix = keyPrefixOf(this.#redis);
    this.#clock = new ServerClock(this.#redis, this.#options.commandTimeoutMs, (ms) => this.#serverClockWentBack(ms), this.#stop.signal, this.#ended.signal);
    // On 'ready', and on '+node': a node joining a Cluster (a replica promoted after a failover) may
    // be a master whose clock the offset does not cover yet: measure again before the next append.
    this.#offReady = onReconnect(this.#redis, this.#onReady);
  }

  /** The ioredis client (or Cluster) the store uses. */
  get client(): Redis | Cluster {
    return this.#redis;
  }

  /** The key names this store uses (for tooling and tests). */
  get keys(): KeyLayout {
    return this.#keys;
  }

  /**
   * The key prefixes under which stores keep upgrades in this Redis (in every master of a Cluster),
   * this store's own included when it holds any: for a tool that finds nothing under its prefix (a
   * store of another `keyPrefix`, a `--prefix` left out), to say where they are. With `upgradeId`,
   * only the prefixes holding that upgrade. Sorted.
   *
   * It SCANs the keyspace (for keys named `*index`), which takes a while on a large Redis: it stops
   * after `timeoutMs` with what it found by then (a prefix found late may be missing), and looks
   * into 100 prefixes at most.
   *
   * @param options.timeoutMs @default 1000
   * @throws ProgressError `INVALID_ARGUMENT` for an `upgradeId` that is not valid or a `timeoutMs`
   *   that is not a number of ms > 0; `STORE_UNAVAILABLE` when Redis does not answer (or refuses SCAN).
   */
  async findKeyPrefixes(options: { upgradeId?: string; timeoutMs?: number } = {}): Promise<string[]> {
    this.#assertOpen();
    if (options === null || typeof options !== 'object') throw new ProgressError('INVALID_ARGUMENT', `${PKG} findKeyPrefixes() takes an options object ({ upgradeId, timeoutMs }), got ${describeValue(options)}`);
    assertKnownOptions(options, ['upgradeId', 'timeoutMs'], { source: '@progress/storage-redis', what: 'findKeyPrefixes()' });
    const { upgradeId, timeoutMs = 1000 } = options;
    if (upgradeId !== undefined) assertValidId(upgradeId, 'upgradeId');
    if (typeof timeoutMs !== 'number' || !(timeoutMs > 0) || timeoutMs > MAX_TIMER_MS) {
      throw new ProgressError('INVALID_ARGUMENT', `${PKG} findKeyPrefixes() timeoutMs must be a number of ms > 0, got ${describeValue(timeoutMs)}`);
    }
    // The search's own end, then one command's time for the SCAN or TYPE under way.
    const search = findKeyPrefixes(this.#redis, this.#clientKeyPrefix ?? '', upgradeId, Date.now() + timeoutMs);
    return this.#bounded(search, 'SCAN', undefined, timeoutMs + this.#options.commandTimeoutMs);
  }

  /**
   * What this store knows an upgrade's run by (see #runs): `run`, or none. `ours` for this store's own
   * first append or delete, which a load answered after it may predate.
   */
  #setRun(upgradeId: string, run: string | undefined, ours: boolean): void {
    const changedAt = ours ? ++this.#runChanges : (this.#runs.get(upgradeId)?.changedAt ?? 0);
    // Taken out and set again: the first entry is the one changed longest ago, the one let go of first.
    this.#runs.delete(upgradeId);
    if (run === undefined && changedAt === 0) return;
    if (this.#runs.size >= RUNS_LIMIT) {
      const [oldest, dropped] = this.#runs.entries().next().value!;
      this.#runs.delete(oldest);
      this.#runsForgottenAt = Math.max(this.#runsForgottenAt, dropped.changedAt);
    }
    this.#runs.set(upgradeId, { run, changedAt });
  }

  // ------------------------------------------------------------------------------------- writes

  append(upgradeId: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    let keys = this.#checkedKeys.get(upgradeId);
    // The PendingAppend's fields, made in the try below: any error there (bad arguments, events or a
    // state that JSON cannot represent) is a rejection, and nothing was sent.
    let n: number;
    let score: number;
    let args: string[];
    let deadlineAt: number;
    let staged: PendingAppend['staged'];
    try {
      if (keys === undefined) {
        this.#check(upgradeId);
        keys = upgradeKeys(this.#keys, upgradeId);
        if (this.#checkedKeys.size >= 64) this.#checkedKeys.clear();
        this.#checkedKeys.set(upgradeId, keys);
      } else {
        this.#assertOpen();
      }
      assertAppend('@progress/storage-redis', upgradeId, events, expectedSeq);
      n = events.length;
      const last = expectedSeq + n;
      // The row's fields (fast and whole) come from the state: one that is not the state after the
      // events would be listed while load() gives another.
      assertAppendState('@progress/storage-redis', upgradeId, state, last);
      // Serialize now: `state` is only valid during this synchronous part.
      const every = this.#options.snapshotEvery;
      const terminal = isTerminal(state.status);
      // A terminal append always writes a snapshot, so the TTL reaches the snapshot key too.
      const snapshot = terminal || Math.floor(last / every) > Math.floor(expectedSeq / every) ? JSON.stringify(state) : '';
      // The index score: the first append's time in single mode (only that append uses it), the
      // latest append's in cluster mode (the follow-up re-scores on every append).
      score = expectedSeq === 0 || this.#cluster ? Math.max(0, Date.parse(state.updatedAt) || Date.now()) : 0;
      const index = !this.#cluster && expectedSeq === 0;
      // A first append also names the upgrade's deleted runs: a re-send of one's first append stores nothing (see DELETE_LUA).
      const flags = (this.#cluster ? 0 : 1) + (index ? 2 : 0) + (snapshot ? 4 : 0) + (expectedSeq === 0 ? 16 : 0);
      // One array, in the order EVALSHA takes it (see APPEND_LUA): sha, numKeys, the keys, ARGV 1-7
      // (the deadline is filled in by #send), the batch, then the row when written (and, for a first
      // append, the row or '' and the call's token).
      args = [APPEND_SHA, '', keys.events, keys.meta];
      if (!this.#cluster) args.push(this.#keys.feed);
      if (index) args.push(this.#keys.index);
      if (expectedSeq === 0) args.push(this.#keys.deletedRuns(upgradeId));
      if (snapshot) {
        // This attempt's own staged key (its last event's id): a stale writer's cannot overwrite it.
        staged = { key: `${keys.snapshot}:${events[n - 1]!.eventId}`, json: snapshot };
        args.push(keys.snapshot, staged.key);
      }
      deadlineAt = args.length;
      args[1] = String(deadlineAt - 2);
      const fast = `${last}|${state.overallPercentage}|${state.updatedAt}`;
      // The feed is trimmed (MAXLEN ~) on a store's first append and every FEED_TRIM_EVERY-th after it:
      // trimming on each cost ~2 us of Redis time per append, and `~` only drops whole nodes (100
      // entries) anyway. Trimming on the first one keeps it bounded under many short-lived stores.
      const trim = !this.#cluster && this.#feedAppends++ % FEED_TRIM_EVERY === 0;
      const ttl = terminal ? this.#ttlArg : '0';
      // The script uses the score only with the index key (single mode, first append); a cluster append's
      // score goes to the follow-up, and sending it would make every such append parse the rare fields.
      const indexScore = index ? score : 0;
      const rare = trim || ttl !== '0' || this.#maxEventsArg !== '0' || indexScore !== 0 ? `${trim ? this.#feedMaxLenArg : '0'},${ttl},${this.#maxEventsArg},${indexScore}` : '';
      // The run this store knows the upgrade by (see #runs): the script refuses the append in another.
      const run = expectedSeq === 0 ? undefined : this.#runs.get(upgradeId)?.run;
      pushAppendArgs(args, flags, expectedSeq, n, rare, upgradeId, fast, events[0]!.eventId, run);
      // The whole batch as one stream entry (id 0-<last seq>): one XADD per call, not per event.
      args.push(eventsToJson(events));
      const row = rowChanges(events) ? JSON.stringify(toSummaryRow(state)) : '';
      // A first append also carries this call's own token (ARGV[10], after the row, '' or not): a
      // delete of its run records it, so that only a re-send of this very call, not a new call with
      // the same events, is answered as done after the delete (see DELETE_LUA).
      if (expectedSeq === 0) args.push(row, randomUUID());
      else if (row) args.push(row);
    } catch (err) {
      return Promise.reject(isProgressError(err) ? err : appendInputError('@progress/storage-redis', upgradeId, expectedSeq, 'the events or the state could not be written as JSON', err));
    }
    return new Promise<void>((resolve, reject) => {
      const epoch = this.#cluster && expectedSeq === 0 ? events[0]!.eventId : undefined;
      // A first append starts a run: the one known before is not this one's (it is known again once stored).
      const run = expectedSeq === 0 ? events[0]!.eventId : undefined;
      if (run !== undefined) this.#setRun(upgradeId, undefined, true);
      this.#pending.push({ upgradeId, expectedSeq, n, args, deadlineAt, staged, score, unfed: false, epoch, run, expiresAt: Infinity, settled: false, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        // Appends issued in this tick (several trackers' group commits) go out in one pipeline.
        // (A resolved promise rather than queueMicrotask, which wraps each call in an AsyncResource.)
        void RESOLVED.then(this.#flush);
      }
    });
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    const batch = this.#pending;
    this.#pending = [];
    for (const p of batch) this.#inFlight.push(p);
    this.#unsettled += batch.length;
    // The wait is counted from here, also when the server clock must be measured first: an append
    // is answered within commandTimeoutMs (plus the clock's uncertainty) either way.
    const flushedAt = localNow();
    const offset = this.#clock.known;
    // Batches that wait for the clock go out first, in order: a later one sent ahead of them would
    // reach Redis first (a CONFLICT for the next append of the same upgrade).
    if (offset !== undefined && this.#awaitingClock.length === 0) return this.#send(batch, offset, flushedAt);
    this.#awaitingClock.push({ batch, flushedAt });
    if (this.#awaitingClock.length > 1) return;
    this.#clock.offset().then(
      (measured) => {
        for (const waiting of this.#awaitingClock.splice(0)) this.#send(waiting.batch, measured, waiting.flushedAt);
      },
      (err: unknown) => {
        if (isNoAnswer(err)) this.#checkLink();
        for (const waiting of this.#awaitingClock.splice(0)) {
          // #settle says why the connection is down (once: not here too).
          for (const p of waiting.batch) this.#settle(p, unavailable(`upgrade "${p.upgradeId}": could not append`, err, { upgradeId: p.upgradeId }));
        }
      },
    );
  };

  #send(batch: PendingAppend[], offset: number, startedAt: number): void {
    const timeout = this.#options.commandTimeoutMs;
    // At least 1: 0 means "no deadline" to the script (a server clock far behind ours must not turn
    // the deadline off), and the script reads digits only.
    const deadlineMs = Math.max(1, Math.floor(startedAt + offset + timeout));
    if (deadlineMs !== this.#deadlineMs) {
      this.#deadlineMs = deadlineMs;
      this.#deadlineText = String(deadlineMs);
    }
    const deadline = this.#deadlineText;
    // Our answer comes at the deadline plus the clock's uncertainty, when Redis can no longer run it.
    const expiresAt = startedAt + timeout + this.#clock.errorMs;
    this.#armSweep(expiresAt);
    // A Cluster pipeline must stay within one slot, so cluster mode sends each append on its own.
    const pipeline = batch.length === 1 || this.#cluster ? undefined : (this.#redis.pipeline() as unknown as PipelineSink);
    const via = pipeline ?? this.#redis;
    for (const p of batch) {
      p.expiresAt = expiresAt;
      // Sent once: a re-send after a lost connection is the same command, with the same deadline.
      p.args[p.deadlineAt] = deadline;
      if (p.staged) this.#stage(via, p.upgradeId, p.staged);
      sendAppend(this.#redis, this.#clientKeyPrefix, via, p.args, (err, reply) => this.#settle(p, err, reply));
    }
    // Each command's promise settles on its own; exec()'s aggregate result is not needed.
    if (pipeline) void pipeline.exec().catch(() => {});
  }

  /**
   * Sends a snapshot to its staged key, ahead of its append on the same connection (see APPEND_LUA):
   * a plain `SET` with a TTL that outlives the append's deadline, so that a staged key whose append
   * never runs goes by itself. Its failure is the append's to find (no staged key: no snapshot this
   * time), so it is only logged: as a warning, since a SET refused every time (an ACL key pattern
   * that leaves out `:snapshot:<eventId>`) would stop the snapshots, and `maxEvents` with them.
   */
  #stage(via: PipelineSink | Redis | Cluster, upgradeId: string, staged: { key: string; json: string }): void {
    const ttl = String(this.#options.commandTimeoutMs + STAGED_TTL_MS);
    const command = new Command('set', [staged.key, staged.json, 'PX', ttl], this.#clientKeyPrefix ? { keyPrefix: this.#clientKeyPrefix } : undefined);
    command.promise.catch((err: unknown) => this.#logger.warn({ err, upgradeId }, 'could not stage a snapshot; the append goes on without one'));
    (via as PipelineSink).sendCommand(command);
  }

  /**
   * The Redis server's clock went back by `ms` since the offset the appends in flight were sent
   * with: their deadlines on its clock are `ms` further away in real time, so they are given up on
   * that much later (before it, Redis could still run one the caller was told had failed).
   */
  #serverClockWentBack(ms: number): void {
    this.#logger.warn({ url: this.#url, ms }, "the Redis server's clock went back; appends in flight wait that much longer for their deadline");
    // The sweep timer armed for the old expiries stays: when it fires, #sweep finds them not due yet and arms itself for the new ones.
    for (const p of this.#inFlight) if (!p.settled) p.expiresAt += ms;
  }

  /** One timer for every append in flight (unref'd: a socket in use keeps the process alive anyway). */
  #armSweep(at: number): void {
    if (this.#sweepAt !== undefined && this.#sweepAt <= at) return;
    if (this.#sweepTimer) clearTimeout(this.#sweepTimer);
    this.#sweepAt = at;
    this.#sweepTimer = setTimeout(() => this.#sweep(), Math.max(0, at - localNow()) + 1);
    this.#sweepTimer.unref();
  }

  #sweep(): void {
    this.#sweepTimer = undefined;
    this.#sweepAt = undefined;
    // After the I/O of this turn of the event loop: Node runs due timers before it reads the sockets,
    // so after the loop was blocked (a long GC pause, synchronous work, a suspended VM) past an
    // append's wait, a reply already received would otherwise be reported as none, and the tracker
    // would take back events Redis holds.
    setImmediate(() => this.#sweepNow());
  }

  #sweepNow(): void {
    const now = localNow();
    let next = Infinity;
    let expired = false;
    // #settle replaces the list rather than changing it, so this loop may settle as it goes.
    for (const p of this.#inFlight) {
      if (p.settled) continue;
      if (p.expiresAt <= now) {
        expired = true;
        // Run by the master already: what is missing is WAIT's answer (replicas.timeoutMs is at most commandTimeoutMs).
        if (p.replicas === 'waiting') {
          this.#replicasUnconfirmed(p, `WAIT did not answer within commandTimeoutMs (${this.#options.commandTimeoutMs} ms)`);
          continue;
        }
        const down = this.#whyDown();
        this.#settle(
          p,
          new ProgressError(
            'STORE_UNAVAILABLE',
            `${PKG} upgrade "${p.upgradeId}": Redis did not acknowledge seq ${p.expectedSeq + 1}..${p.expectedSeq + p.n} within ${this.#options.commandTimeoutMs} ms; not acknowledged (Redis refuses to run it after its deadline)${down === undefined ? '' : `; the connection is down: ${down}`}`,
            { context: { upgradeId: p.upgradeId, expectedSeq: p.expectedSeq, timeoutMs: this.#options.commandTimeoutMs } },
          ),
        );
      } else if (p.expiresAt < next) {
        next = p.expiresAt;
      }
    }
    if (next !== Infinity) this.#armSweep(next);
    if (expired) this.#checkLink();
  }

  /**
   * After a command of the store got no answer in time (an append given up on by the sweep, a read
   * or the clock's reading timed out): is the link dead? A link gone silent without a reset (a host
   * gone, a network that drops everything both ways) leaves ioredis `ready` until TCP tells, 15
   * minutes to hours later, and every command would time out until then, although a new connection
   * might work at once. So a PING, bounded by commandTimeoutMs (one at a time); if it gets no answer
   * either, the connection the store created has its socket dropped, as a watcher's (see watch.ts):
   * ioredis connects again (retryStrategy) and re-sends what is in flight, which is safe for appends
   * (the script refuses one past its deadline and recognises a re-sent one). Only on these timeout
   * paths: the append path does no work for it.
   *
   * A client passed in is its owner's: its socket is left alone, and the dead link is only logged, as
   * a warning, once until the client answers a PING again. A Cluster passed in is not checked: a PING
   * goes to any one node and tells nothing of the others (the store creates no Cluster of its own:
   * `url` is one node, also in cluster mode).
   */
  #checkLink(): void {
    const redis = this.#redis;
    if (this.#probeTimer !== undefined || this.#closing !== undefined || redis.status !== 'ready' || isClusterClient(redis)) return;
    const stream = (redis as Redis).stream;
    const waitMs = this.#options.commandTimeoutMs;
    const done = (dead: boolean): void => {
      if (this.#probeTimer === undefined) return;
      clearTimeout(this.#probeTimer);
      this.#probeTimer = undefined;
      if (!dead) {
        this.#deadLinkReported = false;
        return;
      }
      // Not once it closes, or has connected again meanwhile (another socket): that one is not known to be dead.
      if (this.#closing !== undefined || redis.status !== 'ready' || (redis as Redis).stream !== stream) return;
      if (this.#owns) {
        this.#logger.warn({ url: this.#url, waitMs }, 'no answer from Redis to a command nor to a PING (a dead link); dropping the connection to connect again');
        this.#connectionError = `no answer to a PING within ${waitMs} ms; the connection was dropped to connect again`;
        (stream as { destroy?: () => void } | undefined)?.destroy?.();
      } else if (!this.#deadLinkReported) {
        this.#deadLinkReported = true;
        this.#logger.warn(
          { url: this.#url, waitMs },
          'no answer from Redis on the client passed in, to a command nor to a PING: its link looks dead (the store does not drop the socket of a client it did not create; connecting again is for its owner)',
        );
      }
    };
    // Any answer, a refusal too, is a live link; the commandTimeout of a client passed in is none.
    redis.ping().then(
      () => done(false),
      (err: unknown) => done(isClientTimeout(err)),
    );
    // Given up on after the I/O of the loop's turn, as withTimeout does: a reply already received is read first.
    this.#probeTimer = setTimeout(() => setImmediate(() => done(true)), waitMs);
    this.#probeTimer.unref();
  }

  #settle(p: PendingAppend, err: unknown, reply?: AppendReply): void {
    if (p.settled) return;
    if (this.#options.replicaCount > 0 && err === undefined && p.replicas !== 'confirmed') {
      const status = Number(Array.isArray(reply) ? reply[0] : reply);
      if (status === 1 || status === 3) return this.#awaitReplicas(p, reply!);
      // Applied by an earlier attempt (a reply lost with its connection): that write was another
      // connection's, which a WAIT on this one does not vouch for.
      if (status === 2) return this.#replicasUnconfirmed(p, 'it had been applied by an earlier attempt, whose connection was lost, so WAIT cannot confirm its replication');
    }
    p.settled = true;
    // An answered append may stay in #inFlight for a while: drop its arguments (the batch JSON, maybe a snapshot).
    p.args = NO_ARGS;
    p.staged = undefined;
    if (--this.#unsettled === 0) {
      if (this.#inFlight.length >= 64) this.#inFlight = [];
      if (this.#drained.length > 0) for (const done of this.#drained.splice(0)) done();
    } else if (this.#inFlight.length >= 1024 && this.#inFlight.length > 4 * this.#unsettled) {
      this.#inFlight = this.#inFlight.filter((q) => !q.settled);
    }
    if (reply === 1 && err === undefined) {
      if (p.run !== undefined) this.#setRun(p.upgradeId, p.run, true);
      if (this.#cluster) this.#followUp(p);
      p.resolve();
      return;
    }
    const context = { upgradeId: p.upgradeId, expectedSeq: p.expectedSeq };
    if (err !== undefined) {
      if (this.#misconfigured) return p.reject(this.#misconfigured);
      p.reject(this.#withConnectionError(unavailable(`upgrade "${p.upgradeId}": could not append seq ${p.expectedSeq + 1}..${p.expectedSeq + p.n}`, err, context)));
      return;
    }
    // Number(): a client passed in with ioredis' `stringNumbers` answers the script's integers as
    // text ('1', ['0', '7']); taken for an unexpected reply, a stored append was reported failed.
    const [code, stored, retriedEpoch] = Array.isArray(reply) ? reply : [reply, undefined, undefined];
    const status = Number(code);
    if (status === 1 || status === 2 || status === 3) {
      // The mark, answered to a first attempt (3) or to a re-send of one that ran (2, with the epoch):
      // a re-send's entry is the only one of that append, and may be the upgrade's last.
      const epoch = status === 3 ? stored : status === 2 ? retriedEpoch : undefined;
      if (epoch !== undefined) {
        p.unfed = true;
        // As Redis stored it: the prepared command answers bulk strings as Buffers, sent back unchanged.
        p.epoch = typeof epoch === 'string' || Buffer.isBuffer(epoch) ? epoch : undefined;
      }
      if (status === 2) this.#logger.info({ ...context, n: p.n }, 'append had already been applied by an earlier attempt (retry after a lost reply)');
      // Stored seq 0: the first append of a run deleted since it ran (see DELETE_LUA); no index or feed entry for it.
      const gone = status === 2 && Number(stored) === 0;
      // Its run is known even when gone: the next append names it, and is refused (CONFLICT) rather than
      // taken into a run created again under the id meanwhile, up to its very seq.
      if (p.run !== undefined) this.#setRun(p.upgradeId, p.run, true);
      if (this.#cluster && !gone) this.#followUp(p);
      p.resolve();
    } else if (status === 0) {
      // The run check (see APPEND_LUA) also refuses an upgrade that is gone (stored seq 0): nothing was
      // created again then, it was deleted or lost whole, as the seq check says.
      const why =
        String(retriedEpoch) === 'run' && Number(stored) > 0
          ? 'it was deleted and created again since this store last wrote or read it (another run of it is stored)'
          : Number(stored) < p.expectedSeq
            ? 'Redis lost appends it had acknowledged (a failover to a replica they had not reached?), or the upgrade was deleted and created again'
            : 'another writer moved it';
      p.reject(
        new ProgressError('CONFLICT', `${PKG} upgrade "${p.upgradeId}" is at seq ${stored} in Redis, not ${p.expectedSeq}: ${why} (open the upgrade again, ProgressTracker.open, to go on from what is stored)`, {
          context: { ...context, storedSeq: Number(stored) },
        }),
      );
    } else if (status === -2) {
      p.reject(corrupted(upgradeKeys(this.#keys, p.upgradeId).events, `the event stream (it disagrees with lastSeq ${p.expectedSeq}; Redis: ${String(stored)}; nothing was appended)`, undefined, context));
    } else if (status === -1) {
      // Late by Redis' clock: perhaps ours moved against it since it was read (a resumed VM); read it again.
      this.#clock.invalidate();
      p.reject(new ProgressError('STORE_UNAVAILABLE', `${PKG} upgrade "${p.upgradeId}": the append reached Redis after its deadline and was not applied`, { context }));
    } else {
      p.reject(new ProgressError('STORE_UNAVAILABLE', `${PKG} upgrade "${p.upgradeId}": unexpected reply ${JSON.stringify(reply) ?? String(reply)} from the append script`, { context }));
    }
  }

  /**
   * With `replicas`: the script ran append `p` on the master. It is acknowledged once a `WAIT count
   * timeoutMs` sent after it on the same connection says that `count` replicas have it (WAIT counts
   * the replicas that have every write its connection made before it). Appends answered in the same
   * tick share one WAIT. A connection made again between the script's answer and WAIT's (the session
   * moved) cannot vouch for the write: such an append is refused as unconfirmed, as are those WAIT
   * finds too few replicas for, or that it fails on. Until then `p` stays in flight: close() waits.
   */
  #awaitReplicas(p: PendingAppend, reply: AppendReply): void {
    p.replicas = 'waiting';
    // Never sent again from here: the arguments (the batch JSON, a snapshot) can go.
    p.args = NO_ARGS;
    p.staged = undefined;
    this.#replicaWaits.push({ p, reply, session: this.#session });
    if (this.#replicaWaitScheduled) return;
    this.#replicaWaitScheduled = true;
    void RESOLVED.then(this.#sendReplicaWait);
  }

  readonly #sendReplicaWait = (): void => {
    this.#replicaWaitScheduled = false;
    const waits = this.#replicaWaits;
    this.#replicaWaits = [];
    const session = this.#session;
    const sent = waits.filter((w) => {
      const short = this.#waitShortfall('append', w.session, undefined);
      if (short === undefined) return true;
      this.#replicasUnconfirmed(w.p, short.why);
      return false;
    });
    if (sent.length === 0) return;
    (this.#redis as Redis).call('wait', this.#options.replicaCount, this.#options.replicaTimeoutMs).then(
      (answer) => {
        const short = this.#waitShortfall('append', session, answer);
        for (const { p, reply } of sent) {
          if (p.settled) continue;
          if (short !== undefined) this.#replicasUnconfirmed(p, short.why, short.fields);
          else {
            p.replicas = 'confirmed';
            this.#settle(p, undefined, reply);
          }
        }
      },
      (err: unknown) => {
        withoutSecrets(err);
        for (const { p } of sent) this.#replicasUnconfirmed(p, `WAIT failed: ${(err as Error)?.message ?? String(err)}`, {}, err);
      },
    );
  };

  /**
   * Why a WAIT sent on the connection of `session` does not confirm the writes its connection made
   * before it (an append's or a delete's), given its `answer` (`undefined`: not sent yet, only the
   * session is checked); `undefined` when it does. A connection made again since (the session moved)
   * cannot vouch for them: ioredis may have sent the WAIT again on the new one.
   */
  #waitShortfall(what: 'append' | 'delete', session: number, answer: unknown): { why: string; fields: { acked?: number } } | undefined {
    if (this.#session !== session) return { why: `the connection was made again after the ${what} ran, so WAIT cannot confirm its replication`, fields: {} };
    if (answer === undefined) return undefined;
    const acked = Number(answer);
    const count = this.#options.replicaCount;
    if (acked >= count) return undefined;
    return { why: `${acked} of the ${count} replicas asked for had it within ${this.#options.replicaTimeoutMs} ms (replicas.timeoutMs)`, fields: { acked } };
  }

  /** Refuses append `p`, which the master ran, as not confirmed on `replicas.count` replicas (see #awaitReplicas). */
  #replicasUnconfirmed(p: PendingAppend, why: string, fields: { acked?: number } = {}, cause?: unknown): void {
    if (p.settled) return;
    this.#logger.warn({ upgradeId: p.upgradeId, expectedSeq: p.expectedSeq, n: p.n, ...fields, err: cause }, 'append stored on the master but not confirmed on the replicas asked for; not acknowledged');
    this.#settle(
      p,
      new ProgressError(
        'STORE_UNAVAILABLE',
        `${PKG} upgrade "${p.upgradeId}": seq ${p.expectedSeq + 1}..${p.expectedSeq + p.n} was stored on the master, but ${why}; not acknowledged (a failover may lose it; a tracker adopts it on its next write while the store holds it)`,
        { cause, context: { upgradeId: p.upgradeId, expectedSeq: p.expectedSeq, reason: 'replicas', replicas: this.#options.replicaCount, ...fields } },
      ),
    );
  }

  /**
   * Cluster mode: the index and the feed live in other slots, so they follow the script.
   *
   * The feed entry points from the first seq of this upgrade whose entry is known to have failed
   * (see #unfed), not from this append's: an entry lost (its write refused, or cut with its
   * connection) is covered by the next one. Else a `watchAll()` follower that had not seen the
   * upgrade yet started it at the next entry, and never handed out what the lost one pointed to (an
   * upgrade's first events, when it was the first append's). Followers drop what they handed out
   * already, so such an entry costs them a longer read, nothing twice. An entry still out is not
   * covered: most are written, and a follower that started after one was would be handed its
   * events, appended before it started.
   *
   * An upgrade's first entry is also lost when its writer dies between the script and the follow-up,
   * which no store knows of. So the first append's script marks the meta `unfed`, and the store that
   * wrote an entry from seq 1 takes the mark out right after (UNMARK_LUA, checking the run's epoch).
   * An append whose script still finds it (status 3), when this store is not writing such an entry
   * itself, points its entry from seq 1: a follower that had not seen the upgrade (one started before
   * it was created) is handed it from its start rather than from this entry. One that started after
   * the upgrade was created is handed those events too, more than the new ones (only after a lost
   * first entry, or an unmark that failed); one that has seen it drops what it handed out already.
   */
  #followUp(p: PendingAppend): void {
    const first = p.expectedSeq + 1;
    const last = p.expectedSeq + p.n;
    const unfed = this.#unfed.get(p.upgradeId);
    const from = p.unfed && !this.#founded.has(p.upgradeId) ? 1 : unfed !== undefined && unfed.from < first ? unfed.from : first;
    // From seq 1 (a first append, or one covering a lost first entry): once written, the meta's
    // `unfed` is taken out (of this run: its epoch is checked), so that the next writer's appends
    // point from their own seqs again. (An upgrade stored before the mark existed has none to take out.)
    const founding = from === 1 && p.epoch !== undefined;
    if (founding) addBounded(this.#founded, p.upgradeId);
    const fed = this.#redis.xadd(this.#keys.feed, 'MAXLEN', '~', String(this.#options.feedMaxLen), '*', 'p', feedPointer(p.upgradeId, from, last - from + 1));
    // Known at the reply itself (one reaction, not after the bounded wait below): the next append's
    // follow-up knows of a refusal answered before its script's reply on the same connection.
    fed.then(
      () => {
        const u = this.#unfed.get(p.upgradeId);
        // This entry covered the failed ones up to `last` (unless one failed after it was sent, further back).
        if (u === undefined || from > u.from) return;
        if (u.upTo <= last) this.#unfed.delete(p.upgradeId);
        else u.from = Math.max(u.from, last + 1);
      },
      () => {
        const u = this.#unfed.get(p.upgradeId);
        if (u !== undefined) {
          u.from = Math.min(u.from, from);
          u.upTo = Math.max(u.upTo, last);
          return;
        }
        if (this.#unfed.size >= UNFED_LIMIT) this.#unfed.delete(this.#unfed.keys().next().value!);
        this.#unfed.set(p.upgradeId, { from, upTo: last });
      },
    );
    // Not taken out (the command failed, or the entry was not written): the next append that finds the
    // mark points from seq 1 again, and takes it out after.
    const unmarked = founding
      ? fed
          .then(() => this.#redis.progressUnmarkV1(upgradeKeys(this.#keys, p.upgradeId).meta, p.epoch!))
          .finally(() => this.#founded.delete(p.upgradeId))
      : undefined;
    // Bounded like every other command: close() waits for these, and ioredis would hold them for
    // as long as Redis stays unreachable.
    const writes = Promise.all([this.#redis.zadd(this.#keys.index, p.score, p.upgradeId), fed, unmarked]);
    // Not tied to the end of close() (#ended): close() waits for every follow-up before that, so it
    // could never end one, and its listener, added and removed per append, cost a walk of every
    // other follow-up's in flight (Node's EventTarget keeps them in a list) on the append path.
    const done = this.#bounded(writes, `upgrade "${p.upgradeId}": could not update the index or feed`, p.upgradeId, this.#options.commandTimeoutMs, true).then(
      () => undefined,
      (err: unknown) => this.#logger.warn({ err, upgradeId: p.upgradeId }, 'could not update the index or feed after an append (the events are stored)'),
    );
    this.#followUps.add(done);
    void done.finally(() => this.#followUps.delete(done));
  }

  delete(upgradeId: string): Promise<boolean> {
    return this.#tracked(this.#delete(upgradeId));
  }

  /** `call`, counted among the calls close() lets finish (see #calls). */
  #tracked<T>(call: Promise<T>): Promise<T> {
    this.#calls.add(call);
    const done = (): void => void this.#calls.delete(call);
    call.then(done, done);
    return call;
  }

  async #delete(upgradeId: string): Promise<boolean> {
    this.#check(upgradeId);
    const keys = upgradeKeys(this.#keys, upgradeId);
    // This call's own marker: ioredis re-sends the script after a reconnect, and a re-send of one
    // that ran (its reply lost with the connection) finds it and answers as the run did, deleting
    // nothing (not the upgrade created again since, and not refused as late: see DELETE_LUA).
    const marker = this.#keys.deleteMarker(upgradeId, randomUUID());
    const deleted = this.#keys.deletedRuns(upgradeId);
    // Whatever run this store knew is going (and a load in flight may answer from before the delete).
    this.#setRun(upgradeId, undefined, true);
    // With a deadline on the server clock, as an append has: a delete this store gives up on (and
    // reports failed) never runs later, when the upgrade may have gone on and been acknowledged more.
    const startedAt = localNow();
    const timeout = this.#options.commandTimeoutMs;
    const offset = await this.#bounded(this.#clock.fresh(), `upgrade "${upgradeId}": could not delete (the server clock could not be read)`, upgradeId);
    const deadline = String(Math.max(1, Math.floor(startedAt + offset + timeout)));
    const waitMs = Math.max(1, Math.ceil(startedAt + timeout + this.#clock.errorMs - localNow()));
    // Sent again, the same command, while its connection is lost within the wait (ioredis does not
    // re-send one of a pipeline answered in part: see againOnConnectionLoss). Safe: a run that did
    // happen left this call's marker, so a re-run deletes nothing and answers what that run answered
    // (not an upgrade created again meanwhile); one that did not happen runs now, or is refused as
    // late past the same deadline, which Redis checks.
    // Number(): a client passed in with ioredis' `stringNumbers` answers '1', '0' or '-1'.
    const send = (): Promise<number> =>
      this.#cluster
        ? this.#redis.progressDeleteV6(keys.events, keys.meta, keys.snapshot, marker, deleted, upgradeId, deadline, this.#deleteMarkerTtl)
        : this.#redis.progressDeleteIndexedV6(keys.events, keys.meta, keys.snapshot, marker, deleted, this.#keys.index, upgradeId, deadline, this.#deleteMarkerTtl);
    const deleting = againOnConnectionLoss(this.#redis, send, waitMs, this.#stop.signal);
    // Forgotten again once the script has run (or failed): a load sent while it waited for the clock
    // may have read the run it deleted.
    // Not given up on at close(): a client passed in that holds the script (waiting to reconnect) may
    // still send it before its deadline, and a delete reported failed must not run later.
    const reply = Number(await this.#bounded(deleting, `upgrade "${upgradeId}": could not delete`, upgradeId, waitMs, true).finally(() => this.#setRun(upgradeId, undefined, true)));
    if (reply === -1) {
      // Late by Redis' clock: perhaps ours moved against it since it was read; read it again next time.
      this.#clock.invalidate();
      throw new ProgressError('STORE_UNAVAILABLE', `${PKG} upgrade "${upgradeId}": the delete reached Redis after its deadline and was not applied`, { context: { upgradeId } });
    }
    // 2 or 3: a re-send of this call that had run (its reply lost with its connection), answered from its marker.
    const resent = reply >= 2;
    const existed = resent ? reply - 2 : reply;
    // Nothing deleted (0) leaves nothing a failover could bring back: no WAIT for it.
    if (existed === 1 && this.#options.replicaCount > 0) await this.#awaitDeleteReplicas(upgradeId, resent);
    // Cluster mode: the index is in another slot, updated after the script. The upgrade is deleted by
    // now, so a failure here is not the delete's: reported, it would tell the caller that a delete
    // that happened had not (and a delete reported failed must have changed nothing). The entry left
    // behind is harmless: list() drops an entry whose upgrade is gone.
    if (this.#cluster) {
      // Feed entries not written for the deleted upgrade are not a new one's to cover.
      this.#unfed.delete(upgradeId);
      this.#founded.delete(upgradeId);
      await this.#bounded(this.#unindex([upgradeId]), 'could not update the index', upgradeId).catch((err: unknown) =>
        this.#logger.warn({ err, upgradeId }, 'could not take a deleted upgrade out of the index (the upgrade is deleted; list() drops the entry)'),
      );
    }
    return existed === 1;
  }

  /**
   * With `replicas`: the delete script removed `upgradeId` on the master (just now: no await since
   * its answer). Acknowledged, as an append is (see #awaitReplicas), once a `WAIT count timeoutMs`
   * sent on the same connection says that `count` replicas have it; else refused as unconfirmed
   * (`context.deleted`: it ran on the master). A failover to a replica it had not reached would bring
   * the upgrade back. Its own WAIT: deletes are few, and none shares an append's tick.
   */
  async #awaitDeleteReplicas(upgradeId: string, resent: boolean): Promise<void> {
    const count = this.#options.replicaCount;
    const timeoutMs = this.#options.replicaTimeoutMs;
    const unconfirmed = (why: string, fields: { acked?: number } = {}, cause?: unknown): ProgressError => {
      this.#logger.warn({ upgradeId, ...fields, err: cause }, 'delete ran on the master but is not confirmed on the replicas asked for; not acknowledged');
      return new ProgressError(
        'STORE_UNAVAILABLE',
        `${PKG} upgrade "${upgradeId}" was deleted on the master, but ${why}; not acknowledged (a failover may bring the upgrade back: delete it again then)`,
        { cause, context: { upgradeId, reason: 'replicas', replicas: count, deleted: true, ...fields } },
      );
    };
    // The run was an earlier connection's: a WAIT on this one does not vouch for it.
    if (resent) throw unconfirmed('it had run on a connection since lost, so WAIT cannot confirm its replication');
    const session = this.#session;
    let answer: unknown;
    try {
      // Bounded as an append's WAIT is (replicas.timeoutMs is at most commandTimeoutMs); not given up on at close(), which waits for it.
      answer = await withTimeout((this.#redis as Redis).call('wait', count, timeoutMs), this.#options.commandTimeoutMs, 'WAIT');
    } catch (err) {
      withoutSecrets(err);
      const cause = (err as { cause?: unknown }).cause ?? err;
      throw unconfirmed(isProgressError(err, 'STORE_UNAVAILABLE') && err.context.reason === 'timeout' ? `WAIT did not answer within commandTimeoutMs (${this.#options.commandTimeoutMs} ms)` : `WAIT failed: ${(cause as Error)?.message ?? String(cause)}`, {}, cause);
    }
    const short = this.#waitShortfall('delete', session, answer);
    if (short !== undefined) throw unconfirmed(short.why, short.fields);
  }

  // -------------------------------------------------------------------------------------- reads

  load(upgradeId: string): Promise<UpgradeProgress | undefined> {
    return this.#tracked(this.#load(upgradeId));
  }

  async #load(upgradeId: string): Promise<UpgradeProgress | undefined> {
    this.#check(upgradeId);
    const keys = upgradeKeys(this.#keys, upgradeId);
    const changes = this.#runChanges;
    // A read: sent again while its connection is lost within the bound (see againOnConnectionLoss).
    const loading = againOnConnectionLoss(this.#redis, () => this.#loadScript(keys), this.#options.commandTimeoutMs, this.#stop.signal);
    const reply = await this.#bounded(loading, `upgrade "${upgradeId}": could not load`, upgradeId);
    // The run this store knows the upgrade by is the one read now; unless this store appended its first
    // event or deleted it meanwhile (the read may be from before): then it knows none, as one that never read it.
    const run = reply?.[4];
    const changed = (this.#runs.get(upgradeId)?.changedAt ?? 0) > changes || this.#runsForgottenAt > changes;
    this.#setRun(upgradeId, !changed && typeof run === 'string' && run !== '' ? run : undefined, false);
    if (!reply) return undefined;
    const [lastText, snapText, snapJson, tail] = reply;
    // The events without their meta (evicted under a maxmemory policy, or deleted by hand): not "no
    // such upgrade", which a tracker would create again over them.
    if (lastText === '') throw corrupted(keys.meta, `the meta (missing, while the event stream ${keys.events} holds entries: evicted or deleted; see the README, Durability)`, undefined, { upgradeId });
    const lastSeq = Number(lastText);
    const snapSeq = Number(snapText);
    let state: UpgradeProgress | undefined;
    if (snapSeq > 0) {
      if (!snapJson) throw corrupted(keys.snapshot, `the snapshot at seq ${snapSeq} (missing)`, undefined, { upgradeId });
      state = decodeSnapshot(keys.snapshot, snapJson, snapSeq);
    }
    // The first entry may hold events the snapshot already covers (a batch across snapSeq).
    const events: ProgressEvent[] = [];
    for (const entry of tail) for (const e of decodeEntry(keys.events, entry)) if (e.seq > snapSeq) events.push(e);
    events.forEach((e, i) => {
      if (e.seq !== snapSeq + i + 1) throw corrupted(keys.events, `the event log after seq ${snapSeq + i} (seq ${e.seq} follows)`, undefined, { upgradeId });
    });
    state = replayEvents(events, state);
    if (!state || state.lastSeq !== lastSeq) throw corrupted(keys.meta, `lastSeq ${lastSeq} (the log ends at ${state?.lastSeq ?? 0})`, undefined, { upgradeId });
    return state;
  }

  /**
   * The load script, declared read-only so that it runs while Redis pauses writes (`CLIENT PAUSE
   * WRITE`, as during a failover: a script not so declared waits for the pause to end, and load()
   * would time out). Redis before 7 cannot compile the declaration (nothing ran): then the same
   * script without it, for this store from then on.
   */
  async #loadScript(keys: UpgradeKeys): Promise<LoadReply> {
    if (this.#evalReadOnly) {
      try {
        return await this.#loadReadOnlyEval(keys);
      } catch (err) {
        if (!isReadOnlyEvalRefusal(err)) throw err;
        this.#evalReadOnly = false;
        this.#logger.info({ err, url: this.#url }, 'Redis refuses EVALSHA_RO (before Redis 7, or an ACL without it): load() sends its script with EVALSHA, which needs write access to its keys');
      }
    }
    if (this.#readOnlyScripts) {
      try {
        return await this.#redis.progressLoadReadOnlyV2(keys.events, keys.meta, keys.snapshot);
      } catch (err) {
        if (!isScriptFlagsRefusal(err)) throw err;
        this.#readOnlyScripts = false;
        this.#logger.info({ err, url: this.#url }, 'Redis does not take read-only script declarations (before Redis 7): load() waits out write pauses');
      }
    }
    return this.#redis.progressLoadV2(keys.events, keys.meta, keys.snapshot);
  }

  /**
   * The load script as EVALSHA_RO (EVAL_RO on NOSCRIPT: a restarted or flushed Redis), prepared
   * commands with the client's key prefix, sent to the node of the upgrade's slot.
   */
  #loadReadOnlyEval(keys: UpgradeKeys): Promise<LoadReply> {
    const send = (name: 'evalsha_ro' | 'eval_ro', script: string): Promise<LoadReply> => {
      const command = new Command(name, [script, '3', keys.events, keys.meta, keys.snapshot], { keyPrefix: this.#clientKeyPrefix, replyEncoding: 'utf8' });
      void this.#redis.sendCommand(command);
      return command.promise as Promise<LoadReply>;
    };
    return send('evalsha_ro', LOAD_READ_ONLY_SHA).catch((err: unknown) => {
      if (err instanceof Error && err.message.includes('NOSCRIPT')) return send('eval_ro', LOAD_READ_ONLY_LUA);
      throw err;
    });
  }

  readEvents(upgradeId: string, afterSeq: number, limit = Infinity): AsyncIterable<ProgressEvent> {
    return this.#readEvents(upgradeId, afterSeq, limit);
  }

  /** `readEvents`, telling `onEpoch` the upgrade's epoch (null: no meta) and the id of its first feed entry (null: not recorded) as its first page read them (for watchAll). */
  async *#readEvents(upgradeId: string, afterSeq: number, limit: number, onEpoch?: (epoch: string | null, born: string | null) => void): AsyncIterable<ProgressEvent> {
    this.#check(upgradeId);
    assertReadEvents('@progress/storage-redis', upgradeId, afterSeq, limit);
    const keys = upgradeKeys(this.#keys, upgradeId);
    let next = afterSeq;
    let left = limit;
    /** The upgrade's epoch (the eventId of its seq 1) on the first page: another one on a later page means it was deleted (and perhaps created again) in between. */
    let epoch: string | null | undefined;
    /** Page reads in a row whose meta changed epoch between its two reads. */
    let moved = 0;
    /** On a Cluster, page reads in a row that found the stream and the meta apart (see below), and until when they are read again. */
    let split = 0;
    let splitUntil = 0;
    const cluster = isClusterClient(this.#redis);
    while (left > 0) {
      // An iteration that goes on after close() ends (a client passed in would go on reading).
      if (epoch !== undefined) this.#assertOpen();
      // Entries, not events: each holds one append's events, so `left` entries hold at least `left` events.
      const count = Math.min(this.#options.pageSize, left);
      // With a limit, the page ends at the entry that holds seq next + left: the entries up to that id,
      // and the first one after it (which holds it when no entry ends there). Without this end, a
      // read of 10 events over batches of 200 fetched 10 entries, 2,000 events.
      const last = next + left;
      const bounded = Number.isSafeInteger(last);
      // The entry holding seq next + 1 is the first with an id >= 0-(next + 1) (its id is its last seq).
      // The page between two reads of the meta, written together (not a transaction: see
      // readTogether). The same epoch before and after: the page is of that upgrade. The trim mark
      // read after: a gap in the page was left by a trim at or below it (the script moves it with
      // the XTRIM). The one read before: an empty page is reported trimmed only by a trim before it,
      // not by an append that came between the XRANGE and the read after and trimmed past `next`.
      const replies = await this.#bounded(
        readTogether(this.#redis, [
          ['hmget', keys.meta, 'epoch', 'born', 'trimmed', 'lastSeq'],
          ['xrange', keys.events, entryId(next + 1), bounded ? entryId(last) : '+', 'COUNT', count],
          ...(bounded ? [['xrange', keys.events, entryId(last + 1), '+', 'COUNT', 1] as RedisCommand] : []),
          ['hmget', keys.meta, 'epoch', 'trimmed'],
        ]),
        `upgrade "${upgradeId}": could not read events`,
        upgradeId,
      );
      const before = replies[0] as Array<string | null>;
      const upTo = replies[1] as StreamEntry[];
      const beyond = (bounded ? replies[2] : []) as StreamEntry[];
      const after = replies[replies.length - 1] as Array<string | null>;
      // Anything else (`QUEUED`: a transaction of a client passed in open on its connection, cut by a
      // lost connection as above) is not this read's answer: read again, as after a lost connection.
      if (!Array.isArray(before) || before.length !== 4 || !Array.isArray(upTo) || !Array.isArray(beyond) || !Array.isArray(after) || after.length !== 2) {
        const cut = new Error(`unexpected replies ${JSON.stringify(replies).slice(0, 200)}: not this read's answers`);
        cut.name = 'AbortError';
        throw unavailable(`upgrade "${upgradeId}": could not read events`, cut, { upgradeId });
      }
      const epochNow = after[0] ?? null;
      // Deleted (and perhaps created again) while this page was read: read it again.
      if ((before[0] ?? null) !== epochNow) {
        if (++moved < EPOCH_READS) continue;
        throw goneError(upgradeId, next, 'it was deleted or created again on every read', 'read');
      }
      moved = 0;
      const [, born, trimmedBefore, lastSeq] = before;
      // The entry after the limit's end counts only when the page did not stop at `count` entries before it.
      const entries = upTo.length < count && beyond.length > 0 ? [...upTo, ...beyond] : upTo;
      /** Whether the stream may hold more than this page: a full page, or the entry after the limit's end. */
      const more = upTo.length === count || entries.length > upTo.length;
      // On a Cluster, a page read while a resharding moves the upgrade's slot a batch of keys at a
      // time: a read that finds one key moved already is sent to the new master whole (ASK), where
      // the others may not be yet. The meta there without the stream read as an upgrade without
      // events (an empty page), the stream without the meta as one without its epoch. Read again
      // (20 ms, doubling to 250 ms) until both are found together, for up to commandTimeoutMs. (The
      // meta is told missing by its lastSeq: one written before epochs existed has none.)
      /** Read as it stands after reading it again for commandTimeoutMs: a slot left half moved, or keys lost. */
      let stuck = false;
      if (cluster && ((entries.length === 0 && lastSeq != null && Number(lastSeq) > next && Number(trimmedBefore ?? 0) <= next) || (entries.length > 0 && lastSeq == null))) {
        const now = performance.now();
        if (split === 0) splitUntil = now + this.#options.commandTimeoutMs;
        if (now < splitUntil) {
          await new Promise((resolve) => setTimeout(resolve, Math.min(250, 20 * 2 ** split++)));
          continue;
        }
        stuck = true;
      }
      split = 0;
      const [, trimmedText] = after;
      if (epoch === undefined) {
        epoch = epochNow;
        onEpoch?.(epoch, born ?? null);
      } else if (epochNow !== epoch) throw goneError(upgradeId, next, epochNow ? 'it was deleted and created again' : 'it was deleted', 'read');
      const trimmed = Number(trimmedText ?? 0);
      // Retention removes whole entries, so events up to the trim mark that share an entry with kept
      // ones are still there and are returned; only a missing event is reported as trimmed.
      if (entries.length === 0 && Number(trimmedBefore ?? 0) > next) throw trimmedError(upgradeId, next, Number(trimmedBefore));
      for (const entry of entries) {
        for (const event of decodeEntry(keys.events, entry)) {
          if (event.seq <= next) continue;
          if (event.seq !== next + 1) {
            if (trimmed > next) throw trimmedError(upgradeId, next, trimmed);
            throw corrupted(keys.events, `the event log after seq ${next} (entry ${entry[0]} follows)`, undefined, { upgradeId });
          }
          next = event.seq;
          yield event;
          if (--left === 0) return;
        }
      }
      // The end of the stream. The meta read before the page said the upgrade held events up to
      // lastSeq (of this epoch, still the upgrade's after the page), and appends only add to the
      // stream, retention never takes its last entry: ending short of it, the stream lost entries
      // the meta holds (evicted under a maxmemory policy, deleted by hand), which a shorter log
      // would hide.
      if (!more) {
        const held = Number(lastSeq ?? 0);
        if (held > next && epochNow !== null && stuck) {
          // The meta without its stream for commandTimeoutMs on a Cluster: lost, or on the other
          // master of a resharding left half done. A lone read of the stream's last entry goes where
          // the stream is: past `next` there, nothing was lost, and the read can be made again (a
          // timeout, which watchAll() waits out as it does a stall).
          const top = (await this.#bounded(this.#redis.xrevrange(keys.events, '+', '-', 'COUNT', 1), `upgrade "${upgradeId}": could not read events`, upgradeId)) as StreamEntry[];
          if (top[0] && seqOf(top[0][0]) > next) {
            throw new ProgressError('STORE_UNAVAILABLE', `${PKG} upgrade "${upgradeId}": could not read events: its meta and its event stream are on two masters (a resharding half done) for longer than commandTimeoutMs (${this.#options.commandTimeoutMs} ms)`, { context: { upgradeId, reason: 'timeout' } });
          }
        }
        if (held > next && epochNow !== null) throw lostEntriesError(keys.events, next, held, upgradeId);
        return;
      }
    }
  }

  list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    return this.#tracked(this.#list(filter));
  }

  async #list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    this.#assertOpen();
    assertListFilter(filter);
    const ids = await this.#bounded(this.#redis.zrange(this.#keys.index, 0, -1), 'could not read the index of upgrades');
    const rows: UpgradeSummaryRow[] = [];
    const gone: string[] = [];
    for (let i = 0; i < ids.length; i += LIST_CHUNK) {
      const chunk = ids.slice(i, i + LIST_CHUNK);
      const replies = await this.#bounded(Promise.all(chunk.map((id) => this.#redis.hmget(upgradeKeys(this.#keys, id).meta, 'row', 'fast'))), 'could not read the upgrades');
      chunk.forEach((id, k) => {
        const [text, fast] = replies[k] ?? [];
        if (!text) return void gone.push(id);
        rows.push(decodeRow(upgradeKeys(this.#keys, id).meta, id, text, fast ?? null));
      });
    }
    // Upgrades that expired (retention TTL) leave their index entry behind: drop it now, each only
    // if still gone (one created again under the same id meanwhile stays listed). In chunks, each
    // bounded: all those expired since the last list() may be many, and one call with them all (its
    // arguments spread) overflowed the stack past ~60,000, so that none was ever pruned again.
    for (let i = 0; i < gone.length; i += LIST_CHUNK) {
      try {
        await this.#bounded(this.#prune(gone.slice(i, i + LIST_CHUNK)), 'could not prune the index');
      } catch (err) {
        this.#logger.debug({ err }, 'could not prune the index');
        break;
      }
    }
    return filterRows(rows, filter);
  }

  async #prune(gone: string[]): Promise<void> {
    const metas = gone.map((id) => upgradeKeys(this.#keys, id).meta);
    if (!this.#cluster) {
      await this.#redis.progressPruneV1(1 + metas.length, this.#keys.index, ...metas, ...gone);
      return;
    }
    // Cluster: the check and the removal cannot be one script across slots; check each right before.
    const exists = await Promise.all(metas.map((meta) => this.#redis.exists(meta)));
    const still = gone.filter((_, i) => Number(exists[i]) === 0); // '0' from a client with `stringNumbers`
    if (still.length > 0) await this.#unindex(still);
  }

  /**
   * Cluster mode: takes upgrades out of the index, then puts back any that exists again by then. An
   * upgrade created again between the caller's check and the ZREM would otherwise stay unlisted
   * until its next append (a finished one never has one): its script runs before its own follow-up
   * ZADD, so the check after the ZREM sees it.
   */
  async #unindex(ids: string[]): Promise<void> {
    await this.#redis.zrem(this.#keys.index, ...ids);
    const fast = await Promise.all(ids.map((id) => this.#redis.hget(upgradeKeys(this.#keys, id).meta, 'fast')));
    await Promise.all(
      ids.map((id, i) => {
        const f = fast[i];
        if (f === null || f === undefined) return undefined;
        // The score is the latest append's time, as the follow-ups write it (`fast` ends with updatedAt).
        const score = Date.parse(f.slice(f.indexOf('|', f.indexOf('|') + 1) + 1)) || Date.now();
        return this.#redis.zadd(this.#keys.index, score, id);
      }),
    );
  }

  // -------------------------------------------------------------------------------------- watch

  /**
   * Replays the events after `afterSeq`, then follows new ones as any process appends them, in seq
   * order, without gaps or duplicates (XREAD BLOCK on a dedicated connection, opened per call and
   * closed when the iteration ends). It waits through connection losses (ioredis reconnects and
   * resumes from the last seq read). It ends when `signal` aborts, the loop breaks, or the store
   * closes. Throws `NOT_FOUND` (`context.reason = 'trimmed'`) when the events after `afterSeq` were
   * removed by retention: load the state and resume from its `lastSeq`; and `NOT_FOUND`
   * (`context.reason = 'deleted'`) when the upgrade is deleted, expires, or is deleted and created
   * again while watched (its new events are never handed out as the old one's continuation).
   */
  watch(upgradeId: string, afterSeq: number, options: { signal?: AbortSignal } = {}): AsyncIterable<ProgressEvent> {
    this.#check(upgradeId);
    if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw new ProgressError('INVALID_ARGUMENT', `${PKG} afterSeq must be a whole number >= 0, got ${describeValue(afterSeq)}`);
    return watchUpgrade(this.#watchContext(), upgradeId, afterSeq, signalOf(options));
  }

  /**
   * The new events of every upgrade, from the moment of this call, each upgrade's in seq order
   * (read from the feed stream; a gap in one upgrade's seqs is filled from its own stream, and
   * duplicates are dropped; events retention removed before they were read are skipped, so that
   * upgrade's seqs jump and `readEvents` from the last one seen reports `NOT_FOUND` 'trimmed').
   * An upgrade deleted and created again, or whose events handed out a failover lost (the next
   * writer reused their seqs), is handed out again from seq 1 (see the README, Watching).
   * Ends like {@link watch}.
   */
  watchAll(options: { signal?: AbortSignal } = {}): AsyncIterable<ProgressEvent> {
    this.#assertOpen();
    return watchAllUpgrades(this.#watchContext(), signalOf(options));
  }

  /**
   * What a connection's error means when it is the answer to SELECT; undefined for any other error.
   * ioredis selects the URL's database when it connects, and on a refusal ("DB index is out of range")
   * only emits this error and goes on in database 0: the commands queued meanwhile would run there.
   * The error comes before the connection is ready (the reply to SELECT precedes the ready check's),
   * so closing the connection here keeps every command of it out of database 0.
   * - A refusal of the database itself is for good: the store fails every call from now on, and the
   *   answer is that error (a watcher ends with it).
   * - Another refusal (maxclients reached, BUSY with a script) passes: the connection connects again,
   *   and selects again before it is ready. The answer is null.
   * Used for the store's own connection and for every watch connection (a Redis restarted with fewer
   * databases refuses them all).
   */
  #selectFailure(err: unknown, conn: Redis | Cluster): ProgressError | null | undefined {
    if ((err as { command?: { name?: unknown } } | null)?.command?.name !== 'select') return undefined;
    if (!DATABASE_REFUSED.test((err as Error).message)) {
      this.#logger.warn({ err, url: this.#url }, 'Redis could not select the database of the URL now; connecting again');
      conn.disconnect(true);
      return null;
    }
    if (!this.#misconfigured) {
      this.#misconfigured = new ProgressError('INVALID_ARGUMENT', `${PKG} Redis at ${this.#url} refused to select its database: ${(err as Error).message}`, { cause: err });
      this.#logger.error({ err, url: this.#url }, 'Redis refused to select the database of the URL; the store is unusable');
    }
    conn.disconnect();
    return this.#misconfigured;
  }

  #watchContext(): WatchContext {
    return {
      redis: this.#redis,
      keys: this.#keys,
      options: this.#options,
      logger: this.#logger,
      stop: this.#stop.signal,
      readEvents: (id, after, limit, onEpoch) => this.#readEvents(id, after, limit ?? Infinity, onEpoch),
      selectFailure: (err, conn) => this.#selectFailure(err, conn),
      checkLink: () => this.#checkLink(),
      withConnectionError: (err) => this.#withConnectionError(err),
      track: (conn) => {
        this.#watchers.add(conn);
        return () => this.#release(conn);
      },
    };
  }

  // ---------------------------------------------------------------------------------- lifecycle

  info(): StoreInfo {
    return {
      name: 'RedisStore',
      durable: true,
      url: this.#url,
      // The prefix the keys carry in Redis: a client passed in puts its own keyPrefix in front of the store's.
      keyPrefix: (this.#clientKeyPrefix ?? '') + this.#options.keyPrefix,
      mode: this.#cluster ? 'cluster' : 'single',
      status: this.#redis.status,
      snapshotEvery: this.#options.snapshotEvery,
      retention: { ttlSeconds: this.#options.ttlSeconds || null, maxEvents: this.#options.maxEvents || null },
      replicas: this.#options.replicaCount === 0 ? null : { count: this.#options.replicaCount, timeoutMs: this.#options.replicaTimeoutMs },
      watchers: this.#watchers.size,
      closed: this.#closing !== undefined,
    };
  }

  /**
   * Waits for appends in flight (and, while connected, for the delete(), load() and list() calls
   * made before), ends every watcher, and quits the connection the store created (a client passed
   * in stays open). Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stop.abort();
      await new Promise<void>((resolve) => queueMicrotask(resolve));
      // Every append handed over is answered by Redis or by the sweeper (deadline) in bounded time.
      if (this.#pending.length > 0 || this.#unsettled > 0) await new Promise<void>((resolve) => this.#drained.push(resolve));
      // So do the delete(), load() and list() calls made before, on a connected store (each is bounded
      // by commandTimeoutMs): a delete's script, or a list's rows, sent after the QUIT below was never
      // run, and the call failed with CLOSED though it came first. Those still waiting for a connection
      // that is not up fail with CLOSED once it is ended, as before.
      while (this.#calls.size > 0 && this.#redis.status === 'ready') await Promise.allSettled([...this.#calls]);
      while (this.#followUps.size > 0) await Promise.allSettled([...this.#followUps]);
      if (this.#sweepTimer) clearTimeout(this.#sweepTimer);
      clearTimeout(this.#probeTimer);
      this.#probeTimer = undefined;
      for (const conn of this.#watchers) this.#release(conn);
      this.#offReady();
      if (this.#owns) {
        const redis = this.#redis;
        if (redis.status === 'ready') await withTimeout(redis.quit(), 1000, 'quit').catch(() => {});
        // Not disconnect() alone: see endConnection (a client waiting to reconnect kept a timer, and its queued reads, for good).
        await endConnection(redis);
      }
      // The calls still waiting for a client passed in that is not connected (close() waited only for
      // those on a connected client): CLOSED now, rather than STORE_UNAVAILABLE commandTimeoutMs later,
      // each with a timer that kept the process alive that long after its owner closed the client.
      if (this.#redis.status !== 'ready') this.#ended.abort();
      // Resolved once no socket or timer of the store's connections is left.
      while (this.#releasing.size > 0) await Promise.all([...this.#releasing]);
    })();
    return this.#closing;
  }

  /** Ends a watcher's connection (once), and keeps the wait for it until it has ended, for close(). */
  #release(conn: Redis | Cluster): void {
    if (!this.#watchers.delete(conn)) return;
    const ending = endConnection(conn);
    this.#releasing.add(ending);
    void ending.then(() => this.#releasing.delete(ending));
  }

  // ------------------------------------------------------------------------------------ helpers

  #assertOpen(): void {
    if (this.#closing) throw closedError();
    if (this.#misconfigured) throw this.#misconfigured;
  }

  #check(upgradeId: string): void {
    this.#assertOpen();
    assertValidId(upgradeId, 'upgradeId');
  }

  /** `promise` within `ms` (see withTimeout); given up on with CLOSED at the end of close() unless `untilAnswered` (see #ended). */
  #bounded<T>(promise: Promise<T>, what: string, upgradeId?: string, ms = this.#options.commandTimeoutMs, untilAnswered = false): Promise<T> {
    const bounded = withTimeout(promise, ms, what, upgradeId === undefined ? {} : { upgradeId }, untilAnswered ? undefined : this.#ended.signal);
    // A command queued before Redis refused the database fails with "Connection is closed": say why.
    return bounded.catch((err: unknown) => {
      if (isNoAnswer(err)) this.#checkLink();
      // A command that lost its connection to close() (one queued while connecting, which an owned
      // client drops) failed because the store closed, not because Redis is unavailable.
      if (this.#closing !== undefined && isConnectionLoss((err as { cause?: unknown } | null)?.cause ?? err)) throw closedError();
      throw this.#misconfigured ?? this.#withConnectionError(err);
    });
  }

  /**
   * Why the connection the store created is down: a TLS handshake the server took the connection
   * for and has not answered (no error says that before ioredis' connectTimeout), or its last error.
   */
  #whyDown(): string | undefined {
    const last = this.#connectionError;
    // Not over an error the server gave (a refused certificate): the next try may be in its handshake
    // when the wait ends. But over ioredis' connect timeout, which ended the try before with as little.
    if (!this.#owns || (last !== undefined && last !== CONNECT_TIMEOUT)) return last;
    return unansweredHandshake(this.#redis) ?? last;
  }

  /**
   * A timeout while the connection is down says why it is down (`connect ECONNREFUSED ...`): "no
   * answer within 3000 ms" alone does not tell a Redis that is not running from a slow one.
   */
  #withConnectionError(err: unknown): unknown {
    const reason = this.#whyDown();
    // Or a command of the store's own connection that ioredis let go after its attempts to connect again (see maxRetriesPerRequest).
    if (reason === undefined || !isProgressError(err, 'STORE_UNAVAILABLE') || (err.context.reason !== 'timeout' && !isOfflineRefusal(err.cause))) return err;
    return new ProgressError('STORE_UNAVAILABLE', `${err.message} (the connection is down: ${reason})`, { cause: err.cause, context: err.context });
  }
}

/** Adds `id` to `set` as its newest member, forgetting the oldest past {@link UNFED_LIMIT}. */
function addBounded(set: Set<string>, id: string): void {
  set.delete(id);
  if (set.size >= UNFED_LIMIT) set.delete(set.values().next().value!);
  set.add(id);
}

/** Per client, the one 'ready' / '+node' listener and the stores' callbacks it calls (see onReconnect). */
const RECONNECT = new WeakMap<Redis | Cluster, { fns: Set<() => void>; off: () => void }>();

/**
 * Calls `fn` on every 'ready' and '+node' of `client`; returns the function that stops it. One
 * listener per client, whatever the number of stores on it: a listener per store made Node warn of
 * a leak (MaxListenersExceededWarning) on a client shared by more than ten (a store per tenant).
 */
function onReconnect(client: Redis | Cluster, fn: () => void): () => void {
  let entry = RECONNECT.get(client);
  if (entry === undefined) {
    const fns = new Set<() => void>();
    const each = (): void => {
      for (const f of [...fns]) f();
    };
    client.on('ready', each);
    client.on('+node', each);
    // Taken off the client once its last store is gone: a client passed in outlives its stores.
    const off = (): void => {
      client.off('ready', each);
      client.off('+node', each);
      RECONNECT.delete(client);
    };
    entry = { fns, off };
    RECONNECT.set(client, entry);
  }
  const { fns, off } = entry;
  fns.add(fn);
  return () => {
    if (fns.delete(fn) && fns.size === 0) off();
  };
}

const WATCH_OPTION_NAMES = ['signal'];

/** The `signal` of watch options; `INVALID_ARGUMENT` for options that are not an object, an unknown option or a signal that is not an AbortSignal. */
function signalOf(options: unknown): AbortSignal | undefined {
  if (options === undefined) return undefined;
  if (options === null || typeof options !== 'object') throw new ProgressError('INVALID_ARGUMENT', `${PKG} watch options must be an object, got ${describeValue(options)}`);
  // A misspelt `signl` was left out without a word: the watch then never ended on abort.
  assertKnownOptions(options, WATCH_OPTION_NAMES, { source: '@progress/storage-redis', what: 'watch options' });
  const { signal } = options as { signal?: unknown };
  if (signal === undefined) return undefined;
  const s = signal as Partial<AbortSignal> | null;
  if (s === null || typeof s !== 'object' || typeof s.aborted !== 'boolean' || typeof s.addEventListener !== 'function' || typeof s.removeEventListener !== 'function') {
    throw new ProgressError('INVALID_ARGUMENT', `${PKG} options.signal must be an AbortSignal, got ${describeValue(signal)}`);
  }
  return signal as AbortSignal;
}

/**
 * Refuses a redis:// URL whose database (the path, else `?db=`, as ioredis reads them) is not a
 * whole number: ioredis would send `SELECT NaN`, which Redis refuses, and go on in database 0.
 */
function assertDatabase(url: string, shown: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return; // ioredis says what is wrong with it
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') return;
  const db = parsed.pathname.length > 1 ? parsed.pathname.slice(1) : parsed.searchParams.get('db');
  if (db !== null && !/^\d{1,9}$/.test(db)) {
    // The value is not shown: when the URL holds an unescaped password, the parser may have taken it for the path.
    throw new ProgressError('INVALID_ARGUMENT', `${PKG} the database of the url ${shown} must be a whole number (the path /N or ?db=N)`);
  }
}

function describeClient(client: Redis | Cluster): string {
  if (isClusterClient(client)) return 'redis-cluster';
  const o = (client as Redis).options;
  if (o.path) return `redis+unix://${o.path}`;
  const scheme = o.tls ? 'rediss' : 'redis';
  // A client made with `sentinels` asks them for the master `name`: its host and port are ioredis'
  // defaults, which it never connects to.
  const host = (h: string): string => (h.includes(':') ? `[${h}]` : h);
  if (Array.isArray(o.sentinels) && o.sentinels.length > 0) {
    const sentinels = o.sentinels.map((s) => `${host(s.host ?? 'localhost')}:${s.port ?? 26379}`).join(',');
    // Its connection to the master is TLS only with enableTLSForSentinelMode: ioredis ignores `tls` alone there.
    return `${o.tls && o.enableTLSForSentinelMode ? 'rediss' : 'redis'}+sentinel://${sentinels}/${o.name ?? ''}/${o.db ?? 0}`;
  }
  return `${scheme}://${o.host ?? '127.0.0.1'}:${o.port ?? 6379}/${o.db ?? 0}`;
}
