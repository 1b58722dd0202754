import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker, type ProgressSink } from '../src/index.js';
import { delegatingStore } from './delegating-store.js';
import { expectCode } from './helpers.js';

// close() waits for the pending writes, flushes the sinks, then releases the store's lock: the lock
// is held while the sinks flush (a sink that takes long holds "close() (and the store's lock)", as
// the README says), so no other writer moves the upgrade before the sinks are done with its events.

describe('close()', () => {
  it('writes the pending events, flushes the sinks, then releases the lock, in that order', async () => {
    const inner = new MemoryStore();
    const calls: string[] = [];
    const store = delegatingStore(inner, {
      release: async (id) => {
        calls.push('release');
        await inner.release(id);
      },
      append: async (id, events, expectedSeq, state) => {
        await inner.append(id, events, expectedSeq, state);
        calls.push(`append ${events.map((e) => e.seq).join(',')}`);
      },
    });
    const sink: ProgressSink = {
      name: 'slow',
      handle: (event) => void calls.push(`handle ${event.seq}`),
      flush: async () => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        calls.push('flush');
      },
    };
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store, sinks: [sink] });
    void t.startUpgrade();
    await t.close();
    expect(calls).toEqual(['append 1', 'handle 1', 'append 2', 'handle 2', 'flush', 'release']);
  });

  it('closes the default MemoryStore (its own), and leaves a store passed in open', async () => {
    const own = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c' });
    await own.close();
    const read = async (t: ProgressTracker) => {
      for await (const e of t.readEvents(0)) void e;
    };
    await expect(read(own)).rejects.toMatchObject({ code: 'CLOSED' });
    const store = new MemoryStore();
    const passed = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store });
    await passed.close();
    await expect(read(passed)).resolves.toBeUndefined();
    expect(store.info().events).toBe(1);
  });

  it('is idempotent: a second close() flushes and releases nothing, so it cannot free the lock of the tracker opened after it', async () => {
    const store = new MemoryStore();
    let flushes = 0;
    const sink: ProgressSink = { name: 'counting', handle: () => {}, flush: async () => void flushes++ };
    const first = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store, sinks: [sink] });
    await Promise.all([first.close(), first.close()]);
    expect(flushes).toBe(1);
    const second = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store });
    await first.close();
    expect(flushes).toBe(1);
    // The lock is still the second tracker's: a third writer is refused.
    await expectCode(() => ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store }), 'CONFLICT');
    await second.close();
  });
});
