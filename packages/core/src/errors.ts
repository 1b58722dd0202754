/**
 * The stable codes of {@link ProgressError}. Match on `error.code`, never on the message.
 *
 * - `INVALID_ARGUMENT`: an id, percentage, option or message that does not fit.
 * - `TASK_NOT_FOUND`: a command names a task the upgrade does not have.
 * - `DUPLICATE_TASK`: `addTask` with an id that is already taken.
 * - `INVALID_TRANSITION`: a command not allowed in the current status (see DESIGN section 3).
 * - `CONFLICT`: another writer holds the upgrade, or the stored seq moved under us.
 * - `STORE_UNAVAILABLE`: the store could not make an event durable; the event is not acknowledged
 *   (it may still turn out stored, when the store lost only its answer: see `ProgressTracker`).
 * - `DATA_CORRUPTED`: stored data is damaged; the message names the file or key and the record.
 * - `NOT_FOUND`: an upgrade or other resource that does not exist.
 * - `CLOSED`: the tracker, store or sink was closed.
 * - `INVALID_MESSAGE`, `FORBIDDEN`, `RATE_LIMITED`: the WebSocket protocol's own.
 */
export const ErrorCode = {
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  TASK_NOT_FOUND: 'TASK_NOT_FOUND',
  DUPLICATE_TASK: 'DUPLICATE_TASK',
  INVALID_TRANSITION: 'INVALID_TRANSITION',
  CONFLICT: 'CONFLICT',
  STORE_UNAVAILABLE: 'STORE_UNAVAILABLE',
  DATA_CORRUPTED: 'DATA_CORRUPTED',
  NOT_FOUND: 'NOT_FOUND',
  CLOSED: 'CLOSED',
  INVALID_MESSAGE: 'INVALID_MESSAGE',
  FORBIDDEN: 'FORBIDDEN',
  RATE_LIMITED: 'RATE_LIMITED',
} as const;

/** One of the values of {@link ErrorCode}. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Context carried by a {@link ProgressError}, for logs and for programs that react to it. */
export interface ProgressErrorContext {
  /** The upgrade concerned, when there is one. */
  upgradeId?: string;
  /** The task concerned, when there is one. */
  taskId?: string;
  /** Anything else worth knowing: the file and line, the expected and found seq, ... */
  [key: string]: unknown;
}

/**
 * The one error class of the @progress packages. Every failure a caller can act on is a
 * `ProgressError` with a stable {@link ErrorCode} in `code`, the underlying error in `cause` and
 * context (`upgradeId`, `taskId`, file, line ...) in `context`.
 *
 * @example
 * try { await tracker.startTask('t1'); }
 * catch (err) { if (isProgressError(err, 'TASK_NOT_FOUND')) { ... } }
 */
export class ProgressError extends Error {
  override readonly name = 'ProgressError';
  /** The stable code: see {@link ErrorCode}. */
  readonly code: ErrorCode;
  /** What the error concerns. */
  readonly context: ProgressErrorContext;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; context?: ProgressErrorContext } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.context = options.context ?? {};
  }

  /**
   * A plain object for JSON logs and wire protocols. A context value JSON cannot write (the bad
   * input itself: a circular object, a BigInt) is given by its kind, so that `JSON.stringify(err)`
   * (an HTTP handler's `res.json({ error })`, a log line) never throws.
   */
  toJSON(): { name: string; code: ErrorCode; message: string; context: ProgressErrorContext } {
    return { name: this.name, code: this.code, message: this.message, context: jsonSafe(this.context) };
  }
}

/** `context` with each value JSON cannot write replaced by a description of it (the same object when there is none). */
function jsonSafe(context: ProgressErrorContext): ProgressErrorContext {
  let out: ProgressErrorContext | undefined;
  for (const key of Object.keys(context)) {
    const value = context[key];
    try {
      JSON.stringify(value);
      continue;
    } catch {
      // Described below.
    }
    out ??= { ...context };
    out[key] = `(${typeof value === 'object' && value !== null ? 'an object' : `a ${typeof value}`} that JSON cannot hold)`;
  }
  return out ?? context;
}

/**
 * True when `err` is a {@link ProgressError} (with the given code, when one is given). Works across
 * copies of the package (it checks the shape, not only `instanceof`).
 */
export function isProgressError(err: unknown, code?: ErrorCode): err is ProgressError {
  if (!(err instanceof Error) || err.name !== 'ProgressError') return false;
  const found = (err as { code?: unknown }).code;
  return typeof found === 'string' && (code === undefined || found === code);
}
