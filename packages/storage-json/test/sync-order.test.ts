// What the store syncs, and in which order, with durability 'fsync': a crash cannot be run here, so the
// syncs and renames are recorded instead (node:fs/promises is mocked in this file to name each handle's
// file). Without these, every sync below could be dropped with every other test passing.
import { constants } from 'node:fs';
import type * as FsPromises from 'node:fs/promises';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';

/**
 * The calls recorded: `sync <file>`, `datasync <file>`, `truncate <file>`, `write <file>` (with
 * ` (O_DSYNC)` when the handle was opened so), `rename <from> <to>`, files relative to the store's folder.
 */
const trace: string[] = [];
const tracing: { root?: string } = {};
const names = new WeakMap<object, string>();
/** The handles opened with O_DSYNC: each of their writes returns once its data is durable. */
const dsync = new WeakSet<object>();
const name = (path: unknown): string => {
  const p = String(path);
  return tracing.root !== undefined && p.startsWith(tracing.root) ? p.slice(tracing.root.length + 1) || '.' : p;
};
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof FsPromises>();
  return {
    ...real,
    open: async (...args: Parameters<typeof real.open>) => {
      const handle = await real.open(...args);
      names.set(handle, String(args[0]));
      if (typeof args[1] === 'number' && (args[1] & constants.O_DSYNC) !== 0) dsync.add(handle);
      return handle;
    },
    rename: async (from: string, to: string) => {
      await real.rename(from, to);
      if (tracing.root !== undefined) trace.push(`rename ${name(from)} ${name(to)}`);
    },
  };
});

const { ProgressTracker } = await import('@progress/core');
const { EventFactory } = await import('@progress/core/testing');
const { JsonFileStore } = await import('../src/index.js');
const { fileHandlePrototype, removeTempDirs, tempDir } = await import('./helpers.js');
const { appendFile, mkdir, writeFile } = await import('node:fs/promises');
const { join } = await import('node:path');

afterAll(removeTempDirs);

let recording = false;
/** Set to make the next write of a FileHandle land, then fail with EIO (a disk failing under it); `cut` makes the next truncate fail. */
const failing = { next: false, cut: false };

/** Records every sync, datasync, truncate and write of a FileHandle (while `tracing.root` is set), under the handle's file name. */
async function recordSyncs(dir: string): Promise<void> {
  if (recording) return;
  recording = true;
  const proto = (await fileHandlePrototype(dir)) as unknown as Record<'sync' | 'datasync' | 'truncate' | 'write', (this: object, ...args: unknown[]) => Promise<unknown>>;
  for (const method of ['sync', 'datasync', 'truncate', 'write'] as const) {
    const original = proto[method];
    proto[method] = async function (this: object, ...args: unknown[]): Promise<unknown> {
      if (method === 'truncate' && failing.cut) {
        failing.cut = false;
        throw Object.assign(new Error('EIO: i/o error, ftruncate'), { code: 'EIO' });
      }
      const result = await original.apply(this, args);
      if (tracing.root !== undefined) trace.push(`${method} ${name(names.get(this) ?? '?')}${method === 'write' && dsync.has(this) ? ' (O_DSYNC)' : ''}`);
      if (method === 'write' && failing.next) {
        failing.next = false;
        throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
      }
      return result;
    };
  }
}

/** The trace with the temp files' and the delete's folder's random parts made `*`. */
const calls = (): string[] => trace.map((c) => c.replace(/\.[0-9a-f]{12}\.tmp/g, '.*.tmp').replace(/(~deleted-[^/ ]*-)[0-9a-f]{8}/g, '$1*'));

/** Whether `call` is followed, somewhere after it, by `then`. */
const followedBy = (call: string, then: string): boolean => {
  const c = calls();
  const at = c.indexOf(call);
  return at >= 0 && c.indexOf(then, at + 1) > at;
};

beforeEach(() => {
  trace.length = 0;
  delete tracing.root;
  failing.next = false;
  failing.cut = false;
});

describe("durability 'fsync': what is synced, and when", () => {
  it('writes a snapshot to a temp file, syncs it, renames it over snapshot.json, then syncs the folder', async () => {
    const dir = await tempDir('sync-snapshot');
    await recordSyncs(dir);
    const store = new JsonFileStore({ directory: dir, snapshotEvery: 2 });
    const f = new EventFactory('u1');
    await store.append('u1', f.batch(1), 0, f.state!);
    tracing.root = dir;
    await store.append('u1', f.batch(1), 1, f.state!);
    await store.close();
    const snapshot = calls().filter((c) => c.includes('snapshot.json') || c === 'sync upgrades/u1');
    expect(snapshot).toEqual(['sync upgrades/u1/snapshot.json.*.tmp', 'rename upgrades/u1/snapshot.json.*.tmp upgrades/u1/snapshot.json', 'sync upgrades/u1']);
  });

  it("syncs nothing of it with durability 'none'", async () => {
    const dir = await tempDir('sync-none');
    await recordSyncs(dir);
    tracing.root = dir;
    const store = new JsonFileStore({ directory: dir, snapshotEvery: 2, durability: 'none' });
    const f = new EventFactory('u1');
    await store.append('u1', f.batch(3), 0, f.state!);
    await store.close();
    expect(calls().filter((c) => c.startsWith('sync ') || c.startsWith('datasync '))).toEqual([]);
  });

  it('syncs the folder once it made the log in it, before the first events are acknowledged', async () => {
    const dir = await tempDir('sync-new-log');
    await recordSyncs(dir);
    const store = new JsonFileStore({ directory: dir });
    const f = new EventFactory('u1');
    tracing.root = dir;
    await store.append('u1', f.batch(2), 0, f.state!);
    expect(calls()).toContain('sync upgrades/u1');
    await store.close();
  });

  it("syncs the parent of every folder it made for a new upgrade (the store's folder, upgrades/) before the first events are acknowledged", async () => {
    const dir = await tempDir('sync-new-dirs');
    await recordSyncs(dir);
    const store = new JsonFileStore({ directory: dir });
    const f = new EventFactory('u1');
    tracing.root = dir;
    await store.append('u1', f.batch(2), 0, f.state!);
    const c = calls();
    const write = c.findIndex((call) => call.startsWith('write upgrades/u1/events.jsonl'));
    // `upgrades` was made in the store's folder, `u1` in `upgrades`: each entry is durable once its parent is synced.
    expect(c.indexOf('sync .')).toBeGreaterThanOrEqual(0);
    expect(c.indexOf('sync .')).toBeLessThan(write);
    expect(c.indexOf('sync upgrades')).toBeGreaterThanOrEqual(0);
    expect(c.indexOf('sync upgrades')).toBeLessThan(write);
    await store.close();
  });

  it('syncs a log it did not write (a killed writer may have left lines unsynced) before its first write', async () => {
    const dir = await tempDir('sync-reopen');
    await recordSyncs(dir);
    const f = new EventFactory('u1');
    const killed = new JsonFileStore({ directory: dir, durability: 'none' });
    await killed.append('u1', f.batch(3), 0, f.state!);
    await killed.close();
    tracing.root = dir;
    const store = new JsonFileStore({ directory: dir });
    const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store });
    await tracker.addTask('t9', 'Task 9'); // opens the writer
    expect(calls()).toContain('datasync upgrades/u1/events.jsonl');
    await tracker.close();
    await store.close();
  });

  it('makes every write of events durable before it is acknowledged: the log is opened O_DSYNC, or datasynced after the write', async () => {
    const dir = await tempDir('sync-append');
    await recordSyncs(dir);
    const store = new JsonFileStore({ directory: dir, snapshotEvery: 1000 });
    const f = new EventFactory('u1');
    tracing.root = dir;
    await store.append('u1', f.batch(2), 0, f.state!);
    // A log that exists already is opened by the other path: after a release, the next append opens it again.
    await store.release('u1');
    await store.append('u1', f.batch(1), 2, f.state!);
    await store.close();
    const writes = calls().flatMap((c, i) => (c.startsWith('write upgrades/u1/events.jsonl') ? [i] : []));
    expect(writes).toHaveLength(2);
    for (const i of writes) {
      const durable = calls()[i]!.endsWith('(O_DSYNC)') || calls()[i + 1] === 'datasync upgrades/u1/events.jsonl';
      expect(durable, `${calls()[i]} then ${calls()[i + 1]}`).toBe(true);
    }
  });

  it('syncs the cut back of a failed write: the lines of its rejected events cannot come back after a crash', async () => {
    const dir = await tempDir('sync-undo');
    await recordSyncs(dir);
    const store = new JsonFileStore({ directory: dir });
    const f = new EventFactory('u1');
    await store.append('u1', f.batch(2), 0, f.state!);
    tracing.root = dir;
    failing.next = true;
    await expect(store.append('u1', f.batch(1), 2, f.state!)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(followedBy('truncate upgrades/u1/events.jsonl', 'datasync upgrades/u1/events.jsonl')).toBe(true);
    await store.close();
  });

  it('syncs the cut a failed write left owed (its own cut failed too) when it is made at release()', async () => {
    const dir = await tempDir('sync-owed');
    await recordSyncs(dir);
    const store = new JsonFileStore({ directory: dir });
    const f = new EventFactory('u1');
    await store.append('u1', f.batch(2), 0, f.state!);
    failing.next = true;
    failing.cut = true;
    await expect(store.append('u1', f.batch(1), 2, f.state!)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    tracing.root = dir;
    await store.release('u1');
    expect(followedBy('truncate upgrades/u1/events.jsonl', 'datasync upgrades/u1/events.jsonl')).toBe(true);
    await store.close();
    const reader = new JsonFileStore({ directory: dir });
    expect((await reader.load('u1'))?.lastSeq).toBe(2);
    await reader.close();
  });

  it('syncs the cut of a torn last write before the writer writes after it', async () => {
    const dir = await tempDir('sync-torn');
    await recordSyncs(dir);
    const f = new EventFactory('u1');
    const killed = new JsonFileStore({ directory: dir, durability: 'none' });
    await killed.append('u1', f.batch(3), 0, f.state!);
    await killed.close();
    await appendFile(join(dir, 'upgrades', 'u1', 'events.jsonl'), '{"c":"0000');
    tracing.root = dir;
    const store = new JsonFileStore({ directory: dir });
    await store.append('u1', f.batch(1), 3, f.state!);
    await store.close();
    expect(calls().filter((c) => c.startsWith('truncate '))).toEqual(['truncate upgrades/u1/events.jsonl']);
    expect(followedBy('truncate upgrades/u1/events.jsonl', 'datasync upgrades/u1/events.jsonl')).toBe(true);
  });

  it('syncs upgrades/ once the folder of a deleted upgrade was moved out of it, before delete() resolves', async () => {
    const dir = await tempDir('sync-delete');
    await recordSyncs(dir);
    const store = new JsonFileStore({ directory: dir });
    const f = new EventFactory('u1');
    await store.append('u1', f.batch(2), 0, f.state!);
    tracing.root = dir;
    expect(await store.delete('u1')).toBe(true);
    expect(followedBy('rename upgrades/u1 upgrades/~deleted-u1-*', 'sync upgrades')).toBe(true);
    await store.close();
  });

  it("syncs the folder of a deleted legacy upgrade once its log was moved out of it (the folder stays, with the marker)", async () => {
    const dir = await tempDir('sync-delete-legacy');
    await recordSyncs(dir);
    await mkdir(join(dir, 'progress'));
    await writeFile(join(dir, 'progress', 'upgrade_u1.json'), JSON.stringify({ upgrade_id: 'u1', plan_id: 'p', cluster_name: 'c', status: 'in_progress', tasks: {} }));
    const store = new JsonFileStore({ directory: dir });
    const state = (await store.load('u1'))!;
    const f = new EventFactory('u1');
    await store.append('u1', [{ ...f.batch(1)[0]!, seq: state.lastSeq + 1 }], state.lastSeq, { ...state, lastSeq: state.lastSeq + 1 });
    tracing.root = dir;
    expect(await store.delete('u1')).toBe(true);
    expect(followedBy('rename upgrades/u1/events.jsonl upgrades/~deleted-u1-*/events.jsonl', 'sync upgrades/u1')).toBe(true);
    await store.close();
  });
});
