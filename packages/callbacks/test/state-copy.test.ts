import { describe, expect, it } from 'vitest';
import type { TaskProgress, UpgradeProgress } from '@progress/core';
import { CallbackManager } from '../src/index.js';
import { deferred, openTracker } from './helpers.js';

describe('CallbackManager: what callbacks are given', () => {
  it('gives a copy of the state that later events do not change, shared by the callbacks of one event', async () => {
    const manager = new CallbackManager();
    const first = new Map<number, UpgradeProgress>();
    const second = new Map<number, UpgradeProgress>();
    manager.addEventCallback((e, state) => void first.set(e.seq, state));
    manager.on('*', (e, state) => void second.set(e.seq, state));
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.addTask('t1', 'Task 1');
    await tracker.completeTask('t1');
    await tracker.close();
    const atTwo = first.get(2)!;
    expect(atTwo).toMatchObject({ lastSeq: 2, status: 'in_progress', tasks: {} });
    expect(first.get(3)!.tasks.t1!.status).toBe('not_started');
    expect(first.get(4)!.tasks.t1!.status).toBe('completed');
    expect(first.get(4)).not.toBe(tracker.durableProgress);
    expect(first.get(4)).toEqual(tracker.durableProgress);
    for (const seq of [1, 2, 3, 4]) expect(second.get(seq)).toBe(first.get(seq));
  });

  it('copies the state only for callbacks that declare it', async () => {
    const manager = new CallbackManager();
    const args: unknown[][] = [];
    manager.addEventCallback(function (this: unknown, _event) {
      // eslint-disable-next-line prefer-rest-params
      args.push([...arguments]);
    });
    const tracker = await openTracker(manager);
    await tracker.close();
    expect(args).toHaveLength(1);
    expect(args[0]![1]).toBeUndefined();

    const rest = new CallbackManager();
    const restArgs: unknown[][] = [];
    rest.addEventCallback((...a: unknown[]) => void restArgs.push(a)); // arity unknown: gets the state
    const tracker2 = await openTracker(rest);
    await tracker2.close();
    expect(restArgs[0]![1]).toMatchObject({ lastSeq: 1 });
  });

  it('a queued call gets the state as of its own event, not the state when it finally runs', async () => {
    const manager = new CallbackManager();
    const gate = deferred();
    const lastSeqs: Array<[number, number]> = [];
    manager.addEventCallback(async (e, state) => {
      if (e.seq === 1) await gate.promise;
      lastSeqs.push([e.seq, state.lastSeq]);
    });
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.addTask('t1', 'Task 1');
    gate.resolve();
    await tracker.close();
    expect(lastSeqs).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
    ]);
  });

  it('gives status callbacks a copy of the task that later events do not change', async () => {
    const manager = new CallbackManager();
    const failed: TaskProgress[] = [];
    manager.addStatusCallback('failed', (task) => void failed.push(task));
    const tracker = await openTracker(manager);
    await tracker.addTask('t1', 'Task 1');
    await tracker.failTask('t1', 'boom');
    await tracker.retryTask('t1');
    await tracker.completeTask('t1');
    await tracker.close();
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ taskId: 't1', status: 'failed', errorMessage: 'boom', retryCount: 0 });
    expect(failed[0]!.recentEvents.map((e) => e.type)).toEqual(['task.added', 'task.failed']);
    expect(tracker.durableProgress.tasks.t1).toMatchObject({ status: 'completed', retryCount: 1 });
  });
});
