import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker, isProgressError, replayEvents, type ProgressEvent, type TaskProgress, type UpgradeProgress } from '../src/index.js';

// Random command sequences against the engine. Invariants: replaying the stored events gives exactly
// the live (and durable) state; seq is 1..n without gaps; percentages stay in 0..100; a command that
// throws changes nothing and stores nothing.

// Integer-like ids ('7', '10', '2') are listed first, in numeric order: a task added before its siblings.
const taskId = fc.oneof({ weight: 12, arbitrary: fc.constantFrom('a', 'b', 'c', 'd', 'e', '7', '10', '2') }, { weight: 1, arbitrary: fc.constantFrom('ghost', '../x', '') });
const pct = fc.oneof({ weight: 8, arbitrary: fc.double({ min: 0, max: 100, noNaN: true }) }, { weight: 1, arbitrary: fc.constantFrom(Number.NaN, -1, 101, 0, 100) });
const rare = <T>(arb: fc.Arbitrary<T>) => ({ weight: 1, arbitrary: arb });
const often = <T>(arb: fc.Arbitrary<T>) => ({ weight: 6, arbitrary: arb });

const command = fc.oneof(
  often(fc.record({ kind: fc.constant('startUpgrade' as const) })),
  often(fc.record({ kind: fc.constant('setCurrentPhase' as const), phase: fc.constantFrom('Plan', 'Nodes', '') })),
  often(fc.record({ kind: fc.constantFrom('pauseUpgrade' as const, 'resumeUpgrade' as const) })),
  rare(fc.record({ kind: fc.constantFrom('completeUpgrade' as const, 'failUpgrade' as const, 'cancelUpgrade' as const) })),
  often(fc.record({
    kind: fc.constant('addTask' as const),
    taskId,
    parent: fc.option(taskId, { nil: undefined }),
    weight: fc.option(fc.constantFrom(1, 2, 0.5, 0, -1), { nil: undefined }),
    totalSteps: fc.option(fc.constantFrom(1, 3, 10, 0), { nil: undefined }),
  })),
  often(fc.record({ kind: fc.constant('addTasks' as const), ids: fc.array(taskId, { minLength: 0, maxLength: 3 }) })),
  often(fc.record({ kind: fc.constantFrom('startTask' as const, 'completeTask' as const, 'retryTask' as const, 'skipTask' as const, 'cancelTask' as const), taskId })),
  often(fc.record({ kind: fc.constant('failTask' as const), taskId, error: fc.constantFrom('boom', 'boom', '') })),
  { weight: 20, arbitrary: fc.record({ kind: fc.constant('updateTaskProgress' as const), taskId, pct, details: fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }) }) },
  often(fc.record({ kind: fc.constant('advanceTask' as const), taskId, steps: fc.option(fc.integer({ min: -1, max: 12 }), { nil: undefined }) })),
);
type Command = typeof command extends fc.Arbitrary<infer C> ? C : never;

function run(t: ProgressTracker, c: Command): Promise<unknown> {
  switch (c.kind) {
    case 'startUpgrade':
      return t.startUpgrade();
    case 'setCurrentPhase':
      return t.setCurrentPhase(c.phase);
    case 'pauseUpgrade':
      return t.pauseUpgrade();
    case 'resumeUpgrade':
      return t.resumeUpgrade();
    case 'completeUpgrade':
      return t.completeUpgrade();
    case 'failUpgrade':
      return t.failUpgrade('failed');
    case 'cancelUpgrade':
      return t.cancelUpgrade();
    case 'addTask':
      return t.addTask(c.taskId, `Task ${c.taskId}`, 'upgrade_step', { parentTaskId: c.parent, weight: c.weight, totalSteps: c.totalSteps });
    case 'addTasks':
      return t.addTasks(c.ids.map((id) => ({ taskId: id, taskName: `Task ${id}` })));
    case 'startTask':
    case 'completeTask':
    case 'retryTask':
    case 'skipTask':
    case 'cancelTask':
      return t[c.kind](c.taskId);
    case 'failTask':
      return t.failTask(c.taskId, c.error);
    case 'updateTaskProgress':
      return t.updateTaskProgress(c.taskId, c.pct, undefined, c.details);
    case 'advanceTask':
      return t.advanceTask(c.taskId, c.steps === undefined ? {} : { completedSteps: c.steps });
  }
}

async function stored(store: MemoryStore, id: string): Promise<ProgressEvent[]> {
  const out: ProgressEvent[] = [];
  for await (const e of store.readEvents(id, 0)) out.push(e);
  return out;
}

/**
 * The weighted mean of `tasks` summed one by one (the README's rule, skipped and cancelled left
 * out), or `undefined` when none counts. The reducer keeps these sums up to date event by event;
 * this sums them afresh, so a sum it failed to update shows.
 */
function naiveMean(tasks: readonly TaskProgress[]): number | undefined {
  let sum = 0;
  let weights = 0;
  for (const task of tasks) {
    if (task.status === 'skipped' || task.status === 'cancelled') continue;
    sum += task.percentage * task.weight;
    weights += task.weight;
  }
  return weights === 0 ? undefined : sum / weights;
}

function checkPercentages(state: Readonly<UpgradeProgress>): void {
  expect(state.overallPercentage).toBeGreaterThanOrEqual(0);
  expect(state.overallPercentage).toBeLessThanOrEqual(100);
  const tasks = Object.values(state.tasks);
  for (const task of tasks) {
    expect(task.percentage).toBeGreaterThanOrEqual(0);
    expect(task.percentage).toBeLessThanOrEqual(100);
    // A parent is the mean of its children (kept when none counts), 100 once completed. Summed in
    // another order the mean may round the other way at a tie: 0.01 apart at most.
    const mean = naiveMean(tasks.filter((t) => t.parentTaskId === task.taskId));
    if (task.status === 'completed') expect(task.percentage).toBe(100);
    else if (mean !== undefined) expect(Math.abs(task.percentage - mean), `task ${task.taskId}`).toBeLessThanOrEqual(0.005 + 1e-9);
  }
  const overall = state.status === 'completed' ? 100 : (naiveMean(tasks.filter((t) => t.parentTaskId === null)) ?? 0);
  expect(Math.abs(state.overallPercentage - overall), 'overall').toBeLessThanOrEqual(0.005 + 1e-9);
}

const json = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

describe('ProgressTracker properties', () => {
  it('replaying the stored events gives the live state; seqs have no gaps; percentages stay in range; failures change nothing', async () => {
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.array(fc.array(command, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 60, size: 'max' }), async (prelude, groups) => {
        const store = new MemoryStore({ snapshotEvery: 5 });
        const t = await ProgressTracker.open({ upgradeId: 'prop', planId: 'p', clusterName: 'c', store });
        if (prelude) {
          await t.startUpgrade();
          await t.addTasks([
            { taskId: 'a', taskName: 'A', totalSteps: 3 },
            { taskId: 'b', taskName: 'B', parentTaskId: 'a', weight: 2 },
            { taskId: 'c', taskName: 'C', parentTaskId: 'a' },
          ]);
        }
        for (const group of groups) {
          if (group.length === 1) {
            // One command at a time: a failure must leave state and store exactly as they were.
            const before = json(t.progress);
            const count = (await stored(store, 'prop')).length;
            try {
              await run(t, group[0]!);
            } catch (err) {
              expect(isProgressError(err), String(err)).toBe(true);
              expect(json(t.progress)).toEqual(before);
              expect((await stored(store, 'prop')).length).toBe(count);
            }
          } else {
            // Several at once: they are validated in call order against the live state.
            const results = await Promise.allSettled(group.map((c) => run(t, c)));
            for (const r of results) if (r.status === 'rejected') expect(isProgressError(r.reason), String(r.reason)).toBe(true);
          }
          checkPercentages(t.progress);
        }
        await t.flush();
        const events = await stored(store, 'prop');
        expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
        expect(json(replayEvents(events))).toEqual(json(t.progress));
        expect(json(t.durableProgress)).toEqual(json(t.progress));
        expect(json(await store.load('prop'))).toEqual(json(t.progress));
        await t.close();
      }),
      { numRuns: 150 },
    );
  });
});
