// `server.track(createProgressTracker(...))` without its `await`, or any other value that is not a
// tracker, threw "tracker.addSink is not a function" (a bare TypeError); an object with an addSink
// but no valid upgradeId was even taken: the server became its sink, and held a topic for the
// upgrade "undefined".
import { describe, expect, it } from 'vitest';
import type { ProgressTracker } from '@progress/core';
import { ProgressWebSocketServer } from '../src/index.js';
import { openTracker } from './helpers.js';

describe('ws-server: track() of something that is not a tracker', () => {
  it('is refused with INVALID_ARGUMENT, and the server takes nothing of it', async () => {
    const server = new ProgressWebSocketServer({ port: 0, heartbeatMs: 0 });
    const tracker = await openTracker('track-bad');
    let sinksAdded = 0;
    const halfTracker = { addSink: () => { sinksAdded++; return () => {}; }, upgradeId: 'not an id', readEvents: tracker.readEvents.bind(tracker), durableProgress: tracker.durableProgress };
    const bad: unknown[] = [undefined, null, 5, 'track-bad', Promise.resolve(tracker), {}, halfTracker, { ...halfTracker, upgradeId: undefined }];
    for (const value of bad) {
      expect(() => server.track(value as ProgressTracker), String(value)).toThrow(expect.objectContaining({ name: 'ProgressError', code: 'INVALID_ARGUMENT' }));
    }
    expect(sinksAdded).toBe(0);
    expect(server.getStats().topics).toBe(0);
    // A real one is still taken.
    const untrack = server.track(tracker);
    expect(server.getStats().topics).toBe(1);
    untrack();
    await tracker.close();
    await server.close();
  });
});
