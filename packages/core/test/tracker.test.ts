import { describe, expect, it } from 'vitest';
import { MemoryStore, isProgressError, ProgressStatus, ProgressTracker, RECENT_EVENTS_LIMIT, TaskType, applyEventInPlace, cloneState, replayEvents, type ProgressEvent, type UpgradeProgress } from '../src/index.js';
import { delegatingStore } from './delegating-store.js';
import { expectCode, manualClock } from './helpers.js';

const open = (extra: Partial<Parameters<typeof ProgressTracker.open>[0]> = {}) =>
  ProgressTracker.open({ upgradeId: 'test-upgrade-123', planId: 'test-plan-123', clusterName: 'test-cluster', ...extra });

async function events(tracker: ProgressTracker): Promise<ProgressEvent[]> {
  const out: ProgressEvent[] = [];
  for await (const e of tracker.readEvents(0)) out.push(e);
  return out;
}

describe('ProgressTracker: the old module behaviour', () => {
  it('creates an upgrade not_started with its ids and metadata', async () => {
    const t = await open({ metadata: { region: 'eu-west-1' } });
    expect(t.progress).toMatchObject({
      upgradeId: 'test-upgrade-123',
      planId: 'test-plan-123',
      clusterName: 'test-cluster',
      status: 'not_started',
      overallPercentage: 0,
      metadata: { region: 'eu-west-1' },
      lastSeq: 1,
    });
    const [created] = await events(t);
    expect(created).toMatchObject({ seq: 1, type: 'upgrade.created', status: 'not_started' });
    expect(created!.eventId).toMatch(/^[0-9a-f-]{36}$/);
    await t.close();
  });

  it('starts, completes and fails an upgrade', async () => {
    const clock = manualClock();
    const t = await open({ now: clock.now });
    await t.startUpgrade();
    expect(t.progress.status).toBe(ProgressStatus.IN_PROGRESS);
    expect(t.progress.currentPhase).toBe('Initialization');
    expect(t.progress.startedAt).toBe('2026-03-01T10:00:00.000Z');
    clock.advance(62_345);
    await t.completeUpgrade();
    expect(t.progress).toMatchObject({ status: 'completed', overallPercentage: 100, durationMs: 62_345, completedAt: '2026-03-01T10:01:02.345Z' });
    await t.close();

    const f = await open({ upgradeId: 'failing' });
    await f.startUpgrade('Pre-flight');
    const ev = await f.failUpgrade('API server unreachable');
    expect(ev.message).toBe('Upgrade failed: API server unreachable');
    expect(f.progress).toMatchObject({ status: 'failed', errorMessage: 'API server unreachable' });
    await f.close();
  });

  it('times a retried task from its retry: the attempt that completed it, as the old module did', async () => {
    const clock = manualClock();
    const t = await open({ now: clock.now });
    await t.startUpgrade();
    await t.addTask('flaky', 'Flaky');
    await t.startTask('flaky');
    clock.advance(120_000);
    const failed = await t.failTask('flaky', 'timeout');
    // A failed attempt ends: its end and duration are recorded (the failure the notifier reports).
    expect(t.progress.tasks.flaky).toMatchObject({ status: 'failed', completedAt: failed.timestamp, durationMs: 120_000 });
    clock.advance(5_000);
    const first = await t.retryTask('flaky');
    // The first run is attempt 1: its first retry, attempt 2.
    expect(first.message).toBe('Task retried (attempt 2)');
    expect(t.progress.tasks.flaky!.retryCount).toBe(1);
    clock.advance(1_000);
    await t.failTask('flaky', 'timeout again');
    // Each retry counts: the second one is attempt 3, retryCount 2 (not set back to 1).
    const retried = await t.retryTask('flaky');
    expect(retried.message).toBe('Task retried (attempt 3)');
    clock.advance(10_000);
    await t.completeTask('flaky');
    expect(t.progress.tasks.flaky).toMatchObject({ startedAt: retried.timestamp, durationMs: 10_000, retryCount: 2 });
    await t.close();
  });

  it('adds tasks one at a time and many in one commit', async () => {
    const t = await open();
    const task = await t.addTask('task-1', 'First Task', TaskType.UPGRADE_STEP);
    expect(task).toMatchObject({ taskId: 'task-1', taskName: 'First Task', taskType: 'upgrade_step', status: 'not_started', percentage: 0, retryCount: 0, weight: 1, parentTaskId: null });
    const before = t.progress.lastSeq;
    const tasks = await t.addTasks([
      { taskId: 'task-2', taskName: 'Second Task' },
      { taskId: 'task-3', taskName: 'Third Task', taskType: TaskType.VALIDATION },
    ]);
    expect(tasks.map((x) => x.taskId)).toEqual(['task-2', 'task-3']);
    expect(t.progress.lastSeq).toBe(before + 2);
    expect(Object.keys(t.progress.tasks)).toEqual(['task-1', 'task-2', 'task-3']);
    await t.close();
  });

  it('starts, updates, completes and fails tasks, with summary percentages 33.33 / 66.67 / 100', async () => {
    const t = await open();
    await t.startUpgrade();
    await t.addTasks([
      { taskId: 'task-1', taskName: 'First Task' },
      { taskId: 'task-2', taskName: 'Second Task' },
      { taskId: 'task-3', taskName: 'Third Task', taskType: 'validation' },
    ]);
    await t.startTask('task-1');
    expect(t.getCurrentTask()?.taskId).toBe('task-1');
    const ev = await t.updateTaskProgress('task-1', 50, 'Half way', { nodes: 3 });
    expect(ev).toMatchObject({ type: 'task.progress', percentage: 50, message: 'Half way', details: { nodes: 3 } });
    expect(t.calculateProgressPercentage()).toBe(16.67);
    await t.completeTask('task-1');
    expect(t.getProgressSummary().overallPercentage).toBe(33.33);
    await t.startTask('task-2');
    await t.completeTask('task-2');
    expect(t.getProgressSummary().progressPercentage).toBe(66.67);
    await t.startTask('task-3');
    const failed = await t.failTask('task-3', 'validation error');
    expect(failed.message).toBe('Task failed: validation error');
    let summary = t.getProgressSummary();
    expect(summary).toMatchObject({ totalTasks: 3, completedTasks: 2, failedTasks: 1, activeTasks: 0, failedTaskNames: ['Third Task'] });
    expect(summary.currentTask).toEqual({ taskId: 'task-3', taskName: 'Third Task', status: 'failed', percentage: 0 });
    const retried = await t.retryTask('task-3');
    // A retry starts the task again: the attempt's own start, as the old module's start_task() set it.
    expect(t.progress.tasks['task-3']).toMatchObject({ status: 'in_progress', retryCount: 1, errorMessage: null, startedAt: retried.timestamp, completedAt: null, durationMs: null });
    await t.completeTask('task-3');
    summary = t.getProgressSummary();
    expect(summary.overallPercentage).toBe(100);
    expect(summary.currentTask).toBeNull();
    expect(JSON.parse(JSON.stringify(summary))).toEqual(summary);
    await t.completeUpgrade();
    await t.close();
  });

  it('changes phases and keeps them in the summary', async () => {
    const t = await open();
    await t.setCurrentPhase('Planning');
    await t.startUpgrade('Control plane');
    await t.setCurrentPhase('Node groups');
    expect(t.getProgressSummary().currentPhase).toBe('Node groups');
    const phases = (await events(t)).filter((e) => e.type === 'upgrade.phase_changed').map((e) => e.details.phase);
    expect(phases).toEqual(['Planning', 'Node groups']);
    await t.close();
  });

  it('keeps the last RECENT_EVENTS_LIMIT events of a busy task, oldest first, in the live, durable and replayed state', async () => {
    const t = await open();
    await t.addTask('t1', 'Task');
    for (let i = 1; i <= RECENT_EVENTS_LIMIT + 7; i++) await t.updateTaskProgress('t1', i % 101, `step ${i}`);
    const expected = Array.from({ length: RECENT_EVENTS_LIMIT }, (_, i) => `step ${i + 8}`);
    expect(t.progress.tasks.t1!.recentEvents.map((e) => e.message)).toEqual(expected);
    expect(t.durableProgress.tasks.t1!.recentEvents.map((e) => e.message)).toEqual(expected);
    const replayed = replayEvents(await events(t))!;
    expect(replayed.tasks.t1!.recentEvents.map((e) => e.message)).toEqual(expected);
    await t.close();
  });

  it('never holds more than RECENT_EVENTS_LIMIT recent events, at any event', async () => {
    const t = await open();
    await t.addTask('t1', 'Task');
    for (let i = 1; i <= RECENT_EVENTS_LIMIT + 2; i++) {
      await t.updateTaskProgress('t1', i, `step ${i}`);
      expect(t.progress.tasks.t1!.recentEvents, `after event ${i + 1}`).toHaveLength(Math.min(i + 1, RECENT_EVENTS_LIMIT));
      expect(t.progress.tasks.t1!.recentEvents.at(-1)!.message).toBe(`step ${i}`);
    }
    await t.close();
  });

  it('trims a loaded task holding more than RECENT_EVENTS_LIMIT recent events on its next event', async () => {
    const t = await open();
    await t.addTask('t1', 'Task');
    await t.updateTaskProgress('t1', 1, 'first');
    const state = cloneState(t.progress);
    const extra = Array.from({ length: RECENT_EVENTS_LIMIT + 3 }, () => state.tasks.t1!.recentEvents[0]!);
    state.tasks.t1!.recentEvents = extra;
    const next: ProgressEvent = { ...state.tasks.t1!.recentEvents[0]!, eventId: 'e-next', seq: state.lastSeq + 1, message: 'next', type: 'task.progress', percentage: 5 };
    applyEventInPlace(state, next);
    expect(state.tasks.t1!.recentEvents).toHaveLength(RECENT_EVENTS_LIMIT);
    expect(state.tasks.t1!.recentEvents.at(-1)!.message).toBe('next');
    await t.close();
  });

  it('gives no negative duration for events whose times go back (written by writers whose clocks differ)', async () => {
    const t = await open();
    await t.startUpgrade();
    await t.addTask('a', 'A');
    await t.startTask('a');
    await t.addTask('b', 'B');
    await t.failTask('b', 'boom');
    await t.retryTask('b');
    const stored = await events(t);
    await t.close();
    const earlier = new Date(Date.parse(stored.at(-1)!.timestamp) - 60_000).toISOString();
    const next = (seq: number, type: ProgressEvent['type'], status: ProgressEvent['status'], taskId?: string): ProgressEvent => ({
      eventId: `e${seq}`,
      seq,
      upgradeId: stored[0]!.upgradeId,
      type,
      timestamp: earlier,
      status,
      message: type,
      details: {},
      ...(taskId === undefined ? {} : { taskId }),
    });
    const n = stored.length;
    const state = replayEvents([...stored, next(n + 1, 'task.completed', 'completed', 'a'), next(n + 2, 'task.cancelled', 'cancelled', 'b'), next(n + 3, 'upgrade.completed', 'completed')])!;
    expect(state.tasks.a!.durationMs).toBe(0);
    expect(state.tasks.b!.durationMs).toBe(0);
    expect(state.durationMs).toBe(0);
  });

  it('folds a task.added without a weight (written by another writer) with the default weight 1', async () => {
    const t = await open();
    await t.startUpgrade();
    await t.addTask('a', 'A', 'upgrade_step', { weight: 3 });
    await t.addTask('b', 'B');
    await t.completeTask('b');
    const stored = await events(t);
    await t.close();
    const base = stored.find((e) => e.taskId === 'b' && e.type === 'task.added')!;
    const noWeight: ProgressEvent = { ...base, eventId: 'e-c', seq: stored.length + 1, taskId: 'c', details: { taskName: 'C', parentTaskId: null } };
    const state = replayEvents([...stored, noWeight, { ...noWeight, eventId: 'e-c2', seq: stored.length + 2, type: 'task.completed', status: 'completed', percentage: 100, details: {} }])!;
    expect(state.tasks.c!.weight).toBe(1);
    // (3 x 0 + 1 x 100 + 1 x 100) / 5
    expect(state.overallPercentage).toBe(40);
  });

  it('folds events of another writer without the optional details: the phase kept, the message as the error', async () => {
    const t = await open();
    await t.setCurrentPhase('Plan');
    await t.addTask('a', 'A');
    const stored = await events(t);
    await t.close();
    const last = stored.at(-1)!;
    const next = (seq: number, fields: Partial<ProgressEvent>): ProgressEvent => ({ ...last, eventId: `e${seq}`, seq, details: {}, ...fields });
    const n = stored.length;
    const state = replayEvents([
      ...stored,
      { ...next(n + 1, { type: 'upgrade.started', status: 'in_progress' }), taskId: undefined, taskType: undefined },
      next(n + 2, { type: 'task.failed', status: 'failed', taskId: 'a', message: 'Task failed: disk full' }),
    ])!;
    expect(state.currentPhase).toBe('Plan');
    expect(state.tasks.a!.errorMessage).toBe('Task failed: disk full');
    // A task.added without a task type or name gets the defaults (upgrade_step, its id); a
    // task.started that carries a percentage sets it; metadata that is not an object is none.
    const other = replayEvents([
      { ...stored[0]!, details: { ...stored[0]!.details, metadata: ['not', 'an', 'object'] } },
      { ...next(2, { type: 'task.added', status: 'not_started', taskId: 'b' }), taskType: undefined },
      { ...next(3, { type: 'task.started', status: 'in_progress', taskId: 'b' }), percentage: 10 },
    ])!;
    expect(other.metadata).toEqual({});
    expect(other.tasks.b).toMatchObject({ taskType: 'upgrade_step', taskName: 'b', percentage: 10 });
  });

  it('copies a state whole in cloneState(): changing the copy, its metadata included, leaves the original as it was', async () => {
    const t = await open({ metadata: { region: { name: 'eu-west-1' } } });
    await t.addTask('a', 'A');
    const original = replayEvents(await events(t))!;
    await t.close();
    const before = JSON.stringify(original);
    const copy = cloneState(original);
    (copy.metadata.region as { name: string }).name = 'scribbled';
    copy.tasks.a!.recentEvents.length = 0;
    copy.tasks.a!.taskName = 'scribbled';
    expect(JSON.stringify(original)).toBe(before);
  });

  it('replays every stored event with readEvents() given no arguments', async () => {
    const t = await open();
    await t.startUpgrade();
    expect((await events(t)).map((e) => e.seq)).toEqual([1, 2]);
    const all: number[] = [];
    for await (const e of t.readEvents()) all.push(e.seq);
    expect(all).toEqual([1, 2]);
    await t.close();
  });

  it('refuses a damaged event with DATA_CORRUPTED and leaves the state as it was: unknown type or status, unknown task or parent, a task added twice, a seq not the next one, no taskId, another upgrade, a second upgrade.created', async () => {
    const t = await open();
    await t.addTask('t1', 'Task');
    await t.updateTaskProgress('t1', 10, 'ten');
    const base = { ...t.progress.tasks.t1!.recentEvents.at(-1)!, eventId: 'e-damaged', seq: t.progress.lastSeq + 1 };
    const damaged: ProgressEvent[] = [
      { ...base, type: 'upgrade.exploded' as never, taskId: undefined, status: 'failed' },
      { ...base, type: 'task.exploded' as never },
      { ...base, type: 'upgrade.phase_changed', taskId: undefined, status: 'bogus' as never },
      { ...base, type: 'task.progress', status: 'bogus' as never },
      { ...base, type: 'task.progress', taskId: 'nope' },
      { ...base, type: 'task.progress', taskId: undefined },
      { ...base, type: 'task.added', taskId: 't1', details: { taskName: 'again' } },
      { ...base, type: 'task.added', taskId: 't2', details: { taskName: 'orphan', parentTaskId: 'nope' } },
      { ...base, type: 'task.added', taskId: undefined, details: { taskName: 'no id' } },
      // A gap, and a seq already folded.
      { ...base, seq: base.seq + 1 },
      { ...base, seq: base.seq - 1 },
      // An event of another upgrade, at the next seq.
      { ...base, upgradeId: 'another-upgrade' },
    ];
    const stored = await events(t);
    // The upgrade.created of this upgrade again, as a store that wrote it twice would give it back.
    damaged.push(stored[0]!);
    for (const event of damaged) {
      const state = cloneState(t.progress);
      const before = JSON.stringify(state);
      expect(() => applyEventInPlace(state, event), event.type).toThrow(expect.objectContaining({ code: 'DATA_CORRUPTED' }));
      expect(JSON.stringify(state), `${event.type} ${String(event.status)} ${String(event.taskId)}`).toBe(before);
      expect(() => replayEvents([...stored, event])).toThrow(expect.objectContaining({ code: 'DATA_CORRUPTED' }));
    }
    // A history that starts anywhere but at seq 1 lacks its beginning.
    expect(() => replayEvents([{ ...stored[0]!, seq: 2 }])).toThrow(expect.objectContaining({ code: 'DATA_CORRUPTED' }));
    await t.close();
  });

  it('gives task details with the last 5 recent events, and undefined for unknown tasks', async () => {
    const t = await open();
    await t.addTask('t1', 'Task');
    for (let p = 10; p <= 90; p += 10) await t.updateTaskProgress('t1', p, `at ${p}`);
    const view = t.getTaskProgress('t1')!;
    expect(view.recentEvents.map((e) => e.message)).toEqual(['at 50', 'at 60', 'at 70', 'at 80', 'at 90']);
    expect(view.percentage).toBe(90);
    expect(t.progress.tasks.t1!.recentEvents).toHaveLength(10);
    expect(t.getTaskProgress('nope')).toBeUndefined();
    expect(t.getTaskProgress('__proto__')).toBeUndefined();
    await t.close();
  });

  it('refuses a task id that is not a string in getTaskProgress with INVALID_ARGUMENT, as every task command does', async () => {
    // Found on 2026-11-30: an object without a prototype (what a parsed query string or a
    // `Object.create(null)` map gives) threw a bare TypeError ("Cannot convert object to primitive
    // value") from Object.hasOwn, and a plain object or a number was looked up by its string form.
    const t = await open();
    await t.addTask('1', 'One');
    const before = JSON.stringify(t.progress);
    for (const bad of [Object.create(null), {}, 1, null, undefined, Symbol('t')]) {
      expect(() => t.getTaskProgress(bad as string), String(typeof bad)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
    expect(JSON.stringify(t.progress)).toBe(before);
    expect(t.getTaskProgress('1')?.taskName).toBe('One');
    await t.close();
  });

  it('estimates the completion time from elapsed time and percentage', async () => {
    const clock = manualClock();
    const t = await open({ now: clock.now });
    expect(t.getEstimatedCompletionTime()).toBeUndefined();
    await t.startUpgrade();
    await t.addTasks([{ taskId: 'a', taskName: 'A' }, { taskId: 'b', taskName: 'B' }]);
    expect(t.getEstimatedCompletionTime()).toBeUndefined();
    clock.advance(60_000);
    await t.completeTask('a');
    // 50% after 60 s: 60 s to go.
    expect(t.getEstimatedCompletionTime()).toBe(new Date(clock.now() + 60_000).toISOString());
    expect(t.getProgressSummary().estimatedCompletionAt).toBe(t.getEstimatedCompletionTime());
    // Paused, or ended short of 100%, it is not on its way to an end: no estimate.
    await t.pauseUpgrade();
    expect(t.getEstimatedCompletionTime()).toBeUndefined();
    await t.failUpgrade('boom');
    expect(t.getProgressSummary().estimatedCompletionAt).toBeNull();
    await t.close();
  });

  it('never stamps an event earlier than the one before it, when the clock goes back', async () => {
    const clock = manualClock();
    const t = await open({ now: clock.now });
    await t.startUpgrade();
    const before = t.progress.updatedAt;
    clock.advance(-60_000);
    await t.addTask('a', 'A');
    await t.startTask('a');
    clock.advance(120_000);
    await t.completeTask('a');
    const stamps = (await events(t)).map((e) => e.timestamp);
    expect(stamps).toEqual([before, before, before, before, new Date(clock.now()).toISOString()]);
    expect(t.progress.updatedAt).toBe(stamps[4]);
    await t.close();
  });

  it('gives no estimate at 100% while the upgrade is still in progress (0 < percentage < 100 only)', async () => {
    const clock = manualClock();
    const t = await open({ now: clock.now });
    await t.startUpgrade();
    await t.addTask('a', 'A');
    clock.advance(60_000);
    await t.completeTask('a');
    expect(t.progress).toMatchObject({ status: 'in_progress', overallPercentage: 100 });
    expect(t.getEstimatedCompletionTime()).toBeUndefined();
    expect(t.getProgressSummary().estimatedCompletionAt).toBeNull();
    await t.close();
  });

  it('tells subscribers (the old callbacks) of every durable event in order, and stops on unsubscribe', async () => {
    const t = await open();
    const seen: Array<[string, number, string]> = [];
    const off = t.subscribe((e, state) => seen.push([e.type, e.seq, state.status]));
    await t.startUpgrade();
    await t.addTask('t1', 'Task');
    await Promise.all([t.startTask('t1'), t.updateTaskProgress('t1', 10), t.updateTaskProgress('t1', 20)]);
    off();
    await t.completeTask('t1');
    expect(seen).toEqual([
      ['upgrade.started', 2, 'in_progress'],
      ['task.added', 3, 'in_progress'],
      ['task.started', 4, 'in_progress'],
      ['task.progress', 5, 'in_progress'],
      ['task.progress', 6, 'in_progress'],
    ]);
    await t.close();
  });

  it('refuses a listener or a sink that is not one with INVALID_ARGUMENT, registering nothing', async () => {
    const t = await open();
    for (const bad of [null, undefined, 'listener', {}]) await expectCode(() => t.subscribe(bad as never), 'INVALID_ARGUMENT');
    for (const bad of [null, () => {}, { name: 'no-handle' }]) await expectCode(() => t.addSink(bad as never), 'INVALID_ARGUMENT');
    expect(t.getSystemInfo()).toMatchObject({ sinks: [], subscribers: 0 });
    // The next event goes out as usual, with nothing registered that could throw.
    expect((await t.startUpgrade()).seq).toBe(2);
    await t.close();
  });
});

describe('ProgressTracker: model rules', () => {
  it('derives a parent from its weighted children and leaves out skipped and cancelled tasks', async () => {
    const t = await open();
    await t.startUpgrade();
    await t.addTasks([
      { taskId: 'nodes', taskName: 'Nodes', weight: 3 },
      { taskId: 'n1', taskName: 'N1', parentTaskId: 'nodes', weight: 1 },
      { taskId: 'n2', taskName: 'N2', parentTaskId: 'nodes', weight: 3 },
      { taskId: 'n3', taskName: 'N3', parentTaskId: 'nodes' },
      { taskId: 'addons', taskName: 'Addons' },
    ]);
    await t.completeTask('n1');
    await t.updateTaskProgress('n2', 50);
    // nodes = (100*1 + 50*3 + 0*1) / 5 = 50; overall = (50*3 + 0*1) / 4 = 37.5
    expect(t.progress.tasks.nodes!.percentage).toBe(50);
    expect(t.progress.overallPercentage).toBe(37.5);
    await t.skipTask('n3', 'not needed');
    // nodes = (100 + 150) / 4 = 62.5; overall = 62.5*3/4 = 46.88
    expect(t.progress.tasks.nodes!.percentage).toBe(62.5);
    expect(t.progress.overallPercentage).toBe(46.88);
    await t.cancelTask('addons');
    expect(t.progress.overallPercentage).toBe(62.5);
    await t.completeTask('nodes');
    expect(t.progress.overallPercentage).toBe(100);
    await t.close();
  });

  it('derives finite percentages from any weight it accepts, however large or small', async () => {
    const t = await open();
    await t.startUpgrade();
    await t.addTasks([
      { taskId: 'big', taskName: 'Big', weight: Number.MAX_VALUE },
      { taskId: 'b1', taskName: 'B1', parentTaskId: 'big', weight: 1e308 },
      { taskId: 'b2', taskName: 'B2', parentTaskId: 'big', weight: 1e308 },
      { taskId: 'tiny', taskName: 'Tiny', weight: Number.MAX_VALUE },
      { taskId: 't1', taskName: 'T1', parentTaskId: 'tiny', weight: 5e-324 },
      { taskId: 't2', taskName: 'T2', parentTaskId: 'tiny', weight: 5e-324 },
    ]);
    await t.updateTaskProgress('b1', 50);
    await t.completeTask('b2');
    await t.updateTaskProgress('t1', 12.34);
    await t.updateTaskProgress('t2', 56.78);
    // big = (50 + 100) / 2 = 75 (the plain sums overflow); tiny = (12.34 + 56.78) / 2 = 34.56 (the
    // plain products, below the smallest normal double, keep two digits: 34.5); overall =
    // (75 + 34.56) / 2 = 54.78, with weights whose sum overflows.
    expect(t.progress.tasks.big!.percentage).toBe(75);
    expect(t.progress.tasks.tiny!.percentage).toBe(34.56);
    expect(t.progress.overallPercentage).toBe(54.78);
    await t.close();

    // Weights whose sum is finite but whose products with the percentages overflow (2e307 x 50 = 1e309);
    // and a skipped task among them, left out of the mean taken again with scaled weights.
    const u = await open({ upgradeId: 'huge-products' });
    await u.startUpgrade();
    await u.addTasks([
      { taskId: 'h', taskName: 'H' },
      { taskId: 'h1', taskName: 'H1', parentTaskId: 'h', weight: 2e307 },
      { taskId: 'h2', taskName: 'H2', parentTaskId: 'h', weight: 2e307 },
      { taskId: 's', taskName: 'S' },
      { taskId: 's1', taskName: 'S1', parentTaskId: 's', weight: 1e308 },
      { taskId: 's2', taskName: 'S2', parentTaskId: 's', weight: 1e308 },
    ]);
    await u.updateTaskProgress('h1', 50);
    await u.updateTaskProgress('h2', 50);
    await u.completeTask('s1');
    await u.skipTask('s2');
    expect(u.progress.tasks.h!.percentage).toBe(50);
    expect(u.progress.tasks.s!.percentage).toBe(100);
    expect(u.progress.overallPercentage).toBe(75);
    await u.close();
  });

  it('keeps the own percentage of a parent whose children are all skipped or cancelled (no mean to take)', async () => {
    const t = await open();
    await t.startUpgrade();
    await t.addTasks([
      { taskId: 'p', taskName: 'P' },
      { taskId: 'c', taskName: 'C', parentTaskId: 'p' },
    ]);
    await t.skipTask('c', 'not needed');
    await t.updateTaskProgress('p', 40);
    expect(t.progress.tasks.p!.percentage).toBe(40);
    expect(t.progress.overallPercentage).toBe(40);
    await t.close();
  });

  it('moves a task by steps and derives its percentage', async () => {
    const t = await open();
    await t.addTask('drain', 'Drain', 'upgrade_step', { totalSteps: 4 });
    const first = await t.advanceTask('drain', { currentStep: 'node-a' });
    expect(first).toMatchObject({ percentage: 25, message: 'Step 1/4: node-a', status: 'in_progress' });
    expect(t.progress.tasks.drain).toMatchObject({ completedSteps: 1, currentStep: 'node-a', status: 'in_progress', percentage: 25 });
    // The default message (AdvanceTaskOptions.message's TSDoc): "Step n/m", with ": <currentStep>" when one is given.
    expect((await t.advanceTask('drain', { completedSteps: 3 })).message).toBe('Step 3/4');
    expect(t.progress.tasks.drain!.percentage).toBe(75);
    await expectCode(() => t.advanceTask('drain', { completedSteps: 5 }), 'INVALID_ARGUMENT');
    await t.completeTask('drain');
    expect(t.progress.tasks.drain).toMatchObject({ completedSteps: 4, percentage: 100 });
    await t.addTask('free', 'Free');
    expect((await t.advanceTask('free')).message).toBe('Step 1');
    expect((await t.advanceTask('free', { currentStep: 'node-b' })).message).toBe('Step 2: node-b');
    expect(t.progress.tasks.free).toMatchObject({ completedSteps: 2, percentage: 0 });
    // Not a whole number of percent: rounded to 2 decimals, as every percentage.
    await t.addTask('thirds', 'Thirds', 'upgrade_step', { totalSteps: 3 });
    expect((await t.advanceTask('thirds')).percentage).toBe(33.33);
    expect((await t.advanceTask('thirds')).percentage).toBe(66.67);
    await t.close();
  });

  it('starts a not_started task on progress, and completes one directly with both times', async () => {
    const clock = manualClock();
    const t = await open({ now: clock.now });
    await t.addTasks([{ taskId: 'a', taskName: 'A' }, { taskId: 'b', taskName: 'B' }]);
    clock.advance(1000);
    await t.updateTaskProgress('a', 5);
    const started = new Date(clock.now()).toISOString();
    expect(t.progress.tasks.a).toMatchObject({ status: 'in_progress', startedAt: started });
    await t.completeTask('b');
    expect(t.progress.tasks.b).toMatchObject({ status: 'completed', startedAt: t.progress.tasks.b!.completedAt, durationMs: 0 });
    // Later progress keeps the start: the duration covers the whole run, not the time since the last update.
    clock.advance(2000);
    await t.updateTaskProgress('a', 50);
    clock.advance(3000);
    await t.completeTask('a');
    expect(t.progress.tasks.a).toMatchObject({ startedAt: started, durationMs: 5000 });
    await t.close();
  });

  it('gives no duration (null, not 0) to a task skipped or cancelled, or an upgrade cancelled, before it started', async () => {
    const clock = manualClock();
    const t = await open({ now: clock.now });
    await t.addTasks([{ taskId: 's', taskName: 'S' }, { taskId: 'c', taskName: 'C' }]);
    clock.advance(1000);
    await t.skipTask('s', 'not needed');
    await t.cancelTask('c');
    await t.cancelUpgrade('called off');
    // A duration of 0 would read as a run that took no time; none ran.
    // Ended all the same: completedAt is when it was skipped or cancelled.
    expect(t.progress.tasks.s).toMatchObject({ status: 'skipped', startedAt: null, completedAt: '2026-03-01T10:00:01.000Z', durationMs: null });
    expect(t.progress.tasks.c).toMatchObject({ status: 'cancelled', startedAt: null, completedAt: '2026-03-01T10:00:01.000Z', durationMs: null });
    expect(t.progress).toMatchObject({ status: 'cancelled', startedAt: null, durationMs: null });
    await t.close();
  });

  it('pauses, resumes and cancels without rewriting tasks', async () => {
    const t = await open();
    await t.startUpgrade();
    await t.addTask('a', 'A');
    await t.startTask('a');
    await t.pauseUpgrade('maintenance window');
    expect(t.progress.status).toBe('paused');
    expect(t.progress.tasks.a!.status).toBe('in_progress');
    await t.updateTaskProgress('a', 40);
    await t.resumeUpgrade();
    await t.cancelUpgrade('operator');
    expect(t.progress.status).toBe('cancelled');
    expect(t.progress.tasks.a!.status).toBe('in_progress');
    await expectCode(() => t.updateTaskProgress('a', 50), 'INVALID_TRANSITION');
    await expectCode(() => t.addTask('b', 'B'), 'INVALID_TRANSITION');
    await t.close();
  });
});

describe('ProgressTracker: bad input throws a typed error and changes nothing', () => {
  const badIds = ['../x', 'a/b', '', 'x'.repeat(129), '.', '..', 'sp ace', 'ü', 42, null];

  it.each(badIds)('refuses upgradeId %j', async (id) => {
    await expectCode(() => open({ upgradeId: id as string }), 'INVALID_ARGUMENT');
  });

  it('gives an error whose JSON can be written whatever the bad input was (a circular object, a BigInt)', async () => {
    const t = await open();
    await t.addTask('a', 'A');
    // An HTTP client's error passed where the message goes: it refers to itself through its request.
    const httpError: Record<string, unknown> = { message: 'socket hang up' };
    httpError.request = { error: httpError };
    const errors: unknown[] = [];
    for (const attempt of [() => t.failTask('a', httpError as never), () => t.updateTaskProgress('a', 10n as never), () => t.addTask(5n as never, 'B')]) {
      await attempt().then(
        () => expect.unreachable(),
        (err: unknown) => errors.push(err),
      );
    }
    for (const err of errors) {
      expect(isProgressError(err, 'INVALID_ARGUMENT')).toBe(true);
      // `res.json({ error })` in an HTTP handler, a JSON log line: must not throw.
      const json = JSON.parse(JSON.stringify(err)) as { code: string; context: Record<string, unknown> };
      expect(json.code).toBe('INVALID_ARGUMENT');
      expect(Object.values(json.context).every((v) => typeof v === 'string' || v === null || typeof v !== 'object')).toBe(true);
    }
    await t.close();
  });

  it('refuses bad planId and clusterName', async () => {
    await expectCode(() => open({ planId: '../p' }), 'INVALID_ARGUMENT');
    await expectCode(() => open({ clusterName: '' }), 'INVALID_ARGUMENT');
    await expectCode(() => open({ clusterName: 'c'.repeat(257) }), 'INVALID_ARGUMENT');
    await expectCode(() => open({ metadata: [] as unknown as Record<string, unknown> }), 'INVALID_ARGUMENT');
    await expectCode(() => open({ sinks: [{} as never] }), 'INVALID_ARGUMENT');
  });

  it('refuses a logger without the four methods, and a clock that is not one, before it takes the lock', async () => {
    const store = new MemoryStore();
    for (const logger of [{ warn() {} }, 'console', null]) await expectCode(() => open({ store, logger: logger as never }), 'INVALID_ARGUMENT');
    await expectCode(() => open({ store, now: 'soon' as never }), 'INVALID_ARGUMENT');
    for (const sinkFlushTimeoutMs of [0, 1.5, 2 ** 31, '10' as never]) await expectCode(() => open({ store, sinkFlushTimeoutMs }), 'INVALID_ARGUMENT');
    for (const now of [() => Number.NaN, () => '2026' as never, () => 1e17]) await expectCode(() => open({ store, now }), 'INVALID_ARGUMENT');
    // Nothing was created, and the lock is free.
    expect(await store.load('test-upgrade-123')).toBeUndefined();
    let time = Date.parse('2026-11-29T00:00:00.000Z');
    const t = await open({ store, now: () => time });
    await t.addTask('a', 'A');
    time = Number.NaN;
    await expectCode(() => t.updateTaskProgress('a', 5), 'INVALID_ARGUMENT');
    expect(t.progress.lastSeq).toBe(2);
    time = Date.parse('2026-11-29T00:00:01.000Z');
    await t.updateTaskProgress('a', 5);
    // addTasks reads the clock once, before it records anything: a clock that would fail on a later
    // read cannot leave the first tasks in the live state behind an error.
    let reads = 0;
    const flaky = await open({ store: new MemoryStore(), now: () => (reads++ === 0 ? Date.now() : Number.NaN) });
    reads = 0;
    await flaky.addTasks([{ taskId: 'x', taskName: 'X' }, { taskId: 'y', taskName: 'Y' }]);
    expect(reads).toBe(1);
    expect(JSON.stringify(flaky.progress)).toBe(JSON.stringify(flaky.durableProgress));
    await flaky.close();
    await t.close();
  });

  it('keeps working when the logger throws: a failed append rejects, rolls back and closes; a failing sink is isolated', async () => {
    const store = new MemoryStore();
    const throwing = () => {
      throw new Error('log transport closed');
    };
    const logger = { debug: throwing, info: throwing, warn: throwing, error: throwing };
    const t = await open({ store, logger, sinks: [{ name: 'broken', handle: throwing }] });
    await t.startUpgrade();
    const original = store.append.bind(store);
    store.append = () => Promise.reject(new Error('disk full'));
    await expectCode(() => t.addTask('a', 'A'), 'STORE_UNAVAILABLE');
    store.append = original;
    expect(t.getSystemInfo()).toMatchObject({ durableSeq: 2, pendingEvents: 0 });
    await t.addTask('a', 'A');
    expect(t.progress.lastSeq).toBe(3);
    await t.close();
    // The lock was released: the upgrade opens again, and the planId warning's logger throws too.
    const again = await open({ store, logger, planId: 'another-plan' });
    await again.close();
  });

  it('reports a store that fails while opening as STORE_UNAVAILABLE, with its error as the cause, and frees the lock', async () => {
    const store = new MemoryStore();
    const cause = new Error('ECONNREFUSED');
    const load = store.load.bind(store);
    store.load = () => Promise.reject(cause);
    const err = await open({ store }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', cause });
    store.load = load;
    const acquire = store.acquire.bind(store);
    store.acquire = () => Promise.reject(cause);
    expect(await open({ store }).catch((e: unknown) => e)).toMatchObject({ code: 'STORE_UNAVAILABLE', cause });
    store.acquire = acquire;
    const t = await open({ store });
    await t.close();
  });

  it('checks completedSteps and currentStep given in updateTaskProgress details as advanceTask does', async () => {
    const t = await open();
    await t.addTask('a', 'A', 'upgrade_step', { totalSteps: 4 });
    for (const details of [{ completedSteps: 999 }, { completedSteps: -7.5 }, { completedSteps: 5 }, { currentStep: 'x'.repeat(257) }]) {
      await expectCode(() => t.updateTaskProgress('a', 10, 'm', details), 'INVALID_ARGUMENT');
    }
    expect(t.progress.tasks.a).toMatchObject({ completedSteps: 0, currentStep: null, percentage: 0 });
    await t.updateTaskProgress('a', 50, 'm', { completedSteps: 2, currentStep: 'node-2', other: 'kept' });
    expect(t.progress.tasks.a).toMatchObject({ completedSteps: 2, currentStep: 'node-2', percentage: 50 });
    await t.advanceTask('a');
    expect(t.progress.tasks.a!.completedSteps).toBe(3);
    // Values the reducer does not take as steps are plain details.
    await t.updateTaskProgress('a', 80, 'm', { completedSteps: ['x'], currentStep: 7 });
    expect(t.progress.tasks.a).toMatchObject({ completedSteps: 3, currentStep: 'node-2' });
    await t.close();
  });

  it('refuses every bad command without touching state or store', async () => {
    const store = new MemoryStore();
    const t = await open({ store });
    await t.startUpgrade();
    await t.addTask('t1', 'Task');
    await t.addTask('done', 'Done');
    await t.completeTask('done');
    const state = JSON.stringify(t.progress);
    const stored = store.info().events;
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const cases: Array<[() => unknown, string]> = [
      ...badIds.map((id): [() => unknown, string] => [() => t.addTask(id as string, 'x'), 'INVALID_ARGUMENT']),
      ...badIds.slice(0, 6).map((id): [() => unknown, string] => [() => t.startTask(id as string), 'INVALID_ARGUMENT']),
      [() => t.updateTaskProgress('t1', Number.NaN), 'INVALID_ARGUMENT'],
      [() => t.updateTaskProgress('t1', -1), 'INVALID_ARGUMENT'],
      [() => t.updateTaskProgress('t1', 101), 'INVALID_ARGUMENT'],
      [() => t.updateTaskProgress('t1', Infinity), 'INVALID_ARGUMENT'],
      [() => t.updateTaskProgress('t1', '50' as unknown as number), 'INVALID_ARGUMENT'],
      [() => t.updateTaskProgress('t1', 50, 'm', circular), 'INVALID_ARGUMENT'],
      [() => t.updateTaskProgress('t1', 50, 'm', [] as unknown as Record<string, unknown>), 'INVALID_ARGUMENT'],
      // A toJSON that makes the details vanish, or turns them into something else than an object.
      [() => t.updateTaskProgress('t1', 50, 'm', { toJSON: () => undefined }), 'INVALID_ARGUMENT'],
      [() => t.updateTaskProgress('t1', 50, 'm', { toJSON: () => [1] }), 'INVALID_ARGUMENT'],
      // Collections JSON keeps none of the entries of (recorded as {} before: the data gone without a
      // word), and a Date (no keys of its own: it took the empty-object path and was recorded as {}).
      [() => t.updateTaskProgress('t1', 50, 'm', new Map([['node', 'ip-10-0-0-1']]) as unknown as Record<string, unknown>), 'INVALID_ARGUMENT'],
      [() => t.updateTaskProgress('t1', 50, 'm', new Set(['ip-10-0-0-1']) as unknown as Record<string, unknown>), 'INVALID_ARGUMENT'],
      [() => t.updateTaskProgress('t1', 50, 'm', new Date() as unknown as Record<string, unknown>), 'INVALID_ARGUMENT'],
      [() => t.updateTaskProgress('t1', 50, 'm', new Map() as unknown as Record<string, unknown>), 'INVALID_ARGUMENT'],
      [() => t.updateTaskProgress('t1', 50, 'm', new WeakMap([[{}, 'ip-10-0-0-1']]) as unknown as Record<string, unknown>), 'INVALID_ARGUMENT'],
      [() => t.updateTaskProgress('t1', 50, 'm', new WeakSet([{}]) as unknown as Record<string, unknown>), 'INVALID_ARGUMENT'],
      [() => t.updateTaskProgress('nope', 50), 'TASK_NOT_FOUND'],
      [() => t.startTask('nope'), 'TASK_NOT_FOUND'],
      [() => t.completeTask('nope'), 'TASK_NOT_FOUND'],
      [() => t.failTask('nope', 'x'), 'TASK_NOT_FOUND'],
      [() => t.addTask('child', 'Child', 'upgrade_step', { parentTaskId: 'nope' }), 'TASK_NOT_FOUND'],
      [() => t.addTask('t1', 'Again'), 'DUPLICATE_TASK'],
      [() => t.addTasks([{ taskId: 'n1', taskName: 'x' }, { taskId: 'n1', taskName: 'y' }]), 'DUPLICATE_TASK'],
      [() => t.addTasks([{ taskId: 'n2', taskName: 'x' }, { taskId: 'bad/id', taskName: 'y' }]), 'INVALID_ARGUMENT'],
      [() => t.addTasks([]), 'INVALID_ARGUMENT'],
      [() => t.addTask('w', 'W', 'upgrade_step', { weight: 0 }), 'INVALID_ARGUMENT'],
      // A weight of NaN or Infinity makes every mean it is in NaN or no mean at all.
      [() => t.addTask('w', 'W', 'upgrade_step', { weight: Number.NaN }), 'INVALID_ARGUMENT'],
      [() => t.addTask('w', 'W', 'upgrade_step', { weight: Infinity }), 'INVALID_ARGUMENT'],
      [() => t.addTask('w', 'W', 'upgrade_step', { totalSteps: 0 }), 'INVALID_ARGUMENT'],
      // Steps are whole: "step 2.5 of 4" is no step.
      [() => t.addTask('w', 'W', 'upgrade_step', { totalSteps: 2.5 }), 'INVALID_ARGUMENT'],
      [() => t.advanceTask('t1', { completedSteps: 1.5 }), 'INVALID_ARGUMENT'],
      [() => t.addTask('w', ''), 'INVALID_ARGUMENT'],
      [() => t.completeTask('done'), 'INVALID_TRANSITION'],
      [() => t.startTask('done'), 'INVALID_TRANSITION'],
      [() => t.retryTask('t1'), 'INVALID_TRANSITION'],
      [() => t.startUpgrade(), 'INVALID_TRANSITION'],
      [() => t.resumeUpgrade(), 'INVALID_TRANSITION'],
      [() => t.failUpgrade(''), 'INVALID_ARGUMENT'],
      [() => t.setCurrentPhase(''), 'INVALID_ARGUMENT'],
    ];
    for (const [fn, code] of cases) await expectCode(fn, code as never);
    await t.startTask('t1');
    await expectCode(() => t.startTask('t1'), 'INVALID_TRANSITION');
    await expectCode(() => t.skipTask('t1'), 'INVALID_TRANSITION');
    await t.flush();
    const after = JSON.parse(JSON.stringify(t.progress)) as UpgradeProgress;
    const expected = JSON.parse(state) as UpgradeProgress;
    // Only the one valid startTask changed anything.
    expect(after.lastSeq).toBe(expected.lastSeq + 1);
    expect(store.info().events).toBe((stored as number) + 1);
    expect(Object.keys(after.tasks)).toEqual(Object.keys(expected.tasks));
    await t.close();
  });

  it('keeps recorded details and metadata apart from the objects passed in, however deep', async () => {
    const store = new MemoryStore();
    const meta = { nodes: ['a'], owner: { team: 'x' } };
    const t = await open({ store, metadata: meta });
    await t.addTask('t1', 'T1');
    const info = { node: 'ip-1', tags: ['drain'] };
    const ev = await t.updateTaskProgress('t1', 10, 'drained', { info });
    info.node = 'CHANGED-LATER';
    info.tags.push('CHANGED-LATER');
    meta.nodes.push('CHANGED-LATER');
    meta.owner.team = 'CHANGED-LATER';
    const expectedDetails = { info: { node: 'ip-1', tags: ['drain'] } };
    expect(ev.details).toEqual(expectedDetails);
    expect(t.progress.tasks.t1!.recentEvents.at(-1)!.details).toEqual(expectedDetails);
    expect(t.durableProgress.tasks.t1!.recentEvents.at(-1)!.details).toEqual(expectedDetails);
    const stored = await events(t);
    expect(stored.at(-1)!.details).toEqual(expectedDetails);
    expect(stored[0]!.details).toMatchObject({ metadata: { nodes: ['a'], owner: { team: 'x' } } });
    expect(t.progress.metadata).toEqual({ nodes: ['a'], owner: { team: 'x' } });
    await t.close();
  });

  it('refuses details and metadata that throw when read, with INVALID_ARGUMENT and no change', async () => {
    const store = new MemoryStore();
    const t = await open({ store });
    await t.startUpgrade();
    await t.addTask('t1', 'Task');
    const state = JSON.stringify(t.progress);
    const stored = store.info().events;
    const boom = (): never => {
      throw new Error('boom');
    };
    const getter = {
      get x() {
        return boom();
      },
    };
    const nested = {
      deep: {
        get x() {
          return boom();
        },
      },
    };
    const proxy = new Proxy({}, { ownKeys: boom });
    const { proxy: revoked, revoke } = Proxy.revocable({}, {});
    revoke();
    for (const details of [getter, nested, proxy, revoked]) await expectCode(() => t.updateTaskProgress('t1', 5, 'm', details), 'INVALID_ARGUMENT');
    await expectCode(() => open({ upgradeId: 'other', metadata: getter }), 'INVALID_ARGUMENT');
    await expectCode(() => open({ upgradeId: 'other', metadata: proxy }), 'INVALID_ARGUMENT');
    expect(JSON.stringify(t.progress)).toBe(state);
    expect(store.info().events).toBe(stored);
    await t.close();
  });

  it('refuses a bad readEvents limit with INVALID_ARGUMENT', async () => {
    const t = await open();
    await t.startUpgrade();
    for (const limit of [-1, 'x', 1.5, Number.NaN, null]) expect(() => t.readEvents(0, limit as number), String(limit)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    const read = async (limit?: number) => {
      const out: number[] = [];
      for await (const e of t.readEvents(0, limit)) out.push(e.seq);
      return out;
    };
    expect(await read()).toEqual([1, 2]);
    expect(await read(1)).toEqual([1]);
    expect(await read(0)).toEqual([]);
    expect(await read(Infinity)).toEqual([1, 2]); // what the stores take as "no limit"
    await t.close();
  });

  it('rejects (never throws synchronously) from every command', async () => {
    const t = await open();
    const calls = [() => t.updateTaskProgress('nope', 50), () => t.startUpgrade(''), () => t.addTask('../x', 'x'), () => t.failTask('a', '')];
    for (const call of calls) {
      let result: unknown;
      expect(() => (result = call())).not.toThrow();
      expect(result).toBeInstanceOf(Promise);
      await expect(result).rejects.toMatchObject({ name: 'ProgressError' });
    }
    await t.close();
  });

  it('refuses commands after close with CLOSED', async () => {
    const t = await open();
    await t.close();
    await t.close();
    await expectCode(() => t.startUpgrade(), 'CLOSED');
    await expectCode(() => t.addTask('a', 'A'), 'CLOSED');
  });
});

describe('ProgressTracker: durability and sinks', () => {
  it('commits the commands of one tick in one append and acknowledges them only once durable', async () => {
    const store = new MemoryStore();
    const appends: number[] = [];
    const original = store.append.bind(store);
    store.append = async (id, evs, seq, state) => {
      appends.push(evs.length);
      await new Promise((r) => setTimeout(r, 5));
      return original(id, evs, seq, state);
    };
    const t = await open({ store });
    await t.addTask('a', 'A');
    appends.length = 0;
    const done: number[] = [];
    const all = Array.from({ length: 50 }, (_, i) => t.updateTaskProgress('a', i + 1).then((e) => done.push(e.seq)));
    expect(t.progress.tasks.a!.percentage).toBe(50);
    expect(t.durableProgress.tasks.a!.percentage).toBe(0);
    expect(t.getSystemInfo()).toMatchObject({ lastSeq: 52, durableSeq: 2, pendingEvents: 50 });
    await Promise.all(all);
    expect(t.getSystemInfo()).toMatchObject({ lastSeq: 52, durableSeq: 52, pendingEvents: 0 });
    expect(appends).toEqual([50]);
    expect(done).toEqual(Array.from({ length: 50 }, (_, i) => i + 3));
    expect(t.durableProgress.lastSeq).toBe(52);
    await t.close();
  });

  it('resolves addTask with the task as stored, not with a change a sink made on its event that the store then refused', async () => {
    const inner = new MemoryStore();
    let appends = 0;
    const store = delegatingStore(inner, {
      append: async (id, evs, seq, state) => {
        // 1 = upgrade.created, 2 = task.added, 3 = the sink's task.started: refused.
        if (++appends === 3) throw new Error('connection reset');
        return inner.append(id, evs, seq, state);
      },
    });
    let started: Promise<unknown> | undefined;
    const t = await open({ store });
    t.addSink({ name: 'starter', handle: (e) => void (e.type === 'task.added' && (started = t.startTask(e.taskId!).catch((err: unknown) => err))) });
    const task = await t.addTask('a', 'A');
    expect(task).toMatchObject({ taskId: 'a', status: 'not_started', startedAt: null });
    expect(isProgressError(await started, 'STORE_UNAVAILABLE')).toBe(true);
    expect(t.progress.tasks.a!.status).toBe('not_started');
    await t.close();
  });

  it('calls every sink before the command resolves, in seq order, and isolates failing sinks', async () => {
    const calls: string[] = [];
    const warnings: unknown[] = [];
    const logger = { debug() {}, info() {}, warn: (o: object) => warnings.push(o), error() {} };
    const t = await open({
      logger,
      sinks: [
        { name: 'throws', handle: () => { throw new Error('boom'); } },
        { name: 'rejects', handle: async () => { throw new Error('async boom'); } },
        { name: 'records', handle: (e, state) => { calls.push(`${e.seq}:${e.type}:${state.lastSeq}`); } },
      ],
    });
    expect(calls).toEqual(['1:upgrade.created:1']);
    await t.startUpgrade();
    expect(calls).toEqual(['1:upgrade.created:1', '2:upgrade.started:2']);
    await new Promise((r) => setTimeout(r, 0));
    expect(warnings.length).toBe(4);
    await t.close();
  });

  it('hands each event to the sinks and subscribers there were when it was emitted, whatever they add or remove meanwhile', async () => {
    const t = await open();
    const seen: string[] = [];
    let removeOnce = () => {};
    removeOnce = t.addSink({ name: 'one-shot', handle: (e) => void (e.type === 'upgrade.started' && removeOnce()) });
    t.addSink({ name: 'b', handle: (e) => void seen.push(`b:${e.seq}`) });
    let offA = () => {};
    const a = (e: ProgressEvent) => {
      seen.push(`a:${e.seq}`);
      // Unsubscribes and subscribes again (once: the old code looped): called once for this event, not twice.
      if (e.seq !== 2 || seen.filter((s) => s === 'a:2').length > 1) return;
      offA();
      offA = t.subscribe(a);
    };
    offA = t.subscribe(a);
    const offC = t.subscribe((e) => {
      seen.push(`c:${e.seq}`);
      if (e.seq === 2) t.subscribe((late) => void seen.push(`late:${late.seq}`));
      if (e.seq === 3) offC();
    });
    await t.startUpgrade();
    await t.setCurrentPhase('P2');
    await t.setCurrentPhase('P3');
    expect(seen).toEqual(['b:2', 'a:2', 'c:2', 'b:3', 'c:3', 'a:3', 'late:3', 'b:4', 'a:4', 'late:4']);
    expect(t.getSystemInfo()).toMatchObject({ sinks: ['b'], subscribers: 2 });
    await t.close();
  });

  it('rejects a failed write and everything queued behind it, rolls back, and goes on', async () => {
    const store = new MemoryStore();
    const t = await open({ store });
    await t.addTask('a', 'A');
    const original = store.append.bind(store);
    let fail = true;
    store.append = async (id, evs, seq, state) => {
      if (fail) {
        await new Promise((r) => setTimeout(r, 5));
        throw new Error('disk full');
      }
      return original(id, evs, seq, state);
    };
    const first = t.updateTaskProgress('a', 10);
    await Promise.resolve();
    await Promise.resolve();
    const second = t.updateTaskProgress('a', 20);
    const results = await Promise.allSettled([first, second]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect((results[0] as PromiseRejectedResult).reason.code).toBe('STORE_UNAVAILABLE');
    expect((results[1] as PromiseRejectedResult).reason.code).toBe('STORE_UNAVAILABLE');
    expect(t.progress.lastSeq).toBe(2);
    expect(t.progress.tasks.a!.percentage).toBe(0);
    fail = false;
    const ev = await t.updateTaskProgress('a', 30);
    expect(ev.seq).toBe(3);
    const stored: number[] = [];
    for await (const e of store.readEvents('test-upgrade-123', 0)) stored.push(e.seq);
    expect(stored).toEqual([1, 2, 3]);
    await t.close();
  });

  it('keeps the durable state equal to the stored events over hundreds of commands, through rollbacks and late subscribers', async () => {
    const store = new MemoryStore();
    const t = await open({ store });
    await t.startUpgrade();
    await t.addTasks([{ taskId: 'a', taskName: 'A' }, { taskId: 'b', taskName: 'B', parentTaskId: 'a' }, { taskId: 'c', taskName: 'C' }]);
    const stored = async (): Promise<UpgradeProgress> => {
      const events: ProgressEvent[] = [];
      for await (const e of store.readEvents('test-upgrade-123', 0)) events.push(e);
      return replayEvents(events)!;
    };
    // Sequentially and in small bursts, reading in between.
    for (let i = 0; i < 600; i++) {
      if (i % 97 === 0) expect(JSON.stringify(t.durableProgress)).toBe(JSON.stringify(await stored()));
      if (i % 50 === 0) await Promise.all([t.updateTaskProgress('b', (i + 1) % 100), t.updateTaskProgress('c', i % 100), t.updateTaskProgress('b', i % 100)]);
      else await t.updateTaskProgress(i % 2 ? 'b' : 'c', i % 100);
    }
    expect(JSON.stringify(t.durableProgress)).toBe(JSON.stringify(await stored()));
    expect(JSON.stringify(t.durableProgress)).toBe(JSON.stringify(t.progress));
    // A failed write rolls the live state back to the durable one, which holds every acknowledged event.
    for (let i = 0; i < 40; i++) await t.updateTaskProgress('c', i);
    const original = store.append.bind(store);
    store.append = () => Promise.reject(new Error('disk full'));
    await expect(t.updateTaskProgress('c', 77)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    store.append = original;
    expect(t.progress.tasks.c!.percentage).toBe(39);
    expect(JSON.stringify(t.progress)).toBe(JSON.stringify(await stored()));
    // A subscriber that arrives after the lag built up gets the exact state after each event.
    for (let i = 0; i < 30; i++) await t.updateTaskProgress('b', i);
    const seen: string[] = [];
    t.subscribe((_, state) => seen.push(JSON.stringify(state)));
    await t.updateTaskProgress('b', 55);
    expect(seen).toEqual([JSON.stringify(await stored())]);
    expect(t.getSystemInfo()).toMatchObject({ durableSeq: t.progress.lastSeq, pendingEvents: 0 });
    await t.close();
  });

  it('reports CONFLICT when another writer moved the stored seq', async () => {
    const store = new MemoryStore();
    const t = await open({ store });
    // Another writer (no lock taken) appends behind our back.
    const created = [] as ProgressEvent[];
    for await (const e of store.readEvents('test-upgrade-123', 0)) created.push(e);
    const foreign: ProgressEvent = { ...created[0]!, eventId: 'foreign', seq: 2, type: 'upgrade.started', status: 'in_progress', details: { phase: 'X' } };
    await store.append('test-upgrade-123', [foreign], 1, t.progress);
    await expectCode(() => t.startUpgrade(), 'CONFLICT');
    await t.close();
  });

  it('loads an existing upgrade instead of creating it, keeping the stored plan and cluster', async () => {
    const store = new MemoryStore();
    const t = await open({ store });
    await t.startUpgrade();
    await t.close();
    const warnings: object[] = [];
    const again = await open({ store, planId: 'other-plan', logger: { debug() {}, info() {}, warn: (o) => warnings.push(o), error() {} } });
    expect(again.progress).toMatchObject({ planId: 'test-plan-123', status: 'in_progress', lastSeq: 2 });
    expect(warnings).toHaveLength(1);
    await again.close();
    // Another cluster name alone is logged alike.
    const third = await open({ store, clusterName: 'other-cluster', logger: { debug() {}, info() {}, warn: (o) => warnings.push(o), error() {} } });
    expect(third.progress.clusterName).toBe('test-cluster');
    expect(warnings).toHaveLength(2);
    expect(warnings[1]).toMatchObject({ storedClusterName: 'test-cluster', clusterName: 'other-cluster' });
    await third.close();
  });

  it('closes with await using and reports its system info', async () => {
    let info;
    {
      await using t = await open({ sinks: [{ name: 'noop', handle() {} }] });
      info = t.getSystemInfo();
    }
    expect(info).toMatchObject({ upgradeId: 'test-upgrade-123', lastSeq: 1, durableSeq: 1, pendingEvents: 0, closed: false, sinks: ['noop'], store: { name: 'MemoryStore' } });
  });
});

describe('ProgressTracker.open over a store that loads what is not a state', () => {
  it.each([
    ['no tasks', { upgradeId: 'u-bad', lastSeq: 3, status: 'in_progress', overallPercentage: 0, updatedAt: '2026-01-01T00:00:00.000Z' }],
    ['another upgrade', { upgradeId: 'other', lastSeq: 3, status: 'in_progress', overallPercentage: 0, updatedAt: '2026-01-01T00:00:00.000Z', tasks: {} }],
    ['a seq below 0', { upgradeId: 'u-bad', lastSeq: -1, status: 'in_progress', overallPercentage: 0, updatedAt: '2026-01-01T00:00:00.000Z', tasks: {} }],
    ['a string', 'not a state'],
  ])('refuses it with DATA_CORRUPTED (%s) and lets the upgrade go', async (_what, loaded) => {
    const inner = new MemoryStore();
    const store = delegatingStore(inner, { load: async () => loaded as never });
    await expect(ProgressTracker.open({ upgradeId: 'u-bad', planId: 'p', clusterName: 'c', store })).rejects.toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining('u-bad') });
    // The writer lock was let go: another open can take it.
    await expect(inner.acquire('u-bad')).resolves.toBeUndefined();
  });
});

describe('addTasks with specs whose fields answer differently on each read', () => {
  it('records what it checked: each field is read once', async () => {
    const t = await ProgressTracker.open({ upgradeId: 'u-getter', planId: 'p', clusterName: 'c' });
    await t.addTask('p', 'Parent');
    let reads = 0;
    // A valid parent on the first read, an unknown one on any later read.
    const shifty = {
      taskId: 'b',
      taskName: 'B',
      get parentTaskId(): string {
        return ++reads === 1 ? 'p' : 'nope';
      },
    };
    const [a, b] = await t.addTasks([{ taskId: 'a', taskName: 'A' }, shifty]);
    expect(reads).toBe(1);
    expect(a).toMatchObject({ taskId: 'a' });
    expect(b).toMatchObject({ taskId: 'b', parentTaskId: 'p' });
    // The live state is the durable one: the next command goes through.
    expect(t.progress).toEqual(t.durableProgress);
    await expect(t.startTask('a')).resolves.toMatchObject({ seq: t.progress.lastSeq });
    await t.close();
  });
});

describe('a listener or sink registered twice', () => {
  it('is called once per event, and stays until each registration is taken away', async () => {
    const sinkSeen: number[] = [];
    const sink = { name: 'twice', handle: (e: ProgressEvent) => void sinkSeen.push(e.seq) };
    const t = await ProgressTracker.open({ upgradeId: 'u-twice', planId: 'p', clusterName: 'c', sinks: [sink, sink] });
    const seen: number[] = [];
    const listener = (e: ProgressEvent): void => void seen.push(e.seq);
    const off1 = t.subscribe(listener);
    const off2 = t.subscribe(listener);
    const removeSink = t.addSink(sink);
    await t.startUpgrade(); // seq 2
    off1();
    off1(); // a remover counts once
    removeSink();
    await t.setCurrentPhase('Two'); // seq 3: still registered once each
    off2();
    await t.setCurrentPhase('Three'); // seq 4: the listener is gone, the sink given to open() stays
    expect(seen).toEqual([2, 3]);
    expect(sinkSeen).toEqual([1, 2, 3, 4]);
    expect(t.getSystemInfo()).toMatchObject({ sinks: ['twice'], subscribers: 0 });
    await t.close();
  });
});
