import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore, type ProgressEvent, type ProgressTracker } from '@progress/core';
import { ProgressWebSocketServer } from '../src/index.js';
import { closedAfterEach, expectConsecutive, openTracker, sleep } from './helpers.js';

// A frame larger than half of maxBufferedBytes is not counted against the limit while it is being
// sent (a big snapshot, or a big live event: the same shared buffer for every client). Held during a
// replay, the same live event was counted in full: a client that reads was closed with 1013 for one
// frame it would have read, had it come a moment later. (Found by a review on 2026-11-29; the first
// test failed before the fix.)

let http: Server | undefined;
// Registered before closedAfterEach's hook, so it runs after it (hooks run as a stack): the test's
// http.Server is closed once the server and its clients are.
afterEach(async () => {
  http?.closeAllConnections();
  await new Promise<void>((resolve) => (http?.listening ? http.close(() => resolve()) : resolve()));
  http = undefined;
});
const opened = closedAfterEach();
// Runs first: a client that does not read would make its close wait for closeTimeoutMs.
afterEach(() => {
  for (const c of opened.clients) c.ws.terminate();
});

const LIMIT = 256 * 1024;
/** A live event's size: more than half of the limit, less than all of it. */
const BIG = 160_000;

/**
 * A store whose readEvents reads one event at a time until there is none (as a paginated read of a
 * RedisStore does: a replay reads the events appended while it runs), and waits for `gate`, if set,
 * before reading event `gateAt` (`atGate` resolves then).
 */
class GatedPagedStore extends MemoryStore {
  gate: Promise<void> | undefined;
  gateAt = 0;
  #reached: (() => void) | undefined;
  readonly atGate = new Promise<void>((resolve) => (this.#reached = resolve));
  override async *readEvents(upgradeId: string, afterSeq: number, limit = Infinity): AsyncIterable<ProgressEvent> {
    let last = afterSeq;
    for (let n = 0; n < limit; n++) {
      if (this.gate && last + 1 === this.gateAt) {
        this.#reached!();
        await this.gate;
      }
      let next: ProgressEvent | undefined;
      for await (const ev of super.readEvents(upgradeId, last, 1)) next = ev;
      if (!next) return;
      last = next.seq;
      yield next;
    }
  }
}

/**
 * A server on an http.Server of the test (so that the test sees the server's side of each connection),
 * a tracked upgrade with `events` events of 8 KB after its first three, and a client that does not
 * read, subscribed from seq 0: its replay waits for the socket to drain.
 */
async function replayWaiting(events: number) {
  const sockets: Socket[] = [];
  http = createServer();
  http.on('connection', (s) => sockets.push(s));
  await new Promise<void>((resolve) => http!.listen(0, '127.0.0.1', resolve));
  const server = new ProgressWebSocketServer({ server: http, maxBufferedBytes: LIMIT, closeTimeoutMs: 20_000 });
  opened.server = server;
  const { url } = await server.start();
  const t: ProgressTracker = await openTracker('r');
  opened.trackers.push(t);
  server.track(t);
  await t.startUpgrade();
  await t.addTask('t', 'T');
  const pad = 'r'.repeat(8000);
  for (let i = 0; i < events; i++) await t.updateTaskProgress('t', 1 + (i % 90), undefined, { pad, i });
  const c = await opened.connect(url);
  await c.answered();
  c.socket.pause();
  c.send({ type: 'subscribe', upgradeId: 'r', sinceSeq: 0 });
  // The replay sent more than half of the limit that the client did not take: it waits for a drain.
  const mine = () => sockets.find((s) => s.writableLength > LIMIT / 2);
  for (let i = 0; i < 1000 && !mine(); i++) await sleep(10);
  expect(mine()).toBeDefined();
  return { server, t, c };
}

describe('a live event larger than half of maxBufferedBytes, held during a replay', () => {
  it('is not counted against the limit: a client that reads gets the replay, the event, and the events after it', async () => {
    const { server, t, c } = await replayWaiting(800);
    const before = t.durableProgress.lastSeq;
    await t.updateTaskProgress('t', 95, undefined, { big: 'B'.repeat(BIG) }); // held: the replay has not reached it
    await t.updateTaskProgress('t', 96); // a small one after it, held too
    expect(server.getStats().slowClientsClosed).toBe(0);
    c.socket.resume();
    const last = before + 2;
    await c.until((ms) => ms.some((m) => m.type === 'progress_event' && m.data.seq === last), 30_000, `seq ${last}`);
    await c.answered();
    expectConsecutive(c.seqs('r'), 1, last);
    expect(c.ofType('progress_event').at(-2)!.data.details.big).toHaveLength(BIG);
    // Live from there.
    const from = c.messages.length;
    await t.updateTaskProgress('t', 97);
    expect((await c.next((m) => m.type === 'progress_event', from)).data.seq).toBe(last + 1);
    expect(c.closeCode).toBeUndefined();
    expect(server.getStats().slowClientsClosed).toBe(0);
  });

  it('nor is it when the replay reads that event from the store and sends its own copy while the live one is still held', async () => {
    const store = new GatedPagedStore();
    const server = new ProgressWebSocketServer({ port: 0, maxBufferedBytes: LIMIT, closeTimeoutMs: 20_000 });
    opened.server = server;
    const { url } = await server.start();
    const t = await openTracker('r', store);
    opened.trackers.push(t);
    server.track(t);
    await t.startUpgrade();
    await t.addTask('t', 'T'); // seq 3
    store.gateAt = 4;
    let open!: () => void;
    store.gate = new Promise<void>((resolve) => (open = resolve));
    const c = await opened.connect(url);
    c.send({ type: 'subscribe', upgradeId: 'r', sinceSeq: 0 });
    await store.atGate; // the replay sent seqs 1..3 and waits to read on
    // Held, both: one of less than half of the limit (counted), and a big one (not counted).
    await t.updateTaskProgress('t', 1, undefined, { pad: 'm'.repeat(110_000) }); // seq 4
    await t.updateTaskProgress('t', 2, undefined, { big: 'B'.repeat(BIG) }); // seq 5
    expect(server.getStats().slowClientsClosed).toBe(0);
    // The replay reads seqs 4 and 5 and writes them in one go, its own copy of the big event among
    // them, while the live one is still held: neither copy of it counts.
    open();
    await c.until((ms) => ms.some((m) => m.type === 'progress_event' && m.data.seq === 5), 10_000, 'seq 5');
    await t.updateTaskProgress('t', 3); // seq 6, live
    await c.until((ms) => ms.some((m) => m.type === 'progress_event' && m.data.seq === 6), 10_000, 'seq 6');
    await c.answered();
    expectConsecutive(c.seqs('r'), 1, 6);
    expect(c.closeCode).toBeUndefined();
    expect(server.getStats().slowClientsClosed).toBe(0);
  });

  it('what is held beside it still counts: a client that does not read is closed once that passes the limit', async () => {
    const { server, t, c } = await replayWaiting(800);
    await t.updateTaskProgress('t', 95, undefined, { big: 'B'.repeat(BIG) });
    const pad = 'e'.repeat(16_000);
    let written = 0;
    while (server.getStats().slowClientsClosed === 0 && written < 200) {
      await t.updateTaskProgress('t', 1 + (written % 90), undefined, { pad });
      written++;
    }
    expect(server.getStats().slowClientsClosed).toBe(1);
    // Within the limit's worth of them: the big one held opened no more room than its own.
    expect(written * 16_000).toBeLessThanOrEqual(LIMIT + 16_000);
    c.socket.resume();
    expect(await c.closed).toBe(1013);
  });
});
