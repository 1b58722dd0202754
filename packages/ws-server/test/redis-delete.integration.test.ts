import { randomUUID } from 'node:crypto';
import type { ProgressEvent, ProgressStore, ProgressTracker } from '@progress/core';
import { RedisStore } from '@progress/storage-redis';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressWebSocketServer } from '../src/index.js';
import { deleteKeys } from '../../../tools/test-utils/src/redis.js';
import { TestClient, expectConsecutive, openTracker } from './helpers.js';

const keyPrefix = `ws-del-${randomUUID().slice(0, 8)}:`;
const closers: Array<() => Promise<unknown>> = [];

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  if (process.env.REDIS_URL) await deleteKeys(process.env.REDIS_URL, keyPrefix);
});

/** A store the server reads (short watch blocks) and one a tracker writes, with an upgrade at `progress` steps. */
async function storesWithUpgrade(upgradeId: string, progress: number): Promise<{ serving: RedisStore; writing: RedisStore }> {
  const url = process.env.REDIS_URL;
  if (!url) throw new Error('REDIS_URL is not set: the global setup should have started a Redis');
  const serving = new RedisStore({ url, keyPrefix, watchBlockMs: 200 });
  const writing = new RedisStore({ url, keyPrefix });
  closers.push(() => serving.close(), () => writing.close());
  const first = await openTracker(upgradeId, writing);
  await first.startUpgrade();
  await first.addTask('t', 'T');
  for (let i = 1; i <= progress; i++) await first.updateTaskProgress('t', i * 10);
  await first.close();
  return { serving, writing };
}

/** Deletes the upgrade and creates it again under the same id, with `progress` steps of `step`%. */
async function recreate(writing: RedisStore, upgradeId: string, progress: number, step: number): Promise<ProgressTracker> {
  await writing.delete(upgradeId);
  const again = await openTracker(upgradeId, writing);
  closers.push(() => again.close());
  await again.startUpgrade();
  await again.addTask('t', 'T');
  for (let i = 1; i <= progress; i++) await again.updateTaskProgress('t', i * step);
  return again;
}

describe('ws-server over Redis: an upgrade deleted while subscribers follow it', () => {
  it('resyncs them, and follows the upgrade created again under the same id from its seq 1', async () => {
    const { serving, writing } = await storesWithUpgrade('u-del', 0);

    const server = new ProgressWebSocketServer({ port: 0, store: serving });
    closers.push(() => server.stop());
    const client = await TestClient.connect((await server.start()).url);
    closers.push(() => client.close());
    client.send({ type: 'subscribe', upgradeId: 'u-del' });
    expect((await client.next((m) => m.type === 'snapshot')).seq).toBe(3);
    // The server follows u-del with one store watch from here (its first command reads the meta).
    await client.until(() => serving.info().watchers === 1, 5000, 'the store watch');
    await new Promise((r) => setTimeout(r, 50));

    const again = await recreate(writing, 'u-del', 5, 10);
    const resync = await client.next((m) => m.type === 'resync', 0, 10_000);
    expect(resync).toMatchObject({ upgradeId: 'u-del', reason: 'gap' });
    // After the resync: the new upgrade's snapshot, then its later events, none of the old one.
    await client.until((ms) => ms.some((m) => m.type === 'progress_event' && m.data.seq === again.progress.lastSeq), 10_000, 'the last event');
    const after = client.messages.slice(client.messages.indexOf(resync));
    const snap = after.find((m) => m.type === 'snapshot')!;
    expect(snap.data.lastSeq).toBeGreaterThanOrEqual(1);
    expectConsecutive(after.filter((m) => m.type === 'progress_event').map((m) => m.data.seq), snap.seq + 1, again.progress.lastSeq);
  }, 30_000);

  it('says in the resync whether a snapshot follows: exists false for an upgrade deleted and not (yet) created again', async () => {
    const { serving, writing } = await storesWithUpgrade('u-gone', 1);

    const server = new ProgressWebSocketServer({ port: 0, store: serving });
    closers.push(() => server.stop());
    const client = await TestClient.connect((await server.start()).url);
    closers.push(() => client.close());
    client.send({ type: 'subscribe', upgradeId: 'u-gone' });
    await client.next((m) => m.type === 'snapshot');
    await client.until(() => serving.info().watchers === 1, 5000, 'the store watch');

    // Deleted, and nothing under the id: no snapshot can follow, and the resync says so (a client
    // such as `progress watch` then says the upgrade is gone instead of "reloading the snapshot").
    expect(await writing.delete('u-gone')).toBe(true);
    const gone = await client.next((m) => m.type === 'resync', 0, 10_000);
    expect(gone).toMatchObject({ upgradeId: 'u-gone', reason: 'gap', exists: false });

    // Created again: the subscriber gets its events from seq 1 (no resync needed); a resubscribe
    // from a stale seq of the old run gets a resync that says a snapshot follows.
    const again = await recreate(writing, 'u-gone', 2, 10);
    await client.until((ms) => ms.some((m) => m.type === 'progress_event' && m.data.seq === again.progress.lastSeq), 10_000, 'the new run');
    client.send({ type: 'subscribe', upgradeId: 'u-gone', sinceSeq: 1, createdAt: '2000-01-01T00:00:00.000Z' });
    const back = await client.next((m) => m.type === 'resync' && m !== gone, 0, 10_000);
    expect(back).toMatchObject({ upgradeId: 'u-gone', reason: 'gap', exists: true });
    const snap = await client.next((m) => m.type === 'snapshot' && client.messages.indexOf(m) > client.messages.indexOf(back), 0, 10_000);
    expect(snap.seq).toBe(again.progress.lastSeq);
  }, 30_000);

  it('resyncs a subscriber whose replay was under way when the upgrade was deleted and created again', async () => {
    const { serving, writing } = await storesWithUpgrade('u-mid', 4);

    // The served store, with replays that stop after their first event until the test lets them go.
    let release = (): void => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    let gated = false;
    let held = false;
    const store: ProgressStore = {
      load: (id) => serving.load(id),
      append: (id, events, expected, state) => serving.append(id, events, expected, state),
      list: (filter) => serving.list(filter),
      delete: (id) => serving.delete(id),
      info: () => serving.info(),
      close: async () => {},
      watch: (id, after, options) => serving.watch(id, after, options),
      async *readEvents(id: string, after: number, limit?: number): AsyncIterable<ProgressEvent> {
        let sent = 0;
        for await (const event of serving.readEvents(id, after, limit)) {
          yield event;
          if (++sent === 1 && gated) {
            held = true;
            await gate;
          }
        }
      },
    };
    const server = new ProgressWebSocketServer({ port: 0, store });
    closers.push(() => server.stop());
    const { url: wsUrl } = await server.start();
    const follower = await TestClient.connect(wsUrl);
    closers.push(() => follower.close());
    follower.send({ type: 'subscribe', upgradeId: 'u-mid' });
    await follower.next((m) => m.type === 'snapshot');
    await follower.until(() => serving.info().watchers === 1, 5000, 'the store watch');

    // A second client asks for the whole history; its replay stops after seq 1.
    gated = true;
    const replaying = await TestClient.connect(wsUrl);
    closers.push(() => replaying.close());
    replaying.send({ type: 'subscribe', upgradeId: 'u-mid', sinceSeq: 0 });
    await replaying.until(() => held, 5000, 'the replay to be under way');

    const again = await recreate(writing, 'u-mid', 6, 5);
    // The follower is resynced by the server's watch; then the replay goes on.
    await follower.next((m) => m.type === 'resync', 0, 10_000);
    release();

    const resync = await replaying.next((m) => m.type === 'resync', 0, 10_000);
    expect(resync).toMatchObject({ upgradeId: 'u-mid' });
    // After the resync: the new upgrade's snapshot, then its events up to the last, none of the old one.
    const last = again.progress.lastSeq;
    const afterResync = (): typeof replaying.messages => replaying.messages.slice(replaying.messages.indexOf(resync));
    await replaying.until(
      () => afterResync().some((m) => (m.type === 'snapshot' && m.seq === last) || (m.type === 'progress_event' && m.data.seq === last)),
      10_000,
      'the new upgrade up to its last event',
    );
    const after = afterResync();
    const snap = after.find((m) => m.type === 'snapshot')!;
    const events = after.filter((m) => m.type === 'progress_event');
    expectConsecutive(events.map((m) => m.data.seq), snap.seq + 1, last);
    // What it holds at the end is the new upgrade's task at 30% (the old one ended at 40%).
    const final = events.at(-1)?.data.percentage ?? snap.data.tasks.t.percentage;
    expect(final).toBe(30);
  }, 30_000);
});
