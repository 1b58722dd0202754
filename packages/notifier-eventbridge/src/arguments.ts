import { ProgressError, describeValue } from '@progress/core';

// The checks of the exported building blocks' arguments (formatTimedelta, buildDetail, fitDetail,
// entrySize, backoffDelay ...): from JavaScript they can be handed anything, which is refused as
// INVALID_ARGUMENT naming the function, not as a TypeError from somewhere inside it.

/** `[@progress/notifier-eventbridge] <fn>() needs <needs>, got <value>`. */
export function badArgument(fn: string, needs: string, value: unknown): ProgressError {
  return new ProgressError('INVALID_ARGUMENT', `[@progress/notifier-eventbridge] ${fn}() needs ${needs}, got ${describeValue(value)}`);
}

/** Checks an event type argument: a string (a type of our own or any other). */
export function assertTypeArg(fn: string, type: unknown): asserts type is string {
  if (typeof type !== 'string') throw badArgument(fn, 'an event type', type);
}

/** Checks a detail argument: an object (not an array). */
export function assertObjectArg(fn: string, what: string, value: unknown): asserts value is object {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw badArgument(fn, what, value);
}

/** Checks a number argument: not NaN, at least `min`. */
export function assertNumberArg(fn: string, what: string, value: unknown, min: number): asserts value is number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < min) throw badArgument(fn, what, value);
}
