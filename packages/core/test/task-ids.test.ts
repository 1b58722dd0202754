import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker, replayEvents, type ProgressEvent, type UpgradeProgress } from '../src/index.js';

describe('task ids that name Object.prototype members', () => {
  it.each(['constructor', 'toString', 'hasOwnProperty', '__proto__'])('"%s" is a task like any other: added, updated, replayed', async (id) => {
    const tracker = await ProgressTracker.open({ upgradeId: 'u-proto', planId: 'p', clusterName: 'c' });
    await tracker.startUpgrade();
    await tracker.addTask(id, 'A task');
    await tracker.updateTaskProgress(id, 40);
    expect(Object.keys(tracker.progress.tasks)).toEqual([id]);
    expect(tracker.progress.tasks[id]!.percentage).toBe(40);
    await expect(tracker.addTask(id, 'Again')).rejects.toMatchObject({ code: 'DUPLICATE_TASK' });
    const events: ProgressEvent[] = [];
    for await (const e of tracker.readEvents(0)) events.push(e);
    const replayed = replayEvents(events)!;
    expect(replayed.tasks[id]!.percentage).toBe(40);
    expect(JSON.parse(JSON.stringify(replayed))).toEqual(JSON.parse(JSON.stringify(tracker.progress)));
    // A state that went through JSON (a stored snapshot) is read back the same way.
    const fromJson = replayEvents([], JSON.parse(JSON.stringify(replayed)))!;
    expect(Object.keys(fromJson.tasks)).toEqual([id]);
    await tracker.close();
  });
});

describe('a store whose load() hands back a state parsed from JSON (tasks with Object.prototype)', () => {
  class JsonLoadStore extends MemoryStore {
    override async load(upgradeId: string): Promise<UpgradeProgress | undefined> {
      const state = await super.load(upgradeId);
      return state && (JSON.parse(JSON.stringify(state)) as UpgradeProgress);
    }
  }

  it.each(['constructor', 'toString', '__proto__'])('a reopened tracker adds task "%s", and its write loop goes on', async (id) => {
    const store = new JsonLoadStore();
    const first = await ProgressTracker.open({ upgradeId: 'u-json', planId: 'p', clusterName: 'c', store });
    await first.startUpgrade();
    await first.close();
    const tracker = await ProgressTracker.open({ upgradeId: 'u-json', planId: 'p', clusterName: 'c', store });
    await tracker.addTask(id, 'A task');
    await tracker.updateTaskProgress(id, 30);
    expect(Object.keys(tracker.durableProgress.tasks)).toEqual([id]);
    expect(tracker.durableProgress.lastSeq).toBe(4);
    await tracker.close();
  });
});

describe('a task id of the wrong type', () => {
  it('is named in the error with its article ("an object", not "a object")', async () => {
    // addTask takes (taskId, taskName): an object in its place (the old module's dict) is refused.
    const tracker = await ProgressTracker.open({ upgradeId: 'u-type', planId: 'p', clusterName: 'c' });
    await tracker.startUpgrade();
    await expect(tracker.addTask({ taskId: 'a' } as unknown as string, 'A')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('taskId an object is not valid') });
    await expect(tracker.addTask(undefined as unknown as string, 'A')).rejects.toMatchObject({ message: expect.stringContaining('taskId undefined is not valid') });
    await tracker.close();
  });

  it('says, for a whole task given to addTask as an object, that addTask takes its fields in order and addTasks takes objects', async () => {
    // addTasks([{ taskId, taskName }]) takes objects, so addTask({ taskId, taskName }) is an easy slip;
    // "taskId an object is not valid: use 1 to 128 characters of ..." did not say what to write instead.
    const tracker = await ProgressTracker.open({ upgradeId: 'u-type-2', planId: 'p', clusterName: 'c' });
    await tracker.startUpgrade();
    const caught: unknown = await tracker.addTask({ taskId: 'a', taskName: 'A' } as unknown as string, undefined as unknown as string).catch((err: unknown) => err);
    expect(caught).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((caught as Error).message).toContain('addTask takes (taskId, taskName, taskType?, options?)');
    expect((caught as Error).message).toContain('addTasks([{ taskId, taskName, ... }])');
    expect(Object.keys(tracker.progress.tasks)).toEqual([]);
    await tracker.close();
  });
});
