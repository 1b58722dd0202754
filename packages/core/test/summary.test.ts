import { describe, expect, it } from 'vitest';
import { ProgressTracker } from '../src/index.js';
import { manualClock } from './helpers.js';

const open = (now?: () => number) => ProgressTracker.open({ upgradeId: 'u1', planId: 'p1', clusterName: 'c1', ...(now ? { now } : {}) });

describe('getProgressSummary()', () => {
  it('counts as current the first in_progress task, else (in the summary) the last failed one, else none', async () => {
    const t = await open();
    await t.startUpgrade();
    await t.addTasks(['a', 'b', 'c', 'd'].map((id) => ({ taskId: id, taskName: `Task ${id}` })));
    expect(t.getProgressSummary().currentTask).toBeNull();
    await t.failTask('a', 'boom');
    await t.failTask('c', 'boom');
    expect(t.getProgressSummary().currentTask).toEqual({ taskId: 'c', taskName: 'Task c', status: 'failed', percentage: 0 });
    // getCurrentTask() is the first in_progress task alone.
    expect(t.getCurrentTask()).toBeUndefined();
    await t.updateTaskProgress('d', 30);
    await t.startTask('b');
    expect(t.getProgressSummary().currentTask).toEqual({ taskId: 'b', taskName: 'Task b', status: 'in_progress', percentage: 0 });
    expect(t.getCurrentTask()?.taskId).toBe('b');
    expect(t.getProgressSummary()).toMatchObject({ activeTasks: 2, activeTaskNames: ['Task b', 'Task d'], failedTasks: 2, failedTaskNames: ['Task a', 'Task c'] });
    await t.close();
  });

  it('never estimates a completion before now, when the clock went back after the upgrade started', async () => {
    const clock = manualClock();
    const t = await open(clock.now);
    await t.startUpgrade();
    await t.addTasks([
      { taskId: 'a', taskName: 'A' },
      { taskId: 'b', taskName: 'B' },
    ]);
    await t.completeTask('a');
    clock.advance(-30_000);
    const estimate = t.getEstimatedCompletionTime();
    expect(estimate).toBeDefined();
    expect(Date.parse(estimate!)).toBeGreaterThanOrEqual(clock.now());
    expect(t.getProgressSummary().estimatedCompletionAt).toBe(estimate);
    await t.close();
  });
});
