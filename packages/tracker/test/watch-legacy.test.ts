// `watchStore` on an upgrade a JSON folder holds only as a file of the old Python module, which that
// module may still be rewriting while it is watched (in process: the races are staged on the file).
import { mkdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { UpgradeProgress } from '@progress/core';
import { JsonFileStore } from '../src/index.js';
import { watchStore } from '../src/cli/watch.js';
import { LiveView } from '../src/cli/terminal.js';
import { Capture, cleanupTempDirs, tempDir } from './helpers.js';

afterAll(() => cleanupTempDirs());

/** A file of the old module: one task, in progress or completed, padded with spaces to `size` bytes. */
function legacyText(id: string, status: 'in_progress' | 'completed', size?: number): string {
  const done = status === 'completed';
  const doc = {
    upgrade_id: id,
    plan_id: 'p',
    cluster_name: 'c',
    status,
    started_at: '2025-10-20 05:25:00.000000+00:00',
    completed_at: done ? '2025-10-20 05:26:00.000000+00:00' : null,
    duration: null,
    overall_percentage: done ? 100 : 40,
    current_phase: null,
    tasks: {
      a: {
        task_id: 'a',
        task_name: 'A',
        task_type: 'upgrade_step',
        parent_task_id: null,
        status,
        started_at: '2025-10-20 05:25:00.100000+00:00',
        completed_at: done ? '2025-10-20 05:25:59.000000+00:00' : null,
        duration: null,
        percentage: done ? 100 : 40,
        current_step: null,
        total_steps: null,
        completed_steps: 0,
        error_message: null,
        retry_count: 0,
        events: [],
      },
    },
    metadata: {},
  };
  const text = JSON.stringify(doc);
  return size === undefined ? text : text.padEnd(size, ' ');
}

/** Runs `watchStore` on a folder, its lines written into `out`; `stop()` ends it and gives what it resolved with. */
function watchFolder(dir: string, id: string, onError?: (err: unknown) => void) {
  const out = new Capture();
  const ac = new AbortController();
  const store = new JsonFileStore({ directory: dir });
  let ended: UpgradeProgress | undefined | 'running' = 'running';
  const watching = watchStore(store, id, { view: new LiveView({ out: out as unknown as NodeJS.WriteStream }), signal: ac.signal, pollMs: 20 }).then(
    (state) => (ended = state),
    (err: unknown) => {
      if (!onError) throw err;
      onError(err);
      return undefined;
    },
  );
  return {
    out,
    get ended() {
      return ended;
    },
    async stop() {
      ac.abort();
      const state = await watching;
      await store.close();
      return state;
    },
  };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A folder for upgrade `id` held as a file of the old module: `<dir>/progress/upgrade_<id>.json` (not written yet). */
function legacyFolder(label: string, id: string): { dir: string; file: string } {
  const dir = tempDir(label);
  mkdirSync(join(dir, 'progress'));
  return { dir, file: join(dir, 'progress', `upgrade_${id}.json`) };
}

describe('watchStore on a legacy file the old module rewrites within one tick of the file system clock', () => {
  it('reads it again while its mtime is too recent to tell a rewrite of the same size, so the last rewrite is not missed', async () => {
    const id = 'racy';
    const { dir, file } = legacyFolder('watch-legacy-racy', id);
    const running = legacyText(id, 'in_progress');
    const completed = legacyText(id, 'completed');
    const size = Math.max(running.length, completed.length);
    // A file system whose mtimes have a granularity of a second (HFS+, ext3, NFS, FAT's two): every
    // write within the same second gives the file the same mtime, as utimes() sets it here.
    const tick = Math.floor(Date.now() / 1000);
    writeFileSync(file, legacyText(id, 'in_progress', size));
    utimesSync(file, tick, tick);
    const before = statSync(file);
    const w = watchFolder(dir, id);
    try {
      // Read and shown in progress, polled a few times.
      await pause(200);
      expect(w.ended).toBe('running');
      // The old module's last rewrite (the upgrade completed) within the same second, in place, of
      // the same size: size, mtime and inode as they were when it was last read.
      writeFileSync(file, legacyText(id, 'completed', size));
      utimesSync(file, tick, tick);
      const after = statSync(file);
      expect([after.ino, after.size, after.mtimeMs]).toEqual([before.ino, before.size, before.mtimeMs]);
      for (let i = 0; i < 150 && w.ended === 'running'; i++) await pause(20);
      // It kept the state it read first, and waited for a change that had already come.
      expect(w.ended === 'running' ? 'still running' : w.ended?.status).toBe('completed');
    } finally {
      await w.stop();
    }
  });
});

describe('watchStore started while the old module rewrites its file (truncated, then written)', () => {
  it.each([
    // The moment between the old module's truncate and its write, in the second the file system
    // stamps (as on one that keeps whole seconds): read again while too recent to tell.
    ['once written, rather than failing on the empty file it found', 'torn', true, 100],
    // Its mtime in ms (no tick to wait out): the old module's writer, descheduled on a loaded machine
    // before its write, holds it empty for longer than a tick (some twenty-five reads of it).
    ['while its writer stalls between the truncate and the write (an empty file for 500 ms), rather than calling it damaged', 'stalled', false, 500],
  ] as const)('reads it again %s', async (_what, id, wholeSecond, emptyMs) => {
    const { dir, file } = legacyFolder(`watch-legacy-${id}`, id);
    writeFileSync(file, '');
    if (wholeSecond) {
      const tick = Math.floor(Date.now() / 1000);
      utimesSync(file, tick, tick);
    }
    let failed: unknown;
    const w = watchFolder(dir, id, (err) => (failed = err));
    try {
      await pause(emptyMs);
      // It ended with "legacy file ... is not valid JSON", as for a file that stays damaged.
      expect(failed).toBeUndefined();
      writeFileSync(file, legacyText(id, 'completed'));
      for (let i = 0; i < 150 && w.ended === 'running' && failed === undefined; i++) await pause(20);
      expect(failed).toBeUndefined();
      expect(w.ended === 'running' ? 'still running' : w.ended?.status).toBe('completed');
    } finally {
      await w.stop();
    }
  });

  it('fails on a file damaged moments ago once it has stayed so past the time a stalled rewrite is given', async () => {
    const id = 'damaged-now';
    const { dir, file } = legacyFolder('watch-legacy-damaged-now', id);
    writeFileSync(file, '{"upgrade_id": "damaged-now", ');
    let failed: unknown;
    const w = watchFolder(dir, id, (err) => (failed = err));
    for (let i = 0; i < 400 && failed === undefined; i++) await pause(20);
    await w.stop();
    expect((failed as Error | undefined)?.message).toMatch(/legacy file .* is not valid JSON/);
  });

  it('still fails at once on a file that stays damaged', async () => {
    const id = 'damaged';
    const { dir, file } = legacyFolder('watch-legacy-damaged', id);
    writeFileSync(file, '{"upgrade_id": "damaged", ');
    utimesSync(file, 1_600_000_000, 1_600_000_000);
    let failed: unknown;
    const w = watchFolder(dir, id, (err) => (failed = err));
    for (let i = 0; i < 150 && failed === undefined; i++) await pause(20);
    await w.stop();
    expect((failed as Error | undefined)?.message).toMatch(/legacy file .* is not valid JSON/);
  });
});

describe('watchStore on a legacy file whose writer stalls mid-rewrite while it is watched', () => {
  it('says no failure while the half-written file is that young, and shows the file once written', async () => {
    const id = 'stalled-watched';
    const { dir, file } = legacyFolder('watch-legacy-stalled-watched', id);
    writeFileSync(file, legacyText(id, 'in_progress'));
    const w = watchFolder(dir, id);
    try {
      for (let i = 0; i < 150 && !w.out.text.includes('in_progress'); i++) await pause(20);
      expect(w.out.text).toContain('in_progress');
      // The old module's json.dump, descheduled after its first chunk: half the file, for 500 ms.
      const whole = legacyText(id, 'completed');
      writeFileSync(file, whole.slice(0, whole.length >> 1));
      await pause(500);
      expect(w.out.text).not.toContain('read failed');
      expect(w.ended).toBe('running');
      writeFileSync(file, whole);
      for (let i = 0; i < 150 && w.ended === 'running'; i++) await pause(20);
      expect(w.ended === 'running' ? 'still running' : w.ended?.status).toBe('completed');
      expect(w.out.text).not.toContain('read failed');
    } finally {
      await w.stop();
    }
  });
});

describe('watchStore on a legacy file that is damaged while watched, and stays so', () => {
  it('says the failure once, not at every poll; again when it changes, and after a read that worked', async () => {
    const id = 'rotting';
    const { dir, file } = legacyFolder('watch-legacy-rotting', id);
    /** Writes the file, its mtime `at` seconds (old enough not to be read again as too recent). */
    let at = 1_600_000_000;
    const write = (text: string) => {
      writeFileSync(file, text);
      utimesSync(file, ++at, at);
    };
    const failures = (text: string) => text.split('\n').filter((line) => line.includes('read failed'));
    /** Polls (every 20 ms) for `ms`, then gives the lines saying a read failed. */
    const after = async (ms: number) => {
      await pause(ms);
      return failures(w.out.text);
    };
    write(legacyText(id, 'in_progress'));
    const w = watchFolder(dir, id);
    try {
      // Read and shown (in progress), polled a few times.
      expect(await after(200)).toEqual([]);
      expect(w.ended).toBe('running');
      write('{"upgrade_id": "rotting", ');
      // Some thirty polls: one line, saying it keeps trying.
      const once = await after(600);
      expect(once).toHaveLength(1);
      expect(once[0]).toMatch(/read failed \(.*legacy file .* is not valid JSON.*\); retrying every 0\.02 s until it reads/);
      // Damaged otherwise: said again, once.
      write('[]');
      const changed = await after(600);
      expect(changed).toHaveLength(2);
      expect(changed[1]).not.toBe(changed[0]);
      // Read again: said, and a failure after that is said again.
      write(legacyText(id, 'in_progress'));
      for (let i = 0; i < 150 && !w.out.text.includes('reads again'); i++) await pause(20);
      expect(w.out.text).toContain(`upgrade "${id}" reads again; following on`);
      // The same damage as before the read that worked.
      write('[]');
      const again = await after(600);
      expect(again).toHaveLength(3);
      expect(again[2]).toBe(again[1]);
      expect(w.out.text.split('reads again')).toHaveLength(2);
      expect(w.ended).toBe('running');
    } finally {
      await w.stop();
    }
  });
});
