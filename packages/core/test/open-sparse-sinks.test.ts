import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker, type ProgressSink } from '../src/index.js';
import { expectCode } from './helpers.js';

describe('ProgressTracker.open() with a sinks array that has a hole', () => {
  it('is INVALID_ARGUMENT before anything is stored or locked, not a TypeError after', async () => {
    // `sinks: [callbacks, , notifier]`: Array.prototype.some skips a hole, so the check passed; the
    // tracker then stored upgrade.created, threw a bare TypeError handing it to the missing sink, and
    // kept the writer lock, so that every later open() of the upgrade got CONFLICT.
    const store = new MemoryStore();
    const sink: ProgressSink = { name: 'ok', handle: () => {} };
    // eslint-disable-next-line no-sparse-arrays
    const sinks = [sink, , sink] as unknown as ProgressSink[];
    await expectCode(() => ProgressTracker.open({ upgradeId: 'u1', planId: 'p1', clusterName: 'c1', store, sinks }), 'INVALID_ARGUMENT');
    expect(await store.load('u1')).toBeUndefined();
    const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p1', clusterName: 'c1', store, sinks: [sink] });
    expect(tracker.progress.lastSeq).toBe(1);
    await tracker.close();
  });
});
