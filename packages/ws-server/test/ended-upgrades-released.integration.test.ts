// A server over a Redis store with a `*` subscriber (a dashboard left open) runs for weeks: it must
// not keep the state of every upgrade that ever ended. Found by a soak of 2,000 upgrades, where the
// server held one topic (and each `*` client one subscription) per upgrade ever run: the heap grew
// by about 45 KB an upgrade. Each test failed before the fix (topics = every upgrade run).
import { ProgressWebSocketServer } from '@progress/ws-server';
import { afterAll, describe, expect, it } from 'vitest';
import { type Msg, openTracker, sleep } from './helpers.js';
import { Harness } from './two-processes.js';

const harness = new Harness();
afterAll(() => harness.cleanup());
const RETAINED = 3;
const UPGRADES = 10;

/**
 * Waits (bounded) until `server` holds at most RETAINED topics. The last upgrade's topic is retained,
 * and the least recently updated let go of, once its state is known to be the ended one (after a
 * load, a few promise jobs after its last event went out): counted at once, it could still be one more.
 */
async function letGo(server: ProgressWebSocketServer): Promise<void> {
  for (let i = 0; i < 250 && server.getStats().topics > RETAINED; i++) await sleep(20);
  expect(server.getStats().topics).toBeLessThanOrEqual(RETAINED);
}

/**
 * Matches the message that tells the `*` subscriber `upgradeId` ended: its `upgrade.completed` event,
 * or, when the server learnt of the upgrade only after it ended (a busy machine), the first snapshot
 * it sends for it, which holds the ended state and no event after it.
 */
function ended(upgradeId: string) {
  return (m: Msg) =>
    m.upgradeId === upgradeId &&
    ((m.type === 'progress_event' && m.data.type === 'upgrade.completed') || (m.type === 'snapshot' && m.data.status === 'completed'));
}

/** A server over `serving` (its store), with a client subscribed to '*', and the store to write with. */
async function servedWithStar() {
  const { serving, writing } = harness.setup();
  const server = new ProgressWebSocketServer({ port: 0, store: serving, maxRetainedUpgrades: RETAINED });
  harness.onCleanup(() => server.stop());
  const { url: wsUrl } = await server.start();
  const star = await harness.connect(wsUrl);
  star.send({ type: 'subscribe', upgradeId: '*' });
  await star.next((m) => m.type === 'subscribed');
  return { server, wsUrl, star, writing };
}

describe("ws-server over Redis: upgrades that ended are not held for '*' subscribers alone", () => {
  it('written by another process: the server keeps at most maxRetainedUpgrades of them, and the * subscriber got every event', async () => {
    const { server, wsUrl, star, writing } = await servedWithStar();
    for (let i = 1; i <= UPGRADES; i++) {
      const tracker = await openTracker(`ended-${i}`, writing);
      await tracker.startUpgrade();
      await tracker.addTask('t', 'T');
      await tracker.completeTask('t');
      await tracker.completeUpgrade();
      await tracker.close();
      await star.next(ended(`ended-${i}`));
    }
    // Every event of every upgrade reached the * subscriber: its first snapshot, then each later seq
    // once and in order up to 5, none lost to the release.
    for (let i = 1; i <= UPGRADES; i++) {
      const [first] = star.ofType('snapshot', `ended-${i}`);
      const from = (first?.seq as number | undefined) ?? 0;
      expect(star.seqs(`ended-${i}`).filter((s) => s > from)).toEqual(Array.from({ length: 5 - from }, (_, k) => from + k + 1));
    }
    // Before the fix: 10 (one per upgrade ever written, for as long as the * subscriber stays).
    await letGo(server);

    // One let go of is still served by name, from the store.
    const named = await harness.connect(wsUrl);
    named.send({ type: 'subscribe', upgradeId: 'ended-1' });
    const snapshot = await named.next((m) => m.type === 'snapshot' && m.upgradeId === 'ended-1');
    expect(snapshot.seq).toBe(5);
    // A new run under an id let go of reaches the * subscriber again.
    expect(await writing.delete('ended-2')).toBe(true);
    const again = await openTracker('ended-2', writing);
    await again.startUpgrade();
    const from = star.messages.length;
    await star.next((m) => m.upgradeId === 'ended-2' && ((m.type === 'snapshot' && m.data.status === 'in_progress') || (m.type === 'progress_event' && m.data.type === 'upgrade.started')), from);
    await again.close();
  }, 30_000);

  it('tracked by this server (the composed tracker with a shared server): untracked upgrades that ended are let go of too', async () => {
    const { server, star, writing } = await servedWithStar();
    for (let i = 1; i <= UPGRADES; i++) {
      const tracker = await openTracker(`tracked-${i}`, writing);
      const untrack = server.track(tracker);
      await tracker.startUpgrade();
      await tracker.completeUpgrade();
      await star.next(ended(`tracked-${i}`));
      await tracker.close();
      untrack();
    }
    // Before the fix: 10.
    await letGo(server);
  }, 30_000);
});
