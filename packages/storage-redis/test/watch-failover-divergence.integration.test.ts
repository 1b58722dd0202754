// A failover that loses acknowledged appends: the master ran seqs 5-6 and the watcher handed them
// out, but the replica promoted in its place never got them, and the next writer wrote other events
// at seqs 5-8 there. Two real Redis servers stand for the old master and the promoted replica (each
// with the same first four events). Found with a real Sentinel failover (sentinel.integration.test.ts):
// the watcher went on at seq 7 of the new master, silently, its consumer keeping events that exist nowhere.
import { isProgressError, type ProgressEvent } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisProxy, type RedisProxy } from '../../../tools/test-utils/src/redis-proxy.js';
import { startRedisServer, type TestRedis } from '../../../tools/test-utils/src/redis.js';
import { RedisStore } from '../src/index.js';
import { freshPrefix, until } from './helpers.js';

let servers: TestRedis[] = [];
const proxies: RedisProxy[] = [];
const stores: RedisStore[] = [];
const admins: Redis[] = [];

beforeAll(async () => {
  // Two pairs: a master and the replica promoted in its place, for each test.
  servers = await Promise.all([startRedisServer(), startRedisServer(), startRedisServer(), startRedisServer()]);
});

afterAll(async () => {
  for (const store of stores) await store.close();
  for (const admin of admins) admin.disconnect();
  for (const proxy of proxies) await proxy.close();
  await Promise.all(servers.map((s) => s.stop()));
});

function store(url: string, keyPrefix: string): RedisStore {
  const s = new RedisStore({ url, keyPrefix, watchBlockMs: 200 });
  stores.push(s);
  return s;
}

/**
 * Seqs 1-4 on both servers; 5-6 on the master only (acknowledged, never replicated); 5-8 of another
 * run on the promoted one, in two appends (so that a read after seq 6 there gets only the entry of 7-8).
 */
async function diverged(master: TestRedis, promoted: TestRedis, keyPrefix: string): Promise<{ upgradeId: string; handedOut: ProgressEvent[]; metaKey: string }> {
  const onMaster = store(master.url, keyPrefix);
  const onPromoted = store(promoted.url, keyPrefix);
  const f = new EventFactory('diverged');
  const common = f.batch(4);
  await onMaster.append(f.upgradeId, common, 0, f.snapshot());
  await onPromoted.append(f.upgradeId, common, 0, f.snapshot());
  const other = new EventFactory(f.upgradeId);
  other.state = f.snapshot();
  const lost = f.batch(2);
  await onMaster.append(f.upgradeId, lost, 4, f.snapshot());
  await onPromoted.append(f.upgradeId, other.batch(2), 4, other.snapshot());
  await onPromoted.append(f.upgradeId, other.batch(2), 6, other.snapshot());
  return { upgradeId: f.upgradeId, handedOut: [...common, ...lost], metaKey: onMaster.keys.upgrade(f.upgradeId).meta };
}

/** Follows `upgradeId` from seq 0 in the background until it has handed out `n` events. */
async function following(reader: RedisStore, upgradeId: string, n: number) {
  const seen: ProgressEvent[] = [];
  let ended: unknown;
  const stop = new AbortController();
  const done = (async () => {
    for await (const event of reader.watch(upgradeId, 0, { signal: stop.signal })) seen.push(event);
  })().catch((err: unknown) => (ended = err));
  await until(`the watcher to hand out seqs 1-${n}`, () => seen.length === n);
  return {
    seen,
    /** Waits for the watcher to end or hand out more, then stops it; what it ended with. */
    async outcome(): Promise<unknown> {
      await until('the watcher to read the new history, or end', () => ended !== undefined || seen.length > n);
      stop.abort();
      await done;
      return ended;
    },
  };
}

describe('RedisStore.watch() across a failover that lost acknowledged appends', () => {
  it('reconnected to the promoted replica: ends with NOT_FOUND rather than go on past events it handed out that are not there', async () => {
    const [master, promoted] = servers as [TestRedis, TestRedis];
    const keyPrefix = freshPrefix('failover-divergence');
    const { upgradeId, handedOut } = await diverged(master, promoted, keyPrefix);
    // The watcher reaches the master through a TCP proxy that fails over to the promoted replica
    // (its connections cut, new ones to the replica), as a Sentinel client would reconnect.
    const proxy = await startRedisProxy(master.url);
    proxies.push(proxy);
    const watcher = await following(store(proxy.url, keyPrefix), upgradeId, 6);
    proxy.failOver(promoted.url);
    const ended = await watcher.outcome();
    expect(watcher.seen.map((e) => e.eventId)).toEqual(handedOut.map((e) => e.eventId));
    expect(isProgressError(ended, 'NOT_FOUND')).toBe(true);
    expect((ended as Error).message).toContain('seq 6');
  }, 30_000);

  it('on the old master, demoted under it: ends with NOT_FOUND once the sync replaced its data, rather than go on with the new master\'s events', async () => {
    // REPLICAOF ends the watcher's blocked read with UNBLOCKED; the server serves its own data until
    // the sync with its new master replaces it (Redis waits `repl-diskless-sync-delay`, 5 s by
    // default, before sending it). Checked right after the UNBLOCKED, the last event it handed out
    // was still there, and once the sync had replaced it the watcher went on with the new events.
    const [, , master, promoted] = servers as [TestRedis, TestRedis, TestRedis, TestRedis];
    const keyPrefix = freshPrefix('demoted-divergence');
    const { upgradeId, handedOut, metaKey } = await diverged(master, promoted, keyPrefix);
    const watcher = await following(store(master.url, keyPrefix), upgradeId, 6);
    const old = new Redis(master.url, { maxRetriesPerRequest: 0 });
    old.on('error', () => {});
    admins.push(old);
    await old.call('REPLICAOF', '127.0.0.1', new URL(promoted.url).port);
    await until('the demoted master to sync', async () => String(await old.info('replication')).includes('master_link_status:up'));
    await until("the new master's data", async () => (await old.hget(metaKey, 'lastSeq')) === '8');
    const ended = await watcher.outcome();
    expect(watcher.seen.map((e) => e.eventId)).toEqual(handedOut.map((e) => e.eventId));
    expect(isProgressError(ended, 'NOT_FOUND')).toBe(true);
    expect((ended as Error).message).toContain('seq 6');
  }, 40_000);
});
