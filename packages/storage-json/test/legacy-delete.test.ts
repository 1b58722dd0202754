// Legacy imports and the delete of an imported upgrade, against real files (a temp folder per test):
// a task whose clock stepped back, total_steps 0, and a delete that fails or is cut short by a crash.
// (Found by a review on 2026-11-29; each test failed before the fix.)
import { copyFile, mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressTracker } from '@progress/core';
import { JsonFileStore } from '../src/index.js';
import { fileHandlePrototype, removeTempDirs, tempDir } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
afterAll(removeTempDirs);

async function legacyDir(files: Record<string, unknown>): Promise<string> {
  const dir = await tempDir('legacy-odd');
  await mkdir(join(dir, 'progress'));
  for (const [id, doc] of Object.entries(files)) await writeFile(join(dir, 'progress', `upgrade_${id}.json`), JSON.stringify(doc, null, 2));
  return dir;
}

describe('legacy import: odd values of the old module', () => {
  it('keeps a task completed when the Python clock stepped back between its start and its completion', async () => {
    // The real fixture has completed_at before started_at (a negative duration): wall-clock steps happen.
    const dir = await legacyDir({
      skew: {
        upgrade_id: 'skew', plan_id: 'p', cluster_name: 'c', status: 'in_progress',
        started_at: '2025-10-20 05:00:00+00:00', current_phase: 'Upgrade',
        tasks: {
          t1: {
            task_id: 't1', task_name: 'T1', task_type: 'upgrade_step', parent_task_id: null, status: 'completed',
            started_at: '2025-10-20 05:00:05+00:00', completed_at: '2025-10-20 05:00:04+00:00', percentage: 100.0,
            events: [
              { event_id: 'e1', timestamp: '2025-10-20 05:00:05+00:00', task_id: 't1', status: 'in_progress', message: 'Task started', details: {}, percentage: 0.0 },
              { event_id: 'e2', timestamp: '2025-10-20 05:00:04+00:00', task_id: 't1', status: 'completed', message: 'Task completed', details: {}, percentage: 100.0 },
            ],
          },
        },
      },
    });
    const store = new JsonFileStore({ directory: dir });
    const state = await store.load('skew');
    // Today: the import sorts the task's own events by time, folds "completed" before "started",
    // and loads t1 as in_progress at 0%.
    expect(state?.tasks.t1).toMatchObject({ status: 'completed', percentage: 100 });
    expect(state?.overallPercentage).toBe(100);
    await store.close();
  });

  it('imports total_steps 0 as no step count (the API takes 1 or more), so that advancing the task gives no 0/0 percentage', async () => {
    const dir = await legacyDir({
      steps0: {
        upgrade_id: 'steps0', plan_id: 'p', cluster_name: 'c', status: 'in_progress', started_at: '2025-10-20 05:00:00+00:00',
        tasks: { t: { task_id: 't', task_name: 'T', status: 'not_started', total_steps: 0, completed_steps: 0, events: [] } },
      },
    });
    const store = new JsonFileStore({ directory: dir });
    const tracker = await ProgressTracker.open({ upgradeId: 'steps0', planId: 'p', clusterName: 'c', store });
    expect(tracker.progress.tasks.t!.totalSteps).toBeNull();
    const before = tracker.progress.lastSeq;
    // It was imported as 0 steps: 0/0 made a NaN percentage, which the store refused, reported as
    // STORE_UNAVAILABLE.
    await tracker.advanceTask('t', { completedSteps: 0 });
    expect(tracker.progress.lastSeq).toBe(before + 1);
    expect(Number.isFinite(tracker.progress.tasks.t!.percentage)).toBe(true);
    await tracker.close();
    await store.close();
  });

  it('imports a total_steps that is not a whole number (2.5, "3") as no step count, as the API takes none such', async () => {
    const tasks = { a: { task_id: 'a', status: 'not_started', total_steps: 2.5 }, b: { task_id: 'b', status: 'not_started', total_steps: '3' } };
    const dir = await legacyDir({ odd: { upgrade_id: 'odd', plan_id: 'p', cluster_name: 'c', status: 'in_progress', started_at: '2025-10-20 05:00:00+00:00', tasks } });
    const store = new JsonFileStore({ directory: dir });
    const state = await store.load('odd');
    expect([state!.tasks.a!.totalSteps, state!.tasks.b!.totalSteps]).toEqual([null, null]);
    await store.close();
  });
});

describe('delete of an upgrade imported from a legacy file', () => {
  async function completedImportedUpgrade(): Promise<{ dir: string; lastSeq: number }> {
    const dir = await tempDir('legacy-delete');
    await mkdir(join(dir, 'progress'));
    await copyFile(join(here, 'fixtures', 'upgrade_steps-1.json'), join(dir, 'progress', 'upgrade_steps-1.json'));
    const store = new JsonFileStore({ directory: dir });
    const tracker = await ProgressTracker.open({ upgradeId: 'steps-1', planId: 'p', clusterName: 'c', store });
    expect(tracker.progress.status).toBe('in_progress');
    await tracker.completeUpgrade(); // acknowledged: durable in upgrades/steps-1/events.jsonl
    const lastSeq = tracker.progress.lastSeq;
    await tracker.close();
    await store.close();
    return { dir, lastSeq };
  }

  it('a delete that fails on a full disk while writing the legacy marker rejects STORE_UNAVAILABLE and leaves the upgrade as acknowledged', async () => {
    const { dir, lastSeq } = await completedImportedUpgrade();
    const proto = await fileHandlePrototype(dir);
    const { writeFile: original } = proto;
    proto.writeFile = async function (this: unknown, ...args: unknown[]) {
      if (typeof args[0] === 'string' && args[0].includes('"deletedAt"')) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      return original.apply(this, args);
    };
    const store = new JsonFileStore({ directory: dir });
    try {
      // It was a raw ENOSPC error, after the folder had been moved away: the legacy file's older
      // in_progress state came back, and a tracker would have written other events at seqs readers saw.
      await expect(store.delete('steps-1')).rejects.toMatchObject({ name: 'ProgressError', code: 'STORE_UNAVAILABLE' });
    } finally {
      proto.writeFile = original;
    }
    expect(await store.load('steps-1')).toMatchObject({ status: 'completed', lastSeq });
    await store.close();
  });

  it('a crash at any point of the delete leaves the upgrade as acknowledged or deleted, never the legacy state', async () => {
    // What the delete leaves when the process dies after each of its steps: the marker written (the
    // folder stays), then the snapshot moved out, then the log moved out.
    for (const step of ['marker', 'snapshot', 'log'] as const) {
      const { dir, lastSeq } = await completedImportedUpgrade();
      const folder = join(dir, 'upgrades', 'steps-1');
      const grave = join(dir, 'upgrades', '~deleted-steps-1-0badc0de');
      await writeFile(join(folder, 'legacy-deleted'), `${JSON.stringify({ deletedAt: new Date().toISOString() })}\n`);
      await mkdir(grave);
      if (step !== 'marker') await rename(join(folder, 'snapshot.json'), join(grave, 'snapshot.json')).catch(() => undefined);
      if (step === 'log') await rename(join(folder, 'events.jsonl'), join(grave, 'events.jsonl'));
      const store = new JsonFileStore({ directory: dir });
      const state = await store.load('steps-1');
      if (step === 'log') expect(state).toBeUndefined();
      else expect(state).toMatchObject({ status: 'completed', lastSeq });
      expect((await store.list()).filter((r) => r.upgradeId === 'steps-1' && r.status !== 'completed')).toEqual([]);
      await store.close();
    }
  });

  it('a delete moves the files out of the folder that hides the legacy file, and the upgrade stays deleted for a new store', async () => {
    const { dir } = await completedImportedUpgrade();
    const store = new JsonFileStore({ directory: dir });
    expect(await store.delete('steps-1')).toBe(true);
    await store.close();
    const again = new JsonFileStore({ directory: dir });
    expect(await again.load('steps-1')).toBeUndefined();
    expect((await again.list()).map((r) => r.upgradeId)).not.toContain('steps-1');
    await again.close();
  });
});
