// A writer opening an upgrade whose folder another process's delete (its retention) moves away while
// the writer makes sure the folder is there. Node's recursive mkdir finds the folder (EEXIST), then
// checks that it is one with a stat, which finds nothing once the rename happened in between: the
// mkdir fails with ENOENT. (Found by a review on 2026-11-30 with a writer and a deleter in two
// processes; ProgressTracker.open failed with STORE_UNAVAILABLE. The test failed before the fix.)
// Its own file: node:fs/promises is mocked here, to put the other store's delete in that window.
import type * as FsPromises from 'node:fs/promises';
import { afterAll, describe, expect, it, vi } from 'vitest';

const race: { before?: () => Promise<void> } = {};
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof FsPromises>();
  return {
    ...real,
    mkdir: async (...args: Parameters<typeof real.mkdir>) => {
      const made = await real.mkdir(...args);
      const before = race.before;
      if (before && String(args[0]).endsWith('/upgrades/u1') && made === undefined) {
        // The folder was there. Now it goes, before the check that it is a folder: what Node's
        // recursive mkdir then rejects with.
        race.before = undefined;
        await before();
        throw Object.assign(new Error(`ENOENT: no such file or directory, mkdir '${String(args[0])}'`), { errno: -2, code: 'ENOENT', syscall: 'mkdir', path: String(args[0]) });
      }
      return made;
    },
  };
});

const { ProgressTracker } = await import('@progress/core');
const { JsonFileStore } = await import('../src/index.js');
const { removeTempDirs, tempDir } = await import('./helpers.js');

afterAll(removeTempDirs);

describe('a writer opening an upgrade whose folder another store deletes while it makes sure of the folder', () => {
  it('opens a new run of the upgrade, as after the delete, instead of failing with STORE_UNAVAILABLE', async () => {
    const dir = await tempDir('mkdir-race');
    const writer = new JsonFileStore({ directory: dir });
    const retention = new JsonFileStore({ directory: dir });
    const old = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store: writer });
    await old.startUpgrade();
    await old.completeUpgrade();
    await old.close();

    let deleted: boolean | undefined;
    race.before = async () => {
      deleted = await retention.delete('u1');
    };
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p2', clusterName: 'c', store: writer });
    expect(deleted).toBe(true);
    // A new run (its upgrade.created only), not the deleted one.
    expect(t.progress).toMatchObject({ planId: 'p2', status: 'not_started', lastSeq: 1 });
    await t.startUpgrade();
    await t.close();
    const reader = new JsonFileStore({ directory: dir });
    expect(await reader.load('u1')).toMatchObject({ planId: 'p2', status: 'in_progress', lastSeq: 2 });
    await Promise.all([reader.close(), writer.close(), retention.close()]);
  });
});
