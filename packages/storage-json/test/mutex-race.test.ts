// Two stores take over one dead writer lock while a dead taker's takeover mutex is still there: each
// removes that dead mutex "only if it is still that one", but between its look and its unlink the
// other may have removed it already and taken a mutex of its own. Its own file: node:fs/promises is
// mocked here, to put the second taker exactly there. (The test failed before the fix: both took the
// lock, both appended seq 3, and one of the two acknowledged events was lost.)
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type * as FsPromises from 'node:fs/promises';
import { afterAll, describe, expect, it, vi } from 'vitest';

/**
 * Each runs once, before the first call that names `path`: `beforeRemoval` an unlink of it, or a
 * rename of it elsewhere (a removal of it either way); `beforeRename` a rename to it; `beforeLink` a
 * link of a file to it.
 */
type Hook = { path: string; run: () => Promise<void> };
const hooks: { beforeRemoval?: Hook; beforeRename?: Hook; beforeLink?: Hook } = {};
async function fire(name: keyof typeof hooks, path: unknown): Promise<void> {
  const armed = hooks[name];
  if (armed && String(path) === armed.path) {
    hooks[name] = undefined;
    await armed.run();
  }
}
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof FsPromises>();
  return {
    ...real,
    unlink: async (...args: Parameters<typeof real.unlink>) => {
      await fire('beforeRemoval', args[0]);
      return real.unlink(...args);
    },
    rename: async (...args: Parameters<typeof real.rename>) => {
      await fire('beforeRemoval', args[0]);
      await fire('beforeRename', args[1]);
      return real.rename(...args);
    },
    link: async (...args: Parameters<typeof real.link>) => {
      await fire('beforeLink', args[1]);
      return real.link(...args);
    },
  };
});

const { EventFactory } = await import('@progress/core/testing');
const { JsonFileStore } = await import('../src/index.js');
const { procIdentity, removeTempDirs, tempDir } = await import('./helpers.js');

afterAll(removeTempDirs);

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

describe('two takers of a dead lock, with a dead taker\'s mutex left', () => {
  it.runIf(existsSync('/proc/self/stat'))('give the lock to one of them only', async () => {
    const dir = await tempDir('mutex-race');
    const folder = join(dir, 'upgrades', 'u1');
    const lock = join(folder, 'writer.lock');
    // Two events stored, then the writer died in the middle of taking over: its lock and mutex are left.
    const f = new EventFactory('u1');
    const before = new JsonFileStore({ directory: dir, durability: 'none' });
    await before.append('u1', f.batch(2), 0, f.state!);
    await before.close();
    const base = { hostname: hostname(), createdAt: 'then', ...(await procIdentity()) };
    await writeFile(lock, `${JSON.stringify({ ...base, pid: await deadPid(), token: 'dead-lock' })}\n`);
    await writeFile(`${lock}.takeover`, `${JSON.stringify({ ...base, pid: await deadPid(), token: 'dead-mutex' })}\n`);
    const first = new JsonFileStore({ directory: dir, durability: 'none' });
    const second = new JsonFileStore({ directory: dir, durability: 'none' });
    // The first has read the dead mutex twice and is about to remove it; the second removes it first,
    // takes a mutex of its own and is about to rename its lock into place.
    let secondTook: Promise<unknown> | undefined;
    let firstDone!: () => void;
    const firstSettled = new Promise<void>((resolve) => (firstDone = resolve));
    hooks.beforeRemoval = {
      path: `${lock}.takeover`,
      run: async () => {
        await new Promise<void>((atRename) => {
          hooks.beforeRename = {
            path: lock,
            run: async () => {
              atRename();
              // (The second goes on once the first has its answer: a lock, or CONFLICT.)
              await firstSettled;
            },
          };
          secondTook = second.acquire('u1').then(
            () => 'held',
            (err: { code?: string }) => err.code,
          );
        });
      },
    };
    const firstTook = await first.acquire('u1').then(
      () => 'held',
      (err: { code?: string }) => err.code,
    );
    firstDone();
    const results = [firstTook, await secondTook];
    // What a holder writes is acknowledged: every acknowledged event must be read back.
    const acknowledged: string[] = [];
    const third = f.batch(1)[0]!;
    await Promise.all(
      [first, second].map(async (store, i) => {
        if (results[i] !== 'held') return;
        const events = [{ ...third, eventId: randomUUID() }];
        await store.append('u1', events, 2, f.state!);
        acknowledged.push(events[0]!.eventId);
      }),
    );
    const reader = new JsonFileStore({ directory: dir, durability: 'none' });
    const read: string[] = [];
    for await (const e of reader.readEvents('u1', 2)) read.push(e.eventId);
    await reader.close();
    expect(read).toEqual(acknowledged);
    expect(hooks.beforeRemoval).toBeUndefined();
    expect(results.filter((r) => r === 'held')).toHaveLength(1);
    expect(results).toContain('CONFLICT');
    await Promise.all([first.close(), second.close()]);
  });

  it.runIf(existsSync('/proc/self/stat'))('leave no takeover mutex behind when the live one moved aside by mistake is let go before it is put back', async () => {
    const dir = await tempDir('mutex-release');
    const folder = join(dir, 'upgrades', 'u1');
    const lock = join(folder, 'writer.lock');
    const mutex = `${lock}.takeover`;
    const f = new EventFactory('u1');
    const before = new JsonFileStore({ directory: dir, durability: 'none' });
    await before.append('u1', f.batch(2), 0, f.state!);
    await before.close();
    const base = { hostname: hostname(), createdAt: 'then', ...(await procIdentity()) };
    const deadLock = async (): Promise<void> => writeFile(lock, `${JSON.stringify({ ...base, pid: await deadPid(), token: randomUUID() })}\n`);
    await deadLock();
    await writeFile(mutex, `${JSON.stringify({ ...base, pid: await deadPid(), token: 'dead-mutex' })}\n`);
    const first = new JsonFileStore({ directory: dir, durability: 'none' });
    const second = new JsonFileStore({ directory: dir, durability: 'none' });
    // The first is about to move the dead mutex aside; the second removes it first and takes a mutex
    // of its own, so that the first moves the second's live one aside. Before the first puts it back,
    // the second ends its takeover and lets its mutex go. (The test failed before the fix: the mutex
    // was put back held by no one, and the next takeover was refused: CONFLICT, for as long as the
    // second's process lives.)
    let secondTook: Promise<unknown> | undefined;
    let letSecondGo!: () => void;
    hooks.beforeRemoval = {
      path: mutex,
      run: async () => {
        await new Promise<void>((atRename) => {
          hooks.beforeRename = {
            path: lock,
            run: async () => {
              atRename();
              await new Promise<void>((go) => (letSecondGo = go));
            },
          };
          secondTook = second.acquire('u1').then(
            () => 'held',
            (err: { code?: string }) => err.code,
          );
        });
        hooks.beforeLink = {
          path: mutex,
          run: async () => {
            letSecondGo();
            await secondTook;
          },
        };
      },
    };
    const firstTook = await first.acquire('u1').then(
      () => 'held',
      (err: { code?: string }) => err.code,
    );
    expect(hooks.beforeLink).toBeUndefined();
    expect([firstTook, await secondTook]).toEqual(['CONFLICT', 'held']);
    await Promise.all([first.close(), second.close()]);
    // No one holds the mutex now: none is left, and the next dead lock is taken over.
    expect(readdirSync(folder).filter((name) => name.includes('takeover'))).toEqual([]);
    await deadLock();
    const third = new JsonFileStore({ directory: dir, durability: 'none' });
    await third.acquire('u1');
    await third.close();
  });
});

describe('a dead lock that goes while a taker takes it over', () => {
  it.runIf(existsSync('/proc/self/stat'))('is no error: the taker finds it gone under the mutex, and takes the lock', async () => {
    const dir = await tempDir('lock-gone');
    const lock = join(dir, 'upgrades', 'u1', 'writer.lock');
    const f = new EventFactory('u1');
    const before = new JsonFileStore({ directory: dir, durability: 'none' });
    await before.append('u1', f.batch(2), 0, f.state!);
    await before.close();
    await writeFile(lock, `${JSON.stringify({ hostname: hostname(), createdAt: 'then', ...(await procIdentity()), pid: await deadPid(), token: 'dead-lock' })}\n`);
    // The taker judged the lock dead; before it looks again under the takeover mutex, the lock is
    // removed (by hand, or by another taker that took it over and let it go).
    hooks.beforeLink = { path: `${lock}.takeover`, run: () => unlink(lock) };
    const store = new JsonFileStore({ directory: dir, durability: 'none' });
    await store.acquire('u1');
    expect(hooks.beforeLink).toBeUndefined();
    await store.append('u1', f.batch(1), 2, f.state!);
    await store.close();
  });
});
