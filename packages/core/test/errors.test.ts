import { describe, expect, it } from 'vitest';
import { ProgressError, isProgressError } from '../src/index.js';

describe('isProgressError', () => {
  it('tells a ProgressError by its shape, also one from another copy of the package, and matches the code when given', () => {
    const err = new ProgressError('NOT_FOUND', 'gone');
    expect([isProgressError(err), isProgressError(err, 'NOT_FOUND'), isProgressError(err, 'CONFLICT')]).toEqual([true, true, false]);
    // Another copy's class: not this one's instance, the same name and code.
    const copy = Object.assign(new Error('gone'), { name: 'ProgressError', code: 'NOT_FOUND' });
    expect(isProgressError(copy, 'NOT_FOUND')).toBe(true);
  });

  it('is false for a Node system error (it has a string code too), a plain object of the shape, and a code that is not a string', () => {
    const enoent = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
    expect(isProgressError(enoent)).toBe(false);
    expect(isProgressError({ name: 'ProgressError', code: 'NOT_FOUND', message: 'gone' })).toBe(false);
    expect(isProgressError(Object.assign(new Error('x'), { name: 'ProgressError', code: 7 }))).toBe(false);
  });
});

describe('ProgressError', () => {
  it('has no cause unless one is given, and an empty context by default', () => {
    const err = new ProgressError('CLOSED', 'closed');
    expect('cause' in err).toBe(false);
    expect(err.context).toEqual({});
    expect(JSON.parse(JSON.stringify(err))).toEqual({ name: 'ProgressError', code: 'CLOSED', message: 'closed', context: {} });
    const cause = new Error('below');
    expect(new ProgressError('CLOSED', 'closed', { cause }).cause).toBe(cause);
  });

  it('writes as JSON a context value JSON cannot hold by its kind, keeps the others, and leaves the context itself alone', () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const context = { upgradeId: 'u1', seq: 3, circular, big: 10n };
    const err = new ProgressError('INVALID_ARGUMENT', 'bad', { context });
    expect(JSON.parse(JSON.stringify(err)).context).toEqual({
      upgradeId: 'u1',
      seq: 3,
      circular: '(an object that JSON cannot hold)',
      big: '(a bigint that JSON cannot hold)',
    });
    expect(err.context.circular).toBe(circular);
    expect(err.context.big).toBe(10n);
  });
});
