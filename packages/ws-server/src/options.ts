import type { IncomingMessage, Server } from 'node:http';
import { MAX_TIMER_MS, ProgressError, assertKnownOptions, describeValue, isLogger, safeLogger, silentLogger, type Logger, type ProgressStore } from '@progress/core';

/** Per-connection message-rate limit (a token bucket). */
export interface RateLimitOptions {
  /** Messages per second a client may send on average. @default 20 */
  messagesPerSecond?: number;
  /** How many messages may arrive at once. @default 40 */
  burst?: number;
  /** After this many refused messages the connection is closed (1008). @default 50 */
  maxViolations?: number;
}

/** Options of {@link ProgressWebSocketServer}. */
export interface ProgressWebSocketServerOptions {
  /** The port to listen on (0 picks a free one). Ignored with `server`. @default 8765 */
  port?: number;
  /** The address to listen on. Ignored with `server`. @default '127.0.0.1' */
  host?: string;
  /** An existing HTTP server: only its upgrade requests on `path` are taken; mount `dashboardHandler` yourself. */
  server?: Server;
  /** The WebSocket endpoint's path. @default '/ws' */
  path?: string;
  /** A store to serve upgrades from; with `watch()`/`watchAll()` (Redis) every upgrade in it is served live. */
  store?: ProgressStore;
  /**
   * Called at the HTTP upgrade: return a principal (any value) to accept, `undefined`/`false`/`null`
   * to answer 401 before any frame. May be async; one that has not answered within
   * `handshakeTimeoutMs` gets a 503. @default everyone is accepted
   */
  authenticate?: (req: IncomingMessage) => unknown;
  /**
   * How long an async `authenticate` may take before the handshake is answered 503 and its socket
   * released, so that a stuck auth backend cannot make the server hold connections (nor `stop()`
   * wait) for ever. @default 10000
   */
  handshakeTimeoutMs?: number;
  /**
   * Called per subscription (and per upgrade of `*`, `get_summary`, `list_upgrades`); `true` allows.
   * Synchronous: an `async` function is refused with `INVALID_ARGUMENT`, and a promise returned is
   * taken as a refusal (fetch what it needs in `authenticate`, into the principal). @default allow
   */
  authorize?: (principal: unknown, upgradeId: string) => boolean;
  /**
   * Origins a browser may connect from (exact `scheme://host[:port]`), or `'*'` for any; others get
   * 403. A request without Origin (not a browser) passes. @default the server's own origin only:
   * the Origin must name the host the request was sent to, and a connection made to a loopback
   * address (whatever `host` is, and also with `server`) also requires a loopback Host name:
   * `localhost`, 127.x.x.x or `[::1]` (no DNS rebinding), so that no other web page open in the
   * user's browser can read progress. Behind a reverse proxy on the same machine, list its public origin.
   */
  allowedOrigins?: readonly string[] | '*';
  /** Largest client message, in bytes; larger closes with 1009. @default 65536 */
  maxPayload?: number;
  /** A client whose unsent bytes pass this is closed with 1013. @default 8 MiB */
  maxBufferedBytes?: number;
  /** How long a slow or stopping client gets to receive its close frame before it is cut off. @default 2000 */
  closeTimeoutMs?: number;
  /** Interval of heartbeat pings; a peer that missed one is terminated. 0 disables. @default 30000 */
  heartbeatMs?: number;
  /** Per-connection rate limit. @default see {@link RateLimitOptions} */
  rateLimit?: RateLimitOptions;
  /**
   * How many upgrades one connection may be subscribed to at once (`*` not counted). A subscribe
   * beyond it gets an `error` `RATE_LIMITED` and the connection stays; subscribing again to an
   * upgrade already subscribed to replaces that subscription and is not counted twice. It bounds what
   * one client makes the server hold: each subscription to a store-backed upgrade no other client
   * follows runs a store `watch()`, which on a RedisStore is a Redis connection of its own. @default 100
   */
  maxSubscriptionsPerClient?: number;
  /**
   * How many upgrades the whole server follows from its `store` at once with a store `watch()` (on a
   * RedisStore, each is a Redis connection of its own). A subscribe that would start one more gets
   * an `error` `RATE_LIMITED` and the connection stays; one to an upgrade already followed is
   * served. Without this bound, clients together (100 connections of 100 subscriptions) could open
   * enough Redis connections to reach Redis' `maxclients` and lock every writer out. `*`
   * subscribers share one `watchAll()` and are not counted. @default 1000
   */
  maxWatchedUpgrades?: number;
  /**
   * How many upgrades the server keeps only for later subscribers: upgrades that no tracked tracker
   * serves and nobody follows, whose last state it would otherwise hold for the life of the process
   * (a tracker that lists the server in its `sinks`, or one untracked when it closed). Beyond it the
   * least recently updated is forgotten; a later subscriber then gets it from `store`, or `exists:
   * false` without one. Upgrades followed or tracked are not counted. @default 100
   */
  maxRetainedUpgrades?: number;
  /** A pino-compatible logger. @default silent */
  logger?: Logger;
}

/** The options with their defaults applied. */
export interface ResolvedOptions {
  port: number;
  host: string;
  server: Server | undefined;
  path: string;
  store: ProgressStore | undefined;
  authenticate: ((req: IncomingMessage) => unknown) | undefined;
  handshakeTimeoutMs: number;
  authorize: ((principal: unknown, upgradeId: string) => boolean) | undefined;
  /** The allowed origins; `'*'` any; `'same-origin'` the default. */
  allowedOrigins: ReadonlySet<string> | '*' | 'same-origin';
  maxPayload: number;
  maxBufferedBytes: number;
  closeTimeoutMs: number;
  heartbeatMs: number;
  rateLimit: Required<RateLimitOptions>;
  maxSubscriptionsPerClient: number;
  maxWatchedUpgrades: number;
  maxRetainedUpgrades: number;
  logger: Logger;
}

function bad(message: string): ProgressError {
  return new ProgressError('INVALID_ARGUMENT', `[@progress/ws-server] ${message}`);
}

/**
 * Refuses a path that names no WebSocket endpoint (the server's `path`, the dashboard's `wsPath`): the
 * page appends it to `ws://host` and may add `?token=`.
 *
 * @param name Names the option in the message (with its function, where there is one).
 * @throws ProgressError `INVALID_ARGUMENT`
 */
export function checkEndpointPath(path: unknown, name: string): asserts path is string {
  if (typeof path !== 'string' || !path.startsWith('/') || /[?#\s]/.test(path)) {
    throw bad(`${name} must start with "/" and hold no query, fragment or space, got ${describeValue(path)}`);
  }
}

function whole(value: unknown, name: string, min: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) throw bad(`${name} must be a whole number >= ${min}, got ${describeValue(value)}`);
  return value;
}

// Objects checked against the interfaces, so that a new option cannot be left out of these lists.
const OPTION_NAMES = Object.keys({
  port: 0,
  host: 0,
  server: 0,
  path: 0,
  store: 0,
  authenticate: 0,
  handshakeTimeoutMs: 0,
  authorize: 0,
  allowedOrigins: 0,
  maxPayload: 0,
  maxBufferedBytes: 0,
  closeTimeoutMs: 0,
  heartbeatMs: 0,
  rateLimit: 0,
  maxSubscriptionsPerClient: 0,
  maxWatchedUpgrades: 0,
  maxRetainedUpgrades: 0,
  logger: 0,
} satisfies Record<keyof ProgressWebSocketServerOptions, 0>);
const RATE_LIMIT_NAMES = Object.keys({ messagesPerSecond: 0, burst: 0, maxViolations: 0 } satisfies Record<keyof RateLimitOptions, 0>);

/**
 * Core's check of option names ({@link assertKnownOptions}) in this package's words: a misspelt
 * option was left out without a word, and the default applied instead, which for `allowedOrigins`,
 * `authenticate` and `authorize` opened the server wider than asked.
 *
 * @param what Names the argument in the message; `where` prefixes the key (`'rateLimit.'`).
 * @throws ProgressError `INVALID_ARGUMENT`
 */
export function refuseUnknownOptions(value: object, known: readonly string[], what: string, where?: string): void {
  assertKnownOptions(value, known, { source: '@progress/ws-server', what, where });
}

/** Checks the options and applies the defaults. @throws ProgressError `INVALID_ARGUMENT` */
export function resolveOptions(options: ProgressWebSocketServerOptions = {}): ResolvedOptions {
  if (!options || typeof options !== 'object' || Array.isArray(options)) throw bad('options must be an object');
  refuseUnknownOptions(options, OPTION_NAMES, 'ProgressWebSocketServer options');
  const port = whole(options.port, 'port', 0, 8765);
  if (port > 65535) throw bad(`port must be <= 65535, got ${port}`);
  // `undefined` only: a null path is refused, as a null port or host is, not taken for the default.
  const given = options.path === undefined ? '/ws' : options.path;
  checkEndpointPath(given, 'path');
  // In the form clients send it (non-ASCII and some other characters percent-encoded, dot segments
  // resolved), which is the form a request's path is compared in: as given, `/fortschritt/über` or
  // `/progress/./ws` matched no request, and every connection was answered 404.
  const path = new URL(`http://localhost${given}`).pathname;
  for (const hook of ['authenticate', 'authorize'] as const) {
    if (options[hook] !== undefined && typeof options[hook] !== 'function') throw bad(`${hook} must be a function`);
  }
  // Its answer is used at once (a `*` subscriber is given an upgrade as its first event goes out): a
  // promise is no answer, and every subscription would be refused.
  if (typeof options.authorize === 'function' && (options.authorize as { constructor?: { name?: unknown } }).constructor?.name === 'AsyncFunction') {
    throw bad('authorize must answer synchronously (return true or false), got an async function; resolve what it needs in authenticate, into the principal');
  }
  if (
    options.allowedOrigins !== undefined &&
    options.allowedOrigins !== '*' &&
    (!Array.isArray(options.allowedOrigins) || options.allowedOrigins.some((o) => typeof o !== 'string'))
  ) {
    throw bad("allowedOrigins must be an array of origins or '*'");
  }
  if (Array.isArray(options.allowedOrigins)) for (const origin of options.allowedOrigins) checkOrigin(origin);
  // Node fires a longer timer at once.
  const timer = (value: unknown, what: string, min: number, fallback: number): number => {
    const ms = whole(value, what, min, fallback);
    if (ms > MAX_TIMER_MS) throw bad(`${what} must be <= ${MAX_TIMER_MS}, got ${ms}`);
    return ms;
  };
  const handshakeTimeoutMs = timer(options.handshakeTimeoutMs, 'handshakeTimeoutMs', 1, 10_000);
  if (options.host !== undefined && (typeof options.host !== 'string' || options.host === '')) throw bad(`host must be a non-empty string, got ${describeValue(options.host)}`);
  const server = options.server as unknown as Record<string, unknown> | undefined | null;
  if (server !== undefined && (server === null || typeof server !== 'object' || typeof server.on !== 'function' || typeof server.address !== 'function')) {
    throw bad('server must be a node:http or node:https server');
  }
  const store = options.store as unknown as Record<string, unknown> | undefined | null;
  if (store !== undefined && (store === null || typeof store !== 'object' || ['load', 'readEvents', 'list'].some((m) => typeof store[m] !== 'function'))) {
    throw bad('store must be a ProgressStore (load, readEvents, list)');
  }
  if (options.logger !== undefined && !isLogger(options.logger)) throw bad('logger must have debug, info, warn and error methods');
  if (options.rateLimit !== undefined && (options.rateLimit === null || typeof options.rateLimit !== 'object' || Array.isArray(options.rateLimit))) throw bad('rateLimit must be an object');
  if (options.rateLimit !== undefined) refuseUnknownOptions(options.rateLimit, RATE_LIMIT_NAMES, 'ProgressWebSocketServer options', 'rateLimit.');
  const rate = options.rateLimit ?? {};
  return {
    port,
    host: options.host ?? '127.0.0.1',
    server: options.server,
    path,
    store: options.store,
    authenticate: options.authenticate,
    handshakeTimeoutMs,
    authorize: options.authorize,
    allowedOrigins:
      options.allowedOrigins === '*' ? '*' : options.allowedOrigins ? new Set(options.allowedOrigins.map((o) => o.toLowerCase())) : 'same-origin',
    maxPayload: whole(options.maxPayload, 'maxPayload', 1, 64 * 1024),
    maxBufferedBytes: whole(options.maxBufferedBytes, 'maxBufferedBytes', 1, 8 * 1024 * 1024),
    closeTimeoutMs: timer(options.closeTimeoutMs, 'closeTimeoutMs', 1, 2000),
    heartbeatMs: timer(options.heartbeatMs, 'heartbeatMs', 0, 30_000),
    rateLimit: {
      messagesPerSecond: whole(rate.messagesPerSecond, 'rateLimit.messagesPerSecond', 1, 20),
      burst: whole(rate.burst, 'rateLimit.burst', 1, 40),
      maxViolations: whole(rate.maxViolations, 'rateLimit.maxViolations', 1, 50),
    },
    maxSubscriptionsPerClient: whole(options.maxSubscriptionsPerClient, 'maxSubscriptionsPerClient', 1, 100),
    maxWatchedUpgrades: whole(options.maxWatchedUpgrades, 'maxWatchedUpgrades', 1, 1000),
    maxRetainedUpgrades: whole(options.maxRetainedUpgrades, 'maxRetainedUpgrades', 0, 100),
    // Wrapped: a logger that throws (a closed transport) must not break a connection's handling or the cleanup that logs.
    logger: options.logger ? safeLogger(options.logger) : silentLogger,
  };
}

/**
 * Refuses an `allowedOrigins` entry that no browser sends as `Origin` (`scheme://host[:port]`, without
 * a path, a trailing `/` or the scheme's default port), naming the origin meant: compared exactly, such
 * an entry matched nothing, and the server refused every page with 403 without a word. The opaque
 * origin `null` and other schemes (`chrome-extension://id`, `file://`) are taken as given.
 */
function checkOrigin(origin: string): void {
  if (origin === '*') throw bad(`allowedOrigins: "*" in a list matches no Origin; to take any origin, write allowedOrigins: '*'`);
  // A list read from the environment (`ORIGINS=a,b,` split on commas) ends with one.
  if (origin.trim() === '') throw bad(`allowedOrigins: an empty entry matches no Origin (a list split from text with a trailing comma?); leave it out`);
  if (origin.toLowerCase() === 'null') return;
  let url: URL | undefined;
  try {
    url = new URL(origin);
  } catch {
    url = undefined;
  }
  // A bare host name (`ops.example.com`, `localhost:3000`) parses as no URL, or as a scheme without
  // `//`. `file://` has no host, but is the Origin an Electron or Cordova page loaded from a file sends.
  if (url === undefined || (!url.host && !origin.includes('://'))) {
    throw bad(`allowedOrigins: ${JSON.stringify(origin)} is not an origin (scheme://host[:port]); did you mean "https://${origin}"?`);
  }
  if ((url.protocol === 'http:' || url.protocol === 'https:') && url.origin !== origin.toLowerCase()) {
    throw bad(`allowedOrigins: ${JSON.stringify(origin)} is not an origin as a browser sends it (no path, no trailing "/", no default port); did you mean "${url.origin}"?`);
  }
}
