// load() of an upgrade with a snapshot while another store deletes it, between the check that the log
// holds what the snapshot covers and the read of the log's tail. Its own file: node:fs/promises is
// mocked here, to put the other store's delete exactly there.
// (The test failed before the fix: load() answered the snapshot's state, seq 4 and in progress, for an
// upgrade that had completed at seq 5.)
import type * as FsPromises from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

const hook: { beforeOpen?: { path: string; skip: number; run: () => Promise<void> } } = {};
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof FsPromises>();
  return {
    ...real,
    open: async (...args: Parameters<typeof real.open>) => {
      const armed = hook.beforeOpen;
      if (armed && String(args[0]) === armed.path) {
        if (armed.skip-- === 0) {
          hook.beforeOpen = undefined;
          await armed.run();
        }
      }
      return real.open(...args);
    },
  };
});

const { ProgressTracker } = await import('@progress/core');
const { JsonFileStore } = await import('../src/index.js');
const { removeTempDirs, tempDir } = await import('./helpers.js');

afterAll(removeTempDirs);

describe('load() of an upgrade another store deletes meanwhile', () => {
  it('is the whole state or no upgrade, never the snapshot without the events after it', async () => {
    const dir = await tempDir('load-delete-race');
    const reader = new JsonFileStore({ directory: dir, durability: 'none', snapshotEvery: 2 });
    const other = new JsonFileStore({ directory: dir, durability: 'none', snapshotEvery: 2 });
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store: other });
    await t.startUpgrade();
    await t.setCurrentPhase('two');
    await t.setCurrentPhase('three');
    await t.completeUpgrade();
    await t.close();
    expect((await reader.load('u1'))?.lastSeq).toBe(5);
    // The reader has read the snapshot (seq 4) and checked the log against it (the first open of the
    // log); the other store deletes the upgrade before the reader opens the log for its tail.
    hook.beforeOpen = { path: join(dir, 'upgrades', 'u1', 'events.jsonl'), skip: 1, run: async () => void expect(await other.delete('u1')).toBe(true) };
    const state = await reader.load('u1');
    expect(hook.beforeOpen).toBeUndefined();
    expect(state?.lastSeq ?? 'none').not.toBe(4);
    expect(state === undefined || state.lastSeq === 5).toBe(true);
    expect(await reader.load('u1')).toBeUndefined();
    await Promise.all([reader.close(), other.close()]);
  });
});
