// A real Redis Cluster: three redis-server processes, the slots split between them, an ioredis
// Cluster client. Everything else runs cluster *mode* against one node; this runs the store across
// nodes, where a script may only touch one slot and a pipeline may only hold one node's commands.
import { describeProgressStore, EventFactory } from '@progress/core/testing';
import { ProgressTracker, isProgressError, type ProgressEvent } from '@progress/core';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisCluster, type TestRedisCluster } from '../../../tools/test-utils/src/redis-cluster.js';
import { RedisStore } from '../src/index.js';
import { appendBatch, collect, freshPrefix, readUpTo } from './helpers.js';

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

  // Found on 2026-11-30 (cluster soak): the README advises `enableAutoPipelining: true` for a
  // Cluster, and with it load() and delete() failed ("All keys in the pipeline should belong to the
  // same slots allocation group") for every upgrade whose slot is not on the node of the slot of
  // "3" or "4": ioredis' auto-pipelining routes a script defined without a fixed number of keys by
  // its first argument, the number of keys, while the pipeline checks the keys themselves. A tracker
  // could not open on two nodes of three.
  it('loads, reads, lists and deletes upgrades on every node through a Cluster with enableAutoPipelining', async () => {
    const client = new Cluster(cluster.nodes, { enableAutoPipelining: true, redisOptions: { maxRetriesPerRequest: null } });
    clients.push(client);
    const store = new RedisStore({ redis: client, keyPrefix: freshPrefix('cluster-autopipe'), snapshotEvery: 2 });
    stores.push(store);
    const ids = Array.from({ length: 12 }, (_, i) => `autopipe-${i}`);
    await Promise.all(ids.map((id) => {
      const f = new EventFactory(id);
      return store.append(id, f.batch(3), 0, f.snapshot());
    }));
    // Upgrades on every node.
    const owners = await Promise.all(client.nodes('master').map(async (node) => (await node.keys(`${store.keys.prefix}*:events`)).length));
    expect(owners.every((n) => n > 0)).toBe(true);
    const outcome = <T>(p: Promise<T>): Promise<T | string> => p.catch((e: unknown) => `${(e as { code?: string }).code}: ${(e as Error).message}`);
    expect(await Promise.all(ids.map(async (id) => outcome(store.load(id).then((s) => s?.lastSeq))))).toEqual(ids.map(() => 3));
    const tracker = await ProgressTracker.open({ upgradeId: ids[1]!, planId: 'p', clusterName: 'c', store });
    await tracker.close();
    expect(await Promise.all(ids.map(async (id) => (await collect(store.readEvents(id, 0))).length))).toEqual(ids.map(() => 3));
    expect(await Promise.all(ids.map((id) => outcome(store.delete(id))))).toEqual(ids.map(() => true));
    expect(await store.list()).toEqual([]);
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

  it("hands a watchAll() follower an upgrade's first events when the feed entry of its first append was lost", async () => {
    const keyPrefix = freshPrefix('cluster-lost-first');
    const writer = clusterStore(keyPrefix);
    const reader = clusterStore(keyPrefix, { watchBlockMs: 200 });
    // An upgrade already running when the follower starts: only its later events are new to it.
    const running = new EventFactory('lost-first-running');
    await appendBatch(writer, running, 2);
    // Its follow-ups are answered (a command after them on the feed's node is).
    await writer.client.exists(writer.keys.feed);
    const stop = new AbortController();
    const iterator = reader.watchAll({ signal: stop.signal })[Symbol.asyncIterator]();
    // The start point was asked for on the feed's node; a later command on that connection is answered after it.
    await reader.client.exists(reader.keys.feed);
    // Written aside, so that the feed can be taken away and put back as it was.
    const before = await writer.client.xrange(writer.keys.feed, '-', '+');
    // The follow-ups of the first two appends cannot write the feed (a key of another type there:
    // WRONGTYPE, as any refused or cut write): their events are stored, their feed entries lost.
    await writer.client.set(writer.keys.feed, 'not a stream');
    const f = new EventFactory('lost-first');
    const written = await appendBatch(writer, f, 3);
    await writer.client.exists(writer.keys.feed); // the follow-up's refusal
    written.push(...(await appendBatch(writer, f, 1)));
    await writer.client.exists(writer.keys.feed);
    await writer.client.del(writer.keys.feed);
    for (const [id, fields] of before) await writer.client.xadd(writer.keys.feed, id, ...fields);
    written.push(...(await appendBatch(writer, f, 2)));
    const later = await appendBatch(writer, running, 1);
    expect((await untilMarker(writer, iterator)).map((e) => [e.seq, e.eventId])).toEqual([...written, ...later].map((e) => [e.seq, e.eventId]));
    stop.abort();
    await iterator.return?.();
  });

  it("never runs an append after its caller was told it failed, though the masters' clocks differ", async () => {
    // Two of the three masters are reached through proxies that move their TIME 5 s ahead: to a
    // store, their clocks run 5 s ahead of the third's. A deadline computed on such a clock lets a
    // master whose clock is behind it run an append up to 5 s after its caller gave up.
    const proxies = await Promise.all(cluster.nodes.slice(1).map((n) => timeAheadProxy(n.port, 5)));
    const natMap = Object.fromEntries(proxies.map((p) => [`127.0.0.1:${p.target}`, { host: '127.0.0.1', port: p.port }]));
    const admins = cluster.nodes.map((n) => new Redis(n.port, n.host));
    try {
      // Several stores, each measuring the clock on its own: one that read a single master would
      // read a skewed one two times in three.
      const keyPrefix = freshPrefix('cluster-clock');
      const skewed = Array.from({ length: 6 }, () => {
        const client = new Cluster(cluster.nodes, { natMap, redisOptions: { maxRetriesPerRequest: null } });
        clients.push(client);
        const store = new RedisStore({ redis: client, keyPrefix, commandTimeoutMs: 800 });
        stores.push(store);
        return store;
      });
      const factories = skewed.map((_, i) => new EventFactory(`clock-skew-${i}`));
      for (const [i, store] of skewed.entries()) await store.append(factories[i]!.upgradeId, factories[i]!.batch(1), 0, factories[i]!.snapshot());
      expect(proxies.reduce((n, p) => n + p.rewritten, 0)).toBeGreaterThan(0);
      // Every master stalls past the appends' deadlines: each append is given up on...
      await Promise.all(admins.map((a) => a.call('CLIENT', 'PAUSE', '2000', 'ALL')));
      const outcomes = await Promise.all(skewed.map((store, i) => store.append(factories[i]!.upgradeId, factories[i]!.batch(1), 1, factories[i]!.snapshot()).then(() => 'stored', (e: unknown) => (e as { code?: string }).code)));
      expect(outcomes).toEqual(skewed.map(() => 'STORE_UNAVAILABLE'));
      // ...and once the masters go on, none of them runs.
      await new Promise((r) => setTimeout(r, 2500));
      const stored = await Promise.all(skewed.map(async (store, i) => (await store.load(factories[i]!.upgradeId))?.lastSeq));
      expect(stored).toEqual(skewed.map(() => 1));
    } finally {
      for (const a of admins) a.disconnect();
      for (const p of proxies) p.close();
    }
  }, 30_000);
});

/** Appends a marker upgrade's event, then reads `iterator` up to it: everything the feed held before it. */
async function untilMarker(writer: RedisStore, iterator: AsyncIterator<ProgressEvent>): Promise<ProgressEvent[]> {
  const [marker] = await appendBatch(writer, new EventFactory(`marker-${Date.now()}`), 1);
  return readUpTo(iterator, marker!.eventId);
}

/**
 * A TCP proxy to the Redis on `target` that moves every TIME reply `seconds` ahead (a reply shaped
 * as TIME's: two bulk strings, 10 and at most 6 digits), as if that Redis' clock ran ahead.
 */
async function timeAheadProxy(target: number, seconds: number): Promise<{ port: number; target: number; rewritten: number; close(): void }> {
  const sockets = new Set<Socket>();
  const state = { rewritten: 0 };
  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d: Buffer) => {
      const text = d.toString('latin1').replace(/\*2\r\n\$10\r\n(\d{10})\r\n\$(\d)\r\n(\d{1,6})\r\n/g, (_whole, sec: string, len: string, usec: string) => {
        state.rewritten++;
        return `*2\r\n$10\r\n${Number(sec) + seconds}\r\n$${len}\r\n${usec}\r\n`;
      });
      client.write(Buffer.from(text, 'latin1'));
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    target,
    get rewritten() {
      return state.rewritten;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

// A user who gives the store the url of one node (an ElastiCache configuration endpoint) gets that
// node's slots only: the keys elsewhere are answered MOVED, which the error said and no more.
describeCluster('RedisStore given the url of one node of a Redis Cluster', () => {
  it("says that a MOVED is a Cluster node's answer, and what to give the store instead", async () => {
    const writer = clusterStore();
    const [node] = cluster.nodes;
    const one = new RedisStore({ url: `redis://${node!.host}:${node!.port}`, keyPrefix: writer.keys.prefix, commandTimeoutMs: 3000 });
    stores.push(one);
    const ids = Array.from({ length: 6 }, (_, i) => `one-node-${i}`);
    for (const id of ids) {
      const f = new EventFactory(id);
      await writer.append(id, f.batch(2), 0, f.snapshot());
    }
    const outcomes = await Promise.allSettled(ids.map((id) => one.load(id)));
    const refused = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as Error & { code?: string }] : []));
    // Some upgrades are on that node, the others are not.
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.length).toBeLessThan(ids.length);
    for (const err of refused) {
      expect(err.code).toBe('STORE_UNAVAILABLE');
      expect(err.message).toMatch(
        /: MOVED \d+ 127\.0\.0\.1:\d+ \(a Redis Cluster node's answer: the key is on another node; a store given the url of one node, or a plain Redis client, reaches that node's slots only: give it an ioredis Cluster, redis: new Cluster\(\[\.\.\.\]\); see the README, Redis Cluster\)$/,
      );
    }
  });
});

describeCluster('RedisStore on a Redis Cluster with a master down', () => {
  it('goes on appending to the upgrades of the masters that answer', async () => {
    // Slots stay served while a master is down only without full coverage.
    const partial = await startRedisCluster(3, ['--cluster-require-full-coverage', 'no']);
    const [a, , dead] = partial.nodes as [{ host: string; port: number }, { host: string; port: number }, { host: string; port: number }];
    const admin = new Redis(a.port, a.host);
    const client = new Cluster(partial.nodes.slice(0, 2), { redisOptions: { maxRetriesPerRequest: null } });
    client.on('error', () => {}).on('node error', () => {});
    try {
      // An upgrade whose slot is on a master that stays up (the third holds the slots from 10,924).
      let upgradeId = '';
      for (let i = 0; !upgradeId; i++) if (Number(await admin.call('CLUSTER', 'KEYSLOT', `alive-${i}`)) < 10_924) upgradeId = `alive-${i}`;
      const killer = new Redis(dead.port, dead.host, { retryStrategy: () => null });
      killer.on('error', () => {});
      await killer.call('SHUTDOWN', 'NOSAVE').catch(() => {});
      killer.disconnect();
      const store = new RedisStore({ redis: client, keyPrefix: freshPrefix('cluster-down'), commandTimeoutMs: 2000 });
      const f = new EventFactory(upgradeId);
      await store.append(upgradeId, f.batch(2), 0, f.snapshot());
      expect((await store.load(upgradeId))?.lastSeq).toBe(2);
      await store.close();
    } finally {
      client.disconnect();
      admin.disconnect();
      await partial.stop();
    }
  }, 30_000);
});

// README, Failure semantics, Permissions, on a real Cluster: an ACL user made on every node (ACLs
// are per node) with the commands the README lists, limited to the store's key patterns. ioredis
// discovers the slots with CLUSTER SLOTS, which none of the README's grants held: the Cluster never
// became ready ("Failed to refresh slots cache"), and every call of the store failed.
describeCluster('RedisStore on a 3-node Redis Cluster as a Redis ACL user with what the README says it needs', () => {
  const permissions = /\*\*Permissions\.\*\*([\s\S]*?)(?=\n- \*\*)/.exec(readFileSync(new URL('../README.md', import.meta.url), 'utf8'))?.[1] ?? '';
  const [commandsPart, categoriesPart] = permissions.split('the categories');
  const commands = [...(commandsPart ?? '').matchAll(/`([A-Z_]+(?:\s[A-Z]+)?)`/g)].map((m) => `+${m[1]!.toLowerCase().replace(/\s/, '|')}`);
  const categories = [
    ...(/`([+-]@[a-z]+(?:\s+[+-]@[a-z]+)*)`/.exec(categoriesPart ?? '')?.[1]?.split(/\s+/) ?? []),
    // A command the README adds to them (`+cluster|slots`).
    ...[...(categoriesPart ?? '').matchAll(/`(\+[a-z]+\|[a-z]+)`/g)].map((m) => m[1]!),
  ];
  const advice = /Limit the user to the store's keys([\s\S]*?)not with/.exec(permissions)?.[1] ?? '';
  const patterns = (prefix: string): string[] => [...advice.matchAll(/`(~<prefix>[^`\s]*)`/g)].map((m) => m[1]!.replace('<prefix>', prefix));

  it.each([
    ['the commands', commands],
    ['the categories', categories],
  ] as const)('%s it lists: appends across the nodes, load(), list(), watch(), watchAll() and delete() work', async (_what, grants) => {
    expect(grants).toEqual(expect.arrayContaining(['+cluster|slots']));
    const keyPrefix = freshPrefix('cluster-acl');
    const user = `acl-${Math.random().toString(36).slice(2, 8)}`;
    const admins = cluster.nodes.map((n) => new Redis(n.port, n.host));
    for (const admin of admins) await admin.call('ACL', 'SETUSER', user, 'reset', 'on', '>pw', ...patterns(keyPrefix), 'resetchannels', ...grants);
    const client = new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: null, username: user, password: 'pw', enableReadyCheck: false } });
    clients.push(client);
    const store = new RedisStore({ redis: client, keyPrefix, commandTimeoutMs: 5000, watchBlockMs: 100, snapshotEvery: 2 });
    stores.push(store);
    const stop = new AbortController();
    try {
      expect(await store.list()).toEqual([]);
      const followed: string[] = [];
      const following = (async () => {
        for await (const e of store.watchAll({ signal: stop.signal })) followed.push(`${e.upgradeId}:${e.seq}`);
      })();
      const factories = ['acl-a', 'acl-b', 'acl-c', 'acl-d'].map((id) => new EventFactory(id));
      for (const f of factories) {
        await appendBatch(store, f, 2);
        await appendBatch(store, f, 1);
      }
      for (const f of factories) expect(await store.load(f.upgradeId)).toEqual(f.state);
      expect((await store.list()).map((r) => r.upgradeId).sort()).toEqual(factories.map((f) => f.upgradeId));
      expect((await collect(store.watch('acl-a', 1, { signal: AbortSignal.timeout(300) }))).map((e) => e.seq)).toEqual([2, 3]);
      const deadline = Date.now() + 15_000;
      while (followed.length < 12 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(followed.length).toBe(12);
      expect(await store.delete('acl-a')).toBe(true);
      expect(await store.load('acl-a')).toBeUndefined();
      stop.abort();
      await following;
    } finally {
      stop.abort();
      for (const admin of admins) {
        await admin.call('ACL', 'DELUSER', user);
        admin.disconnect();
      }
    }
  }, 60_000);
});

describeCluster('RedisStore.findKeyPrefixes() on a 3-node Redis Cluster', () => {
  it("searches every master: each prefix's index is on the node its slot is", async () => {
    // Prefixes until their index keys are on at least two different masters.
    const stores_: RedisStore[] = [];
    const probe = clusterClient();
    const nodeOf = async (key: string): Promise<string> => {
      const slot = Number(await probe.cluster('KEYSLOT', key));
      const range = (await probe.cluster('SLOTS')).find(([from, to]) => slot >= from && slot <= to)!;
      return `${range[2]![0]}:${range[2]![1]}`;
    };
    const nodes = new Set<string>();
    while (stores_.length < 2 || nodes.size < 2) {
      const store = clusterStore(freshPrefix('cluster-find'));
      stores_.push(store);
      nodes.add(await nodeOf(store.keys.index));
    }
    const upgradeId = `find-${stores_.length}`;
    for (const store of stores_) {
      const tracker = await ProgressTracker.open({ upgradeId, planId: 'p', clusterName: 'c', store });
      await tracker.startUpgrade();
      await tracker.close();
    }
    const expected = stores_.map((s) => s.keys.prefix).sort();
    expect(await stores_[0]!.findKeyPrefixes()).toEqual(expect.arrayContaining(expected));
    expect(await stores_[0]!.findKeyPrefixes({ upgradeId })).toEqual(expected);
  });
});
