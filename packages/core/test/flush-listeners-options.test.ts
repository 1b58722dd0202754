// Found by a review on 2026-11-29; each test failed before its fix.
import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker, isProgressError, type ProgressEvent, type UpgradeProgress } from '../src/index.js';

describe('subscribe(): an async listener that rejects', () => {
  it('is logged and isolated like one that throws, not an unhandled rejection (which ends a Node process)', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.prependListener('unhandledRejection', onUnhandled);
    const warnings: Array<{ obj: unknown; msg: string | undefined }> = [];
    const logger = { debug() {}, info() {}, error() {}, warn: (obj: object, msg?: string) => void warnings.push({ obj, msg }) };
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', logger });
    try {
      const seen: number[] = [];
      t.subscribe(async (ev) => {
        throw new Error(`listener failed at ${ev.seq}`);
      });
      t.subscribe((ev) => void seen.push(ev.seq));
      await t.startUpgrade();
      await new Promise((r) => setTimeout(r, 20));
      expect(unhandled).toEqual([]);
      expect(warnings).toEqual([{ obj: expect.objectContaining({ err: expect.objectContaining({ message: 'listener failed at 2' }), seq: 2 }), msg: 'subscriber threw' }]);
      expect(seen).toEqual([2]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await t.close();
    }
  });
});

describe('subscribe(): a listener that throws', () => {
  it('is logged and isolated: the listeners after it, the sinks and the durable state get every event of a write', async () => {
    const store = new MemoryStore();
    const warnings: Array<{ obj: unknown; msg: string | undefined }> = [];
    const logger = { debug() {}, info() {}, error() {}, warn: (obj: object, msg?: string) => void warnings.push({ obj, msg }) };
    const sunk: number[] = [];
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store, logger, sinks: [{ name: 'rec', handle: (ev) => void sunk.push(ev.seq) }] });
    const seen: number[] = [];
    t.subscribe((ev) => {
      throw new Error(`listener failed at ${ev.seq}`);
    });
    t.subscribe((ev) => void seen.push(ev.seq));
    // One write of three events (one tick), then one more.
    await Promise.all([t.startUpgrade(), t.addTask('a', 'A'), t.startTask('a')]);
    await t.completeTask('a');
    expect(seen).toEqual([2, 3, 4, 5]);
    expect(sunk).toEqual([1, 2, 3, 4, 5]);
    expect(warnings.map((w) => w.msg)).toEqual(['subscriber threw', 'subscriber threw', 'subscriber threw', 'subscriber threw']);
    expect(JSON.stringify(t.durableProgress)).toBe(JSON.stringify(await store.load('u1')));
    await t.close();
  });
});

describe('flush() while commands keep coming', () => {
  /** A MemoryStore whose appends take 20 ms, as a network store's would. */
  class SlowStore extends MemoryStore {
    override async append(id: string, events: readonly ProgressEvent[], seq: number, state: Readonly<UpgradeProgress>): Promise<void> {
      await new Promise((r) => setTimeout(r, 20));
      return super.append(id, events, seq, state);
    }
  }

  it('resolves once the events accepted before it are durable, while the stream of commands goes on', async () => {
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store: new SlowStore() });
    await t.startUpgrade();
    await t.addTask('t1', 'T1');
    // A worker reporting every 5 ms (faster than a write) until flush() resolves, or 10 s at most.
    let streaming = true;
    let n = 0;
    const giveUp = Date.now() + 10_000;
    const timer = setInterval(() => {
      if (Date.now() > giveUp) streaming = false;
      if (streaming) void t.updateTaskProgress('t1', (n++ % 100) + 0.5).catch(() => {});
    }, 5);
    try {
      await new Promise((r) => setTimeout(r, 100));
      const accepted = t.progress.lastSeq;
      await t.flush();
      const stillStreaming = streaming;
      streaming = false;
      expect(t.durableProgress.lastSeq).toBeGreaterThanOrEqual(accepted);
      expect(stillStreaming).toBe(true); // it resolved only once the commands stopped
      expect(t.progress.lastSeq).toBeGreaterThan(accepted);
    } finally {
      clearInterval(timer);
      await t.close();
    }
    expect(t.durableProgress.lastSeq).toBe(t.progress.lastSeq);
  }, 20_000);

  it('resolves when the write of the events before it fails (they are refused, not pending)', async () => {
    let fail = false;
    class FailingStore extends MemoryStore {
      override async append(id: string, events: readonly ProgressEvent[], seq: number, state: Readonly<UpgradeProgress>): Promise<void> {
        await new Promise((r) => setTimeout(r, 5));
        if (fail) throw new Error('disk gone');
        return super.append(id, events, seq, state);
      }
    }
    const t = await ProgressTracker.open({ upgradeId: 'u2', planId: 'p', clusterName: 'c', store: new FailingStore() });
    await t.startUpgrade();
    fail = true;
    const refused = t.setCurrentPhase('x').catch((e: unknown) => e);
    await t.flush();
    expect(isProgressError(await refused, 'STORE_UNAVAILABLE')).toBe(true);
    expect(t.progress.lastSeq).toBe(t.durableProgress.lastSeq);
    fail = false;
    await t.close();
  });
});

describe('options read once, a clock that throws', () => {
  it('advanceTask records the values it checked (a getter answering differently later is not read again)', async () => {
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c' });
    await t.addTask('t', 'T', 'upgrade_step', { totalSteps: 4 });
    let reads = 0;
    const options = {
      get currentStep(): string {
        reads += 1;
        return reads <= 1 ? 'drain' : 'x'.repeat(100_000);
      },
    };
    const ev = await t.advanceTask('t', options);
    expect(ev.details.currentStep).toBe('drain');
    expect(t.progress.tasks.t!.currentStep).toBe('drain');
    expect(reads).toBe(1);
    await t.close();
  });

  it('a now() that throws is INVALID_ARGUMENT, with the error as its cause, and changes nothing', async () => {
    let fail = false;
    const broke = new Error('clock broke');
    const t = await ProgressTracker.open({
      upgradeId: 'u2',
      planId: 'p',
      clusterName: 'c',
      now: () => {
        if (fail) throw broke;
        return Date.now();
      },
    });
    fail = true;
    const err = await t.startUpgrade().catch((e: unknown) => e);
    expect(isProgressError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect((err as Error).message).toMatch(/now\(\) option threw: clock broke/);
    expect((err as Error).cause).toBe(broke);
    expect(t.progress.status).toBe('not_started');
    expect(t.progress.lastSeq).toBe(1);
    fail = false;
    await t.close();
  });

  it('the queries that read the clock say the same: getProgressSummary() and getEstimatedCompletionTime()', async () => {
    let fail = false;
    const t = await ProgressTracker.open({
      upgradeId: 'u3',
      planId: 'p',
      clusterName: 'c',
      now: () => {
        if (fail) throw new Error('clock broke');
        return Date.now();
      },
    });
    await t.startUpgrade();
    fail = true;
    expect(() => t.getProgressSummary()).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => t.getEstimatedCompletionTime()).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    fail = false;
    await t.close();
  });
});
