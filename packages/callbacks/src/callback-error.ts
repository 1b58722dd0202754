import type { CallbackFailureReason } from './types.js';

/**
 * The error handed to `onError` (and logged) when a callback did not fail by itself but was given
 * up on (`reason: 'timeout'`) or missed an event (`reason: 'dropped'`). A callback that throws or
 * rejects is reported with its own error instead.
 */
export class CallbackError extends Error {
  override readonly name = 'CallbackError';
  /** `timeout` or `dropped`. */
  readonly reason: Extract<CallbackFailureReason, 'timeout' | 'dropped'>;

  constructor(reason: Extract<CallbackFailureReason, 'timeout' | 'dropped'>, message: string) {
    super(message);
    this.reason = reason;
  }
}
