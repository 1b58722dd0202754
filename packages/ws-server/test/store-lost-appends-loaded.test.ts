// A '*' subscriber whose topic holds a state LOADED from the store (no event applied since) when a
// failover loses the last acknowledged appends and the next writer writes other events under their
// seqs (see redis-lost-appends.integration.test.ts for the same with events applied one by one).
// A topic loads its state when a '*' client connects (the server lists the store), or when watchAll
// brings an upgrade it does not hold yet: the lost events may be in that state, with nothing applied
// after them. The store here stands for RedisStore: its data can be switched to the promoted
// replica's, and its watchAll hands out what the test pushes (the upgrade again from seq 1, as on a
// Cluster, or an end, as in single-node mode).
import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressError, type ListFilter, type ProgressEvent, type ProgressStore, type StoreInfo, type UpgradeProgress, type UpgradeSummaryRow } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { ProgressWebSocketServer } from '../src/index.js';
import { closedAfterEach, foldClient, type TestClient } from './helpers.js';

const opened = closedAfterEach();

class FailoverStore implements ProgressStore {
  #queue: Array<ProgressEvent | Error> = [];
  #wake: (() => void) | undefined;
  constructor(public data: MemoryStore) {}
  /** What watchAll hands out next (an Error ends it with that error). */
  push(...items: Array<ProgressEvent | Error>): void {
    this.#queue.push(...items);
    this.#wake?.();
  }
  load(upgradeId: string): Promise<UpgradeProgress | undefined> {
    return this.data.load(upgradeId);
  }
  readEvents(upgradeId: string, afterSeq: number, limit?: number): AsyncIterable<ProgressEvent> {
    return this.data.readEvents(upgradeId, afterSeq, limit);
  }
  list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    return this.data.list(filter);
  }
  append(upgradeId: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    return this.data.append(upgradeId, events, expectedSeq, state);
  }
  delete(upgradeId: string): Promise<boolean> {
    return this.data.delete(upgradeId);
  }
  info(): StoreInfo {
    return this.data.info();
  }
  async close(): Promise<void> {}
  /** No direct subscriber here: a watch that hands out nothing until stopped. */
  async *watch(_upgradeId: string, _afterSeq: number, options: { signal?: AbortSignal } = {}): AsyncGenerator<ProgressEvent> {
    if (!options.signal?.aborted) await new Promise<void>((resolve) => options.signal?.addEventListener('abort', () => resolve(), { once: true }));
    yield* [];
  }
  async *watchAll(options: { signal?: AbortSignal } = {}): AsyncGenerator<ProgressEvent> {
    const signal = options.signal;
    for (;;) {
      if (signal?.aborted) return;
      const item = this.#queue.shift();
      if (item === undefined) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
          signal?.addEventListener('abort', () => resolve(), { once: true });
        });
        continue;
      }
      if (item instanceof Error) throw item;
      yield item;
    }
  }
}

const all = async (store: MemoryStore, upgradeId: string): Promise<ProgressEvent[]> => {
  const out: ProgressEvent[] = [];
  for await (const e of store.readEvents(upgradeId, 0)) out.push(e);
  return out;
};

/**
 * `n` progress events of task t1 (added at seq 3): each applies on either history, so that nothing
 * but the check of the event served last tells the lost ones from the new ones.
 */
const progress = (f: EventFactory, n: number, base: number): ProgressEvent[] => Array.from({ length: n }, (_, i) => f.next('task.progress', { taskId: 't1', percentage: base + i }));

/**
 * u1 with seqs 1-4 on both the master and the replica, seqs 5-6 on the master only; a server over
 * the master with a '*' client that loaded u1 at seq 6. `other` writes the next writer's events.
 */
async function setup(): Promise<{ store: FailoverStore; promoted: MemoryStore; other: EventFactory; star: TestClient }> {
  const master = new MemoryStore();
  const promoted = new MemoryStore();
  const f = new EventFactory('u1');
  const first = f.batch(4);
  await master.append('u1', first, 0, f.snapshot());
  await promoted.append('u1', first, 0, f.snapshot());
  const other = new EventFactory('u1');
  other.state = f.snapshot();
  await master.append('u1', progress(f, 2, 50), 4, f.snapshot());
  const store = new FailoverStore(master);
  opened.server = new ProgressWebSocketServer({ port: 0, store });
  const { url } = await opened.server.start();
  const star = await opened.connect(url);
  star.send({ type: 'subscribe', upgradeId: '*' });
  await star.until((ms) => foldClient(ms, 'u1').state?.lastSeq === 6, 5000, "the '*' client at seq 6");
  // The failover: the promoted replica's data, without seqs 5-6.
  store.data = promoted;
  return { store, promoted, other, star };
}

describe("'*' over a store that lost acknowledged appends the server holds in a loaded state", () => {
  it('watchAll hands the upgrade out again from seq 1 (a Cluster): the client ends with what the store holds', async () => {
    const { store, promoted, other, star } = await setup();
    const five = progress(other, 1, 70);
    await promoted.append('u1', five, 4, other.snapshot());
    store.push(...(await all(promoted, 'u1')));
    const rest = progress(other, 3, 71);
    await promoted.append('u1', rest, 5, other.snapshot());
    store.push(...rest);
    await star.until((ms) => foldClient(ms, 'u1').state?.lastSeq === 8, 5000, "the '*' client at seq 8");
    const end = foldClient(star.messages, 'u1');
    expect(end.gaps).toEqual([]);
    expect(end.state).toEqual(await promoted.load('u1'));
    expect(end.resyncs.length).toBeGreaterThan(0);
  });

  it('watchAll ends (single-node mode) and the server reads on: the client ends with what the store holds', async () => {
    const { store, promoted, other, star } = await setup();
    await promoted.append('u1', progress(other, 1, 70), 4, other.snapshot());
    // The feed entry read last was lost with the appends (RedisStore's feedTrimmedError).
    store.push(new ProgressError('NOT_FOUND', 'watchAll: the feed entry read last is no longer in the feed', { context: { reason: 'trimmed' } }));
    const rest = progress(other, 3, 71);
    await promoted.append('u1', rest, 5, other.snapshot());
    store.push(...rest);
    await star.until((ms) => foldClient(ms, 'u1').state?.lastSeq === 8, 10_000, "the '*' client at seq 8");
    const end = foldClient(star.messages, 'u1');
    expect(end.gaps).toEqual([]);
    expect(end.state).toEqual(await promoted.load('u1'));
    expect(end.resyncs.length).toBeGreaterThan(0);
  });
});
