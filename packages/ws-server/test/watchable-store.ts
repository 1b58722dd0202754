import { MemoryStore, ProgressError, type ListFilter, type ProgressEvent, type ProgressStore, type StoreInfo, type UpgradeProgress, type UpgradeSummaryRow } from '@progress/core';

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

/**
 * The server's view of a shared store whose reads can fail, as a RedisStore's do while Redis cannot be
 * reached from the server: `load()` of the upgrades in `down` ('*': every one) and, with `listDown`,
 * `list()` throw what `error` makes (a ProgressError STORE_UNAVAILABLE by default). The rest goes to
 * the shared store, which the writers use directly (other processes, whose Redis works). A wrapper and
 * not a subclass: MemoryStore's own `list()`, and a tracker's open, call `load()`.
 */
export class UnreliableStore implements ProgressStore {
  /** The upgrades whose `load()` fails now; '*' for every one. */
  readonly down = new Set<string>();
  listDown = false;
  error: () => unknown = () => new ProgressError('STORE_UNAVAILABLE', 'connect ECONNREFUSED 10.0.0.7:6379');
  /** While set, a `load()` waits for it, then reads (or fails). */
  gate: Promise<void> | undefined;
  /** The `load()` calls made, failed or not. */
  loads = 0;

  /** The shared store's watch() and watchAll(), when it has them: over a plain MemoryStore, none (as a JsonFileStore). */
  readonly watch: ProgressStore['watch'];
  readonly watchAll: ProgressStore['watchAll'];

  constructor(readonly shared: MemoryStore & Pick<ProgressStore, 'watch' | 'watchAll'>) {
    this.watch = shared.watch ? (upgradeId, afterSeq, options) => shared.watch!(upgradeId, afterSeq, options) : undefined;
    this.watchAll = shared.watchAll ? (options) => shared.watchAll!(options) : undefined;
  }

  async load(upgradeId: string): Promise<UpgradeProgress | undefined> {
    this.loads++;
    if (this.gate) await this.gate;
    if (this.down.has('*') || this.down.has(upgradeId)) throw this.error();
    return this.shared.load(upgradeId);
  }

  async list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    if (this.listDown) throw this.error();
    return this.shared.list(filter);
  }

  append(upgradeId: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    return this.shared.append(upgradeId, events, expectedSeq, state);
  }

  readEvents(upgradeId: string, afterSeq: number, limit?: number): AsyncIterable<ProgressEvent> {
    return this.shared.readEvents(upgradeId, afterSeq, limit);
  }

  delete(upgradeId: string): Promise<boolean> {
    return this.shared.delete(upgradeId);
  }

  info(): StoreInfo {
    return this.shared.info();
  }

  async close(): Promise<void> {}
}

/** A MemoryStore whose append resolves `delayMs` after the events are readable (as a JsonFileStore's write before its fsync: a tracker's sinks hear of them only then). */
export class SlowAppendStore extends MemoryStore {
  delayMs = 0;
  override async append(upgradeId: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    await super.append(upgradeId, events, expectedSeq, state);
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
  }
}

/**
 * A {@link WatchableMemoryStore} whose load() can be held (`gate`, the one set when it is asked) and
 * made to fail with `CLOSED`: `failing = 'asked'` fails the loads asked for from then on (one held now
 * still answers), `'answered'` also the one held now, when it answers.
 */
export class GatedLoadStore extends WatchableMemoryStore {
  loads = 0;
  gate: Promise<void> | undefined;
  failing: false | 'asked' | 'answered' = false;
  override async load(upgradeId: string): Promise<UpgradeProgress | undefined> {
    this.loads++;
    const failingWhenAsked = this.failing !== false;
    if (this.gate) await this.gate;
    if (failingWhenAsked || this.failing === 'answered') throw new ProgressError('CLOSED', 'store closed');
    return super.load(upgradeId);
  }
}
