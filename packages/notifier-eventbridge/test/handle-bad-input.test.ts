import { describe, expect, it } from 'vitest';
import { isProgressError, type ProgressError, type ProgressEvent, type UpgradeProgress } from '@progress/core';
import { localClientConfig } from '../../../tools/test-utils/src/eventbridge-endpoint.js';
import { thrown } from '../../../tools/test-utils/src/thrown.js';
import { EventBridgeNotifier } from '../src/index.js';
import { fakeEvent, fakeState } from './fixtures.js';
import { startEventBridgeEndpoint } from '../../../tools/test-utils/src/eventbridge-endpoint.js';
import { localClient } from './helpers.js';

// handle() is the sink side, called by the tracker; a program that hands events over itself can
// pass anything. What is not an event and its upgrade's state is refused with INVALID_ARGUMENT, not
// a TypeError, and nothing is queued.

describe('EventBridgeNotifier.handle() with what is not an event and its state', () => {
  const event = fakeEvent(2, 'task.started');
  const cases: Array<[string, unknown, unknown]> = [
    ['a null event', null, fakeState],
    ['an undefined event', undefined, fakeState],
    ['a string event', 'task.started', fakeState],
    ['an event without a valid upgradeId', { ...event, upgradeId: 42 }, fakeState],
    ['an event with seq 0', { ...event, seq: 0 }, fakeState],
    ['a null state', event, null],
    ['a state that is a string', event, 'state'],
    ['the state of another upgrade', event, { ...fakeState, upgradeId: 'u2' }],
  ];

  it.each(cases)('refuses %s with INVALID_ARGUMENT and queues nothing', async (_, badEvent, badState) => {
    // A linger far longer than the test: nothing is sent, what handle() queued stays counted.
    const notifier = new EventBridgeNotifier({ busName: 'bus', clientConfig: localClientConfig('http://127.0.0.1:9'), lingerMs: 60_000 });
    const err = thrown(() => notifier.handle(badEvent as ProgressEvent, badState as UpgradeProgress));
    expect(isProgressError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect(err.message).toMatch(/^\[@progress\/notifier-eventbridge\] handle\(\)/);
    expect(notifier.stats()).toMatchObject({ queued: 0 });
    notifier.handle(event, fakeState);
    expect(notifier.stats()).toMatchObject({ queued: 1 });
    await notifier.shutdown(1);
  });
});

describe('EventBridgeNotifier.handle() with an event it cannot put in an entry', () => {
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  const event = fakeEvent(2, 'task.progress');
  const cases: Array<[string, ProgressEvent]> = [
    // The SDK wrote its Time as NaN: the body of the whole request was not JSON, and EventBridge
    // refused the request (400), giving up every good event batched with it as `rejected`.
    ['a timestamp that is not a date', { ...event, timestamp: 'yesterday' }],
    ['no timestamp', { ...event, timestamp: undefined } as unknown as ProgressEvent],
    // new Date() reads these as dates (1970-01-01 and its first ms): sent with that Time. Every store
    // refuses an event whose timestamp is not a string.
    ['a null timestamp', { ...event, timestamp: null } as unknown as ProgressEvent],
    ['a timestamp that is a number', { ...event, timestamp: 0 } as unknown as ProgressEvent],
    ['a timestamp of true', { ...event, timestamp: true } as unknown as ProgressEvent],
    // JSON.stringify threw its TypeError out of handle().
    ['details holding a BigInt', { ...event, details: { bytes: 10n } }],
    ['circular details', { ...event, details: circular }],
  ];

  it.each(cases)('refuses %s with INVALID_ARGUMENT, queues nothing, and the events batched beside it are delivered', async (_, badEvent) => {
    const endpoint = await startEventBridgeEndpoint();
    const client = localClient(endpoint.url);
    const failures: unknown[] = [];
    const notifier = new EventBridgeNotifier({ busName: 'bus', client, eventTypes: ['task.progress'], onError: (f) => failures.push(f) });
    try {
      notifier.handle(fakeEvent(1, 'task.progress'), fakeState);
      const err = thrown(() => notifier.handle(badEvent, fakeState));
      expect(isProgressError(err, 'INVALID_ARGUMENT')).toBe(true);
      expect(err.message).toMatch(/^\[@progress\/notifier-eventbridge\] handle\(\)/);
      // Which event, for a log of the sink's failure.
      expect((err as ProgressError).context).toEqual({ upgradeId: badEvent.upgradeId, seq: 2, type: 'task.progress' });
      expect(notifier.stats()).toMatchObject({ queued: 1 });
      notifier.handle(fakeEvent(3, 'task.progress'), fakeState);
      expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
      expect(endpoint.entries.map((e) => e.detail!.seq)).toEqual([1, 3]);
      expect(failures).toEqual([]);
    } finally {
      await notifier.shutdown(0);
      client.destroy();
      await endpoint.close();
    }
  });
});

describe('EventBridgeNotifier.handle() with a state whose metadata JSON cannot write', () => {
  it('refuses the upgrade.created it sends the metadata with, naming the metadata, not the details', async () => {
    const notifier = new EventBridgeNotifier({ busName: 'bus', clientConfig: localClientConfig('http://127.0.0.1:9'), eventTypes: ['upgrade.created'] });
    const state = { ...fakeState, metadata: { bytes: 10n } } as unknown as UpgradeProgress;
    const err = thrown(() => notifier.handle(fakeEvent(1, 'upgrade.created'), state));
    expect(isProgressError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect(err.message).toMatch(/metadata/);
    expect(notifier.stats()).toMatchObject({ queued: 0 });
    await notifier.shutdown(1);
  });
});
