import { ProgressTracker, isProgressError, type ProgressEvent } from '@progress/core';
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { adminClient, cleanup, collect, makeStore } from './helpers.js';

const prefixes = new Set<string>();
const admin = adminClient();

afterAll(async () => {
  await cleanup(admin, prefixes);
  await admin.quit();
});

/** Kills every connection whose name starts with `name` (the store's and its watchers'). */
async function killConnections(name: string): Promise<number> {
  const list = (await admin.call('CLIENT', 'LIST')) as string;
  let killed = 0;
  for (const line of list.split('\n')) {
    const id = /\bid=(\d+)/.exec(line)?.[1];
    const client = /\bname=(\S*)/.exec(line)?.[1];
    if (id && client?.startsWith(name)) {
      await admin.call('CLIENT', 'KILL', 'ID', id).catch(() => {});
      killed++;
    }
  }
  return killed;
}

describe('RedisStore under connection loss', () => {
  it('stores every acknowledged event exactly once, contiguously, while its connections are killed every few tens of ms', async () => {
    const name = `kill-test-${randomUUID().slice(0, 8)}`;
    const store = makeStore(prefixes, { connectionName: name, commandTimeoutMs: 5_000 });
    const upgradeId = 'killed';
    let tracker = await ProgressTracker.open({ upgradeId, planId: 'plan-1', clusterName: 'cluster-1', store });
    await tracker.startUpgrade();
    await tracker.addTask('t1', 'Task 1');
    const initial = tracker.progress.lastSeq;

    // A watcher on the same store follows along; its connection is killed too.
    const stop = new AbortController();
    const watched: ProgressEvent[] = [];
    const watching = (async () => {
      for await (const ev of store.watch(upgradeId, 0, { signal: stop.signal })) watched.push(ev);
    })();

    let kills = 0;
    let killing = true;
    const killer = (async () => {
      while (killing) {
        await new Promise((r) => setTimeout(r, 20 + Math.random() * 30));
        kills += await killConnections(name);
      }
    })();

    const acked: ProgressEvent[] = [];
    let failures = 0;
    let conflicts = 0;
    let done = 0;
    while (done < 1000) {
      // Bursts of 1..10 concurrent commands (group commit), as a busy agent would issue them.
      const size = Math.min(1000 - done, 1 + ((done * 7) % 10));
      const results = await Promise.allSettled(Array.from({ length: size }, (_, i) => tracker.updateTaskProgress('t1', (done + i) % 100, `step ${done + i}`)));
      // Pace it so that the run spans many kills (about 2 s).
      await new Promise((r) => setTimeout(r, 10));
      for (const r of results) {
        if (r.status === 'fulfilled') {
          acked.push(r.value);
          done++;
        } else if (isProgressError(r.reason, 'CONFLICT')) {
          // Only after an append whose outcome was unknown: reopen from what Redis holds.
          conflicts++;
          await tracker.close();
          tracker = await ProgressTracker.open({ upgradeId, planId: 'plan-1', clusterName: 'cluster-1', store });
          break;
        } else {
          expect(isProgressError(r.reason, 'STORE_UNAVAILABLE')).toBe(true);
          failures++;
        }
      }
    }
    killing = false;
    await killer;
    await tracker.close();

    const stored = await collect(store.readEvents(upgradeId, 0));
    expect(stored.map((e) => e.seq)).toEqual(stored.map((_, i) => i + 1));
    expect(new Set(stored.map((e) => e.eventId)).size).toBe(stored.length);
    for (const ev of acked) expect(stored[ev.seq - 1]?.eventId).toBe(ev.eventId);
    if (failures === 0 && conflicts === 0) expect(stored.length).toBe(initial + 1000);
    expect(kills).toBeGreaterThan(10);
    expect(await store.load(upgradeId)).toEqual(JSON.parse(JSON.stringify(tracker.progress)));

    // The watcher saw the same log, in order, without gaps or duplicates.
    const deadline = Date.now() + 10_000;
    while (watched.length < stored.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    stop.abort();
    await watching;
    expect(watched.map((e) => e.eventId)).toEqual(stored.map((e) => e.eventId));
    await store.close();
  }, 120_000);
});
