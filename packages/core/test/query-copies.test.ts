import { describe, expect, it } from 'vitest';
import { ProgressTracker, type TaskProgress } from '../src/index.js';

// What the queries and the task commands hand out is a copy (their TSDoc says so): a caller that
// changes it, as it may with any object it is given, must not change the tracker's state.

/** Changes every field of a task handed out, and its recent events. */
function scribble(task: TaskProgress): void {
  const t = task as { -readonly [K in keyof TaskProgress]: TaskProgress[K] };
  t.status = 'cancelled';
  t.percentage = 7;
  t.taskName = 'scribbled';
  t.recentEvents.length = 0;
}

describe('copies handed out by the tracker', () => {
  it('getCurrentTask(), getTaskProgress(), addTask() and addTasks() give tasks whose changes leave the state as it was', async () => {
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p1', clusterName: 'c1' });
    await t.startUpgrade();
    scribble(await t.addTask('a', 'A'));
    scribble((await t.addTasks([{ taskId: 'b', taskName: 'B' }]))[0]!);
    await t.updateTaskProgress('a', 40);
    const before = JSON.stringify([t.progress, t.durableProgress]);
    scribble(t.getCurrentTask()!);
    scribble(t.getTaskProgress('a')!);
    expect(JSON.stringify([t.progress, t.durableProgress])).toBe(before);
    for (const state of [t.progress, t.durableProgress]) {
      expect(state.tasks.a).toMatchObject({ status: 'in_progress', percentage: 40, taskName: 'A' });
      expect(state.tasks.b).toMatchObject({ status: 'not_started', percentage: 0, taskName: 'B' });
      expect(state.tasks.a!.recentEvents.map((e) => e.type)).toEqual(['task.added', 'task.progress']);
      expect(state.tasks.b!.recentEvents.map((e) => e.type)).toEqual(['task.added']);
    }
    expect(t.getCurrentTask()?.taskName).toBe('A');
    await t.close();
  });
});
