import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { TestClient, expectConsecutive } from './helpers.js';
import { spawnFixture, type Child } from './spawn.js';
import { deleteKeys } from '../../../tools/test-utils/src/redis.js';

const children: Child[] = [];
const clients: TestClient[] = [];
/** The key prefixes the tests wrote under, deleted after them. */
const prefixes: string[] = [];

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(children.splice(0).map((c) => c.stop()));
  for (const prefix of prefixes) await deleteKeys(process.env.REDIS_URL!, prefix);
});

// Acceptance 4: two ws-server processes reading one Redis serve the same upgrade, written by a third.
describe('ws-server processes over one Redis', () => {
  it('serve the same upgrade, written by a third process, live, resumed and through "*"', async () => {
    const redisUrl = process.env.REDIS_URL;
    if (!redisUrl) throw new Error('REDIS_URL is not set: the global setup should have started a Redis');
    const keyPrefix = `ws-it-${randomUUID().slice(0, 8)}:`;
    prefixes.push(keyPrefix);
    const upgradeId = 'u-redis';
    const servers = [spawnFixture('server-process', { url: redisUrl, keyPrefix }), spawnFixture('server-process', { url: redisUrl, keyPrefix })];
    children.push(...servers);
    const [{ url: url1 }, { url: url2 }] = await Promise.all(servers.map((s) => s.next<{ url: string }>()));
    expect(url1).not.toBe(url2);

    const early = await TestClient.connect(url1); // subscribes before the upgrade exists
    const star = await TestClient.connect(url2); // '*' on the other process
    clients.push(early, star);
    early.send({ type: 'subscribe', upgradeId });
    star.send({ type: 'subscribe', upgradeId: '*' });
    expect(await early.next((m) => m.type === 'subscribed')).toEqual({ type: 'subscribed', upgradeId, exists: false });
    await star.next((m) => m.type === 'subscribed');

    const count = 300;
    const writer = spawnFixture('writer-process', { url: redisUrl, keyPrefix, upgradeId, count, intervalMs: 2 });
    children.push(writer);
    const total = count + 5; // created, started, task added, count progress, task completed, upgrade completed

    // Joins midway on process 2 with a sinceSeq: replay from Redis, then live.
    await early.until((ms) => ms.filter((m) => m.type === 'progress_event').length >= 60, 20_000, '60 events');
    const late = await TestClient.connect(url2);
    clients.push(late);
    late.send({ type: 'subscribe', upgradeId, sinceSeq: 50 });

    const { lastSeq } = await writer.next<{ lastSeq: number }>();
    expect(lastSeq).toBe(total);
    await early.until((ms) => ms.filter((m) => m.type === 'progress_event').length === total, 20_000, 'every event on process 1');
    await late.until((ms) => ms.some((m) => m.type === 'progress_event' && m.data.seq === total), 20_000, 'the last event on process 2');
    await star.until((ms) => ms.some((m) => m.type === 'progress_event' && m.data.seq === total), 20_000, 'the last event through "*"');

    expectConsecutive(early.seqs(upgradeId), 1, total);
    expect(early.ofType('progress_event').at(-1)!.data.type).toBe('upgrade.completed');
    expectConsecutive(late.seqs(upgradeId), 51, total);
    expect(late.ofType('resync')).toHaveLength(0);
    // '*': a snapshot when the upgrade appeared, then every later event.
    const snap = star.ofType('snapshot', upgradeId);
    expect(snap).toHaveLength(1);
    expectConsecutive(star.seqs(upgradeId), snap[0]!.seq + 1, total);

    const ask = await TestClient.connect(url2);
    clients.push(ask);
    ask.send({ type: 'list_upgrades' });
    ask.send({ type: 'get_summary', upgradeId });
    const rows = await ask.next((m) => m.type === 'upgrades');
    expect(rows.data.map((r: { upgradeId: string }) => r.upgradeId)).toContain(upgradeId);
    const summary = await ask.next((m) => m.type === 'progress_summary');
    expect(summary.data).toMatchObject({ upgradeId, status: 'completed', overallPercentage: 100, lastSeq: total });
  }, 60_000);
});
