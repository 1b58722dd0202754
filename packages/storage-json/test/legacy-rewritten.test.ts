// Found on 2026-12-01: a tracker loaded an upgrade held only as the old module's file, the old module
// (still running) rewrote the file, and the tracker's first append imported the file as it was now,
// not as it had loaded it. With as many events as before (a task the old module completed: its
// completion in, the progress event of a running task out), the append went through: the log held a
// completion the tracker never saw, then the tracker's progress event on that completed task, and
// every reader loaded a history that no tracker had checked. With another number of events, the
// rewritten import was written first and the append failed with an unexplained seq mismatch.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressTracker } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { JsonFileStore } from '../src/index.js';
import { removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

const at = (s: string) => `2025-10-20 05:${s}+00:00`;
const started = { event_id: 'e1', timestamp: at('25:03.000100'), task_id: 'b', task_type: 'upgrade_step', status: 'in_progress', message: 'Task started', details: {}, percentage: 0.0 };
const completed = { event_id: 'e2', timestamp: at('25:09.000100'), task_id: 'b', task_type: 'upgrade_step', status: 'completed', message: 'Task completed', details: {}, percentage: 100.0 };
const task = (id: string, status: string, events: object[]) => ({
  task_id: id,
  task_name: id.toUpperCase(),
  task_type: 'upgrade_step',
  parent_task_id: null,
  status,
  started_at: events.length > 0 ? at('25:03.000000') : null,
  completed_at: status === 'completed' ? at('25:09.000000') : null,
  duration: null,
  percentage: status === 'completed' ? 100.0 : status === 'in_progress' ? 40.0 : 0.0,
  current_step: null,
  total_steps: null,
  completed_steps: 0,
  error_message: null,
  retry_count: 0,
  events,
});
const upgrade = (tasks: Record<string, object>) =>
  JSON.stringify({ upgrade_id: 'u1', plan_id: 'p', cluster_name: 'c', status: 'in_progress', started_at: at('25:00.000000'), completed_at: null, duration: null, overall_percentage: 0.0, current_phase: 'Nodes', tasks, metadata: {} }, null, 2);

/** A folder with the old module's file of u1 (task b running at 40%), and a tracker open on it. */
async function openOnLegacy(): Promise<{ dir: string; file: string; store: JsonFileStore; tracker: ProgressTracker }> {
  const dir = await tempDir('legacy-rewritten');
  await mkdir(join(dir, 'progress'));
  const file = join(dir, 'progress', 'upgrade_u1.json');
  await writeFile(file, upgrade({ b: task('b', 'in_progress', [started]) }));
  const store = new JsonFileStore({ directory: dir });
  const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store });
  expect(tracker.progress.tasks.b).toMatchObject({ status: 'in_progress', percentage: 40 });
  return { dir, file, store, tracker };
}

describe('a legacy file the old module rewrites after a tracker loaded it', () => {
  it.each([
    ['as many events as it loaded (task b completed)', upgrade({ b: task('b', 'completed', [started, completed]) })],
    ['more events than it loaded (a task added)', upgrade({ b: task('b', 'in_progress', [started]), c: task('c', 'not_started', []) })],
  ])('with %s: the first append is CONFLICT naming the file, nothing is written, and a tracker opened again goes on from the file as it is now', async (_, rewritten) => {
    const { dir, file, store, tracker } = await openOnLegacy();
    await writeFile(file, rewritten);
    const err = await tracker.updateTaskProgress('b', 60, 'more').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CONFLICT', message: expect.stringContaining(`legacy file ${file} changed since`) });
    await tracker.close().catch(() => {});
    // Nothing was written: no log, the old file as the old module left it.
    expect(await readdir(join(dir, 'upgrades', 'u1'))).not.toContain('events.jsonl');
    expect(await readFile(file, 'utf8')).toBe(rewritten);
    await store.close();

    const again = new JsonFileStore({ directory: dir });
    try {
      const reopened = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store: again });
      await reopened.setCurrentPhase('Final');
      const state = reopened.progress;
      await reopened.close();
      expect(await again.load('u1')).toEqual(state);
    } finally {
      await again.close();
    }
  });

  it("is CONFLICT too when another reader of the same store (a ws-server given it) loaded the rewritten file meanwhile", async () => {
    const { dir, file, store, tracker } = await openOnLegacy();
    const rewritten = upgrade({ b: task('b', 'completed', [started, completed]) });
    await writeFile(file, rewritten);
    // Not the tracker's state: that reader's load must not become the import the tracker's append writes.
    expect((await store.load('u1'))?.tasks.b).toMatchObject({ status: 'completed' });
    const err = await tracker.updateTaskProgress('b', 60, 'more').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CONFLICT', message: expect.stringContaining(`legacy file ${file} changed since`) });
    await tracker.close().catch(() => {});
    expect(await readdir(join(dir, 'upgrades', 'u1'))).not.toContain('events.jsonl');
    await store.close();
  });

  it('imports the file as loaded when it did not change: the append goes on after it', async () => {
    const { dir, store, tracker } = await openOnLegacy();
    const loaded = tracker.progress.lastSeq;
    await tracker.updateTaskProgress('b', 60, 'more');
    await tracker.close();
    expect(await readdir(join(dir, 'upgrades', 'u1'))).toContain('events.jsonl');
    expect(await store.load('u1')).toMatchObject({ lastSeq: loaded + 1, tasks: { b: { status: 'in_progress', percentage: 60 } } });
    await store.close();
  });

  it('is not CONFLICT when only a list() read the file before the rewrite: the import written is the one the writer loaded', async () => {
    const dir = await tempDir('legacy-rewritten');
    await mkdir(join(dir, 'progress'));
    const file = join(dir, 'progress', 'upgrade_u1.json');
    await writeFile(file, upgrade({ b: task('b', 'in_progress', [started]) }));
    const store = new JsonFileStore({ directory: dir });
    await store.acquire('u1');
    // A dashboard's list() under the lock, before the writer's own load: it reads the file as it was.
    expect(await store.list()).toHaveLength(1);
    await writeFile(file, upgrade({ b: task('b', 'in_progress', [started]), c: task('c', 'not_started', []) }));
    const loaded = (await store.load('u1'))!;
    expect(Object.keys(loaded.tasks).sort()).toEqual(['b', 'c']);
    // (The factory folds its events into the state it is given.)
    const f = new EventFactory('u1');
    f.state = structuredClone(loaded);
    const event = f.next('task.progress', { taskId: 'b', message: 'more', percentage: 60 });
    const next = f.snapshot();
    await store.append('u1', [event], loaded.lastSeq, next);
    expect(await store.load('u1')).toEqual(next);
    await store.close();
  });
});
