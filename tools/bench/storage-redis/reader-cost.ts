// What a reader in another process costs while it follows 1,000 events a second: its latency, its CPU
// per event and its garbage collector's pauses, for watch(), watchAll(), a plain XREAD BLOCK loop on
// the same stream (the floor under watch()) and BullMQ's QueueEvents. The p99 of the latency rows in
// index.ts is made of the reader's pauses: a young-generation collection of 15 ms delays the ~15
// events that arrive during it. Run from the repository root (REDIS_URL picks the Redis):
//   npx tsx --conditions=@progress/source tools/bench/storage-redis/reader-cost.ts
import { randomUUID } from 'node:crypto';
import { ProgressTracker } from '@progress/core';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { RedisStore } from '../../../packages/storage-redis/src/index.js';
import { deleteKeysWith } from '../../test-utils/src/redis.js';
import { paced, startReader, type ReaderStats } from './reader-process.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const runId = randomUUID().slice(0, 8);
const keyPrefix = `bench:reader-cost:${runId}:`;
const bullPrefix = `bench-reader-cost-${runId}`;
const EVENTS = 3_000;
const ROUNDS = Number(process.env.ROUNDS ?? 1);
const store = new RedisStore({ url, keyPrefix });
const bullConnection = new Redis(url, { maxRetriesPerRequest: null });

type Kind = 'watch' | 'watchAll' | 'xread' | 'bullmq';
const label: Record<Kind, string> = { watch: 'watch()', watchAll: 'watchAll()', xread: 'plain XREAD loop', bullmq: "BullMQ QueueEvents 'progress'" };

async function run(kind: Kind, round: number): Promise<{ latencies: number[]; stats: ReaderStats }> {
  const upgradeId = `u-${kind}-${round}`;
  const reader = kind === 'bullmq' ? startReader({ kind, url, queue: upgradeId, prefix: bullPrefix, count: EVENTS }) : startReader({ kind, url, keyPrefix, upgradeId, count: EVENTS });
  await reader.ready;
  await new Promise((r) => setTimeout(r, 200));
  if (kind === 'bullmq') {
    const queue = new Queue(upgradeId, { connection: bullConnection, prefix: bullPrefix });
    const job = await queue.add('upgrade', {});
    await paced(EVENTS, 1000, (t) => job.updateProgress({ t }));
    await queue.close();
  } else {
    const tracker = await ProgressTracker.open({ upgradeId, planId: 'plan', clusterName: 'bench', store });
    await tracker.startUpgrade();
    await tracker.addTask('t1', 'Task 1');
    await paced(EVENTS, 1000, (t) => tracker.updateTaskProgress('t1', 50, 'step', { t }));
    await tracker.close();
  }
  return { latencies: await reader.result, stats: await reader.stats };
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const lines: string[][] = [['reader', 'median ms', 'p99 ms', 'events > 3 ms', 'CPU us/event', 'GCs minor/major', 'GC total ms', 'GC max ms']];
try {
  process.stderr.write(`reader cost on ${url}: ${EVENTS} events at 1,000/s per reader, ${ROUNDS} round(s)\n`);
  const kinds: Kind[] = ['watch', 'watchAll', 'xread', 'bullmq'];
  for (let round = 0; round < ROUNDS; round++) {
    for (const kind of round % 2 ? [...kinds].reverse() : kinds) {
      const { latencies, stats } = await run(kind, round);
      lines.push([
        label[kind],
        pct(latencies, 50).toFixed(2),
        pct(latencies, 99).toFixed(2),
        String(latencies.filter((l) => l > 3).length),
        stats.cpuPerEventUs.toFixed(0),
        `${stats.gc.minor}/${stats.gc.major}`,
        stats.gc.totalMs.toFixed(1),
        stats.gc.maxMs.toFixed(1),
      ]);
    }
  }
} finally {
  for (const prefix of [keyPrefix, `${bullPrefix}:`]) await deleteKeysWith(bullConnection, prefix);
  await store.close();
  await bullConnection.quit();
}
const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
for (const l of lines) console.log(l.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
