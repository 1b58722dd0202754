import { appendFile, copyFile, readFile, rename, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressTracker } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { JsonFileStore } from '../src/index.js';
import { encodeEvents } from '../src/record-codec.js';
import { removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

// The writer keeps the open log, its seq and its byte offset in memory, and writes each batch at that
// offset. When the file under it changes by hand (deleted by a cleanup cron, cut back by a restore
// from backup, replaced by an older copy, the whole folder removed) or another writer wrote to it (the
// lock deleted by hand), a write there would land in an unlinked file (acknowledged, then gone), after
// a hole of zeros, or over another writer's lines. The writer must refuse instead, naming the file.

/** Appends `n` events at the factory's last seq. */
async function add(store: JsonFileStore, f: EventFactory, n: number): Promise<void> {
  const expected = f.lastSeq;
  await store.append('u1', f.batch(n), expected, f.state!);
}

async function seeded(snapshotEvery = 1000): Promise<{ dir: string; log: string; store: JsonFileStore; f: EventFactory }> {
  const dir = await tempDir('log-changed');
  const store = new JsonFileStore({ directory: dir, snapshotEvery });
  const f = new EventFactory('u1');
  for (let i = 0; i < 4; i++) await add(store, f, 1);
  return { dir, log: join(dir, 'upgrades', 'u1', 'events.jsonl'), store, f };
}

describe('the log changed under a live writer', () => {
  it('refuses to append once events.jsonl was deleted, and writes nothing', async () => {
    const { log, store, f } = await seeded();
    await unlink(log);
    const expected = { code: 'DATA_CORRUPTED', message: expect.stringContaining(log), context: expect.objectContaining({ upgradeId: 'u1', file: log }) };
    await expect(store.append('u1', f.batch(1), 4, f.state!)).rejects.toMatchObject(expected);
    // Every later append too (not a fresh log from seq 1 either).
    const fresh = new EventFactory('u1');
    await expect(store.append('u1', fresh.batch(1), 0, fresh.state!)).rejects.toMatchObject({ code: expect.stringMatching(/DATA_CORRUPTED|CONFLICT/) });
    await expect(stat(log)).rejects.toMatchObject({ code: 'ENOENT' });
    await store.close();
  });

  it('refuses to append once events.jsonl was cut back (a restore from backup), and leaves it as it is', async () => {
    const { log, store, f } = await seeded();
    const full = await readFile(log);
    const cut = full.indexOf(0x0a) + 1; // only seq 1 left
    await truncate(log, cut);
    await expect(store.append('u1', f.batch(1), 4, f.state!)).rejects.toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining(log) });
    expect((await readFile(log)).equals(full.subarray(0, cut))).toBe(true);
    await store.close();
  });

  // Put back as it was, the log would take appends again, from a writer that holds nothing the
  // file proves: the store writes no more to the upgrade until it is released.
  it('keeps refusing once events.jsonl was put back as it was', async () => {
    const { log, store, f } = await seeded();
    const full = await readFile(log);
    const again = new EventFactory('u1');
    again.state = f.snapshot();
    await truncate(log, full.indexOf(0x0a) + 1);
    await expect(store.append('u1', f.batch(1), 4, f.state!)).rejects.toMatchObject({ code: 'DATA_CORRUPTED' });
    await writeFile(log, full);
    await expect(store.append('u1', again.batch(1), 4, again.state!)).rejects.toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining(log) });
    expect((await readFile(log)).equals(full)).toBe(true);
    await store.close();
  });

  it('refuses to append once events.jsonl lost only its last byte (the newline of the last event), and leaves it as it is', async () => {
    const { log, store, f } = await seeded();
    const full = await readFile(log);
    await truncate(log, full.length - 1);
    await expect(store.append('u1', f.batch(1), 4, f.state!)).rejects.toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining(`cut back to ${full.length - 1} bytes`) });
    expect((await readFile(log)).equals(full.subarray(0, full.length - 1))).toBe(true);
    await store.close();
  });

  it('refuses to append once events.jsonl was replaced by an older copy', async () => {
    const { dir, log, store, f } = await seeded();
    const old = join(dir, 'old.jsonl');
    await copyFile(log, old);
    await store.append('u1', f.batch(1), 4, f.state!);
    await rename(old, log);
    const before = await readFile(log);
    await expect(store.append('u1', f.batch(1), 5, f.state!)).rejects.toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining(log) });
    expect((await readFile(log)).equals(before)).toBe(true);
    await store.close();
  });

  it('refuses to append once another writer added lines (its writer.lock left alone), and writes nothing over them', async () => {
    const { log, store, f } = await seeded();
    const other = new EventFactory('u1');
    other.state = structuredClone(f.state!);
    const theirs = encodeEvents(other.batch(2));
    await appendFile(log, theirs);
    const before = await readFile(log);
    await expect(store.append('u1', f.batch(1), 4, f.state!)).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining(log) });
    expect((await readFile(log)).equals(before)).toBe(true);
    await store.close();
  });

  it('refuses to append once the whole upgrade folder was deleted', async () => {
    const { dir, log, store, f } = await seeded();
    await rm(join(dir, 'upgrades', 'u1'), { recursive: true });
    // Its writer.lock went with it (CONFLICT), or the log is found gone (DATA_CORRUPTED).
    await expect(store.append('u1', f.batch(1), 4, f.state!)).rejects.toMatchObject({ code: expect.stringMatching(/^(CONFLICT|DATA_CORRUPTED)$/), message: expect.stringContaining(join(dir, 'upgrades', 'u1')) });
    await expect(stat(log)).rejects.toMatchObject({ code: 'ENOENT' });
    await store.close();
  });

  it('a tracker whose log was deleted under it rejects its next command and keeps its state', async () => {
    const dir = await tempDir('log-changed');
    const store = new JsonFileStore({ directory: dir });
    const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store });
    await tracker.startUpgrade('phase');
    const seq = tracker.durableProgress.lastSeq;
    await unlink(join(dir, 'upgrades', 'u1', 'events.jsonl'));
    await expect(tracker.addTask('t1', 'T', 'upgrade_step')).rejects.toMatchObject({ code: 'DATA_CORRUPTED' });
    expect(tracker.durableProgress.lastSeq).toBe(seq);
    await tracker.close().catch(() => {});
    await store.close();
  });

  it('the second of two writers on one log (the lock deleted by hand) is refused, and never overwrites the first one\'s lines', async () => {
    const { dir, log, store, f } = await seeded();
    await unlink(join(dir, 'upgrades', 'u1', 'writer.lock'));
    const second = new JsonFileStore({ directory: dir });
    const g = new EventFactory('u1');
    g.batch(4);
    // The second store opens the log at seq 4 and appends seq 5; the first, still at seq 4 in memory,
    // would write its seq 5 at the same offset, over the second's line.
    const mine = g.batch(1);
    await second.append('u1', mine, 4, g.state!);
    const before = await readFile(log);
    // Its lock, replaced by the second's, tells it (naming writer.lock); failing that, the log grew.
    await expect(store.append('u1', f.batch(1), 4, f.state!)).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining(join(dir, 'upgrades', 'u1')) });
    expect((await readFile(log)).equals(before)).toBe(true);
    const events = [];
    for await (const e of second.readEvents('u1', 0)) events.push(e);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(events[4]!.eventId).toBe(mine[0]!.eventId);
    await second.close();
    await store.close();
  });

  it('an untouched log still takes appends, and the writer opens again after release()', async () => {
    const { log, store, f } = await seeded(3);
    for (let i = 0; i < 5; i++) await add(store, f, 2);
    await store.release('u1');
    await writeFile(log, await readFile(log)); // same bytes, same inode
    await store.append('u1', f.batch(1), 14, f.state!);
    expect((await store.load('u1'))?.lastSeq).toBe(15);
    await store.close();
  });
});

describe('the writer lock deleted under a live writer', () => {
  it('refuses the next append with CONFLICT naming the lock file, and writes nothing', async () => {
    const { dir, log, store, f } = await seeded();
    const lock = join(dir, 'upgrades', 'u1', 'writer.lock');
    await unlink(lock);
    const before = await readFile(log);
    await expect(store.append('u1', f.batch(1), 4, f.state!)).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining(lock), context: expect.objectContaining({ lock }) });
    expect((await readFile(log)).equals(before)).toBe(true);
    // A second store takes the lock and goes on from seq 4; the first one never writes again.
    const second = new JsonFileStore({ directory: dir });
    const g = new EventFactory('u1');
    g.batch(4);
    await second.append('u1', g.batch(1), 4, g.state!);
    const h = new EventFactory('u1');
    h.batch(4);
    await expect(store.append('u1', h.batch(1), 4, h.state!)).rejects.toMatchObject({ code: 'CONFLICT' });
    const seqs = [];
    for await (const e of second.readEvents('u1', 0)) seqs.push(e.seq);
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
    await second.close();
    await store.close();
  });

  it('refuses once another writer\'s lock was put in its place, before that writer wrote', async () => {
    const { dir, log, store, f } = await seeded();
    await unlink(join(dir, 'upgrades', 'u1', 'writer.lock'));
    const second = new JsonFileStore({ directory: dir });
    await second.acquire('u1');
    const before = await readFile(log);
    await expect(store.append('u1', f.batch(1), 4, f.state!)).rejects.toMatchObject({ code: 'CONFLICT' });
    expect((await readFile(log)).equals(before)).toBe(true);
    const g = new EventFactory('u1');
    g.batch(4);
    await second.append('u1', g.batch(1), 4, g.state!);
    await second.close();
    await store.close();
  });
});

describe('lines removed from the middle of the log', () => {
  it('readEvents after a seq the shortened log counts up to reports the damage, never an empty tail', async () => {
    const { dir, log, store, f } = await seeded();
    for (let i = 0; i < 6; i++) await add(store, f, 1);
    await store.close();
    const lines = (await readFile(log, 'utf8')).split('\n');
    lines.splice(6, 2); // seq 7 and 8 gone: the log holds seq 1..6, 9, 10 on 8 lines
    await writeFile(log, lines.join('\n'));
    const reader = new JsonFileStore({ directory: dir });
    const read = async (after: number): Promise<number[]> => {
      const out = [];
      for await (const e of reader.readEvents('u1', after)) out.push(e.seq);
      return out;
    };
    const expected = { code: 'DATA_CORRUPTED', message: expect.stringContaining(log), context: expect.objectContaining({ file: log, line: 8 }) };
    // A follower that had read up to seq 8 would otherwise see nothing new, for ever.
    await expect(read(8)).rejects.toMatchObject(expected);
    await expect(read(6)).rejects.toMatchObject({ code: 'DATA_CORRUPTED', context: expect.objectContaining({ line: 7 }) });
    await expect(read(20)).rejects.toMatchObject(expected);
    // A sound log read past its end: nothing, as before.
    await writeFile(log, (await readFile(log, 'utf8')).split('\n').slice(0, 6).join('\n') + '\n');
    expect(await read(6)).toEqual([]);
    expect(await read(20)).toEqual([]);
    expect(await read(3)).toEqual([4, 5, 6]);
    await reader.close();
  });
});

describe('the log cut back under a live writer, read in the writer\'s own store', () => {
  it('load() and readEvents() report the loss instead of the older state', async () => {
    const { log, store } = await seeded();
    const full = await readFile(log);
    await truncate(log, full.indexOf(0x0a) + 1); // only seq 1 left of the 4 acknowledged
    const expected = { code: 'DATA_CORRUPTED', message: expect.stringContaining(log), context: expect.objectContaining({ upgradeId: 'u1', file: log }) };
    await expect(store.load('u1')).rejects.toMatchObject(expected);
    const read = async (): Promise<number[]> => {
      const out = [];
      for await (const e of store.readEvents('u1', 0)) out.push(e.seq);
      return out;
    };
    await expect(read()).rejects.toMatchObject(expected);
    await store.close();
  });
});
