// The legacy import's merge and a legacy delete cut short by a file it cannot move, against real
// files. (Found by a review of the first fixes on 2026-11-29; the delete tests failed before the fix.)
import type * as FsPromises from 'node:fs/promises';
import { afterAll, describe, expect, it, vi } from 'vitest';

/** When set, moving the log (or the snapshot) into a `~deleted-*` folder fails as Windows does when another process (a reader, an antivirus scanner) has it open. */
const refuse = { logRename: false, snapshotRename: false };
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof FsPromises>();
  return {
    ...real,
    rename: async (from: string, to: string) => {
      const file = String(from).endsWith('events.jsonl') ? 'log' : String(from).endsWith('snapshot.json') ? 'snapshot' : undefined;
      if (((file === 'log' && refuse.logRename) || (file === 'snapshot' && refuse.snapshotRename)) && String(to).includes('~deleted-')) {
        throw Object.assign(new Error(`EBUSY: resource busy or locked, rename '${from}'`), { code: 'EBUSY' });
      }
      return real.rename(from, to);
    },
  };
});

const { copyFile, mkdir, readdir, utimes } = await import('node:fs/promises');
const { dirname, join } = await import('node:path');
const { fileURLToPath } = await import('node:url');
const { ProgressTracker } = await import('@progress/core');
const { JsonFileStore, importLegacyUpgrade } = await import('../src/index.js');
const { removeTempDirs, tempDir } = await import('./helpers.js');

const here = dirname(fileURLToPath(import.meta.url));
afterAll(removeTempDirs);

/** A legacy file of `tasks` tasks with `perTask` recorded events each, each task's in time order, the tasks' interleaved. */
function legacyDoc(tasks: number, perTask: number, stamp: (task: number, event: number) => number): Record<string, unknown> {
  const py = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '+00:00');
  const all: Record<string, unknown> = {};
  for (let i = 0; i < tasks; i++) {
    all[`t${i}`] = {
      task_id: `t${i}`, task_name: `Node ${i}`, task_type: 'upgrade_step', parent_task_id: null, status: 'in_progress',
      started_at: py(stamp(i, 0)), completed_at: null, percentage: 50.0, total_steps: null, completed_steps: 0,
      events: Array.from({ length: perTask }, (_, j) => ({
        event_id: `e-${i}-${j}`, timestamp: py(stamp(i, j)), task_id: `t${i}`, task_type: 'upgrade_step',
        status: 'in_progress', message: j === 0 ? 'Task started' : `Step ${j}`, details: {}, percentage: j === 0 ? 0.0 : 50.0,
      })),
    };
  }
  return { upgrade_id: 'big', plan_id: 'p', cluster_name: 'c', status: 'in_progress', started_at: '2025-10-20 05:00:00+00:00', current_phase: 'Nodes', tasks: all, metadata: {} };
}

describe("legacy import: the merge of the tasks' events", () => {
  it('gives the order of a stable sort by time when each task is in time order (many tasks, ties included)', () => {
    // Times from a small range, so that many events tie across tasks; within a task they never go back.
    let seed = 7;
    const random = (): number => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const base = Date.parse('2025-10-20T05:00:00Z');
    const times = new Map<string, number>();
    const doc = legacyDoc(300, 4, (i, j) => {
      const key = `${i}/${j}`;
      if (!times.has(key)) times.set(key, j === 0 ? base + Math.floor(random() * 50) * 1000 : times.get(`${i}/${j - 1}`)! + Math.floor(random() * 20) * 1000);
      return times.get(key)!;
    });
    const events = importLegacyUpgrade(doc, 'big', 'upgrade_big.json', new Date(0).toISOString());
    const recorded = events.filter((e) => e.eventId.startsWith('e-')).map((e) => e.eventId);
    // The expected order: by time, ties in the order the tasks and their events were read.
    const expected = [...times.entries()]
      .map(([key, at], read) => ({ id: `e-${key.replace('/', '-')}`, at, read }))
      .sort((a, b) => a.at - b.at || a.read - b.read)
      .map((e) => e.id);
    expect(recorded).toEqual(expected);
  });
});

describe('a delete of a legacy upgrade that fails after it moved the snapshot out', () => {
  it('leaves no copy of the upgrade behind in a ~deleted-* folder once the upgrade is deleted', async () => {
    const dir = await tempDir('legacy-delete-ebusy');
    await mkdir(join(dir, 'progress'));
    await copyFile(join(here, 'fixtures', 'upgrade_steps-1.json'), join(dir, 'progress', 'upgrade_steps-1.json'));
    // A snapshot on every append, so that the upgrade's folder holds one.
    const store = new JsonFileStore({ directory: dir, snapshotEvery: 1 });
    const tracker = await ProgressTracker.open({ upgradeId: 'steps-1', planId: 'p', clusterName: 'c', store, metadata: {} });
    await tracker.setCurrentPhase('secret-phase-name');
    await tracker.completeUpgrade();
    await tracker.close();
    expect(await readdir(join(dir, 'upgrades', 'steps-1'))).toContain('snapshot.json');

    refuse.logRename = true;
    try {
      await expect(store.delete('steps-1')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    } finally {
      refuse.logRename = false;
    }
    // The upgrade is still there as acknowledged (good)...
    expect(await store.load('steps-1')).toMatchObject({ status: 'completed', currentPhase: 'secret-phase-name' });
    // ...and deleted by the next try (or retention).
    expect(await store.delete('steps-1')).toBe(true);
    expect(await store.load('steps-1')).toBeUndefined();
    await store.close();

    // What is left on disk: the marker folder, and no ~deleted-steps-1-* folder (the first attempt's
    // used to stay, with the deleted upgrade's snapshot in it, for good).
    const left = (await readdir(join(dir, 'upgrades'))).filter((name) => name.startsWith('~deleted-'));
    const copies: string[] = [];
    for (const grave of left) for (const f of await readdir(join(dir, 'upgrades', grave))) copies.push(`${grave}/${f}`);
    expect(copies).toEqual([]);
  });

  it('leaves the snapshot in the upgrade\'s folder when the delete fails (opening stays snapshot + tail)', async () => {
    const dir = await tempDir('legacy-delete-snap');
    await mkdir(join(dir, 'progress'));
    await copyFile(join(here, 'fixtures', 'upgrade_steps-1.json'), join(dir, 'progress', 'upgrade_steps-1.json'));
    const store = new JsonFileStore({ directory: dir, snapshotEvery: 1 });
    const tracker = await ProgressTracker.open({ upgradeId: 'steps-1', planId: 'p', clusterName: 'c', store });
    await tracker.completeUpgrade();
    await tracker.close();
    refuse.logRename = true;
    try {
      await expect(store.delete('steps-1')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    } finally {
      refuse.logRename = false;
    }
    await store.close();
    // (The failed delete took the snapshot away: every open replayed the whole log until the next
    // multiple of snapshotEvery, 1,000 events by default, wrote a new one.)
    expect(await readdir(join(dir, 'upgrades', 'steps-1'))).toContain('snapshot.json');
  });

  it('leaves the upgrade as acknowledged, its log in place, when the snapshot cannot be moved out', async () => {
    // The snapshot leaves first: the log, which holds the whole upgrade, must not be out of the folder
    // (and removed with the ~deleted-* folder) when the snapshot stays.
    const dir = await tempDir('legacy-delete-snap-busy');
    await mkdir(join(dir, 'progress'));
    await copyFile(join(here, 'fixtures', 'upgrade_steps-1.json'), join(dir, 'progress', 'upgrade_steps-1.json'));
    const store = new JsonFileStore({ directory: dir, snapshotEvery: 1 });
    const tracker = await ProgressTracker.open({ upgradeId: 'steps-1', planId: 'p', clusterName: 'c', store });
    await tracker.completeUpgrade();
    const lastSeq = tracker.progress.lastSeq;
    await tracker.close();
    refuse.snapshotRename = true;
    try {
      await expect(store.delete('steps-1')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    } finally {
      refuse.snapshotRename = false;
    }
    await store.close();
    expect((await readdir(join(dir, 'upgrades', 'steps-1'))).sort()).toEqual(expect.arrayContaining(['events.jsonl', 'snapshot.json']));
    const again = new JsonFileStore({ directory: dir });
    expect(await again.load('steps-1')).toMatchObject({ status: 'completed', lastSeq });
    await again.close();
  });

  it("a later delete removes what an earlier one left (a crash before its removal), of that upgrade's id only", async () => {
    const dir = await tempDir('legacy-delete-graves');
    await mkdir(join(dir, 'upgrades', '~deleted-u-0badc0de'), { recursive: true }); // u's, a crash ago
    await mkdir(join(dir, 'upgrades', '~deleted-u-x-0badc0de')); // another id's ("u-x")
    await mkdir(join(dir, 'upgrades', '~deleted-u-1badc0de')); // u's, a delete running now elsewhere
    const old = new Date(Date.now() - 3_600_000);
    for (const name of ['~deleted-u-0badc0de', '~deleted-u-x-0badc0de']) await utimes(join(dir, 'upgrades', name), old, old);
    const store = new JsonFileStore({ directory: dir });
    const tracker = await ProgressTracker.open({ upgradeId: 'u', planId: 'p', clusterName: 'c', store });
    await tracker.close();
    expect(await store.delete('u')).toBe(true);
    await store.close();
    expect((await readdir(join(dir, 'upgrades'))).sort()).toEqual(['~deleted-u-1badc0de', '~deleted-u-x-0badc0de']);
  });
});
