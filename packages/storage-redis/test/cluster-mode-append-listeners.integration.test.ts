// A cluster-mode append's follow-up (index and feed, after the script) was bounded with an abort
// listener on the store's end-of-close signal, added and removed per append. Node's EventTarget
// walks its whole list of listeners to add one and to remove one: with many follow-ups in flight
// (a slow Redis), each append cost in proportion to them, quadratic in all, on the append path.
// That signal fires only after close() has waited for every follow-up, so it could never end one.
import { EventFactory } from '@progress/core/testing';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { adminClient, cleanup, freshPrefix, makeStore } from './helpers.js';

const prefixes = new Set<string>();
const admin = adminClient();
afterAll(async () => {
  await cleanup(admin, prefixes);
  admin.disconnect();
});

describe('RedisStore in cluster mode: an append', () => {
  it("registers no listener on the store's signals for its follow-up", async () => {
    const keyPrefix = freshPrefix('listeners');
    const store = makeStore(prefixes, { keyPrefix, mode: 'cluster' });
    const f = new EventFactory('listeners');
    // The first append (and the clock's first reading) may set up what the store keeps.
    await store.append(f.upgradeId, f.batch(1), 0, f.snapshot());
    const add = vi.spyOn(EventTarget.prototype, 'addEventListener');
    try {
      const appends: Array<Promise<void>> = [];
      for (let i = 0; i < 50; i++) {
        const expected = f.lastSeq;
        appends.push(store.append(f.upgradeId, f.batch(1), expected, f.snapshot()));
      }
      await Promise.all(appends);
      const abortListeners = add.mock.calls.filter(([type]) => type === 'abort').length;
      expect(abortListeners).toBe(0);
    } finally {
      add.mockRestore();
      await store.close();
    }
    const reader = makeStore(prefixes, { keyPrefix, mode: 'cluster' });
    expect((await reader.load('listeners'))?.lastSeq).toBe(51);
    expect((await reader.list()).map((row) => row.upgradeId)).toEqual(['listeners']);
    await reader.close();
  });
});
