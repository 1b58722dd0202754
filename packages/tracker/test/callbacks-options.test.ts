import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isProgressError } from '@progress/core';
import { CallbackManager, createProgressTracker, type CallbackErrorInfo } from '../src/index.js';
import { resolveOptions } from '../src/options.js';

const base = { upgradeId: 'u1', planId: 'p1', clusterName: 'c1' };

async function refusal(options: object): Promise<unknown> {
  try {
    const t = await createProgressTracker({ ...base, ...options } as never);
    await t.close();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe('createProgressTracker: the callbacks option (the CallbackManager it makes)', () => {
  it("passes maxQueueSize, dropPolicy and onError to the CallbackManager: a full queue drops and says so to the tracker's onError", async () => {
    const reported: Array<[string, number]> = [];
    const t = await createProgressTracker({
      ...base,
      callbacks: { timeoutMs: 600_000, maxQueueSize: 2, dropPolicy: 'newest', onError: (_err: unknown, info: CallbackErrorInfo) => void reported.push([info.reason, info.event.seq]) },
    });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const seen: number[] = [];
    t.addEventCallback(async (e) => {
      if (seen.length === 0) await gate;
      seen.push(e.seq);
    });
    // seq 1 (upgrade.created) is before the callback; seq 2 hangs, 3 and 4 wait, 5 and 6 are dropped.
    await t.startUpgrade();
    await t.addTask('a', 'A');
    await t.addTask('b', 'B');
    await t.addTask('c', 'C');
    await t.addTask('d', 'D');
    expect(t.callbacks.getStats()).toMatchObject({ dropped: 2, pending: 3 });
    expect(reported).toEqual([
      ['dropped', 5],
      ['dropped', 6],
    ]);
    release();
    await t.close();
    expect(seen).toEqual([2, 3, 4]);
  });

  it("passes callbacks.logger to the CallbackManager: a callback's failure is logged there, not on the tracker's logger", async () => {
    const recorder = (into: string[]) => ({ debug() {}, info() {}, warn: (_obj: object, msg?: string) => void into.push(msg ?? ''), error: (_obj: object, msg?: string) => void into.push(msg ?? '') });
    const trackerLog: string[] = [];
    const callbackLog: string[] = [];
    const t = await createProgressTracker({ ...base, logger: recorder(trackerLog), callbacks: { logger: recorder(callbackLog) } });
    t.addEventCallback(() => {
      throw new Error('boom');
    });
    await t.startUpgrade();
    await t.close();
    expect(callbackLog).toContain('callback threw');
    expect(trackerLog).not.toContain('callback threw');
  });

  it('takes callbackTimeoutMs as callbacks.timeoutMs; both with different values, an unknown key, or a manager of ones own are INVALID_ARGUMENT', () => {
    expect(resolveOptions({ ...base, callbackTimeoutMs: 100 }).callbacks).toEqual({ timeoutMs: 100 });
    expect(resolveOptions({ ...base, callbacks: { timeoutMs: 100 }, callbackTimeoutMs: 100 }).callbacks).toEqual({ timeoutMs: 100 });
    expect(resolveOptions({ ...base, callbacks: { maxQueueSize: 5, dropPolicy: 'newest' } }).callbacks).toEqual({ maxQueueSize: 5, dropPolicy: 'newest' });
    const cases: Array<[object, string]> = [
      [{ callbacks: { timeoutMs: 100 }, callbackTimeoutMs: 200 }, 'callbackTimeoutMs and callbacks.timeoutMs differ'],
      [{ callbacks: { maxQueSize: 5 } }, 'unknown option "callbacks.maxQueSize" (did you mean "callbacks.maxQueueSize"?)'],
      [{ callbacks: { onErorr: () => {} } }, 'unknown option "callbacks.onErorr" (did you mean "callbacks.onError"?)'],
      [{ callbacks: 5 }, 'callbacks must be an object such as { maxQueueSize, dropPolicy, onError }, got 5'],
      [{ callbacks: new CallbackManager() }, 'callbacks takes the options of the CallbackManager the tracker makes'],
    ];
    for (const [options, message] of cases) {
      expect(() => resolveOptions({ ...base, ...options } as never), message).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(message) }));
    }
  });

  it('refuses a bad value (the CallbackManager checks it) before any store is made', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cb-options-'));
    try {
      for (const callbacks of [{ maxQueueSize: 0 }, { maxQueueSize: 1.5 }, { dropPolicy: 'middle' }, { onError: 'log' }, { timeoutMs: -1 }]) {
        const err = await refusal({ storage: { json: dir }, callbacks });
        expect(isProgressError(err, 'INVALID_ARGUMENT'), `${JSON.stringify(callbacks)}: ${String(err)}`).toBe(true);
      }
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
