import { describe, expect, it } from 'vitest';
import { mayReadArgument } from '../src/arity.js';

/* eslint-disable @typescript-eslint/no-unused-vars, prefer-rest-params */
describe('mayReadArgument: whether a callback may read its state argument', () => {
  it('is false only when the source shows it cannot', () => {
    const cannot: Array<(...args: never[]) => unknown> = [
      (event: unknown) => event,
      async (event: unknown) => event,
      () => 1,
      function (event: unknown) {
        return event;
      },
      async function named(event: unknown) {
        return event;
      },
    ];
    for (const fn of cannot) expect(mayReadArgument(fn, 1), String(fn)).toBe(false);
  });

  it('is true for a declared state, a default value, a rest parameter, destructuring, arguments, and what it cannot parse', () => {
    const may: Array<(...args: never[]) => unknown> = [
      (event: unknown, state: unknown) => state,
      (event: unknown, state: unknown = null) => state,
      (...args: unknown[]) => args,
      (event: unknown, { lastSeq }: { lastSeq: number }) => lastSeq,
      (event: { seq: number } = { seq: 0 }) => event,
      function (event: unknown) {
        return arguments[1];
      },
      { method(event: unknown) {
        return event;
      } }.method,
      ((event: unknown) => event).bind(null),
      // A comment in the list (written as plain JavaScript: the test's own source is transpiled).
      new Function('event /* , state */', 'return event') as (...args: never[]) => unknown,
    ];
    for (const fn of may) expect(mayReadArgument(fn, 1), String(fn)).toBe(true);
  });

  it('counts against the index asked for (a status callback reads its third argument)', () => {
    expect(mayReadArgument((task: unknown, event: unknown) => event, 2)).toBe(false);
    expect(mayReadArgument((task: unknown, event: unknown, state: unknown) => state, 2)).toBe(true);
  });
});
