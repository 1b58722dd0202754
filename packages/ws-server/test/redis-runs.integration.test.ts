// The ws-server composed with a RedisStore written by another process (here another RedisStore on
// the same Redis and keyPrefix, as a second machine would be): its answers follow the run the store
// holds after a delete, an expiry or a run created again under the same id, and its store watches
// are released. (Found by a review on 2026-11-29; each test failed before the fix.)
import type { ProgressStore } from '@progress/core';
import type { RedisStore, RedisStoreOptions } from '@progress/storage-redis';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { openTracker, sleep, type TestClient } from './helpers.js';
import { Harness, holdNextLoad, redisUrl, watchConnections, type TwoProcesses } from './two-processes.js';

const harness = new Harness();
afterAll(() => harness.cleanup());
const connect = (wsUrl: string): Promise<TestClient> => harness.connect(wsUrl);
const followAll = (wsUrl: string): Promise<TestClient> => harness.followAll(wsUrl);
const serve = (store: ProgressStore): ReturnType<Harness['serve']> => harness.serve(store);
/** The two stores, the server's with the default watch block (5 s) unless given. */
const stores = (both: Partial<RedisStoreOptions> = {}, serving: Partial<RedisStoreOptions> = {}): TwoProcesses => harness.setup({ both, serving });

/** Writes upgrade `id` in the writer's store: created, started, task added, `steps` progress events; closed. */
async function writeUpgrade(store: RedisStore, id: string, steps: number, step = 1): Promise<{ createdAt: string; lastSeq: number }> {
  const tracker = await openTracker(id, store);
  await tracker.startUpgrade();
  await tracker.addTask('t', 'T');
  for (let i = 1; i <= steps; i++) await tracker.updateTaskProgress('t', i * step);
  const { createdAt, lastSeq } = tracker.progress;
  await tracker.close();
  return { createdAt, lastSeq };
}

/** Asks list_upgrades then get_summary of `id` on a fresh connection; returns both answers. */
async function ask(wsUrl: string, id: string): Promise<{ rows: Array<Record<string, unknown>>; summary: Record<string, unknown> }> {
  const c = await connect(wsUrl);
  c.send({ type: 'list_upgrades' });
  c.send({ type: 'get_summary', upgradeId: id });
  await c.answered();
  const rows = c.messages.find((m) => m.type === 'upgrades')!.data as Array<Record<string, unknown>>;
  const summary = c.messages.find((m) => m.type === 'progress_summary' || m.type === 'error')!;
  return { rows, summary };
}

describe('ws-server over Redis: get_summary and list_upgrades answer what the store holds', () => {
  it("get_summary answers NOT_FOUND for an upgrade deleted in the store while a '*' subscriber is connected, as list_upgrades does", async () => {
    const { serving, writing } = stores();
    await writeUpgrade(writing, 'del-1', 2);
    const { wsUrl } = await serve(serving);
    const star = await connect(wsUrl);
    star.send({ type: 'subscribe', upgradeId: '*' });
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'del-1');

    expect(await writing.delete('del-1')).toBe(true);
    expect(await serving.load('del-1')).toBeUndefined();
    await sleep(1000);

    const { rows, summary } = await ask(wsUrl, 'del-1');
    expect(rows.map((r) => r.upgradeId)).toEqual([]); // the store holds nothing
    // Before the fix: the server answers the deleted upgrade's summary (status in_progress, lastSeq 5), forever.
    expect(summary).toMatchObject({ type: 'error', code: 'NOT_FOUND' });
  }, 20_000);

  it("an upgrade expired by retention (ttlSeconds) is NOT_FOUND and exists:false, and the server lets it go, while a '*' subscriber is connected", async () => {
    const { serving, writing } = stores({ retention: { ttlSeconds: 1 } });
    const { wsUrl, server } = await serve(serving);
    const star = await followAll(wsUrl);
    for (const id of ['ttl-1', 'ttl-2', 'ttl-3']) {
      const tracker = await openTracker(id, writing);
      await tracker.startUpgrade();
      await tracker.completeUpgrade();
      await tracker.close();
      await star.next((m) => m.type === 'snapshot' && m.upgradeId === id);
    }
    for (let i = 0; i < 50 && (await serving.load('ttl-3')) !== undefined; i++) await sleep(100);
    expect(await serving.load('ttl-3')).toBeUndefined();

    const { rows, summary } = await ask(wsUrl, 'ttl-1');
    expect(rows).toEqual([]);
    const late = await connect(wsUrl);
    late.send({ type: 'subscribe', upgradeId: 'ttl-2' });
    const subscribed = await late.next((m) => m.type === 'subscribed');
    await late.answered();
    // Before the fix, all three failed: get_summary answers the expired upgrade as completed, a new subscriber is
    // told it exists and gets its snapshot, and the server holds a topic per expired upgrade.
    expect({
      summary: summary.type === 'error' ? summary.code : summary.type,
      exists: subscribed.exists,
      snapshots: late.ofType('snapshot').length,
      topicsBesidesTtl2: server.getStats().topics - 1,
    }).toEqual({ summary: 'NOT_FOUND', exists: false, snapshots: 0, topicsBesidesTtl2: 0 });
  }, 20_000);

  it('list_upgrades and get_summary answer the run the store holds once an upgrade is deleted and created again under the same id', async () => {
    const { serving, writing } = stores();
    const old = await writeUpgrade(writing, 'again-1', 6, 10); // lastSeq 9
    const { wsUrl } = await serve(serving);
    const follower = await connect(wsUrl); // keeps the upgrade followed (a store watch)
    follower.send({ type: 'subscribe', upgradeId: 'again-1' });
    await follower.next((m) => m.type === 'snapshot');
    await sleep(200);

    await writing.delete('again-1');
    const now = await writeUpgrade(writing, 'again-1', 0); // a new run: lastSeq 3
    expect((await serving.load('again-1'))!.createdAt).toBe(now.createdAt);
    await sleep(300);

    const { rows, summary } = await ask(wsUrl, 'again-1');
    // Before the fix: both describe the deleted run (createdAt old.createdAt, lastSeq 9, task at 60%) for up to
    // watchBlockMs (5 s by default) after the new run was written.
    expect({ createdAt: rows[0]?.createdAt, rowSeq: rows[0]?.lastSeq, summarySeq: (summary.data as { lastSeq?: number } | undefined)?.lastSeq }).toEqual({
      createdAt: now.createdAt,
      rowSeq: now.lastSeq,
      summarySeq: now.lastSeq,
    });
    expect(old.createdAt).not.toBe(now.createdAt);
  }, 20_000);
});

describe('ws-server over Redis: the resume of a run that was replaced', () => {
  it("a client resuming the old run (sinceSeq + createdAt) gets resync, never the new run's events on top of the old state", async () => {
    const { serving, writing } = stores();
    const old = await writeUpgrade(writing, 'run-1', 17); // seq 1..20
    const { wsUrl } = await serve(serving);
    const follower = await connect(wsUrl);
    follower.send({ type: 'subscribe', upgradeId: 'run-1' });
    await follower.next((m) => m.type === 'snapshot');
    await sleep(200);

    await writing.delete('run-1');
    const now = await writeUpgrade(writing, 'run-1', 5, 19); // the new run: seq 1..8
    await sleep(100);

    // A dashboard that had the old run up to seq 4 comes back, naming its run as the README says.
    const back = await connect(wsUrl);
    back.send({ type: 'subscribe', upgradeId: 'run-1', sinceSeq: 4, createdAt: old.createdAt });
    await back.next((m) => m.type === 'resync' || m.type === 'progress_event', 0, 5000);
    await sleep(500);
    const afterSubscribed = back.messages.slice(back.messages.findIndex((m) => m.type === 'subscribed') + 1);
    // Before the fix: it gets progress_event 5..8 of the NEW run (task at 95%), which it folds onto the old
    // run's state, then `resync unavailable` with a snapshot of the DELETED run at seq 20.
    expect(afterSubscribed[0]).toMatchObject({ type: 'resync', upgradeId: 'run-1', reason: 'gap' });
    const snapshot = afterSubscribed.find((m) => m.type === 'snapshot');
    expect(snapshot?.data.createdAt).toBe(now.createdAt);
  }, 20_000);
});

describe('ws-server over Redis: store watches are released', () => {
  it('a subscriber that leaves while its load is pending does not make the server forget the topic another subscriber follows (whose Redis watch outlived unsubscribe and stop())', async () => {
    const { writing, store, name, hooks } = stores({}, { watchBlockMs: 200 });
    const admin = new Redis(redisUrl());
    harness.onCleanup(async () => admin.quit());
    const { server, wsUrl } = await serve(store);
    const star = await connect(wsUrl); // a dashboard on '*'
    star.send({ type: 'subscribe', upgradeId: '*' });
    await star.next((m) => m.type === 'subscribed');

    // One load of "slow" answers late (a slow Redis reply), when the test lets it go.
    const held = holdNextLoad(hooks, 'slow');
    const a = await connect(wsUrl);
    a.send({ type: 'subscribe', upgradeId: 'slow' });
    await held.issued.promise;
    await star.close(); // the '*' client leaves while a's load is pending: watchAll stops, idle topics go
    await sleep(50);
    const b = await connect(wsUrl);
    b.send({ type: 'subscribe', upgradeId: 'slow' });
    await b.next((m) => m.type === 'subscribed');
    for (let i = 0; i < 50 && (await watchConnections(admin, name)) !== 1; i++) await sleep(20);
    expect(await watchConnections(admin, name)).toBe(1); // b's watch of "slow"

    await a.close(); // a leaves before its load answers
    held.gate.resolve();
    await sleep(200);
    // b is still followed live (its topic's watch runs) ...
    const tracker = await openTracker('slow', writing);
    await tracker.startUpgrade();
    await tracker.close();
    await b.until((ms) => ms.filter((m) => m.type === 'progress_event').length === 2, 5000, "b's events");
    // ... but the server no longer knows that topic: it counts no watch (maxWatchedUpgrades is bypassed).
    const counted = server.getStats().watchedUpgrades;

    await b.close();
    await server.stop();
    await sleep(300);
    // Before the fix: { counted: 0, afterStop: 1 }: the watch connection stays open in Redis after stop().
    expect({ counted, afterStop: await watchConnections(admin, name) }).toEqual({ counted: 1, afterStop: 0 });
  }, 20_000);
});
