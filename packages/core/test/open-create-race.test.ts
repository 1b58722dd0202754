import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressError, ProgressTracker, type ProgressEvent } from '../src/index.js';
import { expectCode } from './helpers.js';
import { delegatingStore } from './delegating-store.js';

// open() loads the upgrade, and records upgrade.created when the store has none. Another writer may
// create it between that load and the append (a store without a writer lock, or another process):
// the append is then CONFLICT, and open() uses the upgrade the other writer created.

describe('open() when another writer creates the upgrade between its load and its append', () => {
  it('loads and uses theirs, recording nothing of its own', async () => {
    const inner = new MemoryStore();
    let raced = false;
    // No writer lock (as a store without one): the other writer opens the upgrade while this one loads it.
    const store = delegatingStore(inner, {
      acquire: undefined,
      release: undefined,
      load: async (id) => {
        const state = await inner.load(id);
        if (!raced) {
          raced = true;
          // The other writer creates it now, after this load saw nothing.
          const theirs = await ProgressTracker.open({ upgradeId: id, planId: 'their-plan', clusterName: 'their-cluster', store: inner });
          await theirs.close();
        }
        return state;
      },
    });
    const seen: ProgressEvent[] = [];
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'my-plan', clusterName: 'my-cluster', store, sinks: [{ name: 's', handle: (e) => void seen.push(e) }] });
    expect(t.progress).toMatchObject({ planId: 'their-plan', clusterName: 'their-cluster', lastSeq: 1 });
    expect(seen).toEqual([]);
    await t.startUpgrade();
    const stored: ProgressEvent[] = [];
    for await (const e of inner.readEvents('u1', 0)) stored.push(e);
    expect(stored.map((e) => e.type)).toEqual(['upgrade.created', 'upgrade.started']);
    expect(stored[0]!.details).toMatchObject({ planId: 'their-plan' });
    await t.close();
  });

  it('is refused with that CONFLICT, the lock given back, when theirs is gone again by the load that follows (deleted meanwhile)', async () => {
    const inner = new MemoryStore();
    const calls: string[] = [];
    const store = delegatingStore(inner, {
      acquire: async (id) => {
        calls.push('acquire');
        await inner.acquire(id);
      },
      release: async (id) => {
        calls.push('release');
        await inner.release(id);
      },
      load: async (id) => {
        calls.push('load');
        return inner.load(id);
      },
      // Another writer's upgrade.created took seq 1 (CONFLICT), and was deleted before the reload.
      append: async (id, _events, expectedSeq) => {
        calls.push('append');
        throw new ProgressError('CONFLICT', `upgrade "${id}" is at seq 1, not ${expectedSeq}`, { context: { upgradeId: id, storedSeq: 1 } });
      },
    });
    await expectCode(() => ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store }), 'CONFLICT');
    expect(calls).toEqual(['acquire', 'load', 'append', 'load', 'release']);
    // Nothing stored, and the lock is free: the next open() creates the upgrade.
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store: inner });
    expect(t.progress.lastSeq).toBe(1);
    await t.close();
  });
});
