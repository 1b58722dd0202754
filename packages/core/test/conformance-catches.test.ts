import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressError, assertAppend, assertAppendState, assertReadEvents, assertValidId, filterRows, replayEvents, toSummaryRow, type ListFilter, type UpgradeSummaryRow, type ProgressEvent, type ProgressStore, type UpgradeProgress } from '../src/index.js';
import { describeProgressStore, type ConformanceOptions, type StoreFactory } from '../src/testing/index.js';
import { WatchableMemoryStore } from './watchable-memory-store.js';

/**
 * A store that keeps each upgrade under a name made from its id, as a file or key name might be,
 * and is otherwise sound (a MemoryStore underneath): it passes every case unless the naming is wrong.
 */
class NamingStore implements ProgressStore {
  readonly #inner = new MemoryStore({ snapshotEvery: 7 });
  readonly #name: (id: string) => string;
  readonly #checkInLoad: boolean;
  constructor(name: (id: string) => string, checkInLoad = false) {
    this.#name = name;
    this.#checkInLoad = checkInLoad;
  }
  #to<T extends { upgradeId: string } | undefined>(value: T, from: string, to: string): T {
    return value && value.upgradeId === from ? { ...value, upgradeId: to } : value;
  }
  acquire(id: string): Promise<void> {
    return this.#inner.acquire(this.#name(id));
  }
  release(id: string): Promise<void> {
    return this.#inner.release(this.#name(id));
  }
  async load(id: string): Promise<UpgradeProgress | undefined> {
    if (this.#checkInLoad) assertValidId(id, 'upgradeId');
    const state = await this.#inner.load(this.#name(id));
    return state && { ...state, upgradeId: id };
  }
  append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    const name = this.#name(id);
    return this.#inner.append(name, events.map((e) => this.#to(e, id, name)), expectedSeq, this.#to(state, id, name));
  }
  async *readEvents(id: string, afterSeq: number, limit?: number): AsyncIterable<ProgressEvent> {
    for await (const e of this.#inner.readEvents(this.#name(id), afterSeq, limit)) yield { ...e, upgradeId: id };
  }
  list(filter?: ListFilter) {
    return this.#inner.list(filter);
  }
  delete(id: string): Promise<boolean> {
    return this.#inner.delete(this.#name(id));
  }
  info() {
    return this.#inner.info();
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}

/** A sound store but for its list rows, which it writes before it knows whether the append is taken. */
class EagerRowsStore extends MemoryStore {
  readonly #rows = new Map<string, UpgradeSummaryRow>();
  override async append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    let row: UpgradeSummaryRow | undefined;
    try {
      row = toSummaryRow(state);
    } catch {
      // Not a state: MemoryStore refuses it below.
    }
    if (row?.upgradeId === id) this.#rows.set(id, row);
    return super.append(id, events, expectedSeq, state);
  }
  override async list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    const ids = new Set((await super.list()).map((r) => r.upgradeId));
    return filterRows([...this.#rows.values()].filter((r) => ids.has(r.upgradeId)), filter);
  }
  override async delete(id: string): Promise<boolean> {
    this.#rows.delete(id);
    return super.delete(id);
  }
}

/** A sound store but for list(): it applies the limit before it sorts, so it keeps the oldest rows. */
class OldestFirstLimitStore extends MemoryStore {
  override async list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    const { limit, ...rest } = filter ?? {};
    const rows = await super.list(rest);
    return limit === undefined ? rows : rows.slice(-limit || rows.length).slice(0, limit);
  }
}

/** A sound store but for list(): of a list of statuses it filters by the first one alone. */
class FirstStatusStore extends MemoryStore {
  override list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    const status = filter?.status;
    return super.list(Array.isArray(status) ? { ...filter, status: status[0] } : filter);
  }
}

/**
 * A sound store but for append(), which is not all or nothing: it checks the seqs first, then stores
 * the events one at a time, so that one it refuses leaves those before it stored.
 */
class OneByOneStore extends MemoryStore {
  override async append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    if (!Array.isArray(events) || events.length < 2) return super.append(id, events, expectedSeq, state);
    assertAppend('OneByOneStore', id, events.map((e, i) => ({ eventId: 'x', type: 'upgrade.started', status: 'in_progress', timestamp: '', details: {}, upgradeId: e?.upgradeId, seq: e?.seq ?? expectedSeq + i + 1 }) as ProgressEvent), expectedSeq);
    for (let i = 0; i < events.length; i++) await super.append(id, [events[i]!], expectedSeq + i, state);
  }
}

/**
 * A sound store but for list(), which orders the upgrades by when they were first appended to
 * (an index scored by creation time), newest first, rather than by when they were last updated.
 */
class CreationOrderStore extends MemoryStore {
  readonly #created = new Map<string, number>();
  override async append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    await super.append(id, events, expectedSeq, state);
    if (!this.#created.has(id)) this.#created.set(id, this.#created.size);
  }
  override async list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    const { limit, ...rest } = filter ?? {};
    const rows = (await super.list(filter === undefined ? undefined : rest)).sort((a, b) => (this.#created.get(b.upgradeId) ?? 0) - (this.#created.get(a.upgradeId) ?? 0));
    return limit === undefined ? rows : rows.slice(0, limit);
  }
  override async delete(id: string): Promise<boolean> {
    this.#created.delete(id);
    return super.delete(id);
  }
}

/** A sound store but for list(), which knows only the upgrades appended to since it was opened: its index is not kept across a reopen. */
class ForgetfulIndexStore extends MemoryStore {
  readonly #known = new Set<string>();
  /** What a restart does to it. */
  forget(): void {
    this.#known.clear();
  }
  override async append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    await super.append(id, events, expectedSeq, state);
    this.#known.add(id);
  }
  override async list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    const rows = await super.list();
    return filterRows(rows.filter((r) => this.#known.has(r.upgradeId)), filter);
  }
}

/** The data of {@link OwnWritesStore}, shared by its instances (as a file or a server is). */
class SharedData {
  readonly events = new Map<string, ProgressEvent[]>();
  /** Per upgrade: how many appends were stored, and by which instance the last one. */
  readonly writes = new Map<string, { count: number; by: object }>();
}

/**
 * A store that checks the seq, then writes after a round trip, and guards that gap only against the
 * other instances over its data (a write of another instance since the check refuses the append,
 * as a WATCH would): it trusts its own appends never to overlap. Two concurrent appends of one
 * instance at the same seq are then both stored (the tracker makes them: a write given up on after
 * `storeTimeoutMs` may still be in flight when the next one is sent).
 */
class OwnWritesStore implements ProgressStore {
  readonly data: SharedData;
  #closed = false;
  constructor(data = new SharedData()) {
    this.data = data;
  }
  #check(id: string): void {
    if (this.#closed) throw new ProgressError('CLOSED', 'OwnWritesStore is closed');
    assertValidId(id, 'upgradeId');
  }
  async append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    this.#check(id);
    assertAppend('OwnWritesStore', id, events, expectedSeq);
    assertAppendState('OwnWritesStore', id, state);
    const storedSeq = this.data.events.get(id)?.length ?? 0;
    if (storedSeq !== expectedSeq) throw new ProgressError('CONFLICT', `at seq ${storedSeq}`, { context: { upgradeId: id, storedSeq } });
    const seen = this.data.writes.get(id)?.count ?? 0;
    await new Promise((resolve) => setImmediate(resolve));
    const now = this.data.writes.get(id);
    if ((now?.count ?? 0) !== seen && now?.by !== this) throw new ProgressError('CONFLICT', 'another instance wrote meanwhile', { context: { upgradeId: id } });
    this.data.events.set(id, [...(this.data.events.get(id) ?? []), ...events.map((e) => structuredClone(e))]);
    this.data.writes.set(id, { count: (now?.count ?? 0) + 1, by: this });
  }
  async load(id: string): Promise<UpgradeProgress | undefined> {
    this.#check(id);
    return replayEvents(this.data.events.get(id) ?? []);
  }
  async *readEvents(id: string, afterSeq: number, limit = Infinity): AsyncIterable<ProgressEvent> {
    this.#check(id);
    assertReadEvents('OwnWritesStore', id, afterSeq, limit);
    yield* (this.data.events.get(id) ?? []).slice(afterSeq, afterSeq + limit).map((e) => structuredClone(e));
  }
  async list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    if (this.#closed) throw new ProgressError('CLOSED', 'OwnWritesStore is closed');
    const rows: UpgradeSummaryRow[] = [];
    for (const id of this.data.events.keys()) rows.push(toSummaryRow((await this.load(id))!));
    return filterRows(rows, filter);
  }
  async delete(id: string): Promise<boolean> {
    this.#check(id);
    this.data.writes.delete(id);
    return this.data.events.delete(id);
  }
  info() {
    return { name: 'OwnWritesStore', durable: false };
  }
  async close(): Promise<void> {
    this.#closed = true;
  }
}

/** A sound store but for close(), which does nothing. */
class EverOpenStore extends MemoryStore {
  override async close(): Promise<void> {}
}

/** A sound store but for append(), which takes an append one behind the stored seq as a retry of the last one, whatever its events. */
class OneBehindStore extends MemoryStore {
  override async append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    const stored = (await this.load(id))?.lastSeq ?? 0;
    if (stored > 0 && expectedSeq === stored - 1) return;
    return super.append(id, events, expectedSeq, state);
  }
}

/** A sound store but for append(), which writes each seq it does not hold yet (an insert that skips the rows it has), then says CONFLICT. */
class SkipHeldSeqsStore extends MemoryStore {
  override async append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    const stored = (await this.load(id))?.lastSeq ?? 0;
    const rest = Array.isArray(events) ? events.filter((e) => e?.seq > stored) : [];
    if (expectedSeq < stored && rest.length > 0 && rest[0]!.seq === stored + 1) {
      await super.append(id, rest, stored, state);
      throw new ProgressError('CONFLICT', `at seq ${stored}`, { context: { upgradeId: id, storedSeq: stored } });
    }
    return super.append(id, events, expectedSeq, state);
  }
}

/** A sound store but for its CONFLICT, which says the stored seq one too low (a 0-based index). */
class WrongStoredSeqStore extends MemoryStore {
  override async append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    try {
      await super.append(id, events, expectedSeq, state);
    } catch (err) {
      if (err instanceof ProgressError && err.code === 'CONFLICT') throw new ProgressError('CONFLICT', err.message, { context: { ...err.context, storedSeq: (err.context.storedSeq as number) - 1 } });
      throw err;
    }
  }
}

/** A sound store but for append(), which puts a batch in seq order rather than refuse one out of order. */
class SortingStore extends MemoryStore {
  override append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    return super.append(id, Array.isArray(events) ? [...events].sort((a, b) => (a?.seq ?? 0) - (b?.seq ?? 0)) : events, expectedSeq, state);
  }
}

/** A sound store but for readEvents(), which reads one page of 100 events at most, whatever the limit. */
class OnePageStore extends MemoryStore {
  override readEvents(id: string, afterSeq: number, limit = Infinity): AsyncIterable<ProgressEvent> {
    return super.readEvents(id, afterSeq, limit === Infinity ? limit : Math.min(limit, 100));
  }
}

/** A sound store but for load(), which hands out the state it keeps (a cache of the last append's), not a copy. */
class CachedStateStore extends MemoryStore {
  readonly #latest = new Map<string, UpgradeProgress>();
  override async append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    const copy = structuredClone(state) as UpgradeProgress;
    await super.append(id, events, expectedSeq, state);
    this.#latest.set(id, copy);
  }
  override async load(id: string): Promise<UpgradeProgress | undefined> {
    const state = await super.load(id);
    return state && (this.#latest.get(id) ?? state);
  }
  override async delete(id: string): Promise<boolean> {
    this.#latest.delete(id);
    return super.delete(id);
  }
}

/** A sound store but for list(), which reads a limit of 0 as no limit. */
class ZeroLimitStore extends MemoryStore {
  override list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    return super.list(filter?.limit === 0 ? { ...filter, limit: undefined } : filter);
  }
}

/** A sound store but for list(), which cuts at the limit before it filters (the newest rows, then those that match). */
class LimitThenFilterStore extends MemoryStore {
  override async list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    const { limit, ...rest } = filter ?? {};
    if (limit === undefined || (rest.status === undefined && rest.clusterName === undefined)) return super.list(filter);
    return filterRows((await super.list()).slice(0, limit), rest);
  }
}

/** A sound store but for list(), which filters by the status when one is given, else by the cluster: never both. */
class OneFilterStore extends MemoryStore {
  override list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    if (filter?.status === undefined || filter.clusterName === undefined) return super.list(filter);
    const { clusterName: _ignored, ...rest } = filter;
    return super.list(rest);
  }
}

/** A sound store but for release(), which lets go of every lock it holds (one lock per store, not per upgrade). */
class OneLockStore extends MemoryStore {
  readonly #held = new Set<string>();
  override async acquire(id: string): Promise<void> {
    await super.acquire(id);
    this.#held.add(id);
  }
  override async release(id: string): Promise<void> {
    await super.release(id);
    for (const other of this.#held) await super.release(other);
    this.#held.clear();
  }
}

/** A sound store but for append(), which refuses with CONFLICT an append made while one to any upgrade is in flight. */
class OneAppendAtATimeStore extends MemoryStore {
  #busy = false;
  override async append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    if (this.#busy) throw new ProgressError('CONFLICT', 'another append is in flight', { context: { upgradeId: id } });
    this.#busy = true;
    try {
      const copy = structuredClone(state) as UpgradeProgress;
      await new Promise((resolve) => setImmediate(resolve));
      await super.append(id, events, expectedSeq, copy);
    } finally {
      this.#busy = false;
    }
  }
}

/**
 * Instances over one MemoryStore (as processes over one server), each sound but for load(), which
 * hands out the state of its own last append to the upgrade when it made one, not what is stored.
 */
class OwnStateCacheStore implements ProgressStore {
  readonly shared: MemoryStore;
  readonly #mine = new Map<string, UpgradeProgress>();
  #closed = false;
  constructor(shared = new MemoryStore()) {
    this.shared = shared;
  }
  #check(): void {
    if (this.#closed) throw new ProgressError('CLOSED', 'OwnStateCacheStore is closed');
  }
  async load(id: string): Promise<UpgradeProgress | undefined> {
    this.#check();
    const stored = await this.shared.load(id);
    const mine = this.#mine.get(id);
    return stored && (mine ? (structuredClone(mine) as UpgradeProgress) : stored);
  }
  async append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    this.#check();
    const copy = structuredClone(state) as UpgradeProgress;
    await this.shared.append(id, events, expectedSeq, state);
    this.#mine.set(id, copy);
  }
  async *readEvents(id: string, afterSeq: number, limit?: number): AsyncIterable<ProgressEvent> {
    this.#check();
    yield* this.shared.readEvents(id, afterSeq, limit);
  }
  async list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    this.#check();
    return this.shared.list(filter);
  }
  async delete(id: string): Promise<boolean> {
    this.#check();
    this.#mine.delete(id);
    return this.shared.delete(id);
  }
  info() {
    return { name: 'OwnStateCacheStore', durable: false };
  }
  async close(): Promise<void> {
    this.#closed = true;
  }
}

/** A sound store but for list(), which returns the first page of 100 rows of its index (one SCAN, one directory batch). */
class FirstPageListStore extends MemoryStore {
  override async list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    return (await super.list(filter)).slice(0, 100);
  }
}

/** A sound store but for its list rows, which keep the currentPhase and startedAt of the upgrade's first append (fields a row updater forgot). */
class StaleRowFieldsStore extends MemoryStore {
  readonly #first = new Map<string, UpgradeSummaryRow>();
  override async append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    await super.append(id, events, expectedSeq, state);
    if (!this.#first.has(id)) this.#first.set(id, toSummaryRow(state));
  }
  override async list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    const rows = (await super.list()).map((r) => {
      const first = this.#first.get(r.upgradeId);
      return first ? { ...r, currentPhase: first.currentPhase, startedAt: first.startedAt } : r;
    });
    return filterRows(rows, filter);
  }
  override async delete(id: string): Promise<boolean> {
    this.#first.delete(id);
    return super.delete(id);
  }
}

/**
 * A sound store but for its snapshot, which is the state it was given (not a copy), loaded with the
 * events after that state's lastSeq: a caller that changes the state after append() changes it.
 */
class KeepsGivenStateStore extends MemoryStore {
  readonly #kept = new Map<string, Readonly<UpgradeProgress>>();
  override async append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    await super.append(id, events, expectedSeq, state);
    this.#kept.set(id, state);
  }
  override async load(id: string): Promise<UpgradeProgress | undefined> {
    const kept = this.#kept.get(id);
    if (!kept) return super.load(id);
    const tail: ProgressEvent[] = [];
    for await (const e of this.readEvents(id, kept.lastSeq)) tail.push(e);
    return replayEvents(tail, kept);
  }
  override async delete(id: string): Promise<boolean> {
    this.#kept.delete(id);
    return super.delete(id);
  }
}

/**
 * A MemoryStore that, at each multiple of 7 an append crosses, takes the state it was given as its
 * snapshot whatever that state's lastSeq (a copy), and loads from it: a state ahead of the events is
 * then what load() gives.
 */
class SnapshotsAnyStateStore extends MemoryStore {
  readonly #snapshots = new Map<string, UpgradeProgress>();
  override async append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    let copy: UpgradeProgress | undefined;
    try {
      copy = JSON.parse(JSON.stringify(state)) as UpgradeProgress;
    } catch {
      // Refused by the append.
    }
    await super.append(id, events, expectedSeq, state);
    const last = expectedSeq + events.length;
    if (copy && Math.floor(last / 7) > Math.floor(expectedSeq / 7)) this.#snapshots.set(id, copy);
  }
  override async load(id: string): Promise<UpgradeProgress | undefined> {
    const snapshot = this.#snapshots.get(id);
    if (!snapshot) return super.load(id);
    const tail: ProgressEvent[] = [];
    for await (const e of this.readEvents(id, snapshot.lastSeq)) tail.push(e);
    return replayEvents(tail, structuredClone(snapshot));
  }
  override async delete(id: string): Promise<boolean> {
    this.#snapshots.delete(id);
    return super.delete(id);
  }
}

/** A sound store but for append(), which copies the state it was given only after an await (its snapshot every 7 events). */
class LateCopyStore extends MemoryStore {
  constructor() {
    super({ snapshotEvery: 7 });
  }
  override async append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    await Promise.resolve();
    return super.append(id, events, expectedSeq, state === null || typeof state !== 'object' ? state : (JSON.parse(JSON.stringify(state)) as UpgradeProgress));
  }
}

/** A sound store but for append(), which takes (and drops) an append past seq 0 to an upgrade it does not hold, as one that checks the seq only against an upgrade it finds. */
class NoSeqCheckWhenAbsentStore extends MemoryStore {
  override async append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    if (expectedSeq > 0 && assertAppend('NoSeqCheckWhenAbsentStore', id, events, expectedSeq) === undefined && (await this.load(id)) === undefined) return;
    return super.append(id, events, expectedSeq, state);
  }
}

/**
 * A MemoryStore that lists the row of the state each append was given (as RedisStore does), and
 * takes any state: one that is not the state after the events is listed while load() gives another.
 */
class StateRowStore extends MemoryStore {
  readonly #rows = new Map<string, UpgradeSummaryRow>();
  /** Whether the row of an append of these events is kept (every one here). */
  protected keepsRow(_events: readonly ProgressEvent[]): boolean {
    return true;
  }
  /** What list() gives for a stored row and the row kept for it (the kept one here). */
  protected listedRow(_stored: UpgradeSummaryRow, kept: UpgradeSummaryRow): UpgradeSummaryRow {
    return kept;
  }
  override async append(id: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    const pending = super.append(id, events, expectedSeq, state);
    let row: UpgradeSummaryRow | undefined;
    try {
      row = toSummaryRow(state);
    } catch {
      // Refused by the append.
    }
    await pending;
    if (row && this.keepsRow(events)) this.#rows.set(id, row);
  }
  override async list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    const rows = (await super.list()).map((r) => {
      const kept = this.#rows.get(r.upgradeId);
      return kept ? this.listedRow(r, kept) : r;
    });
    return filterRows(rows, filter);
  }
  override async delete(id: string): Promise<boolean> {
    this.#rows.delete(id);
    return super.delete(id);
  }
}

/** A sound store but for its list rows, whose lastSeq, overallPercentage and updatedAt are those of the last append that changed more than progress. */
class ProgressBlindRowStore extends StateRowStore {
  protected override keepsRow(events: readonly ProgressEvent[]): boolean {
    return events.some((e) => e.type !== 'task.progress');
  }
  protected override listedRow(stored: UpgradeSummaryRow, kept: UpgradeSummaryRow): UpgradeSummaryRow {
    return { ...stored, lastSeq: kept.lastSeq, overallPercentage: kept.overallPercentage, updatedAt: kept.updatedAt };
  }
}

/**
 * A MemoryStore with retention: it holds the last 5 events of an upgrade. readEvents() after an
 * earlier seq throws NOT_FOUND 'trimmed'; `silent`, it starts from the oldest event it holds instead.
 */
class RetainingStore extends MemoryStore {
  readonly #silent: boolean;
  constructor(silent: boolean) {
    super({ snapshotEvery: 7 });
    this.#silent = silent;
  }
  override async *readEvents(id: string, afterSeq: number, limit = Infinity): AsyncIterable<ProgressEvent> {
    assertReadEvents('RetainingStore', id, afterSeq, limit);
    const cut = Math.max(0, ((await this.load(id))?.lastSeq ?? 0) - 5);
    if (afterSeq < cut && !this.#silent) throw new ProgressError('NOT_FOUND', `events up to seq ${cut} were removed`, { context: { upgradeId: id, reason: 'trimmed', afterSeq, trimmedSeq: cut } });
    yield* super.readEvents(id, Math.max(afterSeq, cut), limit);
  }
}

/** A MemoryStore whose delete() (`keeps`) puts the upgrade's events aside instead of dropping them, as a folder renamed and never removed. */
class GraveStore extends MemoryStore {
  readonly graves = new Map<string, ProgressEvent[]>();
  readonly #keeps: boolean;
  constructor(keeps: boolean) {
    super();
    this.#keeps = keeps;
  }
  override async delete(id: string): Promise<boolean> {
    const events: ProgressEvent[] = [];
    for await (const e of this.readEvents(id, 0)) events.push(e);
    const existed = await super.delete(id);
    if (existed && this.#keeps) this.graves.set(id, events);
    return existed;
  }
}

/** Runs the suite against `factory` and returns the names of the cases that failed. */
async function failedCases(factory: StoreFactory, options?: ConformanceOptions): Promise<string[]> {
  const cases: Array<{ name: string; fn: () => Promise<void> | void }> = [];
  describeProgressStore('under test', factory, { describe: (_name, fn) => fn(), it: (name, fn) => void cases.push({ name, fn }) }, options);
  const failed: string[] = [];
  for (const c of cases) {
    try {
      await c.fn();
    } catch {
      failed.push(c.name);
    }
  }
  return failed;
}

const naming = (name: (id: string) => string, checkInLoad = false): StoreFactory => ({ create: () => new NamingStore(name, checkInLoad), reopen: (store) => store });
/** A file-system-safe name for any string, as a store might make one. */
const safeName = (id: string): string => (id === '' ? '_empty' : id.replace(/[^A-Za-z0-9_-]/g, (c) => `_${c.charCodeAt(0).toString(16)}`)).slice(0, 128);

const CONFLICT = 'refuses a stale or future expectedSeq with CONFLICT and stores nothing';
const COPIES = 'hands out what it holds, not its own copy: changing what load() or readEvents() returned changes nothing stored';
const LIST = 'lists every upgrade it holds, filtered, newest first';
const CONFLICT_ABSENT = 'refuses an append past seq 0 to an upgrade it does not hold (never created, or deleted) with CONFLICT and stores nothing';
const STATE_COPY = 'copies the state it is given: changing it once append was called changes nothing stored';
/** Failed too by every store that takes its list row, or its load(), from the state it is given. */
const STATE_AFTER = 'lists what load() gives after an append whose state is not the one after its events, or refuses it with INVALID_ARGUMENT';

describe('the conformance suite catches a broken store', () => {
  it('passes a sound one (the naming store with names equal to the ids)', async () => {
    expect(await failedCases(naming((id) => id))).toEqual([]);
  });

  it('fails a store whose names ignore case (a case-insensitive file system)', async () => {
    expect(await failedCases(naming((id) => id.toLowerCase()))).toEqual(['never mixes two upgrades whose ids differ only in case or punctuation']);
  });

  it('fails a store that checks ids in load() alone, and takes any id elsewhere', async () => {
    // (Its list() shows the names, not the ids: the case of ids with "." or ":" fails too.)
    expect(await failedCases(naming(safeName, true))).toContain('refuses a bad upgrade id in every method with INVALID_ARGUMENT, before it touches anything');
  });

  it('fails a store that updates its list row for an append it then refuses with CONFLICT', async () => {
    expect(await failedCases({ create: () => new EagerRowsStore(), reopen: (store) => store })).toEqual([CONFLICT, STATE_AFTER]);
  });

  it('fails a store whose list() puts the most recently created upgrades first, not the most recently updated', async () => {
    expect(await failedCases({ create: () => new CreationOrderStore(), reopen: (store) => store })).toEqual([LIST]);
  });

  it('fails a store whose list() no longer shows the upgrades it held before a reopen', async () => {
    const forgetful: StoreFactory = {
      create: () => new ForgetfulIndexStore(),
      reopen: (store) => {
        (store as ForgetfulIndexStore).forget();
        return store;
      },
    };
    expect(await failedCases(forgetful)).toContain('gives the same state and events after a reopen, and appends on from there');
  });

  it('fails a store that stores two concurrent appends of one instance at the same seq (it guards only against other instances)', async () => {
    const factory: StoreFactory = {
      create: () => new OwnWritesStore(),
      reopen: (store) => new OwnWritesStore((store as OwnWritesStore).data),
      second: (store) => new OwnWritesStore((store as OwnWritesStore).data),
    };
    expect(await failedCases(factory)).toEqual(['lets exactly one of two concurrent appenders at the same seq win']);
  });

  it('fails a store that goes on working after close()', async () => {
    expect(await failedCases({ create: () => new EverOpenStore(), reopen: (store) => store })).toEqual(['refuses every call after close with CLOSED']);
  });

  it('fails a store whose list() keeps the oldest rows within the limit', async () => {
    expect(await failedCases({ create: () => new OldestFirstLimitStore(), reopen: (store) => store })).toEqual(['lists every upgrade it holds, filtered, newest first']);
  });

  it('fails a store whose list() filters a list of statuses by the first one alone', async () => {
    expect(await failedCases({ create: () => new FirstStatusStore(), reopen: (store) => store })).toEqual(['lists every upgrade it holds, filtered, newest first']);
  });

  it('fails a store whose append() stores the events before one it refuses', async () => {
    expect(await failedCases({ create: () => new OneByOneStore(), reopen: (store) => store })).toEqual(['refuses malformed appends with INVALID_ARGUMENT and stores nothing']);
  });

  it('fails a store that takes an append one behind the stored seq', async () => {
    expect(await failedCases({ create: () => new OneBehindStore(), reopen: (store) => store })).toEqual([CONFLICT]);
  });

  it('fails a store that keeps the part of a stale append past the stored seq', async () => {
    expect(await failedCases({ create: () => new SkipHeldSeqsStore(), reopen: (store) => store })).toEqual([CONFLICT]);
  });

  it('fails a store whose CONFLICT says a wrong storedSeq', async () => {
    expect(await failedCases({ create: () => new WrongStoredSeqStore(), reopen: (store) => store })).toEqual([CONFLICT, CONFLICT_ABSENT]);
  });

  it('fails a store that sorts a batch given out of order', async () => {
    expect(await failedCases({ create: () => new SortingStore(), reopen: (store) => store })).toEqual(['refuses malformed appends with INVALID_ARGUMENT and stores nothing']);
  });

  it('fails a store whose readEvents() keeps a limit above its page size to one page', async () => {
    expect(await failedCases({ create: () => new OnePageStore(), reopen: (store) => store })).toEqual(['gives the same state and events after a reopen, and appends on from there']);
  });

  it('fails a store whose load() hands out the state it keeps', async () => {
    expect(await failedCases({ create: () => new CachedStateStore(), reopen: (store) => store })).toEqual([STATE_AFTER, COPIES]);
  });

  it('fails a store whose list() reads limit 0 as no limit', async () => {
    expect(await failedCases({ create: () => new ZeroLimitStore(), reopen: (store) => store })).toEqual([LIST]);
  });

  it('fails a store whose list() cuts at the limit before it filters', async () => {
    expect(await failedCases({ create: () => new LimitThenFilterStore(), reopen: (store) => store })).toEqual([LIST]);
  });

  it('fails a store whose list() applies a status or a cluster filter, never both', async () => {
    expect(await failedCases({ create: () => new OneFilterStore(), reopen: (store) => store })).toEqual([LIST]);
  });

  it('fails a store whose release() lets go of the locks of other upgrades', async () => {
    expect(await failedCases({ create: () => new OneLockStore(), reopen: (store) => store })).toEqual(['gives one writer at a time the lock, when it has one']);
  });

  it('fails a store that refuses an append while one to another upgrade is in flight', async () => {
    expect(await failedCases({ create: () => new OneAppendAtATimeStore(), reopen: (store) => store })).toEqual([
      'takes appends to different upgrades at the same time, by one store and by two',
      // (It appends to ten upgrades at a time.)
      'lists every upgrade of many (more than a page of a scan or a directory read)',
    ]);
  });

  it('fails a store whose load() serves its own last append, blind to a second store\'s writes', async () => {
    const factory: StoreFactory = {
      create: () => new OwnStateCacheStore(),
      reopen: (store) => new OwnStateCacheStore((store as OwnStateCacheStore).shared),
      second: (store) => new OwnStateCacheStore((store as OwnStateCacheStore).shared),
    };
    expect(await failedCases(factory)).toEqual([STATE_AFTER, 'reads what a second store over the same data wrote or deleted (load, readEvents, list)']);
  });

  it('fails a store whose list() returns one page of its index', async () => {
    expect(await failedCases({ create: () => new FirstPageListStore(), reopen: (store) => store })).toEqual(['lists every upgrade of many (more than a page of a scan or a directory read)']);
  });

  it('fails a store whose list rows keep fields of an earlier append', async () => {
    expect(await failedCases({ create: () => new StaleRowFieldsStore(), reopen: (store) => store })).toEqual([LIST, STATE_COPY]);
  });

  it('fails a store whose list rows miss appends of progress alone', async () => {
    expect(await failedCases({ create: () => new ProgressBlindRowStore(), reopen: (store) => store })).toEqual([STATE_AFTER, LIST]);
  });

  it('fails a store that lists the row of any state it is given, not the one after the events', async () => {
    expect(await failedCases({ create: () => new StateRowStore(), reopen: (store) => store })).toEqual([STATE_AFTER]);
  });

  it('fails a store that keeps the state it was given as its snapshot', async () => {
    expect(await failedCases({ create: () => new KeepsGivenStateStore(), reopen: (store) => store })).toEqual([STATE_AFTER, STATE_COPY]);
  });

  it('fails a store that takes the state of an append as its snapshot whatever its lastSeq', async () => {
    expect(await failedCases({ create: () => new SnapshotsAnyStateStore(), reopen: (store) => store })).toEqual([STATE_AFTER]);
  });

  it('fails a store that copies the state it was given only after an await', async () => {
    expect(await failedCases({ create: () => new LateCopyStore(), reopen: (store) => store })).toEqual([STATE_COPY]);
  });

  it('fails a store that takes an append past seq 0 to an upgrade it does not hold', async () => {
    expect(await failedCases({ create: () => new NoSeqCheckWhenAbsentStore(), reopen: (store) => store })).toEqual([CONFLICT_ABSENT]);
  });

  it('passes a store whose retention says which events it removed, and fails one that leaves a silent gap', async () => {
    const retaining = (silent: boolean): StoreFactory => ({ create: () => new MemoryStore(), reopen: (store) => store, retaining: () => new RetainingStore(silent) });
    expect(await failedCases(retaining(false))).toEqual([]);
    expect(await failedCases(retaining(true))).toEqual(['reports the events retention removed as trimmed, never as a gap (with a retaining store)']);
  });

  it('fails a store whose delete() leaves the data behind, given remains()', async () => {
    const graves = (keeps: boolean): StoreFactory => ({
      create: () => new GraveStore(keeps),
      reopen: (store) => store,
      remains: async (store, id) => [...((store as GraveStore).graves.has(id) ? [`grave of ${id}`] : []), ...((await store.load(id)) ? [`upgrade ${id}`] : [])],
    });
    expect(await failedCases(graves(false))).toEqual([]);
    expect(await failedCases(graves(true))).toEqual(['deletes an upgrade, and the id can be used again from seq 1']);
  });

  it('fails a store whose names replace "." and ":" with "_"', async () => {
    expect(await failedCases(naming((id) => id.replace(/[.:]/g, '_')))).toContain('never mixes two upgrades whose ids differ only in case or punctuation');
  });
});

/** A watchable store that tails from the current seq instead of replaying after afterSeq. */
class NoReplayStore extends WatchableMemoryStore {
  override watch(upgradeId: string, afterSeq: number, options?: { signal?: AbortSignal }): AsyncIterable<ProgressEvent> {
    const load = this.load(upgradeId);
    const tail = (async function* (store: NoReplayStore) {
      yield* WatchableMemoryStore.prototype.watch.call(store, upgradeId, Math.max(afterSeq, (await load)?.lastSeq ?? 0), options);
    })(this);
    return tail;
  }
}

/** Reads on from the last event handed out, included: it comes twice. */
class RepeatingStore extends WatchableMemoryStore {
  protected override readOnFrom(seq: number): number {
    return Math.max(0, seq - 1);
  }
}

/** Goes on after its signal aborts (ends only when the store closes). */
class DeafStore extends WatchableMemoryStore {
  protected override listens = false;
}

/** Leaves its iterations waiting when it closes. */
class StaysOpenWatchStore extends WatchableMemoryStore {
  protected override endsOnClose = false;
}

/** Throws when its signal aborts, rather than end the iteration. */
class ThrowsOnAbortStore extends WatchableMemoryStore {
  protected override aborted(): void {
    throw new Error('aborted');
  }
}

/** watchAll follows only the upgrades that existed when it started. */
class KnownOnlyStore extends WatchableMemoryStore {
  protected override follows(upgradeId: string, known: ReadonlySet<string>): boolean {
    return known.has(upgradeId);
  }
}

/** Lets a promise reject unhandled when its signal aborts (the iteration itself ends as it should). */
class LeakyAbortStore extends WatchableMemoryStore {
  override watch(upgradeId: string, afterSeq: number, options?: { signal?: AbortSignal }): AsyncIterable<ProgressEvent> {
    options?.signal?.addEventListener('abort', () => void Promise.reject(new Error('a rejection nobody handles')), { once: true });
    return super.watch(upgradeId, afterSeq, options);
  }
}

/** A watch that also hands out the new events of other upgrades. */
class LeakyWatchStore extends WatchableMemoryStore {
  protected override leaksOthers = true;
}

/** Takes any afterSeq, reading a bad one as 0. */
class LaxAfterSeqStore extends WatchableMemoryStore {
  override watch(upgradeId: string, afterSeq: number, options?: { signal?: AbortSignal }): AsyncIterable<ProgressEvent> {
    return super.watch(upgradeId, Number.isSafeInteger(afterSeq) && afterSeq >= 0 ? afterSeq : 0, options);
  }
}

/**
 * Subscribes when watch() is called (a feed tailed from now) but replays at the first read: the
 * events appended in between come from both, twice.
 */
class SubscribeAtCallStore extends WatchableMemoryStore {
  #shut = false;
  override async close(): Promise<void> {
    this.#shut = true;
    return super.close();
  }
  override watch(upgradeId: string, afterSeq: number, options: { signal?: AbortSignal } = {}): AsyncIterable<ProgressEvent> {
    const tail = this.watchAll(options);
    const replay = this.readEvents(upgradeId, afterSeq);
    const ended = (): boolean => this.#shut || options.signal?.aborted === true;
    return (async function* () {
      for await (const event of replay) {
        if (ended()) return;
        yield event;
      }
      for await (const event of tail) if (event.upgradeId === upgradeId) yield event;
    })();
  }
}

/** watchAll takes its start point at its first read, not at the call: what is appended in between is lost. */
class StartsAtFirstReadStore extends WatchableMemoryStore {
  override watchAll(options: { signal?: AbortSignal } = {}): AsyncIterable<ProgressEvent> {
    const all = (): AsyncIterable<ProgressEvent> => super.watchAll(options);
    return (async function* () {
      yield* all();
    })();
  }
}

describe('the conformance suite catches a broken watch() or watchAll()', () => {
  // Short waits: a case that waits for an event that never comes fails after 300 ms.
  const watching = (make: () => WatchableMemoryStore) => failedCases({ create: make, reopen: (store) => store }, { waitTimeout: 300 });
  const REPLAY = 'watch replays the events after afterSeq, then follows appends of this store and of a second one, without gaps or duplicates';
  const RACE = 'watch misses nothing and repeats nothing when appends race its start';
  const LATER = 'watch of an upgrade that does not exist yet hands out its events from seq 1 once it is created';
  const ABORT = 'watch ends when its signal aborts (already aborted, during the replay, while it waits) or its loop breaks';
  const CLOSE = 'watch and watchAll end when the store closes (while they wait, or during a replay)';
  const ALL = 'watchAll hands out the new events of every upgrade, also of upgrades created after it started, each in seq order';
  const ALL_ABORT = 'watchAll ends when its signal aborts (already aborted, while it waits)';
  const ARGS = 'refuses a bad upgrade id or afterSeq for watch with INVALID_ARGUMENT';

  it('passes a sound one, and runs its watch cases', async () => {
    expect(await watching(() => new WatchableMemoryStore({ snapshotEvery: 7 }))).toEqual([]);
  });

  it('fails a watch that does not replay the events after afterSeq', async () => {
    expect(await watching(() => new NoReplayStore())).toContain(REPLAY);
  });

  it('fails a watch that hands out an event twice', async () => {
    expect(await watching(() => new RepeatingStore())).toEqual(expect.arrayContaining([REPLAY, LATER]));
  });

  it('fails a watch or watchAll that goes on after its signal aborts, without hanging', async () => {
    expect(await watching(() => new DeafStore())).toEqual(expect.arrayContaining([ABORT, ALL_ABORT]));
  });

  it('fails a watch that throws when its signal aborts', async () => {
    expect(await watching(() => new ThrowsOnAbortStore())).toEqual(expect.arrayContaining([ABORT, ALL_ABORT]));
  });

  it('fails a watch that leaves a rejection unhandled when its signal aborts', async () => {
    expect(await watching(() => new LeakyAbortStore())).toEqual(expect.arrayContaining([REPLAY, LATER, ABORT]));
  });

  it('fails iterations that go on waiting once the store closed, without hanging', async () => {
    expect(await watching(() => new StaysOpenWatchStore())).toEqual([CLOSE]);
  });

  it('fails a watchAll that does not learn of upgrades created after it started', async () => {
    expect(await watching(() => new KnownOnlyStore())).toEqual([ALL, ALL_ABORT]);
  });

  it('fails a watch that hands out the events of other upgrades', async () => {
    expect(await watching(() => new LeakyWatchStore())).toContain(REPLAY);
  });

  it('fails a watch that subscribes at the call and replays at the first read', async () => {
    expect(await watching(() => new SubscribeAtCallStore())).toEqual([RACE]);
  });

  it('fails a watchAll that starts at its first read, not at the call', async () => {
    expect(await watching(() => new StartsAtFirstReadStore())).toEqual([ALL]);
  });

  it('fails a watch that takes a bad afterSeq', async () => {
    expect(await watching(() => new LaxAfterSeqStore())).toEqual([ARGS]);
  });
});
