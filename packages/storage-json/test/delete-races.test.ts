// Stores (processes) on one folder deleting, re-creating and opening one upgrade at once. node:fs/promises
// is mocked in this file to run another store's step exactly between two steps of this one (after a
// chosen stat() or mkdir() of a chosen path). Each test failed before its fix:
// - delete(): another store deleted the folder between this one's look and its lock, and the lock
//   taking made the folder again, leaving an empty one (found by CI on 2026-11-30, in retention run
//   by three stores);
// - retention: between its list() and its delete, another store deleted the ended upgrade and a new
//   run started under the id: the new run, in progress, was deleted;
// - open(): the folder went between the writer's making of it and its taking of the writer lock:
//   open() threw STORE_UNAVAILABLE, "cannot take the writer lock", for a raw ENOENT.
import type * as FsPromises from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

/** Runs `run` once, after the first `call` of `path` (its result is returned after `run`). */
const hook: { after?: { call: 'stat' | 'mkdir'; path: string; run: () => Promise<void> } } = {};
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof FsPromises>();
  const hooked =
    <A extends unknown[], R>(call: 'stat' | 'mkdir', fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const result = await fn(...args);
      const armed = hook.after;
      if (armed && armed.call === call && String(args[0]) === armed.path) {
        hook.after = undefined;
        await armed.run();
      }
      return result;
    };
  return { ...real, stat: hooked('stat', real.stat), mkdir: hooked('mkdir', real.mkdir) };
});

const { ProgressTracker } = await import('@progress/core');
const { JsonFileStore } = await import('../src/index.js');
const { procIdentity, removeTempDirs, tempDir } = await import('./helpers.js');
const { readFile, rename, writeFile } = await import('node:fs/promises');
const { hostname } = await import('node:os');

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
    hook.after = { call: 'stat', path: join(dir, 'upgrades', 'u1'), run: async () => void (firstDeleted = await first.delete('u1')) };
    expect(await second.delete('u1')).toBe(false);
    expect(hook.after).toBeUndefined();
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
    hook.after = {
      call: 'stat',
      path: join(dir, 'upgrades', 'u1'),
      run: async () => {
        expect(await other.delete('u1')).toBe(true);
        const again = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store: other });
        newRunSeq = (await again.startUpgrade()).seq;
        await again.close();
      },
    };
    const deleted = await retention.deleteCompletedOlderThan(0, Date.now() + 1000);
    expect(hook.after).toBeUndefined();
    expect(newRunSeq).toBe(2);
    expect(deleted).toEqual([]);
    const state = await other.load('u1');
    expect(state?.status).toBe('in_progress');
    expect(state?.lastSeq).toBe(2);
    await Promise.all([retention.close(), other.close()]);
  });
});

describe('a delete whose writer lock is taken over before it moves the folder', () => {
  it("is CONFLICT and leaves the folder, and the new holder's lock, in place", async () => {
    const dir = await tempDir('delete-takeover-race');
    const store = new JsonFileStore({ directory: dir, durability: 'none' });
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store });
    await t.startUpgrade();
    await t.completeUpgrade();
    await t.close();
    const folder = join(dir, 'upgrades', 'u1');
    const lock = join(folder, 'writer.lock');
    // The delete holds the lock (it took it) and has looked at the log; a writer in another container,
    // which found our lease run out while this process stalled, takes the lock over before the folder goes.
    const taker = `${JSON.stringify({ pid: 1, hostname: hostname(), token: 'taker', createdAt: 'now', ...(await procIdentity()), pidNs: 'pid:[1]', leaseMs: 30_000 })}\n`;
    hook.after = {
      call: 'stat',
      path: join(folder, 'events.jsonl'),
      run: async () => {
        await writeFile(`${lock}.taker`, taker);
        await rename(`${lock}.taker`, lock);
      },
    };
    await expect(store.delete('u1')).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/writer lock .*held by pid 1 on host/) });
    expect(hook.after).toBeUndefined();
    expect(readdirSync(folder)).toEqual(expect.arrayContaining(['events.jsonl', 'writer.lock']));
    expect(await readFile(lock, 'utf8')).toBe(taker);
    await store.close();
    expect(await readFile(lock, 'utf8')).toBe(taker);
  });
});

describe('a writer opening an upgrade another store deletes meanwhile', () => {
  it('opens a new run of the upgrade, as after the delete', async () => {
    const dir = await tempDir('open-delete-race');
    const deleter = new JsonFileStore({ directory: dir, durability: 'none' });
    const writer = new JsonFileStore({ directory: dir, durability: 'none' });
    const old = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store: writer });
    await old.startUpgrade();
    await old.completeUpgrade();
    await old.close();
    hook.after = { call: 'mkdir', path: join(dir, 'upgrades', 'u1'), run: async () => void expect(await deleter.delete('u1')).toBe(true) };
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store: writer });
    expect(hook.after).toBeUndefined();
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
