import { describe, expect, it } from 'vitest';
import { isProgressError, ProgressTracker, type ProgressEvent, type UpgradeProgress } from '@progress/core';
import { ProgressWebSocketServer } from '../src/index.js';
import { thrown } from '../../../tools/test-utils/src/thrown.js';

// handle() is the sink side, called by the tracker; a program that hands events over itself can
// pass anything. `handle({}, state)` made and kept a topic for the upgrade "undefined" for the life
// of the server. What is not an event and its upgrade's state is now refused with INVALID_ARGUMENT.

describe('ProgressWebSocketServer.handle() with what is not an event and its state', async () => {
  const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c' });
  const event = await tracker.startUpgrade();
  const state = structuredClone(tracker.progress) as UpgradeProgress;
  await tracker.close();
  const cases: Array<[string, unknown, unknown]> = [
    ['a null event', null, state],
    ['an empty object', {}, state],
    ['a number', 42, state],
    ['an event without a valid upgradeId', { ...event, upgradeId: '' }, state],
    ['a null state', event, null],
    ['the state of another upgrade', event, { ...state, upgradeId: 'u2' }],
  ];

  it.each(cases)('refuses %s with INVALID_ARGUMENT and keeps no topic', async (_, badEvent, badState) => {
    const server = new ProgressWebSocketServer({ port: 0, host: '127.0.0.1' });
    await server.start();
    try {
      const err = thrown(() => server.handle(badEvent as ProgressEvent, badState as UpgradeProgress));
      expect(isProgressError(err, 'INVALID_ARGUMENT')).toBe(true);
      expect(err.message).toMatch(/^\[@progress\/ws-server\] handle\(\)/);
      expect(server.getStats().topics).toBe(0);
      server.handle(event, state);
      expect(server.getStats().topics).toBe(1);
    } finally {
      await server.close();
    }
  });
});
