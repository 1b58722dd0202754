// The cost and the errors of the store check before an answer (Topic.confirmRun and its callers):
// real sockets, a real Redis (REDIS_URL). The served store wraps a RedisStore so that its loads can
// be counted, delayed, or failed (as an unreachable Redis fails them). (Found by a fourth review on
// 2026-11-29; each test failed before the fix.)
import type { ProgressStore } from '@progress/core';
import { afterAll, describe, expect, it } from 'vitest';
import { openTracker, sleep, type TestClient } from './helpers.js';
import { Harness } from './two-processes.js';

const harness = new Harness();
afterAll(() => harness.cleanup());
const setup = (): ReturnType<Harness['setup']> => harness.setup();
const serve = (store: ProgressStore): ReturnType<Harness['serve']> => harness.serve(store);
const connect = (wsUrl: string): Promise<TestClient> => harness.connect(wsUrl);
const followAll = (wsUrl: string): Promise<TestClient> => harness.followAll(wsUrl);

describe('ws-server over Redis: get_summary of a busy upgrade', () => {
  it('a get_summary of an upgrade written at a few hundred events per second makes at most two store loads (README: "at most two loads for any number of requests at once")', async () => {
    const { writing, store, loads, faults } = setup();
    const { wsUrl } = await serve(store);
    const star = await connect(wsUrl); // a dashboard with '*' open: watchAll feeds the topic
    star.send({ type: 'subscribe', upgradeId: '*' });
    await star.next((m) => m.type === 'subscribed');

    const t = await openTracker('busy', writing);
    await t.startUpgrade();
    await t.addTask('t', 'T');
    await t.startTask('t');
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'busy');
    // Hundreds of events a second, as a busy upgrade writes them.
    let writing_ = true;
    const writer = (async () => {
      for (let i = 0; writing_; i++) {
        await t.updateTaskProgress('t', i % 100);
        await sleep(2);
      }
    })();
    await sleep(1000);
    faults.latencyMs = 5; // a Redis a few ms away (another host, a managed service)

    const g = await connect(wsUrl);
    const results: number[] = [];
    for (let round = 0; round < 5; round++) {
      const before = loads.get('busy') ?? 0;
      const from = g.messages.length;
      g.send({ type: 'get_summary', upgradeId: 'busy' });
      const answer = await g.next((m) => m.type === 'progress_summary' || m.type === 'error', from);
      expect(answer.type).toBe('progress_summary');
      results.push((loads.get('busy') ?? 0) - before);
      await sleep(100);
    }
    writing_ = false;
    await writer;
    await t.close();
    // (Every read was overtaken by the events that came while it was in flight, and read again: 3
    // loads per request, each replaying up to snapshotEvery events, for the state held anyway.)
    expect(Math.max(...results), `loads per get_summary: ${results.join(', ')}`).toBeLessThanOrEqual(2);
  }, 30_000);
  it('ten get_summary requests at once of a busy upgrade make at most two store loads in all (README: "at most two loads for any number of requests at once")', async () => {
    const { writing, store, loads, faults } = setup();
    const { wsUrl } = await serve(store);
    const star = await followAll(wsUrl);
    const t = await openTracker('busy10', writing);
    await t.startUpgrade();
    await t.addTask('t', 'T');
    await t.startTask('t');
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'busy10');
    let on = true;
    const writer = (async () => {
      for (let i = 0; on; i++) {
        await t.updateTaskProgress('t', i % 100);
        await sleep(2);
      }
    })();
    await sleep(500);
    faults.latencyMs = 5;
    const clients = await Promise.all(Array.from({ length: 10 }, () => connect(wsUrl)));
    const before = loads.get('busy10') ?? 0;
    for (const c of clients) c.send({ type: 'get_summary', upgradeId: 'busy10' });
    await Promise.all(clients.map((c) => c.next((m) => m.type === 'progress_summary' || m.type === 'error')));
    const made = (loads.get('busy10') ?? 0) - before;
    on = false;
    await writer;
    await t.close();
    // (It was 6: two shared reads, each read three times.)
    expect(made).toBeLessThanOrEqual(2);
  }, 30_000);
});

describe('ws-server over Redis: get_summary while the store cannot be read', () => {
  it('a get_summary of an upgrade a client waits for (subscribed, exists: false) is answered with the store error, not NOT_FOUND, while the store is down', async () => {
    const { store, faults } = setup();
    const { wsUrl } = await serve(store);
    const waiter = await connect(wsUrl); // follows an upgrade that does not exist yet
    waiter.send({ type: 'subscribe', upgradeId: 'later' });
    const subscribed = await waiter.next((m) => m.type === 'subscribed');
    expect(subscribed.exists).toBe(false);

    faults.down = true; // Redis unreachable
    const g = await connect(wsUrl);
    g.send({ type: 'get_summary', upgradeId: 'later' });
    const answer = await g.next((m) => m.type === 'progress_summary' || m.type === 'error');
    // README: a request the store fails to answer gets error {code, message}, never an answer that says
    // the upgrade does not exist. (The check's failure was swallowed and the topic's "nothing" answered
    // as NOT_FOUND.)
    expect(answer).toMatchObject({ type: 'error', code: 'STORE_UNAVAILABLE', upgradeId: 'later' });
    faults.down = false;
  }, 20_000);
});

describe('ws-server over Redis: get_summary over a store without watch()', () => {
  it('a get_summary of an upgrade a client is subscribed to answers what the store holds now, not the state at that subscribe (the check read it, and threw it away)', async () => {
    const { writing, store, loads } = setup();
    // A store that cannot watch (as a JSON file store): snapshots and replays, no live events.
    const { watch: _watch, watchAll: _watchAll, ...plain } = store;
    const { wsUrl } = await serve(plain as ProgressStore);
    const t = await openTracker('nowatch', writing);
    await t.startUpgrade();
    await t.addTask('t', 'T');
    const viewer = await connect(wsUrl); // keeps the topic (and its state at seq 3)
    viewer.send({ type: 'subscribe', upgradeId: 'nowatch' });
    await viewer.next((m) => m.type === 'snapshot');
    await t.startTask('t');
    await t.completeTask('t');
    await t.completeUpgrade();
    const seq = t.progress.lastSeq;

    const g = await connect(wsUrl);
    const before = loads.get('nowatch') ?? 0;
    g.send({ type: 'get_summary', upgradeId: 'nowatch' });
    const answer = await g.next((m) => m.type === 'progress_summary' || m.type === 'error');
    expect(loads.get('nowatch')! - before).toBe(1); // the store is read once: it holds seq 6
    await t.close();
    // (It was 3, in_progress: the topic's state at the viewer's subscribe.)
    expect(answer.data.lastSeq).toBe(seq);
    expect(answer.data.status).toBe('completed');
  }, 20_000);
});
