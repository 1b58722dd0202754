// What the store syncs, and in which order, with durability 'fsync': a crash cannot be run here, so the
// syncs and renames are recorded instead (node:fs/promises is mocked in this file to name each handle's
// file). Without these, every sync below could be dropped with every other test passing.
import type * as FsPromises from 'node:fs/promises';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';

/** The calls recorded: `sync <file>`, `datasync <file>`, `rename <from> <to>`, files relative to the store's folder. */
const trace: string[] = [];
const tracing: { root?: string } = {};
const names = new WeakMap<object, string>();
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
      names.set(handle, name(args[0]));
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

afterAll(removeTempDirs);

let recording = false;
/** Records every sync and datasync of a FileHandle (while `tracing.root` is set), under the handle's file name. */
async function recordSyncs(dir: string): Promise<void> {
  if (recording) return;
  recording = true;
  const proto = (await fileHandlePrototype(dir)) as unknown as Record<'sync' | 'datasync', (this: object) => Promise<void>>;
  for (const method of ['sync', 'datasync'] as const) {
    const original = proto[method];
    proto[method] = async function (this: object): Promise<void> {
      await original.call(this);
      if (tracing.root !== undefined) trace.push(`${method} ${names.get(this) ?? '?'}`);
    };
  }
}

/** The trace with the temp files' random part made `*`. */
const calls = (): string[] => trace.map((c) => c.replace(/\.[0-9a-f]{12}\.tmp/g, '.*.tmp'));

beforeEach(() => {
  trace.length = 0;
  delete tracing.root;
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
    expect(calls().filter((c) => !c.startsWith('rename '))).toEqual([]);
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
});
