import { copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressTracker, replayEvents, type ProgressEvent } from '@progress/core';
import { JsonFileStore, parsePythonDatetime, parsePythonTimedelta } from '../src/index.js';
import { decodeSnapshot } from '../src/record-codec.js';
import { removeTempDirs, tempDir } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
// A copy of the real file the Python module wrote (shared/fixtures/legacy), kept byte for byte.
const REAL = join(here, 'fixtures', 'upgrade_test-upgrade-123.json');
const fixture = (name: string): string => join(here, 'fixtures', `upgrade_${name}.json`);

afterAll(removeTempDirs);

/** A store over a temp dir holding copies of the given legacy files. */
async function storeWith(...files: string[]): Promise<{ store: JsonFileStore; dir: string }> {
  const dir = await tempDir('legacy');
  await mkdir(join(dir, 'progress'));
  for (const f of files) await copyFile(f, join(dir, 'progress', f.split('/').pop()!));
  return { store: new JsonFileStore({ directory: dir }), dir };
}

async function collect(it: AsyncIterable<ProgressEvent>): Promise<ProgressEvent[]> {
  const out: ProgressEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

describe('Python str() values', () => {
  it('parses datetimes to ISO UTC, truncated to the millisecond', () => {
    expect(parsePythonDatetime('2025-10-20 05:25:01.056236+00:00')).toBe('2025-10-20T05:25:01.056Z');
    expect(parsePythonDatetime('2025-10-20 05:25:00.869989+00:00')).toBe('2025-10-20T05:25:00.869Z');
    expect(parsePythonDatetime('2025-10-20 07:25:00+02:00')).toBe('2025-10-20T05:25:00.000Z');
    expect(parsePythonDatetime('2025-10-20T05:25:00.5')).toBe('2025-10-20T05:25:00.500Z');
    expect(parsePythonDatetime('yesterday')).toBeUndefined();
    expect(parsePythonDatetime('2025-13-20 05:25:00')).toBeUndefined();
  });

  it('parses timedeltas, negative ones included', () => {
    expect(parsePythonTimedelta('-1 day, 23:59:59.947690')).toBeCloseTo(-52.31, 6);
    expect(parsePythonTimedelta('0:00:00.000780')).toBeCloseTo(0.78, 6);
    expect(parsePythonTimedelta('0:01:02.345000')).toBe(62_345);
    expect(parsePythonTimedelta('2 days, 1:00:00')).toBe(176_400_000);
    expect(parsePythonTimedelta('1:2')).toBeUndefined();
  });

  it('refuses impossible datetimes and timedeltas instead of rolling them over into other times', () => {
    for (const v of [
      '2025-02-31 10:00:00+00:00',
      '2025-02-29 10:00:00',
      '2025-04-31 10:00:00',
      '2025-10-00 10:00:00',
      '2025-00-10 10:00:00',
      '0000-01-01 00:00:00',
      '2025-10-20 24:00:00',
      '2025-10-20 05:60:00',
      '2025-10-20 05:25:60',
      '2025-10-20 05:25:01.056236+99:00',
      '2025-10-20 05:25:01+24:00',
      '2025-10-20 05:25:01-05:60',
      '2025-10-20 05:25:01+05:30:60',
    ]) {
      expect(parsePythonDatetime(v), v).toBeUndefined();
    }
    expect(parsePythonDatetime('2024-02-29 23:59:59.999999')).toBe('2024-02-29T23:59:59.999Z');
    expect(parsePythonDatetime('2025-10-20 05:25:01+23:59')).toBe('2025-10-19T05:26:01.000Z');
    expect(parsePythonDatetime('2025-10-20 05:25:01-05:30:15')).toBe('2025-10-20T10:55:16.000Z');
    expect(parsePythonDatetime('0025-01-01 00:00:00')).toBe('0025-01-01T00:00:00.000Z');
    for (const v of ['0:99:99', '0:60:00', '0:00:60', '1 day, 3:07:61']) expect(parsePythonTimedelta(v), v).toBeUndefined();
    expect(parsePythonTimedelta('1 day, 23:59:59.999999')).toBe(172_799_999.999);
  });

  it('parses the forms other writers give a datetime: Z, more than 6 digits of fraction, surrounding blanks; and a timedelta with a short fraction', () => {
    // Python 3.11's fromisoformat() reads these too; the old module's pydantic model took them from a file edited by hand.
    expect(parsePythonDatetime('2025-10-20T05:25:00Z')).toBe('2025-10-20T05:25:00.000Z');
    expect(parsePythonDatetime('2025-10-20T05:25:00.123456789+02:00')).toBe('2025-10-20T03:25:00.123Z');
    expect(parsePythonDatetime(' 2025-10-20 05:25:00.5\n')).toBe('2025-10-20T05:25:00.500Z');
    // A fraction of a second, not of a microsecond: .5 is half a second.
    expect(parsePythonTimedelta('0:00:01.5')).toBe(1_500);
    expect(parsePythonTimedelta('1 day, 0:00:00')).toBe(86_400_000);
  });

  it('answers undefined for a value that is not a string, as for any other that is not one (they threw a TypeError)', () => {
    // A field of a JSON file read by a tool of its own: a number, null or an object where a datetime belongs.
    for (const value of [undefined, null, 1729401901, {}, ['2025-10-20 05:25:01'], 10n, Symbol('s')]) {
      expect(parsePythonDatetime(value as never), String(value)).toBeUndefined();
      expect(parsePythonTimedelta(value as never), String(value)).toBeUndefined();
    }
  });
});

describe('legacy files of the Python module', () => {
  it('loads the real fixture with its statuses, phase, task times to the ms and error', async () => {
    const { store } = await storeWith(REAL);
    const state = (await store.load('test-upgrade-123'))!;
    expect(state.status).toBe('failed');
    expect(state.planId).toBe('test-plan-123');
    expect(state.clusterName).toBe('test-cluster');
    expect(state.currentPhase).toBe('Test Phase');
    expect(state.errorMessage).toBe('Test error');
    expect(state.metadata).toEqual({ error_message: 'Test error' });
    expect(state.startedAt).toBe('2025-10-20T05:25:01.056Z');
    expect(state.completedAt).toBe('2025-10-20T05:25:00.943Z');
    // Created at the earliest time the file holds (a task's start, before the upgrade's started_at), not its first field's.
    expect(state.createdAt).toBe('2025-10-20T05:25:00.869Z');
    expect(state.overallPercentage).toBe(100);
    expect(Object.keys(state.tasks)).toEqual(['task-1', 'task-2', 'task-3']);
    const t1 = state.tasks['task-1']!;
    expect([t1.status, t1.startedAt, t1.completedAt, t1.taskType]).toEqual(['completed', '2025-10-20T05:25:00.869Z', '2025-10-20T05:25:00.869Z', 'upgrade_step']);
    const t2 = state.tasks['task-2']!;
    expect([t2.startedAt, t2.completedAt]).toEqual(['2025-10-20T05:25:00.870Z', '2025-10-20T05:25:00.871Z']);
    const t3 = state.tasks['task-3']!;
    expect([t3.status, t3.taskType, t3.startedAt, t3.completedAt]).toEqual(['completed', 'validation', '2025-10-20T05:25:00.871Z', '2025-10-20T05:25:00.872Z']);
    // The recorded events keep their ids and messages.
    expect(t1.recentEvents.map((e) => e.eventId)).toContain('dff8b2af-1018-4b0f-b0e8-be9667094e9e');
    const events = await collect(store.readEvents('test-upgrade-123', 0));
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(JSON.parse(JSON.stringify(replayEvents(events)))).toEqual(JSON.parse(JSON.stringify(state)));
    const failed = events[events.length - 1]!;
    expect(failed.type).toBe('upgrade.failed');
    expect(failed.details.legacyDurationMs).toBeCloseTo(-52.31, 6);
    expect((await collect(store.readEvents('test-upgrade-123', 10, 1))).map((e) => e.seq)).toEqual([11]);
    const rows = await store.list();
    expect(rows.map((r) => [r.upgradeId, r.status, r.totalTasks])).toEqual([['test-upgrade-123', 'failed', 3]]);
    await store.close();
  });

  it('imports parents (a child listed before its parent), weighted progress and details', async () => {
    const { store } = await storeWith(fixture('parents-1'));
    const state = (await store.load('parents-1'))!;
    expect(state.status).toBe('in_progress');
    expect(state.tasks['ng-1']!.parentTaskId).toBe('nodes');
    expect(state.tasks['ng-2']!.percentage).toBe(50);
    expect(state.tasks['nodes']!.percentage).toBe(75);
    expect(state.overallPercentage).toBe(87.5);
    expect(state.tasks['ng-1']!.startedAt).toBe('2025-11-02T10:00:02.100Z');
    expect(state.tasks['ng-1']!.completedAt).toBe('2025-11-02T10:00:05.200Z');
    expect(state.tasks['ng-2']!.recentEvents.at(-1)!.details).toEqual({ node: 'ip-10-0-1-7' });
    expect(Object.keys(state.tasks).indexOf('nodes')).toBeLessThan(Object.keys(state.tasks).indexOf('ng-1'));
    await store.close();
  });

  it('imports steps, the current step and the metadata', async () => {
    const { store } = await storeWith(fixture('steps-1'));
    const task = (await store.load('steps-1'))!.tasks['drain']!;
    expect([task.status, task.totalSteps, task.completedSteps, task.currentStep, task.percentage]).toEqual(['in_progress', 4, 2, 'node-2', 50]);
    expect((await store.load('steps-1'))!.metadata).toEqual({ requested_by: 'ops' });
    await store.close();
  });

  it('imports a paused upgrade with a retried, failed task and one not started', async () => {
    const { store } = await storeWith(fixture('paused-1'));
    const state = (await store.load('paused-1'))!;
    expect([state.status, state.currentPhase]).toEqual(['paused', 'Validation']);
    const check = state.tasks['check']!;
    expect([check.status, check.errorMessage, check.retryCount, check.completedAt]).toEqual(['failed', 'timeout again', 1, '2025-11-02T10:00:09.999Z']);
    expect(state.tasks['later']!.status).toBe('not_started');
    await store.close();
  });

  it('imports a task recorded as paused (a status only an upgrade has here) as in_progress, as a task of a paused upgrade is', async () => {
    const doc = JSON.parse(await readFile(fixture('paused-1'), 'utf8')) as { upgrade_id: string; tasks: Record<string, { status: string }> };
    doc.upgrade_id = 'paused-task-1';
    doc.tasks['later']!.status = 'paused';
    const dir = await tempDir('legacy');
    await mkdir(join(dir, 'progress'));
    await writeFile(join(dir, 'progress', 'upgrade_paused-task-1.json'), JSON.stringify(doc));
    const store = new JsonFileStore({ directory: dir });
    const state = (await store.load('paused-task-1'))!;
    // Started when the upgrade started (the file has no start time of its own).
    expect([state.tasks['later']!.status, state.tasks['later']!.startedAt]).toEqual(['in_progress', '2025-11-02T10:00:00.000Z']);
    const events = await collect(store.readEvents('paused-task-1', 0));
    expect(events.map((e) => e.type)).not.toContain('task.paused');
    expect(replayEvents(events)).toEqual(state);
    await store.close();
  });

  it('imports naive datetimes, nested metadata, a skipped task and the duration', async () => {
    const { store } = await storeWith(fixture('metadata-1'));
    const state = (await store.load('metadata-1'))!;
    expect([state.status, state.startedAt, state.completedAt, state.durationMs, state.overallPercentage]).toEqual([
      'completed',
      '2025-11-03T08:00:00.000Z',
      '2025-11-03T08:01:02.345Z',
      62_345,
      100,
    ]);
    expect(state.metadata).toEqual({ region: 'eu-west-1', versions: { from: '1.29', to: '1.30' }, node_groups: ['ng-a', 'ng-b'], dry_run: false, note: 'héllo ✓' });
    expect(state.tasks['addons']!.status).toBe('skipped');
    const last = (await collect(store.readEvents('metadata-1', 0))).at(-1)!;
    expect([last.type, last.details.legacyDurationMs]).toEqual(['upgrade.completed', 62_345]);
    await store.close();
  });

  it('keeps the history in order for a task the Python module started again (its started_at is then the last start)', async () => {
    // The old module's start_task() sets started_at to now on every call, and fail_task() leaves
    // completed_at alone: a task started, failed, started again and completed records the second
    // start as started_at; one started, completed, started again and failed keeps the old completed_at.
    const doc = JSON.parse(await readFile(REAL, 'utf8')) as { upgrade_id: string; tasks: Record<string, Record<string, unknown>> };
    doc.upgrade_id = 'restarted-1';
    const ev = (taskId: string, s: string, status: string, message: string) => ({
      event_id: `00000000-0000-4000-8000-${taskId.replace('task-', '')}${s.replace('.', '')}`.slice(0, 36),
      timestamp: `2025-10-20 05:25:${s}+00:00`,
      task_id: taskId,
      task_type: 'upgrade_step',
      status,
      message,
      details: {},
      percentage: 0.0,
    });
    Object.assign(doc.tasks['task-1']!, {
      status: 'completed',
      started_at: '2025-10-20 05:25:03.000000+00:00',
      completed_at: '2025-10-20 05:25:04.000000+00:00',
      error_message: 'boom',
      events: [
        ev('task-1', '01.000000', 'in_progress', 'Task started'),
        ev('task-1', '02.000000', 'failed', 'Task failed: boom'),
        ev('task-1', '03.000000', 'in_progress', 'Task started'),
        ev('task-1', '04.000000', 'completed', 'Task completed'),
      ],
    });
    Object.assign(doc.tasks['task-2']!, {
      status: 'failed',
      percentage: 0.0, // what the old module held after start_task() set 0 and fail_task() left it
      started_at: '2025-10-20 05:25:07.000000+00:00',
      completed_at: '2025-10-20 05:25:06.000000+00:00',
      error_message: 'again',
      events: [
        ev('task-2', '05.000000', 'in_progress', 'Task started'),
        ev('task-2', '06.000000', 'completed', 'Task completed'),
        ev('task-2', '07.000000', 'in_progress', 'Task started'),
        ev('task-2', '08.000000', 'failed', 'Task failed: again'),
      ],
    });
    const dir = await tempDir('legacy');
    await mkdir(join(dir, 'progress'));
    await writeFile(join(dir, 'progress', 'upgrade_restarted-1.json'), JSON.stringify(doc));
    const store = new JsonFileStore({ directory: dir });
    const state = (await store.load('restarted-1'))!;
    const events = await collect(store.readEvents('restarted-1', 0));
    const of = (taskId: string) => events.filter((e) => e.taskId === taskId && e.type !== 'task.added').map((e) => [e.type, e.timestamp.slice(17)]);
    expect(of('task-1')).toEqual([
      ['task.started', '01.000Z'],
      ['task.failed', '02.000Z'],
      ['task.retried', '03.000Z'],
      ['task.completed', '04.000Z'],
    ]);
    // Started again after it completed: a retry too (2026-11-29: it was a task.progress on a completed
    // task, which kept the first run's start and gave a duration spanning both runs).
    // The restart records percentage 0 (start_task() set it): a progress event carries it, or the
    // task would keep the completion's 100 (found by a review on 2026-11-29).
    expect(of('task-2')).toEqual([
      ['task.started', '05.000Z'],
      ['task.completed', '06.000Z'],
      ['task.retried', '07.000Z'],
      ['task.progress', '07.000Z'],
      ['task.failed', '08.000Z'],
    ]);
    const t1 = state.tasks['task-1']!;
    // The retry starts the task again: its times are the second attempt's, as the file's started_at says.
    expect([t1.status, t1.startedAt, t1.completedAt, t1.durationMs, t1.retryCount]).toEqual(['completed', '2025-10-20T05:25:03.000Z', '2025-10-20T05:25:04.000Z', 1000, 1]);
    const t2 = state.tasks['task-2']!;
    expect([t2.status, t2.startedAt, t2.completedAt, t2.durationMs, t2.retryCount, t2.errorMessage, t2.percentage]).toEqual(['failed', '2025-10-20T05:25:07.000Z', '2025-10-20T05:25:08.000Z', 1000, 1, 'again', 0]);
    await store.close();
  });

  it('gives each imported task failure its own error (the old module wrote it only into the message), and no start to an upgrade that failed before it started', async () => {
    const doc = JSON.parse(await readFile(REAL, 'utf8')) as { upgrade_id: string; tasks: Record<string, Record<string, unknown>> };
    doc.upgrade_id = 'failures-1';
    const ev = (s: string, status: string, message: string) => ({ timestamp: `2025-10-20 05:25:${s}+00:00`, task_id: 'task-1', task_type: 'upgrade_step', status, message, details: {}, percentage: 0.0 });
    Object.assign(doc.tasks['task-1']!, {
      status: 'failed',
      started_at: '2025-10-20 05:25:03.000000+00:00',
      completed_at: '2025-10-20 05:25:04.000000+00:00',
      error_message: 'timeout again',
      events: [ev('01.000000', 'in_progress', 'Task started'), ev('02.000000', 'failed', 'Task failed: timeout'), ev('03.000000', 'in_progress', 'Task started'), ev('04.000000', 'failed', 'Task failed: timeout again')],
    });
    const unstarted = { upgrade_id: 'preflight-1', plan_id: 'p', cluster_name: 'c', status: 'failed', started_at: null, completed_at: null, duration: null, overall_percentage: 0.0, current_phase: null, tasks: {}, metadata: { error_message: 'preflight failed' } };
    const dir = await tempDir('legacy');
    await mkdir(join(dir, 'progress'));
    await writeFile(join(dir, 'progress', 'upgrade_failures-1.json'), JSON.stringify(doc));
    await writeFile(join(dir, 'progress', 'upgrade_preflight-1.json'), JSON.stringify(unstarted));
    const store = new JsonFileStore({ directory: dir });
    const failures = (await collect(store.readEvents('failures-1', 0))).filter((e) => e.type === 'task.failed');
    expect(failures.map((e) => e.details.errorMessage)).toEqual(['timeout', 'timeout again']);
    // Replayed up to the first failure, the task has that failure's error.
    const events = await collect(store.readEvents('failures-1', 0));
    expect(replayEvents(events.filter((e) => e.seq <= failures[0]!.seq))!.tasks['task-1']!.errorMessage).toBe('timeout');
    const preflight = (await store.load('preflight-1'))!;
    expect(preflight).toMatchObject({ status: 'failed', startedAt: null, currentPhase: null, errorMessage: 'preflight failed' });
    expect((await collect(store.readEvents('preflight-1', 0))).map((e) => e.type)).toEqual(['upgrade.created', 'upgrade.failed']);
    await store.close();
  });

  it('loads a file with the NaN and Infinity that Python json.dump writes for float values (allow_nan is its default)', async () => {
    // The old module saved with json.dump(progress.model_dump(), f, indent=2, default=str): a float
    // nan or inf in metadata or in an event's details went out as a bare NaN / Infinity / -Infinity.
    const text = (await readFile(REAL, 'utf8'))
      .replace('"upgrade_id": "test-upgrade-123"', '"upgrade_id": "nan-1"')
      .replace(
        '"error_message": "Test error"',
        '"error_message": "Test error",\n    "eta_seconds": Infinity,\n    "ratio": NaN,\n    "floor": -Infinity,\n    "note": "NaN, Infinity and -Infinity stay text here, \\"NaN\\" between escaped quotes too"',
      )
      .replace('"details": {},', '"details": {"rate": NaN, "limit": Infinity},');
    const dir = await tempDir('legacy');
    await mkdir(join(dir, 'progress'));
    const path = join(dir, 'progress', 'upgrade_nan-1.json');
    await writeFile(path, text);
    const store = new JsonFileStore({ directory: dir });
    const state = (await store.load('nan-1'))!;
    expect([state.status, state.errorMessage, Object.keys(state.tasks).length]).toEqual(['failed', 'Test error', 3]);
    expect(state.metadata).toEqual({ error_message: 'Test error', eta_seconds: null, ratio: null, floor: null, note: 'NaN, Infinity and -Infinity stay text here, "NaN" between escaped quotes too' });
    const started = state.tasks['task-1']!.recentEvents.find((e) => e.eventId === 'dff8b2af-1018-4b0f-b0e8-be9667094e9e')!;
    expect(started.details).toEqual({ rate: null, limit: null });
    expect((await store.list()).map((r) => r.upgradeId)).toEqual(['nan-1']);
    expect(await readFile(path, 'utf8')).toBe(text);
    await store.close();
  });

  it('lets a tracker continue a legacy upgrade in the new format, never touching the old file', async () => {
    const { store, dir } = await storeWith(fixture('steps-1'), fixture('parents-1'));
    const legacyPath = join(dir, 'progress', 'upgrade_steps-1.json');
    const before = await readFile(legacyPath);
    const imported = (await store.load('steps-1'))!;
    const tracker = await ProgressTracker.open({ upgradeId: 'steps-1', planId: 'plan-steps-1', clusterName: 'eks-steps-1', store });
    expect(tracker.progress.lastSeq).toBe(imported.lastSeq);
    const ev = await tracker.advanceTask('drain', { currentStep: 'node-3' });
    expect(ev.seq).toBe(imported.lastSeq + 1);
    const live = JSON.parse(JSON.stringify(tracker.progress));
    await tracker.close();
    await store.close();
    expect(await readFile(legacyPath)).toEqual(before);
    const log = (await readFile(join(dir, 'upgrades', 'steps-1', 'events.jsonl'), 'utf8')).trim().split('\n');
    expect(log.length).toBe(imported.lastSeq + 1);
    expect(JSON.parse(log.at(-1)!).e.details).toEqual({ completedSteps: 3, currentStep: 'node-3' });
    const again = new JsonFileStore({ directory: dir });
    expect(JSON.parse(JSON.stringify(await again.load('steps-1')))).toEqual(live);
    const rows = await again.list();
    expect(rows.map((r) => r.upgradeId).sort()).toEqual(['parents-1', 'steps-1']);
    expect(rows.find((r) => r.upgradeId === 'steps-1')!.lastSeq).toBe(imported.lastSeq + 1);
    await again.close();
  });

  it('writes a snapshot with an import of snapshotEvery events or more, so that opening replays at most that many', async () => {
    // Found on 2026-11-30: the import was written without a snapshot, and the next one came only at the
    // next multiple of snapshotEvery after it: a large legacy file was replayed whole on every open,
    // load() and list() until then, against the README's "replay at most snapshotEvery events".
    const dir = await tempDir('legacy');
    await mkdir(join(dir, 'progress'));
    await copyFile(fixture('steps-1'), join(dir, 'progress', 'upgrade_steps-1.json'));
    const store = new JsonFileStore({ directory: dir, snapshotEvery: 4 });
    const imported = (await store.load('steps-1'))!;
    expect(imported.lastSeq).toBe(6); // past 4, and 7 is no multiple of 4: no snapshot of its own
    const tracker = await ProgressTracker.open({ upgradeId: 'steps-1', planId: 'plan-steps-1', clusterName: 'eks-steps-1', store });
    await tracker.advanceTask('drain', { currentStep: 'node-3' });
    const live = JSON.parse(JSON.stringify(tracker.progress));
    await tracker.close();
    await store.close();
    const snap = decodeSnapshot(await readFile(join(dir, 'upgrades', 'steps-1', 'snapshot.json'), 'utf8').catch(() => ''));
    expect(snap?.lastSeq).toBe(imported.lastSeq);
    expect(JSON.parse(JSON.stringify(snap!.state))).toEqual(JSON.parse(JSON.stringify(imported)));
    const again = new JsonFileStore({ directory: dir, snapshotEvery: 4 });
    expect(JSON.parse(JSON.stringify(await again.load('steps-1')))).toEqual(live);
    await again.close();
  });

  it('writes that snapshot for an import of exactly snapshotEvery events too', async () => {
    const dir = await tempDir('legacy');
    await mkdir(join(dir, 'progress'));
    await copyFile(fixture('steps-1'), join(dir, 'progress', 'upgrade_steps-1.json'));
    const store = new JsonFileStore({ directory: dir, snapshotEvery: 6 });
    const imported = (await store.load('steps-1'))!;
    expect(imported.lastSeq).toBe(6);
    const tracker = await ProgressTracker.open({ upgradeId: 'steps-1', planId: 'plan-steps-1', clusterName: 'eks-steps-1', store });
    await tracker.advanceTask('drain', { currentStep: 'node-3' });
    await tracker.close();
    await store.close();
    const snap = decodeSnapshot(await readFile(join(dir, 'upgrades', 'steps-1', 'snapshot.json'), 'utf8').catch(() => ''));
    expect(snap?.lastSeq).toBe(6);
  });

  it('opens a tracker on an ended legacy upgrade, which then takes no more events', async () => {
    const { store } = await storeWith(REAL);
    const tracker = await ProgressTracker.open({ upgradeId: 'test-upgrade-123', planId: 'test-plan-123', clusterName: 'test-cluster', store });
    expect(tracker.progress.status).toBe('failed');
    await expect(tracker.startUpgrade()).rejects.toMatchObject({ code: 'INVALID_TRANSITION' });
    await tracker.close();
    await store.close();
  });

  it('hides a deleted legacy upgrade without touching its file, and the id starts over', async () => {
    const { store, dir } = await storeWith(fixture('paused-1'));
    const legacyPath = join(dir, 'progress', 'upgrade_paused-1.json');
    const before = await readFile(legacyPath);
    expect(await store.delete('paused-1')).toBe(true);
    expect(await store.load('paused-1')).toBeUndefined();
    expect(await collect(store.readEvents('paused-1', 0))).toEqual([]);
    expect(await store.list()).toEqual([]);
    expect(await store.delete('paused-1')).toBe(false);
    expect(await readFile(legacyPath)).toEqual(before);
    const tracker = await ProgressTracker.open({ upgradeId: 'paused-1', planId: 'p', clusterName: 'c', store });
    expect(tracker.progress.lastSeq).toBe(1);
    await tracker.close();
    await store.close();
  });

  it('tells, through legacyFileStat(), an upgrade held only as a legacy file and when that file changed, for a reader that follows it', async () => {
    const { store, dir } = await storeWith(fixture('steps-1'), fixture('paused-1'));
    const legacyPath = join(dir, 'progress', 'upgrade_steps-1.json');
    const first = await store.legacyFileStat('steps-1');
    expect(first).toMatchObject({ path: legacyPath, size: (await readFile(legacyPath)).length });
    expect(await store.legacyFileStat('steps-1')).toEqual(first);
    // The old module rewrites the file in place: the same inode, another size and mtime.
    const text = await readFile(legacyPath, 'utf8');
    await new Promise((r) => setTimeout(r, 20));
    await writeFile(legacyPath, `${text}\n`);
    const rewritten = (await store.legacyFileStat('steps-1'))!;
    expect(rewritten.ino).toBe(first!.ino);
    expect([rewritten.size, rewritten.mtimeMs]).not.toEqual([first!.size, first!.mtimeMs]);
    // Not one held only as a legacy file: unknown, imported into a log by a writer, deleted (hidden).
    expect(await store.legacyFileStat('nope')).toBeUndefined();
    // A folder under a legacy file's name is no legacy file (list() skips it too).
    await mkdir(join(dir, 'progress', 'upgrade_a-folder.json'));
    expect(await store.legacyFileStat('a-folder')).toBeUndefined();
    const tracker = await ProgressTracker.open({ upgradeId: 'steps-1', planId: 'p', clusterName: 'c', store });
    await tracker.advanceTask('drain', { currentStep: 'node-3' });
    expect(await store.legacyFileStat('steps-1')).toBeUndefined();
    await tracker.close();
    expect(await store.legacyFileStat('steps-1')).toBeUndefined();
    expect(await store.legacyFileStat('paused-1')).toBeDefined();
    expect(await store.delete('paused-1')).toBe(true);
    expect(await store.legacyFileStat('paused-1')).toBeUndefined();
    await store.close();
  });

  it('refuses a damaged legacy file with DATA_CORRUPTED naming it, and leaves it as it was', async () => {
    const dir = await tempDir('legacy-bad');
    await mkdir(join(dir, 'progress'));
    const path = join(dir, 'progress', 'upgrade_broken-1.json');
    await writeFile(path, '{"upgrade_id": "broken-1", "status": "in_pro');
    const bad = join(dir, 'progress', 'upgrade_baddate-1.json');
    await writeFile(bad, JSON.stringify({ upgrade_id: 'baddate-1', status: 'in_progress', started_at: 'last tuesday' }));
    // A datetime that looks right but cannot be: February 31st used to load as March 3rd.
    await writeFile(join(dir, 'progress', 'upgrade_feb31-1.json'), JSON.stringify({ upgrade_id: 'feb31-1', status: 'completed', started_at: '2025-02-28 10:00:00+00:00', completed_at: '2025-02-31 10:00:00+00:00' }));
    const store = new JsonFileStore({ directory: dir });
    await expect(store.load('broken-1')).rejects.toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining('upgrade_broken-1.json') });
    await expect(store.load('baddate-1')).rejects.toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining('started_at') });
    await expect(store.load('feb31-1')).rejects.toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringMatching(/upgrade_feb31-1\.json.*completed_at.*2025-02-31/) });
    await expect(ProgressTracker.open({ upgradeId: 'broken-1', planId: 'p', clusterName: 'c', store })).rejects.toMatchObject({ code: 'DATA_CORRUPTED' });
    expect(await readFile(path, 'utf8')).toBe('{"upgrade_id": "broken-1", "status": "in_pro');
    expect(await readdir(join(dir, 'progress'))).toHaveLength(3);
    expect(await store.list()).toEqual([]);
    await store.close();
  });
});

describe('importing a legacy file is crash-safe', () => {
  /** A store on the steps-1 fixture whose writer has written the import (an append it refuses still opens the writer, which makes the import durable first). */
  async function imported(): Promise<{ store: JsonFileStore; dir: string; events: ProgressEvent[]; log: string }> {
    const { store, dir } = await storeWith(fixture('steps-1'));
    const events = await collect(store.readEvents('steps-1', 0));
    expect(events.length).toBeGreaterThan(3);
    const state = (await store.load('steps-1'))!;
    const ahead = { ...events[events.length - 1]!, eventId: 'x', seq: events.length + 2 };
    await expect(store.append('steps-1', [ahead], events.length + 1, state)).rejects.toMatchObject({ code: 'CONFLICT' });
    return { store, dir, events, log: join(dir, 'upgrades', 'steps-1', 'events.jsonl') };
  }

  it('writes the imported history to disk on its own before any new event, so a torn first write cannot cut it', async () => {
    const { store, dir, events, log } = await imported();
    const lines = (await readFile(log, 'utf8')).split('\n').filter(Boolean);
    expect(lines).toHaveLength(events.length);
    // A process killed now (no close) leaves a log that a new store reads back whole.
    const again = new JsonFileStore({ directory: dir });
    expect((await collect(again.readEvents('steps-1', 0))).map((e) => e.eventId)).toEqual(events.map((e) => e.eventId));
    await again.close();
    await store.close();
  });

  it('never takes damage in the imported history for a torn write: all of it was durable before anything was acknowledged', async () => {
    const { store, dir, log } = await imported();
    await store.close();
    const buf = await readFile(log);
    const second = buf.indexOf(0x0a) + 1;
    buf.fill(0, second + 20, second + 60);
    await writeFile(log, buf);
    const again = new JsonFileStore({ directory: dir });
    await expect(again.load('steps-1')).rejects.toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining('line 2 of') });
    await expect(ProgressTracker.open({ upgradeId: 'steps-1', planId: 'p', clusterName: 'c', store: again })).rejects.toMatchObject({ code: 'DATA_CORRUPTED' });
    await again.close();
    expect(await readFile(log)).toEqual(buf);
  });
});
