// More of the store check before an answer (Topic.confirmRun and its callers): real sockets, a real
// Redis (REDIS_URL). The served store wraps a RedisStore so that one load's reply can be held (what
// is read is what Redis held when the command ran) and loads can be counted. (Found by a second
// review on 2026-11-29; each test failed before the fix.)
import type { ProgressStore } from '@progress/core';
import { afterAll, describe, expect, it } from 'vitest';
import { openTracker, sleep, type TestClient } from './helpers.js';
import { Harness, holdNextLoad } from './two-processes.js';

const harness = new Harness();
afterAll(() => harness.cleanup());
const setup = (): ReturnType<Harness['setup']> => harness.setup();
const serve = (store: ProgressStore): ReturnType<Harness['serve']> => harness.serve(store);
const connect = (wsUrl: string): Promise<TestClient> => harness.connect(wsUrl);
const followAll = (wsUrl: string): Promise<TestClient> => harness.followAll(wsUrl);

describe('ws-server over Redis: a confirming read and a reload armed while it was in flight', () => {
  it("a '*' subscriber gets an upgrade created again while a get_summary's confirming read (\"none\") was in flight (the read cancelled the reload its upgrade.created armed)", async () => {
    const { writing, store, hooks } = setup();
    const { wsUrl } = await serve(store);
    const star = await followAll(wsUrl);

    // Run A, then run B (only its upgrade.created): the '*' topic reloads B at once and its next
    // reload would wait 1 s (no event applied since).
    const a = await openTracker('re', writing);
    await a.startUpgrade();
    await a.close();
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 're');
    await writing.delete('re');
    const b = await openTracker('re', writing);
    const bCreatedAt = b.progress.createdAt;
    await b.close();
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 're' && m.data.createdAt === bCreatedAt);
    await sleep(100);

    // B is deleted; a get_summary's confirming read runs now (nothing there) and its reply is late.
    await writing.delete('re');
    const { gate, issued } = holdNextLoad(hooks, 're');
    const g = await connect(wsUrl);
    g.send({ type: 'get_summary', upgradeId: 're' });
    await issued.promise;
    await sleep(50);

    // Run C is created meanwhile (seq 1..3): watchAll brings its upgrade.created (a reload is armed,
    // 1 s away) and seq 2..3 (dropped: the reload reads past them).
    const c = await openTracker('re', writing);
    await c.startUpgrade();
    await c.addTask('t', 'T');
    const cState = { createdAt: c.progress.createdAt, lastSeq: c.progress.lastSeq };
    await c.close();
    await sleep(200);

    gate.resolve(); // the late "none"
    await g.next((m) => m.type === 'progress_summary' || m.type === 'error');
    await sleep(1500); // past the reload that was armed

    // The store holds C at seq 3 and lists it ...
    g.send({ type: 'list_upgrades' });
    const rows = (await g.next((m) => m.type === 'upgrades')).data as Array<{ upgradeId: string; createdAt: string }>;
    expect(rows.map((r) => r.createdAt)).toEqual([cState.createdAt]);
    // ... and so is the '*' subscriber's last word of it. (Before the fix it was told `resync` with no
    // snapshot, "gone", and let go of it: C's events had been dropped for the reload that the
    // confirming read cancelled.)
    const last = star.messages.filter((m) => m.upgradeId === 're').at(-1)!;
    expect({ type: last.type, createdAt: last.data?.createdAt, seq: last.seq }).toEqual({ type: 'snapshot', createdAt: cState.createdAt, seq: cState.lastSeq });
  }, 20_000);
});

describe("ws-server over Redis: a new '*' subscriber's first snapshots", () => {
  it("a '*' subscriber joining after an upgrade was deleted in the store is not given that upgrade's snapshot (the store does not list it)", async () => {
    const { writing, store } = setup();
    const { wsUrl } = await serve(store);
    const first = await connect(wsUrl); // a dashboard on '*': the server keeps the topic
    first.send({ type: 'subscribe', upgradeId: '*' });
    await first.next((m) => m.type === 'subscribed');
    const t = await openTracker('del-star', writing);
    await t.startUpgrade();
    await t.close();
    await first.next((m) => m.type === 'snapshot' && m.upgradeId === 'del-star');

    expect(await writing.delete('del-star')).toBe(true);
    await sleep(300);

    const second = await followAll(wsUrl);
    await second.answered();
    await sleep(200);
    // Before any list_upgrades/get_summary of it: the deleted upgrade is served as current.
    expect(second.ofType('snapshot', 'del-star')).toEqual([]);
  }, 20_000);
});

describe('ws-server over Redis: the store loads a request causes', () => {
  it('a get_summary of an upgrade whose first load is in flight loads it twice at most (the load it joined, sent before it, and one check sent after it)', async () => {
    const { writing, store, hooks, loads } = setup();
    const t = await openTracker('first', writing);
    await t.startUpgrade();
    await t.close();
    const { wsUrl } = await serve(store);

    const { gate, issued } = holdNextLoad(hooks, 'first');
    const a = await connect(wsUrl);
    a.send({ type: 'subscribe', upgradeId: 'first' }); // its load is held
    await issued.promise;
    const b = await connect(wsUrl);
    b.send({ type: 'get_summary', upgradeId: 'first' }); // joins that load
    await sleep(100);
    gate.resolve();
    await a.next((m) => m.type === 'snapshot');
    expect((await b.next((m) => m.type === 'progress_summary')).data.lastSeq).toBe(2);
    expect(loads.get('first')).toBe(2);
  }, 20_000);

  it('concurrent get_summary requests of one loaded upgrade share their confirming reads (at most two)', async () => {
    const { writing, store, loads } = setup();
    const t = await openTracker('many', writing);
    await t.startUpgrade();
    await t.addTask('t', 'T');
    await t.close();
    const { wsUrl } = await serve(store);
    const follower = await connect(wsUrl); // keeps the topic loaded
    follower.send({ type: 'subscribe', upgradeId: 'many' });
    await follower.next((m) => m.type === 'snapshot');
    const before = loads.get('many') ?? 0;

    const clients = await Promise.all(Array.from({ length: 20 }, () => connect(wsUrl)));
    for (const c of clients) c.send({ type: 'get_summary', upgradeId: 'many' });
    await Promise.all(clients.map((c) => c.next((m) => m.type === 'progress_summary')));
    // One read in flight plus one after it confirm them all (before, each made its own: 20).
    expect((loads.get('many') ?? 0) - before).toBeLessThanOrEqual(2);
  }, 20_000);
});
