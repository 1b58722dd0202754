// The tracker keeps its last 1,000 durable events to write them again should the store lose them
// (#restoreLost). Once closed it writes nothing more: it must let them go. A closed tracker is still
// read (`progress`, `durableProgress`, getProgressSummary()), so a program keeps it around, and held
// ~340 KB of small events per closed tracker (measured: 1,200 task.progress events) for nothing.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { ProgressTracker, type ProgressStore, type StoreInfo } from '../src/index.js';

/** A store that keeps nothing (so that only the tracker can hold the events). */
function keepsNothing(): ProgressStore {
  return {
    load: async () => undefined,
    append: async () => {},
    readEvents: async function* () {},
    list: async () => [],
    delete: async () => false,
    info: (): StoreInfo => ({ name: 'keeps-nothing', durable: false }) as StoreInfo,
    close: async () => {},
  };
}

function fullGc(): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
}

describe('a closed tracker', () => {
  it('no longer holds the events it kept to write again', async () => {
    const t = await ProgressTracker.open({ upgradeId: 'u-kept-memory', planId: 'p', clusterName: 'c', store: keepsNothing() });
    await t.addTask('a', 'A');
    await t.startTask('a');
    const refs: WeakRef<object>[] = [];
    // Only weak references to the events (a task's state keeps its last 20: these are older).
    t.subscribe((e) => void refs.push(new WeakRef(e)));
    for (let i = 0; i < 100; i++) await t.updateTaskProgress('a', i % 100);
    await t.close();
    const old = refs.slice(0, 50);
    // A turn of the event loop: a WeakRef keeps its target alive until the end of the job that made it.
    await new Promise((resolve) => setImmediate(resolve));
    fullGc();
    expect(old.filter((r) => r.deref() !== undefined)).toHaveLength(0);
    // Still read after close.
    expect(t.durableProgress.lastSeq).toBe(103);
  });
});
