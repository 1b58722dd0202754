// Profiling helper: sequential and burst rows only, plus the server-side cost per command
// (INFO commandstats deltas). Use a private Redis so other clients do not pollute the counters:
//   REDIS_URL=redis://127.0.0.1:6390 node --cpu-prof --import tsx --conditions=@progress/source tools/bench/storage-redis/profile.ts
import { randomUUID } from 'node:crypto';
import type { ProgressTracker } from '@progress/core';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { RedisStore } from '../../../packages/storage-redis/src/index.js';
import { openBenchTracker } from '../core/bench-tracker.js';
import { commandStats, redisCpuSeconds } from './redis-stats.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const only = process.env.ONLY ?? 'ours,bull';
const N = Number(process.env.N ?? 4000);
const runId = randomUUID().slice(0, 8);
const store = new RedisStore({ url, keyPrefix: `prof:${runId}:` });
const admin = new Redis(url);
const bullConnection = new Redis(url, { maxRetriesPerRequest: null });
const queue = new Queue('prof', { connection: bullConnection, prefix: `prof-bull-${runId}` });

const stats = (): ReturnType<typeof commandStats> => commandStats(admin);
async function measure(label: string, fn: () => Promise<number>): Promise<void> {
  const before = await stats();
  const cpu0 = await serverCpu();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const n = await fn();
  const ms = performance.now() - t0;
  const c1 = process.cpuUsage(c0);
  const cpu1 = await serverCpu();
  const after = await stats();
  const parts: string[] = [];
  for (const [k, v] of after) {
    const b = before.get(k) ?? { calls: 0, usec: 0 };
    const calls = v.calls - b.calls;
    if (calls > 0 && k !== 'info') parts.push(`${k} ${calls} calls ${((v.usec - b.usec) / calls).toFixed(1)} us/call`);
  }
  const clientUs = (c1.user + c1.system) / n;
  const serverUs = ((cpu1 - cpu0) * 1e6) / n;
  console.log(`${label}: ${Math.round((n / ms) * 1000)} events/s, ${((ms * 1000) / n).toFixed(1)} us/event (client cpu ${clientUs.toFixed(1)} us, redis cpu ${serverUs.toFixed(1)} us); ${parts.join('; ')}`);
}

const serverCpu = (): Promise<number> => redisCpuSeconds(admin);

let k = 0;
const open = (): Promise<ProgressTracker> => openBenchTracker(store, `u${++k}`);
const probe = await open();
const sample = JSON.parse(JSON.stringify(await probe.updateTaskProgress('t1', 50, 'Progress: 50%'))) as Record<string, unknown>;
for (let r = 0; r < 3; r++) {
  if (only.includes('ours')) {
    const t = await open();
    await measure('ours sequential', async () => {
      for (let i = 0; i < N; i++) await t.updateTaskProgress(`t${i % 10}`, i % 100, 'step');
      return N;
    });
    if (!process.env.SEQONLY) await measure('ours bursts', async () => {
      for (let b = 0; b < N / 100; b++) await Promise.all(Array.from({ length: 100 }, (_, i) => t.updateTaskProgress(`t${i % 10}`, i, 'step')));
      return N;
    });
    await t.close();
  }
  if (only.includes('bull')) {
    const job = await queue.add('upgrade', { cluster: 'bench' });
    await measure('bull sequential', async () => {
      for (let i = 0; i < N; i++) await job.updateProgress({ ...sample, seq: i, percentage: i % 100 });
      return N;
    });
    if (!process.env.SEQONLY) await measure('bull bursts', async () => {
      for (let b = 0; b < N / 100; b++) await Promise.all(Array.from({ length: 100 }, (_, i) => job.updateProgress({ ...sample, seq: i, percentage: i % 100 })));
      return N;
    });
  }
}
await probe.close();
await store.close();
await queue.obliterate({ force: true }).catch(() => {});
await queue.close();
for (const key of await admin.keys(`prof:${runId}:*`)) await admin.del(key);
await bullConnection.quit();
await admin.quit();
