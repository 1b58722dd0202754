// Found by a review on 2026-11-29: the slow-client check excused only the last copy of a big frame,
// so a client reading at a normal speed, sent the same big snapshot twice in one tick (a resync of an
// upgrade it follows by name and through `*`), was closed with 1013.
import { describe, expect, it } from 'vitest';
import type { ProgressTracker } from '@progress/core';
import { ProgressWebSocketServer } from '../src/index.js';
import { closedAfterEach, openTracker, sleep } from './helpers.js';

const opened = closedAfterEach();
const LIMIT = 256 * 1024;

async function big(upgradeId: string, bytes: number): Promise<ProgressTracker> {
  const t = await openTracker(upgradeId);
  opened.trackers.push(t);
  await t.startUpgrade();
  await t.addTask('t', 'T');
  await t.updateTaskProgress('t', 1, undefined, { pad: 'p'.repeat(bytes) });
  return t;
}

describe('a big snapshot sent twice in one tick to a client that reads', () => {
  it('a client following a big upgrade by name and through "*" is not closed as slow when the upgrade is started again', async () => {
    const server = new ProgressWebSocketServer({ port: 0, maxBufferedBytes: LIMIT, closeTimeoutMs: 20_000 });
    opened.server = server;
    const { url } = await server.start();
    const t1 = await big('big', 1.2 * LIMIT);
    server.track(t1);
    const c = await opened.connect(url);
    c.send({ type: 'subscribe', upgradeId: 'big' });
    c.send({ type: 'subscribe', upgradeId: '*' });
    await c.until((ms) => ms.filter((m) => m.type === 'snapshot').length === 2, 10_000, 'two snapshots');
    await c.answered();
    expect(server.getStats().slowClientsClosed).toBe(0);

    // The upgrade is started again (a new run, as big), and tracked: both subscriptions are resynced.
    await sleep(5);
    const t2 = await big('big', 1.2 * LIMIT);
    server.untrack(t1);
    server.track(t2);
    await sleep(500);
    console.log('slowClientsClosed', server.getStats().slowClientsClosed, 'closeCode', c.closeCode, 'snapshots', c.ofType('snapshot').length);
    expect(server.getStats().slowClientsClosed).toBe(0);
    expect(c.closeCode).toBeUndefined();
  });
});
