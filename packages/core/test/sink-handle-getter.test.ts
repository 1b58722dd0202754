import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker, type ProgressEvent } from '../src/index.js';
import { delegatingStore } from './delegating-store.js';
import { expectCode } from './helpers.js';

/** A sink (a class instance) whose `handle` getter throws: a wrapper around a client not made yet. */
class UnreadySink {
  readonly name = 'unready';
  #client: { handle(event: ProgressEvent): void } | undefined = undefined;
  get handle(): (event: ProgressEvent) => void {
    return this.#client!.handle.bind(this.#client);
  }
}

describe('a sink whose handle getter throws', () => {
  it('is refused with INVALID_ARGUMENT by open() and addSink(), and changes nothing', async () => {
    // The check read `sink.handle` bare: its TypeError came out of open() and addSink() in the place
    // of the ProgressError every bad input gets.
    const store = new MemoryStore();
    const options = { upgradeId: 'u1', planId: 'p', clusterName: 'c', store };
    await expectCode(() => ProgressTracker.open({ ...options, sinks: [new UnreadySink() as never] }), 'INVALID_ARGUMENT');
    expect(await store.load('u1')).toBeUndefined();
    const tracker = await ProgressTracker.open(options);
    await expectCode(() => tracker.addSink(new UnreadySink() as never), 'INVALID_ARGUMENT');
    expect(tracker.getSystemInfo().sinks).toEqual([]);
    await tracker.close();
  });

  it('so is a store whose method getter throws', async () => {
    const inner = new MemoryStore();
    const store = delegatingStore(inner, {
      get append(): never {
        throw new Error('no connection yet');
      },
    });
    await expectCode(() => ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store }), 'INVALID_ARGUMENT');
  });
});
