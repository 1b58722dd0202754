// A writer opening an upgrade (ProgressTracker.open in one store) while another store deletes it, as
// a new run under the id of an ended one may meet retention running elsewhere: the folder goes between
// the writer's making of it and its taking of the writer lock. Its own file: node:fs/promises is mocked
// here, to put the delete exactly there. (The test failed before the fix: open() threw
// STORE_UNAVAILABLE, "cannot take the writer lock", for a raw ENOENT.)
import type * as FsPromises from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

const hook: { afterMkdir?: { path: string; run: () => Promise<void> } } = {};
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof FsPromises>();
  return {
    ...real,
    mkdir: async (...args: Parameters<typeof real.mkdir>) => {
      const result = await real.mkdir(...args);
      const armed = hook.afterMkdir;
      if (armed && String(args[0]) === armed.path) {
        hook.afterMkdir = undefined;
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

describe('a writer opening an upgrade another store deletes meanwhile', () => {
  it('opens a new run of the upgrade, as after the delete', async () => {
    const dir = await tempDir('open-delete-race');
    const deleter = new JsonFileStore({ directory: dir, durability: 'none' });
    const writer = new JsonFileStore({ directory: dir, durability: 'none' });
    const old = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store: writer });
    await old.startUpgrade();
    await old.completeUpgrade();
    await old.close();
    hook.afterMkdir = { path: join(dir, 'upgrades', 'u1'), run: async () => void expect(await deleter.delete('u1')).toBe(true) };
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store: writer });
    expect(hook.afterMkdir).toBeUndefined();
    expect(t.progress.lastSeq).toBe(1);
    await t.startUpgrade();
    await t.close();
    const types: string[] = [];
    for await (const e of deleter.readEvents('u1', 0)) types.push(`${e.seq} ${e.type}`);
    expect(types).toEqual(['1 upgrade.created', '2 upgrade.started']);
    expect(readdirSync(join(dir, 'upgrades'))).toEqual(['u1']);
    await Promise.all([deleter.close(), writer.close()]);
  });
});
