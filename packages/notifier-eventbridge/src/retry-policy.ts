import { assertNumberArg, assertObjectArg, badArgument } from './arguments.js';

/** How failed entries and requests are retried. */
export interface RetryOptions {
  /** Attempts per entry, the first one included; then the entry is given up on. @default 8 */
  maxAttempts?: number;
  /** Base of the exponential backoff. @default 100 */
  baseDelayMs?: number;
  /** Cap of the exponential backoff. @default 20_000 */
  maxDelayMs?: number;
  /** Per-entry `ErrorCode`s that are retried. @default ['ThrottlingException', 'InternalFailure'] */
  retryableEntryCodes?: readonly string[];
}

/** {@link RetryOptions} with every default applied. */
export type ResolvedRetryOptions = Required<RetryOptions>;

/** The defaults of {@link RetryOptions}. */
export const DEFAULT_RETRY: Readonly<ResolvedRetryOptions> = Object.freeze({
  maxAttempts: 8,
  baseDelayMs: 100,
  maxDelayMs: 20_000,
  retryableEntryCodes: Object.freeze(['ThrottlingException', 'InternalFailure']),
});

/**
 * Exponential backoff with full jitter: a random delay in `[0, min(maxDelayMs, baseDelayMs * 2^(n-1))]`
 * after the n-th failed attempt.
 */
export function backoffDelay(failedAttempts: number, retry: Pick<ResolvedRetryOptions, 'baseDelayMs' | 'maxDelayMs'>, random: () => number = Math.random): number {
  assertNumberArg('backoffDelay', 'a number of failed attempts', failedAttempts, -Infinity);
  assertObjectArg('backoffDelay', 'the retry options ({ baseDelayMs, maxDelayMs })', retry);
  assertNumberArg('backoffDelay', 'a baseDelayMs >= 0', retry.baseDelayMs, 0);
  assertNumberArg('backoffDelay', 'a maxDelayMs >= 0', retry.maxDelayMs, 0);
  if (typeof random !== 'function') throw badArgument('backoffDelay', 'a random function', random);
  const exp = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** Math.max(0, Math.min(failedAttempts - 1, 30)));
  return Math.floor(random() * exp);
}

/**
 * Error names retried as throttling or transient: those the AWS SDK's own retry strategy treats so
 * (`THROTTLING_ERROR_CODES` and `TRANSIENT_ERROR_CODES` of `@smithy/service-error-classification`,
 * whatever the HTTP status they come with), plus the server-side failures of EventBridge's JSON.
 */
const RETRYABLE_NAMES = new Set([
  // Throttling, as the SDK names it.
  'BandwidthLimitExceeded',
  'EC2ThrottledException',
  'LimitExceededException',
  'PriorRequestNotComplete',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'ThrottledException',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'TransactionInProgressException',
  // Transient, as the SDK names it: a server that timed out reading the request.
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
  // Server-side failures (usually with a 5xx, retried under any status).
  'InternalFailure',
  'InternalException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
]);

/** The least clock correction that says a request was signed with a skewed time (the SDK's own threshold). */
const CLOCK_SKEW_CORRECTION_MS = 240_000;

/** What we know of a failed PutEvents request. */
export interface RequestErrorInfo {
  retryable: boolean;
  /** The AWS error name, or the network error code (`ECONNRESET`; also for an answer cut off after a 2xx status). */
  code: string;
  message: string;
  status: number | undefined;
}

/**
 * Classifies an error thrown by `client.send()`. Retryable: throttling and transient errors (by the
 * names the AWS SDK's retry strategy knows), 5xx, 429, network errors (no HTTP status: refused,
 * reset, timed out, aborted), an answer cut off or unreadable after a 2xx status, an error the
 * SDK marks retryable (`$retryable`, the Smithy `@retryable` trait of a modeled error), and one
 * after which the SDK corrected its clock skew (`$metadata.clockSkewCorrected`: the next request
 * is signed with the corrected time). Any other answer (4xx: access denied, unknown bus,
 * validation) is not.
 *
 * @param clockCorrectionMs How far the client's clock offset (`config.systemClockOffset`) moved
 *   between the request's signing and its error, when known. The SDK re-measures the offset from
 *   the `Date` header of every error, to the millisecond against a header to the second, and sets
 *   `clockSkewCorrected` whenever the offset is 4 min or more and moved at all: on a host whose clock
 *   is off by minutes, every error (an unknown bus, access denied) has the flag. With this argument the
 *   correction itself decides, flagged or not: of minutes, the request was signed with a time the
 *   server could refuse, and the next one is not. (The SDK flags none that lands on an offset under
 *   4 min: the correction back of a host clock put right after the SDK had learnt its offset.)
 */
export function classifyRequestError(err: unknown, clockCorrectionMs?: number): RequestErrorInfo {
  if (clockCorrectionMs !== undefined) assertNumberArg('classifyRequestError', 'a clock correction in ms', clockCorrectionMs, -Infinity);
  const e = (err ?? {}) as { name?: unknown; code?: unknown; message?: unknown; $metadata?: { httpStatusCode?: unknown; clockSkewCorrected?: unknown }; $retryable?: unknown };
  const status = typeof e.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined;
  const name = typeof e.name === 'string' ? e.name : 'Error';
  // An error with a 2xx status is an answer that could not be read: its body was cut off (a
  // connection reset, or a stall that requestTimeoutMs aborted) or garbled on the way. The SDK marks
  // it with the status it had received. Nothing in it refused the entries, and EventBridge may or
  // may not have taken them: retried, as a network error or a timeout is (at least once). Treated as
  // a 4xx, it gave up every entry of the request as `rejected` after one attempt.
  const cutOff = status !== undefined && status >= 200 && status < 300;
  // The network error's code (ECONNRESET) for an answer cut off too: its name is a plain "Error",
  // which was the errorCode of the entries given up after it.
  const code = typeof e.code === 'string' && (status === undefined || cutOff) ? e.code : name;
  const message = typeof e.message === 'string' ? e.message : String(err);
  // `$retryable` is an own property of every SDK error, undefined unless the error's model is
  // @retryable (then `{}` or `{ throttling: true }`): the SDK's own test is `!== undefined` too.
  // Known, the correction decides alone: the SDK flags one only when the offset it lands on is of
  // minutes, so a host whose clock was put right (an NTP step) after the SDK had learnt its offset
  // got its next request refused for that offset (signed minutes ahead), the offset put back to
  // about 0 unflagged, and the entries given up as `rejected`.
  const skewCorrected = clockCorrectionMs === undefined ? e.$metadata?.clockSkewCorrected === true : Math.abs(clockCorrectionMs) >= CLOCK_SKEW_CORRECTION_MS;
  const retryable = status === undefined || cutOff || status >= 500 || status === 429 || RETRYABLE_NAMES.has(name) || e.$retryable !== undefined || skewCorrected;
  return { retryable, code, message, status };
}
