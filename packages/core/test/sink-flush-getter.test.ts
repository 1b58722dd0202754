import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker, type ProgressSink } from '../src/index.js';

/**
 * A sink (a class instance) whose `flush` is a getter that throws: a wrapper that hands out its
 * client's flush, with the client gone by then (closed elsewhere, say).
 */
class GoneClientSink implements ProgressSink {
  readonly name = 'gone-client';
  #client: { flush(): Promise<void> } | undefined = undefined;
  handle(): void {}
  get flush(): () => Promise<void> {
    return this.#client!.flush.bind(this.#client);
  }
}

describe('a sink whose flush getter throws', () => {
  it('is logged and isolated: flush() and close() resolve, the other sinks are flushed, and close() releases the lock', async () => {
    // Reading `sink.flush` was outside the try that isolates a sink's flush: the TypeError rejected
    // flush() and close(), and close() then never released the store's writer lock (the upgrade
    // could not be opened again in this process) nor cleared the subscribers.
    const store = new MemoryStore();
    const warnings: string[] = [];
    const logger = { debug() {}, info() {}, warn: (_: object, msg?: string) => void warnings.push(msg ?? ''), error() {} };
    let flushed = 0;
    const good: ProgressSink = { name: 'good', handle() {}, flush: async () => void (flushed += 1) };
    const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store, logger, sinks: [new GoneClientSink(), good] });
    await tracker.startUpgrade();
    await expect(tracker.flush()).resolves.toBeUndefined();
    await expect(tracker.close()).resolves.toBeUndefined();
    expect(flushed).toBe(2);
    expect(warnings.filter((m) => m === 'sink flush failed')).toHaveLength(2);
    const again = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store });
    expect(again.progress.lastSeq).toBe(2);
    await again.close();
  });
});
