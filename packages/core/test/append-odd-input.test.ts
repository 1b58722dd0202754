import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker, type ProgressEvent, type UpgradeProgress } from '../src/index.js';
import { expectCode } from './helpers.js';

const unreadable = new Proxy({}, { get: () => { throw new Error('trap'); } });

/** A valid first event and the state after it, from a real tracker. */
async function firstEvent(): Promise<{ event: ProgressEvent; state: UpgradeProgress }> {
  const tracker = await ProgressTracker.open({ upgradeId: 'odd', planId: 'p', clusterName: 'c' });
  const events: ProgressEvent[] = [];
  for await (const e of tracker.readEvents(0)) events.push(e);
  const state = structuredClone(tracker.progress) as UpgradeProgress;
  await tracker.close();
  return { event: structuredClone(events[0]!), state };
}

// The checks every store runs on append (assertAppend, assertAppendState): an event or a state that
// cannot be read (a getter or Proxy trap that throws), or whose upgradeId a message cannot print (a
// Symbol, an object without prototype), threw a bare TypeError or the trap's error from MemoryStore
// and JsonFileStore, where RedisStore refused it with INVALID_ARGUMENT.
describe('append of an event or a state that cannot be read or printed', () => {
  it('is refused with INVALID_ARGUMENT, and nothing is stored', async () => {
    const { event, state } = await firstEvent();
    const store = new MemoryStore();
    const badEvents: unknown[] = [unreadable, { ...event, upgradeId: Symbol('odd') }, { ...event, upgradeId: Object.create(null) }, { ...event, seq: Object.create(null) }];
    for (const bad of badEvents) await expectCode(() => store.append('odd', [bad as ProgressEvent], 0, state), 'INVALID_ARGUMENT');
    await expectCode(() => store.append('odd', [event], 0, unreadable as UpgradeProgress), 'INVALID_ARGUMENT');
    expect(await store.load('odd')).toBeUndefined();
    // The good one is then taken.
    await store.append('odd', [event], 0, state);
    expect((await store.load('odd'))?.lastSeq).toBe(1);
  });
});
