// Metadata and details nested deeper than the packages can carry. JSON.stringify takes ~4,000 levels,
// structuredClone (the state copies of the tracker and of @progress/callbacks) ~2,000: metadata in
// between was accepted, its upgrade.created stored, and then open() failed with DATA_CORRUPTED, that
// time and on every later open of that upgrade. (Found by a review on 2026-11-30; failed before the fix.)
import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker } from '../src/index.js';
import { expectCode } from './helpers.js';

/** An object `levels` levels of objects deep (`{}` is 1 level, `{ a: {} }` 2). */
function nested(levels: number, leaf: unknown = {}): Record<string, unknown> {
  let value: unknown = leaf;
  for (let i = 1; i < levels; i++) value = { a: value };
  return value as Record<string, unknown>;
}

describe('metadata and details nested too deep', () => {
  it('open() refuses such metadata with INVALID_ARGUMENT and stores nothing; the upgrade can be opened afterwards', async () => {
    const store = new MemoryStore();
    for (const levels of [101, 2_500]) {
      await expectCode(() => ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store, metadata: nested(levels) }), 'INVALID_ARGUMENT');
      expect(await store.load('u1')).toBeUndefined();
    }
    // Arrays count as levels too.
    await expectCode(() => ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store, metadata: { list: JSON.parse(`${'['.repeat(150)}${']'.repeat(150)}`) } }), 'INVALID_ARGUMENT');
    const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store, metadata: nested(100, 'leaf') });
    await tracker.startUpgrade();
    await tracker.close();
    const again = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store });
    expect(again.progress.lastSeq).toBe(2);
    expect(JSON.stringify(again.progress.metadata)).toBe(JSON.stringify(nested(100, 'leaf')));
    await again.close();
  });

  it('refuses the shortest details nested one level too deep, and takes them one level less (the walk is skipped only for JSON too short to nest so deep)', async () => {
    const store = new MemoryStore();
    const tracker = await ProgressTracker.open({ upgradeId: 'u3', planId: 'p', clusterName: 'c', store });
    await tracker.addTask('t', 'T');
    const arrays = (levels: number): unknown => JSON.parse(`${'['.repeat(levels)}${']'.repeat(levels)}`);
    // 101 levels in 206 characters of JSON: {"a":[[...]]}.
    await expectCode(() => tracker.updateTaskProgress('t', 10, 'deep', { a: arrays(100) }), 'INVALID_ARGUMENT');
    await expectCode(() => tracker.updateTaskProgress('t', 10, 'deep', { '': arrays(100) }), 'INVALID_ARGUMENT');
    const event = await tracker.updateTaskProgress('t', 10, 'deep enough', { a: arrays(99) });
    expect(JSON.stringify(event.details)).toBe(JSON.stringify({ a: arrays(99) }));
    await tracker.close();
  });

  it('updateTaskProgress refuses such details with INVALID_ARGUMENT and changes nothing', async () => {
    const store = new MemoryStore();
    const tracker = await ProgressTracker.open({ upgradeId: 'u2', planId: 'p', clusterName: 'c', store });
    await tracker.addTask('t', 'T');
    const before = JSON.stringify(tracker.progress);
    for (const levels of [101, 2_500]) {
      await expectCode(() => tracker.updateTaskProgress('t', 10, 'deep', nested(levels)), 'INVALID_ARGUMENT');
      expect(JSON.stringify(tracker.progress)).toBe(before);
    }
    const event = await tracker.updateTaskProgress('t', 10, 'deep enough', nested(100, 1));
    expect(JSON.stringify(event.details)).toBe(JSON.stringify(nested(100, 1)));
    await tracker.close();
  });
});
