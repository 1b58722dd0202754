import { randomUUID } from 'node:crypto';
import { RedisStore } from '@progress/storage-redis';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressWebSocketServer } from '../src/index.js';
import { TestClient, expectConsecutive, openTracker } from './helpers.js';

const keyPrefix = `ws-del-${randomUUID().slice(0, 8)}:`;
const closers: Array<() => Promise<unknown>> = [];

afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

describe('ws-server over Redis: an upgrade deleted while subscribers follow it', () => {
  it('resyncs them, and follows the upgrade created again under the same id from its seq 1', async () => {
    const url = process.env.REDIS_URL;
    if (!url) throw new Error('REDIS_URL is not set: the global setup should have started a Redis');
    const serving = new RedisStore({ url, keyPrefix, watchBlockMs: 200 });
    const writing = new RedisStore({ url, keyPrefix });
    closers.push(() => serving.close(), () => writing.close());
    const first = await openTracker('u-del', writing);
    await first.startUpgrade();
    await first.addTask('t', 'T');
    await first.close();

    const server = new ProgressWebSocketServer({ port: 0, store: serving });
    closers.push(() => server.stop());
    const client = await TestClient.connect((await server.start()).url);
    closers.push(() => client.close());
    client.send({ type: 'subscribe', upgradeId: 'u-del' });
    expect((await client.next((m) => m.type === 'snapshot')).seq).toBe(3);
    // The server follows u-del with one store watch from here (its first command reads the meta).
    await client.until(() => serving.info().watchers === 1, 5000, 'the store watch');
    await new Promise((r) => setTimeout(r, 50));

    await writing.delete('u-del');
    const again = await openTracker('u-del', writing);
    closers.push(() => again.close());
    await again.startUpgrade();
    await again.addTask('t', 'T');
    for (let i = 1; i <= 5; i++) await again.updateTaskProgress('t', i * 10);
    const resync = await client.next((m) => m.type === 'resync', 0, 10_000);
    expect(resync).toMatchObject({ upgradeId: 'u-del', reason: 'gap' });
    // After the resync: the new upgrade's snapshot, then its later events, none of the old one.
    await client.until((ms) => ms.some((m) => m.type === 'progress_event' && m.data.seq === again.progress.lastSeq), 10_000, 'the last event');
    const after = client.messages.slice(client.messages.indexOf(resync));
    const snap = after.find((m) => m.type === 'snapshot')!;
    expect(snap.data.lastSeq).toBeGreaterThanOrEqual(1);
    expectConsecutive(after.filter((m) => m.type === 'progress_event').map((m) => m.data.seq), snap.seq + 1, again.progress.lastSeq);
  }, 30_000);
});
