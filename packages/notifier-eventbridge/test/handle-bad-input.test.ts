import { describe, expect, it } from 'vitest';
import { isProgressError, type ProgressEvent, type UpgradeProgress } from '@progress/core';
import { localClientConfig } from '../../../tools/test-utils/src/eventbridge-endpoint.js';
import { thrown } from '../../../tools/test-utils/src/thrown.js';
import { EventBridgeNotifier } from '../src/index.js';
import { fakeEvent, fakeState } from './fixtures.js';

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
