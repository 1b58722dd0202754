import { ProgressError } from './errors.js';
import type { ProgressStore } from './interfaces.js';
import type { ListFilter, ProgressEvent, StoreInfo, UpgradeProgress, UpgradeSummaryRow } from './model.js';
import { cloneState, replayEvents } from './reducer.js';
import { appendInputError, assertAppend, assertAppendState, assertReadEvents, filterRows } from './store-helpers.js';
import { toSummaryRow } from './summary.js';
import { assertCount, assertValidId, readOptions } from './validation.js';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Keep a snapshot every this many events, so that `load()` replays at most this many. @default 1000 */
  snapshotEvery?: number;
}

interface Entry {
  events: ProgressEvent[];
  snapshot: UpgradeProgress | undefined;
}

/**
 * A {@link ProgressStore} in memory: the default of `ProgressTracker.open()`, and the test double
 * of every other store (it passes the same conformance suite). Nothing survives the process.
 * Stored events are frozen.
 */
export class MemoryStore implements ProgressStore {
  readonly #upgrades = new Map<string, Entry>();
  readonly #locks = new Set<string>();
  readonly #snapshotEvery: number;
  #closed = false;

  constructor(options?: MemoryStoreOptions) {
    const every = readOptions<MemoryStoreOptions>(options, ['snapshotEvery'], 'MemoryStore options').snapshotEvery ?? 1000;
    assertCount(every, 'snapshotEvery', true);
    this.#snapshotEvery = every;
  }

  async acquire(upgradeId: string): Promise<void> {
    this.#check(upgradeId);
    if (this.#locks.has(upgradeId)) {
      throw new ProgressError('CONFLICT', `[@progress/core] MemoryStore: upgrade "${upgradeId}" is already open for writing`, { context: { upgradeId } });
    }
    this.#locks.add(upgradeId);
  }

  async release(upgradeId: string): Promise<void> {
    // Checked like every other method (but allowed once closed: close() let go of every lock).
    assertValidId(upgradeId, 'upgradeId');
    this.#locks.delete(upgradeId);
  }

  async load(upgradeId: string): Promise<UpgradeProgress | undefined> {
    this.#check(upgradeId);
    const entry = this.#upgrades.get(upgradeId);
    if (!entry) return undefined;
    const from = entry.snapshot?.lastSeq ?? 0;
    return replayEvents(entry.events.slice(from), entry.snapshot);
  }

  async append(upgradeId: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    this.#check(upgradeId);
    assertAppend('MemoryStore', upgradeId, events, expectedSeq);
    assertAppendState('MemoryStore', upgradeId, state);
    let entry = this.#upgrades.get(upgradeId);
    const stored = entry?.events.length ?? 0;
    if (stored !== expectedSeq) {
      throw new ProgressError('CONFLICT', `[@progress/core] MemoryStore: upgrade "${upgradeId}" is at seq ${stored}, not ${expectedSeq}`, {
        context: { upgradeId, expectedSeq, storedSeq: stored },
      });
    }
    // The snapshot is copied before anything is stored: a state that cannot be copied changes nothing.
    const last = events[events.length - 1]!.seq;
    let snapshot: UpgradeProgress | undefined;
    if (state.lastSeq === last && Math.floor(last / this.#snapshotEvery) > Math.floor(expectedSeq / this.#snapshotEvery)) {
      try {
        snapshot = cloneState(state);
      } catch (cause) {
        throw appendInputError('MemoryStore', upgradeId, expectedSeq, 'the state could not be copied', cause);
      }
    }
    if (!entry) {
      entry = { events: [], snapshot: undefined };
      this.#upgrades.set(upgradeId, entry);
    }
    for (const event of events) {
      Object.freeze(event.details);
      entry.events.push(Object.freeze(event));
    }
    if (snapshot) entry.snapshot = snapshot;
  }

  async *readEvents(upgradeId: string, afterSeq: number, limit = Infinity): AsyncIterable<ProgressEvent> {
    this.#check(upgradeId);
    assertReadEvents('MemoryStore', upgradeId, afterSeq, limit);
    const events = this.#upgrades.get(upgradeId)?.events ?? [];
    const end = Math.min(events.length, afterSeq + limit);
    for (let i = afterSeq; i < end; i++) yield events[i]!;
  }

  async list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    this.#assertOpen();
    const rows: UpgradeSummaryRow[] = [];
    for (const id of this.#upgrades.keys()) {
      const state = await this.load(id);
      if (state) rows.push(toSummaryRow(state));
    }
    return filterRows(rows, filter);
  }

  async delete(upgradeId: string): Promise<boolean> {
    this.#check(upgradeId);
    return this.#upgrades.delete(upgradeId);
  }

  info(): StoreInfo {
    let events = 0;
    for (const entry of this.#upgrades.values()) events += entry.events.length;
    return { name: 'MemoryStore', durable: false, upgrades: this.#upgrades.size, events, snapshotEvery: this.#snapshotEvery };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#locks.clear();
  }

  #assertOpen(): void {
    if (this.#closed) throw new ProgressError('CLOSED', '[@progress/core] MemoryStore is closed');
  }

  #check(upgradeId: string): void {
    this.#assertOpen();
    assertValidId(upgradeId, 'upgradeId');
  }
}
