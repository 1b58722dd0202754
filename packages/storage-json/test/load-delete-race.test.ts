// load() and readEvents() of an upgrade with a snapshot while another store deletes it (and creates it
// again), right after the reader opened the log to check it against the snapshot. Its own file:
// node:fs/promises is mocked here, to put the other store's delete exactly there.
// - Deleted only: load() answered the snapshot's state (in progress at seq 4) for an upgrade that had
//   completed at seq 5: the tail was read from the log's path, gone by then.
// - Deleted and created again, the new run past the old snapshot's offset: load() and readEvents()
//   read the old snapshot's offset in the new run's log and answered DATA_CORRUPTED.
// - Deleted and run again the same way between the reads of the snapshot and of the log: load()
//   folded the new run's tail into the old run's snapshot.
import type * as FsPromises from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

/**
 * Runs `run` once the `skip`+1-th open of `path` has opened it, before the caller reads it; or
 * (`afterRead`) once a readFile of `path` has read it, before the caller has the text.
 */
const hook: { afterOpen?: { path: string; skip: number; run: () => Promise<void> }; afterRead?: { path: string; run: () => Promise<void> } } = {};
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof FsPromises>();
  return {
    ...real,
    readFile: async (...args: Parameters<typeof real.readFile>) => {
      const text = await real.readFile(...args);
      const armed = hook.afterRead;
      if (armed && String(args[0]) === armed.path) {
        hook.afterRead = undefined;
        await armed.run();
      }
      return text;
    },
    open: async (...args: Parameters<typeof real.open>) => {
      const handle = await real.open(...args);
      const armed = hook.afterOpen;
      if (armed && String(args[0]) === armed.path && armed.skip-- === 0) {
        hook.afterOpen = undefined;
        await armed.run();
      }
      return handle;
    },
  };
});

const { ProgressTracker } = await import('@progress/core');
const { JsonFileStore } = await import('../src/index.js');
const { removeTempDirs, tempDir } = await import('./helpers.js');
const { readFile } = await import('node:fs/promises');

const collect = async <T>(events: AsyncIterable<T>): Promise<T[]> => {
  const out: T[] = [];
  for await (const e of events) out.push(e);
  return out;
};

afterAll(removeTempDirs);

/** An upgrade completed at seq 2 + phases (a snapshot every 2 events), written by `store`. */
async function completed(store: InstanceType<typeof JsonFileStore>, upgradeId: string, phases = ['two', 'three']): Promise<void> {
  const t = await ProgressTracker.open({ upgradeId, planId: 'p', clusterName: 'c', store });
  await t.startUpgrade();
  for (const phase of phases) await t.setCurrentPhase(phase);
  await t.completeUpgrade();
  await t.close();
}

describe('load() and readEvents() of an upgrade another store deletes meanwhile', () => {
  it('load() is the whole state or no upgrade, never the snapshot without the events after it', async () => {
    const dir = await tempDir('load-delete-race');
    const reader = new JsonFileStore({ directory: dir, durability: 'none', snapshotEvery: 2 });
    const other = new JsonFileStore({ directory: dir, durability: 'none', snapshotEvery: 2 });
    await completed(other, 'u1');
    expect((await reader.load('u1'))?.lastSeq).toBe(5);
    // The reader has read the snapshot (seq 4) and opened the log to check it; the other store
    // deletes the upgrade before the reader reads the log's tail.
    hook.afterOpen = { path: join(dir, 'upgrades', 'u1', 'events.jsonl'), skip: 0, run: async () => void expect(await other.delete('u1')).toBe(true) };
    const state = await reader.load('u1');
    expect(hook.afterOpen).toBeUndefined();
    expect(state?.lastSeq ?? 'none').not.toBe(4);
    expect(state === undefined || state.lastSeq === 5).toBe(true);
    expect(await reader.load('u1')).toBeUndefined();
    await Promise.all([reader.close(), other.close()]);
  });

  it.each(['load', 'readEvents'] as const)("%s() reads one run, not the old snapshot's offset in the log of the run created again", async (read) => {
    const dir = await tempDir('load-recreate-race');
    const reader = new JsonFileStore({ directory: dir, durability: 'none', snapshotEvery: 2 });
    const other = new JsonFileStore({ directory: dir, durability: 'none', snapshotEvery: 2 });
    await completed(other, 'u1');
    const old = (await reader.load('u1'))!;
    const oldEvents = await collect(reader.readEvents('u1', 0));
    // Deleted, and created again with longer phase names, well past the old snapshot's offset.
    const recreate = async () => {
      expect(await other.delete('u1')).toBe(true);
      await completed(other, 'u1', ['a'.repeat(200), 'b'.repeat(200), 'c'.repeat(200)]);
    };
    hook.afterOpen = { path: join(dir, 'upgrades', 'u1', 'events.jsonl'), skip: 0, run: recreate };
    if (read === 'load') {
      // The old run as a whole (what the log the reader opened holds), or the new one: never an error.
      const state = await reader.load('u1');
      expect([old.lastSeq, 6]).toContain(state?.lastSeq);
      if (state?.lastSeq === old.lastSeq) expect(state).toEqual(old);
    } else {
      // Asked from the old snapshot's seq: the old run's event after it.
      const events = await collect(reader.readEvents('u1', 4));
      expect(events).toEqual(oldEvents.slice(4));
    }
    expect(hook.afterOpen).toBeUndefined();
    expect((await reader.load('u1'))?.lastSeq).toBe(6);
    await Promise.all([reader.close(), other.close()]);
  });

  it("load() does not fold the new run's tail into the old run's snapshot when the run is created again between the snapshot's read and the log's", async () => {
    // Deleted and run again the same way, between the reader's read of the snapshot and its open of
    // the log: the new log's line of the snapshot's seq ends at the snapshot's offset too (same events,
    // same line lengths), so the old snapshot fit the new log. load() answered the old run's state up
    // to seq 4 with the new run's seq 5 folded in: the old run's start, the new run's end, of neither.
    const dir = await tempDir('load-rerun-race');
    const reader = new JsonFileStore({ directory: dir, durability: 'none', snapshotEvery: 2 });
    const other = new JsonFileStore({ directory: dir, durability: 'none', snapshotEvery: 2 });
    const snapshot = join(dir, 'upgrades', 'u1', 'snapshot.json');
    const header = async (): Promise<string> => /^\{"v":1,"lastSeq":\d+,"offset":\d+,/.exec(await readFile(snapshot, 'utf8'))![0];
    await completed(other, 'u1');
    const old = (await reader.load('u1'))!;
    const oldHeader = await header();
    hook.afterRead = {
      path: snapshot,
      run: async () => {
        expect(await other.delete('u1')).toBe(true);
        // Another millisecond: the runs' events differ in their timestamps, not in their lengths.
        await new Promise((resolve) => setTimeout(resolve, 2));
        await completed(other, 'u1');
      },
    };
    const state = await reader.load('u1');
    expect(hook.afterRead).toBeUndefined();
    // The case this is about: the new run's snapshot has the old one's seq and offset.
    expect(await header()).toBe(oldHeader);
    const fresh = (await reader.load('u1'))!;
    expect(fresh.createdAt).not.toBe(old.createdAt);
    expect([old, fresh]).toContainEqual(state);
    await Promise.all([reader.close(), other.close()]);
  });

  it('load() in an fsync store reads the snapshot again when the upgrade was deleted and created shorter between its reads of the snapshot and the log: no loss, no DATA_CORRUPTED', async () => {
    // The old run's snapshot (seq 4) then the new run's log, which ends before that snapshot's offset:
    // what a log that lost acknowledged events looks like, but the snapshot changed in between.
    const dir = await tempDir('load-shorter-race');
    const reader = new JsonFileStore({ directory: dir, snapshotEvery: 2 });
    const other = new JsonFileStore({ directory: dir, durability: 'none', snapshotEvery: 2 });
    const snapshot = join(dir, 'upgrades', 'u1', 'snapshot.json');
    await completed(other, 'u1');
    expect((await reader.load('u1'))?.lastSeq).toBe(5);
    hook.afterRead = {
      path: snapshot,
      run: async () => {
        expect(await other.delete('u1')).toBe(true);
        await completed(other, 'u1', []);
      },
    };
    const state = await reader.load('u1');
    expect(hook.afterRead).toBeUndefined();
    expect(state).toMatchObject({ lastSeq: 3, status: 'completed' });
    expect(state).toEqual(await reader.load('u1'));
    await Promise.all([reader.close(), other.close()]);
  });
});
