import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import type { TaskProgress, UpgradeProgress } from '@progress/core';
import { CallbackManager } from '../src/index.js';
import { StateHistory, type StateVersion } from '../src/state-versions.js';
import { deferred, openTracker } from './helpers.js';

// A full garbage collection on demand, without starting the test process with --expose-gc.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const TASKS = 50;
const UPDATES = 400;

/**
 * Weak references to every state version the callbacks record from here on, to count what is still
 * held after a gc(); `restore()` puts the recording back. Not a vi.spyOn: a spy keeps every result
 * (each version) for good.
 */
function recordVersions(): { recorded: Array<WeakRef<StateVersion>>; restore(): void } {
  const recorded: Array<WeakRef<StateVersion>> = [];
  const record = StateHistory.prototype.record;
  StateHistory.prototype.record = function (this: StateHistory, live: Readonly<UpgradeProgress>) {
    const version = record.call(this, live);
    recorded.push(new WeakRef(version));
    return version;
  };
  return { recorded, restore: () => void (StateHistory.prototype.record = record) };
}

const TASK_LIST = Array.from({ length: TASKS }, (_, i) => ({ taskId: `t${i}`, taskName: `Task ${i}` }));

/** 200 progress updates, each awaited, then a turn of the event loop for the calls they started. */
async function moreUpdates(tracker: Awaited<ReturnType<typeof openTracker>>): Promise<void> {
  for (let i = 0; i < 200; i++) await tracker.updateTaskProgress(`t${i % TASKS}`, (i % 90) + 5, `more ${i}`);
  await new Promise((resolve) => setTimeout(resolve, 0));
}

/** How many of the recorded versions a full garbage collection leaves alive. */
function alive(recorded: Array<WeakRef<StateVersion>>): number {
  gc();
  return recorded.filter((ref) => ref.deref() !== undefined).length;
}

describe('CallbackManager: memory held by queued calls', () => {
  it('shares the unchanged tasks between the states of consecutive events (a call queued behind a hung callback does not hold a copy of every task)', async () => {
    const manager = new CallbackManager({ timeoutMs: 600_000 });
    const gate = deferred();
    const states: UpgradeProgress[] = [];
    // Hangs on its first event: every later event waits in its queue.
    manager.addEventCallback(async (e, state) => {
      if (e.seq === 1) await gate.promise;
      states.push(state);
    });
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.addTasks(TASK_LIST);
    for (let i = 0; i < UPDATES; i++) await tracker.updateTaskProgress(`t${i % TASKS}`, (i % 99) + 1, `step ${i}`);
    const events = tracker.durableProgress.lastSeq;
    expect(manager.getStats().pending).toBe(events);
    gate.resolve();
    await tracker.close();
    await manager.close();

    expect(states).toHaveLength(events);
    const distinct = new Set<TaskProgress>();
    for (const state of states) for (const task of Object.values(state.tasks)) distinct.add(task);
    // One task changes per update: TASKS + UPDATES task objects in all, where copying the whole
    // state for every event made TASKS * UPDATES (20,000 here).
    expect(distinct.size).toBeLessThanOrEqual(TASKS + UPDATES);
    // Each state is still the state as of its own event.
    for (const [i, state] of states.entries()) expect(state.lastSeq).toBe(i + 1);
    for (const [i, state] of states.slice(events - UPDATES).entries()) {
      expect(state.tasks[`t${i % TASKS}`]!.percentage).toBe((i % 99) + 1);
      if (i >= TASKS) expect(state.tasks[`t${(i + 1) % TASKS}`]!.percentage).toBe(((i + 1 - TASKS) % 99) + 1);
    }
    expect(states.at(-1)).toEqual(tracker.durableProgress);
  });

  it('does not keep the state made for the callbacks that ran in a call queued for the same event', async () => {
    const manager = new CallbackManager({ timeoutMs: 600_000 });
    const gate = deferred();
    manager.addEventCallback(async (e, _state) => {
      if (e.seq === 1) await gate.promise;
    });
    const made: Array<[number, WeakRef<UpgradeProgress>]> = [];
    // Runs at once (synchronous, idle): it is given the state, and lets go of it.
    manager.addEventCallback((e, state) => void made.push([e.seq, new WeakRef(state)]));
    const tracker = await openTracker(manager);
    await tracker.addTasks(TASK_LIST);
    for (let i = 0; i < 50; i++) await tracker.updateTaskProgress(`t${i % TASKS}`, i + 1, `step ${i}`);
    expect(manager.getStats().pending).toBe(tracker.durableProgress.lastSeq);
    await new Promise((resolve) => setTimeout(resolve, 0));
    gc();
    // The hung callback's queue holds a call for every event after the first, each with the state
    // of its event: made when it runs, from what its event changed. What is left is the state of
    // the call that hangs (its own argument) and the last state made (shared by the callbacks of
    // that event); a queued call used to hold the very copy the other callbacks were given.
    const last = tracker.durableProgress.lastSeq;
    expect(made.filter(([, ref]) => ref.deref() !== undefined).map(([seq]) => seq)).toEqual([1, last]);
    gate.resolve();
    await tracker.close();
    await manager.close();
  });

  it('lets go of the versions of past events once the callback that was behind has caught up', async () => {
    const manager = new CallbackManager({ timeoutMs: 600_000 });
    const gate = deferred();
    // Behind for a while (its first event hangs), then runs each event at once again.
    manager.addEventCallback(async (e, _state) => {
      if (e.seq === 1) await gate.promise;
    });
    // Keeps up: given the state of every event as it comes.
    manager.addEventCallback((_e, _state) => {});
    const { recorded, restore } = recordVersions();
    try {
      const tracker = await openTracker(manager);
      await tracker.addTasks(TASK_LIST);
      for (let i = 0; i < 20; i++) await tracker.updateTaskProgress(`t${i % TASKS}`, i + 1, `step ${i}`);
      gate.resolve();
      await manager.flush();
      // Caught up: from here on every call runs when its event comes.
      await moreUpdates(tracker);
      expect(manager.getStats().pending).toBe(0);
      // No call waits for any of them: what is left is the newest few, not every version since the
      // last one the callback that was behind was given (a chain of 200 here, growing with the run).
      expect(alive(recorded)).toBeLessThanOrEqual(3);
      await tracker.close();
    } finally {
      restore();
      await manager.close();
    }
  });

  it('lets go of the versions of later events when a callback that took an earlier one is idle', async () => {
    const manager = new CallbackManager();
    // Takes one event only, and is idle from then on.
    manager.on('upgrade.started', (_e, _state) => {});
    // Keeps up: given the state of every event as it comes.
    manager.addEventCallback((_e, _state) => {});
    const { recorded, restore } = recordVersions();
    try {
      const tracker = await openTracker(manager);
      await tracker.startUpgrade();
      await tracker.addTasks(TASK_LIST);
      await moreUpdates(tracker);
      // The state the idle callback was given last must not hold every version after it (through `next`).
      expect(alive(recorded)).toBeLessThanOrEqual(3);
      await tracker.close();
    } finally {
      restore();
      await manager.close();
    }
  });

  it('holds the versions of the calls waiting behind a callback that hangs, not of every event since it hung', async () => {
    // Hangs on upgrade.started; the queue keeps the latest 10 (dropping the oldest).
    const manager = new CallbackManager({ timeoutMs: Infinity, maxQueueSize: 10 });
    manager.addEventCallback((e, _state) => (e.type === 'upgrade.started' ? new Promise(() => {}) : undefined));
    manager.addEventCallback((_e, _state) => {});
    const { recorded, restore } = recordVersions();
    try {
      const tracker = await openTracker(manager);
      await tracker.addTasks(TASK_LIST);
      await tracker.startUpgrade(); // hangs
      await moreUpdates(tracker);
      expect(manager.getStats()).toMatchObject({ pending: 11, dropped: 190 });
      // The 10 queued calls' versions (and the newest): not the 200 since the hung call's event.
      expect(alive(recorded)).toBeLessThanOrEqual(12);
      await manager.close(0); // gives up on the hung call
      await tracker.close();
    } finally {
      restore();
      await manager.close(0);
    }
  });

  it('holds the versions of the calls waiting behind a callback that hangs when it is the only one that reads the state', async () => {
    // As above, but no other callback is given a state: the state made last is the hung call's, and
    // it held every version recorded since (through \`next\`), the 190 dropped ones included, for as
    // long as the call hangs (for ever with \`timeoutMs: Infinity\`).
    const manager = new CallbackManager({ timeoutMs: Infinity, maxQueueSize: 10 });
    manager.addEventCallback((e, _state) => (e.type === 'upgrade.started' ? new Promise(() => {}) : undefined));
    const { recorded, restore } = recordVersions();
    try {
      const tracker = await openTracker(manager);
      await tracker.addTasks(TASK_LIST);
      await tracker.startUpgrade(); // hangs
      await moreUpdates(tracker);
      expect(manager.getStats()).toMatchObject({ pending: 11, dropped: 190 });
      expect(alive(recorded)).toBeLessThanOrEqual(12);
      await manager.close(0); // gives up on the hung call
      await tracker.close();
    } finally {
      restore();
      await manager.close(0);
    }
  });

  it('lets go of the versions of later events when a callback whose call hangs is removed', async () => {
    const manager = new CallbackManager({ timeoutMs: Infinity });
    const off = manager.addEventCallback((e, _state) => (e.type === 'upgrade.started' ? new Promise(() => {}) : undefined));
    manager.addEventCallback((_e, _state) => {});
    const { recorded, restore } = recordVersions();
    try {
      const tracker = await openTracker(manager);
      await tracker.addTasks(TASK_LIST);
      await tracker.startUpgrade(); // hangs
      off(); // its call still runs (and is awaited by flush()), nothing more is queued for it
      await moreUpdates(tracker);
      expect(manager.getStats().pending).toBe(1);
      expect(alive(recorded)).toBeLessThanOrEqual(3);
      await manager.close(0); // gives up on the hung call
      await tracker.close();
    } finally {
      restore();
      await manager.close(0);
    }
  });

  it('gives deeply frozen states and tasks: a callback cannot change what the others, or later events, see', async () => {
    const manager = new CallbackManager();
    const errors: unknown[] = [];
    const seen: UpgradeProgress[] = [];
    const tasks: TaskProgress[] = [];
    const m2 = new CallbackManager({ onError: (err) => void errors.push(err) });
    m2.addEventCallback((_e, state) => {
      (state.tasks.t1 as { percentage: number }).percentage = 99;
    });
    m2.addEventCallback((_e, state) => {
      (state as { status: string }).status = 'failed';
    });
    m2.addEventCallback((_e, state) => {
      (state.tasks.t1!.recentEvents as unknown[]).push('x');
    });
    m2.addEventCallback((_e, state) => void seen.push(state));
    m2.addStatusCallback('in_progress', (task, _e, state) => {
      tasks.push(task);
      expect(task).toBe(state.tasks[task.taskId]);
    });
    const tracker = await openTracker(m2);
    await tracker.addTask('t1', 'Task 1');
    await tracker.startTask('t1');
    await tracker.updateTaskProgress('t1', 10, 'ten');
    await tracker.close();
    await m2.close();
    await manager.close();
    // Four events, three callbacks that write (on the first one, t1 is not there yet: a TypeError too).
    expect(errors).toHaveLength(12);
    for (const err of errors) expect(err).toBeInstanceOf(TypeError);
    expect(seen.map((s) => [s.status, s.tasks.t1?.percentage, s.tasks.t1?.recentEvents.length])).toEqual([
      ['not_started', undefined, undefined],
      ['not_started', 0, 1],
      ['not_started', 0, 2],
      ['not_started', 10, 3],
    ]);
    expect(tasks).toHaveLength(1);
    expect(Object.isFrozen(tasks[0])).toBe(true);
    expect(Object.isFrozen(seen[3]!.tasks)).toBe(true);
    expect(Object.isFrozen(seen[3]!.metadata)).toBe(true);
  });
});
