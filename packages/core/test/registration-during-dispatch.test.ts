import { describe, expect, it } from 'vitest';
import { ProgressTracker, type ProgressEvent, type ProgressSink } from '../src/index.js';

const open = (sinks: ProgressSink[]) => ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', sinks });

describe('(un)subscribing from a sink while an event is handed out', () => {
  it('takes effect from the next event, as for a listener or a sink doing it: no event skipped, none handed to a listener added after it', async () => {
    // #emit read the listener list after the sinks had run: a sink that unsubscribed a listener on
    // an event (tearing the subscribers down on upgrade.completed, say) made it miss that very
    // event, and a listener a sink subscribed got the event it was subscribed on.
    // Set once the tracker is open (the sink gets upgrade.created during open()).
    const ref: { tracker?: ProgressTracker; off?: () => void } = {};
    const early: number[] = [];
    const late: number[] = [];
    const sink: ProgressSink = {
      name: 'registrar',
      handle: (ev: ProgressEvent) => {
        if (ev.type === 'upgrade.started') ref.tracker!.subscribe((e) => void late.push(e.seq));
        if (ev.type === 'upgrade.completed') ref.off?.();
      },
    };
    const tracker = await open([sink]);
    ref.tracker = tracker;
    ref.off = tracker.subscribe((e) => void early.push(e.seq));
    await tracker.startUpgrade(); // seq 2
    await tracker.setCurrentPhase('Nodes'); // seq 3
    await tracker.completeUpgrade(); // seq 4
    await tracker.close();
    expect(early).toEqual([2, 3, 4]);
    expect(late).toEqual([3, 4]);
  });
});
