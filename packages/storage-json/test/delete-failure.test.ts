// A delete whose rename of the folder fails (EBUSY: a process has it as its working directory on
// some systems, a file system that refuses). Its own file: node:fs/promises is mocked here.
import type * as FsPromises from 'node:fs/promises';
import { afterAll, describe, expect, it, vi } from 'vitest';

const refuse = { rename: false };
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof FsPromises>();
  return {
    ...real,
    rename: async (from: string, to: string) => {
      if (refuse.rename && String(to).includes('~deleted-')) throw Object.assign(new Error(`EBUSY: resource busy or locked, rename '${from}'`), { code: 'EBUSY' });
      return real.rename(from, to);
    },
  };
});

const { ProgressTracker } = await import('@progress/core');
const { JsonFileStore } = await import('../src/index.js');
const { fileHandlePrototype, removeTempDirs, tempDir } = await import('./helpers.js');

afterAll(removeTempDirs);

describe('a delete whose folder cannot be moved away', () => {
  it('is STORE_UNAVAILABLE, gives the lock back, and a later delete (or retention run) deletes it', async () => {
    const dir = await tempDir('delete-ebusy');
    const store = new JsonFileStore({ directory: dir });
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store });
    await t.startUpgrade();
    await t.completeUpgrade();
    await t.close();
    refuse.rename = true;
    await expect(store.delete('u1')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', cause: { code: 'EBUSY' } });
    refuse.rename = false;
    // At once: no lock is left behind, for this store or another.
    const other = new JsonFileStore({ directory: dir });
    await other.acquire('u1');
    await other.release('u1');
    await other.close();
    expect(await store.deleteCompletedOlderThan(0, Date.now() + 1000)).toEqual(['u1']);
    expect(await store.load('u1')).toBeUndefined();
    await store.close();
  });

  it('keeps a cut still owed: the events of a failed write stay unreadable, and the tracker open on it keeps its lock', async () => {
    const dir = await tempDir('delete-ebusy-uncut');
    const store = new JsonFileStore({ directory: dir });
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store });
    await t.startUpgrade();
    // The write of one task lands and fails, and so does its cut back: the cut is owed.
    const proto = await fileHandlePrototype(dir);
    const { write, truncate } = proto;
    let failing = true;
    proto.write = async function (this: unknown, ...args: unknown[]) {
      const written = await write.apply(this, args);
      if (failing && Buffer.isBuffer(args[0]) && args[0].includes('rejected-task')) throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
      return written;
    };
    proto.truncate = async function (this: unknown, ...args: unknown[]) {
      if (failing) throw Object.assign(new Error('EIO: i/o error, ftruncate'), { code: 'EIO' });
      return truncate.apply(this, args);
    };
    try {
      await expect(t.addTask('rejected-task', 'never stored')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      refuse.rename = true;
      await expect(store.delete('u1')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      refuse.rename = false;
      expect(Object.keys((await store.load('u1'))!.tasks)).not.toContain('rejected-task');
      failing = false;
      // The tracker still holds the upgrade, and its close makes the owed cut.
      await t.close();
      const other = new JsonFileStore({ directory: dir });
      expect(Object.keys((await other.load('u1'))!.tasks)).not.toContain('rejected-task');
      await other.close();
    } finally {
      proto.write = write;
      proto.truncate = truncate;
      refuse.rename = false;
      await t.close().catch(() => {});
      await store.close();
    }
  });
});
