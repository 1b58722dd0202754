// delete() of an upgrade that lives only in a legacy file (never imported, so no folder yet) against a
// writer in another store that imports it meanwhile. (Found by a review on 2026-11-29; the test
// failed before the fix.)
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { isProgressError, ProgressTracker, type ProgressEvent } from '@progress/core';
import { JsonFileStore } from '../src/index.js';
import { fileHandlePrototype, removeTempDirs, tempDir } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
afterAll(removeTempDirs);

describe('a delete of a legacy upgrade that has no folder yet', () => {
  it('holds the writer lock, so that a writer importing the upgrade meanwhile never has its acknowledged events moved away', async () => {
    const dir = await tempDir('legacy-delete-race');
    await mkdir(join(dir, 'progress'));
    await copyFile(join(here, 'fixtures', 'upgrade_steps-1.json'), join(dir, 'progress', 'upgrade_steps-1.json'));
    const deleter = new JsonFileStore({ directory: dir });
    const writerStore = new JsonFileStore({ directory: dir });
    // Another process (here another store) opens a tracker on the upgrade while the delete writes its
    // marker: the moment a delete that holds no lock leaves open.
    const proto = await fileHandlePrototype(dir);
    const { writeFile: original } = proto;
    let tracker: ProgressTracker | undefined;
    let acknowledged: ProgressEvent | undefined;
    let refused: unknown;
    proto.writeFile = async function (this: unknown, ...args: unknown[]) {
      if (typeof args[0] === 'string' && args[0].includes('"deletedAt"') && tracker === undefined && refused === undefined) {
        try {
          tracker = await ProgressTracker.open({ upgradeId: 'steps-1', planId: 'p', clusterName: 'c', store: writerStore });
          acknowledged = await tracker.setCurrentPhase('After the import');
        } catch (err) {
          refused = err;
        }
      }
      return original.apply(this, args);
    };
    let deleted: unknown;
    try {
      deleted = await deleter.delete('steps-1').catch((err: unknown) => err);
    } finally {
      proto.writeFile = original;
    }
    if (acknowledged !== undefined) {
      // The writer won: the delete must have refused, and the acknowledged event must be stored.
      expect(isProgressError(deleted, 'CONFLICT')).toBe(true);
      const reader = new JsonFileStore({ directory: dir });
      expect((await reader.load('steps-1'))?.lastSeq).toBe(acknowledged.seq);
      await reader.close();
    } else {
      // The delete won: the writer was refused with CONFLICT, nothing acknowledged.
      expect(isProgressError(refused, 'CONFLICT')).toBe(true);
      expect(deleted).toBe(true);
    }
    await tracker?.close();
    await writerStore.close();
    await deleter.close();
  });
});
