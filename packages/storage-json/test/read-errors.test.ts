// A read that fails past the open (a disk failing: EIO; a log or snapshot that is a folder: EISDIR)
// must reject as the store's STORE_UNAVAILABLE naming the file, never as a bare Node error.
// (Found by a review on 2026-11-30; the test failed before the fix.)
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isProgressError, type ProgressEvent } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { JsonFileStore } from '../src/index.js';
import { fileHandlePrototype, removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

async function collect(it: AsyncIterable<ProgressEvent>): Promise<ProgressEvent[]> {
  const out: ProgressEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

/** What `p` rejected with, as `{ code, file, cause }`; or `'resolved'`. */
async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    if (!isProgressError(err)) return { bare: (err as NodeJS.ErrnoException).code };
    return { code: err.code, file: err.context.file, cause: (err.cause as NodeJS.ErrnoException | undefined)?.code };
  }
}

describe('a read that fails after the file was opened', () => {
  it('is STORE_UNAVAILABLE naming the log, from load, readEvents and list (EIO), and reads work again once the disk does', async () => {
    const dir = await tempDir('read-eio');
    const store = new JsonFileStore({ directory: dir, snapshotEvery: 4 });
    const f = new EventFactory('u1');
    await store.append('u1', f.batch(6), 0, f.snapshot());
    await store.release('u1');
    const log = join(dir, 'upgrades', 'u1', 'events.jsonl');

    const proto = (await fileHandlePrototype(dir)) as unknown as { read: (...args: unknown[]) => Promise<unknown> };
    const { read } = proto;
    proto.read = function () {
      return Promise.reject(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO', errno: -5, syscall: 'read' }));
    };
    let results: unknown[];
    try {
      results = [await failure(store.load('u1')), await failure(collect(store.readEvents('u1', 0))), await failure(collect(store.readEvents('u1', 5))), await failure(store.list())];
    } finally {
      proto.read = read;
    }
    // Each was a bare EIO error.
    expect(results[0]).toEqual({ code: 'STORE_UNAVAILABLE', file: log, cause: 'EIO' });
    // (readEvents reads the snapshot's first bytes first: the file it names is the one that failed.)
    expect(results[1]).toMatchObject({ code: 'STORE_UNAVAILABLE', cause: 'EIO' });
    expect(results[2]).toMatchObject({ code: 'STORE_UNAVAILABLE', cause: 'EIO' });
    expect(results[3]).toMatchObject({ code: 'STORE_UNAVAILABLE', cause: 'EIO' });

    expect((await store.load('u1'))?.lastSeq).toBe(6);
    expect((await collect(store.readEvents('u1', 0))).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    await store.close();
  });

  it('is STORE_UNAVAILABLE naming the file when the log or the snapshot is a folder (EISDIR)', async () => {
    const dir = await tempDir('read-eisdir');
    await mkdir(join(dir, 'upgrades', 'logdir', 'events.jsonl'), { recursive: true });
    await mkdir(join(dir, 'upgrades', 'snapdir', 'snapshot.json'), { recursive: true });
    const store = new JsonFileStore({ directory: dir });
    const log = join(dir, 'upgrades', 'logdir', 'events.jsonl');
    const snapshot = join(dir, 'upgrades', 'snapdir', 'snapshot.json');
    // Each was a bare EISDIR error, but for load() of snapdir.
    expect(await failure(store.load('logdir'))).toEqual({ code: 'STORE_UNAVAILABLE', file: log, cause: 'EISDIR' });
    expect(await failure(collect(store.readEvents('logdir', 0)))).toEqual({ code: 'STORE_UNAVAILABLE', file: log, cause: 'EISDIR' });
    expect(await failure(store.load('snapdir'))).toEqual({ code: 'STORE_UNAVAILABLE', file: snapshot, cause: 'EISDIR' });
    expect(await failure(collect(store.readEvents('snapdir', 0)))).toEqual({ code: 'STORE_UNAVAILABLE', file: snapshot, cause: 'EISDIR' });
    expect(await failure(store.list())).toMatchObject({ code: 'STORE_UNAVAILABLE', cause: 'EISDIR' });
    await store.close();
  });
});

describe('legacyFileStat() of an upgrade whose folder cannot be read', () => {
  // `progress watch <folder> <id>` of an upgrade folder another user made (0700) said the bare
  // "EACCES: permission denied, stat '.../snapshot.json'": legacyFileStat() let the error of its
  // first look at the snapshot through, where load() gives STORE_UNAVAILABLE naming the file.
  // ENOTDIR (the upgrade's "folder" a file) fails the same stat without root. (Found by a review on
  // 2026-12-02; the test failed before the fix.)
  it('is STORE_UNAVAILABLE naming the file, never a bare Node error', async () => {
    const dir = await tempDir('legacy-stat-error');
    await mkdir(join(dir, 'upgrades'), { recursive: true });
    await writeFile(join(dir, 'upgrades', 'afile'), '');
    const store = new JsonFileStore({ directory: dir });
    expect(await failure(store.legacyFileStat('afile'))).toEqual({ code: 'STORE_UNAVAILABLE', file: join(dir, 'upgrades', 'afile', 'snapshot.json'), cause: 'ENOTDIR' });
    await store.close();
  });
});

describe('a file system error under a store error', () => {
  // The message said only "cannot take the writer lock <file>" or "cannot read the folder <dir>":
  // the `progress` command prints the message alone, and a folder it may not write (EACCES) read as
  // a lock held by another writer. (Found by a review on 2026-12-02; the test failed before the fix.)
  it('is said in the message, with its code: the folder that failed and why', async () => {
    const dir = await tempDir('read-reason');
    await mkdir(join(dir, 'upgrades', 'logdir', 'events.jsonl'), { recursive: true });
    await writeFile(join(dir, 'upgrades', 'afile'), '');
    const store = new JsonFileStore({ directory: dir });
    const message = (p: Promise<unknown>) => p.then(() => 'resolved', (err: Error) => err.message);
    expect(await message(store.load('logdir'))).toMatch(/cannot read .*events\.jsonl \(EISDIR: .*\)$/);
    expect(await message(store.acquire('afile'))).toMatch(/cannot take the writer lock .* \((EEXIST|ENOTDIR): .*afile.*\)$/);
    await store.close();
    const other = await tempDir('read-reason-list');
    await writeFile(join(other, 'upgrades'), '');
    const lister = new JsonFileStore({ directory: other });
    expect(await message(lister.list())).toMatch(/cannot read the folder .*upgrades \(ENOTDIR: .*\)$/);
    await lister.close();
  });
});
