import { ProgressError } from './errors.js';
import { KNOWN_EVENT_TYPES, type ListFilter, type ProgressEvent, type StoreInfo, type UpgradeProgress, type UpgradeSummaryRow } from './model.js';
import { describe, isValidId } from './validation.js';

/**
 * Where the events of upgrades are kept. A store needs only `load`, `append`, `readEvents`, `list`,
 * `delete`, `info` and `close`; everything else is derived by the engine. Run the conformance suite
 * (`describeProgressStore` from `@progress/core/testing`) against every implementation.
 *
 * Failure semantics every store must keep (the engine relies on them):
 * - `append` is all or nothing: either every event of the call is stored, in order, or none is.
 * - `append` rejects with `CONFLICT` when the stored last seq is not `expectedSeq`, storing nothing.
 *   A store that retries an append after a lost connection must treat "already stored with the
 *   same event ids" as success, so that a retried append is never stored twice. When it can, it
 *   says in `context.storedSeq` the seq it is at: a store behind the tracker's durable seq has lost
 *   events it acknowledged (a Redis failover), and the tracker writes them again when it still
 *   keeps them (see `ProgressTracker`); without it, the `CONFLICT` stays one.
 * - `append` resolves only once the events are as durable as the store promises (`info().durable`).
 * - When durability cannot be reached, `append` rejects with `STORE_UNAVAILABLE` (after a bounded
 *   wait), and the engine does not acknowledge those events.
 */
export interface ProgressStore {
  /** Called by `ProgressTracker.open()`: take the exclusive writer role (`CONFLICT` when held). */
  acquire?(upgradeId: string): Promise<void>;
  /** Called by `tracker.close()`: give the writer role back. */
  release?(upgradeId: string): Promise<void>;
  /**
   * The latest state (snapshot + replayed tail), or `undefined` when the store has no such upgrade.
   * The caller's own: changing it changes nothing stored (a store in memory returns a copy).
   */
  load(upgradeId: string): Promise<UpgradeProgress | undefined>;
  /**
   * Appends `events` (consecutive seqs starting at `expectedSeq + 1`).
   *
   * @param state The state after these events, which the store may keep as a snapshot. It is only
   * valid during the synchronous part of the call: a store that keeps it must copy or serialize it
   * before its first `await`.
   *
   * Bad arguments (events that do not follow `expectedSeq`, a state that is not one) reject with an
   * `INVALID_ARGUMENT` {@link ProgressError}, never a synchronous throw, and store nothing. So may a
   * state that is not the one after the events (its `lastSeq` not the batch's last seq), from a store
   * that takes its `list()` row from the state (RedisStore); a store that takes nothing from such a
   * state but a snapshot it skips may store the events.
   */
  append(upgradeId: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void>;
  /**
   * The stored events with `seq > afterSeq`, in seq order, the first `limit` of them (fewer only at
   * the end of the log, whatever the store's page size); changing one changes nothing stored. Throws
   * `NOT_FOUND`-coded {@link ProgressError} with `context.reason = 'trimmed'` when events after
   * `afterSeq` are no longer held (retention), so that a reader never gets a silent gap.
   */
  readEvents(upgradeId: string, afterSeq: number, limit?: number): AsyncIterable<ProgressEvent>;
  /** Every upgrade the store holds, narrowed by `filter`. */
  list(filter?: ListFilter): Promise<UpgradeSummaryRow[]>;
  /** Removes an upgrade and its events. Resolves `false` when there was none. */
  delete(upgradeId: string): Promise<boolean>;
  /** What the store is, for diagnostics. */
  info(): StoreInfo;
  /** Releases connections, handles and timers. */
  close(): Promise<void>;
  /**
   * Cross-process: replays the stored events after `afterSeq`, then follows new ones as they are
   * appended anywhere (by this store or by another one over the same data), in seq order, without
   * gaps or duplicates. An upgrade that does not exist yet can be watched from `afterSeq = 0`: its
   * events come from seq 1 once it is created.
   *
   * The iteration ends (it returns: no error, and no further event) when `signal` aborts (at once,
   * with no event, for a signal already aborted), when the loop breaks, and when the store closes.
   * A bad upgrade id or an `afterSeq` that is not a whole number >= 0 is refused with
   * `INVALID_ARGUMENT`, and a call after `close()` with `CLOSED`: thrown by the call or by the
   * iteration's first `next()` (a `for await` inside a `try` catches either). A store may end the
   * iteration with an error when the upgrade cannot be followed on (RedisStore: `NOT_FOUND` when it
   * is deleted, or when the events after `afterSeq` were removed by retention).
   *
   * Optional: a store without it (MemoryStore, JsonFileStore) serves only the trackers of its own
   * process. The conformance suite checks all of the above when a store has it.
   */
  watch?(upgradeId: string, afterSeq: number, options?: { signal?: AbortSignal }): AsyncIterable<ProgressEvent>;
  /**
   * The new events of every upgrade from the call on, upgrades created later included, each
   * upgrade's in seq order (events of different upgrades may interleave). Ends like {@link watch}
   * (on `signal`, a loop that breaks, `close()`); a call after `close()` is refused with `CLOSED`.
   */
  watchAll?(options?: { signal?: AbortSignal }): AsyncIterable<ProgressEvent>;
}

/**
 * Receives every durable event, in seq order. `handle` is called before the command that made the
 * event resolves; it must not block: a sink with slow I/O queues the event and returns. A sink that
 * throws (or rejects) is logged and isolated; it never fails a command.
 *
 * `state` is the durable state right after the event. It is only valid during the synchronous part
 * of the call: keep a copy of what you need.
 */
export interface ProgressSink {
  /** A short name, for logs and diagnostics. */
  readonly name: string;
  handle(event: ProgressEvent, state: Readonly<UpgradeProgress>): void | Promise<void>;
  /** Resolves when everything handed to `handle` so far has been delivered (or given up on). */
  flush?(): Promise<void>;
  /** Flushes, then releases every resource. */
  close?(): Promise<void>;
}

/**
 * Checks the arguments of a sink's `handle(event, state)`, for the sinks to call first. What the
 * tracker hands over always fits; a program that hands events over itself (from a store's `watch()`,
 * a queue) can pass anything, which used to reach the callbacks, open a WebSocket topic for the
 * upgrade "undefined", or throw a TypeError. An event here is an object with a valid `upgradeId`, a
 * known `type` and a whole `seq` >= 1; the state an object of the same upgrade. A getter or Proxy
 * trap that throws is refused like any other bad input.
 *
 * @param source The package the message names, e.g. `'@progress/callbacks'`.
 * @param fn The function the message names, for a function that takes the same pair (`buildDetail`).
 * @throws ProgressError `INVALID_ARGUMENT`: `[<source>] handle() needs ...`
 */
export function assertHandleArgs(source: string, event: unknown, state: unknown, fn = 'handle'): asserts event is ProgressEvent {
  let why: string | undefined;
  try {
    why = handleArgsProblem(event, state);
  } catch (cause) {
    throw new ProgressError('INVALID_ARGUMENT', `[${source}] ${fn}() could not read its event or state`, { cause });
  }
  if (why !== undefined) throw new ProgressError('INVALID_ARGUMENT', `[${source}] ${fn}() needs ${why}`);
}

/**
 * The upgrade id checked last: sinks are handed event after event of one upgrade, and the id rule's
 * regular expression was most of the check's cost (36 ns a call on this machine, 12 ns with it).
 */
let lastValidId: string | undefined;

function handleArgsProblem(event: unknown, state: unknown): string | undefined {
  if (event === null || typeof event !== 'object' || Array.isArray(event)) return `an event, got ${describe(event)}`;
  const { upgradeId, type, seq } = event as { upgradeId?: unknown; type?: unknown; seq?: unknown };
  if (upgradeId !== lastValidId) {
    if (!isValidId(upgradeId)) return `an event with a valid upgradeId, got one whose upgradeId is ${describe(upgradeId)}`;
    lastValidId = upgradeId;
  }
  if (typeof type !== 'string' || !KNOWN_EVENT_TYPES.has(type)) return `an event of a known type, got one whose type is ${describe(type)}`;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return `an event with a whole seq >= 1, got one whose seq is ${describe(seq)}`;
  if (state === null || typeof state !== 'object' || Array.isArray(state)) return `the state of upgrade ${JSON.stringify(upgradeId)} after the event, got ${describe(state)}`;
  const stateId = (state as { upgradeId?: unknown }).upgradeId;
  if (stateId !== upgradeId) return `the state of upgrade ${JSON.stringify(upgradeId)} after the event, got the state of ${describe(stateId)}`;
  return undefined;
}

/** A pino-compatible logger: `logger.warn({ err, upgradeId }, 'message')`. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * Whether `value` can serve as a {@link Logger}: an object with `debug`, `info`, `warn` and `error`
 * methods. One whose methods cannot be read (a getter or Proxy trap that throws) is not one: every
 * package's `logger` option then refuses it with `INVALID_ARGUMENT`, not with what the trap threw.
 */
export function isLogger(value: unknown): value is Logger {
  if (value === null || typeof value !== 'object') return false;
  const l = value as Record<string, unknown>;
  try {
    return typeof l.debug === 'function' && typeof l.info === 'function' && typeof l.warn === 'function' && typeof l.error === 'function';
  } catch {
    return false;
  }
}

/**
 * `logger` with every method wrapped so that it cannot throw: a logger that fails (a closed
 * transport, a method it lacks) must not fail the command or the cleanup that logs.
 */
export function safeLogger(logger: Logger): Logger {
  const call = (level: keyof Logger) => (obj: object, msg?: string): void => {
    try {
      logger[level](obj, msg);
    } catch {
      // Nowhere left to report it.
    }
  };
  return { debug: call('debug'), info: call('info'), warn: call('warn'), error: call('error') };
}

/** A logger that says nothing: the default of every @progress package. */
export const silentLogger: Logger = Object.freeze({
  debug() {},
  info() {},
  warn() {},
  error() {},
});
