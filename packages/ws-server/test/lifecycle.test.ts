import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ProgressTracker, type UpgradeProgress } from '@progress/core';
import { throwingLogger } from '../../../tools/test-utils/src/logger.js';
import { accepts } from '../../../tools/test-utils/src/net.js';
import { ProgressWebSocketServer } from '../src/index.js';
import { TestClient, deferred, expectConsecutive, openTracker, sleep } from './helpers.js';
import { halfOpenExchange, rawExchange, upgradeRequest } from './raw.js';
import { WatchableMemoryStore } from './watchable-store.js';

let server: ProgressWebSocketServer | undefined;
const trackers: ProgressTracker[] = [];
const clients: TestClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  await server?.stop();
  server = undefined;
  await Promise.all(trackers.splice(0).map((t) => t.close()));
});

async function connect(url: string, options?: Parameters<typeof TestClient.connect>[1]): Promise<TestClient> {
  const c = await TestClient.connect(url, options);
  clients.push(c);
  return c;
}

/** Resolves what `p` resolves within `ms`, else 'timeout'. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe('lifecycle', () => {
  it('stop() refuses a handshake whose authenticate resolves while stopping, and does not wait for it', async () => {
    const gate = deferred<unknown>();
    const called = deferred();
    server = new ProgressWebSocketServer({
      port: 0,
      authenticate: () => {
        called.resolve();
        return gate.promise;
      },
    });
    const { url } = await server.start();
    const connecting = TestClient.connect(url).then(
      (c) => {
        clients.push(c);
        return c.closed;
      },
      () => 'refused' as const,
    );
    await called.promise;
    const stopping = server.stop();
    gate.resolve({ user: 'late' });
    expect(await within(stopping, 5000)).toBe(undefined);
    // The late client was never let in (or, at worst, was closed by stop()).
    expect(await within(connecting, 5000)).not.toBe('timeout');
    expect(server.getStats().clients).toBe(0);
  });

  it('answers 503 to a handshake whose authenticate never settles once handshakeTimeoutMs passed, and keeps serving', async () => {
    server = new ProgressWebSocketServer({ port: 0, handshakeTimeoutMs: 50, authenticate: (req) => (req.headers.authorization === 'Bearer good' ? { user: 'ann' } : new Promise(() => {})) });
    const { url, port } = await server.start();
    const stuck = await rawExchange(port, upgradeRequest('/ws'), 10_000);
    expect(stuck.response).toMatch(/^HTTP\/1\.1 503 /);
    expect(stuck.closed).toBe(true);
    expect(server.getStats().handshakesRefused).toBe(1);
    const ok = await connect(url, { headers: { authorization: 'Bearer good' } });
    await ok.next((m) => m.type === 'welcome');
    for (const bad of [0, 1.5, 2 ** 31]) expect(() => new ProgressWebSocketServer({ handshakeTimeoutMs: bad })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('stop() answers 503 to a handshake whose authenticate never settles, instead of waiting for it for ever', async () => {
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const called = deferred();
    server = new ProgressWebSocketServer({
      port: 0,
      authenticate: () => {
        called.resolve();
        return new Promise(() => {});
      },
    });
    const { port } = await server.start();
    const stuck = rawExchange(port, upgradeRequest('/ws'), 10_000);
    await called.promise;
    expect(await within(server.stop(), 5000)).toBe(undefined);
    const { response, closed } = await stuck;
    expect(response).toMatch(/^HTTP\/1\.1 503 /);
    expect(closed).toBe(true);
    // The hook still hangs, and its handshake timer must not keep the process alive after stop().
    // (At most as many as before: a timer of an earlier test may have ended meanwhile.)
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBeLessThanOrEqual(timersBefore);
  });

  it('releases the socket of a refused handshake whose peer keeps its side open, so stop() does not wait for it', async () => {
    server = new ProgressWebSocketServer({ port: 0, allowedOrigins: ['https://dash.example.com'] });
    const { port } = await server.start();
    const peers = [halfOpenExchange(port, upgradeRequest('/elsewhere')), halfOpenExchange(port, upgradeRequest('/ws', ['Origin: https://evil.example.com']))];
    try {
      expect(await peers[0]!.response).toMatch(/^HTTP\/1\.1 404 /);
      expect(await peers[1]!.response).toMatch(/^HTTP\/1\.1 403 /);
      // The peers still hold their side; the server's close() waits for every socket it accepted.
      expect(await within(server.stop(), 5000)).toBe(undefined);
    } finally {
      for (const p of peers) p.destroy();
    }
  });

  it('keeps at most maxRetainedUpgrades upgrades that no tracker serves and nobody follows (sink-only or untracked), the least recently updated forgotten first', async () => {
    server = new ProgressWebSocketServer({ port: 0, maxRetainedUpgrades: 2 });
    const { url } = await server.start();
    // A long-running server: upgrades come and go, each fed only as a sink, or tracked and untracked when it closes.
    for (const id of ['r1', 'r2', 'r3', 'r4']) {
      const t = await ProgressTracker.open({ upgradeId: id, planId: 'p', clusterName: 'c', sinks: [server] });
      await t.startUpgrade();
      await t.close();
    }
    const tracked = await openTracker('r5');
    server.track(tracked);
    await tracked.startUpgrade();
    server.untrack(tracked);
    await tracked.close();
    expect(server.getStats().topics).toBe(2);

    // The two most recent are still served to later subscribers; the older ones are forgotten.
    const c = await connect(url);
    for (const id of ['r4', 'r5', 'r1']) c.send({ type: 'subscribe', upgradeId: id });
    await c.answered();
    expect(c.ofType('subscribed').map((m) => [m.upgradeId, m.exists])).toEqual([
      ['r4', true],
      ['r5', true],
      ['r1', false],
    ]);
    expect(c.ofType('snapshot').map((m) => [m.upgradeId, m.seq])).toEqual([
      ['r4', 2],
      ['r5', 2],
    ]);
    // Followed upgrades are not counted against the limit, and are kept again once nobody follows them.
    const r6 = await ProgressTracker.open({ upgradeId: 'r6', planId: 'p', clusterName: 'c', sinks: [server] });
    trackers.push(r6);
    await r6.startUpgrade();
    expect(server.getStats().topics).toBe(4);
    await c.close();
    for (let i = 0; i < 100 && server.getStats().clients > 0; i++) await sleep(10);
    expect(server.getStats().topics).toBe(2);
    expect(() => new ProgressWebSocketServer({ maxRetainedUpgrades: -1 })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('a "*" subscriber (a dashboard left open) does not make the server keep every upgrade it was sent past maxRetainedUpgrades', async () => {
    server = new ProgressWebSocketServer({ port: 0, maxRetainedUpgrades: 2 });
    const { url } = await server.start();
    const dashboard = await connect(url);
    dashboard.send({ type: 'subscribe', upgradeId: '*' });
    await dashboard.answered();
    // Weeks of upgrades, each fed only as a sink, or tracked and untracked when it closes.
    for (let i = 0; i < 40; i++) {
      const id = `w${i}`;
      const t = await ProgressTracker.open({ upgradeId: id, planId: 'p', clusterName: 'c', ...(i % 2 === 0 ? { sinks: [server] } : {}) });
      const untrack = i % 2 === 0 ? undefined : server.track(t);
      await t.startUpgrade();
      await t.close();
      untrack?.();
    }
    await dashboard.answered();
    // The dashboard was given each of them as it came.
    expect(new Set(dashboard.ofType('snapshot').map((m) => m.upgradeId)).size).toBe(40);
    expect(server.getStats().topics).toBe(2);
    // What it lists is what is kept; one forgotten that is sent again is given to the dashboard again.
    const from = dashboard.messages.length;
    dashboard.send({ type: 'list_upgrades' });
    const list = await dashboard.next((m) => m.type === 'upgrades', from);
    expect(list.data.map((row: { upgradeId: string }) => row.upgradeId).sort()).toEqual(['w38', 'w39']);
    const again = await ProgressTracker.open({ upgradeId: 'w0', planId: 'p', clusterName: 'c', sinks: [server] });
    trackers.push(again);
    await again.startUpgrade();
    await dashboard.next((m) => m.type === 'snapshot' && m.upgradeId === 'w0', from);
    await again.addTask('t1', 'Task');
    await dashboard.next((m) => m.type === 'progress_event' && m.upgradeId === 'w0' && m.data.type === 'task.added', from);
    // A sink-fed upgrade nobody follows by name counts against the bound too (the server is never told it ended).
    expect(server.getStats().topics).toBe(2);
  });

  it('forgets the least recently updated retained upgrade, not the one a subscriber left last', async () => {
    server = new ProgressWebSocketServer({ port: 0, maxRetainedUpgrades: 2 });
    const { url } = await server.start();
    let clock = Date.parse('2026-01-01T00:00:00Z');
    const open = (upgradeId: string) => ProgressTracker.open({ upgradeId, planId: 'p', clusterName: 'c', sinks: [server!], now: () => clock });
    for (const id of ['old1', 'old2']) {
      const t = await open(id);
      await t.startUpgrade();
      await t.close();
      clock += 1000;
    }
    // A dashboard follows the two finished ones while a sink-only upgrade runs and moves on.
    const dashboard = await connect(url);
    for (const id of ['old1', 'old2']) dashboard.send({ type: 'subscribe', upgradeId: id });
    await dashboard.answered();
    const live = await open('live');
    trackers.push(live);
    await live.startUpgrade();
    clock += 1000;
    await live.addTask('t1', 'Task');
    // The dashboard leaves: old1 and old2 are retained again, after live, but updated before it.
    await dashboard.close();
    for (let i = 0; i < 100 && server.getStats().clients > 0; i++) await sleep(10);
    const later = await connect(url);
    for (const id of ['live', 'old1', 'old2']) later.send({ type: 'subscribe', upgradeId: id });
    await later.answered();
    expect(later.ofType('subscribed').map((m) => [m.upgradeId, m.exists])).toEqual([
      ['live', true],
      ['old1', false],
      ['old2', true],
    ]);
  });

  it('a replay to a healthy client finishes when maxBufferedBytes is below the socket high-water mark', async () => {
    server = new ProgressWebSocketServer({ port: 0, maxBufferedBytes: 24_000 });
    const { url } = await server.start();
    const t = await openTracker('small-buffer');
    trackers.push(t);
    server.track(t);
    await t.startUpgrade();
    await t.addTask('t', 'T');
    for (let i = 0; i < 30; i++) {
      const burst: Promise<unknown>[] = [];
      for (let k = 0; k < 10; k++) burst.push(t.updateTaskProgress('t', ((i * 10 + k) % 99) + 1));
      await Promise.all(burst);
    }
    const last = t.durableProgress.lastSeq;
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'small-buffer', sinceSeq: 0 });
    await c.until((ms) => ms.filter((m) => m.type === 'progress_event').length === last, 10_000, 'the whole replay');
    expectConsecutive(c.seqs('small-buffer'), 1, last);
    expect(c.closeCode).toBeUndefined();
  });

  it('a subscribe whose load outlives the release of its topic still ends up on the shared topic (no leaked store watch)', async () => {
    class GatedStore extends WatchableMemoryStore {
      gate: Promise<void> | undefined;
      readonly loading = deferred();
      override async load(upgradeId: string): Promise<UpgradeProgress | undefined> {
        if (upgradeId === 'later' && this.gate) {
          this.loading.resolve();
          await this.gate;
        }
        return super.load(upgradeId);
      }
    }
    const store = new GatedStore();
    const writer = await openTracker('u1', store);
    trackers.push(writer);
    server = new ProgressWebSocketServer({ port: 0, store });
    const { url } = await server.start();
    const star = await connect(url);
    star.send({ type: 'subscribe', upgradeId: '*' });
    await star.next((m) => m.type === 'snapshot');

    const gate = deferred();
    store.gate = gate.promise;
    const a = await connect(url);
    a.send({ type: 'subscribe', upgradeId: 'later' });
    await store.loading.promise;
    // The "*" client leaves while a's load is pending: the server stops watchAll and forgets idle topics.
    await star.close();
    await sleep(20);
    gate.resolve();
    await a.next((m) => m.type === 'subscribed');
    for (let i = 0; i < 100 && store.activeWatches !== 1; i++) await sleep(10);
    expect(store.activeWatches).toBe(1); // a's watch of "later"

    const later = await openTracker('later', store);
    trackers.push(later);
    await later.startUpgrade();
    await a.until((ms) => ms.filter((m) => m.type === 'progress_event').length === 2, 10_000, 'the events of "later"');
    expectConsecutive(a.seqs('later'), 1, 2);

    a.send({ type: 'unsubscribe', upgradeId: 'later' });
    await a.answered();
    for (let i = 0; i < 100 && store.activeWatches > 0; i++) await sleep(10);
    expect(store.activeWatches).toBe(0);
    expect(server.getStats().topics).toBe(0);
  });
});

describe('start() and stop() called without waiting for each other', () => {
  it('start() is idempotent, as the README says: calls at once or after it listens get the one address, and one stop() leaves nothing listening', async () => {
    server = new ProgressWebSocketServer({ port: 0 });
    const [a, b] = await Promise.all([server.start(), server.start()]);
    expect(b).toEqual(a);
    expect(await server.start()).toEqual(a);
    const c = await connect(a.url);
    await c.next((m) => m.type === 'welcome');
    await server.stop();
    expect(server.address).toBeUndefined();
    expect(await accepts(a.port)).toBe(false);
    expect(await accepts(b.port)).toBe(false);
  });

  it('a start() during a stop() listens once that stop is done, and the last stop() leaves nothing listening', async () => {
    server = new ProgressWebSocketServer({ port: 0 });
    const first = await server.start();
    const c = await connect(first.url); // a client, so that the stop takes a while
    const stopping = server.stop();
    const restarting = server.start();
    await stopping;
    const second = await restarting;
    expect(await accepts(second.port)).toBe(true);
    const again = await connect(second.url);
    await again.next((m) => m.type === 'welcome');
    await server.stop();
    expect(c.closeCode).toBe(1001);
    expect(await accepts(first.port)).toBe(false);
    expect(await accepts(second.port)).toBe(false);
  });

  it('a start() overtaken by a stop() rejects with CLOSED and leaves nothing listening', async () => {
    server = new ProgressWebSocketServer({ port: 0 });
    const starting = server.start();
    const stopped = server.stop();
    await expect(starting).rejects.toMatchObject({ code: 'CLOSED' });
    await stopped;
    expect(server.address).toBeUndefined();
    // It can be started again.
    const address = await server.start();
    expect(await accepts(address.port)).toBe(true);
  });
});

describe('start() on a port another process holds', () => {
  /** A TCP server on a free port of 127.0.0.1, holding it; its port. */
  async function holdPort(): Promise<{ port: number; release: () => Promise<void> }> {
    const holder = createNetServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    return { port: (holder.address() as AddressInfo).port, release: () => new Promise((resolve) => holder.close(() => resolve())) };
  }

  it('rejects with CONFLICT when it listens itself', async () => {
    const held = await holdPort();
    try {
      server = new ProgressWebSocketServer({ port: held.port });
      await expect(server.start()).rejects.toMatchObject({ code: 'CONFLICT' });
    } finally {
      await held.release();
    }
  });

  it('rejects with CONFLICT, as the README says, also when the attached http.Server fails to listen on it', async () => {
    const held = await holdPort();
    const http = createHttpServer();
    http.on('error', () => {}); // the app's own handler
    try {
      server = new ProgressWebSocketServer({ server: http });
      const starting = server.start();
      http.listen(held.port, '127.0.0.1');
      await expect(starting).rejects.toMatchObject({ code: 'CONFLICT' });
      expect(server.address).toBeUndefined();
    } finally {
      await held.release();
    }
  });

  it('rejects with INVALID_ARGUMENT when the attached http.Server cannot take its address for another reason', async () => {
    const http = createHttpServer();
    http.on('error', () => {});
    server = new ProgressWebSocketServer({ server: http });
    const starting = server.start();
    http.listen(0, '192.0.2.1'); // TEST-NET-1: no address of this machine (EADDRNOTAVAIL)
    await expect(starting).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('a logger that throws (a closed transport)', () => {
  it('fails neither start(), a client, the events served nor stop()', async () => {
    const { logger, calls } = throwingLogger();
    server = new ProgressWebSocketServer({ port: 0, logger });
    const { url } = await server.start();
    const tracker = await openTracker('logged');
    trackers.push(tracker);
    server.track(tracker);
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'logged' });
    await c.answered();
    await tracker.startUpgrade();
    await c.until((messages) => messages.some((m) => m.type === 'progress_event' && m.data.seq === 2), 5000, 'event seq 2');
    // A bad message is answered as always, although its log line fails.
    c.send('{not json');
    await c.until((messages) => messages.some((m) => m.type === 'error' && m.code === 'INVALID_MESSAGE'), 5000, 'INVALID_MESSAGE');
    await server.stop();
    server = undefined;
    expect(calls.length).toBeGreaterThan(0);
  });
});
