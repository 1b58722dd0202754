// A real Redis Cluster: three redis-server processes, the slots split between them, an ioredis
// Cluster client. Everything else runs cluster *mode* against one node; this runs the store across
// nodes, where a script may only touch one slot and a pipeline may only hold one node's commands.
import { describeProgressStore, EventFactory } from '@progress/core/testing';
import { ProgressTracker, isProgressError, type ProgressEvent } from '@progress/core';
import { spawnSync } from 'node:child_process';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisCluster, type TestRedisCluster } from '../../../tools/test-utils/src/redis-cluster.js';
import { RedisStore } from '../src/index.js';
import { collect, freshPrefix } from './helpers.js';

// The cluster is made of redis-server processes this test starts, so it needs the binary even when
// REDIS_URL points the other tests at a server elsewhere (.ci/run installs it).
const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;
if (!hasRedisServer) console.warn('[storage-redis] skipping the Redis Cluster tests: redis-server is not on PATH (Debian/Ubuntu: apt-get install redis-server)');
const describeCluster = describe.skipIf(!hasRedisServer);

let cluster: TestRedisCluster;
const clients: Cluster[] = [];
const stores: RedisStore[] = [];

beforeAll(async () => {
  if (hasRedisServer) cluster = await startRedisCluster(3);
}, 60_000);

afterAll(async () => {
  for (const store of stores) await store.close();
  for (const client of clients) client.disconnect();
  await cluster?.stop();
});

function clusterClient(): Cluster {
  const client = new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: null } });
  clients.push(client);
  return client;
}

function clusterStore(keyPrefix = freshPrefix('cluster'), options: { snapshotEvery?: number; watchBlockMs?: number } = {}): RedisStore {
  const store = new RedisStore({ redis: clusterClient(), keyPrefix, ...options });
  stores.push(store);
  return store;
}

describeCluster('RedisStore on a 3-node Redis Cluster: conformance', () => {
  describeProgressStore(
    'RedisStore on a 3-node Redis Cluster',
    {
      create: () => clusterStore(),
      reopen: async (store) => {
        await store.close();
        return clusterStore((store as RedisStore).keys.prefix);
      },
      second: (store) => clusterStore((store as RedisStore).keys.prefix),
    },
    { describe, it },
  );
});

describeCluster('RedisStore on a 3-node Redis Cluster', () => {
  it('knows it is on a Cluster, and spreads upgrades over every node', async () => {
    const store = clusterStore();
    expect(store.info().mode).toBe('cluster');
    const ids = Array.from({ length: 30 }, (_, i) => `spread-${i}`);
    // Appends issued together for upgrades in different slots (a pipeline cannot span nodes).
    await Promise.all(ids.map((id) => {
      const f = new EventFactory(id);
      return store.append(id, f.batch(3), 0, f.snapshot());
    }));
    const client = store.client as Cluster;
    const owners = new Set<string>();
    for (const node of client.nodes('master')) {
      const keys = await node.keys(`${store.keys.prefix}*:events`);
      if (keys.length > 0) owners.add(`${node.options.host}:${node.options.port}`);
    }
    expect(owners.size).toBe(3);
    await new Promise((r) => setTimeout(r, 100)); // the index follow-ups
    expect((await store.list()).map((r) => r.upgradeId).sort()).toEqual([...ids].sort());
    for (const id of ids) expect((await collect(store.readEvents(id, 0))).map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it('gives a stale writer CONFLICT, and a tracker in one process is followed live by watch() and watchAll() in another store', async () => {
    const keyPrefix = freshPrefix('cluster-live');
    const writer = clusterStore(keyPrefix);
    const reader = clusterStore(keyPrefix, { watchBlockMs: 200 });
    // watchAll() starts at the end of the feed as the reader's connection reads it: connected first,
    // it reads it at once, before the writer's first append (else, under load, a Cluster client
    // still discovering its slots could read it after the first entries, and those were missed).
    await reader.list();
    const stop = new AbortController();
    const all = reader.watchAll({ signal: stop.signal });
    const fromAll: ProgressEvent[] = [];
    const followingAll = (async () => {
      for await (const ev of all) fromAll.push(ev);
    })();
    const tracker = await ProgressTracker.open({ upgradeId: 'live', planId: 'p', clusterName: 'c', store: writer });
    await tracker.startUpgrade();
    await tracker.addTask('t', 'T');
    const watched: number[] = [];
    const following = (async () => {
      for await (const ev of reader.watch('live', 0, { signal: stop.signal })) watched.push(ev.seq);
    })();
    for (let i = 1; i <= 40; i++) await tracker.updateTaskProgress('t', i * 2);
    const last = tracker.progress.lastSeq;
    // A second writer with a stale view of the same upgrade.
    const stale = await ProgressTracker.open({ upgradeId: 'live', planId: 'p', clusterName: 'c', store: reader });
    await tracker.updateTaskProgress('t', 90);
    const err = await stale.updateTaskProgress('t', 95).then(() => undefined, (e: unknown) => e);
    expect(isProgressError(err, 'CONFLICT')).toBe(true);
    const end = Date.now() + 10_000;
    while ((watched.length < last + 1 || fromAll.filter((e) => e.upgradeId === 'live').length < last + 1) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(watched).toEqual(Array.from({ length: last + 1 }, (_, i) => i + 1));
    expect(fromAll.filter((e) => e.upgradeId === 'live').map((e) => e.seq)).toEqual(Array.from({ length: last + 1 }, (_, i) => i + 1));
    stop.abort();
    await Promise.all([following, followingAll]);
    await tracker.close();
    await stale.close();
    expect(await writer.delete('live')).toBe(true);
    expect(await writer.load('live')).toBeUndefined();
  });
});
