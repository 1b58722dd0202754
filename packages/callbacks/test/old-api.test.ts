import { describe, expect, it } from 'vitest';
import { MAX_TIMER_MS, isProgressError, type ProgressEvent, type ProgressStatus, type TaskProgress } from '@progress/core';
import { CallbackManager, type EventCallback, type StatusCallback } from '../src/index.js';
import { openTracker } from './helpers.js';

describe('CallbackManager: the old module behaviour', () => {
  it('is a sink named "callbacks"', () => {
    expect(new CallbackManager().name).toBe('callbacks');
  });

  it('calls event callbacks with every event, task events included, with the state', async () => {
    const manager = new CallbackManager();
    const seen: Array<{ type: string; seq: number; tasks: number }> = [];
    manager.addEventCallback((event, state) => {
      seen.push({ type: event.type, seq: event.seq, tasks: Object.keys(state.tasks).length });
    });
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.addTask('t1', 'Task 1', 'validation');
    await tracker.startTask('t1');
    await tracker.updateTaskProgress('t1', 50, 'half');
    await tracker.completeTask('t1');
    await tracker.close();
    expect(seen).toEqual([
      { type: 'upgrade.created', seq: 1, tasks: 0 },
      { type: 'upgrade.started', seq: 2, tasks: 0 },
      { type: 'task.added', seq: 3, tasks: 1 },
      { type: 'task.started', seq: 4, tasks: 1 },
      { type: 'task.progress', seq: 5, tasks: 1 },
      { type: 'task.completed', seq: 6, tasks: 1 },
    ]);
  });

  it('calls a status callback once when a task completes, with the task, the event and the state', async () => {
    const manager = new CallbackManager();
    const calls: Array<[TaskProgress, ProgressEvent, number]> = [];
    manager.addStatusCallback('completed', (task, event, state) => {
      calls.push([task, event, state.overallPercentage]);
    });
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.addTask('t1', 'Task 1');
    await tracker.addTask('t2', 'Task 2');
    await tracker.startTask('t1');
    await tracker.updateTaskProgress('t1', 40);
    expect(calls).toHaveLength(0);
    await tracker.completeTask('t1');
    await tracker.close();
    expect(calls).toHaveLength(1);
    const [task, event, overall] = calls[0]!;
    expect(task).toMatchObject({ taskId: 't1', taskName: 'Task 1', status: 'completed', percentage: 100 });
    expect(event).toMatchObject({ type: 'task.completed', taskId: 't1', status: 'completed' });
    expect(overall).toBe(50);
  });

  it('fires status callbacks on entering a status, never on task.added nor on progress of a running task', async () => {
    const manager = new CallbackManager();
    const entered: string[] = [];
    for (const status of ['not_started', 'in_progress', 'completed', 'failed', 'skipped', 'cancelled'] as ProgressStatus[]) {
      manager.addStatusCallback(status, (task, event) => {
        entered.push(`${task.taskId}:${status}:${event.type}`);
      });
    }
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.addTasks([
      { taskId: 'a', taskName: 'A' },
      { taskId: 'b', taskName: 'B' },
      { taskId: 'c', taskName: 'C' },
      { taskId: 'd', taskName: 'D' },
    ]);
    await tracker.startTask('a');
    await tracker.updateTaskProgress('a', 10);
    await tracker.updateTaskProgress('a', 20);
    await tracker.failTask('a', 'boom');
    await tracker.retryTask('a');
    await tracker.updateTaskProgress('a', 60);
    await tracker.completeTask('a');
    await tracker.skipTask('b', 'not needed');
    await tracker.updateTaskProgress('c', 30); // starts c without a task.started
    await tracker.updateTaskProgress('c', 40);
    await tracker.cancelTask('c');
    await tracker.completeTask('d'); // not_started -> completed
    await tracker.close();
    expect(entered).toEqual([
      'a:in_progress:task.started',
      'a:failed:task.failed',
      'a:in_progress:task.retried',
      'a:completed:task.completed',
      'b:skipped:task.skipped',
      'c:in_progress:task.progress',
      'c:cancelled:task.cancelled',
      'd:completed:task.completed',
    ]);
  });

  it('counts callbacks, listing only statuses that have any, and clears them all', async () => {
    const manager = new CallbackManager();
    expect(manager.getCallbackCounts()).toEqual({ eventCallbacks: 0, statusCallbacks: {} });
    const onEvent: EventCallback = () => {};
    const onDone: StatusCallback = () => {};
    manager.addEventCallback(onEvent);
    manager.addEventCallback(() => {});
    manager.on('task.failed', () => {});
    manager.addStatusCallback('completed', onDone);
    manager.addStatusCallback('completed', () => {});
    manager.addStatusCallback('failed', () => {});
    expect(manager.getCallbackCounts()).toEqual({ eventCallbacks: 3, statusCallbacks: { completed: 2, failed: 1 } });
    manager.onUpgradeStatus('failed', () => {});
    expect(manager.getCallbackCounts()).toEqual({ eventCallbacks: 3, statusCallbacks: { completed: 2, failed: 1 }, upgradeStatusCallbacks: { failed: 1 } });

    expect(manager.removeEventCallback(onEvent)).toBe(true);
    expect(manager.removeEventCallback(onEvent)).toBe(false);
    expect(manager.removeStatusCallback('failed', onDone)).toBe(false);
    expect(manager.removeStatusCallback('completed', onDone)).toBe(true);
    expect(manager.getCallbackCounts()).toEqual({ eventCallbacks: 2, statusCallbacks: { completed: 1, failed: 1 }, upgradeStatusCallbacks: { failed: 1 } });

    manager.clearAllCallbacks();
    // Strict: upgradeStatusCallbacks is left out, not present as undefined.
    expect(manager.getCallbackCounts()).toStrictEqual({ eventCallbacks: 0, statusCallbacks: {} });
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.close();
    expect(manager.getStats()).toMatchObject({ events: 2, calls: 0 });
  });

  it('removeStatusCallback leaves an onUpgradeStatus registration of the same function and status alone', async () => {
    const manager = new CallbackManager();
    const heard: string[] = [];
    // One function for a task and the upgrade entering a status (a generic notifier).
    const notify = (subject: { status: string }): void => void heard.push(subject.status);
    manager.addStatusCallback('failed', notify);
    manager.onUpgradeStatus('failed', notify);
    expect(manager.removeStatusCallback('failed', notify)).toBe(true);
    expect(manager.getCallbackCounts()).toEqual({ eventCallbacks: 0, statusCallbacks: {}, upgradeStatusCallbacks: { failed: 1 } });
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.addTask('t1', 'Task 1');
    await tracker.failTask('t1', 'boom');
    await tracker.failUpgrade('boom');
    await tracker.close();
    expect(heard).toEqual(['failed']);
  });

  it('removed callbacks are not called again; unsubscribe functions are idempotent', async () => {
    const manager = new CallbackManager();
    const a: number[] = [];
    const b: number[] = [];
    const onA: EventCallback = (e) => {
      a.push(e.seq);
    };
    manager.addEventCallback(onA);
    const offB = manager.addEventCallback((e) => {
      b.push(e.seq);
    });
    const tracker = await openTracker(manager);
    manager.removeEventCallback(onA);
    offB();
    offB();
    await tracker.startUpgrade();
    await tracker.close();
    expect(a).toEqual([1]);
    expect(b).toEqual([1]);
    expect(manager.getCallbackCounts().eventCallbacks).toBe(0);
  });

  it('the same function added twice is called twice and removed by one removeEventCallback', async () => {
    const manager = new CallbackManager();
    let calls = 0;
    const cb: EventCallback = () => {
      calls += 1;
    };
    manager.addEventCallback(cb);
    const off = manager.addEventCallback(cb);
    const tracker = await openTracker(manager);
    expect(calls).toBe(2);
    off();
    await tracker.startUpgrade();
    expect(calls).toBe(3);
    expect(manager.removeEventCallback(cb)).toBe(true);
    await tracker.close();
  });
  it('removeEventCallback and removeStatusCallback remove every registration of the function, not only the first', async () => {
    const manager = new CallbackManager();
    let calls = 0;
    const cb = (): void => {
      calls += 1;
    };
    manager.addEventCallback(cb);
    manager.on('*', cb);
    manager.addEventCallback(cb);
    manager.addStatusCallback('completed', cb);
    manager.addStatusCallback('completed', cb);
    expect(manager.removeEventCallback(cb)).toBe(true);
    expect(manager.removeStatusCallback('completed', cb)).toBe(true);
    expect(manager.getCallbackCounts()).toEqual({ eventCallbacks: 0, statusCallbacks: {} });
    const tracker = await openTracker(manager);
    await tracker.addTask('t1', 'Task 1');
    await tracker.completeTask('t1');
    await tracker.close();
    expect(calls).toBe(0);
  });
});

describe('CallbackManager: filters', () => {
  it('on(type) sees only that type; on("*") sees all', async () => {
    const manager = new CallbackManager();
    const failed: string[] = [];
    const all: string[] = [];
    manager.on('task.failed', (e) => {
      failed.push(`${e.taskId}:${e.message}`);
    });
    manager.on('*', (e) => {
      all.push(e.type);
    });
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.addTask('t1', 'Task 1');
    await tracker.failTask('t1', 'disk full');
    await tracker.close();
    expect(failed).toEqual(['t1:Task failed: disk full']);
    expect(all).toEqual(['upgrade.created', 'upgrade.started', 'task.added', 'task.failed']);
  });

  it('onUpgradeStatus fires when the upgrade enters a status, with a copy of its state', async () => {
    const manager = new CallbackManager();
    const entered: string[] = [];
    for (const status of ['not_started', 'in_progress', 'paused', 'completed', 'failed', 'cancelled'] as ProgressStatus[]) {
      manager.onUpgradeStatus(status, (upgrade, event) => {
        entered.push(`${status}:${event.type}:${upgrade.status}:${upgrade.overallPercentage}`);
      });
    }
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.setCurrentPhase('drain');
    await tracker.pauseUpgrade('maintenance window');
    await tracker.resumeUpgrade();
    await tracker.addTask('t1', 'Task 1');
    await tracker.completeTask('t1');
    await tracker.completeUpgrade();
    await tracker.close();
    // A second upgrade, cancelled.
    const other = await openTracker(manager);
    await other.startUpgrade();
    await other.cancelUpgrade('not today');
    await other.close();
    expect(entered).toEqual([
      'in_progress:upgrade.started:in_progress:0',
      'paused:upgrade.paused:paused:0',
      'in_progress:upgrade.resumed:in_progress:0',
      'completed:upgrade.completed:completed:100',
      'in_progress:upgrade.started:in_progress:0',
      'cancelled:upgrade.cancelled:cancelled:0',
    ]);
  });
});

describe('CallbackManager: argument validation', () => {
  const manager = new CallbackManager();
  const code = (fn: () => unknown): string | undefined => {
    try {
      fn();
    } catch (err) {
      return isProgressError(err) ? err.code : 'not a ProgressError';
    }
    return undefined;
  };

  it('refuses a non-function callback', () => {
    expect(code(() => manager.addEventCallback('nope' as never))).toBe('INVALID_ARGUMENT');
    expect(code(() => manager.addStatusCallback('completed', undefined as never))).toBe('INVALID_ARGUMENT');
    expect(code(() => manager.on('*', {} as never))).toBe('INVALID_ARGUMENT');
    expect(code(() => manager.onUpgradeStatus('failed', null as never))).toBe('INVALID_ARGUMENT');
  });

  it('refuses an unknown status or event type', () => {
    expect(code(() => manager.addStatusCallback('done' as never, () => {}))).toBe('INVALID_ARGUMENT');
    expect(code(() => manager.removeStatusCallback('COMPLETED' as never, () => {}))).toBe('INVALID_ARGUMENT');
    expect(code(() => manager.onUpgradeStatus('skipped', () => {}))).toBe('INVALID_ARGUMENT');
    expect(code(() => manager.on('task.finished' as never, () => {}))).toBe('INVALID_ARGUMENT');
    expect(() => manager.addStatusCallback('done' as never, () => {})).toThrow(/\[@progress\/callbacks\] addStatusCallback: status "done" is not one of/);
    expect(manager.getCallbackCounts()).toEqual({ eventCallbacks: 0, statusCallbacks: {} });
  });

  it('refuses bad options', () => {
    expect(code(() => new CallbackManager({ timeoutMs: 0 }))).toBe('INVALID_ARGUMENT');
    expect(code(() => new CallbackManager({ timeoutMs: Number.NaN }))).toBe('INVALID_ARGUMENT');
    // Past what setTimeout takes, Node fires it after 1 ms: every async call would time out at once.
    expect(code(() => new CallbackManager({ timeoutMs: MAX_TIMER_MS + 1 }))).toBe('INVALID_ARGUMENT');
    expect(code(() => new CallbackManager({ timeoutMs: MAX_TIMER_MS }))).toBeUndefined();
    // A queue of 0 would drop every event that comes while its callback is busy.
    expect(code(() => new CallbackManager({ maxQueueSize: 0 }))).toBe('INVALID_ARGUMENT');
    expect(code(() => new CallbackManager({ maxQueueSize: 1 }))).toBeUndefined();
    expect(code(() => new CallbackManager({ maxQueueSize: 1.5 }))).toBe('INVALID_ARGUMENT');
    expect(code(() => new CallbackManager({ dropPolicy: 'random' as never }))).toBe('INVALID_ARGUMENT');
    expect(code(() => new CallbackManager({ onError: 'log' as never }))).toBe('INVALID_ARGUMENT');
    // A logger that is not one would swallow every line.
    expect(code(() => new CallbackManager({ logger: 42 as never }))).toBe('INVALID_ARGUMENT');
    expect(code(() => new CallbackManager({ logger: {} as never }))).toBe('INVALID_ARGUMENT');
    expect(code(() => new CallbackManager({ timeoutMs: Infinity }))).toBeUndefined();
  });
});
