import { describe, expect, it } from 'vitest';
import { CallbackManager, type Unsubscribe } from '../src/index.js';
import { deferred, openTracker } from './helpers.js';

describe('CallbackManager: changes made from inside a callback', () => {
  it('a callback that unsubscribes itself while being called is not called again', async () => {
    const manager = new CallbackManager();
    const seen: number[] = [];
    const off: Unsubscribe = manager.addEventCallback((e) => {
      seen.push(e.seq);
      if (e.seq === 2) off();
    });
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.addTask('t1', 'Task 1');
    await tracker.close();
    expect(seen).toEqual([1, 2]);
    expect(manager.getCallbackCounts().eventCallbacks).toBe(0);
  });

  it('a status callback that removes itself with removeStatusCallback fires once', async () => {
    const manager = new CallbackManager();
    const done: string[] = [];
    const once = (task: { taskId: string }) => {
      done.push(task.taskId);
      manager.removeStatusCallback('completed', once);
    };
    manager.addStatusCallback('completed', once);
    const tracker = await openTracker(manager);
    await tracker.addTasks([
      { taskId: 'a', taskName: 'A' },
      { taskId: 'b', taskName: 'B' },
    ]);
    await tracker.completeTask('a');
    await tracker.completeTask('b');
    await tracker.close();
    expect(done).toEqual(['a']);
    expect(manager.getCallbackCounts()).toEqual({ eventCallbacks: 0, statusCallbacks: {} });
  });

  it('an async callback that unsubscribes itself drops its queued calls, and flush still resolves', async () => {
    const manager = new CallbackManager();
    const gate = deferred();
    const seen: number[] = [];
    const off = manager.addEventCallback(async (e) => {
      seen.push(e.seq);
      if (e.seq === 2) {
        await gate.promise;
        off();
      }
    });
    const tracker = await openTracker(manager);
    await tracker.startUpgrade(); // 2: waits on the gate
    await tracker.addTask('t1', 'Task 1'); // 3, queued
    await tracker.startTask('t1'); // 4, queued
    expect(manager.getStats().pending).toBe(3);
    gate.resolve();
    await manager.flush();
    expect(seen).toEqual([1, 2]);
    expect(manager.getStats()).toMatchObject({ pending: 0, calls: 2 });
    await tracker.close();
  });

  it('a callback that removes a later one during an event: the later one misses that event', async () => {
    const manager = new CallbackManager();
    const later: number[] = [];
    manager.addEventCallback((e) => {
      if (e.seq === 2) offLater();
    });
    const offLater = manager.addEventCallback((e) => void later.push(e.seq));
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.close();
    expect(later).toEqual([1]);
  });

  it('a callback added while another is being called starts with the next event', async () => {
    const manager = new CallbackManager();
    const added: number[] = [];
    const addedStatus: string[] = [];
    manager.addEventCallback((e) => {
      if (e.seq === 2) {
        manager.addEventCallback((e2) => void added.push(e2.seq));
        manager.addStatusCallback('in_progress', (task) => void addedStatus.push(task.taskId));
      }
    });
    const tracker = await openTracker(manager);
    await tracker.addTask('t1', 'Task 1'); // 2: adds the others
    await tracker.startTask('t1'); // 3
    await tracker.close();
    expect(added).toEqual([3]);
    expect(addedStatus).toEqual(['t1']);
    expect(manager.getCallbackCounts()).toEqual({ eventCallbacks: 2, statusCallbacks: { in_progress: 1 } });
  });

  it('clearAllCallbacks from inside a callback stops the rest of that event', async () => {
    const manager = new CallbackManager();
    const after: number[] = [];
    manager.addEventCallback((e) => {
      if (e.seq === 2) manager.clearAllCallbacks();
    });
    manager.addEventCallback((e) => void after.push(e.seq));
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.close();
    expect(after).toEqual([1]);
  });

  it('a callback may drive the tracker: starting the next task when validation completes', async () => {
    const manager = new CallbackManager();
    const tracker = await openTracker(manager);
    manager.addStatusCallback('completed', async (task) => {
      if (task.taskType === 'validation') await tracker.startTask('deploy');
    });
    const order: string[] = [];
    manager.addEventCallback((e) => void order.push(`${e.type}:${e.taskId ?? ''}`));
    await tracker.startUpgrade();
    await tracker.addTask('validate', 'Validate', 'validation');
    await tracker.addTask('deploy', 'Deploy', 'upgrade_step');
    await tracker.completeTask('validate');
    await tracker.flush();
    expect(tracker.progress.tasks.deploy!.status).toBe('in_progress');
    expect(order.slice(-2)).toEqual(['task.completed:validate', 'task.started:deploy']);
    await tracker.close();
  });
});
