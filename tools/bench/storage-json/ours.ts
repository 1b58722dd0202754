import { ProgressTracker } from '@progress/core';
import { JsonFileStore, type Durability } from '@progress/storage-json';
import { buildHistory, rate, scratch, TASKS } from './workload.js';

const MAX_MS = 2500;

/**
 * A whole ProgressTracker on a JsonFileStore over an upgrade that already holds `existing` events:
 * `burst` concurrent commands at a time (1 = one awaited command at a time). Events per second.
 */
export async function ours(existing: number, burst: number, durability: Durability = 'fsync', maxEvents = burst === 1 ? 4000 : 60_000, maxMs = MAX_MS): Promise<number> {
  const { dir, done } = await scratch('ours');
  // Seeded with fsync, so no dirty page of the seed is left for the measured fdatasyncs to flush.
  const seed = new JsonFileStore({ directory: dir, durability: 'fsync' });
  await buildHistory('bench', existing, 1000, (events, expected, state) => seed.append('bench', events, expected, state));
  await seed.close();
  const store = new JsonFileStore({ directory: dir, durability });
  const tracker = await ProgressTracker.open({ upgradeId: 'bench', planId: 'plan', clusterName: 'bench', store });
  if (tracker.progress.lastSeq !== existing) throw new Error(`loaded seq ${tracker.progress.lastSeq}, expected ${existing}`);
  let n = 0;
  const step = async (): Promise<number> => {
    if (burst === 1) {
      await tracker.updateTaskProgress(`t${1 + (n++ % TASKS)}`, n % 100);
      return 1;
    }
    const commands = [];
    for (let i = 0; i < burst; i++) commands.push(tracker.updateTaskProgress(`t${1 + (n++ % TASKS)}`, n % 100));
    await Promise.all(commands);
    return burst;
  };
  await rate(burst === 1 ? 200 : 2000, 300, step); // warm-up
  const r = await rate(maxEvents, maxMs, step);
  await tracker.close();
  await store.close();
  await done();
  return r;
}
