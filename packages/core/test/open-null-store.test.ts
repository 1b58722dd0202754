import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker } from '../src/index.js';
import { expectCode } from './helpers.js';

describe('ProgressTracker.open({ store: null })', () => {
  it('is INVALID_ARGUMENT, not a TypeError, and not a MemoryStore in its place', async () => {
    // `store: config.store ?? null`: null is not "no store" (the default MemoryStore would lose every
    // event with the process without a word), and reading `append` of it threw a bare TypeError.
    await expectCode(() => ProgressTracker.open({ upgradeId: 'u1', planId: 'p1', clusterName: 'c1', store: null as never }), 'INVALID_ARGUMENT');
  });

  it('is INVALID_ARGUMENT, naming what is missing, for a store without a method the tracker calls (not STORE_UNAVAILABLE from open)', async () => {
    // A store without load() passed the check (it looked at append only): open() then failed as if
    // the store were down, STORE_UNAVAILABLE "load failed".
    const memory = new MemoryStore();
    for (const missing of ['append', 'load', 'readEvents', 'info'] as const) {
      const store = { append: memory.append.bind(memory), load: memory.load.bind(memory), readEvents: memory.readEvents.bind(memory), info: memory.info.bind(memory), close: memory.close.bind(memory), list: memory.list.bind(memory), delete: memory.delete.bind(memory) };
      delete (store as Partial<typeof store>)[missing];
      const err = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p1', clusterName: 'c1', store: store as never }).catch((e: unknown) => e);
      expect(err, missing).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(`${missing}()`) });
    }
    expect(await memory.load('u1')).toBeUndefined();
  });
});

