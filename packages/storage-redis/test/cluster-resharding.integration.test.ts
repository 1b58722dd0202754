// RedisStore on a real Redis Cluster while the slot of an upgrade moves to another master
// (CLUSTER SETSLOT IMPORTING / MIGRATING, MIGRATE key by key, CLUSTER SETSLOT NODE), as a
// resharding does (`redis-cli --cluster reshard` moves a slot's keys a batch at a time, so one
// upgrade's keys may sit on both masters for a moment).
//
// Found on 2026-11-30 (review): watch() ended with NOT_FOUND "it was deleted or expired" while the
// upgrade's stream had moved and its meta not yet. Its read (XREAD with an HMGET of the meta, one
// Cluster pipeline) got ASK for the stream, and ioredis sent the whole pipeline to the target, where
// the meta was missing. The append sent meanwhile is answered TRYAGAIN (its keys on both sides) and
// ioredis sends it again until the keys have moved (up to `maxRedirections` times, 100 ms apart):
// it is stored once, with its staged snapshot (written on the target, by ASK).
import { EventFactory } from '@progress/core/testing';
import type { ProgressEvent } from '@progress/core';
import { spawnSync } from 'node:child_process';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisCluster, type TestRedisCluster } from '../../../tools/test-utils/src/redis-cluster.js';
import { RedisStore } from '../src/index.js';
import { freshPrefix, watchBoth } from './helpers.js';

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;
const describeCluster = describe.skipIf(!hasRedisServer);

let cluster: TestRedisCluster;
let admins: Redis[] = [];
const clients: Cluster[] = [];
const stores: RedisStore[] = [];

beforeAll(async () => {
  if (!hasRedisServer) return;
  cluster = await startRedisCluster(3);
  admins = cluster.nodes.map((n) => new Redis(n.port, n.host));
}, 60_000);

afterAll(async () => {
  for (const store of stores) await store.close();
  for (const client of clients) client.disconnect();
  for (const admin of admins) admin.disconnect();
  await cluster?.stop();
});

function clusterStore(keyPrefix: string, options: { snapshotEvery?: number; watchBlockMs?: number } = {}, clusterOptions: { maxRedirections?: number } = {}): RedisStore {
  const client = new Cluster(cluster.nodes, { ...clusterOptions, redisOptions: { maxRetriesPerRequest: null } });
  clients.push(client);
  const store = new RedisStore({ redis: client, keyPrefix, ...options });
  stores.push(store);
  return store;
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How many times `admin`'s server answered an error (INFO errorstats), e.g. TRYAGAIN. */
async function errorCount(admin: Redis, error: string): Promise<number> {
  return Number(new RegExp(`errorstat_${error}:count=(\\d+)`).exec(String(await admin.info('errorstats')))?.[1] ?? 0);
}

/** How many times `admin`'s server ran a command (INFO commandstats; a script's calls count too). */
async function callCount(admin: Redis, command: string): Promise<number> {
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(String(await admin.info('commandstats')))?.[1] ?? 0);
}

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await Promise.resolve().then(check).catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pause(10);
  }
}

describeCluster('RedisStore while the slot of an upgrade moves to another master', () => {
  it('an append sent while its keys are half moved is stored once when the move completes; watch() and watchAll() follow across', async () => {
    const prefix = freshPrefix('reshard');
    const writer = clusterStore(prefix, { snapshotEvery: 4 }, { maxRedirections: 100 });
    const reader = clusterStore(prefix, { watchBlockMs: 200 });
    await reader.list();
    const f = new EventFactory('moving');
    const keys = writer.keys.upgrade(f.upgradeId);
    const both = watchBoth(reader, f.upgradeId);
    const { watched, followed, errors } = both;
    const acked: ProgressEvent[] = [];
    const append = async (n: number): Promise<void> => {
      const expected = f.lastSeq;
      const events = f.batch(n);
      await writer.append(f.upgradeId, events, expected, f.snapshot());
      acked.push(...events);
    };
    await append(4); // seqs 1-4, with a snapshot
    const slot = Number(await admins[0]!.call('CLUSTER', 'KEYSLOT', keys.events));
    const ids = await Promise.all(admins.map(async (a) => String(await a.call('CLUSTER', 'MYID'))));
    const src = (await Promise.all(admins.map(async (a) => Number(await a.call('CLUSTER', 'COUNTKEYSINSLOT', String(slot)))))).findIndex((n) => n > 0);
    const dst = (src + 1) % admins.length;
    const migrate = (key: string) => admins[src]!.call('MIGRATE', '127.0.0.1', String(cluster.nodes[dst]!.port), '', '0', '5000', 'KEYS', key);
    await admins[dst]!.call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', ids[src]!);
    await admins[src]!.call('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', ids[dst]!);
    await append(1); // seq 5: every key still on the source
    await until('both watchers to hand out seqs 1-5', () => errors.length > 0 || (watched.length >= 5 && followed.length >= 5));
    // The stream moves first: the next append's script finds one of its keys on each side, and
    // watch()'s next read (XREAD and HMGET of the meta) goes to the target (ASK), without the meta.
    const metaReads = await callCount(admins[dst]!, 'hmget');
    await migrate(keys.events);
    const refused = await errorCount(admins[src]!, 'TRYAGAIN');
    let stored = false;
    const halfway = append(3).then(() => void (stored = true)); // seqs 6-8, with a snapshot (staged on the target, by ASK)
    await until('the source to answer the append TRYAGAIN', async () => (await errorCount(admins[src]!, 'TRYAGAIN')) > refused);
    await until("watch() to read the half moved slot on the target", async () => (await callCount(admins[dst]!, 'hmget')) > metaReads);
    expect(stored).toBe(false);
    await migrate(keys.meta);
    await migrate(keys.snapshot);
    await halfway;
    for (const i of [dst, src, ...[0, 1, 2].filter((k) => k !== src && k !== dst)]) await admins[i]!.call('CLUSTER', 'SETSLOT', String(slot), 'NODE', ids[dst]!);
    await append(2); // seqs 9-10, on the target (MOVED)
    await until('both watchers to hand out seqs 1-10', () => errors.length > 0 || (watched.length >= 10 && followed.length >= 10));
    await both.stop();
    const log: ProgressEvent[] = [];
    for await (const e of writer.readEvents(f.upgradeId, 0)) log.push(e);
    expect(log.map((e) => e.eventId)).toEqual(acked.map((e) => e.eventId));
    expect(log.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // The snapshot of seq 8, staged on the target while the stream had moved, landed with its append.
    expect(await admins[dst]!.hmget(keys.meta, 'lastSeq', 'snapSeq')).toEqual(['10', '8']);
    expect((await writer.load(f.upgradeId))?.lastSeq).toBe(10);
    expect(errors).toEqual([]);
    expect(watched.map((e) => e.eventId)).toEqual(acked.map((e) => e.eventId));
    expect(followed.map((e) => e.eventId)).toEqual(acked.map((e) => e.eventId));
  }, 30_000);
});
