// Found on 2026-11-29: legacy files whose values do not fit loaded as something else. An upgrade
// status only a task can have ("skipped") loaded as in_progress; a task percentage of 250 gave an
// overall percentage of 250 (now brought to 100); and a task the old module completed, started again and failed kept the
// first run's start, with a duration spanning both runs and a task.progress on a completed task.
import { mkdir, readFile, readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressTracker, type ProgressEvent, type UpgradeProgress } from '@progress/core';
import { JsonFileStore } from '../src/index.js';
import { removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

/** Loads `doc` as the legacy file of upgrade u1: its state (or the error's code and message) and its events. */
async function load(doc: object): Promise<{ state: UpgradeProgress | { code: string; message: string } | undefined; events: ProgressEvent[]; file: string }> {
  const dir = await tempDir('legacy-values');
  await mkdir(join(dir, 'progress'));
  const file = join(dir, 'progress', 'upgrade_u1.json');
  await writeFile(file, JSON.stringify(doc));
  const store = new JsonFileStore({ directory: dir });
  try {
    const state = await store.load('u1').catch((e: { code: string; message: string }) => ({ code: e.code, message: e.message }));
    const events: ProgressEvent[] = [];
    if (state && !('code' in state)) for await (const e of store.readEvents('u1', 0)) events.push(e);
    return { state, events, file };
  } finally {
    await store.close();
  }
}

const base = { upgrade_id: 'u1', plan_id: 'p', cluster_name: 'c', started_at: '2025-10-20 05:25:00+00:00' };
const at = (m: string) => `2025-10-20 05:${m}+00:00`;
const task = (fields: object) => ({ a: { task_id: 'a', task_name: 'A', status: 'in_progress', started_at: base.started_at, ...fields } });

describe('legacy values that do not fit', () => {
  it('reads a percentage written as a decimal string (json.dump default=str of a Decimal or a numpy float32) as that number, as the old module read it back', async () => {
    // (It loaded as no percentage: this task at 0% where the file, and the old module, had 50%.)
    const events = [
      { event_id: 'e1', status: 'in_progress', timestamp: at('25:00'), message: 'Task started', percentage: '0.0' },
      { event_id: 'e2', status: 'in_progress', timestamp: at('26:00'), message: 'Halfway', percentage: '50.0' },
    ];
    const { state, events: loaded } = await load({ ...base, status: 'in_progress', tasks: { ...task({ percentage: '50.0', events }), b: { task_id: 'b', task_name: 'B', status: 'in_progress', started_at: base.started_at, percentage: '1E+3' } } });
    expect(state).toMatchObject({ overallPercentage: 75, tasks: { a: { percentage: 50 }, b: { percentage: 100 } } });
    expect(loaded.find((e) => e.eventId === 'e2')).toMatchObject({ type: 'task.progress', percentage: 50, details: {} });
    // In 0..100 already: there is no recorded value to keep (the string is not one brought into range).
    expect(loaded.find((e) => e.eventId === 'e2')!.details).toEqual({});
    // Brought into 0..100 as a number would be, the recorded value kept.
    expect(loaded.find((e) => e.taskId === 'b' && e.type === 'task.progress')).toMatchObject({ percentage: 100, details: { legacyPercentage: '1E+3' } });
    // A string that is not a decimal number is still no percentage.
    for (const bad of ['', ' ', 'nan', 'Infinity', '0x10', '50%', 'half']) {
      const other = await load({ ...base, status: 'in_progress', tasks: task({ percentage: bad }) });
      expect(other.state, bad).toMatchObject({ tasks: { a: { percentage: 0 } } });
    }
  });

  it('refuses an upgrade status only a task can have ("skipped") with DATA_CORRUPTED naming the field, instead of loading it as in_progress', async () => {
    const { state, file } = await load({ ...base, status: 'skipped' });
    expect(state).toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining(`legacy file ${file} has a status only a task can have in status: "skipped"`) });
  });

  it('brings a percentage outside 0..100, of a task or of one of its events, to the nearest end, keeping the recorded value: the file still loads', async () => {
    // (The old module took any number: 5 of 4 steps made 125. Refusing such a file, as this release
    // first did, would leave an old upgrade unloadable.)
    const big = await load({ ...base, status: 'in_progress', tasks: task({ percentage: 250.0 }) });
    expect(big.state).toMatchObject({ overallPercentage: 100, tasks: { a: { percentage: 100 } } });
    expect(big.events.find((e) => e.taskId === 'a' && e.type === 'task.progress')?.details).toMatchObject({ legacyPercentage: 250 });
    const events = [{ status: 'in_progress', timestamp: at('25:00'), message: 'Task started', percentage: -5.0 }];
    const negative = await load({ ...base, status: 'in_progress', tasks: task({ percentage: 0.0, events }) });
    expect(negative.state).toMatchObject({ overallPercentage: 0, tasks: { a: { percentage: 0 } } });
    expect(negative.events.find((e) => e.type === 'task.started')).toMatchObject({ percentage: 0, details: { legacyPercentage: -5 } });
    // The ends of the range, and no percentage at all (null, or a NaN that loads as null), are as they are.
    for (const percentage of [0.0, 100.0, 42.5, null]) {
      const { state, events } = await load({ ...base, status: 'in_progress', tasks: task({ percentage }) });
      expect(state, String(percentage)).toMatchObject({ status: 'in_progress', overallPercentage: percentage ?? 0 });
      expect(events.some((e) => 'legacyPercentage' in e.details)).toBe(false);
    }
  });

  it('imports a task completed, started again and failed as a retry: the file\'s started_at (the last start) is its start', async () => {
    const { state, events } = await load({
      ...base,
      status: 'in_progress',
      tasks: task({
        status: 'failed',
        // Set just before the restart was recorded, as the old start_task() did; completed_at is the first run's.
        started_at: at('26:59.500000'),
        completed_at: at('26:00'),
        error_message: 'boom',
        events: [
          { status: 'in_progress', timestamp: at('25:00'), message: 'Task started' },
          { status: 'completed', timestamp: at('26:00'), message: 'Task completed' },
          { status: 'in_progress', timestamp: at('27:00'), message: 'Task started' },
          { status: 'failed', timestamp: at('28:00'), message: 'Task failed: boom' },
        ],
      }),
    });
    const a = (state as UpgradeProgress).tasks.a!;
    expect([a.status, a.startedAt, a.completedAt, a.durationMs, a.retryCount, a.errorMessage]).toEqual(['failed', '2025-10-20T05:26:59.500Z', '2025-10-20T05:28:00.000Z', 60_500, 1, 'boom']);
    const of = events.filter((e) => e.taskId === 'a' && e.type !== 'task.added').map((e) => [e.type, e.timestamp.slice(14)]);
    expect(of).toEqual([
      ['task.started', '25:00.000Z'],
      ['task.completed', '26:00.000Z'],
      ['task.retried', '26:59.500Z'],
      ['task.failed', '28:00.000Z'],
    ]);
  });

  it('imports a task completed and started again, still running, as a retry with its recorded percentage (not the completion\'s 100)', async () => {
    const { state } = await load({
      ...base,
      status: 'in_progress',
      tasks: task({
        started_at: at('27:00'),
        completed_at: at('26:00'),
        percentage: 0.0,
        // Each event with the task's percentage at the time, as the old module recorded it.
        events: [
          { status: 'in_progress', timestamp: at('25:00'), message: 'Task started', percentage: 0.0 },
          { status: 'completed', timestamp: at('26:00'), message: 'Task completed', percentage: 100.0 },
          { status: 'in_progress', timestamp: at('27:00'), message: 'Task started', percentage: 0.0 },
        ],
      }),
    });
    const a = (state as UpgradeProgress).tasks.a!;
    expect([a.status, a.startedAt, a.completedAt, a.durationMs, a.retryCount, a.percentage]).toEqual(['in_progress', '2025-10-20T05:27:00.000Z', null, null, 1, 0]);
    expect((state as UpgradeProgress).overallPercentage).toBe(0);
  });

  // Found by reviews on 2026-11-29: the restart records 0 (start_task() set it), or no percentage at
  // all with the task's own 0; either way the failed task loaded at the completion's 100.
  it.each([
    ['the restart records 0', 0.0, 0.0],
    ['the restart records none, the task 0', null, null],
  ])('loads a task completed, started again and failed at the percentage the file records (%s)', async (_label, restartPct, failPct) => {
    const { state } = await load({
      ...base,
      status: 'in_progress',
      tasks: task({
        status: 'failed',
        percentage: 0.0,
        started_at: at('27:00'),
        completed_at: at('26:00'),
        error_message: 'boom',
        events: [
          { status: 'in_progress', timestamp: at('25:00'), message: 'Task started', percentage: 0.0 },
          { status: 'completed', timestamp: at('26:00'), message: 'Task completed', percentage: 100.0 },
          { status: 'in_progress', timestamp: at('27:00'), message: 'Task started', percentage: restartPct },
          { status: 'failed', timestamp: at('28:00'), message: 'Task failed: boom', percentage: failPct },
        ],
      }),
    });
    const s = state as UpgradeProgress;
    expect([s.tasks.a!.status, s.tasks.a!.retryCount, s.tasks.a!.percentage, s.overallPercentage]).toEqual(['failed', 1, 0, 0]);
  });

  // Found by a fourth review on 2026-11-29: the percentage a failure (or a skip, a cancel) records is
  // not applied by the reducer, yet it counted as the task's; a task with no events never got its
  // percentage; and the progress event put before a failure cost it the file's completed_at.
  const ev = (ts: string, status: string, message: string, percentage: number | null) => ({ timestamp: `2025-10-20 05:25:${ts}+00:00`, status, message, details: {}, percentage });
  const loaded = async (doc: object): Promise<UpgradeProgress> => (await load(doc)).state as UpgradeProgress;
  it('a progress update without an event (as steps-1 shows), then a failure that records the task percentage: loads at the file\'s percentage', async () => {
    const s = await loaded({
      ...base,
      status: 'in_progress',
      tasks: { a: { task_id: 'a', status: 'failed', percentage: 50.0, started_at: '2025-10-20 05:25:01+00:00', error_message: 'x',
        events: [ev('01.000000', 'in_progress', 'Task started', 0.0), ev('02.000000', 'in_progress', 'Step 1/4', 25.0), ev('05.000000', 'failed', 'Task failed: x', 50.0)] } },
    });
    expect([s.tasks.a!.status, s.tasks.a!.percentage, s.overallPercentage]).toEqual(['failed', 50, 50]);
  });

  it('a failed task with no events but a percentage loads at that percentage', async () => {
    const s = await loaded({ ...base, status: 'in_progress', tasks: { a: { task_id: 'a', status: 'failed', percentage: 30.0, error_message: 'x' } } });
    expect([s.tasks.a!.status, s.tasks.a!.percentage]).toEqual(['failed', 30]);
  });

  it('the progress event inserted before a failure does not cost the failure its recorded completed_at', async () => {
    const doc = (percentage: number) => ({
      ...base,
      status: 'in_progress',
      tasks: { a: { task_id: 'a', status: 'failed', percentage, started_at: '2025-10-20 05:25:01+00:00', completed_at: '2025-10-20 05:25:04.869989+00:00', error_message: 'x',
        events: [ev('01.000000', 'in_progress', 'Task started', 0.0), ev('04.870030', 'failed', 'Task failed: x', 0.0)] } },
    });
    const zero = (await loaded(doc(0))).tasks.a!;
    expect(zero.completedAt).toBe('2025-10-20T05:25:04.869Z'); // the file's completed_at
    const forty = (await loaded(doc(40))).tasks.a!;
    expect([forty.percentage, forty.completedAt]).toEqual([40, '2025-10-20T05:25:04.869Z']);
  });
});

describe('a legacy task with steps and no percentage', () => {
  // Found on 2026-11-30: a running task that records completed_steps of total_steps but no percentage
  // (null, or a NaN that loads as null) loaded at 0% with 2 of 4 steps done. DESIGN's rule is "the
  // last explicit percentage or completedSteps/totalSteps", and the old module itself derived the
  // percentage from the steps whenever it had total_steps.
  it('loads at completed_steps / total_steps, as advanceTask would record it', async () => {
    for (const percentage of [null, undefined]) {
      const s = (await load({ ...base, status: 'in_progress', tasks: task({ percentage, total_steps: 3, completed_steps: 2 }) })).state as UpgradeProgress;
      expect([s.tasks.a!.completedSteps, s.tasks.a!.totalSteps, s.tasks.a!.percentage, s.overallPercentage], String(percentage)).toEqual([2, 3, 66.67, 66.67]);
    }
    // After events with a percentage of their own, too: the steps are the task's latest record.
    const events = [{ status: 'in_progress', timestamp: at('25:00'), message: 'Task started', percentage: 0.0 }, { status: 'in_progress', timestamp: at('25:01'), message: 'Step 1/4', percentage: 25.0 }];
    const s = (await load({ ...base, status: 'in_progress', tasks: task({ percentage: null, total_steps: 4, completed_steps: 2, events }) })).state as UpgradeProgress;
    expect([s.tasks.a!.completedSteps, s.tasks.a!.percentage]).toEqual([2, 50]);
    // An explicit percentage still wins (as the file records it), and steps without a total give none.
    expect(((await load({ ...base, status: 'in_progress', tasks: task({ percentage: 10.0, total_steps: 4, completed_steps: 2 }) })).state as UpgradeProgress).tasks.a!.percentage).toBe(10);
    expect(((await load({ ...base, status: 'in_progress', tasks: task({ percentage: null, total_steps: null, completed_steps: 2 }) })).state as UpgradeProgress).tasks.a!.percentage).toBe(0);
  });
});

describe('a legacy task recorded as paused', () => {
  // Found on 2026-11-30: the old model let a task be `paused` (its status was any ProgressStatus),
  // which tasks here have not. Such a task loaded as whatever its events said, or as not_started with
  // its start time and percentage lost when it had none, and its `paused` events were dropped with
  // their messages and ids. Here a task stays in_progress while its upgrade is paused: a paused task
  // loads as in_progress, keeping `legacyStatus: "paused"`, as other values that do not fit keep theirs.
  it('loads as in_progress with its start time and percentage, and the paused status kept in the details', async () => {
    const { state, events } = await load({ ...base, status: 'paused', tasks: task({ status: 'paused', started_at: at('25:02'), percentage: 40.0 }) });
    const a = (state as UpgradeProgress).tasks.a!;
    expect([(state as UpgradeProgress).status, a.status, a.startedAt, a.percentage]).toEqual(['paused', 'in_progress', '2025-10-20T05:25:02.000Z', 40]);
    expect(events.find((e) => e.type === 'task.added')!.details).toMatchObject({ legacyStatus: 'paused' });
  });

  it('imports its paused events as progress, with their ids, messages and percentages', async () => {
    const events = [
      { event_id: 'e-1', status: 'in_progress', timestamp: at('25:01'), message: 'Task started', percentage: 0.0 },
      { event_id: 'e-2', status: 'paused', timestamp: at('25:03'), message: 'Task paused', percentage: 30.0 },
    ];
    const loaded = await load({ ...base, status: 'paused', tasks: task({ status: 'paused', started_at: at('25:01'), percentage: 30.0, events }) });
    const a = (loaded.state as UpgradeProgress).tasks.a!;
    expect([a.status, a.startedAt, a.percentage]).toEqual(['in_progress', '2025-10-20T05:25:01.000Z', 30]);
    expect(loaded.events.find((e) => e.eventId === 'e-2')).toMatchObject({ type: 'task.progress', status: 'in_progress', message: 'Task paused', percentage: 30, details: { legacyStatus: 'paused' } });
  });
});

describe('a legacy file with two tasks of one id', () => {
  // Found on 2026-11-30: two entries of `tasks` whose `task_id` is the same (the old module keyed
  // each task by its id, so only a file edited by hand has them) failed in core's reducer, with a
  // message that named neither the file nor the keys: `[@progress/core] upgrade "u1": event seq 4
  // (task.added) adds task "a" twice`. An operator had no way to tell which file to look at.
  it('is refused with DATA_CORRUPTED naming the file and both entries, by load(), list() and a tracker, and nothing is written', async () => {
    const doc = { ...base, status: 'in_progress', tasks: { a: { task_id: 'a', task_name: 'A', status: 'in_progress' }, b: { task_id: 'a', task_name: 'B', status: 'completed' } } };
    const { state, file } = await load(doc);
    expect(state).toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining(`legacy file ${file} has two tasks with the id "a" (tasks.a and tasks.b)`) });
    // A tracker is refused the same way, and the old file is left as it was, with no log written.
    const dir = file.slice(0, -'/progress/upgrade_u1.json'.length);
    const store = new JsonFileStore({ directory: dir });
    try {
      await expect(ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store })).rejects.toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining(file) });
      expect(await store.list()).toEqual([]);
    } finally {
      await store.close();
    }
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(doc);
    // (Opening took and gave back the writer lock in the upgrade's folder, which stays, empty.)
    expect(await readdir(join(dir, 'upgrades', 'u1'))).toEqual([]);
  });

  it('still loads a task whose task_id differs from its key, when no other task has that id', async () => {
    const s = await load({ ...base, status: 'in_progress', tasks: { a: { task_id: 'x', task_name: 'X', status: 'in_progress' }, b: { task_id: 'b', task_name: 'B', status: 'completed' } } });
    expect(Object.keys((s.state as UpgradeProgress).tasks)).toEqual(['x', 'b']);
  });
});

describe("the order and ids of a legacy file's history", () => {
  it("merges the tasks' histories by time, whatever the number of tasks", async () => {
    // Five tasks, each recording its own events, interleaved in time: the import must read them in
    // time order across all of them (a merge that looked at only some of the lists' heads would not).
    const minutes = [[1, 9], [3, 5], [2, 7], [4, 6], [0, 8]];
    const tasks = Object.fromEntries(
      minutes.map(([start, end], i) => {
        const id = `t${i}`;
        const ev = (m: number, status: string, message: string) => ({ event_id: `${id}-${m}`, status, timestamp: at(`${10 + m}:00`), message, percentage: status === 'completed' ? 100.0 : 0.0 });
        return [id, { task_id: id, task_name: id, status: 'completed', started_at: at(`${10 + start!}:00`), completed_at: at(`${10 + end!}:00`), events: [ev(start!, 'in_progress', 'Task started'), ev(end!, 'completed', 'Task completed')] }];
      }),
    );
    const { events } = await load({ ...base, status: 'in_progress', tasks });
    const recorded = events.filter((e) => e.eventId.startsWith('t'));
    expect(recorded).toHaveLength(10);
    const times = recorded.map((e) => e.timestamp);
    expect(times).toEqual([...times].sort());
  });

  it('gives an event id the file repeats (a file edited by hand) to its first event only: every event keeps an id of its own', async () => {
    const events = [
      { event_id: 'e1', status: 'in_progress', timestamp: at('25:00'), message: 'Task started', percentage: 0.0 },
      { event_id: 'e1', status: 'in_progress', timestamp: at('26:00'), message: 'Halfway', percentage: 50.0 },
    ];
    const { events: loaded } = await load({ ...base, status: 'in_progress', tasks: task({ percentage: 50.0, events }) });
    const ids = loaded.map((e) => e.eventId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(loaded.find((e) => e.eventId === 'e1')).toMatchObject({ type: 'task.started' });
  });
});

describe('legacy values pinned field by field', () => {
  it('ends a cancelled task at its recorded completed_at, with its duration, as a completed one', async () => {
    // The old cancel set completed_at just before recording the event, as complete_task() did.
    const cancelled = await load({
      ...base,
      status: 'cancelled',
      completed_at: at('28:00'),
      tasks: task({
        status: 'cancelled',
        completed_at: at('27:00.400000'),
        duration: '0:02:00.400000',
        events: [
          { status: 'in_progress', timestamp: at('25:00'), message: 'Task started' },
          { status: 'cancelled', timestamp: at('27:00.500000'), message: 'Task cancelled' },
        ],
      }),
    });
    expect((cancelled.state as UpgradeProgress).tasks.a).toMatchObject({ status: 'cancelled', completedAt: '2025-10-20T05:27:00.400Z' });
    expect(cancelled.events.find((e) => e.type === 'task.cancelled')?.details).toEqual({ legacyDuration: '0:02:00.400000', legacyDurationMs: 120_400 });
    // A completed task's duration is kept on its completion alike.
    const completed = await load({ ...base, status: 'in_progress', tasks: task({ status: 'completed', completed_at: at('26:00'), duration: '0:01:00', events: [] }) });
    expect(completed.events.find((e) => e.type === 'task.completed')?.details).toEqual({ legacyDuration: '0:01:00', legacyDurationMs: 60_000 });
  });

  it('ends a task that records no events at its completed_at, not at its started_at', async () => {
    const { state } = await load({ ...base, status: 'in_progress', tasks: task({ status: 'completed', completed_at: at('26:00'), events: [] }) });
    expect((state as UpgradeProgress).tasks.a).toMatchObject({ status: 'completed', completedAt: '2025-10-20T05:26:00.000Z' });
  });

  it("takes a failure's error from its details' error_message before its message", async () => {
    const events = [
      { status: 'in_progress', timestamp: at('25:00'), message: 'Task started' },
      { status: 'failed', timestamp: at('26:00'), message: 'Task failed: from the message', details: { error_message: 'from the details' } },
    ];
    const { events: loaded } = await load({ ...base, status: 'in_progress', tasks: task({ status: 'failed', completed_at: at('26:00'), error_message: 'from the task', events }) });
    expect(loaded.find((e) => e.type === 'task.failed')?.details.errorMessage).toBe('from the details');
  });

  it("takes a failure's error from its message only when the message has the old module's form ('Task failed: <error>')", async () => {
    const events = [
      { status: 'in_progress', timestamp: at('25:00'), message: 'Task started' },
      { status: 'failed', timestamp: at('26:00'), message: 'Task failed:edited by hand' },
    ];
    const { events: loaded } = await load({ ...base, status: 'in_progress', tasks: task({ status: 'failed', completed_at: at('26:00'), error_message: 'from the task', events }) });
    expect(loaded.find((e) => e.type === 'task.failed')?.details.errorMessage).toBe('from the task');
  });

  it('loads the completed_steps of a running task whose percentage did not change, with no total_steps', async () => {
    const events = [{ status: 'in_progress', timestamp: at('25:00'), message: 'Task started', percentage: 0.0 }];
    const { state } = await load({ ...base, status: 'in_progress', tasks: task({ percentage: 0.0, completed_steps: 2, total_steps: null, events }) });
    expect((state as UpgradeProgress).tasks.a).toMatchObject({ completedSteps: 2, percentage: 0 });
  });

  it("puts the progress a running task's file adds after its last recorded event, at that event's time", async () => {
    const events = [
      { status: 'in_progress', timestamp: at('25:00'), message: 'Task started', percentage: 0.0 },
      { status: 'in_progress', timestamp: at('26:00'), message: 'Halfway', percentage: 30.0 },
    ];
    const { events: loaded } = await load({ ...base, status: 'in_progress', tasks: task({ percentage: 60.0, events }) });
    expect(loaded.filter((e) => e.taskId === 'a' && e.type === 'task.progress').map((e) => [e.timestamp.slice(14), e.percentage])).toEqual([
      ['26:00.000Z', 30],
      ['26:00.000Z', 60],
    ]);
  });

  it("gives an event recorded without a time its task's started_at, before the upgrade's", async () => {
    const events = [{ status: 'in_progress', message: 'Task started', percentage: 0.0 }];
    const { events: loaded } = await load({ ...base, status: 'in_progress', tasks: task({ started_at: at('26:00'), events }) });
    expect(loaded.find((e) => e.type === 'task.started')?.timestamp).toBe('2025-10-20T05:26:00.000Z');
  });

  it('takes a failed upgrade\'s error from metadata.error_message (where the old module kept it) before a top-level error_message', async () => {
    const { state, events } = await load({ ...base, status: 'failed', error_message: 'top level', metadata: { error_message: 'in metadata' } });
    expect(state).toMatchObject({ status: 'failed', errorMessage: 'in metadata' });
    expect(events.at(-1)).toMatchObject({ type: 'upgrade.failed', message: 'Upgrade failed: in metadata', details: { errorMessage: 'in metadata' } });
  });

  it('gives a task without a task_type, and its events without one, the old module\'s default type upgrade_step', async () => {
    const events = [{ status: 'in_progress', timestamp: at('25:00'), message: 'Task started', percentage: 0.0 }];
    const { state, events: loaded } = await load({ ...base, status: 'in_progress', tasks: { a: { task_id: 'a', status: 'in_progress', started_at: at('25:00'), events } } });
    expect((state as UpgradeProgress).tasks.a).toMatchObject({ taskType: 'upgrade_step' });
    expect(loaded.filter((e) => e.taskId === 'a').map((e) => e.taskType)).toEqual(['upgrade_step', 'upgrade_step']);
  });

  it("starts a running task without events at its started_at, not at a completed_at an earlier run left", async () => {
    // The old start_task() set started_at anew and left completed_at alone.
    const { state, events } = await load({ ...base, status: 'in_progress', tasks: task({ started_at: at('27:00'), completed_at: at('26:00'), events: [] }) });
    expect(events.find((e) => e.taskId === 'a' && e.type === 'task.started')?.timestamp).toBe('2025-10-20T05:27:00.000Z');
    expect((state as UpgradeProgress).tasks.a).toMatchObject({ status: 'in_progress', startedAt: '2025-10-20T05:27:00.000Z' });
  });

  it("names the file (not its path) in upgrade.created, and each task by its task_name in its task.added", async () => {
    const { events } = await load({ ...base, status: 'in_progress', tasks: task({}) });
    expect(events[0]).toMatchObject({ type: 'upgrade.created', message: 'Upgrade imported from upgrade_u1.json', details: { legacyFile: 'upgrade_u1.json' } });
    expect(events.find((e) => e.type === 'task.added')).toMatchObject({ taskId: 'a', message: 'Task added: A', details: { taskName: 'A' } });
  });

  it("dates a file that records no time at all by the file's mtime (when the old module last saved it)", async () => {
    const dir = await tempDir('legacy-values');
    await mkdir(join(dir, 'progress'));
    const file = join(dir, 'progress', 'upgrade_u1.json');
    await writeFile(file, JSON.stringify({ upgrade_id: 'u1', plan_id: 'p', cluster_name: 'c', status: 'not_started' }));
    const saved = new Date('2023-05-06T07:08:09.123Z');
    await utimes(file, saved, saved);
    const store = new JsonFileStore({ directory: dir });
    try {
      expect(await store.load('u1')).toMatchObject({ status: 'not_started', createdAt: '2023-05-06T07:08:09.123Z' });
    } finally {
      await store.close();
    }
  });

  it('loads an upgrade failed or cancelled before it started (no started_at: a failed pre-flight) as never started', async () => {
    const { upgrade_id, plan_id, cluster_name } = base;
    for (const status of ['failed', 'cancelled']) {
      const { state, events } = await load({ upgrade_id, plan_id, cluster_name, status, completed_at: at('26:00') });
      expect(events.map((e) => e.type), status).toEqual(['upgrade.created', `upgrade.${status}`]);
      expect(state, status).toMatchObject({ status, startedAt: null, completedAt: '2025-10-20T05:26:00.000Z' });
    }
  });

  it('ends an upgrade without a completed_at at its latest time, whichever task recorded it', async () => {
    const tasks = {
      a: { task_id: 'a', status: 'completed', started_at: at('25:00'), completed_at: at('29:00') },
      b: { task_id: 'b', status: 'completed', started_at: at('25:00'), completed_at: at('27:00') },
    };
    const { state, events } = await load({ ...base, status: 'completed', tasks });
    expect(state).toMatchObject({ status: 'completed', completedAt: '2025-10-20T05:29:00.000Z' });
    // Paused, its upgrade.paused is at that time too, not at a completed_at an earlier run left.
    const paused = await load({ ...base, status: 'paused', completed_at: at('26:00'), tasks });
    expect(paused.events.at(-1)).toMatchObject({ type: 'upgrade.paused', timestamp: '2025-10-20T05:29:00.000Z' });
    expect(events.map((e) => e.timestamp)).toEqual([...events.map((e) => e.timestamp)].sort());
  });

  it('dates an upgrade whose only time is its completed_at by that time, not by the file\'s mtime', async () => {
    const { state, events } = await load({ upgrade_id: 'u1', plan_id: 'p', cluster_name: 'c', status: 'completed', completed_at: at('28:00') });
    expect(state).toMatchObject({ status: 'completed', createdAt: '2025-10-20T05:28:00.000Z', completedAt: '2025-10-20T05:28:00.000Z' });
    expect(events.map((e) => e.timestamp)).toEqual(events.map(() => '2025-10-20T05:28:00.000Z'));
  });

  it('puts the phase of an upgrade not started at its first time, with the events in time order', async () => {
    const tasks = {
      a: { task_id: 'a', status: 'completed', completed_at: at('29:00') },
      b: { task_id: 'b', status: 'completed', completed_at: at('27:00') },
    };
    const { state, events } = await load({ upgrade_id: 'u1', plan_id: 'p', cluster_name: 'c', current_phase: 'Planning', tasks });
    expect(events.find((e) => e.type === 'upgrade.phase_changed')).toMatchObject({ timestamp: '2025-10-20T05:27:00.000Z', details: { phase: 'Planning' } });
    expect(events.map((e) => e.timestamp)).toEqual([...events.map((e) => e.timestamp)].sort());
    expect(state).toMatchObject({ status: 'not_started', currentPhase: 'Planning' });
  });

  it('loads a file without status, plan or cluster, a metadata that is not an object, and a parent not in the file', async () => {
    const tasks = { a: { task_id: 'a', task_name: 'A', parent_task_id: 'gone', status: 'not_started' } };
    const { state, events } = await load({ upgrade_id: 'u1', current_phase: 'Planning', metadata: ['not', 'a', 'dict'], tasks });
    // The events carry {} too, as a tool reading them (readEvents) sees them.
    expect(events[0]!.details.metadata).toEqual({});
    // Not started, yet in its recorded phase.
    expect(state).toMatchObject({ status: 'not_started', currentPhase: 'Planning', planId: 'u1', clusterName: 'unknown', tasks: { a: { parentTaskId: null } } });
    expect((state as UpgradeProgress).metadata).toEqual({});
    expect(((await load({ ...base, metadata: 'text' })).state as UpgradeProgress).metadata).toEqual({});
  });

  it('refuses "tasks" that is a list, even an empty one, with DATA_CORRUPTED naming the field', async () => {
    for (const tasks of [[], [{ task_id: 'a', status: 'not_started' }]]) {
      const { state, file } = await load({ ...base, status: 'in_progress', tasks });
      expect(state, JSON.stringify(tasks)).toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining(`legacy file ${file} has "tasks" that is not an object`) });
    }
  });

  it('fills what the file leaves out: a task name, a failure without its event, a phase, a null tasks, and keeps a cancelled upgrade\'s duration', async () => {
    const tasks = { a: { task_id: 'a', status: 'failed', started_at: at('25:00'), completed_at: at('26:00'), error_message: 'disk full', percentage: 150.0, events: [] } };
    const { state, events } = await load({ ...base, status: 'cancelled', completed_at: at('28:00'), duration: '0:03:00', tasks });
    expect(state).toMatchObject({ status: 'cancelled', currentPhase: 'Initialization', tasks: { a: { taskName: 'a', status: 'failed', errorMessage: 'disk full', percentage: 100 } } });
    // The failed task's recorded percentage, brought into 0..100, keeps the recorded value.
    expect(events.find((e) => e.taskId === 'a' && e.type === 'task.progress')?.details).toEqual({ legacyPercentage: 150 });
    expect(events.at(-1)).toMatchObject({ type: 'upgrade.cancelled', details: { legacyDuration: '0:03:00', legacyDurationMs: 180_000 } });
    // An empty phase is none; tasks null (as None is dumped) are no tasks.
    expect(await load({ ...base, status: 'in_progress', current_phase: '', tasks: null })).toMatchObject({ state: { status: 'in_progress', currentPhase: 'Initialization', tasks: {} } });
  });
});

describe('legacy files refused', () => {
  it('refuses each field that does not fit with DATA_CORRUPTED naming the file and the field, and leaves the file as it was', async () => {
    const cases: Array<[unknown, string]> = [
      [[base], 'is not a JSON object'],
      [{ ...base, status: 'done' }, 'has an unknown status in status: "done"'],
      [{ ...base, status: 'in_progress', tasks: task({ status: 'running' }) }, 'has an unknown status in tasks.a.status: "running"'],
      [{ ...base, status: 'in_progress', tasks: task({ events: [{ status: 'done', timestamp: at('25:00') }] }) }, 'has an unknown status in tasks.a.events[0].status: "done"'],
      // A number (seconds since 1970) is not a datetime the old module wrote: refused, not read as none.
      [{ ...base, started_at: 1760937901 }, 'has a bad datetime in started_at: 1760937901'],
      [{ ...base, status: 'in_progress', tasks: { a: 'A' } }, 'has task "a" that is not an object'],
      [{ ...base, status: 'in_progress', tasks: task({ events: ['Task started'] }) }, 'has event 0 of task "a" that is not an object'],
      [{ ...base, status: 'in_progress', tasks: { a: { task_id: 'a', parent_task_id: 'b' }, b: { task_id: 'b', parent_task_id: 'a' }, c: { task_id: 'c', parent_task_id: 'c' } } }, 'has tasks whose parents form a cycle'],
    ];
    for (const [doc, why] of cases) {
      const { state, file } = await load(doc as object);
      expect(state, why).toMatchObject({ code: 'DATA_CORRUPTED', message: `[@progress/storage-json] upgrade "u1": legacy file ${file} ${why}; it is left as it is` });
      expect(await readFile(file, 'utf8'), why).toBe(JSON.stringify(doc));
    }
  });
});
