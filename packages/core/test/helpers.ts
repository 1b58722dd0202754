import { expect } from 'vitest';
import { isProgressError, type ErrorCode } from '../src/index.js';

/** Asserts that `fn` throws or rejects with a ProgressError of `code`. */
export async function expectCode(fn: () => unknown, code: ErrorCode): Promise<void> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected a ProgressError ${code}`).toBeDefined();
  expect(isProgressError(caught), String(caught)).toBe(true);
  expect((caught as { code: string }).code).toBe(code);
}

/** A clock for tests: starts at a fixed instant, moves only when told. */
export function manualClock(start = Date.parse('2026-03-01T10:00:00.000Z')) {
  let now = start;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}
