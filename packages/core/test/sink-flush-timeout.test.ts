import { afterEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_SINK_FLUSH_TIMEOUT_MS, ProgressTracker, type ProgressSink } from '../src/index.js';

// A sink whose flush() never settles holds flush() and close() for sinkFlushTimeoutMs (30 s unless
// told otherwise, as the README's options table says), then it is logged and left behind. Fake
// timers: the bound is a number of the clock the test moves, not a wall-clock time.

afterEach(() => {
  vi.useRealTimers();
});

/** A promise's state, read without awaiting it. */
function watch(promise: Promise<unknown>): { settled: boolean } {
  const out = { settled: false };
  void promise.finally(() => void (out.settled = true));
  return out;
}

async function stuckSinkTracker(sinkFlushTimeoutMs?: number) {
  const warnings: Array<{ obj: Record<string, unknown>; msg: string | undefined }> = [];
  const logger = { debug() {}, info() {}, warn: (obj: object, msg?: string) => void warnings.push({ obj: obj as Record<string, unknown>, msg }), error() {} };
  let flushed = 0;
  const stuck: ProgressSink = { name: 'stuck', handle() {}, flush: () => new Promise<void>(() => {}) };
  const good: ProgressSink = { name: 'good', handle() {}, flush: async () => void (flushed += 1) };
  const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', logger, sinks: [stuck, good], ...(sinkFlushTimeoutMs === undefined ? {} : { sinkFlushTimeoutMs }) });
  return { tracker, warnings, flushed: () => flushed };
}

describe('a sink whose flush() never settles', () => {
  it('holds flush() and close() for DEFAULT_SINK_FLUSH_TIMEOUT_MS (30000) by default, then is logged and left behind', async () => {
    expect(DEFAULT_SINK_FLUSH_TIMEOUT_MS).toBe(30_000);
    vi.useFakeTimers();
    const { tracker, warnings, flushed } = await stuckSinkTracker();
    await tracker.startUpgrade();
    const flush = watch(tracker.flush());
    await vi.advanceTimersByTimeAsync(29_999);
    expect(flush.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(flush.settled).toBe(true);
    expect(flushed()).toBe(1);
    expect(warnings).toEqual([{ obj: { upgradeId: 'u1', sink: 'stuck', timeoutMs: 30_000 }, msg: 'sink flush timed out; going on without it' }]);
    const close = watch(tracker.close());
    await vi.advanceTimersByTimeAsync(29_999);
    expect(close.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(close.settled).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('holds them for sinkFlushTimeoutMs when it is given', async () => {
    vi.useFakeTimers();
    const { tracker, warnings } = await stuckSinkTracker(500);
    const flush = watch(tracker.flush());
    await vi.advanceTimersByTimeAsync(499);
    expect(flush.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(flush.settled).toBe(true);
    expect(warnings.map((w) => w.obj.timeoutMs)).toEqual([500]);
    const close = watch(tracker.close());
    await vi.advanceTimersByTimeAsync(500);
    expect(close.settled).toBe(true);
  });
});
