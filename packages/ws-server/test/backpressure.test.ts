import { afterEach, describe, expect, it } from 'vitest';
import type { ProgressTracker } from '@progress/core';
import { ProgressWebSocketServer } from '../src/index.js';
import { TestClient, expectConsecutive, openTracker, sleep } from './helpers.js';

let server: ProgressWebSocketServer | undefined;
let tracker: ProgressTracker | undefined;
const clients: TestClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.ws.terminate();
  await server?.stop();
  await tracker?.close();
  server = undefined;
  tracker = undefined;
});

describe('slow clients (acceptance 3)', () => {
  it('closes a paused client with 1013 once its buffer passes the limit, while a healthy client receives all 20,000 events of 4 KB', async () => {
    const warnings: string[] = [];
    const logger = { debug() {}, info() {}, error() {}, warn: (_o: object, msg?: string) => void warnings.push(msg ?? '') };
    server = new ProgressWebSocketServer({ port: 0, maxBufferedBytes: 2 * 1024 * 1024, closeTimeoutMs: 20_000, logger });
    const { url } = await server.start();
    tracker = await openTracker('big');
    server.track(tracker);
    await tracker.startUpgrade();
    await tracker.addTask('t', 'Bulk');
    const healthy = await TestClient.connect(url);
    const paused = await TestClient.connect(url);
    clients.push(healthy, paused);
    for (const c of [healthy, paused]) c.send({ type: 'subscribe', upgradeId: 'big' });
    await Promise.all([healthy, paused].map((c) => c.next((m) => m.type === 'snapshot')));
    paused.socket.pause();

    const total = 20_000;
    const pad = 'x'.repeat(4000);
    let written = 0;
    let healthyCount = 0;
    healthy.ws.on('message', () => void healthyCount++);
    while (written < total) {
      const burst: Promise<unknown>[] = [];
      for (let k = 0; k < 100 && written < total; k++, written++) burst.push(tracker.updateTaskProgress('t', (written % 99) + 1, undefined, { pad, i: written }));
      await Promise.all(burst);
      // A producer no faster than a healthy reader: the healthy client stays within a few hundred events.
      while (healthyCount < written - 300) await sleep(1);
    }
    await healthy.until((ms) => ms.filter((m) => m.type === 'progress_event').length === total, 60_000, 'all 20,000 events');
    expectConsecutive(healthy.seqs('big'), 4, total + 3);
    expect(healthy.ofType('progress_event')[0]!.data.details.pad).toHaveLength(4000);
    expect(healthy.closeCode).toBeUndefined();

    expect(server.getStats().slowClientsClosed).toBe(1);
    expect(warnings).toContain('closing a client whose send buffer passed maxBufferedBytes');
    // Let the paused client read what was queued for it: it ends with the 1013 close frame.
    paused.socket.resume();
    expect(await paused.closed).toBe(1013);
    expect(paused.seqs('big').length).toBeLessThan(total);
    for (let i = 0; i < 100 && server.getStats().clients > 1; i++) await sleep(10);
    expect(server.getStats().clients).toBe(1);
  });

  it('terminates a client whose close frame cannot be delivered in time', async () => {
    server = new ProgressWebSocketServer({ port: 0, maxBufferedBytes: 256 * 1024, closeTimeoutMs: 100 });
    const { url } = await server.start();
    tracker = await openTracker('u1');
    server.track(tracker);
    await tracker.addTask('t', 'T');
    const paused = await TestClient.connect(url);
    clients.push(paused);
    paused.send({ type: 'subscribe', upgradeId: 'u1' });
    await paused.next((m) => m.type === 'snapshot');
    paused.socket.pause();
    const pad = 'y'.repeat(8000);
    for (let i = 0; i < 2000 && server.getStats().slowClientsClosed === 0; i++) await tracker.updateTaskProgress('t', 1 + (i % 98), undefined, { pad });
    expect(server.getStats().slowClientsClosed).toBe(1);
    for (let i = 0; i < 100 && server.getStats().clients > 0; i++) await sleep(20);
    expect(server.getStats().clients).toBe(0);
  });

  it('terminates a peer that misses a heartbeat', async () => {
    server = new ProgressWebSocketServer({ port: 0, heartbeatMs: 40 });
    const { url } = await server.start();
    const live = await TestClient.connect(url);
    const dead = await TestClient.connect(url);
    clients.push(live, dead);
    await Promise.all([live, dead].map((c) => c.next((m) => m.type === 'welcome')));
    dead.socket.pause();
    for (let i = 0; i < 100 && server.getStats().clients > 1; i++) await sleep(20);
    expect(server.getStats().clients).toBe(1);
    await live.answered();
  });
});
