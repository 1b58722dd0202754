// Values a tracker meets only from stored or imported data, and a store that refuses what it is
// given: queries and commands answer, or fail with a typed error, never a RangeError or a NaN.
// (Found by a review on 2026-11-29; each test failed before the fix.)
import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressError, ProgressTracker, type ProgressStore } from '../src/index.js';

describe('queries of an upgrade started long ago', () => {
  it('getProgressSummary() and getEstimatedCompletionTime() do not throw when the estimate is past what a Date holds', async () => {
    // Started at a placeholder time (a legacy file's datetime.min, 0001-01-01, loads the same way) at
    // 0.5%: the extrapolated end is past the largest Date, and the queries threw "Invalid time value".
    let clock = Date.parse('0001-01-01T00:00:00Z');
    const tracker = await ProgressTracker.open({ upgradeId: 'old', planId: 'p', clusterName: 'c', store: new MemoryStore(), now: () => clock });
    await tracker.startUpgrade();
    await tracker.addTask('t', 'T');
    await tracker.updateTaskProgress('t', 0.5);
    clock = Date.now();
    expect(tracker.getEstimatedCompletionTime()).toBeUndefined();
    expect(tracker.getProgressSummary().estimatedCompletionAt).toBeNull();
    await tracker.close();
  });
});

describe('a stored task of 0 steps', () => {
  it('advanceTask records no 0/0 percentage for it', async () => {
    const memory = new MemoryStore();
    const first = await ProgressTracker.open({ upgradeId: 'u', planId: 'p', clusterName: 'c', store: memory });
    await first.addTask('t', 'T', 'upgrade_step', { totalSteps: 2 });
    await first.close();
    // What an import or an older writer may have stored: a task that says 0 steps.
    const store: ProgressStore = {
      ...memory,
      load: async (id) => {
        const state = await memory.load(id);
        if (state) state.tasks.t!.totalSteps = 0;
        return state;
      },
      append: (id, events, expected, state) => memory.append(id, events, expected, state),
      readEvents: (id, after, limit) => memory.readEvents(id, after, limit),
      list: (filter) => memory.list(filter),
      delete: (id) => memory.delete(id),
      info: () => memory.info(),
      close: () => memory.close(),
    };
    const tracker = await ProgressTracker.open({ upgradeId: 'u', planId: 'p', clusterName: 'c', store });
    const event = await tracker.advanceTask('t', { completedSteps: 0 });
    expect(event.percentage).toBeUndefined();
    expect(Number.isFinite(tracker.progress.tasks.t!.percentage)).toBe(true);
    await tracker.close();
  });
});

describe('a store that refuses what it is given', () => {
  it("gives the caller the store's INVALID_ARGUMENT, not STORE_UNAVAILABLE (the store is not down)", async () => {
    const memory = new MemoryStore();
    let refuse = false;
    const store: ProgressStore = {
      load: (id) => memory.load(id),
      readEvents: (id, after, limit) => memory.readEvents(id, after, limit),
      list: (filter) => memory.list(filter),
      delete: (id) => memory.delete(id),
      info: () => memory.info(),
      close: () => memory.close(),
      append: (id, events, expected, state) => (refuse ? Promise.reject(new ProgressError('INVALID_ARGUMENT', 'the state cannot be written')) : memory.append(id, events, expected, state)),
    };
    const tracker = await ProgressTracker.open({ upgradeId: 'u', planId: 'p', clusterName: 'c', store });
    await tracker.addTask('t', 'T');
    refuse = true;
    await expect(tracker.updateTaskProgress('t', 10)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    refuse = false;
    // Nothing of it stayed: the next command writes from the durable seq.
    expect(tracker.progress.tasks.t!.percentage).toBe(0);
    await tracker.updateTaskProgress('t', 20);
    await tracker.close();
  });
});
