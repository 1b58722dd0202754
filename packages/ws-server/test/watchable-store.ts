import { MemoryStore, ProgressError, type ProgressEvent, type UpgradeProgress } from '@progress/core';

/**
 * A test-only MemoryStore with `watch()` and `watchAll()`, standing for a store shared between
 * processes (as RedisStore is): a tracker that the server does not track writes through it.
 */
export class WatchableMemoryStore extends MemoryStore {
  readonly #listeners = new Set<(events: readonly ProgressEvent[]) => void>();
  readonly #deletions = new Set<(upgradeId: string) => void>();
  /** How many watch()/watchAll() iterations run now. */
  activeWatches = 0;

  override async append(upgradeId: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    await super.append(upgradeId, events, expectedSeq, state);
    for (const listener of this.#listeners) listener(events);
  }

  /** Deletes the upgrade; its watches end as RedisStore's do: `NOT_FOUND` with `reason: 'deleted'`. */
  override async delete(upgradeId: string): Promise<boolean> {
    const deleted = await super.delete(upgradeId);
    if (deleted) for (const listener of this.#deletions) listener(upgradeId);
    return deleted;
  }

  async *watch(upgradeId: string, afterSeq: number, options: { signal?: AbortSignal } = {}): AsyncIterable<ProgressEvent> {
    yield* this.#follow(
      options.signal,
      (ev) => ev.upgradeId === upgradeId,
      async function* (store) {
        yield* store.readEvents(upgradeId, afterSeq);
      },
      upgradeId,
    );
  }

  async *watchAll(options: { signal?: AbortSignal } = {}): AsyncIterable<ProgressEvent> {
    yield* this.#follow(options.signal, () => true, undefined);
  }

  async *#follow(
    signal: AbortSignal | undefined,
    match: (ev: ProgressEvent) => boolean,
    replay: ((store: MemoryStore) => AsyncIterable<ProgressEvent>) | undefined,
    upgradeId?: string,
  ): AsyncIterable<ProgressEvent> {
    const queue: ProgressEvent[] = [];
    let wake: (() => void) | undefined;
    let deleted = false;
    const listener = (events: readonly ProgressEvent[]) => {
      for (const ev of events) if (match(ev)) queue.push(ev);
      wake?.();
    };
    const onDelete = (id: string) => {
      if (id !== upgradeId) return;
      deleted = true;
      wake?.();
    };
    const onAbort = () => wake?.();
    this.#listeners.add(listener);
    this.#deletions.add(onDelete);
    signal?.addEventListener('abort', onAbort);
    this.activeWatches++;
    try {
      let last = 0;
      if (replay) {
        for await (const ev of replay(this)) {
          last = ev.seq;
          yield ev;
        }
      }
      while (!signal?.aborted) {
        if (deleted) throw new ProgressError('NOT_FOUND', `upgrade "${upgradeId}" was deleted`, { context: { upgradeId, reason: 'deleted' } });
        while (queue.length > 0) {
          const ev = queue.shift()!;
          if (replay && ev.seq <= last) continue;
          last = ev.seq;
          yield ev;
          if (signal?.aborted) return;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      this.activeWatches--;
      this.#listeners.delete(listener);
      this.#deletions.delete(onDelete);
      signal?.removeEventListener('abort', onAbort);
    }
  }
}
