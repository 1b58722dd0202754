import { describe, expect, it, vi } from 'vitest';
import { ProgressTracker, type ProgressEvent, type TaskProgress, type UpgradeProgress } from '@progress/core';
import { CallbackManager } from '../src/index.js';
import { StateHistory } from '../src/state-versions.js';
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

  it('gives the state to every event and status callback that may read it (a default value, arguments[1]), copying it once per event and only for an event such a callback takes', async () => {
    const manager = new CallbackManager();
    const got: Array<[string, number, unknown]> = [];
    manager.addEventCallback((e, state = null as unknown as UpgradeProgress) => void got.push(['default', e.seq, state]));
    manager.addEventCallback(function (e) {
      // eslint-disable-next-line prefer-rest-params
      got.push(['arguments', e.seq, arguments[1]]);
    });
    manager.addEventCallback((e) => void got.push(['one', e.seq, undefined]));
    manager.addStatusCallback('in_progress', (task, e, state = null as unknown as UpgradeProgress) => void got.push(['status', e.seq, state]));
    // Counts the manager's records of the state (what an event changed, from which callbacks get it).
    const record = vi.spyOn(StateHistory.prototype, 'record');
    const tracker = await openTracker(manager);
    await tracker.addTask('t1', 'Task 1');
    await tracker.startTask('t1');
    expect(record).toHaveBeenCalledTimes(3);
    manager.clearAllCallbacks();
    manager.on('task.completed', (_e, _state) => {});
    // An arrow that declares only the event cannot read the state: it costs no copy.
    manager.on('task.added', (e) => void got.push(['plain', e.seq, undefined]));
    await tracker.completeTask('t1');
    // An event that no callback taking the state takes costs no copy.
    await tracker.addTask('t2', 'Task 2');
    await tracker.close();
    expect(record).toHaveBeenCalledTimes(4);
    record.mockRestore();
    const bySeq = (seq: number) => got.filter(([, s]) => s === seq);
    expect(bySeq(3).map(([who]) => who)).toEqual(['default', 'arguments', 'one', 'status']);
    for (const seq of [1, 2, 3]) {
      const states = bySeq(seq)
        .filter(([who]) => who !== 'one')
        .map(([, , state]) => state);
      expect(states.length).toBeGreaterThan(0);
      for (const state of states) expect(state, `seq ${seq}`).toMatchObject({ lastSeq: seq });
      // One copy per event, shared by its callbacks.
      expect(new Set(states).size).toBe(1);
    }
  });

  it('costs no copy of the state for a status callback that declares only the task and the event', async () => {
    const manager = new CallbackManager();
    const done: string[] = [];
    manager.addStatusCallback('completed', (task, e) => void done.push(`${task.taskId}:${e.type}`));
    const record = vi.spyOn(StateHistory.prototype, 'record');
    try {
      const tracker = await openTracker(manager);
      await tracker.addTask('t1', 'Task 1');
      await tracker.completeTask('t1');
      await tracker.close();
      expect(done).toEqual(['t1:task.completed']);
      expect(record).not.toHaveBeenCalled();
    } finally {
      record.mockRestore();
    }
  });

  it('keeps task ids such as "__proto__" and "constructor" as ordinary keys of the state it gives', async () => {
    const manager = new CallbackManager();
    const keys: string[][] = [];
    const completed: string[] = [];
    manager.addEventCallback((_e, state) => void keys.push(Object.keys(state.tasks)));
    manager.addStatusCallback('completed', (task, _e, state) => {
      expect(state.tasks[task.taskId]).toBe(task);
      completed.push(task.taskId);
    });
    const tracker = await openTracker(manager);
    await tracker.addTask('constructor', 'Task constructor');
    await tracker.addTask('__proto__', 'Task __proto__');
    await tracker.completeTask('__proto__');
    await tracker.close();
    expect(keys).toEqual([[], ['constructor'], ['constructor', '__proto__'], ['constructor', '__proto__']]);
    expect(completed).toEqual(['__proto__']);
  });

  it('deep-freezes a copy of the metadata, leaving the tracker\'s own alone', async () => {
    const manager = new CallbackManager();
    const states: UpgradeProgress[] = [];
    manager.addEventCallback((_e, state) => void states.push(state));
    const tracker = await ProgressTracker.open({ upgradeId: 'cb-metadata', planId: 'p', clusterName: 'c', metadata: { owner: { team: 'db' } }, sinks: [manager] });
    await tracker.startUpgrade();
    await tracker.close();
    const metadata = states[1]!.metadata as { owner: { team: string } };
    expect(metadata).toEqual({ owner: { team: 'db' } });
    expect(Object.isFrozen(metadata.owner)).toBe(true);
    expect(metadata).not.toBe(tracker.durableProgress.metadata);
  });

  it('copies the metadata again when the state handed over has a new metadata object', async () => {
    const events: ProgressEvent[] = [];
    const source = await openTracker(new CallbackManager());
    source.subscribe((event) => void events.push(event));
    await source.startUpgrade();
    await source.addTask('t1', 'Task 1');
    await source.close();
    const manager = new CallbackManager();
    const given: unknown[] = [];
    manager.addEventCallback((_e, state) => void given.push(state.metadata));
    // One live state object, as a program handing events over itself may keep and change.
    const live = structuredClone(source.durableProgress) as UpgradeProgress;
    live.metadata = { ticket: 'OPS-1' };
    manager.handle(events[0]!, live);
    live.metadata = { ticket: 'OPS-2' };
    manager.handle(events[1]!, live);
    await manager.close();
    expect(given).toEqual([{ ticket: 'OPS-1' }, { ticket: 'OPS-2' }]);
  });

  it('drops from the states it gives a task that the state handed over no longer has', async () => {
    const events: ProgressEvent[] = [];
    const source = await openTracker(new CallbackManager());
    source.subscribe((event) => void events.push(event));
    for (const id of ['a', 'b', 'c', 'd']) await source.addTask(id, `Task ${id}`);
    await source.close();
    const manager = new CallbackManager();
    const keys: string[][] = [];
    manager.addEventCallback((_e, state) => void keys.push(Object.keys(state.tasks)));
    // Behind from the first event: its later states are made when it drains, from the versions recorded.
    const gate = deferred();
    const behind: string[][] = [];
    manager.addEventCallback(async (e, state) => {
      behind.push(Object.keys(state.tasks));
      if (e.seq === events[0]!.seq) await gate.promise;
    });
    // One live state object, as a program handing events over itself may keep and change.
    const live = structuredClone(source.durableProgress) as UpgradeProgress;
    manager.handle(events[0]!, live);
    manager.handle(events[1]!, live);
    delete live.tasks.b;
    manager.handle(events[2]!, live);
    manager.handle(events[3]!, live);
    gate.resolve();
    await manager.close();
    const expected = [['a', 'b', 'c', 'd'], ['a', 'b', 'c', 'd'], ['a', 'c', 'd'], ['a', 'c', 'd']];
    expect(keys).toEqual(expected);
    expect(behind).toEqual(expected);
  });

  it('keeps, deep-frozen and copied, the fields of a task it does not know (a newer core)', async () => {
    const events: ProgressEvent[] = [];
    const source = await openTracker(new CallbackManager());
    source.subscribe((event) => void events.push(event));
    await source.addTask('a', 'Task a');
    await source.close();
    const manager = new CallbackManager();
    const tasks: TaskProgress[] = [];
    manager.addEventCallback((_e, state) => void tasks.push(state.tasks.a!));
    const live = structuredClone(source.durableProgress) as UpgradeProgress;
    const owner = { team: 'db' };
    Object.assign(live.tasks.a!, { owner });
    manager.handle(events[0]!, live);
    await manager.close();
    const task = tasks[0] as TaskProgress & { owner?: { team: string } };
    expect(task.owner).toEqual({ team: 'db' });
    expect(task.owner).not.toBe(owner);
    expect(Object.isFrozen(task.owner)).toBe(true);
    expect(Object.isFrozen(owner)).toBe(false);
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

  it("shows a parent task's percentage as its children's progress changes it, though the parent records no event of its own", async () => {
    const manager = new CallbackManager();
    const states = new Map<number, UpgradeProgress>();
    manager.addEventCallback((e, state) => void states.set(e.seq, state));
    const tracker = await openTracker(manager);
    await tracker.addTask('p', 'Parent');
    await tracker.addTask('c', 'Child', 'upgrade_step', { parentTaskId: 'p' });
    await tracker.startTask('c');
    const progressed = await tracker.updateTaskProgress('c', 50);
    const completed = await tracker.completeTask('c');
    await tracker.close();
    expect(states.get(progressed.seq)!.tasks.p!.percentage).toBe(50);
    expect(states.get(completed.seq)!.tasks.p!.percentage).toBe(100);
    expect(states.get(completed.seq)).toEqual(tracker.durableProgress);
  });

  it('gives an onUpgradeStatus callback that declares only the upgrade its state, when no other callback takes the state', async () => {
    const manager = new CallbackManager();
    const upgrades: UpgradeProgress[] = [];
    manager.onUpgradeStatus('in_progress', (upgrade) => void upgrades.push(upgrade));
    manager.on('*', (e) => void e.seq);
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.close();
    expect(upgrades).toHaveLength(1);
    expect(upgrades[0]).toMatchObject({ lastSeq: 2, status: 'in_progress' });
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
