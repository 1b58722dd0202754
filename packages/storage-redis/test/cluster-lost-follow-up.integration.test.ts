// A cluster-mode writer process killed between an upgrade's first append (its script) and the
// follow-up that writes the feed entry and the index entry (other hash slots, other nodes), on a
// real 3-node Redis Cluster. The writer's connection to the node of the feed and the index goes
// through a proxy that holds what it sends, so the follow-up never arrives; then SIGKILL.
import { ProgressTracker, type ProgressEvent } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { spawnSync } from 'node:child_process';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisCluster, type TestRedisCluster } from '../../../tools/test-utils/src/redis-cluster.js';
import { startRedisProxy, type RedisProxy } from '../../../tools/test-utils/src/redis-proxy.js';
import { RedisStore } from '../src/index.js';
import { freshPrefix } from './helpers.js';
import { spawnFixture, type Child } from './spawn.js';

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;
const describeCluster = describe.skipIf(!hasRedisServer);

let cluster: TestRedisCluster;
const clients: Cluster[] = [];
const stores: RedisStore[] = [];
const proxies: RedisProxy[] = [];
const children: Child[] = [];

beforeAll(async () => {
  if (hasRedisServer) cluster = await startRedisCluster(3);
}, 60_000);

afterAll(async () => {
  for (const child of children) if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
  await Promise.all(children.map((child) => child.exited));
  for (const store of stores) await store.close();
  for (const client of clients) client.disconnect();
  for (const proxy of proxies) await proxy.close();
  await cluster?.stop();
});

function clusterStore(keyPrefix: string): RedisStore {
  const client = new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: null } });
  clients.push(client);
  const store = new RedisStore({ redis: client, keyPrefix, watchBlockMs: 200 });
  stores.push(store);
  return store;
}

/** The node (`host:port`) serving `key`. */
async function nodeOf(client: Cluster, key: string): Promise<string> {
  const slot = Number(await client.call('CLUSTER', 'KEYSLOT', key));
  const node = client.slots[slot]?.[0];
  if (node === undefined) throw new Error(`no node for slot ${slot}`);
  return node;
}

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describeCluster('RedisStore on a 3-node Redis Cluster: a writer killed between its first append and the follow-up', () => {
  it('hands a watchAll() follower that started before the upgrade its first events, continued by the writer that took over; list() shows it from the next append', async () => {
    const upgradeId = 'born-then-killed';
    const probe = clusterStore(freshPrefix('lost-follow-up-probe'));
    await probe.list();
    const client = probe.client as Cluster;
    // A prefix whose feed and index are on one node, and the upgrade's keys on another.
    let keyPrefix = '';
    let feedNode = '';
    for (;;) {
      keyPrefix = freshPrefix('lost-follow-up');
      const keys = new RedisStore({ redis: client, keyPrefix }).keys;
      feedNode = await nodeOf(client, keys.feed);
      if (feedNode === (await nodeOf(client, keys.index)) && feedNode !== (await nodeOf(client, keys.upgrade(upgradeId).meta))) break;
    }
    const proxy = await startRedisProxy(`redis://${feedNode}`);
    proxies.push(proxy);
    const proxyPort = Number(new URL(proxy.url).port);
    const writer = spawnFixture('cluster-writer', { nodes: cluster.nodes, natMap: { [feedNode]: { host: '127.0.0.1', port: proxyPort } }, keyPrefix, upgradeId, count: 3 });
    children.push(writer);
    expect(await writer.line()).toBe('ready');

    // The follower: started (and following: it hands out another upgrade's event) before the upgrade exists.
    const reader = clusterStore(keyPrefix);
    await reader.list();
    const other = clusterStore(keyPrefix);
    const before = await ProgressTracker.open({ upgradeId: 'before', planId: 'p', clusterName: 'c', store: other });
    const stop = new AbortController();
    const seen: ProgressEvent[] = [];
    const following = (async () => {
      for await (const event of reader.watchAll({ signal: stop.signal })) seen.push(event);
    })();
    await before.startUpgrade();
    await until(() => seen.some((e) => e.upgradeId === 'before'), 'the follower to hand out an event');

    // The writer's first append: its script runs; its follow-up (feed and index) is held; then it dies.
    proxy.hold();
    writer.process.stdin!.write('go\n');
    const { appended } = JSON.parse(await writer.line()) as { appended: Array<{ seq: number; eventId: string }> };
    writer.process.kill('SIGKILL');
    await writer.exited;
    expect(appended.map((a) => a.seq)).toEqual([1, 2, 3]);
    // Not listed: the index entry went with the follow-up (the writer's warm-up upgrade, appended before the hold, is).
    expect((await reader.list()).map((r) => r.upgradeId).sort()).toEqual(['before', `${upgradeId}-warmup`]);

    // Another writer takes over (load(), then appends), and the first writer's events are stored.
    const store = clusterStore(keyPrefix);
    const tracker = await ProgressTracker.open({ upgradeId, planId: 'plan-1', clusterName: 'cluster-1', store });
    expect(tracker.progress.lastSeq).toBe(3);
    await tracker.updateTaskProgress('t1', 50, 'half');
    await tracker.updateTaskProgress('t1', 100, 'done');
    await before.addTask('t1', 'Task 1');
    await until(() => seen.some((e) => e.upgradeId === 'before' && e.type === 'task.added'), 'the follower to hand out the later event of another upgrade');
    await until(async () => (await reader.list()).some((r) => r.upgradeId === upgradeId), 'the upgrade to be listed after the next append');
    stop.abort();
    await following;
    const events = seen.filter((e) => e.upgradeId === upgradeId);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(events.slice(0, 3).map((e) => e.eventId)).toEqual(appended.map((a) => a.eventId));
    // The takeover's first entry points from seq 1; its next appends point from their own seq, and
    // the mark is taken out of the meta once that entry is written.
    const meta = store.keys.upgrade(upgradeId).meta;
    await until(async () => {
      await tracker.updateTaskProgress('t1', 100, 'again');
      return (await client.hget(meta, 'unfed')) === '0';
    }, 'the mark to be taken out');
    const last = tracker.progress.lastSeq;
    await until(async () => (await client.xrevrange(store.keys.feed, '+', '-', 'COUNT', 1))[0]?.[1][1] === `${last}|1|${upgradeId}`, 'the last follow-up');
    const feed = (await client.xrange(store.keys.feed, '-', '+')).map(([, fields]) => fields[1]);
    expect(feed.filter((p) => p?.endsWith(`|${upgradeId}`))).toEqual([`1|4|${upgradeId}`, ...Array.from({ length: last - 4 }, (_, i) => `${i + 5}|1|${upgradeId}`)]);
    // An upgrade whose first entry was written loses the mark at a later append of its writer.
    const beforeMeta = other.keys.upgrade('before').meta;
    await until(async () => {
      await before.updateTaskProgress('t1', 10, 'again');
      return (await client.hget(beforeMeta, 'unfed')) === '0';
    }, 'the mark of an upgrade whose first entry was written to be taken out');
    await tracker.close();
    await before.close();
  }, 60_000);

  it('an upgrade written by one short-lived process after another (one append each) has feed entries from their own seqs, not each from seq 1', async () => {
    // The mark is taken out right after the entry from seq 1 is written, not by the writer's next
    // append: a writer that appends once and exits (a job per step) never has a next one, and every
    // later writer then pointed its entry from seq 1, each read of a follower going back to the start.
    const keyPrefix = freshPrefix('short-lived-writers');
    const f = new EventFactory('one-append-each');
    for (let i = 0; i < 4; i++) {
      const store = clusterStore(keyPrefix);
      await store.append(f.upgradeId, f.batch(1), i, f.snapshot());
      await store.close(); // waits for the follow-up
    }
    const probe = clusterStore(keyPrefix);
    const client = probe.client as Cluster;
    const feed = (await client.xrange(probe.keys.feed, '-', '+')).map(([, fields]) => fields[1]);
    expect(feed).toEqual([1, 2, 3, 4].map((seq) => `${seq}|1|${f.upgradeId}`));
    expect(await client.hget(probe.keys.upgrade(f.upgradeId).meta, 'unfed')).toBe('0');
  }, 30_000);
});
