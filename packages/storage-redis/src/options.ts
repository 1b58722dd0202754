import { ProgressError, assertKnownOptions, describeValue, isLogger, redactUrl, type Logger } from '@progress/core';
import type { Cluster, Redis } from 'ioredis';

/** Retention of {@link RedisStoreOptions}. Nothing is ever trimmed silently: see the README. */
export interface RetentionOptions {
  /**
   * Seconds an upgrade is kept after it reaches a terminal status (completed, failed, cancelled):
   * every key of the upgrade gets this TTL when the terminal event is appended. @default undefined (kept forever)
   */
  ttlSeconds?: number;
  /**
   * Keep at least this many of the newest events per upgrade; older ones are trimmed, but only
   * those already covered by the snapshot. A reader asking for trimmed events gets `NOT_FOUND` with
   * `context.reason = 'trimmed'`. @default undefined (every event kept)
   */
  maxEvents?: number;
}

/** Replication an append waits for ({@link RedisStoreOptions.replicas}): Redis' `WAIT count timeoutMs`. */
export interface ReplicasOptions {
  /** How many replicas must have an append before it is acknowledged (at least 1). */
  count: number;
  /** How long Redis waits for them (WAIT's timeout), at most `commandTimeoutMs`. @default 1000 (or `commandTimeoutMs` when that is less) */
  timeoutMs?: number;
}

/** Options of {@link RedisStore}. Give `url` or `redis`; with neither, `redis://127.0.0.1:6379`. */
export interface RedisStoreOptions {
  /** A Redis URL (`redis://user:pass@host:6379/0`, `rediss://...`). The store creates and closes the client. */
  url?: string;
  /** A ready ioredis client or Cluster. The store uses it and leaves it open on `close()`. */
  redis?: Redis | Cluster;
  /** Prefix of every key (multi-tenant use). No braces. @default 'progress:' */
  keyPrefix?: string;
  /** `CLIENT SETNAME` of the connections the store creates (watchers add `:watch`; a watcher of a Cluster passed in keeps the name of its `redisOptions`). @default 'progress-redis-store' */
  connectionName?: string;
  /**
   * Write the snapshot when the seq crosses a multiple of this (and on a terminal status), so that
   * `load()` replays at most about this many events. A state carries each task's recent events, so
   * it weighs tens of KB with a few tasks: writing it on every append would cost more than the
   * events. @default 1000
   */
  snapshotEvery?: number;
  /** TTL after a terminal status, and a cap on stored events. @default keep everything */
  retention?: RetentionOptions;
  /** Approximate cap of the `watchAll()` feed stream (XADD MAXLEN ~). @default 10000 */
  feedMaxLen?: number;
  /**
   * Bounded wait of a command: an append not acknowledged within this time rejects with
   * `STORE_UNAVAILABLE`, and Redis refuses to run it afterwards (a server-side deadline). At most
   * {@link MAX_WAIT_MS}. @default 10000
   */
  commandTimeoutMs?: number;
  /** Stream entries per XRANGE / XREAD page (an entry holds one append's events). @default 500 */
  pageSize?: number;
  /** XREAD BLOCK timeout of a watcher, ms (it loops; this only bounds one call). At most {@link MAX_WAIT_MS}. @default 5000 */
  watchBlockMs?: number;
  /**
   * `single`: the index and the feed are written inside the append script (atomic). `cluster`:
   * they are written by a follow-up command after the script (Cluster cannot touch other slots in
   * a script). @default 'cluster' for an ioredis Cluster, else 'single'
   */
  mode?: 'single' | 'cluster';
  /**
   * Acknowledge an append only once `count` replicas have it: the store sends `WAIT count timeoutMs`
   * on the append's connection after the script has run it. Fewer replicas in time, and the append
   * is refused with `STORE_UNAVAILABLE` (`context.reason = 'replicas'`): stored on the master, not
   * acknowledged (a tracker adopts it on its next write if the master still has it). Not in cluster
   * mode. @default undefined (acknowledged once the master has run it)
   */
  replicas?: ReplicasOptions;
  /** A pino-compatible logger. @default silent */
  logger?: Logger;
}

/** The options after defaults and checks. */
export interface ResolvedOptions {
  keyPrefix: string;
  connectionName: string;
  snapshotEvery: number;
  ttlSeconds: number;
  maxEvents: number;
  feedMaxLen: number;
  commandTimeoutMs: number;
  pageSize: number;
  watchBlockMs: number;
  /** `replicas.count`, 0 without `replicas`. */
  replicaCount: number;
  replicaTimeoutMs: number;
}

/** The longest wait the store arms a timer for (setTimeout fires at once past 2^31 - 1 ms), with room for the clock's uncertainty. */
export const MAX_WAIT_MS = 2_000_000_000;

function whole(value: unknown, what: string, min: number, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/storage-redis] ${what} must be a whole number ${range}, got ${describeValue(value)}`);
  }
  return value;
}

const invalid = (message: string): ProgressError => new ProgressError('INVALID_ARGUMENT', `[@progress/storage-redis] ${message}`);

// Objects checked against the interfaces, so that a new option cannot be left out of these lists.
const OPTION_NAMES = Object.keys({
  url: 0,
  redis: 0,
  keyPrefix: 0,
  connectionName: 0,
  snapshotEvery: 0,
  retention: 0,
  feedMaxLen: 0,
  commandTimeoutMs: 0,
  pageSize: 0,
  watchBlockMs: 0,
  mode: 0,
  replicas: 0,
  logger: 0,
} satisfies Record<keyof RedisStoreOptions, 0>);
const RETENTION_NAMES = Object.keys({ ttlSeconds: 0, maxEvents: 0 } satisfies Record<keyof RetentionOptions, 0>);
const REPLICAS_NAMES = Object.keys({ count: 0, timeoutMs: 0 } satisfies Record<keyof ReplicasOptions, 0>);

/**
 * The url as ioredis must get it: the scheme in lower case. Schemes are case-insensitive (RFC 3986),
 * but ioredis turns TLS on only for a url that starts with `rediss://` as written: `REDISS://` would
 * connect in the clear.
 */
export const normalizedUrl = (url: string): string => url.replace(/^rediss?(?=:\/\/)/i, (scheme) => scheme.toLowerCase());

/**
 * What the store says about a url it refuses: the URL meant, when there is one it takes (a host:port
 * without a scheme, `redis:/host` with one slash), or how to reach a Unix socket (a path,
 * or `unix://`, is not a Redis URL the store takes: `redis:///tmp/redis.sock` names database
 * "tmp/redis.sock", which it refuses too).
 */
function urlMeant(url: string): string {
  if (url.startsWith('/') || /^(unix|redis\+unix|redis-socket):/i.test(url)) {
    return ' (a Unix socket is not a url the store takes: pass a client, redis: new Redis({ path }))';
  }
  // `redis:/host` (one slash) is a typo of the scheme; `redis:6379` is more likely a host named redis
  // (a Compose service) than `redis:` without slashes, so the host reading goes first when it parses.
  const scheme = /^(rediss?):(\/?)(?!\/)/i.exec(url);
  const fixed = scheme ? `${scheme[1]!.toLowerCase()}://${url.slice(scheme[0].length)}` : undefined;
  const candidates = scheme?.[2] ? [fixed] : /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? [] : [`redis://${url}`, fixed];
  const meant = candidates.find((c) => c !== undefined && URL.canParse(c));
  return meant !== undefined ? ` (did you mean ${JSON.stringify(cutShort(redactUrl(meant)))}?)` : '';
}

/** A url as a message shows it: its first 200 characters. */
const cutShort = (url: string): string => (url.length > 200 ? `${url.slice(0, 200)}...` : url);

/** The query parameters a redis:// url means itself (ioredis reads them so, as numbers where they are). */
const URL_PARAMS: ReadonlySet<string> = new Set(['db', 'username', 'password', 'family']);
/**
 * The names of ioredis' options (5.x: those with a default, then those without one), which a url's
 * query would set, as text, over the store's. Other parameters (a provider's own, `?ssl_cert_reqs=`)
 * mean nothing to ioredis and pass.
 */
const IOREDIS_OPTIONS: ReadonlySet<string> = new Set(
  (
    'port host family connectTimeout disconnectTimeout retryStrategy keepAlive noDelay connectionName disableClientInfo ' +
    'clientInfoTag sentinels name role sentinelRetryStrategy sentinelReconnectStrategy natMap enableTLSForSentinelMode ' +
    'updateSentinels failoverDetector username password db enableOfflineQueue enableReadyCheck autoResubscribe ' +
    'autoResendUnfulfilledCommands lazyConnect keyPrefix reconnectOnError readOnly stringNumbers maxRetriesPerRequest ' +
    'maxLoadingRetryTime enableAutoPipelining autoPipeliningIgnoredCommands sentinelMaxConnections blockingTimeoutGrace ' +
    'tls path commandTimeout socketTimeout sentinelUsername sentinelPassword sentinelTLS sentinelCommandTimeout ' +
    'preferredSlaves Connector scripts showFriendlyErrorStack monitor offlineQueue'
  ).split(' '),
);

/** Applies defaults and checks every option; throws `INVALID_ARGUMENT` for a bad one. */
export function resolveOptions(options: RedisStoreOptions): ResolvedOptions {
  if (!options || typeof options !== 'object') throw new ProgressError('INVALID_ARGUMENT', '[@progress/storage-redis] RedisStore needs an options object');
  // A misspelt `keyprefix` was left out without a word: the store wrote under the default prefix,
  // beside another tenant's; a misspelt `retention.ttl` kept everything forever.
  assertKnownOptions(options, OPTION_NAMES, { source: '@progress/storage-redis' });
  if (options.url !== undefined && options.redis !== undefined) {
    throw new ProgressError('INVALID_ARGUMENT', '[@progress/storage-redis] give either url or redis, not both');
  }
  if (options.url !== undefined && (typeof options.url !== 'string' || !/^rediss?:\/\//i.test(options.url) || !URL.canParse(options.url))) {
    // The value is named (its password masked), and a host:port without a scheme gets the URL meant.
    const given = typeof options.url === 'string' ? JSON.stringify(redactUrl(cutShort(options.url))) : describeValue(options.url);
    throw invalid(`url must be a valid redis:// or rediss:// URL, got ${given}${typeof options.url === 'string' ? urlMeant(options.url) : ''}`);
  }
  if (options.url !== undefined) {
    // ioredis copies every query parameter into its options, as text, ahead of the store's own: a
    // `?retryStrategy=1` made each reconnect throw, a `?maxRetriesPerRequest=0` replaced the bound on
    // what is queued through an outage, `?enableOfflineQueue=false` is the text "false" (true).
    for (const name of new URL(options.url).searchParams.keys()) {
      if (IOREDIS_OPTIONS.has(name) && !URL_PARAMS.has(name)) {
        throw invalid(`url query parameter ${JSON.stringify(name)} is not taken (ioredis would read it as its option, as text, over the store's own); of ioredis' options a url takes ${[...URL_PARAMS].join(', ')}: use the store's options, or pass a client (redis: new Redis(url, { ... }))`);
      }
    }
  }
  if (options.mode !== undefined && options.mode !== 'single' && options.mode !== 'cluster') {
    throw invalid(`mode must be 'single' or 'cluster', got ${describeValue(options.mode)}`);
  }
  if (options.redis !== undefined) {
    const client = options.redis as unknown as Record<string, unknown> | null;
    if (client === null || typeof client !== 'object' || typeof client.defineCommand !== 'function' || typeof client.sendCommand !== 'function' || typeof client.duplicate !== 'function') {
      throw invalid('redis must be an ioredis client (Redis or Cluster)');
    }
    if (options.mode === 'single' && client.isCluster === true) throw invalid("an ioredis Cluster needs mode 'cluster' (an upgrade's keys and the index live in different slots)");
    // ioredis refuses every other command on it, locally: each call of the store would fail with
    // STORE_UNAVAILABLE, as if Redis were down, and no retry mends that.
    if ((client.condition as { subscriber?: unknown } | null | undefined)?.subscriber) {
      throw invalid('redis is in subscriber mode (after SUBSCRIBE a connection takes only subscribe commands): pass another connection, such as redis.duplicate()');
    }
  }
  if (options.retention !== undefined && (options.retention === null || typeof options.retention !== 'object' || Array.isArray(options.retention))) {
    throw invalid('retention must be an object ({ ttlSeconds, maxEvents })');
  }
  if (options.retention !== undefined) assertKnownOptions(options.retention, RETENTION_NAMES, { source: '@progress/storage-redis', where: 'retention.' });
  const replicas = options.replicas;
  if (replicas !== undefined) {
    if (replicas === null || typeof replicas !== 'object' || Array.isArray(replicas)) throw invalid('replicas must be an object ({ count, timeoutMs })');
    assertKnownOptions(replicas, REPLICAS_NAMES, { source: '@progress/storage-redis', where: 'replicas.' });
    if (replicas.count === undefined) throw invalid('replicas.count is required (how many replicas must have an append)');
    // WAIT has no key: a Cluster would send it to any node, not to the master that ran the append.
    if (options.mode === 'cluster' || (options.redis as { isCluster?: unknown } | undefined)?.isCluster === true) {
      throw invalid('replicas is not supported in cluster mode (WAIT has no key, so a Cluster cannot send it to the master of the append)');
    }
  }
  if (options.logger !== undefined && !isLogger(options.logger)) throw invalid('logger must have debug, info, warn and error methods');
  // `=== undefined`, not `??`: a null is a wrong value like any other, not the default (a null
  // keyPrefix wrote beside every store that kept the default one). KeyLayout checks the prefix.
  const name = options.connectionName === undefined ? 'progress-redis-store' : options.connectionName;
  if (typeof name !== 'string' || !/^[!-~]{1,100}$/.test(name)) {
    throw new ProgressError('INVALID_ARGUMENT', '[@progress/storage-redis] connectionName must be 1..100 printable characters without spaces');
  }
  const retention = options.retention ?? {};
  const commandTimeoutMs = whole(options.commandTimeoutMs, 'commandTimeoutMs', 1, 10_000, MAX_WAIT_MS);
  return {
    keyPrefix: options.keyPrefix === undefined ? 'progress:' : options.keyPrefix,
    connectionName: name,
    snapshotEvery: whole(options.snapshotEvery, 'snapshotEvery', 1, 1000),
    ttlSeconds: whole(retention.ttlSeconds, 'retention.ttlSeconds', 1, 0),
    maxEvents: whole(retention.maxEvents, 'retention.maxEvents', 1, 0),
    feedMaxLen: whole(options.feedMaxLen, 'feedMaxLen', 1, 10_000),
    commandTimeoutMs,
    pageSize: whole(options.pageSize, 'pageSize', 1, 500),
    watchBlockMs: whole(options.watchBlockMs, 'watchBlockMs', 1, 5_000, MAX_WAIT_MS),
    replicaCount: replicas === undefined ? 0 : whole(replicas.count, 'replicas.count', 1, 0, 10_000),
    // WAIT's timeout is an int of ms to Redis; 0 would wait for ever.
    replicaTimeoutMs: replicas === undefined ? 0 : whole(replicas.timeoutMs, 'replicas.timeoutMs', 1, Math.min(1000, commandTimeoutMs), commandTimeoutMs),
  };
}
