import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/index.js';
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
