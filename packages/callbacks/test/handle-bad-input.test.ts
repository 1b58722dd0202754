import { describe, expect, it } from 'vitest';
import { isProgressError, ProgressTracker, type ProgressEvent, type UpgradeProgress } from '@progress/core';
import { CallbackManager } from '../src/index.js';
import { thrown } from '../../../tools/test-utils/src/thrown.js';

// handle() is the sink side, called by the tracker; a program that hands events over itself (from a
// store's watch(), a queue) can pass anything. What is not an event and its upgrade's state is
// refused with INVALID_ARGUMENT before any callback sees it or any count moves.

async function sample(): Promise<{ event: ProgressEvent; state: UpgradeProgress }> {
  const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c' });
  await tracker.addTask('t1', 'Task 1');
  const event = await tracker.startUpgrade();
  const state = structuredClone(tracker.progress) as UpgradeProgress;
  await tracker.close();
  return { event, state };
}

describe('CallbackManager.handle() with what is not an event and its state', async () => {
  const { event, state } = await sample();
  const cases: Array<[string, unknown, unknown]> = [
    ['a null event', null, state],
    ['an undefined event', undefined, state],
    ['a string event', 'upgrade.started', state],
    ['an empty object', {}, state],
    ['an event without a valid upgradeId', { ...event, upgradeId: '../x' }, state],
    ['an event of an unknown type', { ...event, type: 'upgrade.exploded' }, state],
    ['a null state', event, null],
    ['a state that is a number', event, 42],
    ['the state of another upgrade', event, { ...state, upgradeId: 'u2' }],
    ['an event whose every read throws', new Proxy({}, { get: () => { throw new Error('trap'); } }), state],
  ];

  it.each(cases)('refuses %s with INVALID_ARGUMENT, calls no callback and counts nothing', async (_, badEvent, badState) => {
    const manager = new CallbackManager();
    const seen: unknown[] = [];
    manager.addEventCallback((e) => void seen.push(e));
    manager.onUpgradeStatus('in_progress', (e) => void seen.push(e));
    const err = thrown(() => manager.handle(badEvent as ProgressEvent, badState as UpgradeProgress));
    expect(isProgressError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect(err.message).toMatch(/^\[@progress\/callbacks\] handle\(\)/);
    await manager.flush();
    expect(seen).toEqual([]);
    expect(manager.getStats()).toMatchObject({ events: 0, calls: 0 });
    // Still works for a real one.
    manager.handle(event, state);
    await manager.flush();
    expect(seen).toHaveLength(2);
    await manager.close();
  });
});

describe('CallbackManager.handle() with a state it cannot copy for the callbacks', () => {
  // A program handing states over itself may put in them what structuredClone cannot copy (a
  // function, a class instance with a private field); the tracker's states never hold such.
  it.each([
    ['metadata holding a function', (s: UpgradeProgress) => void (s.metadata = { hook() {} })],
    ['a task field (of a newer core) holding an object with a function', (s: UpgradeProgress) => void Object.assign(s.tasks.t1!, { owner: { hook() {} } })],
  ])('refuses %s with INVALID_ARGUMENT, calls no callback and counts nothing', async (_, spoil) => {
    const { event, state } = await sample();
    spoil(state);
    const manager = new CallbackManager();
    const seen: unknown[] = [];
    manager.addEventCallback((e, s) => void seen.push(s.lastSeq));
    const err = thrown(() => manager.handle(event, state));
    expect(isProgressError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect(err.message).toMatch(/^\[@progress\/callbacks\] handle\(\) .*cannot be copied/);
    await manager.flush();
    expect(seen).toEqual([]);
    expect(manager.getStats()).toMatchObject({ events: 0, calls: 0 });
    await manager.close();
  });

  it('refuses it with INVALID_ARGUMENT when only a status callback that takes no state (just the task) would be handed the task', async () => {
    // No callback reads the state, so it is not recorded: the task entering its status is copied on
    // its own for the callback, and that copy cannot be made either.
    const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c' });
    await tracker.addTask('t1', 'Task 1');
    const event = await tracker.startTask('t1');
    const state = structuredClone(tracker.progress) as UpgradeProgress;
    await tracker.close();
    Object.assign(state.tasks.t1!, { owner: { hook() {} } });
    const manager = new CallbackManager();
    const seen: string[] = [];
    manager.addStatusCallback('in_progress', (task) => void seen.push(task.taskId));
    const err = thrown(() => manager.handle(event, state));
    expect(isProgressError(err, 'INVALID_ARGUMENT'), String(err)).toBe(true);
    expect(err.message).toMatch(/^\[@progress\/callbacks\] handle\(\) .*cannot be copied/);
    await manager.flush();
    expect(seen).toEqual([]);
    expect(manager.getStats()).toMatchObject({ events: 0, calls: 0 });
    await manager.close();
  });

  it('keeps nothing of a state it refused: the same state, mended, is copied whole', async () => {
    const { event, state } = await sample();
    const metadata: Record<string, unknown> = { ticket: 'OPS-1', hook() {} };
    state.metadata = metadata;
    const manager = new CallbackManager();
    const given: unknown[] = [];
    manager.addEventCallback((_e, s) => void given.push(s.metadata));
    expect(isProgressError(thrown(() => manager.handle(event, state)), 'INVALID_ARGUMENT')).toBe(true);
    delete metadata.hook;
    manager.handle(event, state);
    await manager.close();
    expect(given).toEqual([{ ticket: 'OPS-1' }]);
  });
});
