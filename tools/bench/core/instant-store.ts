import { MemoryStore, type ProgressEvent, type ProgressStore } from '@progress/core';

const RESOLVED = Promise.resolve();

/**
 * A store that acknowledges every append at once and keeps nothing, after its first `setupAppends`
 * (which go to a MemoryStore, so that `ProgressTracker.open`, `startUpgrade` and `addTasks` work):
 * with it, a benchmark measures core's own work per command and nothing of a store's. With `step`,
 * each later append is acknowledged when the promise `step(events)` gives settles (a round trip of
 * one's choosing: `burst-layers.ts`).
 */
export function instantStore(setupAppends = 3, step?: (events: readonly ProgressEvent[]) => Promise<unknown> | undefined): ProgressStore {
  const memory = new MemoryStore();
  let appends = 0;
  return {
    load: (id) => memory.load(id),
    readEvents: (id, after, limit) => memory.readEvents(id, after, limit),
    list: (filter) => memory.list(filter),
    delete: (id) => memory.delete(id),
    info: () => memory.info(),
    close: () => memory.close(),
    append: (id, events, expected, state) => {
      if (appends++ < setupAppends) return memory.append(id, events, expected, state);
      const stepped = step?.(events);
      return stepped ? stepped.then(() => undefined) : RESOLVED;
    },
  };
}
