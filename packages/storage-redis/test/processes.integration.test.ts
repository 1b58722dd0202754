import { ProgressTracker } from '@progress/core';
import { afterAll, describe, expect, it } from 'vitest';
import { adminClient, cleanup, collect, freshPrefix, makeStore, redisUrl } from './helpers.js';
import { spawnFixture } from './spawn.js';

const prefixes = new Set<string>();

afterAll(async () => {
  const admin = adminClient();
  await cleanup(admin, prefixes);
  await admin.quit();
});

interface WriterResult {
  acked: Array<{ seq: number; eventId: string }>;
  error?: string;
}

describe('RedisStore across processes', () => {
  it('lets one of two writer processes of the same upgrade win; the stale one gets CONFLICT, nothing interleaves', async () => {
    const keyPrefix = freshPrefix('two-writers');
    const store = makeStore(prefixes, { keyPrefix });
    const upgradeId = 'shared-upgrade';
    const seed = await ProgressTracker.open({ upgradeId, planId: 'plan-1', clusterName: 'cluster-1', store });
    await seed.startUpgrade();
    await seed.addTask('t1', 'Task 1');
    const base = seed.progress.lastSeq;
    await seed.close();
    const config = { url: redisUrl(), keyPrefix, upgradeId, count: 50, waitForGo: true };
    const writers = [spawnFixture('writer', config), spawnFixture('writer', config)];
    for (const w of writers) expect(await w.line()).toBe('ready');
    for (const w of writers) w.process.stdin!.write('go\n');
    const results = (await Promise.all(writers.map(async (w) => JSON.parse(await w.line()) as WriterResult))).sort((a, b) => b.acked.length - a.acked.length);
    await Promise.all(writers.map((w) => w.exited));
    const [winner, loser] = results as [WriterResult, WriterResult];
    expect(winner.error).toBeUndefined();
    expect(winner.acked.length).toBe(50);
    expect(loser.error).toBe('CONFLICT');
    expect(loser.acked).toEqual([]);
    const stored = (await collect(store.readEvents(upgradeId, base))).map((e) => ({ seq: e.seq, eventId: e.eventId }));
    expect(stored).toEqual(winner.acked);
    expect(winner.acked.map((a) => a.seq)).toEqual(Array.from({ length: 50 }, (_, i) => base + i + 1));
    await store.close();
  }, 60_000);

  it('a watcher process sees every event of an upgrade written by a third process, in order', async () => {
    const keyPrefix = freshPrefix('cross-watch');
    prefixes.add(keyPrefix);
    const upgradeId = 'watched-upgrade';
    const watcher = spawnFixture('watcher', { url: redisUrl(), keyPrefix, upgradeId });
    expect(await watcher.line()).toBe('ready');
    const writer = spawnFixture('writer', { url: redisUrl(), keyPrefix, upgradeId, count: 400, complete: true });
    const written = JSON.parse(await writer.line()) as WriterResult;
    const seen = JSON.parse(await watcher.line()) as Array<{ seq: number; eventId: string; type: string }>;
    await Promise.all([writer.exited, watcher.exited]);
    expect(written.acked.length).toBe(400);
    const store = makeStore(prefixes, { keyPrefix });
    const stored = await collect(store.readEvents(upgradeId, 0));
    expect(seen.map((e) => e.seq)).toEqual(stored.map((e) => e.seq));
    expect(seen.map((e) => e.eventId)).toEqual(stored.map((e) => e.eventId));
    expect(seen.length).toBe(400 + 4); // created, started, task added, 400 progress, completed
    expect(seen.at(-1)?.type).toBe('upgrade.completed');
    await store.close();
  }, 60_000);
});
