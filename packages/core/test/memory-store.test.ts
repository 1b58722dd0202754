import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker, assertAppend, filterRows, toSummaryRow, type Logger } from '../src/index.js';
import { EventFactory, describeProgressStore } from '../src/testing/index.js';

// MemoryStore runs the suite it ships, which also tests the suite. A small snapshotEvery makes the
// snapshot + tail path run in every case.
describeProgressStore('MemoryStore', { create: () => new MemoryStore({ snapshotEvery: 7 }), reopen: (store) => store }, { describe, it });
describeProgressStore('MemoryStore (default snapshots)', { create: () => new MemoryStore(), reopen: (store) => store }, { describe, it });

describe('MemoryStore snapshots', () => {
  it('refuses a state it cannot copy with INVALID_ARGUMENT, and stores none of the events', async () => {
    const store = new MemoryStore({ snapshotEvery: 2 });
    const f = new EventFactory('uncopyable');
    const events = f.batch(2);
    const state = { ...f.snapshot(), metadata: { callback: () => 1 } };
    await expect(store.append(f.upgradeId, events, 0, state)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(await store.load(f.upgradeId)).toBeUndefined();
    await store.append(f.upgradeId, events, 0, f.snapshot());
    expect((await store.load(f.upgradeId))?.lastSeq).toBe(2);
  });
});

describe('MemoryStore append arguments', () => {
  it('refuses an expectedSeq below 0 with INVALID_ARGUMENT (not CONFLICT), even with events numbered to follow it', async () => {
    const store = new MemoryStore();
    const f = new EventFactory('below-zero');
    // Numbered from 0: what follows an expectedSeq of -1.
    const events = f.batch(2).map((e) => ({ ...e, seq: e.seq - 1 }));
    expect(() => assertAppend('S', f.upgradeId, events, -1)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: '[S] expectedSeq must be a whole number >= 0, got -1' }));
    await expect(store.append(f.upgradeId, events, -1, f.snapshot())).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(await store.load(f.upgradeId)).toBeUndefined();
  });

  it('says what is wrong with a bad event (its seq), not that it could not be read', async () => {
    const store = new MemoryStore();
    const f = new EventFactory('bad-seq');
    const events = f.batch(2).map((e) => ({ ...e, seq: e.seq + 1 }));
    await expect(store.append(f.upgradeId, events, 0, f.snapshot())).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: '[MemoryStore] upgrade "bad-seq": event 0 must have upgradeId "bad-seq" and seq 1, got "bad-seq" seq 2',
    });
  });
});

describe('MemoryStore list filters', () => {
  it('refuses a limit below 0 with INVALID_ARGUMENT, rather than leave out the last row', async () => {
    const store = new MemoryStore();
    for (const id of ['l1', 'l2']) {
      const f = new EventFactory(id);
      await store.append(id, f.batch(2), 0, f.snapshot());
    }
    expect(await store.list({ limit: 2 })).toHaveLength(2);
    await expect(store.list({ limit: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('applies an empty clusterName (from an empty variable, say) as given: no upgrade has one, so no rows, not every row', async () => {
    const store = new MemoryStore();
    const f = new EventFactory('c1');
    await store.append(f.upgradeId, f.batch(2), 0, f.snapshot());
    expect(await store.list({ clusterName: f.snapshot().clusterName })).toHaveLength(1);
    expect(await store.list({ clusterName: '' })).toEqual([]);
  });

  it('lists upgrades updated at the same instant by upgradeId, whatever the order they were stored in', async () => {
    const rows = ['b', 'c', 'a'].map((id) => {
      const f = new EventFactory(id);
      f.batch(2);
      return toSummaryRow({ ...f.snapshot(), updatedAt: '2026-03-01T10:00:00.000Z' });
    });
    expect(filterRows(rows).map((r) => r.upgradeId)).toEqual(['a', 'b', 'c']);
  });

  it('refuses a filter that is not an object (null, an empty string, a bare status) rather than list every upgrade', async () => {
    const store = new MemoryStore();
    for (const filter of [null, '', 0, 'completed']) {
      await expect(store.list(filter as never), String(filter)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: '[@progress/core] a list filter must be an object' });
    }
  });

  it('refuses a limit that is not whole (2.5, NaN, Infinity) rather than round it or list every row', async () => {
    const store = new MemoryStore();
    for (const limit of [2.5, Number.NaN, Infinity]) {
      await expect(store.list({ limit }), String(limit)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('list limit must be a whole number') });
    }
  });

  it('applies an empty list of statuses as given: no status is in it, so no rows, not every row', async () => {
    const store = new MemoryStore();
    const f = new EventFactory('s1');
    await store.append(f.upgradeId, f.batch(2), 0, f.snapshot());
    expect(await store.list({ status: [f.snapshot().status] })).toHaveLength(1);
    expect(await store.list({ status: [] })).toEqual([]);
  });
});

describe('MemoryStore after close()', () => {
  it('lets release() through (close() let go of every lock), so that a tracker closed after its store closes without a warning', async () => {
    const store = new MemoryStore();
    const warnings: string[] = [];
    const logger: Logger = { debug: () => {}, info: () => {}, warn: (_fields: unknown, msg?: string) => void warnings.push(msg ?? ''), error: () => {} };
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store, logger });
    await store.close();
    await expect(store.release('u1')).resolves.toBeUndefined();
    await t.close();
    expect(warnings).toEqual([]);
    await expect(store.acquire('u1')).rejects.toMatchObject({ code: 'CLOSED' });
  });
});

describe('MemoryStore events', () => {
  it('freezes what it stores, details included: a reader cannot rewrite a stored event', async () => {
    const store = new MemoryStore();
    const f = new EventFactory('frozen');
    await store.append(f.upgradeId, f.batch(3), 0, f.snapshot());
    const read = async () => {
      const out: string[] = [];
      for await (const ev of store.readEvents(f.upgradeId, 0)) out.push(JSON.stringify(ev));
      return out;
    };
    const before = await read();
    for await (const ev of store.readEvents(f.upgradeId, 0)) {
      expect(() => Object.assign(ev.details, { scribbled: true })).toThrow(TypeError);
    }
    expect(await read()).toEqual(before);
  });
});
