// Two stores (two processes on one folder) delete the same upgrade at once, as retention run by
// several processes does. Its own file: node:fs/promises is mocked here, to put the other store's
// delete exactly between this store's look at the folder and its taking of the writer lock. (Found
// by CI on 2026-11-30: a retention race left an empty folder behind; the test failed before the fix.)
import type * as FsPromises from 'node:fs/promises';
import { readdirSync } from 'node:fs';
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

describe('a delete that another store finishes first', () => {
  it('is false, and does not make the folder again: no empty folder is left, the upgrade is gone for every reader', async () => {
    const dir = await tempDir('delete-race');
    const first = new JsonFileStore({ directory: dir, durability: 'none' });
    const second = new JsonFileStore({ directory: dir, durability: 'none' });
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store: first });
    await t.startUpgrade();
    await t.completeUpgrade();
    await t.close();
    // The second store has looked (the folder is there); the first deletes the upgrade before the
    // second takes the lock.
    let firstDeleted: boolean | undefined;
    hook.afterStat = { path: join(dir, 'upgrades', 'u1'), run: async () => void (firstDeleted = await first.delete('u1')) };
    expect(await second.delete('u1')).toBe(false);
    expect(hook.afterStat).toBeUndefined();
    expect(firstDeleted).toBe(true);
    expect(readdirSync(join(dir, 'upgrades')).filter((name) => !name.startsWith('~'))).toEqual([]);
    expect(await second.list()).toEqual([]);
    expect(await first.deleteCompletedOlderThan(0, Date.now() + 1000)).toEqual([]);
    // And the id is free: a new run under it starts its own log, nothing of the deleted run in it.
    const again = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store: second });
    await again.startUpgrade();
    await again.close();
    const types: string[] = [];
    for await (const e of first.readEvents('u1', 0)) types.push(`${e.seq} ${e.type}`);
    expect(types).toEqual(['1 upgrade.created', '2 upgrade.started']);
    await Promise.all([first.close(), second.close()]);
  });
});
