import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ProgressTracker } from '@progress/core';
import { ProgressWebSocketServer, parseClientMessage } from '../src/index.js';
import { TestClient, expectConsecutive, openTracker, sleep } from './helpers.js';

let server: ProgressWebSocketServer;
let url: string;
const trackers: ProgressTracker[] = [];
const clients: TestClient[] = [];

async function client(): Promise<TestClient> {
  const c = await TestClient.connect(url);
  clients.push(c);
  return c;
}
async function tracker(id: string): Promise<ProgressTracker> {
  const t = await openTracker(id);
  trackers.push(t);
  return t;
}

beforeEach(async () => {
  server = new ProgressWebSocketServer({ port: 0 });
  ({ url } = await server.start());
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await server.stop();
  await Promise.all(trackers.splice(0).map((t) => t.close()));
});

describe('protocol v1', () => {
  it('greets with welcome, answers ping, list_upgrades and get_summary', async () => {
    const t = await tracker('u1');
    server.track(t);
    await t.startUpgrade('Preflight');
    await t.addTask('a', 'Drain');
    const c = await client();
    await c.until((ms) => ms.length >= 1);
    expect(c.messages[0]).toEqual({ type: 'welcome', protocol: 1, serverId: server.serverId, serverTime: expect.any(String) });
    expect(Math.abs(Date.parse(c.messages[0]!.serverTime as string) - Date.now())).toBeLessThan(60_000);
    c.send({ type: 'ping' });
    c.send({ type: 'list_upgrades' });
    c.send({ type: 'get_summary', upgradeId: 'u1' });
    c.send({ type: 'get_summary', upgradeId: 'nope' });
    await c.until((ms) => ms.length >= 5);
    expect(c.messages.slice(1).map((m) => m.type)).toEqual(['pong', 'upgrades', 'progress_summary', 'error']);
    expect(c.messages[2]!.data).toHaveLength(1);
    expect(c.messages[2]!.data[0]).toMatchObject({ upgradeId: 'u1', status: 'in_progress', totalTasks: 1, lastSeq: 3 });
    expect(c.messages[3]).toMatchObject({ upgradeId: 'u1', data: { upgradeId: 'u1', currentPhase: 'Preflight', totalTasks: 1, lastSeq: 3 } });
    expect(c.messages[4]).toMatchObject({ type: 'error', code: 'NOT_FOUND' });
  });

  it('lists upgrades the most recently updated first, as the README says, not in the order they were tracked', async () => {
    const b = await tracker('b-tracked-first');
    const a = await tracker('a-tracked-second');
    server.track(b);
    server.track(a);
    await b.startUpgrade();
    await a.startUpgrade();
    const c = await client();
    const list = async (): Promise<Array<{ upgradeId: string; updatedAt: string }>> => {
      const from = c.messages.length;
      c.send({ type: 'list_upgrades' });
      return (await c.next((m) => m.type === 'upgrades', from)).data;
    };
    // `a` was updated last (or in the same millisecond, where the id decides): it comes first.
    const first = await list();
    expect(first.map((r) => r.upgradeId)).toEqual(['a-tracked-second', 'b-tracked-first']);
    // Once the clock has moved past `a`'s update, `b` updated again comes first.
    while (Date.now() <= Date.parse(first[0]!.updatedAt)) await sleep(1);
    await b.addTask('t', 'T');
    expect((await list()).map((r) => r.upgradeId)).toEqual(['b-tracked-first', 'a-tracked-second']);
  });

  it('sends subscribed then a snapshot at seq N, then every event after N', async () => {
    const t = await tracker('u1');
    server.track(t);
    await t.startUpgrade();
    const c = await client();
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    const snap = await c.next((m) => m.type === 'snapshot');
    const types = c.messages.map((m) => m.type);
    expect(types.slice(0, 3)).toEqual(['welcome', 'subscribed', 'snapshot']);
    expect(c.messages[1]).toEqual({ type: 'subscribed', upgradeId: 'u1', exists: true });
    expect(snap).toMatchObject({ upgradeId: 'u1', seq: 2, data: { upgradeId: 'u1', lastSeq: 2, status: 'in_progress' } });
    await t.addTask('a', 'A');
    await t.updateTaskProgress('a', 40);
    await c.until((ms) => ms.filter((m) => m.type === 'progress_event').length === 2);
    expect(c.seqs('u1')).toEqual([3, 4]);
    expect(c.ofType('progress_event')[1]!.data).toMatchObject({ type: 'task.progress', taskId: 'a', percentage: 40 });
  });

  it('serves an upgrade that does not exist yet from seq 1 once it appears', async () => {
    const c = await client();
    c.send({ type: 'subscribe', upgradeId: 'later' });
    const sub = await c.next((m) => m.type === 'subscribed');
    expect(sub).toEqual({ type: 'subscribed', upgradeId: 'later', exists: false });
    const t = await tracker('later');
    server.track(t);
    await t.startUpgrade();
    await t.addTask('x', 'X');
    await c.until((ms) => ms.filter((m) => m.type === 'progress_event').length === 3);
    expectConsecutive(c.seqs('later'), 1, 3);
    expect(c.ofType('snapshot')).toHaveLength(0);
  });

  it('"*" sends a snapshot per upgrade, then every event of every upgrade, including new upgrades', async () => {
    const t1 = await tracker('u1');
    const t2 = await tracker('u2');
    server.track(t1);
    server.track(t2);
    const c = await client();
    c.send({ type: 'subscribe', upgradeId: '*' });
    await c.until((ms) => ms.filter((m) => m.type === 'snapshot').length === 2);
    expect(c.messages[1]).toEqual({ type: 'subscribed', upgradeId: '*', exists: true });
    await t1.startUpgrade();
    await t2.startUpgrade();
    const t3 = await tracker('u3');
    server.track(t3);
    await t3.startUpgrade();
    await c.until((ms) => ms.filter((m) => m.type === 'progress_event').length === 3);
    expect(c.seqs('u1')).toEqual([2]);
    expect(c.seqs('u2')).toEqual([2]);
    expect(c.ofType('snapshot', 'u3')).toHaveLength(1);
    expect(c.ofType('snapshot', 'u3')[0]!.seq).toBe(1);
    expect(c.seqs('u3')).toEqual([2]);
  });

  it('rejects "*" with sinceSeq, bad JSON, unknown types and binary frames with INVALID_MESSAGE, and the connection stays', async () => {
    const c = await client();
    c.send({ type: 'subscribe', upgradeId: '*', sinceSeq: 3 });
    c.send('{not json');
    c.send({ type: 'explode' });
    c.send({ type: 'subscribe', upgradeId: '../etc' });
    c.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: -1 });
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    await c.answered();
    const errors = c.ofType('error');
    expect(errors).toHaveLength(6);
    expect(errors.every((e) => e.code === 'INVALID_MESSAGE' && typeof e.message === 'string')).toBe(true);
    expect(c.closeCode).toBeUndefined();
  });

  it('refuses a binary frame with INVALID_MESSAGE even when it holds a valid message, as the README says', async () => {
    const c = await client();
    await c.next((m) => m.type === 'welcome');
    c.ws.send(Buffer.from(JSON.stringify({ type: 'ping' })), { binary: true });
    await c.answered();
    // One pong: the answer to answered()'s text ping, none to the binary one.
    expect(c.messages.slice(1).map((m) => m.type)).toEqual(['error', 'pong']);
    expect(c.messages[1]).toMatchObject({ type: 'error', code: 'INVALID_MESSAGE' });
    expect(c.closeCode).toBeUndefined();
  });

  it('refuses a subscribe with createdAt but no sinceSeq with INVALID_MESSAGE, as the README says, and subscribes nothing', async () => {
    const t = await tracker('u1');
    server.track(t);
    await t.startUpgrade();
    const c = await client();
    c.send({ type: 'subscribe', upgradeId: 'u1', createdAt: t.durableProgress.createdAt });
    await c.answered();
    expect(c.ofType('error')).toEqual([{ type: 'error', code: 'INVALID_MESSAGE', message: expect.stringContaining('createdAt') }]);
    expect(c.ofType('subscribed')).toHaveLength(0);
    expect(c.ofType('snapshot')).toHaveLength(0);
    expect(c.closeCode).toBeUndefined();
  });

  it('a subscribe to an upgrade already subscribed to replaces that subscription: each later event comes once', async () => {
    const t = await tracker('u1');
    server.track(t);
    await t.startUpgrade();
    const c = await client();
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    await c.next((m) => m.type === 'snapshot');
    c.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 1 });
    await c.until(() => c.seqs('u1').includes(2));
    await t.addTask('t', 'T');
    await t.addTask('t2', 'T2');
    await c.until(() => c.seqs('u1').includes(4));
    await c.answered();
    expect(c.seqs('u1')).toEqual([2, 3, 4]);
  });

  it('stops sending after unsubscribe', async () => {
    const t = await tracker('u1');
    server.track(t);
    const c = await client();
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    await c.next((m) => m.type === 'snapshot');
    await t.startUpgrade();
    await c.until((ms) => ms.some((m) => m.type === 'progress_event'));
    c.send({ type: 'unsubscribe', upgradeId: 'u1' });
    await c.answered();
    await t.setCurrentPhase('Later');
    await c.answered();
    expect(c.seqs('u1')).toEqual([2]);
  });

  it('stops sending after unsubscribe from "*", also of upgrades that appear later', async () => {
    const t = await tracker('u1');
    server.track(t);
    await t.startUpgrade();
    const c = await client();
    c.send({ type: 'subscribe', upgradeId: '*' });
    await c.next((m) => m.type === 'snapshot');
    c.send({ type: 'unsubscribe', upgradeId: '*' });
    await c.answered();
    await t.setCurrentPhase('Later');
    const later = await tracker('u2');
    server.track(later);
    await later.startUpgrade();
    await c.answered();
    expect(c.messages.filter((m) => m.type === 'progress_event' || m.type === 'snapshot').map((m) => m.upgradeId)).toEqual(['u1']);
  });

  it('serializes and frames each event once whatever the number of clients', async () => {
    const t = await tracker('u1');
    server.track(t);
    const cs = await Promise.all(Array.from({ length: 5 }, () => client()));
    for (const c of cs) c.send({ type: 'subscribe', upgradeId: 'u1' });
    await Promise.all(cs.map((c) => c.next((m) => m.type === 'snapshot')));
    const before = server.getStats();
    await t.startUpgrade();
    await t.addTask('a', 'A');
    await Promise.all(cs.map((c) => c.until((ms) => ms.filter((m) => m.type === 'progress_event').length === 2)));
    const after = server.getStats();
    expect(after.eventsFramed - before.eventsFramed).toBe(2);
    expect(after.framesSent - before.framesSent).toBe(10);
    const raw = cs.map((c) => JSON.stringify(c.ofType('progress_event')));
    expect(new Set(raw).size).toBe(1);
  });

  it('serves a tracker that lists the server in its sinks without track()', async () => {
    const { ProgressTracker } = await import('@progress/core');
    const t = await ProgressTracker.open({ upgradeId: 'direct', planId: 'p1', clusterName: 'c', sinks: [server] });
    trackers.push(t);
    await t.startUpgrade();
    const c = await client();
    c.send({ type: 'subscribe', upgradeId: 'direct' });
    const snap = await c.next((m) => m.type === 'snapshot');
    expect(snap).toMatchObject({ seq: 2, data: { status: 'in_progress' } });
    await t.addTask('a', 'A');
    await c.until((ms) => ms.some((m) => m.type === 'progress_event'));
    expect(c.seqs('direct')).toEqual([3]);
  });

  it('sends UTF-8 text frames: a browser is given strings, and names outside ASCII arrive as written', async () => {
    const t = await tracker('u1');
    server.track(t);
    await t.startUpgrade();
    await t.addTask('a', 'Prüfung ✓ 検証');
    const c = await client();
    const binary: boolean[] = [];
    c.ws.on('message', (_data, isBinary) => binary.push(isBinary));
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    const snap = await c.next((m) => m.type === 'snapshot');
    expect(JSON.stringify(snap.data)).toContain('Prüfung ✓ 検証');
    expect(binary).toEqual([false, false]);
  });

  it('counts nothing before it served anything', () => {
    expect(server.getStats()).toEqual({ clients: 0, topics: 0, watchedUpgrades: 0, eventsFramed: 0, framesSent: 0, slowClientsClosed: 0, rateLimited: 0, handshakesRefused: 0 });
  });

  it('stop() closes every connection with 1001 and the server can start again', async () => {
    const c = await client();
    await server.stop();
    expect(await c.closed).toBe(1001);
    const again = await server.start();
    const c2 = await TestClient.connect(again.url);
    clients.push(c2);
    await c2.next((m) => m.type === 'welcome');
    await sleep(1);
  });
});

describe('parseClientMessage', () => {
  it('accepts the five message types and refuses the rest', () => {
    expect(parseClientMessage('{"type":"subscribe","upgradeId":"u1","sinceSeq":4}')).toEqual({ ok: true, message: { type: 'subscribe', upgradeId: 'u1', sinceSeq: 4 } });
    expect(parseClientMessage('{"type":"list_upgrades","extra":1}')).toEqual({ ok: true, message: { type: 'list_upgrades' } });
    expect(parseClientMessage('{"type":"get_summary"}').ok).toBe(false);
    expect(parseClientMessage('{"type":"subscribe","upgradeId":"u1","sinceSeq":1.5}').ok).toBe(false);
    expect(parseClientMessage('{"type":"subscribe","upgradeId":".."}').ok).toBe(false);
    expect(parseClientMessage('[]')).toEqual({ ok: false, message: expect.stringMatching(/^invalid message: \w/) });
    expect(parseClientMessage('{"type":"get_summary","upgradeId":".."}')).toEqual({ ok: false, message: expect.stringMatching(/^invalid message: upgradeId: \w/) });
    expect(parseClientMessage('{"type":"subscribe","upgradeId":"u1","createdAt":"2026-12-01T12:00:00.000Z"}')).toEqual({ ok: false, message: expect.stringMatching(/^invalid message: createdAt/) });
  });

  it('checks the upgrade id of every message that names one, and bounds createdAt', () => {
    // An id no store can hold is a bad message, not a request the server answers NOT_FOUND or passes to a store.
    for (const type of ['get_summary', 'unsubscribe']) {
      expect(parseClientMessage(JSON.stringify({ type, upgradeId: '../etc' })).ok, type).toBe(false);
      expect(parseClientMessage(JSON.stringify({ type, upgradeId: '' })).ok, type).toBe(false);
      expect(parseClientMessage(JSON.stringify({ type, upgradeId: 'u1' })).ok, type).toBe(true);
    }
    expect(parseClientMessage('{"type":"get_summary","upgradeId":"*"}').ok).toBe(false);
    expect(parseClientMessage('{"type":"unsubscribe","upgradeId":"*"}').ok).toBe(true);
    const subscribe = (createdAt: string) => parseClientMessage(JSON.stringify({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 3, createdAt }));
    expect(subscribe('2026-12-01T12:00:00.000Z'.padEnd(64, ' ')).ok).toBe(true);
    expect(subscribe('2026-12-01T12:00:00.000Z'.padEnd(65, ' ')).ok).toBe(false);
  });
});
