// The percentages an event changes (its task's ancestors', the upgrade's overall) are weighted means
// over siblings. Found by a review on 2026-12-01: each event summed every sibling again, so an event
// cost O(tasks) on a flat upgrade (or under a wide parent), and folding a history O(events x tasks):
// a legacy file of 20,000 tasks took 5 s to load, on every load() and list(), and a tracker's update
// cost ~0.2 ms more at 10,000 tasks. Counted as reads of the tasks' weights, not timed.
import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker, applyEventInPlace, replayEvents, type ProgressEvent, type UpgradeProgress } from '../src/index.js';

const UPDATES = 100;

/** The state after `n` tasks are added (under `parent` when given), and `UPDATES` progress events to fold into it. */
async function history(n: number, parent?: string): Promise<{ state: UpgradeProgress; updates: ProgressEvent[] }> {
  const store = new MemoryStore();
  const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store });
  await t.startUpgrade();
  if (parent !== undefined) await t.addTask(parent, 'Parent');
  await t.addTasks(Array.from({ length: n }, (_, i) => ({ taskId: `t${i}`, taskName: `Task ${i}`, ...(parent !== undefined ? { parentTaskId: parent } : {}) })));
  const before = t.progress.lastSeq;
  for (let k = 0; k < UPDATES; k++) await t.updateTaskProgress(`t${(k * 7919) % n}`, (k % 99) + 0.5);
  const events: ProgressEvent[] = [];
  for await (const e of store.readEvents('u1', 0)) events.push(e);
  const live = t.progress;
  await t.close();
  const state = replayEvents(events.slice(0, before))!;
  // Folded here, the rest must give the live state: the cheaper sums change no result.
  expect(replayEvents(events.slice(before), state)).toEqual(live);
  return { state, updates: events.slice(before) };
}

/** Reads of the tasks' `weight` while `updates` are folded into `state`. */
function weightReads(state: UpgradeProgress, updates: readonly ProgressEvent[]): number {
  let reads = 0;
  // Build the reducer's index of these very task objects first, then count.
  for (const task of Object.values(state.tasks)) {
    const weight = task.weight;
    Object.defineProperty(task, 'weight', {
      enumerable: true,
      get: () => {
        reads++;
        return weight;
      },
    });
  }
  const counted = reads;
  for (const e of updates) applyEventInPlace(state, e);
  return reads - counted;
}

describe('the cost of an event does not grow with the number of tasks', () => {
  it.each([
    ['top-level tasks', undefined],
    ['children of one parent', 'nodes'],
  ])('%s', async (_, parent) => {
    const n = 1_000;
    const small = await history(n, parent);
    const big = await history(4 * n, parent);
    // Prime the index (built on the first event), outside the count.
    applyEventInPlace(small.state, small.updates[0]!);
    applyEventInPlace(big.state, big.updates[0]!);
    const atN = weightReads(small.state, small.updates.slice(1));
    const at4N = weightReads(big.state, big.updates.slice(1));
    // O(1) (or O(log n)) per event: a few reads each, whatever n. Before: n per event and per mean.
    expect(atN / (UPDATES - 1)).toBeLessThan(20);
    expect(at4N).toBeLessThan(2 * atN);
  });
});

describe("a state's list() row", () => {
  it('counts the tasks of a folded state without enumerating them (the Redis store makes it on every append that adds a task)', async () => {
    // Object.keys of a record of 20,000 tasks took ~8 ms: adding tasks one by one to a RedisStore
    // cost 0.6 ms each at 2,500 tasks and 8 ms at 20,000.
    const { toSummaryRow } = await import('../src/index.js');
    const t = await ProgressTracker.open({ upgradeId: 'u2', planId: 'p', clusterName: 'c' });
    await t.addTasks(Array.from({ length: 2_000 }, (_, i) => ({ taskId: `t${i}`, taskName: `Task ${i}` })));
    const tasks = t.progress.tasks;
    let enumerations = 0;
    const { keys, values, entries } = Object;
    const spy =
      <F extends (o: object) => unknown>(f: F) =>
      (o: object) => {
        if (o === tasks) enumerations++;
        return f(o);
      };
    Object.keys = spy(keys) as typeof Object.keys;
    Object.values = spy(values) as typeof Object.values;
    Object.entries = spy(entries) as typeof Object.entries;
    let rows: number[];
    try {
      rows = Array.from({ length: 100 }, () => toSummaryRow(t.progress).totalTasks);
    } finally {
      Object.assign(Object, { keys, values, entries });
    }
    expect(rows.every((n) => n === 2_000)).toBe(true);
    expect(enumerations).toBe(0);
    // A state the reducer has not indexed (parsed from JSON) is counted.
    expect(toSummaryRow(JSON.parse(JSON.stringify(t.progress))).totalTasks).toBe(2_000);
    await t.addTask('one-more', 'One more');
    expect(toSummaryRow(t.progress).totalTasks).toBe(2_001);
    await t.close();
  });
});

describe('a task added in the middle of its siblings (an integer-like id, listed before the others)', () => {
  // Ids that look like integers come first in a tasks record, in numeric order, and the sums of a
  // mean follow that order: such a task added before its siblings moves them one place along. Each
  // such add took all their leaves again from the tasks (and re-keyed their places one by one):
  // 20,000 tasks with ids counting down took 6 s to fold, 1 s before the sums were kept in a tree.
  /** Reads of the weights of the `n` tasks there before, while tasks are added between them. */
  async function middleAdds(n: number, parent?: string): Promise<number> {
    const store = new MemoryStore();
    const t = await ProgressTracker.open({ upgradeId: 'u3', planId: 'p', clusterName: 'c', store });
    await t.startUpgrade();
    const under = parent !== undefined ? { parentTaskId: parent } : {};
    if (parent !== undefined) await t.addTask(parent, 'Parent');
    // A task whose id is not integer-like, then the even ids: the odd ones land between them.
    const even = (i: number) => String(2 * (i + 1));
    await t.addTasks([{ taskId: 'setup', taskName: 'Setup', ...under }, ...Array.from({ length: n }, (_, i) => ({ taskId: even(i), taskName: `Task ${i}`, weight: 1 + (i % 3), ...under }))]);
    for (let i = 0; i < n; i += 97) await t.updateTaskProgress(even(i), (i % 89) + 0.25);
    await t.updateTaskProgress('setup', 33.3);
    const before = t.progress.lastSeq;
    const odd = (k: number) => String(2 * ((k * 7919) % n) + 1);
    for (let k = 0; k < UPDATES; k++) await t.addTasks([{ taskId: odd(k), taskName: 'Between', weight: 1 + (k % 4), ...under }]);
    for (let k = 0; k < UPDATES; k += 7) await t.updateTaskProgress(odd(k), (k % 97) + 0.5);
    for (let i = 0; i < n; i += 101) await t.updateTaskProgress(even(i), 99.5);
    const events: ProgressEvent[] = [];
    for await (const e of store.readEvents('u3', 0)) events.push(e);
    const live = t.progress;
    await t.close();
    const state = replayEvents(events.slice(0, before))!;
    const reads = weightReads(state, events.slice(before));
    // The sums moved with the tasks: the same state, to the last bit, as the live one and a replay.
    expect(JSON.parse(JSON.stringify(state))).toEqual(JSON.parse(JSON.stringify(live)));
    expect(replayEvents(events)).toEqual(live);
    return reads;
  }

  it.each([
    ['top-level tasks', undefined],
    ['children of one parent', 'nodes'],
  ])('%s: the tasks after it are not read again', async (_, parent) => {
    // 800 and 3,200 tasks and the 100 added: no list outgrows its tree (which takes all its tasks again, once per doubling).
    const n = 800;
    const atN = await middleAdds(n, parent);
    const at4N = await middleAdds(4 * n, parent);
    // Before: every task after the new one, at each add (n per add).
    expect(atN / UPDATES).toBeLessThan(20);
    expect(at4N).toBeLessThan(2 * atN + 100);
  });
});
