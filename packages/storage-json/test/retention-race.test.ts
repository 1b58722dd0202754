// Retention run by two processes on one folder, with an upgrade id used again: one store's retention
// looked at an ended upgrade (list()), and before its delete took the writer lock, another store
// deleted that upgrade and a new run was started under the same id. Its own file: node:fs/promises is
// mocked here, to put all of that exactly between the list() and the delete. (The test failed before
// the fix: the new run, in progress, was deleted.)
import type * as FsPromises from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

const hook: { afterStat?: { path: string; run: () => Promise<void> } } = {};
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof FsPromises>();
  return {
    ...real,
    stat: async (...args: Parameters<typeof real.stat>) => {
      const result = await real.stat(...args);
      const armed = hook.afterStat;
      if (armed && String(args[0]) === armed.path) {
        hook.afterStat = undefined;
        await armed.run();
      }
      return result;
    },
  };
});

const { ProgressTracker } = await import('@progress/core');
const { JsonFileStore } = await import('../src/index.js');
const { removeTempDirs, tempDir } = await import('./helpers.js');

afterAll(removeTempDirs);

describe('retention against a new run of an upgrade it listed as ended', () => {
  it('leaves the new run alone: only what is still ended and old enough under the lock is deleted', async () => {
    const dir = await tempDir('retention-race');
    const retention = new JsonFileStore({ directory: dir, durability: 'none' });
    const other = new JsonFileStore({ directory: dir, durability: 'none' });
    const old = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store: other });
    await old.startUpgrade();
    await old.completeUpgrade();
    await old.close();
    // Retention has listed u1 as ended; before its delete takes the lock, the other store deletes u1
    // (its own retention run) and a new run starts under u1, whose tracker then stops (a process
    // that exits, to resume it later).
    let newRunSeq: number | undefined;
    hook.afterStat = {
      path: join(dir, 'upgrades', 'u1'),
      run: async () => {
        expect(await other.delete('u1')).toBe(true);
        const again = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store: other });
        newRunSeq = (await again.startUpgrade()).seq;
        await again.close();
      },
    };
    const deleted = await retention.deleteCompletedOlderThan(0, Date.now() + 1000);
    expect(hook.afterStat).toBeUndefined();
    expect(newRunSeq).toBe(2);
    expect(deleted).toEqual([]);
    const state = await other.load('u1');
    expect(state?.status).toBe('in_progress');
    expect(state?.lastSeq).toBe(2);
    await Promise.all([retention.close(), other.close()]);
  });
});
