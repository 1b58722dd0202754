import { describe, expect, it } from 'vitest';
import type { ProgressTracker } from '@progress/core';
import { ProgressWebSocketServer } from '../src/index.js';
import { closedAfterEach, expectConsecutive, openTracker, sleep, type TestClient } from './helpers.js';

// Snapshots are the largest frames: a healthy client that reads at a normal speed must get them
// whatever their size, while a client that does not read is still closed as slow. A `*` subscriber
// was sent one snapshot per upgrade within microtasks, so the socket never drained in between, and
// was closed with 1013 once they passed maxBufferedBytes together; a single snapshot larger than the
// limit closed every subscriber of that upgrade, which reconnected (the dashboard) to be closed
// again. (Found by a review on 2026-11-29; each test failed before the fix.)

const opened = closedAfterEach();
const { trackers, connect } = opened;

const LIMIT = 256 * 1024;

/** A tracked upgrade whose snapshot is about `bytes` long (one task's details). */
async function bigUpgrade(server: ProgressWebSocketServer, upgradeId: string, bytes: number): Promise<ProgressTracker> {
  const t = await openTracker(upgradeId);
  trackers.push(t);
  server.track(t);
  await t.startUpgrade();
  await t.addTask('t', 'T');
  await t.updateTaskProgress('t', 1, undefined, { pad: 'p'.repeat(bytes) }); // seq 4
  return t;
}

/** A server with a small maxBufferedBytes, so that the tests write little. */
async function serve(): Promise<{ server: ProgressWebSocketServer; url: string }> {
  const server = new ProgressWebSocketServer({ port: 0, maxBufferedBytes: LIMIT, closeTimeoutMs: 20_000 });
  opened.server = server;
  return { server, url: (await server.start()).url };
}

const snapshotSize = (t: ProgressTracker): number => Buffer.byteLength(JSON.stringify(t.durableProgress));

/**
 * Reads as a client on a slow link does: one chunk, then a pause, until `done()`. The kernel's
 * buffers fill, so that what the server writes faster than that waits in its own buffer.
 */
async function readSlowly(c: TestClient, done: () => boolean): Promise<void> {
  const socket = c.socket;
  socket.pause();
  while (!done() && c.closeCode === undefined) {
    const chunk = new Promise((resolve) => socket.once('data', resolve));
    socket.resume();
    await Promise.race([chunk, sleep(50)]);
    socket.pause();
    await sleep(2);
  }
  socket.resume();
}

describe('big snapshots to a client that reads slowly', () => {
  // Together far more than the kernel's socket buffers take: the server must wait for the client
  // between snapshots (above half of maxBufferedBytes), not write them all at once and close it as slow.
  for (const how of ['"*"', 'name'] as const) {
    it(`a subscriber by ${how} gets every snapshot, one after the other`, async () => {
      const { server, url } = await serve();
      // (By name, 30 subscribes at once: within the rate limit's burst.)
      const n = how === 'name' ? 30 : 60;
      for (let i = 0; i < n; i++) await bigUpgrade(server, `s${i}`, 250_000);
      const c = await connect(url);
      await c.answered();
      const snapshots = () => c.ofType('snapshot').length === n;
      const reading = readSlowly(c, snapshots);
      if (how === 'name') {
        c.socket.cork();
        for (let i = 0; i < n; i++) c.send({ type: 'subscribe', upgradeId: `s${i}` });
        c.socket.uncork();
      } else c.send({ type: 'subscribe', upgradeId: '*' });
      await reading;
      expect(c.closeCode).toBeUndefined();
      expect(c.ofType('snapshot')).toHaveLength(n);
      expect(server.getStats().slowClientsClosed).toBe(0);
    }, 60_000);
  }
});

describe('big snapshots to a client that reads', () => {
  it('a "*" subscriber gets one snapshot per upgrade although together they pass maxBufferedBytes many times, and then the live events', async () => {
    const { server, url } = await serve();
    const ups: ProgressTracker[] = [];
    for (let i = 0; i < 40; i++) ups.push(await bigUpgrade(server, `u${i}`, 30_000));
    expect(snapshotSize(ups[0]!) * ups.length).toBeGreaterThan(4 * LIMIT);
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: '*' });
    await c.until((ms) => ms.filter((m) => m.type === 'snapshot').length === 40, 20_000, '40 snapshots');
    await c.answered();
    expect(new Set(c.ofType('snapshot').map((m) => m.upgradeId)).size).toBe(40);
    // Live afterwards, for every upgrade.
    await Promise.all(ups.map((t) => t.updateTaskProgress('t', 2))); // seq 5 of each
    await c.until((ms) => ms.filter((m) => m.type === 'progress_event').length === 40, 10_000, 'an event of each upgrade');
    for (let i = 0; i < 40; i++) expectConsecutive(c.seqs(`u${i}`), 5, 5);
    expect(c.closeCode).toBeUndefined();
    expect(server.getStats().slowClientsClosed).toBe(0);
  });

  it('a subscriber by name gets a snapshot larger than maxBufferedBytes, and the events after it, while a client that does not read is still closed as slow', async () => {
    const { server, url } = await serve();
    const t = await bigUpgrade(server, 'big', 2 * LIMIT);
    expect(snapshotSize(t)).toBeGreaterThan(2 * LIMIT);
    const reading = await connect(url);
    const paused = await connect(url);
    await paused.answered();
    paused.socket.pause();
    for (const c of [reading, paused]) c.send({ type: 'subscribe', upgradeId: 'big' });
    expect((await reading.next((m) => m.type === 'snapshot')).seq).toBe(4);
    // Events of 16 KB until the client that does not read is closed (what comes beside the snapshot
    // counts), no faster than the reading client reads them.
    const pad = 'e'.repeat(16_000);
    let written = 0;
    while (server.getStats().slowClientsClosed === 0 && written < 2000) {
      for (let k = 0; k < 8; k++, written++) await t.updateTaskProgress('t', 2 + (written % 90), undefined, { pad });
      await reading.until((ms) => ms.filter((m) => m.type === 'progress_event').length === written, 10_000, `${written} events`);
    }
    expect(server.getStats().slowClientsClosed).toBe(1);
    // It took more than the limit in events, not one: the snapshot in its buffer was not counted.
    expect(written * 16_000).toBeGreaterThan(LIMIT);
    expectConsecutive(reading.seqs('big'), 5, 4 + written);
    expect(reading.closeCode).toBeUndefined();
    paused.socket.resume();
    expect(await paused.closed).toBe(1013);
  });

  it('subscribes by name in a row to upgrades whose snapshots each take more than half of maxBufferedBytes get them all', async () => {
    const { server, url } = await serve();
    for (let i = 0; i < 4; i++) await bigUpgrade(server, `b${i}`, 0.7 * LIMIT);
    const c = await connect(url);
    // In one write, so that the server reads them together (as from a client that sends them at once).
    c.socket.cork();
    for (let i = 0; i < 4; i++) c.send({ type: 'subscribe', upgradeId: `b${i}` });
    c.socket.uncork();
    await c.until((ms) => ms.filter((m) => m.type === 'snapshot').length === 4, 20_000, '4 snapshots');
    await c.answered();
    expect(c.ofType('snapshot').map((m) => m.upgradeId)).toEqual(['b0', 'b1', 'b2', 'b3']);
    expect(c.closeCode).toBeUndefined();
    expect(server.getStats().slowClientsClosed).toBe(0);
  });
});
