// The states of versions queued behind a slow callback are made in the order the queue drains: each
// from the one made before it, not by undoing every later version from the newest (which made the
// drain of a backlog of n calls cost n^2/2 steps, on the agent's event loop).
import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker, type UpgradeProgress } from '@progress/core';
import { StateHistory, walkStats, type StateCache, type StateVersion } from '../src/state-versions.js';
import { CallbackManager } from '../src/index.js';
import { deferred } from './helpers.js';

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

describe('StateVersion.state() with a callback behind and one that keeps up', () => {
  it('costs steps in proportion to the events, not to the backlog at each event', async () => {
    // A slow async callback has a backlog of 600 calls; a synchronous one reads the state of each
    // new event (the newest version) while the slow one drains its backlog, one call per event.
    const history = new StateHistory();
    const all: StateVersion[] = [];
    const lastSeqs: number[] = [];
    const made: Array<[number, number]> = [];
    let drained = 0;
    const queue: StateCache = {};
    const sink = {
      name: 'recorder',
      handle: (_event: unknown, state: Readonly<UpgradeProgress>) => {
        const version = history.record(state);
        all.push(version);
        lastSeqs.push(state.lastSeq);
        if (all.length === 600) walkStats.steps = 0;
        if (all.length <= 600) return;
        made.push([version.state().lastSeq, state.lastSeq]);
        const queued = drained++;
        // With its queue's own cache, as CallbackQueue passes it.
        made.push([all[queued]!.state(queue).lastSeq, lastSeqs[queued]!]);
      },
    };
    const tracker = await ProgressTracker.open({ upgradeId: 'u-interleaved', planId: 'p', clusterName: 'c', store: new MemoryStore(), sinks: [sink] });
    await tracker.startUpgrade();
    await tracker.addTasks(Array.from({ length: 20 }, (_, i) => ({ taskId: `t${i}`, taskName: `Task ${i}` })));
    for (let i = 0; all.length < 1_200; i++) await tracker.updateTaskProgress(`t${i % 20}`, (i % 99) + 1);
    await tracker.close();
    for (const [got, want] of made) expect(got).toBe(want);
    // A walk of the backlog once is fine; one per event (600 * 600 * 2 = 720,000) is not.
    expect(walkStats.steps).toBeLessThanOrEqual(all.length * 4);
  });
});

describe('StateVersion.state() with two callbacks behind', () => {
  it('costs each queue one step per call, wherever the other one is', async () => {
    const { versions: all, expected } = await versions(1_200);
    const first: StateCache = {};
    const second: StateCache = {};
    walkStats.steps = 0;
    for (let i = 0; i < 600; i++) {
      expect(all[i]!.state(first).lastSeq).toBe(expected[i]!.lastSeq);
      expect(all[300 + i]!.state(second).lastSeq).toBe(expected[300 + i]!.lastSeq);
    }
    // From each queue's own last state; from the state made last (the other queue's), 720,000.
    expect(walkStats.steps).toBeLessThanOrEqual(1_200 * 4);
  });
});

describe('CallbackManager: two callbacks draining their backlogs at once', () => {
  it('makes each queued state from the one its own queue made before, not from the other queue\'s', async () => {
    const manager = new CallbackManager({ timeoutMs: Infinity });
    const gateA = deferred();
    const gateB = deferred();
    const lastSeqs = { a: [] as Array<[number, number]>, b: [] as Array<[number, number]> };
    // A is behind from the first event, B from the 300th: their backlogs drain interleaved.
    manager.addEventCallback(async (e, state) => {
      if (e.seq === 1) await gateA.promise;
      lastSeqs.a.push([e.seq, state.lastSeq]);
    });
    manager.addEventCallback(async (e, state) => {
      if (e.seq === 300) await gateB.promise;
      lastSeqs.b.push([e.seq, state.lastSeq]);
    });
    const tracker = await ProgressTracker.open({ upgradeId: 'u-two-behind', planId: 'p', clusterName: 'c', store: new MemoryStore(), sinks: [manager] });
    await tracker.addTasks(Array.from({ length: 20 }, (_, i) => ({ taskId: `t${i}`, taskName: `Task ${i}` })));
    for (let i = 0; tracker.durableProgress.lastSeq < 900; i++) await tracker.updateTaskProgress(`t${i % 20}`, (i % 99) + 1);
    walkStats.steps = 0;
    gateA.resolve();
    gateB.resolve();
    await manager.flush();
    for (const seen of [lastSeqs.a, lastSeqs.b]) for (const [seq, lastSeq] of seen) expect(lastSeq).toBe(seq);
    expect(lastSeqs.a).toHaveLength(900);
    // One step or so per drained call (about 1,500); from the other queue's state, some 900 per call.
    expect(walkStats.steps).toBeLessThanOrEqual(900 * 4);
    await tracker.close();
    await manager.close();
  });
});
