// Found by a review (two gaps of the legacy import, left alone then): a task's retry_count was not
// imported (retry_count 2 loaded as retryCount 0), and a task the old module started again while it
// was still running kept its first start, ignoring the file's started_at (the old start_task() sets
// started_at anew on every call, so it is the last start's), with a duration spanning both runs.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressTracker, replayEvents, type ProgressEvent, type UpgradeProgress } from '@progress/core';
import { JsonFileStore } from '../src/index.js';
import { removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

/** Writes `doc` as the legacy file of upgrade u1 in a temp folder and loads it: its state and its events. */
async function load(doc: object): Promise<{ state: UpgradeProgress; events: ProgressEvent[]; dir: string }> {
  const dir = await tempDir('legacy-restarts');
  await mkdir(join(dir, 'progress'));
  await writeFile(join(dir, 'progress', 'upgrade_u1.json'), JSON.stringify(doc));
  const store = new JsonFileStore({ directory: dir });
  try {
    const state = (await store.load('u1'))!;
    const events: ProgressEvent[] = [];
    for await (const e of store.readEvents('u1', 0)) events.push(e);
    expect(replayEvents(events)).toEqual(state);
    return { state, events, dir };
  } finally {
    await store.close();
  }
}

const at = (s: string) => `2025-10-20 05:${s}+00:00`;
const ev = (ts: string, status: string, message: string, percentage: number | null = 0.0) => ({ timestamp: at(ts), task_id: 'a', task_type: 'upgrade_step', status, message, details: {}, percentage });
const upgrade = (a: object) => ({ upgrade_id: 'u1', plan_id: 'p', cluster_name: 'c', status: 'in_progress', started_at: at('25:00'), tasks: { a: { task_id: 'a', task_name: 'A', task_type: 'upgrade_step', ...a } } });
/** A task started at 25:01 and completed at 25:05, as the old module wrote it, with the given retry_count. */
const completed = (retry_count: unknown) =>
  upgrade({
    status: 'completed',
    started_at: at('25:01.000000'),
    completed_at: at('25:05.000000'),
    duration: '0:00:04',
    percentage: 100.0,
    retry_count,
    events: [ev('25:01.000100', 'in_progress', 'Task started'), ev('25:05.000100', 'completed', 'Task completed', 100.0)],
  });
const ofTask = (events: ProgressEvent[]) => events.filter((e) => e.taskId === 'a' && e.type !== 'task.added').map((e) => [e.type, e.timestamp.slice(14)]);
const addedDetails = (events: ProgressEvent[]) => events.find((e) => e.type === 'task.added')!.details;

describe('legacy retry_count', () => {
  it('loads a task with retry_count 2 with retryCount 2: two task.retried at its start, its times and history otherwise as they were', async () => {
    const { state, events } = await load(completed(2));
    const a = state.tasks.a!;
    expect([a.status, a.retryCount, a.startedAt, a.completedAt, a.durationMs, a.percentage]).toEqual(['completed', 2, '2025-10-20T05:25:01.000Z', '2025-10-20T05:25:05.000Z', 4000, 100]);
    expect(ofTask(events)).toEqual([
      ['task.started', '25:01.000Z'],
      ['task.retried', '25:01.000Z'],
      ['task.retried', '25:01.000Z'],
      ['task.completed', '25:05.000Z'],
    ]);
    expect(addedDetails(events)).not.toHaveProperty('legacyRetryCount');
    // The same file with retry_count 0 loads as it did: no retry, nothing kept.
    const none = await load(completed(0));
    expect([none.state.tasks.a!.retryCount, ofTask(none.events).length, 'legacyRetryCount' in addedDetails(none.events)]).toEqual([0, 2, false]);
  });

  it('counts the restarts the events record among the retries: only the ones they do not record are added', async () => {
    // Started, failed, started again (one task.retried) and completed, with retry_count 3: two are not recorded.
    const doc = upgrade({
      status: 'completed',
      started_at: at('25:03.000000'),
      completed_at: at('25:04.000000'),
      retry_count: 3,
      events: [ev('25:01.000000', 'in_progress', 'Task started'), ev('25:02.000000', 'failed', 'Task failed: x'), ev('25:03.000000', 'in_progress', 'Task started'), ev('25:04.000000', 'completed', 'Task completed', 100.0)],
    });
    const { state, events } = await load(doc);
    expect([state.tasks.a!.retryCount, state.tasks.a!.startedAt, state.tasks.a!.durationMs]).toEqual([3, '2025-10-20T05:25:03.000Z', 1000]);
    expect(ofTask(events).map(([type]) => type)).toEqual(['task.started', 'task.retried', 'task.retried', 'task.failed', 'task.retried', 'task.completed']);
    // Numbered among all three: the recorded restart is one of them.
    expect(events.filter((e) => e.message.startsWith('Imported retry')).map((e) => e.message)).toEqual(['Imported retry 2 of 3 (retry_count)', 'Imported retry 3 of 3 (retry_count)']);
    // Fewer than the restarts recorded (the old module never counted them): every restart still starts
    // the task again here, which counts it; the file's value stays in task.added's details.
    const fewer = await load({ ...doc, tasks: { a: { ...doc.tasks.a, retry_count: 0 } } });
    expect([fewer.state.tasks.a!.retryCount, addedDetails(fewer.events).legacyRetryCount]).toEqual([1, 0]);
    const equal = await load({ ...doc, tasks: { a: { ...doc.tasks.a, retry_count: 1 } } });
    expect([equal.state.tasks.a!.retryCount, 'legacyRetryCount' in addedDetails(equal.events)]).toEqual([1, false]);
  });

  it('brings a retry_count that is not a whole number of 0 or more to one, keeping the recorded value in task.added\'s details (as percentages): the file still loads', async () => {
    for (const [raw, loaded] of [
      [-1, 0],
      [2.5, 2],
      ['2', 0],
      [true, 0],
      [1e6, 100], // at most 100 retries are imported: a million events would make every load slow
    ] as const) {
      const { state, events } = await load(completed(raw));
      expect([state.tasks.a!.retryCount, addedDetails(events).legacyRetryCount], String(raw)).toEqual([loaded, raw]);
      expect([state.tasks.a!.status, state.tasks.a!.startedAt, state.tasks.a!.durationMs]).toEqual(['completed', '2025-10-20T05:25:01.000Z', 4000]);
    }
    // No retry_count, or null (a NaN or Infinity loads as null): no retry, nothing to keep.
    for (const raw of [undefined, null]) {
      const { state, events } = await load(completed(raw));
      expect([state.tasks.a!.retryCount, 'legacyRetryCount' in addedDetails(events)], String(raw)).toEqual([0, false]);
    }
  });

  it('puts the retries of a task that ended without a recorded start before its end (its times unchanged), and keeps those of a task never started in details', async () => {
    // complete_task() and fail_task() of the old module took a task that had not started.
    const ended = await load(upgrade({ status: 'failed', error_message: 'x', retry_count: 1, events: [ev('25:02.000000', 'failed', 'Task failed: x')] }));
    const a = ended.state.tasks.a!;
    expect([a.status, a.retryCount, a.startedAt, a.completedAt, a.durationMs, a.errorMessage]).toEqual(['failed', 1, '2025-10-20T05:25:02.000Z', '2025-10-20T05:25:02.000Z', 0, 'x']);
    expect(ofTask(ended.events).map(([type]) => type)).toEqual(['task.retried', 'task.failed']);
    // As the old module wrote such a task: with its percentage (0.0 by default), which a progress
    // event just before the failure carries. Found by a review: the retries were dropped (retryCount 0).
    const withPct = await load(upgrade({ status: 'failed', error_message: 'x', percentage: 0.0, retry_count: 1, events: [ev('25:02.000000', 'failed', 'Task failed: x')] }));
    const b = withPct.state.tasks.a!;
    expect([b.status, b.retryCount, b.startedAt, b.completedAt, b.durationMs, b.percentage, b.errorMessage]).toEqual(['failed', 1, '2025-10-20T05:25:02.000Z', '2025-10-20T05:25:02.000Z', 0, 0, 'x']);
    expect(ofTask(withPct.events).map(([type]) => type)).toEqual(['task.retried', 'task.progress', 'task.failed']);
    expect(addedDetails(withPct.events)).not.toHaveProperty('legacyRetryCount');
    // No event at all, failed at 30%: the same.
    const bare = await load(upgrade({ status: 'failed', error_message: 'x', percentage: 30.0, completed_at: at('25:02.000000'), retry_count: 2, events: [] }));
    expect([bare.state.tasks.a!.status, bare.state.tasks.a!.retryCount, bare.state.tasks.a!.percentage, bare.state.tasks.a!.completedAt]).toEqual(['failed', 2, 30, '2025-10-20T05:25:02.000Z']);
    // Failed without a recorded start, then started again (a recorded restart) and completed: the
    // retries the events do not record go with that restart, not before the failure.
    const again = await load(
      upgrade({ status: 'completed', started_at: at('25:03.000000'), completed_at: at('25:04.000000'), percentage: 100.0, retry_count: 3, events: [ev('25:02.000000', 'failed', 'Task failed: x'), ev('25:03.000000', 'in_progress', 'Task started'), ev('25:04.000000', 'completed', 'Task completed', 100.0)] }),
    );
    expect([again.state.tasks.a!.status, again.state.tasks.a!.retryCount, again.state.tasks.a!.startedAt]).toEqual(['completed', 3, '2025-10-20T05:25:03.000Z']);
    expect(ofTask(again.events)).toEqual([
      ['task.failed', '25:02.000Z'],
      ['task.retried', '25:03.000Z'],
      ['task.retried', '25:03.000Z'],
      ['task.retried', '25:03.000Z'],
      // The 0% the restart recorded (the failure left the task at none).
      ['task.progress', '25:03.000Z'],
      ['task.completed', '25:04.000Z'],
    ]);
    // A task that never started cannot have been retried here (a retry starts it): it stays not
    // started, and the file's retry_count is kept.
    const never = await load(upgrade({ status: 'not_started', retry_count: 2 }));
    expect([never.state.tasks.a!.status, never.state.tasks.a!.retryCount, addedDetails(never.events).legacyRetryCount]).toEqual(['not_started', 0, 2]);
  });
});

describe('a legacy task started again while it was running', () => {
  /** Started at 25:01, progress at 25:02, started again at 25:03 (started_at set just before), and then the given events. */
  const restarted = (a: object, after: object[]) =>
    upgrade({
      started_at: at('25:02.999000'),
      retry_count: 0,
      ...a,
      events: [ev('25:01.000000', 'in_progress', 'Task started'), ev('25:02.000000', 'in_progress', 'Half way', 50.0), ev('25:03.000000', 'in_progress', 'Task started', 50.0), ...after],
    });

  it('takes a restart recorded at the very time of the file\'s started_at as the restart', async () => {
    const { state, events } = await load(restarted({ started_at: at('25:03.000000'), status: 'in_progress', percentage: 50.0 }, []));
    expect(ofTask(events).map(([type]) => type)).toEqual(['task.started', 'task.progress', 'task.retried']);
    expect([state.tasks.a!.startedAt, state.tasks.a!.retryCount]).toEqual(['2025-10-20T05:25:03.000Z', 1]);
  });

  it('takes the file\'s started_at (the last start) as its start: the restart is imported as a task.retried at that time, and the duration is the last run\'s', async () => {
    const { state, events } = await load(restarted({ status: 'completed', completed_at: at('25:04.000000'), duration: '0:00:01.001000', percentage: 100.0 }, [ev('25:04.000000', 'completed', 'Task completed', 100.0)]));
    const a = state.tasks.a!;
    expect([a.status, a.startedAt, a.completedAt, a.durationMs, a.percentage]).toEqual(['completed', '2025-10-20T05:25:02.999Z', '2025-10-20T05:25:04.000Z', 1001, 100]);
    expect(ofTask(events)).toEqual([
      ['task.started', '25:01.000Z'],
      ['task.progress', '25:02.000Z'],
      ['task.retried', '25:02.999Z'],
      ['task.completed', '25:04.000Z'],
    ]);
    // The restart keeps its recorded message; a restart starts the task again here, which counts as a retry.
    expect(events.find((e) => e.type === 'task.retried')!.message).toBe('Task started');
    expect([a.retryCount, addedDetails(events).legacyRetryCount]).toEqual([1, 0]);
  });

  it('still running: loads with the last start and the recorded percentage, and a tracker continues it', async () => {
    const { state, dir } = await load(restarted({ status: 'in_progress', percentage: 50.0 }, []));
    const a = state.tasks.a!;
    expect([a.status, a.startedAt, a.completedAt, a.durationMs, a.percentage]).toEqual(['in_progress', '2025-10-20T05:25:02.999Z', null, null, 50]);
    const store = new JsonFileStore({ directory: dir });
    const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store });
    await tracker.completeTask('a');
    expect([tracker.progress.tasks.a!.status, tracker.progress.tasks.a!.startedAt]).toEqual(['completed', '2025-10-20T05:25:02.999Z']);
    await tracker.close();
    await store.close();
  });

  it('leaves progress updates alone when started_at is the first start\'s (no restart)', async () => {
    const { state, events } = await load(
      upgrade({
        status: 'in_progress',
        started_at: at('25:01.000000'),
        percentage: 50.0,
        events: [ev('25:01.000100', 'in_progress', 'Task started'), ev('25:02.000000', 'in_progress', 'Half way', 50.0), ev('25:03.000000', 'in_progress', 'Task started', 50.0)],
      }),
    );
    expect([state.tasks.a!.startedAt, state.tasks.a!.retryCount]).toEqual(['2025-10-20T05:25:01.000Z', 0]);
    expect(ofTask(events).map(([type]) => type)).toEqual(['task.started', 'task.progress', 'task.progress']);
  });
});

describe('restarts after failures', () => {
  it('imports each of several restarts after failures as a retry, not only the last (whose start is the file\'s started_at)', async () => {
    const { state, events } = await load(
      upgrade({
        status: 'in_progress',
        started_at: at('29:00'),
        error_message: 'again',
        events: [ev('25:00', 'in_progress', 'Task started'), ev('26:00', 'failed', 'Task failed: once'), ev('27:00', 'in_progress', 'Task started'), ev('28:00', 'failed', 'Task failed: again'), ev('29:00', 'in_progress', 'Task started')],
      }),
    );
    expect([state.tasks.a!.status, state.tasks.a!.retryCount, state.tasks.a!.startedAt]).toEqual(['in_progress', 2, '2025-10-20T05:29:00.000Z']);
    expect(events.filter((e) => e.taskId === 'a' && e.type !== 'task.added').map((e) => e.type)).toEqual(['task.started', 'task.failed', 'task.retried', 'task.failed', 'task.retried']);
  });
});

describe('events within one millisecond', () => {
  // The old module's times carry microseconds; ours keep milliseconds. Found by a mutation review
  // (2026-12-01): the import compared the times it had cut to the millisecond, so within one, its
  // order was the file's order of tasks and of events, not the recorded one.
  it('takes the restart, not the progress update just before it in the same millisecond, as the retry', async () => {
    // An agent that reports progress and at once starts the task again: start_task() sets started_at
    // (.000200) between the update (.000100) and the restart's event (.000300).
    const { state, events } = await load(
      upgrade({
        status: 'in_progress',
        started_at: at('25:02.000200'),
        percentage: 0.0,
        events: [ev('25:01.000000', 'in_progress', 'Task started'), ev('25:02.000100', 'in_progress', 'Half way', 50.0), ev('25:02.000300', 'in_progress', 'Task started', 0.0)],
      }),
    );
    expect(events.filter((e) => e.taskId === 'a' && e.type !== 'task.added').map((e) => [e.type, e.message, e.timestamp.slice(14)])).toEqual([
      ['task.started', 'Task started', '25:01.000Z'],
      ['task.progress', 'Half way', '25:02.000Z'],
      ['task.retried', 'Task started', '25:02.000Z'],
      // The 0 that start_task() set, which a retry here does not (as for a restart after an end).
      ['task.progress', 'Imported progress', '25:02.000Z'],
    ]);
    expect([state.tasks.a!.retryCount, state.tasks.a!.startedAt, state.tasks.a!.percentage]).toEqual([1, '2025-10-20T05:25:02.000Z', 0]);
  });

  it('puts the events of two tasks in the order their microseconds say', async () => {
    const task = (id: string, started: string, completed: string) => ({
      task_id: id,
      task_name: id,
      task_type: 'upgrade_step',
      status: 'completed',
      started_at: at(started),
      completed_at: at(completed),
      percentage: 100.0,
      events: [
        { ...ev(started, 'in_progress', 'Task started'), task_id: id },
        { ...ev(completed, 'completed', 'Task completed', 100.0), task_id: id },
      ],
    });
    // Task a is listed first, but b started and completed first, each within the same millisecond as a.
    const { events } = await load({ ...upgrade({}), tasks: { a: task('a', '25:01.000900', '25:02.000900'), b: task('b', '25:01.000100', '25:02.000100') } });
    expect(events.filter((e) => e.taskId !== undefined && e.type !== 'task.added').map((e) => `${e.type} ${e.taskId}`)).toEqual(['task.started b', 'task.started a', 'task.completed b', 'task.completed a']);
  });
});
