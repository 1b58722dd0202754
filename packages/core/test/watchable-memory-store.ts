import { MemoryStore, ProgressError, type ProgressEvent, type UpgradeProgress } from '../src/index.js';

/**
 * A test-only MemoryStore with `watch()` and `watchAll()`, kept as the interface's JSDoc says (as
 * RedisStore does), so that core runs the suite's watch cases on a sound store; the protected
 * settings make the broken variants of `conformance-catches.test.ts`.
 */
export class WatchableMemoryStore extends MemoryStore {
  /** Every event appended, in append order (watchAll reads it). */
  readonly #log: ProgressEvent[] = [];
  readonly #waiters = new Set<() => void>();
  #closed = false;

  /** Whether an aborted signal ends an iteration (a broken store ignores it). */
  protected listens = true;
  /** Whether close() ends the iterations (a broken store leaves them waiting). */
  protected endsOnClose = true;
  /** Where a watch reads on from once it handed out `seq` (a broken store reads the last one again). */
  protected readOnFrom(seq: number): number {
    return seq;
  }
  /** Whether watchAll hands out the events of `upgradeId`, given the upgrades known at its start. */
  protected follows(upgradeId: string, known: ReadonlySet<string>): boolean {
    void upgradeId;
    void known;
    return true;
  }
  /** How an aborted iteration ends (a broken store throws). */
  protected aborted(): void {}
  /** Whether a watch also hands out the new events of other upgrades (a broken store does, as one that forgets to filter a shared feed). */
  protected leaksOthers = false;

  override async append(upgradeId: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    await super.append(upgradeId, events, expectedSeq, state);
    this.#log.push(...events);
    this.#wake();
  }

  override async close(): Promise<void> {
    this.#closed = true;
    await super.close();
    if (this.endsOnClose) this.#wake();
  }

  watch(upgradeId: string, afterSeq: number, options: { signal?: AbortSignal } = {}): AsyncIterable<ProgressEvent> {
    return this.#watch(upgradeId, afterSeq, options.signal);
  }

  watchAll(options: { signal?: AbortSignal } = {}): AsyncIterable<ProgressEvent> {
    if (this.#closed) throw new ProgressError('CLOSED', '[@progress/core] WatchableMemoryStore is closed');
    // The start point is taken at the call.
    const start = this.#log.length;
    const known = new Set(this.#log.map((e) => e.upgradeId));
    return this.#watchAll(start, known, options.signal);
  }

  async *#watch(upgradeId: string, afterSeq: number, signal: AbortSignal | undefined): AsyncGenerator<ProgressEvent> {
    // Checks the id, afterSeq and that the store is open, as readEvents does.
    await super.readEvents(upgradeId, afterSeq, 0)[Symbol.asyncIterator]().next();
    let next = afterSeq;
    let logged = this.#log.length;
    for (let round = 0; ; round++) {
      if (this.#ended(signal)) return;
      // Armed before the read, so that an append during it is not missed.
      const changed = this.#changed(signal);
      if (this.leaksOthers) {
        for (const event of this.#log.slice(logged)) if (event.upgradeId !== upgradeId) yield event;
        logged = this.#log.length;
      }
      for await (const event of super.readEvents(upgradeId, round === 0 ? next : this.readOnFrom(next))) {
        if (this.#ended(signal)) return;
        next = event.seq;
        yield event;
      }
      await changed;
    }
  }

  async *#watchAll(start: number, known: ReadonlySet<string>, signal: AbortSignal | undefined): AsyncGenerator<ProgressEvent> {
    let i = start;
    for (;;) {
      if (this.#ended(signal)) return;
      const changed = this.#changed(signal);
      while (i < this.#log.length) {
        const event = this.#log[i++]!;
        if (!this.follows(event.upgradeId, known)) continue;
        if (this.#ended(signal)) return;
        yield event;
      }
      await changed;
    }
  }

  #ended(signal: AbortSignal | undefined): boolean {
    if (this.listens && signal?.aborted) {
      this.aborted();
      return true;
    }
    return this.endsOnClose && this.#closed;
  }

  /** Settles at the next append or close, or when `signal` aborts. */
  #changed(signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        signal?.removeEventListener('abort', done);
        this.#waiters.delete(done);
        resolve();
      };
      this.#waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  #wake(): void {
    for (const done of [...this.#waiters]) done();
  }
}
