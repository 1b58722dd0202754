// `watchStore` on a folder whose upgrade is deleted and created again between two of its polls, the
// poll held until the new run is in place (in process: the watcher's reads wait on a gate). Each of
// the two marks of a run must tell the new one: its createdAt (the first event's timestamp) before
// the first poll read the run's first event, and that event's id for a run created within the same
// millisecond as the one held.
import { afterAll, describe, expect, it } from 'vitest';
import type { ProgressEvent, ProgressStore, UpgradeProgress } from '@progress/core';
import { JsonFileStore, createProgressTracker } from '../src/index.js';
import { watchStore } from '../src/cli/watch.js';
import { LiveView } from '../src/cli/terminal.js';
import { Capture, cleanupTempDirs, tempDir, until } from './helpers.js';

afterAll(() => cleanupTempDirs());

const seqsOf = (text: string, id: string): number[] => [...text.matchAll(new RegExp(`#(\\d+) ${id} `, 'g'))].map((m) => Number(m[1]));

/** A run of `id` in `dir`, on the clock `at`: started, with one task advanced `steps` times. */
async function run(dir: string, id: string, at: number, steps: number): Promise<number> {
  const t = await createProgressTracker({ upgradeId: id, planId: 'p', clusterName: 'c', storage: { json: dir }, now: () => at });
  await t.startUpgrade();
  await t.addTask('a', 'A');
  for (let i = 1; i <= steps; i++) await t.updateTaskProgress('a', i);
  await t.close();
  return t.progress.lastSeq;
}

/** The folder's store as the watcher sees it, its reads of events waiting while `hold()` is in force. */
function gatedStore(dir: string) {
  const real = new JsonFileStore({ directory: dir });
  let gate: Promise<void> | undefined;
  let open: () => void = () => {};
  let reads = 0;
  const store = {
    load: (id: string) => real.load(id),
    append: real.append.bind(real),
    async *readEvents(...args: Parameters<JsonFileStore['readEvents']>): AsyncIterable<ProgressEvent> {
      reads++;
      await gate;
      yield* real.readEvents(...args);
    },
    list: real.list.bind(real),
    delete: real.delete.bind(real),
    info: real.info.bind(real),
    close: () => real.close(),
  } as unknown as ProgressStore;
  return {
    store,
    get reads() {
      return reads;
    },
    hold() {
      gate = new Promise((resolve) => (open = resolve));
    },
    release() {
      gate = undefined;
      open();
    },
  };
}

/** Replaces the run of `id` in `dir` (deleted, then a longer one created on the clock `at`) while the watcher's reads wait. */
async function replace(dir: string, id: string, at: number, steps: number): Promise<number> {
  const writer = new JsonFileStore({ directory: dir });
  expect(await writer.delete(id)).toBe(true);
  await writer.close();
  return run(dir, id, at, steps);
}

describe('watchStore <folder>: a run replaced between two polls', () => {
  for (const [when, sameClock] of [
    ['before the first poll, on a later clock (told by its createdAt)', false],
    ['after a poll read the run held, within the same millisecond (told by its first event id)', true],
  ] as const) {
    it(`is followed from its start, not folded onto the run held: ${when}`, async () => {
      const dir = tempDir('watch-replaced');
      const id = 'replaced';
      const at = Date.parse('2026-03-04T05:06:07.000Z');
      await run(dir, id, at, 2);
      const gated = gatedStore(dir);
      if (!sameClock) gated.hold();
      const out = new Capture();
      const ac = new AbortController();
      let ended: UpgradeProgress | undefined | 'running' = 'running';
      const watching = watchStore(gated.store, id, { view: new LiveView({ out: out as unknown as NodeJS.WriteStream }), signal: ac.signal, follow: true, pollMs: 20 }).then((state) => (ended = state));
      try {
        if (sameClock) {
          // Two polls done (each reads the events after the seq held, then the run's first event): the run's id is known.
          await until('two polls', () => gated.reads >= 4, () => out.text, 20_000);
          gated.hold();
        } else await until('the first poll', () => gated.reads >= 1, () => out.text, 20_000);
        const lastSeq = await replace(dir, id, sameClock ? at : at + 60_000, 6);
        const shown = out.text.length;
        gated.release();
        await until(`the new run to seq ${lastSeq}`, () => seqsOf(out.text.slice(shown), id).includes(lastSeq), () => out.text, 20_000);
        const after = out.text.slice(shown);
        expect(after).toContain(`upgrade "${id}" was created again; following the new run from its start`);
        expect(seqsOf(after.slice(after.indexOf('created again')), id)).toEqual(Array.from({ length: lastSeq }, (_, i) => i + 1));
      } finally {
        gated.release();
        ac.abort();
        await watching;
        await gated.store.close();
      }
      expect(ended).not.toBe('running');
    }, 60_000);
  }
});
