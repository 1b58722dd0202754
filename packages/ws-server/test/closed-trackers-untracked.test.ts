// A long-running process serves one tracker per upgrade on one server, as the README shows:
// `server.track(tracker)`, then `tracker.close()`. The server was never told the tracker closed: it
// held every closed tracker (its state, its store) and a topic for it, for the life of the process.
// Found by a churn of 1,200 upgrades: 1,200 topics held, the heap grew by about 8 KB an upgrade. The
// test failed before the fix (topics = every upgrade tracked).
import { describe, expect, it } from 'vitest';
import type { ProgressTracker } from '@progress/core';
import { ProgressWebSocketServer } from '../src/index.js';
import { closedAfterEach, openTracker, sleep } from './helpers.js';

const opened = closedAfterEach();
const RETAINED = 2;
const UPGRADES = 6;

describe('ws-server: a tracked tracker that closes is untracked', () => {
  it('without a call to untrack: the server keeps at most maxRetainedUpgrades of them, and serves the last state', async () => {
    const server = (opened.server = new ProgressWebSocketServer({ port: 0, heartbeatMs: 0, maxRetainedUpgrades: RETAINED }));
    const { url } = await server.start();
    const watcher = await opened.connect(url);
    watcher.send({ type: 'subscribe', upgradeId: `closing-${UPGRADES}` });
    await watcher.next((m) => m.type === 'subscribed');
    const trackers: ProgressTracker[] = [];
    for (let i = 1; i <= UPGRADES; i++) {
      const tracker = await openTracker(`closing-${i}`);
      trackers.push(tracker);
      server.track(tracker);
      await tracker.startUpgrade();
      await tracker.addTask('t', 'T');
      await tracker.completeTask('t');
      await tracker.completeUpgrade();
      await tracker.close();
    }
    // (Each is untracked once its close is done, a few promise jobs after the close resolved here.)
    const settled = () => server.getStats().topics <= RETAINED + 1 && trackers.every((t) => t.getSystemInfo().sinks.length === 0);
    for (let i = 0; i < 250 && !settled(); i++) await sleep(20);
    // Before the fix: UPGRADES (one per tracker ever tracked). The one followed by name stays, with
    // RETAINED of the others.
    expect(server.getStats().topics).toBeLessThanOrEqual(RETAINED + 1);
    // No closed tracker has the server among its sinks any more.
    for (const tracker of trackers) expect(tracker.getSystemInfo().sinks).toEqual([]);
    // The subscriber got every event, and a later one the last state.
    expect(watcher.ofType('progress_event', `closing-${UPGRADES}`).map((m) => m.data.seq)).toEqual([1, 2, 3, 4, 5]);
    const late = await opened.connect(url);
    late.send({ type: 'subscribe', upgradeId: `closing-${UPGRADES}` });
    const snapshot = await late.next((m) => m.type === 'snapshot' && m.upgradeId === `closing-${UPGRADES}`);
    expect(snapshot.data.status).toBe('completed');
    expect(snapshot.seq).toBe(5);
  });

  it('untracks only once the close is done: the events made durable during the close still reach subscribers', async () => {
    const server = (opened.server = new ProgressWebSocketServer({ port: 0, heartbeatMs: 0 }));
    const { url } = await server.start();
    const a = await openTracker('busy-a');
    const b = await openTracker('busy-b');
    opened.trackers.push(a, b);
    server.track(a);
    server.track(b);
    const watcher = await opened.connect(url);
    watcher.send({ type: 'subscribe', upgradeId: 'busy-a' });
    await watcher.next((m) => m.type === 'snapshot');
    // Commands still being written when close() is called, while the other tracker flushes.
    void a.startUpgrade();
    void a.addTask('t', 'T');
    void a.completeTask('t');
    const closing = a.close();
    await b.flush();
    await closing;
    await watcher.next((m) => m.type === 'progress_event' && m.data.seq === 4);
    expect(watcher.ofType('progress_event', 'busy-a').map((m) => m.data.seq)).toEqual([2, 3, 4]);
    // b is still served.
    expect(b.getSystemInfo().sinks).toEqual(['websocket']);
  });
});

describe("ws-server: the sink side's close()", () => {
  it('untracks every tracker, as the README says: a tracker that goes on no longer hands its events to the closed server', async () => {
    const server = new ProgressWebSocketServer({ port: 0, heartbeatMs: 0 });
    await server.start();
    const tracker = await openTracker('outlives-server');
    opened.trackers.push(tracker);
    server.track(tracker);
    await tracker.startUpgrade();
    expect(tracker.getSystemInfo().sinks).toEqual(['websocket']);
    await server.close();
    expect(tracker.getSystemInfo().sinks).toEqual([]);
    await tracker.addTask('t', 'T');
    expect(server.getStats().topics).toBe(0);
  });
});
