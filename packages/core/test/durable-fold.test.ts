import { describe, expect, it, vi } from 'vitest';
import type * as Reducer from '../src/reducer.js';

// The reducer, with a switch that makes it refuse one event the next time it is folded: set once the
// live state has folded it, that is the durable state's fold. Both states fold the same events from
// copies of one state, so only a defect can make them disagree; this stands in for one.
const refuse = vi.hoisted(() => ({ eventId: undefined as string | undefined }));
vi.mock('../src/reducer.js', async (importOriginal) => {
  const reducer = await importOriginal<typeof Reducer>();
  return {
    ...reducer,
    foldEvent: (state: Parameters<typeof reducer.foldEvent>[0], event: Parameters<typeof reducer.foldEvent>[1]) => {
      if (event.eventId === refuse.eventId) {
        refuse.eventId = undefined;
        throw new Error('the durable fold disagrees');
      }
      return reducer.foldEvent(state, event);
    },
  };
});

const { ProgressTracker } = await import('../src/index.js');

describe('stored events that the durable state cannot fold', () => {
  it('resolve their commands (they are stored), are logged, and neither hang nor crash the write loop', async () => {
    const errors: unknown[] = [];
    const logger = { debug() {}, info() {}, warn() {}, error: (obj: unknown) => errors.push(obj) };
    const tracker = await ProgressTracker.open({ upgradeId: 'u-fold', planId: 'p', clusterName: 'c', logger });
    const seen: number[] = [];
    tracker.subscribe((e) => seen.push(e.seq));
    await tracker.startUpgrade();
    await tracker.addTask('a', 'A');
    const refused = tracker.updateTaskProgress('a', 10);
    refuse.eventId = tracker.progress.tasks.a!.recentEvents.at(-1)!.eventId;
    // Recorded while the write of seq 4 is in flight, on top of it.
    await Promise.resolve();
    const behind = tracker.updateTaskProgress('a', 20);
    const [first, second] = await Promise.allSettled([refused, behind]);
    expect(first).toMatchObject({ status: 'fulfilled', value: { seq: 4, percentage: 10 } });
    expect(second).toMatchObject({ status: 'rejected', reason: { code: 'DATA_CORRUPTED' } });
    expect(errors).toHaveLength(1);
    expect(tracker.durableProgress.lastSeq).toBe(3);
    expect(tracker.progress.lastSeq).toBe(3);
    expect(seen).toEqual([2, 3]);
    // The store holds seq 4 and the durable state does not: the next write is a CONFLICT, not a wait for ever.
    await expect(tracker.updateTaskProgress('a', 30)).rejects.toMatchObject({ code: 'CONFLICT' });
    await tracker.flush();
    await tracker.close();
  });
});
