import { describe, expect, it } from 'vitest';
import { MemoryStore, assertValidId, filterRows, toSummaryRow, type ListFilter, type UpgradeSummaryRow, type ProgressEvent, type ProgressStore, type UpgradeProgress } from '../src/index.js';
import { describeProgressStore, type StoreFactory } from '../src/testing/index.js';

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

/** A sound store but for close(), which does nothing. */
class EverOpenStore extends MemoryStore {
  override async close(): Promise<void> {}
}

/** Runs the suite against `factory` and returns the names of the cases that failed. */
async function failedCases(factory: StoreFactory): Promise<string[]> {
  const cases: Array<{ name: string; fn: () => Promise<void> | void }> = [];
  describeProgressStore('under test', factory, { describe: (_name, fn) => fn(), it: (name, fn) => void cases.push({ name, fn }) });
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
    expect(await failedCases({ create: () => new EagerRowsStore(), reopen: (store) => store })).toEqual(['refuses a stale or future expectedSeq with CONFLICT and stores nothing']);
  });

  it('fails a store that goes on working after close()', async () => {
    expect(await failedCases({ create: () => new EverOpenStore(), reopen: (store) => store })).toEqual(['refuses every call after close with CLOSED']);
  });

  it('fails a store whose names replace "." and ":" with "_"', async () => {
    expect(await failedCases(naming((id) => id.replace(/[.:]/g, '_')))).toContain('never mixes two upgrades whose ids differ only in case or punctuation');
  });
});
