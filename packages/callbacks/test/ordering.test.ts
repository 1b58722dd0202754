import { describe, expect, it } from 'vitest';
import { ProgressTracker, type ProgressEvent, type UpgradeProgress } from '@progress/core';
import { CallbackManager } from '../src/index.js';
import { deferred, openTracker } from './helpers.js';

const tick = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('CallbackManager: ordering', () => {
  it('runs an idle synchronous callback inside handle, before the command resolves', async () => {
    const manager = new CallbackManager();
    const seen: string[] = [];
    manager.addEventCallback((e) => {
      seen.push(e.type);
    });
    const tracker = await openTracker(manager);
    expect(seen).toEqual(['upgrade.created']);
    await tracker.startUpgrade();
    expect(seen).toEqual(['upgrade.created', 'upgrade.started']);
    await tracker.close();
  });

  it('queues the next call of a callback that is still busy with an earlier asynchronous call', async () => {
    const manager = new CallbackManager();
    const log: string[] = [];
    const gate = deferred();
    manager.addEventCallback((e) => {
      log.push(`start:${e.seq}`);
      if (e.seq === 2) return gate.promise.then(() => void log.push('end:2'));
      return undefined;
    });
    const others: number[] = [];
    manager.addEventCallback((e) => {
      others.push(e.seq);
    });
    const tracker = await openTracker(manager);
    await tracker.startUpgrade(); // seq 2: the first callback is now busy
    await tracker.addTask('t1', 'Task 1'); // seq 3: waits for it
    await tracker.startTask('t1'); // seq 4
    expect(log).toEqual(['start:1', 'start:2']);
    expect(others).toEqual([1, 2, 3, 4]); // the busy one holds up nobody else
    expect(manager.getStats().pending).toBe(3);
    gate.resolve();
    await manager.flush();
    expect(log).toEqual(['start:1', 'start:2', 'end:2', 'start:3', 'start:4']);
    expect(manager.getStats().pending).toBe(0);
    await tracker.close();
  });

  it('delivers events to each callback in seq order under mixed sync and async callbacks', async () => {
    const manager = new CallbackManager();
    // A small deterministic pseudo-random sequence, so that async callbacks finish out of step.
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 4;
    const logs: Record<string, number[]> = { sync: [], microtask: [], timer: [], sometimes: [], status: [] };
    manager.addEventCallback((e) => {
      logs.sync!.push(e.seq);
    });
    manager.addEventCallback(async (e) => {
      await Promise.resolve();
      logs.microtask!.push(e.seq);
    });
    manager.addEventCallback(async (e) => {
      await tick(next());
      logs.timer!.push(e.seq);
    });
    manager.on('*', (e: ProgressEvent) => {
      // Synchronous for most events, asynchronous for some: order must still hold.
      if (e.seq % 3 === 0) return tick(next()).then(() => void logs.sometimes!.push(e.seq));
      logs.sometimes!.push(e.seq);
      return undefined;
    });
    manager.addStatusCallback('completed', async (task, e) => {
      await tick(next());
      logs.status!.push(e.seq);
    });
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    const completedSeqs: number[] = [];
    const work: Array<Promise<unknown>> = [];
    for (let i = 0; i < 20; i++) {
      // Issued without awaiting: group commits hand several events to the sinks in one go.
      work.push(tracker.addTask(`t${i}`, `Task ${i}`));
      work.push(tracker.updateTaskProgress(`t${i}`, 50));
      work.push(tracker.completeTask(`t${i}`).then((e) => completedSeqs.push(e.seq)));
    }
    await Promise.all(work);
    await tracker.completeUpgrade();
    await tracker.flush();
    const all = Array.from({ length: tracker.progress.lastSeq }, (_, i) => i + 1);
    expect(all).toHaveLength(63);
    expect(logs.sync).toEqual(all);
    expect(logs.microtask).toEqual(all);
    expect(logs.timer).toEqual(all);
    expect(logs.sometimes).toEqual(all);
    expect(logs.status).toEqual(completedSeqs.sort((a, b) => a - b));
    expect(manager.getStats()).toMatchObject({ events: 63, failed: 0, timedOut: 0, dropped: 0, pending: 0 });
    await tracker.close();
  });

  it('an event handed over from inside a synchronous callback reaches every callback after the event being delivered', async () => {
    // Two real consecutive events of one upgrade, and the state after each.
    const got: Array<{ event: ProgressEvent; seq: number }> = [];
    const source = await openTracker(new CallbackManager());
    source.subscribe((event) => void got.push({ event, seq: event.seq }));
    await source.startUpgrade();
    await source.setCurrentPhase('Drain');
    const [second, third] = got.map((g) => g.event);
    const manager = new CallbackManager();
    const seenA: number[] = [];
    const seenB: number[] = [];
    manager.addEventCallback((e, state) => {
      seenA.push(e.seq);
      // A re-entrant hand-over, while B has not had this event yet.
      if (e.seq === second!.seq) manager.handle(third!, state!);
    });
    manager.addEventCallback((e) => void seenB.push(e.seq));
    manager.handle(second!, source.durableProgress);
    await manager.flush();
    expect(seenA).toEqual([second!.seq, third!.seq]);
    expect(seenB).toEqual([second!.seq, third!.seq]);
    await source.close();
  });

  it('events handed over from inside a synchronous callback reach the callbacks in seq order', async () => {
    const got: ProgressEvent[] = [];
    const source = await openTracker(new CallbackManager());
    source.subscribe((event) => void got.push(event));
    await source.startUpgrade();
    await source.setCurrentPhase('Drain');
    await source.setCurrentPhase('Upgrade');
    const [second, third, fourth] = got;
    const manager = new CallbackManager();
    const seenA: number[] = [];
    const seenB: number[] = [];
    manager.addEventCallback((e, state) => {
      seenA.push(e.seq);
      // Two re-entrant hand-overs, while B has not had this event yet.
      if (e.seq === second!.seq) {
        manager.handle(third!, state!);
        manager.handle(fourth!, state!);
      }
    });
    manager.addEventCallback((e) => void seenB.push(e.seq));
    manager.handle(second!, source.durableProgress);
    await manager.flush();
    const seqs = [second!.seq, third!.seq, fourth!.seq];
    expect(seenA).toEqual(seqs);
    expect(seenB).toEqual(seqs);
    await source.close();
  });

  it('an event handed over from inside a synchronous callback is given its own state, not the one of the event being delivered', async () => {
    const got: Array<{ event: ProgressEvent; state: UpgradeProgress }> = [];
    const recorder = { name: 'recorder', handle: (event: ProgressEvent, state: Readonly<UpgradeProgress>) => void got.push({ event, state: structuredClone(state) as UpgradeProgress }) };
    const source = await ProgressTracker.open({ upgradeId: 'cb-reentrant-state', planId: 'p', clusterName: 'c', sinks: [recorder] });
    await source.startUpgrade();
    await source.setCurrentPhase('Drain');
    await source.setCurrentPhase('Upgrade');
    const [, second, third, fourth] = got;
    const manager = new CallbackManager();
    const seenA: Array<[number, number, string | null]> = [];
    const seenB: Array<[number, number, string | null]> = [];
    manager.addEventCallback((e, state) => {
      seenA.push([e.seq, state.lastSeq, state.currentPhase]);
      if (e.seq === second!.event.seq) {
        manager.handle(third!.event, third!.state);
        manager.handle(fourth!.event, fourth!.state);
      }
    });
    manager.addEventCallback((e, state) => void seenB.push([e.seq, state.lastSeq, state.currentPhase]));
    manager.handle(second!.event, second!.state);
    await manager.flush();
    const expected = [second!, third!, fourth!].map(({ event, state }) => [event.seq, event.seq, state.currentPhase]);
    expect(expected.map(([, , phase]) => phase)).toEqual(['Initialization', 'Drain', 'Upgrade']);
    expect(seenA).toEqual(expected);
    expect(seenB).toEqual(expected);
    await source.close();
  });

  it('calls the callbacks of one event in registration order', async () => {
    const manager = new CallbackManager();
    const order: string[] = [];
    manager.addStatusCallback('in_progress', () => void order.push('status'));
    manager.on('task.started', () => void order.push('on'));
    manager.addEventCallback((e) => {
      if (e.type === 'task.started') order.push('event');
    });
    const tracker = await openTracker(manager);
    await tracker.addTask('t1', 'Task 1');
    await tracker.startTask('t1');
    expect(order).toEqual(['status', 'on', 'event']);
    await tracker.close();
  });
});
