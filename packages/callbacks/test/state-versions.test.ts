// The states of versions queued behind a slow callback are made in the order the queue drains: each
// from the one made before it, not by undoing every later version from the newest (which made the
// drain of a backlog of n calls cost n^2/2 steps, on the agent's event loop).
import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker, type UpgradeProgress } from '@progress/core';
import { StateHistory, walkStats, type StateVersion } from '../src/state-versions.js';

async function versions(count: number): Promise<{ versions: StateVersion[]; expected: UpgradeProgress[] }> {
  const history = new StateHistory();
  const out: StateVersion[] = [];
  const expected: UpgradeProgress[] = [];
  // As the manager records them: the live state handed to a sink, valid during handle() only.
  const sink = {
    name: 'recorder',
    handle: (_event: unknown, state: Readonly<UpgradeProgress>) => {
      out.push(history.record(state));
      expected.push(JSON.parse(JSON.stringify(state)) as UpgradeProgress);
    },
  };
  const tracker = await ProgressTracker.open({ upgradeId: 'u-versions', planId: 'p', clusterName: 'c', store: new MemoryStore(), sinks: [sink] });
  await tracker.startUpgrade();
  await tracker.addTasks(Array.from({ length: 20 }, (_, i) => ({ taskId: `t${i}`, taskName: `Task ${i}` })));
  for (let i = 0; out.length < count; i++) await tracker.updateTaskProgress(`t${i % 20}`, (i % 99) + 1);
  await tracker.close();
  return { versions: out, expected };
}

describe('StateVersion.state()', () => {
  it('drains a backlog in order with steps in proportion to it, not to its square', async () => {
    const { versions: all, expected } = await versions(2_000);
    walkStats.steps = 0;
    for (const [i, v] of all.entries()) expect(v.state().lastSeq).toBe(expected[i]!.lastSeq);
    // Each state made from the previous one: one step each (2,000); from the newest, ~2,000,000.
    expect(walkStats.steps).toBeLessThanOrEqual(all.length * 2);
  });

  it('makes the same state whatever the order asked in (in order, reversed, shuffled, twice)', async () => {
    const { versions: all, expected } = await versions(300);
    let seed = 7;
    const random = (): number => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const shuffled = all.map((v, i) => [v, i] as const).sort(() => random() - 0.5);
    const orders = [all.map((v, i) => [v, i] as const), all.map((v, i) => [v, i] as const).reverse(), shuffled, shuffled];
    for (const order of orders) {
      for (const [v, i] of order) {
        const state = v.state();
        expect(JSON.parse(JSON.stringify(state))).toEqual(expected[i]);
        expect(Object.keys(state.tasks)).toEqual(Object.keys(expected[i]!.tasks));
      }
    }
  });
});
