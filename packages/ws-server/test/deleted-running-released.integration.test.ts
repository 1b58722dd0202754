// A server over a Redis store with a `*` subscriber that never asks for `list_upgrades` (a relay or
// any client of the protocol other than the dashboard, which polls the list) runs for weeks. watchAll
// reports no deletion nor expiry: an upgrade deleted (or expired by retention) before the server saw
// it end was held, with the `*` subscriber's subscription to it, for as long as that client stayed.
// Found by a churn of 1,000 upgrades deleted while running: the server held 832 topics, and its heap
// grew without end. The test failed before the fix (topics = every upgrade deleted).
import { ProgressWebSocketServer } from '@progress/ws-server';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { openTracker, sleep, type Msg } from './helpers.js';
import { Harness } from './two-processes.js';

const harness = new Harness();
afterAll(() => harness.cleanup());
afterEach(() => void vi.useRealTimers());
const UPGRADES = 5;

/** Whether `m` gives a client upgrade `id` up to `seq` (a snapshot, when the server loaded it after that event, or the event). */
const upTo = (id: string, seq: number) => (m: Msg) =>
  m.upgradeId === id && ((m.type === 'snapshot' && m.data.lastSeq >= seq) || (m.type === 'progress_event' && m.data.seq >= seq));

describe("ws-server over Redis: upgrades deleted before they ended are not held for '*' subscribers alone", () => {
  it('lets go of them once it finds the store no longer holds them, and tells the * subscriber', async () => {
    // Only the intervals are faked: the server's periodic check is run at will below, and the
    // sockets, Redis and the server's other waits keep real time. (No heartbeat: it is an interval too.)
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const { serving, writing } = harness.setup();
    const server = new ProgressWebSocketServer({ port: 0, store: serving, heartbeatMs: 0 });
    harness.onCleanup(() => server.stop());
    const { url: wsUrl } = await server.start();
    const star = await harness.connect(wsUrl);
    star.send({ type: 'subscribe', upgradeId: '*' });
    await star.next((m) => m.type === 'subscribed');

    for (let i = 1; i <= UPGRADES; i++) {
      const tracker = await openTracker(`deleted-${i}`, writing);
      await tracker.startUpgrade();
      await tracker.addTask('t', 'T');
      await tracker.startTask('t');
      await star.next(upTo(`deleted-${i}`, 4));
      // The writer is gone (a crash, a cleanup job): the upgrade is deleted while it runs.
      await tracker.close();
      expect(await writing.delete(`deleted-${i}`)).toBe(true);
    }
    // One that ends normally and is still stored stays served.
    const kept = await openTracker('kept', writing);
    await kept.startUpgrade();
    await star.next(upTo('kept', 2));
    expect(server.getStats().topics).toBe(UPGRADES + 1);

    const from = star.messages.length;
    for (let i = 0; i < 250 && server.getStats().topics > 1; i++) {
      vi.advanceTimersByTime(60_000);
      await sleep(20);
    }
    // Before the fix: UPGRADES + 1, for as long as the * subscriber stays.
    expect(server.getStats().topics).toBe(1);
    // The * subscriber was told that each is gone (and nothing of the one still stored).
    for (let i = 1; i <= UPGRADES; i++) {
      const resync = star.messages.slice(from).find((m) => m.type === 'resync' && m.upgradeId === `deleted-${i}`);
      expect(resync).toMatchObject({ exists: false });
    }
    expect(star.messages.slice(from).filter((m) => m.upgradeId === 'kept')).toEqual([]);

    // Created again under a deleted id: the * subscriber gets it again.
    const again = await openTracker('deleted-1', writing);
    await again.startUpgrade();
    await star.next(upTo('deleted-1', 2), from);
    await again.close();
    await kept.close();
  }, 30_000);
});
