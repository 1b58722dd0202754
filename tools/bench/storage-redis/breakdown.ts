// Where the sequential path's time goes, in one process, interleaved 7 times (medians and all runs):
//   bull        BullMQ job.updateProgress (one EVALSHA, ~485 bytes)
//   rawScript   our append script through plain ioredis evalsha, arguments prebuilt (server + bytes)
//   storeDirect RedisStore.append of prebuilt events (adds the store's client work)
//   tracker     ProgressTracker.updateTaskProgress on RedisStore (adds core's work)
// Run: REDIS_URL=redis://127.0.0.1:6379 npx tsx --conditions=@progress/source tools/bench/storage-redis/breakdown.ts
// ONLY=bull,tracker picks contenders. Best on a private Redis (redis-server --port 6390 --save '').
import { randomUUID } from 'node:crypto';
import { ProgressTracker } from '@progress/core';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { APPEND_LUA, appendHead } from '../../../packages/storage-redis/src/scripts.js';
import { RedisStore } from '../../../packages/storage-redis/src/index.js';
// PATCH_QM=1 measures core with queueMicrotask replaced by a resolved-promise reaction (a proposed core change).
if (process.env.PATCH_QM) { const done = Promise.resolve(); globalThis.queueMicrotask = (f: () => void) => void done.then(f); }
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const N = 5000;
const run = randomUUID().slice(0, 6);
const r = new Redis(url);
const sha = (await r.script('LOAD', APPEND_LUA)) as string;
const store = new RedisStore({ url, keyPrefix: `ab:${run}:` });
const bullConn = new Redis(url, { maxRetriesPerRequest: null });
const queue = new Queue('ab', { connection: bullConn, prefix: `ab-bull-${run}` });
let k = 0;
const t = await ProgressTracker.open({ upgradeId: 'u0', planId: 'plan', clusterName: 'bench', store });
await t.startUpgrade();
await t.addTasks(Array.from({ length: 10 }, (_, i) => ({ taskId: `t${i}`, taskName: `Task ${i}` })));
const sample = JSON.parse(JSON.stringify(await t.updateTaskProgress('t1', 50, 'Progress: 50%'))) as Record<string, unknown>;
const ev = JSON.stringify(sample);
const contenders: Record<string, () => Promise<void>> = {
  bull: async () => {
    const job = await queue.add('x', {});
    for (let i = 0; i < N; i++) await job.updateProgress({ ...sample, seq: i });
  },
  rawScript: async () => {
    const id = `ab:${run}:raw${++k}`;
    for (let i = 0; i < N; i++) await r.evalsha(sha, 3, `${id}:e`, `${id}:m`, `ab:${run}:feed`, `0${appendHead(1, i, 1, '', id, `${i + 1}|12.5|2026-11-28T14:00:00.000Z`, String(sample.eventId))}`, `[${ev}]`);
  },
  storeDirect: async () => {
    const id = `sd${++k}`;
    const state = { ...(t.progress as object), lastSeq: 0 } as { lastSeq: number } & Record<string, unknown>;
    for (let i = 0; i < N; i++) {
      state.lastSeq = i + 1;
      await store.append(id, [{ ...(sample as object), upgradeId: id, seq: i + 1, eventId: `e${i}` } as never], i, state as never);
    }
  },
  tracker: async () => {
    for (let i = 0; i < N; i++) await t.updateTaskProgress(`t${i % 10}`, i % 100, 'step');
  },
};
const res: Record<string, number[]> = {};
const cpu: Record<string, number[]> = {};
for (let it = 0; it < 7; it++) for (const [name, fn] of Object.entries(contenders).filter(([n]) => !process.env.ONLY || process.env.ONLY.split(",").includes(n))) { const c0 = process.cpuUsage(); const t0 = performance.now(); await fn(); (res[name] ??= []).push(((performance.now() - t0) * 1000) / N); const c = process.cpuUsage(c0); (cpu[name] ??= []).push((c.user + c.system) / N); }
for (const [name, xs] of Object.entries(res)) console.log(name.padEnd(11), 'median us/event', xs.sort((a, b) => a - b)[3]!.toFixed(1), xs.map((x) => x.toFixed(0)).join(' '), '| client cpu us/event', cpu[name]!.sort((a, b) => a - b)[3]!.toFixed(1));
await t.close(); await store.close(); await queue.obliterate({ force: true }).catch(() => {}); await queue.close(); await bullConn.quit();
for (const key of await r.keys(`ab:${run}:*`)) await r.del(key);
await r.quit();
