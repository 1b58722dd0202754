import { describe, expect, it } from 'vitest';
import { ProgressTracker, replayEvents, type ProgressEvent } from '../src/index.js';

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
