// Values a tracker meets only from stored or imported data, and a store that refuses what it is
// given: queries and commands answer, or fail with a typed error, never a RangeError or a NaN.
// (Found by a review on 2026-11-29; each test failed before the fix.)
import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressError, ProgressTracker, type UpgradeProgress } from '../src/index.js';

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

/** What an import or an older writer may have stored: task `t` says 0 steps. */
class ZeroStepsStore extends MemoryStore {
  override async load(upgradeId: string): Promise<UpgradeProgress | undefined> {
    const state = await super.load(upgradeId);
    if (state?.tasks.t) state.tasks.t.totalSteps = 0;
    return state;
  }
}

/** A store that refuses, while `refuse` is set, what it is given to append (as a store refuses a state it cannot write). */
class RefusingStore extends MemoryStore {
  refuse = false;
  override append(...args: Parameters<MemoryStore['append']>): Promise<void> {
    return this.refuse ? Promise.reject(new ProgressError('INVALID_ARGUMENT', 'the state cannot be written')) : super.append(...args);
  }
}

describe('a stored task of 0 steps', () => {
  it('advanceTask records no 0/0 percentage for it', async () => {
    const store = new ZeroStepsStore();
    const first = await ProgressTracker.open({ upgradeId: 'u', planId: 'p', clusterName: 'c', store });
    await first.addTask('t', 'T', 'upgrade_step', { totalSteps: 2 });
    await first.close();
    const tracker = await ProgressTracker.open({ upgradeId: 'u', planId: 'p', clusterName: 'c', store });
    const event = await tracker.advanceTask('t', { completedSteps: 0 });
    expect(event.percentage).toBeUndefined();
    expect(Number.isFinite(tracker.progress.tasks.t!.percentage)).toBe(true);
    await tracker.close();
  });
});

describe('a store that refuses what it is given', () => {
  it("gives the caller the store's INVALID_ARGUMENT, not STORE_UNAVAILABLE (the store is not down)", async () => {
    const store = new RefusingStore();
    const tracker = await ProgressTracker.open({ upgradeId: 'u', planId: 'p', clusterName: 'c', store });
    await tracker.addTask('t', 'T');
    store.refuse = true;
    await expect(tracker.updateTaskProgress('t', 10)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    store.refuse = false;
    // Nothing of it stayed: the next command writes from the durable seq.
    expect(tracker.progress.tasks.t!.percentage).toBe(0);
    await tracker.updateTaskProgress('t', 20);
    await tracker.close();
  });
});
