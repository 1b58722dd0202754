// Scenarios of ws-server processes over one Redis written by another process: clients of a server
// killed mid-stream resume on the other one with sinceSeq; upgrades finish, expire by retention, are
// deleted and created again under the same id while subscribed. Every client must end with every
// event exactly once in seq order (or a resync and then a snapshot), folding to what the store
// holds, and a stopped server must leave no store watch running.
import { randomUUID } from 'node:crypto';
import { applyEvent, type UpgradeProgress } from '@progress/core';
import { RedisStore } from '@progress/storage-redis';
import { afterAll, describe, expect, it } from 'vitest';
import { deleteKeys } from '../../../tools/test-utils/src/redis.js';
import { TestClient, openTracker, sleep, type Msg } from './helpers.js';
import { spawnFixture, type Child } from './spawn.js';
import { Harness, redisUrl } from './two-processes.js';

const children: Child[] = [];
const clients: TestClient[] = [];
const prefixes: string[] = [];
const stores: RedisStore[] = [];
const harness = new Harness();

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(children.splice(0).map((c) => c.stop()));
  await Promise.all(stores.splice(0).map((s) => s.close()));
  for (const prefix of prefixes) await deleteKeys(redisUrl(), prefix);
  await harness.cleanup();
});

/**
 * Folds what a client was sent of `upgradeId` onto `state` (what it held before): a snapshot replaces
 * it, a resync drops it, an event must be the next seq (a gap or a duplicate throws).
 */
function fold(messages: Msg[], upgradeId: string, state?: UpgradeProgress): UpgradeProgress | undefined {
  for (const m of messages) {
    if (m.upgradeId !== upgradeId) continue;
    if (m.type === 'snapshot') {
      expect(m.data.lastSeq).toBe(m.seq);
      state = m.data as UpgradeProgress;
    } else if (m.type === 'resync') {
      state = undefined;
    } else if (m.type === 'progress_event') {
      const want = state === undefined ? 1 : state.lastSeq + 1;
      if (m.data.seq !== want) throw new Error(`${upgradeId}: event seq ${m.data.seq} where ${want} was due (state at ${state?.lastSeq})`);
      state = applyEvent(state, m.data);
    }
  }
  return state;
}

/** The store watches (Redis connections) `store` runs now. */
const watchers = (store: RedisStore): number => Number(store.info().watchers);

const lastSeqOf = (c: TestClient, id: string): number => Math.max(0, ...c.ofType('progress_event', id).map((m) => m.data.seq as number), ...c.ofType('snapshot', id).map((m) => m.seq as number));

describe('ws-server processes over one Redis: failover and store changes', () => {
  it('clients of a server killed mid-stream resume on the other one with every event exactly once', async () => {
    const url = redisUrl();
    const keyPrefix = `ws-fo-${randomUUID().slice(0, 8)}:`;
    prefixes.push(keyPrefix);
    const reader = new RedisStore({ url, keyPrefix, connectionName: 'ws-fo-reader' });
    stores.push(reader);
    const [a, b] = [spawnFixture('server-process', { url, keyPrefix }), spawnFixture('server-process', { url, keyPrefix })];
    children.push(b); // a is killed
    const [{ url: urlA }, { url: urlB }] = await Promise.all([a.next<{ url: string }>(), b.next<{ url: string }>()]);

    const ids = ['m1', 'm2', 'm3'];
    const one = await TestClient.connect(urlA); // m1 by id, before it exists
    const two = await TestClient.connect(urlA); // m2 and m3 by id
    const star = await TestClient.connect(urlA); // '*'
    const onB = await TestClient.connect(urlB); // '*' on the other server all along
    clients.push(one, two, star, onB);
    one.send({ type: 'subscribe', upgradeId: 'm1' });
    two.send({ type: 'subscribe', upgradeId: 'm2' });
    two.send({ type: 'subscribe', upgradeId: 'm3' });
    star.send({ type: 'subscribe', upgradeId: '*' });
    onB.send({ type: 'subscribe', upgradeId: '*' });
    await Promise.all([one.answered(), two.answered(), star.answered(), onB.answered()]);

    const writer = spawnFixture('multi-writer-process', { url, keyPrefix, upgradeIds: ids, count: 200, intervalMs: 3 });
    children.push(writer);
    await one.until((ms) => ms.filter((m) => m.type === 'progress_event').length >= 40, 20_000, '40 events of m1');
    await two.until((ms) => ms.filter((m) => m.type === 'progress_event' && m.upgradeId === 'm3').length >= 5, 20_000, 'events of m3');
    a.process.kill('SIGKILL');
    await Promise.all([one.closed, two.closed, star.closed]);
    await a.exited;
    // console.log('at kill', ids.map((id) => [lastSeqOf(one, id), lastSeqOf(two, id), lastSeqOf(star, id)]));

    // Each resumes on B from what it holds.
    const held = new Map<TestClient, Map<string, UpgradeProgress | undefined>>();
    const resumed = new Map<TestClient, TestClient>();
    for (const [c, subs] of [[one, ['m1']], [two, ['m2', 'm3']]] as const) {
      const states = new Map(subs.map((id) => [id, fold(c.messages, id)] as const));
      held.set(c, states);
      const again = await TestClient.connect(urlB);
      clients.push(again);
      resumed.set(c, again);
      for (const [id, state] of states) {
        again.send(state === undefined ? { type: 'subscribe', upgradeId: id } : { type: 'subscribe', upgradeId: id, sinceSeq: state.lastSeq, createdAt: state.createdAt });
      }
    }
    const starAgain = await TestClient.connect(urlB);
    clients.push(starAgain);
    starAgain.send({ type: 'subscribe', upgradeId: '*' });

    const { lastSeqs } = await writer.next<{ lastSeqs: Record<string, number> }>();
    for (const id of ids) {
      const stored = await reader.load(id);
      expect(stored!.lastSeq).toBe(lastSeqs[id]);
      const following: Array<[TestClient, UpgradeProgress | undefined]> = [[starAgain, undefined], [onB, undefined]];
      for (const [c, states] of held) if (states.has(id)) following.push([resumed.get(c)!, states.get(id)]);
      for (const [c, before] of following) {
        await c.until(() => lastSeqOf(c, id) === lastSeqs[id], 20_000, `the last event of ${id}`);
        expect(fold(c.messages, id, before)).toEqual(stored);
        expect(c.ofType('resync', id)).toEqual([]);
        expect(c.ofType('error')).toEqual([]);
      }
    }
    // A replay from sinceSeq, not a snapshot, on the resumed connections.
    for (const [, again] of resumed) expect(again.ofType('snapshot')).toEqual([]);

    b.process.stdin!.end();
    expect(await b.next<{ watchers: number }>()).toEqual({ watchers: 0 });
  }, 90_000);

  it('upgrades finished, expired, deleted and created again while subscribed end as the store holds them, and stop() leaves no watch', async () => {
    const { serving, writing } = harness.setup({ both: { retention: { ttlSeconds: 2 } } });
    const { server, wsUrl } = await harness.serve(serving);
    const byId = await harness.connect(wsUrl);
    const star = await harness.connect(wsUrl);
    const ids = ['x1', 'x2', 'x3'];
    for (const id of ids) byId.send({ type: 'subscribe', upgradeId: id });
    star.send({ type: 'subscribe', upgradeId: '*' });
    await Promise.all([byId.answered(), star.answered()]);

    const write = async (id: string, steps: number, complete: boolean): Promise<void> => {
      const tracker = await openTracker(id, writing);
      await tracker.startUpgrade();
      await tracker.addTask('t', 'T');
      for (let i = 1; i <= steps; i++) await tracker.updateTaskProgress('t', i);
      if (complete) await tracker.completeUpgrade();
      await tracker.close();
    };
    await Promise.all([write('x1', 20, true), write('x2', 20, true), write('x3', 10, false)]);
    for (const c of [byId, star]) for (const id of ids) await c.until(() => lastSeqOf(c, id) >= (id === 'x3' ? 13 : 24), 10_000, `${id} written`);

    // x2 is deleted and created again at once; x1 expires (ttl) while subscribed; x3 too.
    expect(await writing.delete('x2')).toBe(true);
    await write('x2', 3, false);
    for (let i = 0; i < 60 && (await serving.load('x1')) !== undefined; i++) await sleep(100);
    expect(await serving.load('x1')).toBeUndefined();
    // x1 created again after its expiry.
    await write('x1', 2, false);
    await sleep(1500); // the watches learn of the runs created again when their block times out

    // The subscribers by id are told by their watches.
    for (const id of ids) {
      const stored = await serving.load(id);
      await byId.until(() => { try { const state = fold(byId.messages, id); return state?.lastSeq === stored?.lastSeq && state?.createdAt === stored?.createdAt; } catch { return true; } }, 15_000, `${id} by id`);
      expect(fold(byId.messages, id)).toEqual(stored);
      if (id !== 'x3') {
        await star.until(() => { try { const state = fold(star.messages, id); return state?.lastSeq === stored?.lastSeq && state?.createdAt === stored?.createdAt; } catch { return true; } }, 15_000, `${id} through *`);
        expect(fold(star.messages, id)).toEqual(stored);
      }
    }
    // A new subscriber's check makes the server ask the store.
    const late = await harness.connect(wsUrl);
    for (const id of ids) late.send({ type: 'subscribe', upgradeId: id });
    await late.answered();

    for (const id of ids) {
      const stored = await serving.load(id);
      for (const c of [byId, star, late]) {
        await c.until(() => {
          try {
            const state = fold(c.messages, id);
            return stored === undefined ? state === undefined : state?.lastSeq === stored.lastSeq && state.createdAt === stored.createdAt;
          } catch {
            return true; // thrown again below
          }
        }, 15_000, `${id} as the store holds it`);
        expect(fold(c.messages, id)).toEqual(stored);
      }
    }

    await server.stop();
    expect(watchers(serving)).toBe(0);
  }, 60_000);

  it('a resume on another server after the run was deleted and created again, trimmed, or deleted gets a resync and the store\'s state; watches end when clients leave', async () => {
    const { serving, writing } = harness.setup({ both: { retention: { maxEvents: 20 }, snapshotEvery: 10 } });
    const other = new RedisStore({ url: redisUrl(), keyPrefix: String(serving.info().keyPrefix), connectionName: 'ws-fo-other', watchBlockMs: 200 });
    stores.push(other);
    const first = await harness.serve(serving);
    const second = await harness.serve(other);
    const write = async (id: string, steps: number): Promise<void> => {
      const tracker = await openTracker(id, writing);
      await tracker.startUpgrade();
      await tracker.addTask('t', 'T');
      for (let i = 1; i <= steps; i++) await tracker.updateTaskProgress('t', i);
      await tracker.close();
    };
    await Promise.all([write('r1', 5), write('r2', 5), write('r3', 5)]);
    const c = await harness.connect(first.wsUrl);
    for (const id of ['r1', 'r2', 'r3']) c.send({ type: 'subscribe', upgradeId: id });
    for (const id of ['r1', 'r2', 'r3']) await c.until(() => lastSeqOf(c, id) === 8, 10_000, id);
    const held = new Map(['r1', 'r2', 'r3'].map((id) => [id, fold(c.messages, id)!] as const));
    c.ws.terminate();
    await c.closed;
    // While it is away: r1 deleted and created again further on, r2 trimmed (more than maxEvents
    // appended), r3 deleted.
    await writing.delete('r1');
    await write('r1', 12);
    {
      const tracker = await openTracker('r2', writing);
      for (let i = 6; i <= 60; i++) await tracker.updateTaskProgress('t', i);
      await tracker.close();
    }
    await writing.delete('r3');

    const again = await harness.connect(second.wsUrl);
    for (const [id, state] of held) again.send({ type: 'subscribe', upgradeId: id, sinceSeq: state.lastSeq, createdAt: state.createdAt });
    for (const id of ['r1', 'r2', 'r3']) {
      const stored = await serving.load(id);
      await again.until(() => (stored === undefined ? again.ofType('subscribed', id).length > 0 : lastSeqOf(again, id) === stored.lastSeq), 10_000, id);
      await again.answered();
      if (stored) {
        expect(again.ofType('resync', id)).toHaveLength(1);
        expect(fold(again.messages, id, held.get(id))).toEqual(stored);
      } else {
        // Gone: no state, nothing replayed onto the old one.
        expect(again.ofType('progress_event', id)).toEqual([]);
        const told = [...again.ofType('subscribed', id), ...again.ofType('resync', id)];
        expect(told.some((m) => m.exists === false)).toBe(true);
      }
    }
    await again.close();
    for (let i = 0; i < 50 && (watchers(serving) > 0 || watchers(other) > 0); i++) await sleep(100);
    expect([watchers(serving), watchers(other)]).toEqual([0, 0]);
    await first.server.stop();
    await second.server.stop();
  }, 60_000);

  it('clients that leave in the middle of their subscribes, by id and to *, leave no store watch behind while a writer appends', async () => {
    const { serving, writing, store } = harness.setup();
    const { server, wsUrl } = await harness.serve(store);
    const ids = ['k1', 'k2', 'k3', 'k4'];
    let more = true;
    const writer = (async () => {
      const trackers = await Promise.all(ids.slice(0, 3).map((id) => openTracker(id, writing)));
      for (const t of trackers) await t.startUpgrade();
      for (const t of trackers) await t.addTask('t', 'T');
      for (let i = 1; more; i++) for (const t of trackers) await t.updateTaskProgress('t', i % 100);
      for (const t of trackers) await t.close();
    })();
    await sleep(100);
    for (let round = 0; round < 20; round++) {
      const c = await TestClient.connect(wsUrl);
      for (const id of ids) c.send({ type: 'subscribe', upgradeId: id, ...(round % 2 ? { sinceSeq: round } : {}) });
      if (round % 3 === 0) c.send({ type: 'subscribe', upgradeId: '*' });
      if (round % 4 === 1) c.send({ type: 'unsubscribe', upgradeId: 'k1' });
      if (round % 5 === 2) await c.next((m) => m.type === 'subscribed');
      c.ws.terminate();
    }
    more = false;
    await writer;
    for (let i = 0; i < 100 && watchers(serving) > 0; i++) await sleep(100);
    expect(watchers(serving)).toBe(0);
    await server.stop();
    expect(watchers(serving)).toBe(0);
  }, 60_000);

  it('a server paused (SIGSTOP) while retention trims what it had not read catches its clients up, by id and through *', async () => {
    const url = redisUrl();
    const keyPrefix = `ws-fo-${randomUUID().slice(0, 8)}:`;
    prefixes.push(keyPrefix);
    const writing = new RedisStore({ url, keyPrefix, connectionName: 'ws-fo-trim-writer', retention: { maxEvents: 20 }, snapshotEvery: 10 });
    stores.push(writing);
    const server = spawnFixture('server-process', { url, keyPrefix });
    children.push(server);
    const { url: wsUrl } = await server.next<{ url: string }>();
    const ids = ['p1', 'p2'];
    const trackers = await Promise.all(ids.map((id) => openTracker(id, writing)));
    for (const t of trackers) await t.startUpgrade();
    for (const t of trackers) await t.addTask('t', 'T');
    const byId = await TestClient.connect(wsUrl);
    const star = await TestClient.connect(wsUrl);
    clients.push(byId, star);
    for (const id of ids) byId.send({ type: 'subscribe', upgradeId: id });
    star.send({ type: 'subscribe', upgradeId: '*' });
    for (const c of [byId, star]) for (const id of ids) await c.until(() => lastSeqOf(c, id) === 3, 10_000, `${id} at 3`);

    server.process.kill('SIGSTOP');
    try {
      for (let i = 1; i <= 90; i++) for (const t of trackers) await t.updateTaskProgress('t', i);
      for (const t of trackers) await t.completeUpgrade();
    } finally {
      server.process.kill('SIGCONT');
    }
    for (const id of ids) {
      const stored = await writing.load(id);
      await expect((async () => { for await (const _ of writing.readEvents(id, 3)) break; })()).rejects.toMatchObject({ code: 'NOT_FOUND' }); // trimmed
      for (const c of [byId, star]) {
        await c.until(() => lastSeqOf(c, id) === stored!.lastSeq, 20_000, `${id} at ${stored!.lastSeq}`);
        expect(fold(c.messages, id)).toEqual(stored);
      }
    }
    for (const t of trackers) await t.close();
    server.process.stdin!.end();
    expect(await server.next<{ watchers: number }>()).toEqual({ watchers: 0 });
  }, 60_000);
});
