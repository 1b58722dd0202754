// An upgrade folder this process may not read (made by another user, 0700), among readable ones.
// (Found by a review on 2026-11-29; the test failed before the fix.)
import { spawn } from 'node:child_process';
import { chmod, chown, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { EventFactory } from '@progress/core/testing';
import { JsonFileStore } from '../src/index.js';
import { removeTempDirs, tempDir } from './helpers.js';

const here = dirname(fileURLToPath(import.meta.url));
afterAll(removeTempDirs);

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

/** Runs test/child/read-as.ts as user `uid` and gives what it printed. */
function readAs(uid: number, directory: string, upgradeId: string): Promise<{ list: unknown; readEvents: unknown; load: unknown; delete: unknown }> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@progress/source', join(here, 'child', 'read-as.ts'), directory, upgradeId], {
    cwd: join(here, '..'),
    uid,
    gid: uid,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      try {
        resolve(JSON.parse(out));
      } catch {
        reject(new Error(`child exited ${code}: ${out} ${err}`));
      }
    });
  });
}

async function chownAll(path: string, uid: number): Promise<void> {
  await chown(path, uid, uid);
  for (const entry of await readdir(path, { withFileTypes: true })) {
    if (entry.isDirectory()) await chownAll(join(path, entry.name), uid);
    else await chown(join(path, entry.name), uid, uid);
  }
}

describe('an upgrade folder of another user (0700) among readable ones', () => {
  it('is left out of list() (the others are listed), and reading or deleting it is STORE_UNAVAILABLE, never a bare EACCES', async (ctx) => {
    ctx.skip(!isRoot, 'needs root, to run a reader as another user');
    const dir = await tempDir('unreadable');
    const store = new JsonFileStore({ directory: dir, snapshotEvery: 2 });
    for (const id of ['mine', 'theirs']) {
      const f = new EventFactory(id);
      await store.append(id, f.batch(3), 0, f.snapshot());
    }
    await store.close();
    // The reader's user owns the folder and the upgrade "mine"; "theirs" was made by root (say, by a
    // `sudo progress demo` on the same folder), 0700 as this store makes every folder.
    await chmod(dir, 0o755);
    await chownAll(dir, NOBODY);
    await chownAll(join(dir, 'upgrades', 'theirs'), 0);

    const result = await readAs(NOBODY, dir, 'theirs');
    // It was STORE_UNAVAILABLE for the whole list (and every retention run), and a raw EACCES error
    // from readEvents.
    expect(result.list).toEqual({ ok: ['mine'] });
    expect(result.readEvents).toEqual({ error: 'STORE_UNAVAILABLE' });
    expect(result.load).toEqual({ error: 'STORE_UNAVAILABLE' });
    // It was a bare EACCES error too.
    expect(result.delete).toEqual({ error: 'STORE_UNAVAILABLE' });
    const reader = new JsonFileStore({ directory: dir });
    expect((await reader.load('theirs'))?.lastSeq).toBe(3);
    await reader.close();
  }, 30_000);
});
