import type { EventBridgeClient, EventBridgeClientConfig } from '@aws-sdk/client-eventbridge';
import { EVENT_TYPES, MAX_TIMER_MS, ProgressError, assertKnownOptions, describeValue, isLogger, isProgressError, type EventType, type Logger } from '@progress/core';
import { DEFAULT_EVENT_TYPES } from './event-mapping.js';
import { DEFAULT_RETRY, type ResolvedRetryOptions, type RetryOptions } from './retry-policy.js';

/** Which end of a full queue loses an event. */
export type DropPolicy = 'drop-oldest' | 'drop-newest';

/** An event that was not delivered, named well enough to find it in the store. */
export interface UndeliveredEvent {
  eventId: string;
  upgradeId: string;
  seq: number;
  type: EventType;
}

/** Why events were given up on. */
export type DeliveryFailureReason = 'rejected' | 'retries_exhausted' | 'too_large' | 'dropped' | 'closed';

/** What `onError` hears: events given up on, and why. */
export interface DeliveryFailure {
  reason: DeliveryFailureReason;
  /** The AWS `ErrorCode` of the entry, or the error name / network code of the request. */
  errorCode?: string;
  errorMessage?: string;
  events: UndeliveredEvent[];
}

/** Options of {@link EventBridgeNotifier}. */
export interface EventBridgeNotifierOptions {
  /** The event bus (name or ARN): `EventBusName` of every entry. */
  busName: string;
  /** `Source` of every entry. @default 'eks-upgrade-agent' */
  source?: string;
  /** A ready client (shared; not destroyed by `close()`). Its own retries add to ours. */
  client?: EventBridgeClient;
  /** Region of the client the notifier creates when no `client` is given. */
  region?: string;
  /**
   * More configuration of the client the notifier creates. Its `maxAttempts` defaults to 1, so
   * that the notifier's own retries (per entry, with jitter) are the only ones.
   */
  clientConfig?: EventBridgeClientConfig;
  /** Which event types are sent. @default {@link DEFAULT_EVENT_TYPES} (not task.progress, upgrade.created, task.added) */
  eventTypes?: Iterable<EventType>;
  /** Entries per PutEvents request, 1..10. @default 10 */
  maxBatchEntries?: number;
  /** Bytes per request as AWS counts them. @default 262144 (256 KB) */
  maxBatchBytes?: number;
  /**
   * How long a partial batch may wait for more entries (while a request is in flight, or within
   * lingerMs of the last request). A lone event after a quiet spell goes at once. @default 5
   */
  lingerMs?: number;
  /** PutEvents requests in flight at once, 1..64. @default 4 */
  maxConcurrentRequests?: number;
  /** Entries waiting to be sent (retries included) before the drop policy applies. @default 10000 */
  maxQueue?: number;
  /** Which entry a full queue drops. @default 'drop-oldest' */
  dropPolicy?: DropPolicy;
  /** Backoff and retry limits. */
  retry?: RetryOptions;
  /** A request is aborted (and retried) after this long. @default 10000 */
  requestTimeoutMs?: number;
  /** Default timeout of `flush()` and the bound of `close()`. @default 10000 */
  flushTimeoutMs?: number;
  /** A pino-compatible logger. @default silent */
  logger?: Logger;
  /** Hears every event given up on (rejected, retries exhausted, too large, dropped, closed). */
  onError?: (failure: DeliveryFailure) => void;
}

/** The options with every default applied. */
export interface ResolvedOptions {
  busName: string;
  source: string;
  eventTypes: ReadonlySet<EventType>;
  maxBatchEntries: number;
  maxBatchBytes: number;
  lingerMs: number;
  maxConcurrentRequests: number;
  maxQueue: number;
  dropPolicy: DropPolicy;
  retry: ResolvedRetryOptions;
  requestTimeoutMs: number;
  flushTimeoutMs: number;
  /** A copy of `clientConfig` (`{}` when none), for the client the notifier creates. */
  clientConfig: EventBridgeClientConfig;
}

const PKG_NAME = '@progress/notifier-eventbridge';
const PKG = `[${PKG_NAME}]`;

function invalid(message: string): ProgressError {
  return new ProgressError('INVALID_ARGUMENT', `${PKG} ${message}`);
}

// Objects checked against the interfaces, so that a new option cannot be left out of these lists.
const OPTION_NAMES = Object.keys({
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
} satisfies Record<keyof EventBridgeNotifierOptions, 0>);
const RETRY_NAMES = Object.keys({ maxAttempts: 0, baseDelayMs: 0, maxDelayMs: 0, retryableEntryCodes: 0 } satisfies Record<keyof RetryOptions, 0>);

/**
 * A region the SDK takes: a host name label, which it signs for and puts in the endpoint's host
 * (`isValidHostLabel` of `@smithy/core`; FIPS spellings such as `fips-us-east-1` match too). The SDK
 * refuses any other only when a request is made, with a plain Error that has no HTTP status: the
 * notifier would retry it as a network error, and give every event up after its attempts.
 */
export const REGION = /^(?!-)(?!.*-$)[a-zA-Z0-9-]{1,63}$/;

/** The SDK's name of the bus (`EventBusName`, an `eventBusName`) is `busName` here. */
const sdkName = (key: string): string | undefined => (/bus/i.test(key) ? 'busName' : undefined);

function int(value: unknown, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${name} must be an integer in ${min}..${max === Number.MAX_SAFE_INTEGER ? 'inf' : max}, not ${describeValue(value)}`);
  }
  return value;
}

/** Validates the options and applies the defaults. Throws `INVALID_ARGUMENT`. */
export function resolveOptions(options: EventBridgeNotifierOptions): ResolvedOptions {
  try {
    return resolve(options);
  } catch (err) {
    // Every check here is a ProgressError; anything else is a getter or Proxy trap of a nested
    // option (eventTypes, clientConfig) that threw while it was read.
    if (isProgressError(err)) throw err;
    throw new ProgressError('INVALID_ARGUMENT', `${PKG} the options could not be read: ${(err as Error)?.message ?? describeValue(err)}`, { cause: err });
  }
}

function resolve(options: EventBridgeNotifierOptions): ResolvedOptions {
  if (!options || typeof options !== 'object') throw invalid('EventBridgeNotifier needs an options object');
  // A misspelt `maxBatchByte` or `retry.maxAttempt` was left out without a word: the notifier ran on
  // the default the user meant to change. `clientConfig` and `client` belong to the AWS SDK: unchecked.
  assertKnownOptions(options, OPTION_NAMES, { source: PKG_NAME, hint: sdkName });
  if (typeof options.busName !== 'string' || options.busName.length === 0 || options.busName.length > 1600) throw invalid('busName must be a non-empty string');
  const source = options.source ?? 'eks-upgrade-agent';
  if (typeof source !== 'string' || source.length === 0 || source.length > 256) throw invalid('source must be a string of 1..256 characters');
  if (options.region !== undefined && (typeof options.region !== 'string' || !REGION.test(options.region))) {
    throw invalid(`region must be a region name such as 'eu-west-1', got ${describeValue(options.region)}`);
  }
  // Spread into the SDK client's settings: a string's characters or a number's nothing left the
  // settings meant (an endpoint, credentials) out without a word.
  if (options.clientConfig !== undefined && (options.clientConfig === null || typeof options.clientConfig !== 'object' || Array.isArray(options.clientConfig))) {
    throw invalid(`clientConfig must be an object of EventBridgeClient settings, got ${describeValue(options.clientConfig)}`);
  }
  // The SDK's own option: a string, or a provider function (which the SDK calls).
  const configRegion: unknown = options.clientConfig?.region;
  if (configRegion !== undefined && typeof configRegion !== 'function' && (typeof configRegion !== 'string' || !REGION.test(configRegion))) {
    throw invalid(`clientConfig.region must be a region name such as 'eu-west-1' or a provider function, got ${describeValue(configRegion)}`);
  }
  // With no region given and none in the environment, the SDK looks for one itself: in the profile
  // of the shared config files (what `aws configure` writes), then in the EC2 instance metadata. It
  // cannot be known here, synchronously: the notifier learns it when it is made (see
  // `EventBridgeNotifier.ready()`). Refusing it here refused a machine set up as the AWS CLI and boto3
  // (the old Python module) take it.
  if (options.client === undefined && options.region === undefined && options.clientConfig?.region === undefined) {
    const fromEnvironment = environmentRegion();
    if (fromEnvironment !== undefined && !REGION.test(fromEnvironment)) throw invalid(`the region in the environment (AWS_REGION, else AWS_DEFAULT_REGION) must be a region name such as 'eu-west-1', got ${JSON.stringify(fromEnvironment)}`);
  }
  // null is an object to typeof: checked first, else reading its `send` threw a TypeError.
  if (options.client !== undefined && (options.client === null || typeof options.client !== 'object' || typeof options.client.send !== 'function')) throw invalid('client must be an EventBridgeClient');
  if (options.logger !== undefined && !isLogger(options.logger)) throw invalid('logger must have debug, info, warn and error methods');
  if (options.onError !== undefined && typeof options.onError !== 'function') throw invalid('onError must be a function');
  const types: unknown = options.eventTypes ?? DEFAULT_EVENT_TYPES;
  if (typeof types !== 'object' || types === null || typeof (types as Partial<Iterable<unknown>>)[Symbol.iterator] !== 'function') throw invalid('eventTypes must be an array (or another iterable) of event types');
  const known = new Set<string>(EVENT_TYPES);
  const eventTypes = new Set<EventType>();
  for (const type of types as Iterable<EventType>) {
    if (!known.has(type)) throw invalid(`unknown event type ${describeValue(type)} in eventTypes`);
    eventTypes.add(type);
  }
  const dropPolicy = options.dropPolicy ?? 'drop-oldest';
  if (dropPolicy !== 'drop-oldest' && dropPolicy !== 'drop-newest') throw invalid(`dropPolicy must be 'drop-oldest' or 'drop-newest', not ${describeValue(dropPolicy)}`);
  const r = options.retry ?? {};
  if (typeof r !== 'object' || Array.isArray(r)) throw invalid(`retry must be an object ({ maxAttempts, baseDelayMs, maxDelayMs, retryableEntryCodes }), got ${describeValue(r)}`);
  assertKnownOptions(r, RETRY_NAMES, { source: PKG_NAME, where: 'retry.' });
  const codes = r.retryableEntryCodes ?? DEFAULT_RETRY.retryableEntryCodes;
  if (!Array.isArray(codes) || codes.some((c) => typeof c !== 'string')) throw invalid('retry.retryableEntryCodes must be an array of strings');
  const retry: ResolvedRetryOptions = {
    maxAttempts: int(r.maxAttempts, 'retry.maxAttempts', DEFAULT_RETRY.maxAttempts, 1),
    baseDelayMs: int(r.baseDelayMs, 'retry.baseDelayMs', DEFAULT_RETRY.baseDelayMs, 0, MAX_TIMER_MS),
    maxDelayMs: int(r.maxDelayMs, 'retry.maxDelayMs', DEFAULT_RETRY.maxDelayMs, 0, MAX_TIMER_MS),
    retryableEntryCodes: [...codes],
  };
  // Copied here, so that a getter that throws is refused as bad input; last, so that nothing is read
  // of it when another option is refused.
  const clientConfig: EventBridgeClientConfig = { ...options.clientConfig };
  return {
    busName: options.busName,
    source,
    eventTypes,
    maxBatchEntries: int(options.maxBatchEntries, 'maxBatchEntries', 10, 1, 10),
    maxBatchBytes: int(options.maxBatchBytes, 'maxBatchBytes', 256 * 1024, 256, 1024 * 1024),
    lingerMs: int(options.lingerMs, 'lingerMs', 5, 0, MAX_TIMER_MS),
    maxConcurrentRequests: int(options.maxConcurrentRequests, 'maxConcurrentRequests', 4, 1, 64),
    maxQueue: int(options.maxQueue, 'maxQueue', 10_000, 1),
    dropPolicy,
    retry,
    requestTimeoutMs: int(options.requestTimeoutMs, 'requestTimeoutMs', 10_000, 1, MAX_TIMER_MS),
    flushTimeoutMs: int(options.flushTimeoutMs, 'flushTimeoutMs', 10_000, 0, MAX_TIMER_MS),
    clientConfig,
  };
}

/** The region the environment names (`AWS_REGION`, else `AWS_DEFAULT_REGION`), as the AWS CLI and SDKs read it. */
export function environmentRegion(): string | undefined {
  return process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || undefined;
}
