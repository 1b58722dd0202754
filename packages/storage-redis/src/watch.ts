import { isProgressError, ProgressError, type Logger, type ProgressEvent } from '@progress/core';
import { Command, type Cluster, type Redis } from 'ioredis';
import { keyPrefixOf } from './append-command.js';
import { guardCluster, isClusterClient, readTogether, type RedisCommand } from './connection.js';
import { decodeEntry, decodeFeedEntry, streamIdBefore } from './codec.js';
import { corrupted, feedTrimmedError, goneError, isConnectionLoss, isLoading, isNoAnswer, isOfflineRefusal, isRedirection, isUnblocked, lostEntriesError, trimmedError, unavailable, withTimeout, withoutSecrets } from './errors.js';
import { EPOCH_READS, entryId, seqOf, upgradeKeys, type KeyLayout } from './keys.js';
import type { ResolvedOptions } from './options.js';
import type { StreamEntry } from './scripts.js';

/** What a watcher needs from its store. */
export interface WatchContext {
  redis: Redis | Cluster;
  keys: KeyLayout;
  options: ResolvedOptions;
  logger: Logger;
  /** Aborts when the store closes. */
  stop: AbortSignal;
  /** The store's `readEvents`; `onEpoch` hears the upgrade's epoch (null: no meta) and its first feed entry's id (null: not recorded) as its first page read them. */
  readEvents(upgradeId: string, afterSeq: number, limit?: number, onEpoch?: (epoch: string | null, born: string | null) => void): AsyncIterable<ProgressEvent>;
  /** What an error of a watch connection means if it is the answer to SELECT (see `RedisStore`): the error to end with (the database is refused), null (it connects again), undefined (not a SELECT error). */
  selectFailure(err: unknown, conn: Redis | Cluster): ProgressError | null | undefined;
  /** Checks the store's connection after a command on it got no answer in time (see `RedisStore`: a dead link is dropped). */
  checkLink(): void;
  /** `err` of a read on the store's connection, saying why that connection is down when it is (see `RedisStore`'s reads). */
  withConnectionError(err: unknown): unknown;
  /**
   * Registers a watcher connection, so that close() can end it; returns the function that ends it
   * (see `endConnection`: nothing of it is left behind, and close() waits for that).
   */
  track(conn: Redis | Cluster): () => void;
}

type XReadReply = Array<[key: string, entries: StreamEntry[]]> | null;

/** Per signal, its one 'abort' listener and what it ends (see {@link whenAborted}). */
const ABORT_LISTENERS = new WeakMap<AbortSignal, { listener: () => void; ends: Set<() => void> }>();

/**
 * Calls `end` when `signal` aborts; returns what takes it back. One listener per signal, however
 * many watchers share it: one shutdown signal for every watcher of a process is the usual way to stop
 * them, and a listener each made Node warn of a possible leak past ten (MaxListenersExceededWarning).
 */
function whenAborted(signal: AbortSignal, end: () => void): () => void {
  let entry = ABORT_LISTENERS.get(signal);
  if (!entry) {
    const ends = new Set<() => void>();
    const listener = (): void => {
      ABORT_LISTENERS.delete(signal);
      for (const fn of ends) {
        try {
          fn();
        } catch (err) {
          // As if it had its own listener: thrown on its own, after the others have ended.
          process.nextTick(() => {
            throw err;
          });
        }
      }
    };
    entry = { listener, ends };
    ABORT_LISTENERS.set(signal, entry);
    signal.addEventListener('abort', listener, { once: true });
  }
  const { listener, ends } = entry;
  ends.add(end);
  return () => {
    if (!ends.delete(end) || ends.size > 0 || ABORT_LISTENERS.get(signal)?.ends !== ends) return;
    ABORT_LISTENERS.delete(signal);
    signal.removeEventListener('abort', listener);
  };
}

/** The hash slot `client` routes `key` to (with the client's own key prefix, as its commands get it). */
function slotOf(client: Cluster, key: string): number {
  return new Command('get', [key], { keyPrefix: keyPrefixOf(client) }).getSlot();
}

/** The node (`host:port`) a Cluster's slots cache names for `slot` (the master it sends the slot's commands to). */
function nodeServing(client: Cluster, slot: number | undefined): string | undefined {
  return slot === undefined ? undefined : client.slots[slot]?.[0];
}

/** A dedicated connection (XREAD BLOCK holds it), ended by either signal. */
class WatchConnection {
  readonly conn: Redis | Cluster;
  readonly #release: () => void;
  readonly #signals: AbortSignal[];
  /** Takes back what `whenAborted` registered for each signal. */
  readonly #offAbort: Array<() => void>;
  /** What end() settles: each pending `until()` with undefined, so a pending XREAD is abandoned even if
   * ioredis never rejects it (it does not when disconnect() comes while it waits to reconnect). One
   * entry per pending wait, removed when it settles: not a promise that lives as long as the watcher
   * raced against every read, which kept a reaction (and with it each read's reply) per read until
   * the watcher ended, ~1.3 KB an event for good on a watcher that runs for days. */
  readonly #waiting = new Set<() => void>();
  #ended = false;
  /**
   * Counts the connection's sessions: made again ('ready'; '+node' for a Cluster), or its server made
   * a replica under it (UNBLOCKED). A read of another session may be another server's answer (see
   * followUpgrade: a failover to a replica that had not got every append).
   */
  #session = 0;
  /** On a Cluster: the node (`host:port`) that answered the last read of the slot {@link answeredBy} was told of. */
  #node: string | undefined;
  /** When the first of the reads in a row that met LOADING got it (`performance.now()`), until a read is answered: see {@link readsAgainAfter}. */
  #loadingSince: number | undefined;
  /** Why the connection ended on its own (its database refused), thrown once the watcher has stopped. */
  #failure: ProgressError | undefined;
  /** When Redis first refused the connection's AUTH (`performance.now()`) in the reconnects since it was last ready: see #authFailure. */
  #authRefusedSince: number | undefined;
  readonly #ctx: WatchContext;

  constructor(ctx: WatchContext, signal: AbortSignal | undefined) {
    this.#ctx = ctx;
    const base = ctx.redis;
    // No commandTimeout on this connection (a client passed in may have one): XREAD BLOCK waits up to
    // watchBlockMs by design, and a shorter timeout would fail every quiet watch. And re-sending on:
    // with `autoResendUnfulfilledCommands: false` ioredis drops the commands in flight on a lost
    // connection without ever settling them, and the watcher would wait for its XREAD for good. No
    // socketTimeout either: below watchBlockMs, it dropped the socket of every quiet XREAD BLOCK (the
    // watcher checks its own link: see #answer).
    this.conn = isClusterClient(base)
      ? (base as Cluster).duplicate([], { redisOptions: { ...(base as Cluster).options.redisOptions, commandTimeout: undefined, socketTimeout: undefined, autoResendUnfulfilledCommands: true } })
      : (base as Redis).duplicate({
          connectionName: `${ctx.options.connectionName}:watch`,
          maxRetriesPerRequest: null,
          enableOfflineQueue: true,
          enableAutoPipelining: false,
          commandTimeout: undefined,
          socketTimeout: undefined,
          autoResendUnfulfilledCommands: true,
        });
    // See guardCluster: no timer of its slots refreshes is left once it has ended.
    if (isClusterClient(base)) guardCluster(this.conn as Cluster);
    // A watch connection selects the URL's database too: a database Redis refuses ends the watcher with the
    // store's error, rather than following database 0 (where the upgrade looks deleted).
    this.conn.on('error', (err: unknown) => {
      withoutSecrets(err);
      // null from selectFailure: a SELECT failure it handled (it warned, and connects again), not another error.
      const select = ctx.selectFailure(err, this.conn);
      const refused = select === undefined ? this.#authFailure(err) : select;
      if (refused) {
        this.#failure ??= refused;
        this.end();
      } else if (refused === undefined) {
        ctx.logger.debug({ err }, 'watch connection error (ioredis reconnects)');
      }
    });
    const newSession = (): void => {
      this.#session++;
      this.#authRefusedSince = undefined;
    };
    this.conn.on('ready', newSession);
    this.conn.on('+node', newSession);
    this.#release = ctx.track(this.conn);
    this.#signals = signal ? [ctx.stop, signal] : [ctx.stop];
    this.#offAbort = this.#signals.map((s) => whenAborted(s, () => this.end()));
  }

  /**
   * A refused AUTH (HELLO) as the connection is made again: the ACL user deleted or disabled, its
   * password changed. ioredis reconnects for ever and a read waits meanwhile, so a watcher would wait
   * silently for good. Refused again `commandTimeoutMs` after the first refusal, with no connection
   * made in between (a password put back in time lets it go on), the watcher ends with
   * STORE_UNAVAILABLE naming Redis' answer, as any call of the store fails after that bound.
   * Undefined for other errors and within the bound.
   */
  #authFailure(err: unknown): ProgressError | undefined {
    const name = (err as { command?: { name?: unknown } } | null)?.command?.name;
    if (name !== 'auth' && name !== 'hello') return undefined;
    const now = performance.now();
    this.#authRefusedSince ??= now;
    const bound = this.#ctx.options.commandTimeoutMs;
    if (now - this.#authRefusedSince < bound) return undefined;
    this.#ctx.logger.error({ err }, 'Redis refused the watch connection\'s credentials for commandTimeoutMs; the watcher ends');
    return unavailable(`watch failed: Redis refused the connection's credentials for commandTimeoutMs (${bound} ms)`, err, { reason: 'refused' });
  }

  /** See #session. */
  get session(): number {
    return this.#session;
  }

  /**
   * A read ended with UNBLOCKED (its server stopped being a master) or LOADING (its server loads a
   * dataset: its new master's, or its own files after a restart): it may hold another history from now on.
   */
  unblocked(): void {
    this.#session++;
  }

  /**
   * On a Cluster, after a read of `slot`: another node than the one that answered the last read
   * starts a new session. A failover promotes a replica without any new connection when the
   * Cluster had one to it already (it connects to the replicas CLUSTER SLOTS lists, read-only, and
   * takes one for a master after a refresh or a MOVED without an event), so neither 'ready' nor
   * '+node' comes. The slots cache names the node that answered: a MOVED updates it before the read
   * is sent again. (An ASK, during a resharding, leaves it: the keys move whole, nothing to check.)
   */
  answeredBy(slot: number | undefined): void {
    const node = nodeServing(this.conn as Cluster, slot);
    if (node === undefined) return;
    if (this.#node !== undefined && node !== this.#node) this.#session++;
    this.#node = node;
  }

  /** Throws why the connection ended on its own, if it did. */
  throwIfFailed(): void {
    if (this.#failure) throw this.#failure;
  }

  get aborted(): boolean {
    return this.#ended || this.#signals.some((s) => s.aborted);
  }

  /**
   * Whether a read cut by a lost connection (see `isConnectionLoss`), or refused while it is down
   * (`isOfflineRefusal`: a client passed in that does not queue commands that long), or a blocked read its server
   * ended on becoming a replica (`isUnblocked`: a failover), or refused while its server loads a
   * dataset (`isLoading`: a demoted master loading its new master's, a server started again over its
   * files), is sent again: not once the watcher ended (its own disconnect() cuts its reads too), nor
   * when `client` (this connection, or the store's for reads on it) has ended for good (`end`: quit,
   * or a retryStrategy that gave up), where every read would fail again at once. LOADING for at most
   * `commandTimeoutMs` from the first of the reads in a row that met it: a server that loads for
   * longer ends the watcher with that error (STORE_UNAVAILABLE naming it), as any read of the store
   * would after that bound. On a Cluster, a read a node redirected (`isRedirection`: MOVED, ASK) that
   * ioredis did not follow (a read it had sent on after an ASK, when the slot moved again during a
   * resharding) is sent again too, after a refresh of the slots.
   */
  readsAgainAfter(err: unknown, client: Redis | Cluster = this.conn): boolean {
    if (this.aborted || client.status === 'end') return false;
    if (isClusterClient(client) && isRedirection(err)) {
      (client as Cluster).refreshSlotsCache();
      return true;
    }
    if (isLoading(err)) {
      const now = performance.now();
      this.#loadingSince ??= now;
      return now - this.#loadingSince < this.#ctx.options.commandTimeoutMs;
    }
    return isConnectionLoss(err) || isOfflineRefusal(err) || isUnblocked(err);
  }

  /**
   * Waits before the `attempt`-th read again in a row after lost connections: not before the first,
   * then 20 ms doubling to 1 s. A client without an offline queue fails a read at once while it
   * reconnects, and reading again in a loop of rejections would starve the event loop (and the
   * reconnect with it). Ends early when the watcher ends.
   */
  async backOff(attempt: number): Promise<void> {
    if (attempt <= 1) return;
    await this.until(new Promise((resolve) => setTimeout(resolve, Math.min(1000, 10 * 2 ** (attempt - 1))).unref()));
  }

  /** `promise`, or undefined once the watcher ends (for a command on another connection, which a
   * disconnect() while it waits to reconnect would leave pending for good). */
  until<T>(promise: Promise<T>): Promise<T | undefined> {
    return new Promise<T | undefined>((resolve, reject) => {
      const gone = (): void => resolve(undefined);
      promise.then(
        (value) => {
          this.#waiting.delete(gone);
          resolve(value);
        },
        (err: unknown) => {
          this.#waiting.delete(gone);
          reject(err);
        },
      );
      // Already ended: undefined, unless `promise` has settled (its reaction, queued above, runs first).
      if (this.#ended) queueMicrotask(gone);
      else this.#waiting.add(gone);
    });
  }

  /** `commands` written together on the watcher's connection ({@link readTogether}). */
  #together(commands: RedisCommand[]): Promise<unknown[]> {
    const sent = readTogether(this.conn, commands);
    // Abandoned when the watcher ends first: a late rejection is nobody's to handle.
    sent.catch(() => {});
    return sent;
  }

  /**
   * XREAD BLOCK on one stream, and written with it HMGET of `fields` from `metaKey`: Redis runs the
   * HMGET right after the XREAD returns (other clients' commands may run in between when it had
   * blocked), so the upgrade's meta comes with the entries without another round trip. With
   * `before`, one more HMGET goes first, answered at once (the meta when the watcher starts). (All
   * keys carry the upgrade's hash tag: one slot, one node.)
   */
  async xreadWithMeta(
    key: string,
    after: string,
    count: number,
    blockMs: number,
    metaKey: string,
    fields: string[],
    before: boolean,
  ): Promise<{ entries: StreamEntry[] | undefined; meta: Array<string | null>; metaBefore: Array<string | null> | undefined } | undefined> {
    const read: RedisCommand[] = [
      ['xread', 'COUNT', count, 'BLOCK', blockMs, 'STREAMS', key, after],
      ['hmget', metaKey, ...fields],
    ];
    if (before) read.unshift(['hmget', metaKey, ...fields]);
    const replies = await this.#answer(this.#together(read), blockMs);
    if (!replies) return undefined;
    const metaBefore = before ? (replies.shift() as Array<string | null>) : undefined;
    const [reply, meta] = replies as [XReadReply, Array<string | null>];
    return { entries: reply?.[0]?.[1], meta, metaBefore };
  }

  /**
   * XREAD BLOCK on the feed after `after`, and written with it XRANGE of the entry `after` itself:
   * whether it is still there when the XREAD returns. The feed is trimmed from its start, so while
   * that entry is there, none after it was trimmed away unread.
   */
  async xreadFeed(key: string, after: string, count: number, blockMs: number): Promise<{ entries: StreamEntry[] | undefined; afterKept: boolean } | undefined> {
    const replies = await this.#answer(
      this.#together([
        ['xread', 'COUNT', count, 'BLOCK', blockMs, 'STREAMS', key, after],
        ['xrange', key, after, after],
      ]),
      blockMs,
    );
    if (!replies) return undefined;
    const [reply, kept] = replies as [XReadReply, StreamEntry[]];
    return { entries: reply?.[0]?.[1], afterKept: kept.length > 0 };
  }

  /**
   * The answer to an XREAD BLOCK of `blockMs`, or undefined once the watcher ends. Redis answers it
   * within `blockMs`; one still unanswered `commandTimeoutMs` later is on a dead link (a host gone
   * without a reset, a network that drops everything: TCP keepalive tells only after hours), so the
   * socket is dropped: ioredis connects again and re-sends the read (or aborts it, and it is read again).
   */
  async #answer<T>(exec: Promise<T>, blockMs: number): Promise<T | undefined> {
    let timer: NodeJS.Timeout | undefined;
    // At most a timer's limit (each option alone may be up to 2,000,000,000 ms).
    const waitMs = Math.min(blockMs + this.#ctx.options.commandTimeoutMs, 2_147_483_647);
    const nodes = (): Redis[] => (isClusterClient(this.conn) ? (this.conn as Cluster).nodes('all') : [this.conn as Redis]);
    const watch = (): void => {
      // The sockets up now: on one made later (the read waited in the offline queue while the
      // connection was down, or was re-sent after a reconnect), the read was sent later, and Redis is
      // not late with it yet. Timed from here, such a read dropped the new, healthy connection.
      const up = new Set(nodes().flatMap((node) => (node.status === 'ready' ? [node.stream] : [])));
      // Given up on after the I/O of the loop's turn (setImmediate), as withTimeout does: after the event
      // loop was blocked past waitMs, due timers run before the sockets are read, and an answer already
      // received would be taken for none.
      timer = setTimeout(() => setImmediate(dropDead, up), waitMs);
      timer.unref();
    };
    let answered = false;
    const dropDead = (up: Set<unknown>): void => {
      if (this.#ended || answered) return;
      for (const node of nodes()) {
        if (node.status !== 'ready' || !up.has(node.stream)) continue;
        this.#ctx.logger.warn({ waitMs }, 'watch: no answer from Redis on a blocking read; dropping the connection to connect again');
        (node.stream as { destroy?: () => void } | undefined)?.destroy?.();
      }
      watch();
    };
    watch();
    try {
      const reply = await this.until(exec);
      // Answered: a LOADING met later starts its bound again (see readsAgainAfter).
      this.#loadingSince = undefined;
      return reply;
    } finally {
      answered = true;
      clearTimeout(timer);
    }
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const gone of this.#waiting) gone();
    this.#waiting.clear();
    for (const off of this.#offAbort) off();
    this.#release();
  }
}

/**
 * Runs `follow` on a dedicated connection, ended with it; then throws why the connection ended on
 * its own, if it did (a consumer that stops early hears nothing of it).
 *
 * The iterator's `return()` ends the connection first: a generator queues `return()` behind a
 * pending `next()`, which on a quiet upgrade waits in XREAD BLOCK round after round for good. A
 * consumer with its own timeout (`Promise.race([it.next(), timer])`, then `it.return()`) would
 * otherwise never see its `return()` settle, and the connection would stay open until the store closes.
 * `throw()` likewise (an iterator driven by hand, or an adapter that forwards its own throw()): it is
 * queued the same way, and rejects with its error once the pending `next()` has ended (done).
 */
function onConnection(ctx: WatchContext, signal: AbortSignal | undefined, follow: (watcher: WatchConnection) => AsyncGenerator<ProgressEvent>): AsyncGenerator<ProgressEvent> {
  let watcher: WatchConnection | undefined;
  async function* run(): AsyncGenerator<ProgressEvent> {
    if (signal?.aborted || ctx.stop.aborted) return;
    const conn = new WatchConnection(ctx, signal);
    watcher = conn;
    try {
      yield* follow(conn);
    } finally {
      conn.end();
    }
    conn.throwIfFailed();
  }
  const generator = run();
  const finish = generator.return.bind(generator);
  generator.return = (value) => {
    watcher?.end();
    return finish(value);
  };
  const fail = generator.throw.bind(generator);
  generator.throw = (err) => {
    watcher?.end();
    return fail(err);
  };
  return generator;
}

/** See `RedisStore.watch`. */
export function watchUpgrade(ctx: WatchContext, upgradeId: string, afterSeq: number, signal?: AbortSignal): AsyncGenerator<ProgressEvent> {
  return onConnection(ctx, signal, (watcher) => followUpgrade(ctx, watcher, upgradeId, afterSeq));
}

async function* followUpgrade(ctx: WatchContext, watcher: WatchConnection, upgradeId: string, afterSeq: number): AsyncGenerator<ProgressEvent> {
  const keys = upgradeKeys(ctx.keys, upgradeId);
  // On a Cluster, the slot of the upgrade's keys (see WatchConnection.answeredBy), with the client's own key prefix.
  const cluster = isClusterClient(watcher.conn);
  const slot = cluster ? slotOf(watcher.conn as Cluster, keys.events) : undefined;
  let next = afterSeq;
  /** The upgrade's epoch (the eventId of its seq 1) once seen: another one means it was deleted and re-created. */
  let epoch: string | null | undefined;
  /**
   * Checks the meta (as it was at one moment) against what this watcher follows; throws when the
   * upgrade is gone, returns false when it does not exist yet. `upTo` is the highest seq the meta
   * must cover: the watched seq, or the last one just read (the meta is read after the entries,
   * so for the same upgrade its lastSeq is at least that).
   */
  const check = ([lastText, epochNow]: Array<string | null>, upTo: number, entries: number): boolean => {
    if (lastText === null) {
      if (upTo > 0 || epoch !== undefined || entries > 0) throw goneError(upgradeId, next, 'it was deleted or expired');
      return false; // not created yet: wait for it
    }
    if (epoch !== undefined && epochNow !== epoch) throw goneError(upgradeId, next, 'it was deleted and created again');
    if (Number(lastText) < upTo) throw goneError(upgradeId, next, `its log ends at seq ${lastText}, before seq ${upTo} (it was deleted, and perhaps created again)`);
    epoch = epochNow;
    return true;
  };
  let first = true;
  /** Reads cut by a lost connection in a row. */
  let lost = 0;
  /** Reads in a row whose first sight of the upgrade found a meta epoch other than its seq 1's eventId. */
  let wrongEpoch = 0;
  /** The eventId of the last event handed out (seq `next`), and the session of the connection (see WatchConnection) whose reads agree with it. */
  let lastEventId: string | undefined;
  let trusted: number | undefined;
  /** Checks in a row that found the watcher's server a replica not yet in step with its master. */
  let unsynced = 0;
  /** Reads in a row that found the meta missing on a Cluster while it was there (a slot half moved: see below). */
  let halfMoved = 0;
  /** The lastSeq the meta read last found (after the check), and the session (see WatchConnection) it was read in. */
  let known: { last: number; session: number } | undefined;
  /**
   * After a command on the watcher's connection failed: true to read again (after the back-off),
   * false once the watcher has ended; throws what cannot be read again.
   */
  const readAgain = async (err: unknown): Promise<boolean> => {
    if (watcher.aborted) return false;
    // (LOADING: the dataset loaded may be another history, a new master's, checked as after UNBLOCKED.)
    if (isUnblocked(err) || isLoading(err)) watcher.unblocked();
    // A read cut by a lost connection that ioredis did not send again (a Cluster's pipeline fails
    // with "Connection is closed."; a command refused while offline), or refused while its server
    // loads a dataset: read again from the last seq handed out; the new read waits in the offline
    // queue for the reconnect.
    if (!watcher.readsAgainAfter(err)) throw unavailable(`upgrade "${upgradeId}": watch failed`, err, { upgradeId });
    await watcher.backOff(++lost);
    return true;
  };
  while (!watcher.aborted) {
    let read: Awaited<ReturnType<WatchConnection['xreadWithMeta']>>;
    try {
      read = await watcher.xreadWithMeta(keys.events, entryId(next), ctx.options.pageSize, ctx.options.watchBlockMs, keys.meta, ['lastSeq', 'epoch', 'trimmed'], first);
    } catch (err) {
      if (await readAgain(err)) continue;
      return;
    }
    lost = 0;
    if (!read) return;
    watcher.answeredBy(slot);
    // On a Cluster, no meta where the events are may be a slot half moved to another master (a
    // resharding moves its keys a batch at a time): a read that finds the stream moved already is
    // sent to the target whole (ASK), where the meta has not arrived yet. A lone read of the meta
    // goes where it is; found there, read again once the move goes on, rather than end as deleted.
    if (cluster && (read.meta[0] === null || read.metaBefore?.[0] === null) && (next > 0 || epoch !== undefined || (read.entries?.length ?? 0) > 0)) {
      let meta: string | null | undefined;
      try {
        meta = await watcher.until(watcher.conn.hget(keys.meta, 'lastSeq'));
      } catch (err) {
        if (await readAgain(err)) continue;
        return;
      }
      if (meta === undefined) return;
      if (meta !== null) {
        await watcher.backOff(++halfMoved + 1);
        continue;
      }
    }
    halfMoved = 0;
    // The meta when the watch started (first round), then as it was right after these entries
    // were read: the upgrade is gone (deleted, or expired by retention) when the log we follow
    // has vanished, restarted behind us, or has another epoch.
    if (read.metaBefore) check(read.metaBefore, next, 0);
    first = false;
    const entries = read.entries ?? [];
    const lastRead = entries.length > 0 ? seqOf(entries[entries.length - 1]![0]) : 0;
    const firstSight = epoch === undefined;
    if (!check(read.meta, Math.max(next, lastRead), entries.length)) {
      wrongEpoch = 0;
      continue;
    }
    // No entry after `next`, while a meta read on the same connection before this XREAD (the one
    // written with it, or the last round's) had the upgrade past it, and the meta still does (same
    // epoch: checked): appends only add to the stream, and retention never takes its last entry, so
    // the stream lost entries the meta holds (evicted under a maxmemory policy, deleted by hand).
    // Its appends are refused from then on: waiting for them would wait for good, telling nothing.
    if (entries.length === 0) {
      const before = read.metaBefore ? { last: Number(read.metaBefore[0] ?? 0), session: watcher.session } : known;
      if (before && before.session === watcher.session && before.last > next && Number(read.meta[0] ?? 0) >= before.last) {
        // On a Cluster, a slot half moved looks the same: with the meta moved and the stream not yet,
        // the read got ASK for the meta and went whole to the target, where XREAD waited on no stream.
        // A lone read of the stream's last entry goes where the stream is: past `next` there, nothing
        // was lost; read again (each read waits on the target) until the move is done.
        if (cluster) {
          let top: StreamEntry[] | undefined;
          try {
            top = await watcher.until(watcher.conn.xrevrange(keys.events, '+', '-', 'COUNT', 1) as Promise<StreamEntry[]>);
          } catch (err) {
            if (await readAgain(err)) continue;
            return;
          }
          if (top === undefined) return;
          if (top[0] && seqOf(top[0][0]) > next) {
            await watcher.backOff(2);
            continue;
          }
        }
        throw lostEntriesError(keys.events, next, before.last, upgradeId);
      }
    }
    known = { last: Number(read.meta[0] ?? 0), session: watcher.session };
    // A watch started before its upgrade existed learns the epoch from the meta read after the
    // entries. The upgrade may have been deleted and created again in between (other clients'
    // commands can run after the XREAD returns): entries from its start must then carry that
    // epoch, or they belong to the deleted one, and are read again (nothing was handed out yet).
    // The eventId as Redis stored it for the epoch: sent as UTF-8, where a lone surrogate became
    // U+FFFD (the event's JSON keeps it escaped). Compared as decoded, such an upgrade never matched
    // its own epoch, and the watcher read it again at once, for good, handing out nothing.
    if (firstSight && next === 0 && entries.length > 0 && read.meta[1] !== null) {
      const start = decodeEntry(keys.events, entries[0]!)[0]!;
      if (start.seq === 1 && Buffer.from(start.eventId).toString() !== read.meta[1]) {
        epoch = undefined;
        // Read again at once (the entries are there: XREAD returns without blocking): past
        // EPOCH_READS, the meta's epoch is damaged, and reading again would loop for good.
        if (++wrongEpoch < EPOCH_READS) continue;
        throw corrupted(keys.meta, `its epoch (not the eventId of seq 1 on ${wrongEpoch} reads in a row)`, undefined, { upgradeId });
      }
    }
    wrongEpoch = 0;
    // Read on a connection made again since the last event was handed out: another server may have
    // answered, a replica promoted by a failover, which the last acknowledged appends had not reached
    // and where the next writer wrote other events under their seqs (Redis replicates
    // asynchronously). The event at `next` must still be the one handed out, or the watcher would go
    // on past events that exist nowhere now, and never hand out the ones in their place.
    const session = watcher.session;
    if (lastEventId !== undefined && session !== trusted) {
      let held: ProgressEvent | undefined;
      let replica: boolean;
      try {
        // Its role first: a master made a replica (UNBLOCKED, or reconnected to by address) serves its
        // own data until the sync with its new master replaces it, with no sign to the watcher: not
        // checked until it is in step ('connected'). (ROLE refused, by an ACL: checked as it is.)
        const role = cluster ? undefined : (watcher.conn as Redis).call('ROLE').then((r) => r as unknown[], () => undefined);
        const found = await watcher.until(Promise.all([role, watcher.conn.xrange(keys.events, entryId(next), '+', 'COUNT', 1) as Promise<StreamEntry[]>]));
        if (found === undefined) return;
        replica = found[0]?.[0] === 'slave';
        if (replica && found[0]?.[3] !== 'connected') {
          await watcher.backOff(++unsynced + 1);
          continue;
        }
        held = found[1][0] ? decodeEntry(keys.events, found[1][0]).find((e) => e.seq === next) : undefined;
      } catch (err) {
        if (await readAgain(err)) continue;
        return;
      }
      // Made again once more meanwhile: check on the next read (nothing of this one is handed out).
      if (watcher.session !== session) continue;
      // (Not held: trimmed by retention, which the reads below report.)
      if (held && held.eventId !== lastEventId) {
        throw goneError(upgradeId, next, `the event it handed out at seq ${next} is not in Redis any more (another took its place: after a failover to a replica the last acknowledged appends had not reached, or a delete and re-create)`);
      }
      unsynced = 0;
      // A replica's read may be of its data before the sync: read again from what was checked.
      if (replica) {
        trusted = session;
        continue;
      }
    }
    trusted = session;
    const trimmedText = read.meta[2];
    // XREAD returns the entries with an id > 0-<next>: an entry's id is its last seq, so the first
    // one holds seq next + 1 (possibly after events already handed out, skipped here).
    for (const entry of entries) {
      for (const event of decodeEntry(keys.events, entry)) {
        if (event.seq <= next) continue;
        if (event.seq !== next + 1) {
          // Entries before this one are gone: retention trimmed them (or the log is damaged).
          const trimmed = Number(trimmedText ?? 0);
          if (trimmed > next) throw trimmedError(upgradeId, next, trimmed);
          throw corrupted(keys.events, `the event log after seq ${next} (entry ${entry[0]} follows)`, undefined, { upgradeId });
        }
        // Checked before each event, not after: a reply that came in the tick close() was called
        // would otherwise still hand out its first event.
        if (watcher.aborted) return;
        next = event.seq;
        lastEventId = event.eventId;
        yield event;
      }
    }
  }
}

const SEEN_LIMIT = 100_000;


/** What watchAll last handed out of an upgrade: its seq and eventId, and the upgrade's epoch then (null when unknown). */
interface Seen {
  seq: number;
  eventId: string;
  epoch: string | null;
  /** On a Cluster: the node (`host:port`) that served the upgrade's slot on the store's connection when that event was read. */
  node: string | undefined;
}

/** The events `collect` read of an upgrade, with its epoch and first feed entry's id as its first page read them (null: no meta, not recorded). */
interface Collected {
  events: ProgressEvent[];
  epoch: string | null;
  born: string | null;
  /** Retention removed the events up to `to` (or past it) before they were read. */
  trimmed?: true;
}

/** What watchAll reads of one upgrade for a page of the feed: events after `after`, up to `to`, checked against `prev`. */
interface Range {
  after: number;
  to: number;
  prev: Seen | undefined;
  /** Read from seq 1 (a feed entry for seq 1 again): all of it is new unless the epoch is still `prev`'s. */
  fromStart: boolean;
  /** The id of the range's last feed entry: one older than the upgrade's first (`born`) points into an earlier upgrade under the id. */
  lastId: string;
}

/**
 * See `RedisStore.watchAll`. The start point is taken at the call (on the store's connection), not
 * at the first `next()`; the dedicated connection opens when the iteration starts, so an iterable
 * that is never iterated holds none.
 */
export function watchAllUpgrades(ctx: WatchContext, signal?: AbortSignal): AsyncIterable<ProgressEvent> {
  if (signal?.aborted || ctx.stop.aborted) return (async function* () {})();
  const start = feedTop(ctx);
  let used = false;
  return {
    [Symbol.asyncIterator]() {
      // A ProgressError like every other misuse: callers tell errors apart by their code.
      if (used) throw new ProgressError('INVALID_ARGUMENT', '[@progress/storage-redis] a watchAll() iterable can be iterated once: call watchAll() again');
      used = true;
      return onConnection(ctx, signal, (watcher) => readFeed(ctx, watcher, start));
    },
  };
}

/** The id of the feed's last entry (at or before `upTo`; '0-0' for none), or why it could not be read. */
function feedTop(ctx: WatchContext, upTo = '+'): Promise<string | Error> {
  // Bounded like every read on the store's connection: a link gone silent (or a read a client passed
  // in dropped with a lost connection) would otherwise hold the iteration, neither started nor failed.
  // Given up on when the store closes (the iteration ends then): no timer of it is left.
  return withTimeout(ctx.redis.xrevrange(ctx.keys.feed, upTo, '-', 'COUNT', 1) as Promise<StreamEntry[]>, ctx.options.commandTimeoutMs, 'watchAll failed', {}, ctx.stop).then(
    (top) => top[0]?.[0] ?? '0-0',
    (err: unknown) => {
      if (isNoAnswer(err)) ctx.checkLink();
      // Why the connection is down (a refused certificate, ECONNREFUSED), as the store's other reads say.
      return ctx.withConnectionError(err) as Error;
    },
  );
}

async function* readFeed(ctx: WatchContext, watcher: WatchConnection, start: Promise<string | Error>): AsyncGenerator<ProgressEvent> {
  /** The last seq handed out per upgrade, with the epoch the upgrade had then (bounded: the oldest entries are forgotten first). */
  const seen = new Map<string, Seen>();
  const mark = (upgradeId: string, event: ProgressEvent, epoch: string | null, node: string | undefined): void => {
    seen.delete(upgradeId);
    seen.set(upgradeId, { seq: event.seq, eventId: event.eventId, epoch, node });
    if (seen.size > SEEN_LIMIT) seen.delete(seen.keys().next().value!);
  };
  const cluster = isClusterClient(ctx.redis);
  /** On a Cluster: the node that serves the upgrade's slot on the store's connection (see WatchConnection.answeredBy). */
  const nodeOf = (upgradeId: string): string | undefined =>
    cluster ? nodeServing(ctx.redis as Cluster, slotOf(ctx.redis as Cluster, upgradeKeys(ctx.keys, upgradeId).events)) : undefined;
  /** The events of an upgrade after `after` up to `to`, with its epoch and its first feed entry's id as the first page read them (null: no meta, not recorded). */
  const collect = async (upgradeId: string, after: number, to: number): Promise<Collected> => {
    const out: ProgressEvent[] = [];
    let epoch: string | null = null;
    let born: string | null = null;
    let told = false;
    /** A read again (after a cut or a stall) found another epoch: the upgrade was deleted and created again meanwhile. */
    let recreated = false;
    const onEpoch = (e: string | null, b: string | null): void => {
      if (!told) {
        told = true;
        epoch = e;
        born = b;
      } else if (e !== epoch) recreated = true;
    };
    let from = after;
    /** The wait before reading again after Redis did not answer (doubles up to 2 s). */
    let stalled = 100;
    /** Reads cut by a lost connection in a row (without an event read in between), and how many events were read at the last one. */
    let lost = 0;
    let readAtLoss = 0;
    for (;;) {
      try {
        for await (const event of ctx.readEvents(upgradeId, from, to - from, onEpoch)) {
          // What was read before is of one upgrade; the new one's events come with its own feed entries.
          if (recreated) break;
          out.push(event);
        }
        return { events: out, epoch, born };
      } catch (err) {
        // Deleted (and perhaps created again) between two pages: what was read is of one upgrade;
        // the rest, if any, comes with that upgrade's own feed entries.
        if (isProgressError(err, 'NOT_FOUND') && err.context.reason === 'deleted') return { events: out, epoch, born };
        // The store's connection closed while a page was read (ioredis does not re-send a pipeline
        // answered in part; a Cluster re-sends a pipeline only while it is ready, and fails it with
        // "Connection is closed." otherwise; a page's replies not its own, see readEvents): read on
        // from the last event read, as the XREAD above does. Not on a client
        // that has ended (a client passed in, quit by its owner): that read would fail again at once.
        if (isProgressError(err, 'STORE_UNAVAILABLE') && watcher.readsAgainAfter(err.cause, ctx.redis)) {
          if (out.length > readAtLoss) lost = 0;
          readAtLoss = out.length;
          await watcher.backOff(++lost);
          if (watcher.aborted) return { events: out, epoch, born };
          from = out.at(-1)?.seq ?? from;
          continue;
        }
        // Redis did not answer within commandTimeoutMs, or within the commandTimeout of a client
        // passed in (a stall, an outage): wait it out and read on from the last event read, as
        // watch() does. Ending here would leave the consumer to start again from "now", without the
        // events of this page and those after it. (Only a timeout: an error that does not pass by
        // waiting, a closed client's, ends the feed.)
        if (isNoAnswer(err) && !watcher.aborted) {
          ctx.logger.warn({ err, upgradeId, afterSeq: out.at(-1)?.seq ?? from, waitMs: stalled }, 'watchAll: could not read the events of an upgrade; reading again');
          await watcher.until(new Promise((resolve) => setTimeout(resolve, stalled).unref()));
          stalled = Math.min(2000, stalled * 2);
          if (watcher.aborted) return { events: out, epoch, born };
          from = out.at(-1)?.seq ?? from;
          continue;
        }
        // Retention removed events of this upgrade before this follower read them: one upgrade's
        // trim must not end the feed of every other one. Go on from the trim mark (the events read
        // before the gap are kept); the consumer sees the seq jump, and readEvents from its last seq
        // tells it NOT_FOUND 'trimmed' (the ws-server answers with a resync).
        if (!isProgressError(err, 'NOT_FOUND') || err.context.reason !== 'trimmed') throw err;
        const trimmed = Number(err.context.trimmedSeq);
        ctx.logger.warn({ upgradeId, afterSeq: from, trimmedSeq: trimmed }, 'watchAll: events removed by retention before they were read; skipping to what remains');
        if (trimmed >= to) return { events: out, epoch, born, trimmed: true };
        from = Math.max(out.at(-1)?.seq ?? from, trimmed);
      }
    }
  };
  // The start point was asked on the store's connection: if Redis is unreachable, ioredis holds
  // that command until it reconnects, so stopping must not wait for it.
  let last = await watcher.until(start);
  // Refused while Redis loads a dataset (LOADING: a client without the ready check on a server
  // started again over its files, a demoted master loading its new master's): read again, as the
  // reads below are, for up to commandTimeoutMs (see readsAgainAfter). Not the feed's last entry
  // then: appends made between the end of the load and that read came after the call, and would be
  // skipped. Redis takes no append while it loads, and a feed entry's id starts with the server's
  // time in ms: the start point is the last entry at or before the server's time now (TIME is
  // answered while it loads). (On a Cluster, TIME goes to any node: the last entry, as before.)
  const refusal = (e: unknown): unknown => (isProgressError(e) ? e.cause : e);
  if (last instanceof Error && isLoading(refusal(last))) {
    let upTo = '+';
    if (!isClusterClient(ctx.redis)) {
      const time = await watcher.until(withTimeout(ctx.redis.time(), ctx.options.commandTimeoutMs, 'watchAll failed', {}, ctx.stop)).catch(() => undefined);
      if (time) upTo = `${Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000)}-18446744073709551615`;
    }
    for (let attempt = 1; last instanceof Error && isLoading(refusal(last)) && watcher.readsAgainAfter(refusal(last), ctx.redis); ) {
      await watcher.backOff(++attempt);
      if (watcher.aborted) return;
      last = await watcher.until(feedTop(ctx, upTo));
    }
  }
  if (last === undefined || watcher.aborted) return;
  if (last instanceof Error) throw unavailable('watchAll failed', last);
  /** Reads cut by a lost connection in a row. */
  let lost = 0;
  while (!watcher.aborted) {
    let read: Awaited<ReturnType<WatchConnection['xreadFeed']>>;
    try {
      read = await watcher.xreadFeed(ctx.keys.feed, last, ctx.options.pageSize, ctx.options.watchBlockMs);
    } catch (err) {
      if (watcher.aborted) return;
      // A read cut by a lost connection that ioredis did not send again (a Cluster's pipeline, see
      // isConnectionLoss): read again from `last`.
      if (watcher.readsAgainAfter(err)) {
        await watcher.backOff(++lost);
        continue;
      }
      throw unavailable('watchAll failed', err);
    }
    lost = 0;
    if (!read) return;
    const entries = read.entries;
    if (!entries?.length) continue;
    // The entry read last is gone: this follower fell so far behind that the feed (capped at about
    // feedMaxLen entries) was trimmed past it, and entries it never read may have gone with it; or a
    // failover lost it with the appends it recorded (see feedTrimmedError).
    if (!read.afterKept && last !== '0-0') throw feedTrimmedError(last);
    last = entries[entries.length - 1]![0];
    // Feed entries point into each upgrade's stream: one read per upgrade of this page (sent
    // together), from the last seq handed out (which also fills a gap left by a lost entry).
    const ranges = new Map<string, Range>();
    for (const [id, fields] of entries) {
      const pointer = decodeFeedEntry(fields);
      if (!pointer) {
        ctx.logger.warn({ key: ctx.keys.feed, id }, 'damaged feed entry skipped');
        continue;
      }
      const to = pointer.first + pointer.count - 1;
      const prev = seen.get(pointer.upgradeId);
      // seq 1 again, for an upgrade already followed (perhaps earlier in this page): either it was
      // deleted and created again, or the entry is a repeat (a cluster-mode follow-up re-sent
      // after a lost reply). Read from the start, at least up to the last seq handed out: the
      // epoch tells which (see `fresh`).
      if (pointer.first === 1 && (prev !== undefined || ranges.has(pointer.upgradeId))) {
        ranges.set(pointer.upgradeId, { after: 0, to: Math.max(to, prev?.seq ?? 0, ranges.get(pointer.upgradeId)?.to ?? 0), prev, fromStart: true, lastId: id });
        continue;
      }
      const range = ranges.get(pointer.upgradeId);
      if (range) {
        range.to = Math.max(range.to, to);
        range.lastId = id;
        continue;
      }
      // A followed upgrade: from the last event handed out (the epoch then tells whether it is
      // still the same upgrade: an entry may point into one deleted and created again since). An
      // unknown one: from this entry.
      ranges.set(pointer.upgradeId, { after: prev ? prev.seq : pointer.first - 1, to, prev, fromStart: false, lastId: id });
    }
    /**
     * Whether the event at the last seq handed out of the upgrade is another one now: a failover to
     * a replica the last acknowledged appends had not reached lost it, and the next writer wrote
     * another event under its seq (see followUpgrade). Checked only when there is cause: the
     * upgrade's slot is served by another node than when that event was read (a Cluster: the feed may
     * be on another master, which kept the lost appends' entries), or a feed entry points only at seqs
     * handed out already (a repeat, or a reused seq). (In single-node mode the feed is on the same
     * server: the entry read last is lost with the appends, and the iteration ends, see above.)
     */
    const replaced = async (upgradeId: string, r: Range, prev: Seen, node: string | undefined): Promise<boolean> => {
      if (r.to > prev.seq && (node === undefined || prev.node === undefined || node === prev.node)) return false;
      const read = await collect(upgradeId, prev.seq - 1, prev.seq);
      const held = read.events.find((e) => e.seq === prev.seq);
      if (held?.eventId === prev.eventId) {
        prev.node = node;
        return false;
      }
      // Not held: trimmed by retention, deleted (or created again: `page` tells by the epoch), or not
      // written again yet (nothing to compare) unless this page's entries of the upgrade end below
      // that seq: an append after it ended lower, so the history is shorter than the one handed out
      // (lost in a failover, and the next writer has not written as far yet).
      if (held === undefined && (read.trimmed || read.epoch === null || (prev.epoch !== null && read.epoch !== prev.epoch) || r.to >= prev.seq)) return false;
      ctx.logger.warn({ upgradeId, seq: prev.seq }, 'watchAll: the event handed out at this seq is not in Redis any more (a failover lost it); handing out the upgrade again from its start');
      return true;
    };
    /** The events of `r` not handed out yet, of the upgrade as it is now, and its epoch. */
    const fresh = async (upgradeId: string, r: Range): Promise<{ events: ProgressEvent[]; epoch: string | null }> => {
      const read = await collect(upgradeId, r.after, r.to);
      // Every entry of the range is older than the upgrade's first append: they point into an
      // earlier upgrade under this id, deleted since, whose events are gone. What the stream holds is
      // the new upgrade's, and comes with its own entries, from seq 1 (single-node mode: a store
      // before 2026-11-29, or a Cluster, records no `born`, and the epoch decides alone).
      if (read.born !== null && streamIdBefore(r.lastId, read.born)) return { events: [], epoch: read.epoch };
      const prev = r.prev;
      // Unknown before, or an epoch that cannot be compared (none recorded, or the upgrade is gone):
      // what was read is new.
      if (!prev || prev.epoch === null || read.epoch === null) return r.fromStart && prev ? { events: read.events.filter((e) => e.seq > prev.seq), epoch: read.epoch } : read;
      // The same upgrade: what follows the last event handed out is new.
      if (read.epoch === prev.epoch) return { events: read.events.filter((e) => e.seq > prev.seq), epoch: read.epoch };
      // Deleted and created again: the new upgrade's events from its start.
      return r.fromStart ? read : collect(upgradeId, 0, r.to);
    };
    /** {@link fresh}, unless the events handed out last were replaced (see `replaced`); with the node that served the upgrade. */
    const page = async (upgradeId: string, r: Range): Promise<{ events: ProgressEvent[]; epoch: string | null; node: string | undefined }> => {
      const prev = r.prev;
      // (A range of seqs handed out already is read only for the check below.)
      const read = r.to > r.after ? await fresh(upgradeId, r) : { events: [], epoch: prev?.epoch ?? null };
      // The node that answered (looked up after the read: a MOVED updates the slots before the read is sent again).
      const node = nodeOf(upgradeId);
      // Another history under the seqs handed out, of the same upgrade: handed out from its start,
      // as for an upgrade deleted and created again.
      if (prev && (prev.epoch === null || read.epoch === null || read.epoch === prev.epoch) && (await replaced(upgradeId, r, prev, node))) {
        const again = await collect(upgradeId, 0, Math.max(r.to, prev.seq));
        return { events: again.events, epoch: again.epoch, node };
      }
      return { ...read, node };
    };
    const reads = [...ranges].filter(([, r]) => r.to > r.after || r.prev !== undefined).map(([upgradeId, r]) => page(upgradeId, r).then((p) => ({ upgradeId, ...p })));
    let pages: Array<{ upgradeId: string; events: ProgressEvent[]; epoch: string | null; node: string | undefined }> | undefined;
    try {
      // Raced with the end of the watcher: these reads go on the store's connection, where a stalled
      // link holds them up to commandTimeoutMs; return() or an abort must not wait for that.
      pages = await watcher.until(Promise.all(reads));
    } catch (err) {
      // The store closed (or the caller stopped) while these reads were in flight: end, as the
      // XREAD above does, rather than throw what the closing connection answered.
      if (watcher.aborted) return;
      throw err;
    }
    if (!pages) return;
    for (const { upgradeId, events, epoch, node } of pages) {
      for (const event of events) {
        // Before each event: reads on a client passed in are still answered after close().
        if (watcher.aborted) return;
        mark(upgradeId, event, epoch, node);
        yield event;
      }
    }
  }
}
