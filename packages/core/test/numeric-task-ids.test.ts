// Task ids that look like integers ("1", "10") are valid ids, and JavaScript lists such keys first,
// in numeric order, whatever order they were added in. Found by a review on 2026-11-29: the
// reducer's index of tasks was built in the order tasks were added when applied live, and in
// `Object.values` order when rebuilt from a loaded state, so means summed in floating point could
// differ in the last digit: a state loaded from a snapshot and its tail was not the live state.
import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker, replayEvents, type ProgressEvent } from '../src/index.js';

async function all(iterable: AsyncIterable<ProgressEvent>): Promise<ProgressEvent[]> {
  const out: ProgressEvent[] = [];
  for await (const e of iterable) out.push(e);
  return out;
}

describe('task ids that look like integers', () => {
  it('snapshot + tail gives the same state as the full replay and the live tracker (top-level tasks)', async () => {
    const store = new MemoryStore({ snapshotEvery: 10 });
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store }); // seq 1
    await t.startUpgrade(); // 2
    await t.addTasks([{ taskId: 'a', taskName: 'A' }, { taskId: 'b', taskName: 'B' }, { taskId: 'c', taskName: 'C' }, { taskId: '1', taskName: 'Step 1' }]); // 3-6
    await t.updateTaskProgress('a', 0.1); // 7
    await t.updateTaskProgress('b', 100); // 8
    await t.updateTaskProgress('c', 12.5); // 9
    await t.updateTaskProgress('1', 0.1); // 10: the store snapshots here
    await t.setCurrentPhase('Nodes'); // 11: the tail
    const live = t.progress;
    const replayed = replayEvents(await all(store.readEvents('u1', 0)))!;
    const loaded = (await store.load('u1'))!;
    expect(replayed.overallPercentage).toBe(live.overallPercentage);
    expect(loaded.overallPercentage).toBe(live.overallPercentage); // they were 28.18 and 28.17
    expect(loaded).toEqual(live);
    await t.close();
  });

  it('the same for a parent mean over children with integer-like ids added out of numeric order', async () => {
    const store = new MemoryStore({ snapshotEvery: 9 });
    const t = await ProgressTracker.open({ upgradeId: 'u2', planId: 'p', clusterName: 'c', store }); // 1
    await t.startUpgrade(); // 2
    await t.addTasks([
      { taskId: 'nodes', taskName: 'Nodes' },
      { taskId: 'x', taskName: 'X', parentTaskId: 'nodes' },
      { taskId: 'y', taskName: 'Y', parentTaskId: 'nodes' },
      { taskId: 'z', taskName: 'Z', parentTaskId: 'nodes' },
      { taskId: '1', taskName: 'One', parentTaskId: 'nodes' },
    ]); // 3-7
    await t.updateTaskProgress('x', 0.1); // 8
    await t.updateTaskProgress('y', 100); // 9: snapshot
    await t.updateTaskProgress('z', 12.5); // 10
    await t.updateTaskProgress('1', 0.1); // 11
    const live = t.progress;
    const loaded = (await store.load('u2'))!;
    const replayed = replayEvents(await all(store.readEvents('u2', 0)))!;
    expect(loaded.tasks.nodes!.percentage).toBe(live.tasks.nodes!.percentage);
    expect(replayed.tasks.nodes!.percentage).toBe(live.tasks.nodes!.percentage);
    expect(loaded).toEqual(live);
    await t.close();
  });

  it('are listed first, in numeric order (object key order, as documented), by the state and the summary alike', async () => {
    const t = await ProgressTracker.open({ upgradeId: 'u3', planId: 'p', clusterName: 'c' });
    await t.startUpgrade();
    await t.addTasks([{ taskId: 'preflight', taskName: 'Pre-flight' }, { taskId: '10', taskName: 'Ten' }, { taskId: '2', taskName: 'Two' }]);
    await Promise.all([t.startTask('preflight'), t.startTask('10'), t.startTask('2')]);
    expect(Object.keys(t.progress.tasks)).toEqual(['2', '10', 'preflight']);
    expect(t.getCurrentTask()?.taskId).toBe('2');
    expect(t.getProgressSummary()).toMatchObject({ currentTask: { taskId: '2' }, activeTaskNames: ['Two', 'Ten', 'Pre-flight'] });
    await t.close();
  });

  it('a state of many integer-like ids reopens without an index built in O(n^2) (counted as id checks, not timed)', async () => {
    // Rebuilt from Object.values, the index is pushed in order; an add finds its place by binary search.
    // Before, each of n tasks scanned the sorted head: n^2/2 checks (16 s for 20,000 tasks).
    const n = 5_000;
    const store = new MemoryStore();
    const t = await ProgressTracker.open({ upgradeId: 'u4', planId: 'p', clusterName: 'c', store });
    await t.addTasks(Array.from({ length: n }, (_, i) => ({ taskId: String(n - i), taskName: `Step ${n - i}` })));
    await t.close();
    let checks = 0;
    const test = RegExp.prototype.test;
    RegExp.prototype.test = function (this: RegExp, s: string) {
      checks++;
      return test.call(this, s);
    };
    try {
      const again = await ProgressTracker.open({ upgradeId: 'u4', planId: 'p', clusterName: 'c', store });
      await again.addTask('0', 'Zero');
      await again.addTask('x', 'X');
      expect(Object.keys(again.progress.tasks).slice(0, 3)).toEqual(['0', '1', '2']);
      expect(Object.keys(again.progress.tasks).at(-1)).toBe('x');
      await again.close();
    } finally {
      RegExp.prototype.test = test;
    }
    // O(n): each index (the tracker's durable and live states have one each) checks each id once,
    // to keep the numbers of the integer-like ones. In O(n^2), n^2 / 2.
    expect(checks).toBeLessThan(4 * n);
  });

  it('takes "4294967295" (2^32 - 1, not an array index: listed among the other ids, in the order added) as any other id, live and loaded', async () => {
    const store = new MemoryStore();
    const t = await ProgressTracker.open({ upgradeId: 'u4', planId: 'p', clusterName: 'c', store });
    await t.addTasks([{ taskId: 'x', taskName: 'X' }, { taskId: '4294967295', taskName: 'Max' }, { taskId: '4294967294', taskName: 'Index' }]);
    expect(Object.keys(t.progress.tasks)).toEqual(['4294967294', 'x', '4294967295']);
    await t.updateTaskProgress('x', 30);
    await t.close();
    const again = await ProgressTracker.open({ upgradeId: 'u4', planId: 'p', clusterName: 'c', store });
    await again.updateTaskProgress('x', 90);
    await again.updateTaskProgress('4294967295', 60);
    expect(again.progress.overallPercentage).toBe(50);
    expect(again.progress).toEqual(replayEvents(await all(store.readEvents('u4', 0))));
    await again.close();
  });

  it('takes "01" (a leading zero: not an array index, listed among the other ids) as an id apart from "1", live and loaded', async () => {
    const store = new MemoryStore();
    const t = await ProgressTracker.open({ upgradeId: 'u5', planId: 'p', clusterName: 'c', store });
    await t.addTasks([{ taskId: '01', taskName: 'Zero one' }, { taskId: 'x', taskName: 'X' }, { taskId: '1', taskName: 'One' }]);
    expect(Object.keys(t.progress.tasks)).toEqual(['1', '01', 'x']);
    await t.updateTaskProgress('01', 90);
    await t.updateTaskProgress('1', 60);
    expect(t.progress.overallPercentage).toBe(50);
    await t.close();
    const again = await ProgressTracker.open({ upgradeId: 'u5', planId: 'p', clusterName: 'c', store });
    await again.updateTaskProgress('01', 30);
    await again.updateTaskProgress('x', 30);
    expect(again.progress.overallPercentage).toBe(40);
    expect(again.progress).toEqual(replayEvents(await all(store.readEvents('u5', 0))));
    await again.close();
  });
});
