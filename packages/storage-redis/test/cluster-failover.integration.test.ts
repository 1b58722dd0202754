// RedisStore on a real Redis Cluster (three masters, a replica each) whose master fails over.
//
// Found on 2026-11-30 (review): after a failover that lost acknowledged appends (the master died
// before they reached its replica, which took over, and the next writer wrote other events under
// their seqs), watch() on a Cluster went on silently past the events it had handed out: it handed
// out the new history's seqs 7-8 after the lost 5-6, never the new 5-6. Its check of the last event
// handed out runs on a new session ('ready', '+node'), and a Cluster that had a connection to the
// replica already (CLUSTER SLOTS lists replicas in step) emits neither when the replica becomes the
// master. The README promises NOT_FOUND there (Durability, Watching).
import { EventFactory } from '@progress/core/testing';
import { isProgressError, type ProgressEvent } from '@progress/core';
import { spawnSync } from 'node:child_process';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replicatedCluster } from './cluster-replicas.js';
import { freshPrefix, pause, until, watchBoth } from './helpers.js';

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;
const describeCluster = describe.skipIf(!hasRedisServer);

const rc = replicatedCluster();
const { clusterStore, ownerOf } = rc;

beforeAll(async () => {
  if (hasRedisServer) await rc.start();
}, 60_000);

afterAll(() => rc.stop());

describeCluster('RedisStore across a Redis Cluster failover', () => {
  it('a graceful CLUSTER FAILOVER while a writer appends: appends go on, each stored once; watch() and watchAll() hand out every event once, in order', async () => {
    const prefix = freshPrefix('cluster-failover');
    const writer = clusterStore(prefix);
    const reader = clusterStore(prefix, { watchBlockMs: 2000 });
    await reader.list();
    const f = new EventFactory('failing-over');
    const both = watchBoth(reader, f.upgradeId);
    const { watched, followed, errors } = both;
    const acked: ProgressEvent[] = [];
    const failures: string[] = [];
    let writing = true;
    // A writer that tries a failed append again as it was (STORE_UNAVAILABLE: it did not run, or the
    // script recognises it); a CONFLICT would mean a lost append.
    const writes = (async () => {
      while (writing) {
        const expected = f.lastSeq;
        const events = f.batch(1 + (expected % 3));
        for (;;) {
          try {
            await writer.append(f.upgradeId, events, expected, f.snapshot());
            acked.push(...events);
            break;
          } catch (e) {
            failures.push(`${(e as { code?: string }).code} ${(e as Error).message}`);
            if ((e as { code?: string }).code !== 'STORE_UNAVAILABLE') throw e;
          }
        }
        await pause(5);
      }
    })();
    await pause(300);
    const owner = await ownerOf(writer.keys.upgrade(f.upgradeId).events);
    await rc.replicas[owner]!.call('CLUSTER', 'FAILOVER');
    await until('the replica to take over', async () => String(await rc.replicas[owner]!.info('replication')).includes('role:master'));
    // Appends after it, on the new master.
    const after = acked.length;
    try {
      await until('appends after the failover', () => acked.length > after + 20);
    } finally {
      writing = false;
      await writes;
    }
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && errors.length === 0 && (watched.length < acked.length || followed.length < acked.length)) await pause(50);
    await both.stop();
    const stored: ProgressEvent[] = [];
    for await (const e of writer.readEvents(f.upgradeId, 0)) stored.push(e);
    expect(stored.map((e) => e.eventId)).toEqual(acked.map((e) => e.eventId));
    expect(stored.map((e) => e.seq)).toEqual(acked.map((_, i) => i + 1));
    expect(failures.filter((f) => !f.startsWith('STORE_UNAVAILABLE'))).toEqual([]);
    expect(errors).toEqual([]);
    expect(watched.map((e) => e.eventId)).toEqual(acked.map((e) => e.eventId));
    expect(followed.map((e) => e.eventId)).toEqual(acked.map((e) => e.eventId));
  }, 60_000);
});

describeCluster('RedisStore.watch() across a Cluster failover that lost acknowledged appends', () => {
  it('ends with NOT_FOUND rather than go on past events it handed out that the promoted replica never got', async () => {
    const prefix = freshPrefix('cluster-lossy');
    const writer = clusterStore(prefix);
    const reader = clusterStore(prefix, { watchBlockMs: 500 });
    const f = new EventFactory('lossy');
    const keys = writer.keys.upgrade(f.upgradeId);
    const owner = await ownerOf(keys.events);
    await writer.append(f.upgradeId, f.batch(4), 0, f.snapshot());
    // The replica stops copying its master once it holds seqs 1-4: seqs 5-6 are acknowledged by
    // the master only, as when a master dies before its last writes reached the replica.
    const other = new EventFactory(f.upgradeId);
    other.state = f.snapshot();
    await rc.detach(owner, { what: 'the replica to hold seqs 1-4', check: async (replica) => (await replica.hget(keys.meta, 'lastSeq')) === '4' });
    const lost = f.batch(2);
    await writer.append(f.upgradeId, lost, 4, f.snapshot());
    // The watcher hands out seqs 1-6 and is not asked for more meanwhile (no read in flight).
    const it = reader.watch(f.upgradeId, 0)[Symbol.asyncIterator]();
    const seen: ProgressEvent[] = [];
    for (let i = 0; i < 6; i++) seen.push((await it.next()).value as ProgressEvent);
    expect(seen.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(seen.slice(4).map((e) => e.eventId)).toEqual(lost.map((e) => e.eventId));
    // The master dies; its replica takes over, without the lost seqs, and the next writer writes
    // other events at seqs 5-8 there.
    await rc.takeOver(owner, keys.events);
    const next = clusterStore(prefix);
    await until('the next writer to find seq 4', async () => (await next.load(f.upgradeId))?.lastSeq === 4, undefined, rc.views);
    await next.append(f.upgradeId, other.batch(2), 4, other.snapshot());
    await next.append(f.upgradeId, other.batch(2), 6, other.snapshot());
    let ended: unknown;
    const more: ProgressEvent[] = [];
    try {
      for (;;) {
        const r = await it.next();
        if (r.done) break;
        more.push(r.value);
        if (more.length >= 2) break;
      }
    } catch (err) {
      ended = err;
    }
    await it.return?.();
    expect(more).toEqual([]);
    expect(isProgressError(ended, 'NOT_FOUND')).toBe(true);
    expect((ended as Error).message).toContain('seq 6');
  }, 60_000);
});

// Last in the file: the master it kills stays dead.
describeCluster('RedisStore when a master of a Redis Cluster dies (kill -9) and its replica is elected', () => {
  it('appends fail with STORE_UNAVAILABLE meanwhile, within commandTimeoutMs, and go on after; each acknowledged event stored once; watch() and watchAll() hand out every event once, in order', async () => {
    const prefix = freshPrefix('cluster-killed');
    const writer = clusterStore(prefix, { commandTimeoutMs: 3000 });
    const reader = clusterStore(prefix, { watchBlockMs: 500 });
    await reader.list();
    // An upgrade whose slot is served by a master with a replica in step (the tests above failed
    // over masters, and shut one down): the replicas' and masters' roles may be swapped by now.
    let f: EventFactory | undefined;
    let victim: Redis | undefined;
    let heir: Redis | undefined;
    for (let i = 0; !f; i++) {
      const candidate = new EventFactory(`killed-${i}`);
      const owner = await ownerOf(writer.keys.upgrade(candidate.upgradeId).events);
      const pair = owner >= 0 ? [rc.masters[owner]!, rc.replicas[owner]!] : [rc.replicas[-1 - owner]!, rc.masters[-1 - owner]!];
      if (String(await pair[1]!.info('replication').catch(() => '')).includes('master_link_status:up')) [f, victim, heir] = [candidate, pair[0], pair[1]];
    }
    const both = watchBoth(reader, f.upgradeId);
    const { watched, followed, errors } = both;
    await pause(100);
    const acked: ProgressEvent[] = [];
    const failures: string[] = [];
    let longest = 0;
    let writing = true;
    const writes = (async () => {
      while (writing) {
        const expected = f.lastSeq;
        const events = f.batch(1 + (expected % 3));
        for (;;) {
          const started = Date.now();
          try {
            await writer.append(f.upgradeId, events, expected, f.snapshot());
            acked.push(...events);
            break;
          } catch (e) {
            longest = Math.max(longest, Date.now() - started);
            failures.push(`${(e as { code?: string }).code} ${(e as Error).message}`);
            if ((e as { code?: string }).code !== 'STORE_UNAVAILABLE') throw e;
          }
        }
        await pause(2);
      }
    })();
    try {
      await until('appends before the kill', () => acked.length > 50);
      process.kill(Number(/process_id:(\d+)/.exec(String(await victim!.info('server')))![1]), 'SIGKILL');
      await until('the replica to be elected', async () => String(await heir!.info('replication')).includes('role:master'));
      const after = acked.length;
      await until('appends after the failover', () => acked.length > after + 30);
    } finally {
      writing = false;
      await writes;
    }
    await until('both watchers to hand out every event', () => errors.length > 0 || (watched.length >= acked.length && followed.length >= acked.length));
    await both.stop();
    const stored: ProgressEvent[] = [];
    for await (const e of writer.readEvents(f.upgradeId, 0)) stored.push(e);
    expect(stored.map((e) => e.eventId)).toEqual(acked.map((e) => e.eventId));
    expect(stored.map((e) => e.seq)).toEqual(acked.map((_, i) => i + 1));
    expect(failures.filter((f) => !f.startsWith('STORE_UNAVAILABLE'))).toEqual([]);
    // Bounded: none waited past commandTimeoutMs (3 s) and a generous margin.
    expect(longest).toBeLessThan(10_000);
    expect(errors).toEqual([]);
    expect(watched.map((e) => e.eventId)).toEqual(acked.map((e) => e.eventId));
    expect(followed.map((e) => e.eventId)).toEqual(acked.map((e) => e.eventId));
  }, 60_000);
});
