// A run created again in the same millisecond (what a check and a listing can tell: its log is
// behind the state held), and a request that joins a load sent before it: real
// sockets, a real Redis (REDIS_URL), two processes on one store (test/two-processes.ts). (Found by a
// fifth review on 2026-11-29; each test failed before the fix.)
import { ProgressTracker, type ProgressStore } from '@progress/core';
import { afterAll, describe, expect, it } from 'vitest';
import { openTracker, sleep, type Msg, type TestClient } from './helpers.js';
import { Harness, holdNextLoad } from './two-processes.js';

const harness = new Harness();
afterAll(() => harness.cleanup());
const serve = (store: ProgressStore): ReturnType<Harness['serve']> => harness.serve(store);
const connect = (wsUrl: string): Promise<TestClient> => harness.connect(wsUrl);
const followAll = (wsUrl: string): Promise<TestClient> => harness.followAll(wsUrl);

/** A get_summary answer, short: NOT_FOUND, or the summary's lastSeq. */
function short(m: Msg): string | number {
  return m.type === 'error' ? (m.code as string) : (m.data as { lastSeq: number }).lastSeq;
}

async function summary(c: TestClient, upgradeId: string): Promise<Msg> {
  const from = c.messages.length;
  c.send({ type: 'get_summary', upgradeId });
  return c.next((m) => (m.type === 'progress_summary' || m.type === 'error') && (m.upgradeId === upgradeId || m.upgradeId === undefined), from);
}

/** Both runs are dated the same millisecond (a fixed clock: a delete and a new open within 1 ms). */
const SAME_MS = Date.parse('2026-03-01T10:00:00.000Z');
const open = (id: string, planId: string, store: ProgressStore): Promise<ProgressTracker> =>
  ProgressTracker.open({ upgradeId: id, planId, clusterName: 'c', store, now: () => SAME_MS });

describe('ws-server over Redis: a run created again in the same millisecond', () => {
  it("get_summary and list_upgrades answer the store's run, not the deleted one, when both runs share createdAt ('*' subscription only)", async () => {
    const { writing, store } = harness.setup();
    const { wsUrl } = await serve(store);
    const star = await followAll(wsUrl);

    // Run A: seq 1..3.
    const a = await open('ms', 'plan-A', writing);
    await a.startUpgrade();
    await a.addTask('a1', 'A1');
    await a.close();
    await star.until(() => star.seqs('ms').includes(3) || star.ofType('snapshot', 'ms').some((m) => m.seq === 3), 5000, "A's seq 3");

    // A deleted; run B, created in the same millisecond: seq 1 only (upgrade.created).
    expect(await writing.delete('ms')).toBe(true);
    const b = await open('ms', 'plan-B', writing);
    await b.close();
    expect((await writing.load('ms'))?.lastSeq).toBe(1);
    await sleep(300);

    // Asked after B was created: the store holds B (planId plan-B, lastSeq 1).
    const g = await connect(wsUrl);
    const answer = await summary(g, 'ms');
    const listFrom = g.messages.length;
    g.send({ type: 'list_upgrades' });
    const list = await g.next((m) => m.type === 'upgrades', listFrom);
    const row = (list.data as Array<{ upgradeId: string; planId: string; lastSeq: number }>).find((r) => r.upgradeId === 'ms');
    // (Both answered run A: lastSeq 3, plan-A.)
    expect({ summary: short(answer), plan: answer.data?.planId, row: row && { planId: row.planId, lastSeq: row.lastSeq } }).toEqual({
      summary: 1,
      plan: 'plan-B',
      row: { planId: 'plan-B', lastSeq: 1 },
    });
  }, 20_000);

});

describe('ws-server over Redis: a request that joins a load sent before it', () => {
  it('a get_summary sent after the upgrade was deleted is not answered from a load of the topic sent before the deletion', async () => {
    const { writing, store, hooks } = harness.setup();
    const { wsUrl } = await serve(store);
    const a = await openTracker('joined', writing);
    await a.startUpgrade();
    await a.close();

    // A first client subscribes by name: the topic's first load runs in Redis (run A, seq 2); its reply is held.
    const { gate, issued } = holdNextLoad(hooks, 'joined');
    const first = await connect(wsUrl);
    first.send({ type: 'subscribe', upgradeId: 'joined' });
    await issued.promise;

    // The upgrade is deleted; then a second client asks for its summary.
    expect(await writing.delete('joined')).toBe(true);
    const g = await connect(wsUrl);
    g.send({ type: 'get_summary', upgradeId: 'joined' });
    await sleep(200); // the request is in: it waits on the topic's load
    gate.resolve();

    const answer = await g.next((m) => m.type === 'progress_summary' || m.type === 'error');
    // (It answered run A, lastSeq 2: the load it joined was read before the deletion.)
    expect(short(answer)).toBe('NOT_FOUND');
  }, 20_000);

  it("a subscribe sent after the upgrade was deleted is not answered exists: true with the deleted run's snapshot from a load sent before the deletion", async () => {
    const { writing, store, hooks } = harness.setup();
    const { wsUrl } = await serve(store);
    const a = await openTracker('joined2', writing);
    await a.startUpgrade();
    await a.close();

    const { gate, issued } = holdNextLoad(hooks, 'joined2');
    const first = await connect(wsUrl);
    first.send({ type: 'subscribe', upgradeId: 'joined2' });
    await issued.promise;

    expect(await writing.delete('joined2')).toBe(true);
    const second = await connect(wsUrl);
    second.send({ type: 'subscribe', upgradeId: 'joined2' });
    await sleep(200);
    gate.resolve();

    const subscribed = await second.next((m) => m.type === 'subscribed');
    // (It answered exists: true and sent run A's snapshot, taken back by a resync later.)
    expect({ exists: subscribed.exists, snapshots: second.ofType('snapshot', 'joined2').length }).toEqual({ exists: false, snapshots: 0 });
  }, 20_000);
});
