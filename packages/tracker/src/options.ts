import { ProgressError, assertKnownOptions, describeValue, isProgressError, redactUrl, type Logger, type ProgressSink, type ProgressStore } from '@progress/core';
import type { CallbackManagerOptions } from '@progress/callbacks';
import type { EventBridgeNotifierOptions } from '@progress/notifier-eventbridge';
import type { ProgressWebSocketServer, ProgressWebSocketServerOptions } from '@progress/ws-server';

/** Where the meta tracker keeps events. */
export type StorageOption = 'memory' | { json: string } | { redis: string; keyPrefix?: string } | ProgressStore;

/** EventBridge settings of the meta tracker. */
/**
 * The EventBridge notifier's options (`busName` and any of `EventBridgeNotifierOptions`: `region`,
 * `source`, `client`, `eventTypes`, `retry`, `onError`, ...). `logger` defaults to the tracker's, and
 * `flushTimeoutMs` (how long `close()` waits for delivery, in all) to 10000.
 */
export type EventBridgeOption = EventBridgeNotifierOptions;

/**
 * The callbacks' options: any of `CallbackManagerOptions` (`timeoutMs`, `maxQueueSize`,
 * `dropPolicy`, `onError`, `logger`). `logger` defaults to the tracker's.
 */
export type CallbacksOption = CallbackManagerOptions;

/** Options of {@link createProgressTracker}: the engine's, the components', and the old module's names. */
export interface CreateProgressTrackerOptions {
  upgradeId: string;
  planId: string;
  clusterName: string;
  metadata?: Record<string, unknown>;
  /** @default 'memory' */
  storage?: StorageOption;
  /** Send events to EventBridge. Off when left out. */
  eventBridge?: EventBridgeOption;
  /**
   * The WebSocket server: its options (it listens once `startWebSocketServer()` is called) or a
   * shared server (pass the same one to every tracker of the process).
   */
  webSocket?: ProgressWebSocketServerOptions | ProgressWebSocketServer;
  /** More sinks, after the built-in ones. */
  sinks?: readonly ProgressSink[];
  /** Timeout of each callback, ms (the same as `callbacks.timeoutMs`). @default the CallbackManager's */
  callbackTimeoutMs?: number;
  /**
   * The options of the CallbackManager the tracker makes (`timeoutMs`, `maxQueueSize`, `dropPolicy`,
   * `onError`, `logger`). @default the CallbackManager's, with the tracker's logger
   */
  callbacks?: CallbacksOption;
  /** A pino-compatible logger, handed to every component. @default silent */
  logger?: Logger;
  /** The clock (tests). */
  now?: () => number;
  /** How long closing waits for each sink's `flush()` (the engine's option). @default 30000 */
  sinkFlushTimeoutMs?: number;
  /**
   * How long the engine waits for the store to answer one call (an append, the lock, the load)
   * before it refuses the command with `STORE_UNAVAILABLE` (the engine's option). @default 60000
   */
  storeTimeoutMs?: number;

  /** The old module's name for `storage: { json: storagePath }`. */
  storagePath?: string;
  /** The old module's name for `eventBridge.busName`. */
  eventBridgeBusName?: string;
  /** The old module's name for `eventBridge.region`. */
  awsRegion?: string;
  /** The old module's switch: `true` makes a WebSocket server with `webSocketPort`. */
  enableWebSocket?: boolean;
  /** The old module's name for `webSocket.port`. @default 8765 */
  webSocketPort?: number;
}

/** The old module's snake_case keyword arguments, accepted as they were. */
const SNAKE: Record<string, keyof CreateProgressTrackerOptions> = {
  upgrade_id: 'upgradeId',
  plan_id: 'planId',
  cluster_name: 'clusterName',
  storage_path: 'storagePath',
  eventbridge_bus_name: 'eventBridgeBusName',
  event_bridge_bus_name: 'eventBridgeBusName',
  aws_region: 'awsRegion',
  enable_websocket: 'enableWebSocket',
  websocket_port: 'webSocketPort',
};

/** The options with the old names folded into the new ones. */
export interface ResolvedOptions {
  upgradeId: string;
  planId: string;
  clusterName: string;
  metadata?: Record<string, unknown>;
  storage: StorageOption;
  eventBridge?: EventBridgeOption;
  webSocket?: ProgressWebSocketServerOptions | ProgressWebSocketServer;
  sinks: readonly ProgressSink[];
  /** The CallbackManager's options, `callbackTimeoutMs` folded in as `timeoutMs`. */
  callbacks?: CallbacksOption;
  logger?: Logger;
  now?: () => number;
  sinkFlushTimeoutMs?: number;
  storeTimeoutMs?: number;
}

function bad(message: string): ProgressError {
  return new ProgressError('INVALID_ARGUMENT', `[@progress/tracker] ${message}`);
}

/** The methods every `ProgressStore` has. */
const STORE_METHODS = ['load', 'append', 'readEvents', 'list', 'delete', 'info', 'close'] as const;

/**
 * Whether `storage` is a `ProgressStore` (it has every method of one), which is used as it is: a
 * store of its own may also have a `json` or `redis` key, which does not make it one of those forms.
 */
export function isStore(storage: unknown): storage is ProgressStore {
  if (storage === null || typeof storage !== 'object') return false;
  const record = storage as Record<string, unknown>;
  return STORE_METHODS.every((method) => typeof record[method] === 'function');
}

/** The keys of the `{ json }` and `{ redis, keyPrefix }` forms of {@link StorageOption}. */
const STORAGE_KNOWN: ReadonlySet<string> = new Set(['json', 'redis', 'keyPrefix']);

/** What an error about `storage` starts with: the forms it takes. */
const STORAGE_FORMS = "storage must be 'memory', { json: dir }, { redis: url } or a ProgressStore";

/** Checks `storage` against the forms of {@link StorageOption}. */
function assertStorage(storage: unknown): asserts storage is StorageOption {
  if (storage === 'memory') return;
  if (storage !== null && typeof storage === 'object' && !Array.isArray(storage)) {
    const record = storage as Record<string, unknown>;
    if (isStore(storage)) return;
    // Exactly one of json and redis, a non-empty string; a key prefix with redis only, not empty (its
    // keys would be named `index` and `feed` at the top of the database; RedisStore checks the rest).
    // Beside json or redis, a key it does not know (a misspelt `keyprefix`) would be left out without
    // a word: the upgrade would be written under the default prefix, beside another tenant's.
    if ('json' in record || 'redis' in record) assertKnownKeys(record, STORAGE_KNOWN, 'storage.');
    const { json, redis, keyPrefix } = record;
    const target = json === undefined ? redis : redis === undefined ? json : undefined;
    if (keyPrefix !== undefined && (redis === undefined || typeof keyPrefix !== 'string' || !keyPrefix)) {
      throw bad(`storage.keyPrefix is a non-empty string, and goes with { redis: url } only, got ${shown(storage)}`);
    }
    if (typeof target === 'string' && target) {
      if (json !== undefined) assertFolder(json as string, 'storage.json');
      return;
    }
    // The { json } or { redis } form with a bad value (`{ json: process.env.DIR }`, the variable
    // unset): that value is the mistake, not the form, which "an object of none of these forms" said.
    if (json !== undefined && redis !== undefined) throw bad(`${STORAGE_FORMS}, got both storage.json and storage.redis: give one`);
    // A key given undefined beside the other is left out, as where the other's value is good.
    if (json !== undefined || (redis === undefined && 'json' in record)) throw bad(`${STORAGE_FORMS}, got storage.json ${shown(json)}: it takes the folder's path, a non-empty string`);
    if ('redis' in record) throw bad(`${STORAGE_FORMS}, got storage.redis ${shown(redis)}: it takes a redis:// or rediss:// URL, a non-empty string`);
  }
  // A Redis URL given as it is (`storage: process.env.REDIS_URL`): said without its password. A
  // folder path given as it is (`storage: './progress-data'`, the old module's storage_path): the
  // form it goes in, which the list of forms alone left the user to work out.
  const hint = typeof storage !== 'string' ? ''
    : /^rediss?:\/\//i.test(storage) ? ' (write { redis: url })'
    : FOLDER_LIKE.test(storage) && !URL_LIKE.test(storage) ? ` (write { json: ${JSON.stringify(storage)} }, or storagePath: ${JSON.stringify(storage)})`
    : '';
  throw bad(`${STORAGE_FORMS}, got ${shown(storage)}${hint}`);
}

/** A string that names a folder: it holds a path separator, or starts with `.` or `~` (not a bare word such as `'json'`). */
const FOLDER_LIKE = /[/\\]|^[.~]/;

/** A URL (`redis://...`, `file:///...`), not a folder path: a scheme of two letters or more, then `://` (`C://data` is a folder). */
const URL_LIKE = /^[a-z][a-z\d+.-]+:\/\//i;

/**
 * `INVALID_ARGUMENT` for a URL given as the folder of the JSON store: `storagePath: process.env.REDIS_URL`
 * made a folder `./redis:/:password@host:6379` and kept the events there, without a word.
 */
function assertFolder(dir: string, name: string): void {
  if (!URL_LIKE.test(dir)) return;
  const shownUrl = JSON.stringify(redactUrl(dir));
  if (/^rediss?:/i.test(dir)) throw bad(`${name} is a folder path, got the URL ${shownUrl}: for a Redis store, write storage: { redis: url }`);
  if (/^file:/i.test(dir)) throw bad(`${name} is a folder path, got the URL ${shownUrl}: give the folder's path (url.fileURLToPath() makes it from a file:// URL)`);
  throw bad(`${name} is a folder path, got the URL ${shownUrl}`);
}

/** An options object: not null, not an array, not a primitive. */
const isPlainOptions = (value: unknown): value is object => value !== null && typeof value === 'object' && !Array.isArray(value);

function shown(value: unknown): string {
  // A URL's password stays out of the error (and the logs it goes to).
  if (typeof value === 'string') return JSON.stringify(redactUrl(value));
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object of none of these forms';
}

/** Every option name {@link createProgressTracker} takes (a key of {@link CreateProgressTrackerOptions}, or an old snake_case one). */
const KNOWN: ReadonlySet<string> = new Set<string>([
  ...(Object.keys({
    upgradeId: 0,
    planId: 0,
    clusterName: 0,
    metadata: 0,
    storage: 0,
    eventBridge: 0,
    webSocket: 0,
    sinks: 0,
    callbackTimeoutMs: 0,
    callbacks: 0,
    logger: 0,
    now: 0,
    sinkFlushTimeoutMs: 0,
    storeTimeoutMs: 0,
    storagePath: 0,
    eventBridgeBusName: 0,
    awsRegion: 0,
    enableWebSocket: 0,
    webSocketPort: 0,
  } satisfies Record<keyof CreateProgressTrackerOptions, 0>) as string[]),
  ...Object.keys(SNAKE),
]);

/** Every option name of the EventBridge notifier, which `eventBridge` takes. */
const EVENT_BRIDGE_KNOWN: ReadonlySet<string> = new Set(
  Object.keys({
    busName: 0,
    source: 0,
    client: 0,
    region: 0,
    clientConfig: 0,
    eventTypes: 0,
    maxBatchEntries: 0,
    maxBatchBytes: 0,
    lingerMs: 0,
    maxConcurrentRequests: 0,
    maxQueue: 0,
    dropPolicy: 0,
    retry: 0,
    requestTimeoutMs: 0,
    flushTimeoutMs: 0,
    logger: 0,
    onError: 0,
  } satisfies Record<keyof EventBridgeNotifierOptions, 0>),
);

/** Every option name of the CallbackManager, which `callbacks` takes. */
const CALLBACKS_KNOWN: ReadonlySet<string> = new Set(
  Object.keys({
    timeoutMs: 0,
    maxQueueSize: 0,
    dropPolicy: 0,
    logger: 0,
    onError: 0,
  } satisfies Record<keyof CallbackManagerOptions, 0>),
);

/** Every option name of the WebSocket server, which `webSocket` takes (when it is not a server). */
const WEB_SOCKET_KNOWN: ReadonlySet<string> = new Set(
  Object.keys({
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
  } satisfies Record<keyof ProgressWebSocketServerOptions, 0>),
);

/**
 * `INVALID_ARGUMENT` for a key of `value` not in `known`, naming the nearest known one: a misspelt
 * option (`regoin`, `prot`) would otherwise be left out without a word. Every object's keys: the
 * tracker's options are given as literals (a store or server instance is told apart before this is
 * called).
 */
function assertKnownKeys(value: object, known: ReadonlySet<string>, where: string): void {
  assertKnownOptions(value, known, { source: '@progress/tracker', where, everyObject: true, listKnown: false });
}

/**
 * The options of `value` among `known`, each read once by name (a getter of a settings class counts,
 * which a spread would lose) and left out when undefined (`logger: undefined` must not replace the
 * tracker's own).
 */
function knownOptions(value: object, known: ReadonlySet<string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of known) {
    // Only a name it holds (its own or inherited, a getter too): a strict settings object may throw
    // when asked for one it does not.
    if (!(key in value)) continue;
    const v = (value as Record<string, unknown>)[key];
    if (v !== undefined) out[key] = v;
  }
  return out;
}

/**
 * Folds the old module's option names (camelCase and snake_case) into the new ones. Giving both the
 * old and the new name of one option with different values is an error, and so is an option name it
 * does not know (a misspelt `storge` would otherwise leave the store in memory without a word; the
 * old module's Python refused an unknown keyword argument too).
 */
export function resolveOptions(input: CreateProgressTrackerOptions): ResolvedOptions {
  try {
    return resolve(input);
  } catch (err) {
    // Every check here is a ProgressError; anything else is a getter or Proxy trap of a nested
    // options object (storage, eventBridge, webSocket, callbacks) that threw while it was read.
    if (isProgressError(err)) throw err;
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/tracker] createProgressTracker() options could not be read: ${(err as Error)?.message ?? describeValue(err)}`, { cause: err });
  }
}

function resolve(input: CreateProgressTrackerOptions): ResolvedOptions {
  if (!input || typeof input !== 'object') throw bad('createProgressTracker() needs an options object');
  assertKnownKeys(input, KNOWN, '');
  // Read by name, as eventBridge and webSocket are: a spread lost a settings class's getters (a
  // `storage` getter left the events in memory without a word), and a strict settings object threw
  // a plain Error when asked for an old name it does not hold.
  const given = knownOptions(input, KNOWN);
  const o = given as unknown as CreateProgressTrackerOptions;
  for (const [snake, camel] of Object.entries(SNAKE)) {
    const value = given[snake];
    if (value === undefined) continue;
    if (o[camel] !== undefined && o[camel] !== value) throw bad(`both ${snake} and ${camel} are given, with different values`);
    (o as unknown as Record<string, unknown>)[camel] = value;
  }
  let storage = o.storage;
  if (storage !== undefined) assertStorage(storage);
  if (o.storagePath !== undefined) {
    if (typeof o.storagePath !== 'string' || !o.storagePath) throw bad('storagePath must be a folder path');
    assertFolder(o.storagePath, 'storagePath');
    if (storage !== undefined && !(typeof storage === 'object' && !isStore(storage) && 'json' in storage && storage.json === o.storagePath)) {
      throw bad('give either storage or storagePath, not both');
    }
    storage = { json: o.storagePath };
  }
  let eventBridge = o.eventBridge;
  if (eventBridge !== undefined && !isPlainOptions(eventBridge)) throw bad(`eventBridge must be an object such as { busName }, got ${shown(eventBridge)}`);
  // A ready notifier (a sink) given for its options was refused as an `unknown option "eventBridge.name"`.
  if (eventBridge !== undefined && isSink(eventBridge)) {
    throw bad('eventBridge takes the options of the EventBridgeNotifier the tracker makes ({ busName, region, ... }); a notifier of your own goes in sinks: [notifier] (and is yours to close)');
  }
  if (eventBridge !== undefined) {
    assertKnownKeys(eventBridge, EVENT_BRIDGE_KNOWN, 'eventBridge.');
    eventBridge = knownOptions(eventBridge, EVENT_BRIDGE_KNOWN) as unknown as EventBridgeOption;
  }
  if (o.webSocket !== undefined && !isServer(o.webSocket) && !isPlainOptions(o.webSocket)) {
    throw bad(`webSocket must be a ProgressWebSocketServer or its options object (webSocketPort takes a port), got ${shown(o.webSocket)}`);
  }
  if (o.webSocket !== undefined && !isServer(o.webSocket)) assertKnownKeys(o.webSocket, WEB_SOCKET_KNOWN, 'webSocket.');
  if (o.eventBridgeBusName !== undefined || o.awsRegion !== undefined) {
    if (o.eventBridgeBusName === undefined && !eventBridge) throw bad('awsRegion needs eventBridgeBusName (or eventBridge.busName)');
    // Compared with the options read above (by the names the object holds), not with the object
    // given: a strict settings object throws when asked for a name it does not hold.
    const given: Partial<EventBridgeOption> = eventBridge ?? {};
    eventBridge = { ...(eventBridge ?? { busName: o.eventBridgeBusName! }) };
    if (o.eventBridgeBusName !== undefined) {
      if (given.busName !== undefined && given.busName !== o.eventBridgeBusName) throw bad('eventBridgeBusName and eventBridge.busName differ');
      eventBridge.busName = o.eventBridgeBusName;
    }
    if (o.awsRegion !== undefined) {
      if (given.region !== undefined && given.region !== o.awsRegion) throw bad('awsRegion and eventBridge.region differ');
      eventBridge.region = o.awsRegion;
    }
  }
  if (eventBridge !== undefined && (typeof eventBridge !== 'object' || typeof eventBridge.busName !== 'string' || !eventBridge.busName)) {
    throw bad('eventBridge.busName must be a non-empty string');
  }
  let webSocket = o.webSocket !== undefined && !isServer(o.webSocket) ? (knownOptions(o.webSocket, WEB_SOCKET_KNOWN) as ProgressWebSocketServerOptions) : o.webSocket;
  if (o.enableWebSocket !== undefined && typeof o.enableWebSocket !== 'boolean') throw bad('enableWebSocket must be true or false');
  if (o.webSocketPort !== undefined && (!Number.isInteger(o.webSocketPort) || o.webSocketPort < 0 || o.webSocketPort > 65535)) {
    throw bad(`webSocketPort must be a port number (0 picks a free one), got ${describeValue(o.webSocketPort)}`);
  }
  if (o.enableWebSocket === false && webSocket !== undefined) throw bad('enableWebSocket is false but webSocket is given');
  if (o.enableWebSocket || (o.webSocketPort !== undefined && o.enableWebSocket !== false)) {
    if (webSocket && isServer(webSocket)) {
      if (o.webSocketPort !== undefined) throw bad('webSocketPort cannot apply to a shared server');
    } else {
      const port = (webSocket as ProgressWebSocketServerOptions | undefined)?.port;
      if (port !== undefined && o.webSocketPort !== undefined && port !== o.webSocketPort) throw bad('webSocketPort and webSocket.port differ');
      webSocket = { ...(webSocket ?? {}), port: port ?? o.webSocketPort ?? 8765 };
    }
  }
  let callbacks = o.callbacks;
  if (callbacks !== undefined && !isPlainOptions(callbacks)) throw bad(`callbacks must be an object such as { maxQueueSize, dropPolicy, onError }, got ${describeValue(callbacks)}`);
  if (callbacks !== undefined && isSink(callbacks)) {
    throw bad('callbacks takes the options of the CallbackManager the tracker makes ({ timeoutMs, maxQueueSize, dropPolicy, onError, logger }); a manager of your own goes in sinks: [manager] (and is yours to close)');
  }
  if (callbacks !== undefined) {
    assertKnownKeys(callbacks, CALLBACKS_KNOWN, 'callbacks.');
    callbacks = knownOptions(callbacks, CALLBACKS_KNOWN) as CallbacksOption;
  }
  if (o.callbackTimeoutMs !== undefined) {
    if (callbacks?.timeoutMs !== undefined && callbacks.timeoutMs !== o.callbackTimeoutMs) throw bad('callbackTimeoutMs and callbacks.timeoutMs differ');
    callbacks = { ...callbacks, timeoutMs: o.callbackTimeoutMs };
  }
  if (o.sinks !== undefined && !Array.isArray(o.sinks)) throw bad('sinks must be an array');
  return {
    upgradeId: o.upgradeId,
    planId: o.planId,
    clusterName: o.clusterName,
    ...(o.metadata !== undefined ? { metadata: o.metadata } : {}),
    storage: storage ?? 'memory',
    ...(eventBridge !== undefined ? { eventBridge } : {}),
    ...(webSocket !== undefined ? { webSocket } : {}),
    sinks: o.sinks ?? [],
    ...(callbacks !== undefined ? { callbacks } : {}),
    ...(o.logger !== undefined ? { logger: o.logger } : {}),
    ...(o.now !== undefined ? { now: o.now } : {}),
    ...(o.sinkFlushTimeoutMs !== undefined ? { sinkFlushTimeoutMs: o.sinkFlushTimeoutMs } : {}),
    ...(o.storeTimeoutMs !== undefined ? { storeTimeoutMs: o.storeTimeoutMs } : {}),
  };
}

/** True for a ready sink (a notifier of one's own) rather than options. */
function isSink(value: object): boolean {
  // Asked with `in` first: a strict settings object throws when read for a name it does not hold.
  if (!('handle' in value) || !('flush' in value)) return false;
  const record = value as Record<string, unknown>;
  return typeof record.handle === 'function' && typeof record.flush === 'function';
}

/** True for a ready server rather than its options. */
export function isServer(value: unknown): value is ProgressWebSocketServer {
  return !!value && typeof value === 'object' && 'track' in value && 'start' in value && typeof (value as { track?: unknown }).track === 'function' && typeof (value as { start?: unknown }).start === 'function';
}
