import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker, type ProgressEvent, type ProgressSink } from '../src/index.js';

/** A sink whose handle fails and whose name getter throws (a name made from a resource gone by then, say). */
class NamelessFailingSink implements ProgressSink {
  get name(): string {
    throw new Error('no name: the resource it is named after is gone');
  }
  handle(): void {
    throw new Error('handle failed');
  }
  async flush(): Promise<void> {
    throw new Error('flush failed');
  }
}

describe('a failing sink whose name getter throws', () => {
  it('is logged and isolated like any failing sink: the commands resolve, the other sinks and subscribers get every event, and the tracker goes on', async () => {
    // The log line of the sink's failure read its name, and that throw escaped the hand-out of the
    // event: the other sinks and subscribers missed it, the durable state stopped before the rest of
    // the write (a command whose event was stored rejected with a TypeError), and every later command
    // got CONFLICT. And close() rejected, without releasing the lock, when its flush failed.
    const store = new MemoryStore();
    const seen: number[] = [];
    const heard: number[] = [];
    const good: ProgressSink = { name: 'good', handle: (e: ProgressEvent) => void seen.push(e.seq) };
    const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store, sinks: [new NamelessFailingSink(), good] });
    tracker.subscribe((e) => void heard.push(e.seq));
    const [a, b] = await Promise.all([tracker.addTask('a', 'A'), tracker.addTask('b', 'B')]);
    expect([a.taskId, b.taskId]).toEqual(['a', 'b']);
    await tracker.startTask('a');
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(heard).toEqual([2, 3, 4]);
    expect(tracker.durableProgress.lastSeq).toBe(4);
    expect(tracker.getSystemInfo().sinks).toHaveLength(2);
    await tracker.close();
    // The lock was released: the upgrade opens again.
    const again = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store });
    expect(again.progress.lastSeq).toBe(4);
    await again.close();
  });
});
