import type { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { EventFactory } from '@progress/core/testing';
import { RedisStore } from '@progress/storage-redis';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressWebSocketServer } from '../src/index.js';
import { deleteKeys } from '../../../tools/test-utils/src/redis.js';
import { TestClient, foldClient as fold } from './helpers.js';

const keyPrefix = `ws-trim-${randomUUID().slice(0, 8)}:`;
const closers: Array<() => Promise<unknown>> = [];

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  if (process.env.REDIS_URL) await deleteKeys(process.env.REDIS_URL, keyPrefix);
});

/**
 * `n` appends of one event each, issued in one tick: the store sends them as one pipeline, and Redis
 * runs them back to back, so a reader blocked on the stream gets its answer only after all of them,
 * and its next read comes after the trim (`maxEvents: 3`) removed all but the last few.
 */
async function burst(store: RedisStore, f: EventFactory, n: number, pad = ''): Promise<void> {
  const calls: Array<Promise<void>> = [];
  for (let i = 0; i < n; i++) {
    const expected = f.lastSeq;
    const events = pad ? [f.next('task.progress', { taskId: 't1', percentage: i % 100, details: { pad, i } })] : f.batch(1);
    calls.push(store.append(f.upgradeId, events, expected, f.snapshot()));
  }
  await Promise.all(calls);
}

function stores(): { serving: RedisStore; writing: RedisStore } {
  const url = process.env.REDIS_URL;
  if (!url) throw new Error('REDIS_URL is not set: the global setup should have started a Redis');
  const serving = new RedisStore({ url, keyPrefix, watchBlockMs: 200 });
  const writing = new RedisStore({ url, keyPrefix, snapshotEvery: 10, retention: { maxEvents: 3 } });
  closers.push(() => serving.close(), () => writing.close());
  return { serving, writing };
}

async function serve(store: RedisStore, options: { maxBufferedBytes?: number; closeTimeoutMs?: number } = {}): Promise<{ server: ProgressWebSocketServer; url: string }> {
  const server = new ProgressWebSocketServer({ port: 0, store, ...options });
  closers.push(() => server.stop());
  return { server, url: (await server.start()).url };
}

async function connect(url: string): Promise<TestClient> {
  const c = await TestClient.connect(url);
  closers.push(() => c.close());
  return c;
}

describe('ws-server over Redis: events trimmed by retention before the server read them', () => {
  // The server's store watch of the upgrade falls behind a burst, and the events after the seq it
  // holds are trimmed: the watch throws NOT_FOUND 'trimmed'. The server used to take that for
  // a failed watch and start it again a second later from the same seq, which failed the same way
  // for ever: the subscribers by name got nothing more, and no resync.
  it('a subscriber by name gets resync (trimmed) and the snapshot, then live events, and ends with the state the store holds', async () => {
    const { serving, writing } = stores();
    const f = new EventFactory('u-name');
    await burst(writing, f, 5);
    const c = await connect((await serve(serving)).url);
    c.send({ type: 'subscribe', upgradeId: 'u-name' });
    expect((await c.next((m) => m.type === 'snapshot')).seq).toBe(5);
    await c.until(() => serving.info().watchers === 1, 5000, 'the store watch');
    await new Promise((r) => setTimeout(r, 50));

    await burst(writing, f, 200);
    await c.until((ms) => fold(ms, 'u-name').state?.lastSeq === f.lastSeq, 10_000, `seq ${f.lastSeq}`);
    // Live after the resync: the next events come as events, no resync needed.
    await burst(writing, f, 2);
    await c.until((ms) => fold(ms, 'u-name').state?.lastSeq === f.lastSeq, 10_000, `seq ${f.lastSeq}`);

    const { state, gaps, resyncs } = fold(c.messages, 'u-name');
    expect(gaps).toEqual([]);
    expect(resyncs).toContain('trimmed');
    expect(state).toEqual(await writing.load('u-name'));
    expect(c.ofType('progress_event', 'u-name').at(-1)!.data.seq).toBe(f.lastSeq);
  }, 30_000);

  // watchAll() goes on past an upgrade whose unread events were trimmed (its seqs jump there, see
  // storage-redis' README): the server must fill that jump from the store, which says the events are
  // gone, and resync the `*` subscribers rather than hand them the jump.
  it("a '*' subscriber gets resync (trimmed) and the snapshot, never the seq jump watchAll() hands the server", async () => {
    const { serving, writing } = stores();
    const f = new EventFactory('u-star');
    await burst(writing, f, 5);
    const c = await connect((await serve(serving)).url);
    c.send({ type: 'subscribe', upgradeId: '*' });
    expect((await c.next((m) => m.type === 'snapshot' && m.upgradeId === 'u-star')).seq).toBe(5);
    await new Promise((r) => setTimeout(r, 50));

    await burst(writing, f, 200);
    await c.until((ms) => fold(ms, 'u-star').state?.lastSeq === f.lastSeq, 10_000, `seq ${f.lastSeq}`);
    await burst(writing, f, 2);
    await c.until((ms) => fold(ms, 'u-star').state?.lastSeq === f.lastSeq, 10_000, `seq ${f.lastSeq}`);

    const { state, gaps, resyncs } = fold(c.messages, 'u-star');
    expect(gaps).toEqual([]);
    expect(resyncs).toContain('trimmed');
    expect(state).toEqual(await writing.load('u-star'));
  }, 30_000);

  // Clients that stop reading while the upgrade goes on past the trim: the server closes them as
  // slow (1013); on reconnect, the one that resumes from its seq (sinceSeq + createdAt) is told its
  // events are gone, and the `*` one takes fresh snapshots. Neither ever applies a seq out of turn.
  it('paused clients (by name and *) closed as slow resume into a resync, and end with the state the store holds', async () => {
    const { serving, writing } = stores();
    const f = new EventFactory('u-paused');
    await burst(writing, f, 5);
    // A close timeout long enough that the two paused clients are not cut off (1006) before they
    // resume to read their 1013: the second may be closed seconds after the first on a busy machine.
    const { server, url } = await serve(serving, { maxBufferedBytes: 256 * 1024, closeTimeoutMs: 60_000 });
    const named = await connect(url);
    const star = await connect(url);
    // Reads everything: the writer goes no faster than it, so the server keeps up with the store.
    const healthy = await connect(url);
    for (const c of [named, healthy]) c.send({ type: 'subscribe', upgradeId: 'u-paused' });
    star.send({ type: 'subscribe', upgradeId: '*' });
    for (const c of [named, star, healthy]) await c.next((m) => m.type === 'snapshot' && m.upgradeId === 'u-paused');
    // The upgrade's store watch and the `*` subscription's watchAll.
    await named.until(() => serving.info().watchers === 2, 5000, 'the store watches');
    await burst(writing, f, 3);
    for (const c of [named, star]) await c.until((ms) => fold(ms, 'u-paused').state?.lastSeq === f.lastSeq, 10_000, `seq ${f.lastSeq}`);

    const raw = (c: TestClient): Socket => (c.ws as unknown as { _socket: Socket })._socket;
    raw(named).pause();
    raw(star).pause();
    // 16 KB events until the server has closed both (the socket buffers take a few MB first).
    const pad = 'x'.repeat(16_000);
    for (let round = 0; round < 2000 && server.getStats().slowClientsClosed < 2; round++) {
      await burst(writing, f, 1, pad);
      await healthy.until((ms) => fold(ms, 'u-paused').state?.lastSeq === f.lastSeq, 10_000, `seq ${f.lastSeq}`);
    }
    expect(server.getStats().slowClientsClosed).toBe(2);
    raw(named).resume();
    raw(star).resume();
    expect(await named.closed).toBe(1013);
    expect(await star.closed).toBe(1013);

    const before = fold(named.messages, 'u-paused');
    expect(before.gaps).toEqual([]);
    // The upgrade goes on while they are away, past the trim: the seqs after the one held are gone.
    await burst(writing, f, 15);
    await healthy.until((ms) => fold(ms, 'u-paused').state?.lastSeq === f.lastSeq, 10_000, `seq ${f.lastSeq}`);
    const named2 = await connect(url);
    named2.send({ type: 'subscribe', upgradeId: 'u-paused', sinceSeq: before.state!.lastSeq, createdAt: before.state!.createdAt });
    const star2 = await connect(url);
    star2.send({ type: 'subscribe', upgradeId: '*' });
    await named2.next((m) => m.type === 'snapshot');
    await star2.next((m) => m.type === 'snapshot');
    await burst(writing, f, 2);
    for (const c of [named2, star2, healthy]) await c.until((ms) => fold(ms, 'u-paused').state?.lastSeq === f.lastSeq, 10_000, `seq ${f.lastSeq}`);

    const stored = await writing.load('u-paused');
    const resumed = fold([...named.messages, ...named2.messages], 'u-paused');
    expect(resumed.gaps).toEqual([]);
    expect(named2.ofType('resync')[0]).toEqual({ type: 'resync', upgradeId: 'u-paused', reason: 'trimmed', exists: true });
    expect(resumed.state).toEqual(stored);
    expect(fold(star.messages, 'u-paused').gaps).toEqual([]);
    for (const c of [star2, healthy]) {
      const { state, gaps } = fold(c.messages, 'u-paused');
      expect(gaps).toEqual([]);
      expect(state).toEqual(stored);
    }
  }, 60_000);
});
