// A master demoted under a watcher (REPLICAOF: its blocked reads end with UNBLOCKED) after it had
// acknowledged appends its new master never got: the watcher stays on it, now a replica, whose data
// is its own until the sync with the new master replaces it (Redis waits `repl-diskless-sync-delay`,
// 5 s by default, before it sends it). Checked on that data right after the UNBLOCKED, the last
// event it handed out was still there, and once the sync had replaced it the watcher went on with
// the new master's events in place of the lost ones.
import { isProgressError, type ProgressEvent } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type TestRedis } from '../../../tools/test-utils/src/redis.js';
import { RedisStore } from '../src/index.js';
import { freshPrefix } from './helpers.js';

let master: TestRedis;
let promoted: TestRedis;
const stores: RedisStore[] = [];
const admins: Redis[] = [];

beforeAll(async () => {
  [master, promoted] = await Promise.all([startRedisServer(), startRedisServer()]);
});

afterAll(async () => {
  for (const store of stores) await store.close();
  for (const admin of admins) admin.disconnect();
  await Promise.all([master?.stop(), promoted?.stop()]);
});

function store(url: string, keyPrefix: string): RedisStore {
  const s = new RedisStore({ url, keyPrefix, watchBlockMs: 200 });
  stores.push(s);
  return s;
}

function admin(url: string): Redis {
  const a = new Redis(url, { maxRetriesPerRequest: 0 });
  a.on('error', () => {});
  admins.push(a);
  return a;
}

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('RedisStore.watch() on a master demoted after it lost acknowledged appends', () => {
  it('ends with NOT_FOUND rather than go on with the new master\'s events once the sync replaced its data', async () => {
    const keyPrefix = freshPrefix('demoted-divergence');
    const onMaster = store(master.url, keyPrefix);
    const onPromoted = store(promoted.url, keyPrefix);
    const f = new EventFactory('demoted');
    const common = f.batch(4);
    await onMaster.append(f.upgradeId, common, 0, f.snapshot());
    await onPromoted.append(f.upgradeId, common, 0, f.snapshot());
    const other = new EventFactory(f.upgradeId);
    other.state = f.snapshot();
    // Seqs 5-6 acknowledged by the old master only; the new master has other events at 5-8.
    const lost = f.batch(2);
    await onMaster.append(f.upgradeId, lost, 4, f.snapshot());
    await onPromoted.append(f.upgradeId, other.batch(2), 4, other.snapshot());
    await onPromoted.append(f.upgradeId, other.batch(2), 6, other.snapshot());

    const reader = store(master.url, keyPrefix);
    const seen: ProgressEvent[] = [];
    let ended: unknown;
    const stop = new AbortController();
    const following = (async () => {
      for await (const event of reader.watch(f.upgradeId, 0, { signal: stop.signal })) seen.push(event);
    })().catch((err: unknown) => (ended = err));
    await until(() => seen.length === 6, 'the watcher to hand out seqs 1-6');

    const old = admin(master.url);
    const { port } = new URL(promoted.url);
    await old.call('REPLICAOF', '127.0.0.1', port);
    // The sync done: the old master holds the new master's events.
    await until(async () => String(await old.info('replication')).includes('master_link_status:up'), 'the demoted master to sync');
    await until(async () => (await old.hget(onMaster.keys.upgrade(f.upgradeId).meta, 'lastSeq')) === '8', 'the new master\'s data');
    await until(() => ended !== undefined || seen.length > 6, 'the watcher to read the synced data, or end');
    stop.abort();
    await following;

    expect(seen.map((e) => e.eventId)).toEqual([...common, ...lost].map((e) => e.eventId));
    expect(isProgressError(ended, 'NOT_FOUND')).toBe(true);
    expect((ended as Error).message).toContain('seq 6');
  }, 40_000);
});
