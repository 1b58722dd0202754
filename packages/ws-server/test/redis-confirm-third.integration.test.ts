// Still more of the store check before an answer (Topic.confirmRun and its callers): real sockets, a
// real Redis (REDIS_URL). The served store wraps a RedisStore so that one load's reply can be held
// (what is read is what Redis held when the command ran). (Found by a third review on 2026-11-29;
// each test failed before the fix.)
import type { ProgressStore } from '@progress/core';
import { afterAll, describe, expect, it } from 'vitest';
import { openTracker, sleep, type Msg, type TestClient } from './helpers.js';
import { Harness, holdNextLoad } from './two-processes.js';

const harness = new Harness();
afterAll(() => harness.cleanup());
const setup = (): ReturnType<Harness['setup']> => harness.setup();
const serve = (store: ProgressStore): ReturnType<Harness['serve']> => harness.serve(store);
const connect = (wsUrl: string): Promise<TestClient> => harness.connect(wsUrl);
const followAll = (wsUrl: string): Promise<TestClient> => harness.followAll(wsUrl);

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(10);
  }
}

/** A get_summary answer, short: NOT_FOUND, or the summary's lastSeq. */
function short(m: Msg): string | number {
  return m.type === 'error' ? (m.code as string) : (m.data as { lastSeq: number }).lastSeq;
}

describe('ws-server over Redis: get_summary after its confirming read was overtaken', () => {
  it('a get_summary of an upgrade deleted before it was asked is answered NOT_FOUND, also when the topic is released while its confirming read is in flight', async () => {
    const { writing, store, hooks } = setup();
    const { server, wsUrl } = await serve(store);
    const star = await connect(wsUrl); // the only holder of the topic
    star.send({ type: 'subscribe', upgradeId: '*' });
    await star.next((m) => m.type === 'subscribed');
    const t = await openTracker('rel', writing);
    await t.startUpgrade();
    await t.close();
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'rel');

    expect(await writing.delete('rel')).toBe(true); // deleted before the request below
    await sleep(100);
    const { gate, issued } = holdNextLoad(hooks, 'rel');
    const g = await connect(wsUrl);
    g.send({ type: 'get_summary', upgradeId: 'rel' });
    await issued.promise; // its confirming read ran in Redis: "none"

    // The '*' client leaves: the topic is released (closed, out of the map) while that read is in flight.
    await star.close();
    await until(() => server.getStats().topics === 0);
    gate.resolve();

    const answer = await g.next((m) => m.type === 'progress_summary' || m.type === 'error');
    // (It answered from the released topic's frozen state: a progress_summary of the deleted upgrade.)
    expect(short(answer)).toBe('NOT_FOUND');
  }, 20_000);

  it('a get_summary sent after a run was deleted is not answered with that run when its confirming read is ignored for a reload armed meanwhile', async () => {
    const { writing, store, hooks } = setup();
    const { wsUrl } = await serve(store);
    const star = await followAll(wsUrl);

    // Run A, then run B (only its upgrade.created): the topic reloads B at once; its next reload waits 1 s.
    const a = await openTracker('stale', writing);
    await a.startUpgrade();
    await a.close();
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'stale');
    await writing.delete('stale');
    const b = await openTracker('stale', writing);
    const bCreatedAt = b.progress.createdAt;
    await b.close();
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'stale' && m.data.createdAt === bCreatedAt);
    await sleep(100);

    // B is deleted, then get_summary is asked: its confirming read ("none") is held.
    await writing.delete('stale');
    const { gate, issued } = holdNextLoad(hooks, 'stale');
    const g = await connect(wsUrl);
    g.send({ type: 'get_summary', upgradeId: 'stale' });
    await issued.promise;
    await sleep(50);
    // Run C (seq 1..3) meanwhile: its upgrade.created arms a reload (1 s away).
    const c = await openTracker('stale', writing);
    await c.startUpgrade();
    await c.addTask('t', 'T');
    await c.close();
    await sleep(200);
    gate.resolve();

    const answer = await g.next((m) => m.type === 'progress_summary' || m.type === 'error');
    // The store held nothing when asked and C (seq 3) when answered. (The overtaken read was ignored
    // and the held state answered: run B, lastSeq 1, deleted before the request was sent.)
    expect(['NOT_FOUND', 3]).toContain(short(answer));
  }, 20_000);
});

describe("ws-server over Redis: a '*' subscribe over a deleted upgrade", () => {
  it("leaves no topic of a deleted upgrade behind (the '*' subscribe's check released it, and the load that followed made an empty one)", async () => {
    const { writing, store } = setup();
    const { server, wsUrl } = await serve(store);
    const first = await followAll(wsUrl);
    const t = await openTracker('leak', writing);
    await t.startUpgrade();
    await t.close();
    await first.next((m) => m.type === 'snapshot' && m.upgradeId === 'leak');
    expect(server.getStats().topics).toBe(1);

    expect(await writing.delete('leak')).toBe(true);
    await sleep(200);
    const second = await followAll(wsUrl);
    await second.answered();
    await sleep(1500); // past any reload or retry

    // The first '*' client was told (resync, no snapshot) and let go of it; the second was given nothing.
    expect(first.ofType('resync', 'leak')).toHaveLength(1);
    expect(second.ofType('snapshot', 'leak')).toEqual([]);
    // (It was 1: an empty, loaded topic of 'leak' that nothing released while '*' clients remained.)
    expect(server.getStats().topics).toBe(0);
  }, 20_000);
});
