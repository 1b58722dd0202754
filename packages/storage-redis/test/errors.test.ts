import { ProgressError } from '@progress/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isNoAnswer, scrubbingLogger, unavailable, withTimeout } from '../src/errors.js';

const never = (): Promise<never> => new Promise<never>(() => {});

describe('unavailable', () => {
  it('passes a ProgressError through, and tells Redis down from a refusal no retry mends', () => {
    const conflict = new ProgressError('CONFLICT', 'seq taken');
    expect(unavailable('append', conflict)).toBe(conflict);
    expect(unavailable('append', new Error('connect ECONNREFUSED 127.0.0.1:6379'))).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(unavailable('append', new Error('WRONGTYPE Operation against a key holding the wrong kind of value'))).toMatchObject({ code: 'DATA_CORRUPTED' });
    expect(unavailable('append', new Error('Connection in subscriber mode, only subscriber commands may be used'))).toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it("counts a client's own commandTimeout as no answer, as the store's", () => {
    expect(isNoAnswer(unavailable('read', new Error('Command timed out')))).toBe(true);
    expect(isNoAnswer(unavailable('read', new Error('connect ECONNREFUSED 127.0.0.1:6379')))).toBe(false);
  });
});

describe('scrubbingLogger', () => {
  it("masks the credentials of the err it is handed before its logger sees it", () => {
    const seen: unknown[] = [];
    const record = (obj: object): void => {
      seen.push(JSON.parse(JSON.stringify((obj as { err: { command: unknown } }).err.command)));
    };
    const logger = scrubbingLogger({ debug: record, info: record, warn: record, error: record });
    const err = Object.assign(new Error('WRONGPASS'), { command: { name: 'auth', args: ['user', 'S3cret'] } });
    logger.warn({ err }, 'connection error');
    expect(seen).toEqual([{ name: 'auth', args: ['***', '***'] }]);
  });
});

describe('withTimeout', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('rejects with STORE_UNAVAILABLE, reason timeout, when there is no answer in time', async () => {
    const err = await withTimeout(never(), 1, 'read', { upgradeId: 'u1' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { upgradeId: 'u1', reason: 'timeout' } });
    expect(isNoAnswer(err)).toBe(true);
  });

  it('rejects with CLOSED, its timer cleared, when stopped first or already', async () => {
    vi.useFakeTimers();
    const stop = new AbortController();
    const waiting = withTimeout(never(), 60_000, 'read', {}, stop.signal);
    stop.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'CLOSED' });
    expect(vi.getTimerCount()).toBe(0);
    await expect(withTimeout(never(), 60_000, 'read', {}, stop.signal)).rejects.toMatchObject({ code: 'CLOSED' });
    expect(vi.getTimerCount()).toBe(0);
  });
});
