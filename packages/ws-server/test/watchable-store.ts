import { MemoryStore, ProgressError, type ListFilter, type ProgressEvent, type ProgressStore, type StoreInfo, type UpgradeProgress, type UpgradeSummaryRow } from '@progress/core';

/**
 * A test-only MemoryStore with `watch()` and `watchAll()`, standing for a store shared between
 * processes (as RedisStore is): a tracker that the server does not track writes through it. It keeps
 * the contract `ProgressStore.watch` / `watchAll` document (and core's conformance suite checks, in
 * `watchable-store-conformance.test.ts`): a call after `close()` is refused with `CLOSED`, a signal
 * already aborted ends the iteration at once with no event, and `close()` ends every iteration.
 */
export class WatchableMemoryStore extends MemoryStore {
  /** Every event appended, in append order: a watchAll() reads on in it from where it was called. */
  readonly #log: ProgressEvent[] = [];
  /** Wakes the iterations waiting for a change (an append, a delete, close). */
  readonly #waiters = new Set<() => void>();
  /** How many times each upgrade was deleted: a watch started before a delete ends with NOT_FOUND. */
  readonly #deletions = new Map<string, number>();
  #closed = false;
  /** How many watch()/watchAll() iterations run now. */
  activeWatches = 0;

  override async append(upgradeId: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    await super.append(upgradeId, events, expectedSeq, state);
    this.#log.push(...events);
    this.#wake();
  }

  /** Deletes the upgrade; its watches end as RedisStore's do: `NOT_FOUND` with `reason: 'deleted'`. */
  override async delete(upgradeId: string): Promise<boolean> {
    const deleted = await super.delete(upgradeId);
    if (deleted) {
      this.#deletions.set(upgradeId, (this.#deletions.get(upgradeId) ?? 0) + 1);
      this.#wake();
    }
    return deleted;
  }

  /** Closes the store: every iteration ends (returns), and later calls are refused with `CLOSED`. */
  override async close(): Promise<void> {
    this.#closed = true;
    await super.close();
    this.#wake();
  }

  watch(upgradeId: string, afterSeq: number, options: { signal?: AbortSignal } = {}): AsyncIterable<ProgressEvent> {
    return this.#watch(upgradeId, afterSeq, options.signal);
  }

  watchAll(options: { signal?: AbortSignal } = {}): AsyncIterable<ProgressEvent> {
    if (this.#closed) throw new ProgressError('CLOSED', 'WatchableMemoryStore is closed');
    // The start point is taken at the call: the events appended from then on.
    return this.#watchAll(this.#log.length, options.signal);
  }

  async *#watch(upgradeId: string, afterSeq: number, signal: AbortSignal | undefined): AsyncGenerator<ProgressEvent> {
    // A bad id or afterSeq, or a closed store, is refused as readEvents refuses it, whatever the signal.
    await super.readEvents(upgradeId, afterSeq, 0)[Symbol.asyncIterator]().next();
    const deletions = this.#deletions.get(upgradeId) ?? 0;
    let next = afterSeq;
    this.activeWatches++;
    try {
      for (;;) {
        if (this.#ended(signal)) return;
        // Armed before the read, so that an append during it is not missed.
        const changed = this.#changed(signal);
        try {
          // Read on from the last event handed out: no gap, no duplicate.
          for await (const event of super.readEvents(upgradeId, next)) {
            if (this.#ended(signal)) return;
            if ((this.#deletions.get(upgradeId) ?? 0) !== deletions) break;
            next = event.seq;
            yield event;
          }
          if ((this.#deletions.get(upgradeId) ?? 0) !== deletions) {
            throw new ProgressError('NOT_FOUND', `upgrade "${upgradeId}" was deleted`, { context: { upgradeId, reason: 'deleted' } });
          }
          await changed.promise;
        } finally {
          changed.cancel();
        }
      }
    } finally {
      this.activeWatches--;
    }
  }

  async *#watchAll(start: number, signal: AbortSignal | undefined): AsyncGenerator<ProgressEvent> {
    let i = start;
    this.activeWatches++;
    try {
      for (;;) {
        if (this.#ended(signal)) return;
        const changed = this.#changed(signal);
        try {
          while (i < this.#log.length) {
            const event = this.#log[i++]!;
            if (this.#ended(signal)) return;
            yield event;
          }
          await changed.promise;
        } finally {
          changed.cancel();
        }
      }
    } finally {
      this.activeWatches--;
    }
  }

  #ended(signal: AbortSignal | undefined): boolean {
    return this.#closed || signal?.aborted === true;
  }

  /** Settles at the next append, delete or close, or when `signal` aborts; `cancel` lets go of it. */
  #changed(signal: AbortSignal | undefined): { promise: Promise<void>; cancel: () => void } {
    let done!: () => void;
    const promise = new Promise<void>((resolve) => {
      done = (): void => {
        signal?.removeEventListener('abort', done);
        this.#waiters.delete(done);
        resolve();
      };
    });
    this.#waiters.add(done);
    signal?.addEventListener('abort', done, { once: true });
    return { promise, cancel: done };
  }

  #wake(): void {
    for (const done of [...this.#waiters]) done();
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
