import { access, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressTracker } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { JsonFileStore } from '../src/index.js';
import { removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

const open = (store: JsonFileStore) => ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store });

/** A store folder whose `upgrades/u1/events.jsonl` is a symbolic link to `victim`, holding `content`. */
async function linkedLog(content: string): Promise<{ dir: string; victim: string }> {
  const dir = await tempDir('symlink');
  const victim = join(dir, 'victim.txt');
  await writeFile(victim, content);
  await mkdir(join(dir, 'upgrades', 'u1'), { recursive: true });
  await symlink(victim, join(dir, 'upgrades', 'u1', 'events.jsonl'));
  return { dir, victim };
}

describe('an events.jsonl that is a symbolic link', () => {
  it('is refused by a writer, and the file it points to is neither cut nor written', async () => {
    // Read as a log, this is one torn line: the writer used to cut it off, emptying the file, then write its events into it.
    const { dir, victim } = await linkedLog('precious data without a newline');
    const store = new JsonFileStore({ directory: dir });
    await expect(open(store)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', message: expect.stringContaining('symbolic link') });
    expect(await readFile(victim, 'utf8')).toBe('precious data without a newline');
    await store.close();
  });

  it('to an empty file is refused too, and nothing is written into that file', async () => {
    const { dir, victim } = await linkedLog('');
    const store = new JsonFileStore({ directory: dir, durability: 'none' });
    await expect(open(store)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(await readFile(victim, 'utf8')).toBe('');
    await store.close();
  });

  it('refused to a plain append, leaves no writer lock behind: another store can take the upgrade at once', async () => {
    // The append took the lock itself (no acquire()): a refused opening must give it back, else the
    // upgrade stayed held by this store (its lease stamped on) until close().
    const { dir } = await linkedLog('');
    const store = new JsonFileStore({ directory: dir, durability: 'none' });
    const f = new EventFactory('u1');
    await expect(store.append('u1', f.batch(2), 0, f.state!)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await expect(access(join(dir, 'upgrades', 'u1', 'writer.lock'))).rejects.toMatchObject({ code: 'ENOENT' });
    const other = new JsonFileStore({ directory: dir, durability: 'none' });
    await expect(other.acquire('u1')).resolves.toBeUndefined();
    await other.close();
    await store.close();
  });
});
