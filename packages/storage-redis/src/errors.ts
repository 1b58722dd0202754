import { ProgressError, isProgressError, type Logger, type ProgressErrorContext } from '@progress/core';

const PKG = '[@progress/storage-redis]';

/** ioredis' answer, at once, to any command but (P|S)SUBSCRIBE, PING and QUIT on a client in subscriber mode. */
const SUBSCRIBER_MODE = 'Connection in subscriber mode, only subscriber commands may be used';

/**
 * `STORE_UNAVAILABLE` for a failed or timed-out command (a ProgressError passes through), or
 * `DATA_CORRUPTED` when Redis answered WRONGTYPE: one of the upgrade's keys holds another kind of
 * value, which no retry mends. Or `INVALID_ARGUMENT` when a client passed in was put in subscriber
 * mode after the store was made (the constructor refuses one that already is): no retry mends that
 * either, and "unavailable" would send its owner looking at Redis.
 */
export function unavailable(what: string, cause: unknown, context: ProgressErrorContext = {}): ProgressError {
  if (isProgressError(cause)) return cause;
  withoutSecrets(cause);
  const reason = cause instanceof Error ? cause.message : String(cause);
  if (reason.includes('WRONGTYPE')) return new ProgressError('DATA_CORRUPTED', `${PKG} ${what}: a key holds another kind of value (${reason})`, { cause, context });
  // A Redis Cluster node's answer for a key in another node's slots: through the `url` of one node
  // (or a plain client), the store reaches that node's slots only. (A Cluster client follows it.)
  if (isRedirection(cause)) {
    return new ProgressError(
      'STORE_UNAVAILABLE',
      `${PKG} ${what}: ${reason} (a Redis Cluster node's answer: the key is on another node; a store given the url of one node, or a plain Redis client, reaches that node's slots only: give it an ioredis Cluster, redis: new Cluster([...]); see the README, Redis Cluster)`,
      { cause, context },
    );
  }
  if (reason === SUBSCRIBER_MODE) {
    return new ProgressError('INVALID_ARGUMENT', `${PKG} ${what}: the client passed as \`redis\` is in subscriber mode (SUBSCRIBE was called on it), where ioredis takes no other command; give the store its own connection, such as redis.duplicate()`, { cause, context });
  }
  return new ProgressError('STORE_UNAVAILABLE', `${PKG} ${what}: ${reason}`, { cause, context });
}

/** Commands whose arguments hold credentials: `AUTH [user] password`, `HELLO 3 AUTH user password`. */
const SECRET_COMMAND = /^(auth|hello)$/i;

/**
 * Masks the credentials an ioredis error carries: a refused `AUTH` (a wrong password) comes with
 * `err.command = { name: 'auth', args: [user, password] }`, which a logger's error serializer
 * prints and a `cause` hands to the caller. Changes the error in place (and the errors it links to:
 * its cause, `previousErrors`, a Cluster's `lastNodeError`, ...), and returns it.
 */
export function withoutSecrets<T>(err: T): T {
  // Errors link to each other (a cause, ioredis' previousErrors) and may link in a circle.
  const seen = new Set<object>();
  const visit = (e: unknown, depth: number): void => {
    if (e === null || typeof e !== 'object' || seen.has(e) || depth > 5) return;
    seen.add(e);
    const command = (e as { command?: unknown }).command as { name?: unknown; args?: unknown } | null | undefined;
    if (command && typeof command === 'object' && typeof command.name === 'string' && SECRET_COMMAND.test(command.name)) {
      try {
        (e as { command: unknown }).command = { name: command.name, args: Array.isArray(command.args) ? command.args.map(() => '***') : [] };
      } catch {
        // A frozen error: nothing this store can mask.
      }
    }
    // The errors it links to: `cause`, ioredis' `previousErrors`, a Cluster's `lastNodeError`
    // (where a refused AUTH of a node ends up), and any other property holding an error or a list
    // of them.
    visit((e as { cause?: unknown }).cause, depth + 1);
    for (const value of Object.values(e)) {
      if (Array.isArray(value)) {
        for (const item of value.slice(0, 20)) if (item instanceof Error) visit(item, depth + 1);
      } else if (value instanceof Error) {
        visit(value, depth + 1);
      }
    }
  };
  visit(err, 0);
  return err;
}

/** `logger` with the credentials of every `err` it is handed masked ({@link withoutSecrets}). */
export function scrubbingLogger(logger: Logger): Logger {
  const scrub =
    (level: keyof Logger) =>
    (obj: object, msg?: string): void => {
      if (obj !== null && typeof obj === 'object' && 'err' in obj) withoutSecrets((obj as { err?: unknown }).err);
      logger[level](obj, msg);
    };
  return { debug: scrub('debug'), info: scrub('info'), warn: scrub('warn'), error: scrub('error') };
}

/**
 * True for ioredis' AbortError: a command of a pipeline answered only in part when the connection
 * closed. ioredis does not send it again (it re-sends lone commands and unanswered pipelines
 * itself), and it may have run: the caller decides whether to send it again.
 */
export const isPipelineAbort = (err: unknown): boolean => err instanceof Error && err.name === 'AbortError';

/**
 * True for what a command gets when its connection is lost: ioredis' AbortError (above), or
 * "Connection is closed.". A Cluster fails with the latter the commands in flight on a node
 * connection that closed (its connections to the nodes do not reconnect: the Cluster makes new ones),
 * re-sending only lone commands and read-only pipelines, and those only while it is `ready` (not
 * after all its connections closed, nor with `retryDelayOnFailover: 0`). A
 * plain Redis fails with it the commands of a connection that will not reconnect (quit, or its
 * retryStrategy gave up): callers that read again check that the client is not `end`.
 */
export const isConnectionLoss = (err: unknown): boolean => isPipelineAbort(err) || (err instanceof Error && err.message === 'Connection is closed.');

/**
 * True for a Cluster node's redirection (`MOVED`, `ASK`): the command did not run there. ioredis
 * follows one for a lone command, and for a pipeline only when every command got that same answer
 * and the others are reads: not for a pipeline it had sent on with `ASKING` before each command
 * after an `ASK` (a resharding), whose ASKING answers OK. Such a pipeline, a watcher's blocking read
 * and its meta, blocked on the slot's new master, failed with MOVED when the slot moved on again.
 */
export const isRedirection = (err: unknown): boolean => err instanceof Error && /^(MOVED|ASK) /.test(err.message);

/**
 * True for what ioredis answers a command with while its connection is down and it will not queue
 * the command until the reconnect: `MaxRetriesPerRequestError` (its default gives up on a queued
 * command after 20 reconnect attempts, about 10 s) or, with `enableOfflineQueue: false`, "Stream
 * isn't writeable". A client passed in may have either setting: a watcher reads again after them, as
 * after a lost connection.
 */
export const isOfflineRefusal = (err: unknown): boolean =>
  err instanceof Error && (err.name === 'MaxRetriesPerRequestError' || err.message.includes('enableOfflineQueue options is false'));

/**
 * True for Redis' answer to a blocked command (XREAD BLOCK) when its server stops being a master
 * (`UNBLOCKED force unblock from blocking operation, instance state changed`): a failover demoting it
 * (Sentinel's REPLICAOF, then CLIENT KILL of its clients), a manual REPLICAOF, or the FAILOVER
 * command. The read did not run; read again (ioredis reconnects, through the Sentinel, to the new
 * master; a server left a replica answers reads).
 */
export const isUnblocked = (err: unknown): boolean => err instanceof Error && err.message.startsWith('UNBLOCKED ');

/**
 * True for Redis' answer to a command while it loads a dataset (`LOADING Redis is loading the
 * dataset in memory`): a demoted master, or a replica, loading its master's RDB after a full sync
 * (`REPLICAOF` under a watcher, Sentinel demoting a master), or a server started again over its
 * RDB or AOF, to a client that skips ioredis' ready check (`enableReadyCheck: false`; with it,
 * ioredis holds the commands until the load ends). The command did not run; it works once the load ends.
 */
export const isLoading = (err: unknown): boolean => err instanceof Error && err.message.startsWith('LOADING ');

/** ioredis' answer to a command not answered within its client's `commandTimeout` (a client passed in may have one). */
export const isClientTimeout = (err: unknown): boolean => err instanceof Error && err.message === 'Command timed out';

/**
 * True for `STORE_UNAVAILABLE` because Redis gave no answer in time: the store's own bound
 * (`withTimeout`, `context.reason = 'timeout'`), or the `commandTimeout` of a client passed in
 * (ioredis' "Command timed out").
 */
export const isNoAnswer = (err: unknown): boolean => isProgressError(err, 'STORE_UNAVAILABLE') && (err.context.reason === 'timeout' || isClientTimeout(err.cause));

/** `DATA_CORRUPTED` naming the key and the record. */
export function corrupted(key: string, record: string, cause?: unknown, context: ProgressErrorContext = {}): ProgressError {
  return new ProgressError('DATA_CORRUPTED', `${PKG} key "${key}": ${record} is damaged`, { cause, context });
}

/**
 * `DATA_CORRUPTED` for an event stream that ends at `afterSeq` while the meta is at `lastSeq`
 * (past it): entries the meta holds were lost (evicted under a maxmemory policy, deleted by hand).
 */
export function lostEntriesError(eventsKey: string, afterSeq: number, lastSeq: number, upgradeId: string): ProgressError {
  return corrupted(eventsKey, `the event log after seq ${afterSeq} (it ends there, but the meta is at lastSeq ${lastSeq}: entries were lost, evicted or deleted; see the README, Durability)`, undefined, { upgradeId });
}

/** `NOT_FOUND` with `context.reason = 'trimmed'`: the events after `afterSeq` are no longer held. */
export function trimmedError(upgradeId: string, afterSeq: number, trimmedSeq: number): ProgressError {
  return new ProgressError(
    'NOT_FOUND',
    `${PKG} upgrade "${upgradeId}": events up to seq ${trimmedSeq} were removed by retention; cannot read after seq ${afterSeq} (load the snapshot and resync)`,
    { context: { upgradeId, reason: 'trimmed', afterSeq, trimmedSeq } },
  );
}

/**
 * `NOT_FOUND` (`context.reason = 'trimmed'`, no `upgradeId`): the feed entry a `watchAll()` follower
 * read last is no longer in the feed, so it cannot tell what it missed. Either the feed was trimmed
 * past it (the follower fell more than about `feedMaxLen` entries behind), or it was lost with the
 * appends it recorded (single-node mode: a failover to a replica they had not reached); which one,
 * the follower does not know. Start a new `watchAll()` and load the upgrades again. (The reason stays
 * 'trimmed' for both: consumers, the ws-server among them, resync on it.)
 */
export function feedTrimmedError(lastEntryId: string): ProgressError {
  return new ProgressError(
    'NOT_FOUND',
    `${PKG} watchAll: feed entry ${lastEntryId}, the last one it read, is no longer in the feed (trimmed by feedMaxLen while the follower was behind it, or lost with the appends it recorded in a failover to a replica they had not reached), so appends may have been missed; start a new watchAll() and load the upgrades again`,
    { context: { reason: 'trimmed', feedEntryId: lastEntryId } },
  );
}

/** `NOT_FOUND` (`context.reason = 'deleted'`): the upgrade a reader follows is gone (deleted, expired, or re-created). */
export function goneError(upgradeId: string, afterSeq: number, why: string, doing: 'watched' | 'read' = 'watched'): ProgressError {
  return new ProgressError('NOT_FOUND', `${PKG} upgrade "${upgradeId}": ${why} while ${doing} after seq ${afterSeq}; load it again to start over`, {
    context: { upgradeId, reason: 'deleted', afterSeq },
  });
}

/** `CLOSED` for any call after `close()`. */
export function closedError(): ProgressError {
  return new ProgressError('CLOSED', `${PKG} RedisStore is closed`);
}

/**
 * Rejects with `STORE_UNAVAILABLE` when `promise` does not settle within `ms`; with `CLOSED` (the timer
 * cleared) when `stop` aborts first: a command queued on a client passed in that waits to reconnect is
 * not the store's to cancel, and a wait for it kept the caller's process alive up to `ms` after close().
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string, context: ProgressErrorContext = {}, stop?: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    // Given up on after the I/O of the loop's turn (setImmediate): Node runs due timers before it reads
    // the sockets, so after the event loop was blocked past `ms` an answer already received would
    // otherwise be reported as none.
    const timer = setTimeout(
      () => setImmediate(() => reject(new ProgressError('STORE_UNAVAILABLE', `${PKG} ${what}: no answer from Redis within ${ms} ms`, { context: { ...context, reason: 'timeout' } }))),
      ms,
    );
    const closed = (): void => {
      clearTimeout(timer);
      reject(closedError());
    };
    promise.then(
      (value) => {
        clearTimeout(timer);
        stop?.removeEventListener('abort', closed);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        stop?.removeEventListener('abort', closed);
        reject(unavailable(what, err, context));
      },
    );
    // After the handlers above: `promise` settling later (a rejection) is still handled.
    if (stop?.aborted) closed();
    else stop?.addEventListener('abort', closed, { once: true });
  });
}
