import { describe, expect, it } from 'vitest';
import type { ProgressEvent, UpgradeProgress } from '@progress/core';
import { CallbackManager } from '../src/index.js';
import { deferred, openTracker } from './helpers.js';

describe('CallbackManager: one manager, several trackers', () => {
  it('gives each callback the events of every upgrade, each upgrade in seq order, each call the state of its own upgrade at its own event', async () => {
    const manager = new CallbackManager({ timeoutMs: Infinity });
    const gate = deferred();
    const seen: Array<[string, number, string, number]> = [];
    manager.addEventCallback(async (event: ProgressEvent, state: Readonly<UpgradeProgress>) => {
      if (seen.length === 0) await gate.promise; // the first call hangs: the others queue behind it
      seen.push([event.upgradeId, event.seq, state.upgradeId, Object.keys(state.tasks).length]);
    });
    const a = await openTracker(manager, 'share-a'); // a1
    const b = await openTracker(manager, 'share-b'); // b1
    await a.addTask('a-t1', 'A 1'); // a2
    await b.addTask('b-t1', 'B 1'); // b2
    await b.addTask('b-t2', 'B 2'); // b3
    await a.addTask('a-t2', 'A 2'); // a3
    gate.resolve();
    await manager.flush();
    expect(seen).toEqual([
      ['share-a', 1, 'share-a', 0],
      ['share-b', 1, 'share-b', 0],
      ['share-a', 2, 'share-a', 1],
      ['share-b', 2, 'share-b', 1],
      ['share-b', 3, 'share-b', 2],
      ['share-a', 3, 'share-a', 2],
    ]);
    await a.close();
    await b.close();
    await manager.close();
  });
});
