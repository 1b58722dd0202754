// Splits one awaited call (the sequential path) into the parts each side spends, for the tracker on
// RedisStore and for BullMQ's job.updateProgress, alternating rounds on the same Redis:
//   call -> write   from the call to the command's socket write (this process: validation, events, serialization)
//   write -> reply  from that write to the reply's arrival (the write syscall, both wake-ups, Redis' work)
//   reply -> resume from the reply's arrival to the caller going on (this process: parsing, settling, promises)
//   script          Redis' time inside the script (INFO commandstats, usec per EVALSHA)
//   redis cpu       Redis' CPU per call in all (INFO cpu: also reading the request and writing the reply)
// The times are trimmed means (the middle 80%) over every call after each round's first 100. The
// write and the reply are seen on the client's own socket (a `data` listener put first and a
// wrapped `write`), so the parts add up to the round trip the sequential rate is made of.
// Run on a private Redis, so that nobody else's commands are counted:
//   redis-server --port 6390 --save '' --appendonly no --daemonize yes
//   REDIS_URL=redis://127.0.0.1:6390 npx tsx --conditions=@progress/source tools/bench/storage-redis/segments.ts
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { ProgressTracker } from '@progress/core';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { RedisStore } from '../../../packages/storage-redis/src/index.js';
import { openBenchTracker } from '../core/bench-tracker.js';
import { commandStats, redisCpuSeconds } from './redis-stats.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const N = Number(process.env.N ?? 4000);
const ROUNDS = Number(process.env.ROUNDS ?? 6);
const run = randomUUID().slice(0, 8);
const now = performance.now.bind(performance);

/** When the client's socket last wrote and last received data. */
function watchSocket(client: Redis): { write: number; data: number } {
  const seen = { write: 0, data: 0 };
  const socket = (client as unknown as { stream: Socket }).stream;
  socket.prependListener('data', () => {
    seen.data = now();
  });
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  (socket as unknown as { write: (...args: unknown[]) => boolean }).write = (...args) => {
    seen.write = now();
    return write(...args);
  };
  return seen;
}

const ready = (client: Redis): Promise<void> => new Promise((resolve) => client.once('ready', () => resolve()));
const ourClient = new Redis(url, { connectionName: 'segments-store' });
const bullClient = new Redis(url, { maxRetriesPerRequest: null, connectionName: 'segments-bull' });
const admin = new Redis(url);
await Promise.all([ready(ourClient), ready(bullClient)]);
const store = new RedisStore({ redis: ourClient, keyPrefix: `segments:${run}:` });
const queue = new Queue('segments', { connection: bullClient, prefix: `segments-bull-${run}` });

let upgrades = 0;
const openTracker = (): Promise<ProgressTracker> => openBenchTracker(store, `u${++upgrades}`);
// BullMQ's payload: one of our events (the same bytes and information), as in index.ts.
const probe = await openTracker();
const sample = JSON.parse(JSON.stringify(await probe.updateTaskProgress('t1', 50, 'Progress: 50%'))) as Record<string, unknown>;

async function redisCounters(): Promise<{ calls: number; usec: number; cpu: number }> {
  const [stats, seconds] = await Promise.all([commandStats(admin), redisCpuSeconds(admin)]);
  const evalsha = stats.get('evalsha');
  return { calls: evalsha?.calls ?? 0, usec: evalsha?.usec ?? 0, cpu: seconds * 1e6 };
}

interface Parts {
  toWrite: number[];
  roundTrip: number[];
  toResume: number[];
  scriptUs: number;
  redisCpuUs: number;
  calls: number;
}
const parts = (): Parts => ({ toWrite: [], roundTrip: [], toResume: [], scriptUs: 0, redisCpuUs: 0, calls: 0 });
const results = { tracker: parts(), bull: parts() };
const sockets = { tracker: watchSocket(ourClient), bull: watchSocket(bullClient) };

for (let round = 0; round < ROUNDS; round++) {
  const tracker = await openTracker();
  const job = await queue.add('upgrade', { cluster: 'bench' });
  const call = {
    tracker: (i: number) => tracker.updateTaskProgress(`t${i % 10}`, i % 100, 'step'),
    bull: (i: number) => job.updateProgress({ ...sample, seq: i, percentage: i % 100 }),
  };
  for (const who of round % 2 ? (['bull', 'tracker'] as const) : (['tracker', 'bull'] as const)) {
    const out = results[who];
    const seen = sockets[who];
    const before = await redisCounters();
    for (let i = 0; i < N; i++) {
      const start = now();
      await call[who](i);
      const resumed = now();
      if (i < 100) continue;
      out.toWrite.push(seen.write - start);
      out.roundTrip.push(seen.data - seen.write);
      out.toResume.push(resumed - seen.data);
    }
    const after = await redisCounters();
    out.scriptUs += after.usec - before.usec;
    out.redisCpuUs += after.cpu - before.cpu;
    out.calls += after.calls - before.calls;
  }
  await tracker.close();
}

const trimmedMean = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const middle = sorted.slice(Math.floor(sorted.length / 10), Math.ceil((sorted.length * 9) / 10));
  return (middle.reduce((sum, x) => sum + x, 0) / middle.length) * 1000;
};
const rows = Object.entries(results).map(([who, p]) => {
  const [toWrite, roundTrip, toResume] = [trimmedMean(p.toWrite), trimmedMean(p.roundTrip), trimmedMean(p.toResume)];
  return { who, toWrite, roundTrip, toResume, total: toWrite + roundTrip + toResume, script: p.scriptUs / p.calls, redisCpu: p.redisCpuUs / p.calls };
});
console.log(`one awaited call at a time, ${ROUNDS} alternating rounds of ${N} calls each, on ${url} (us per call)`);
console.log('part'.padEnd(18) + rows.map((r) => r.who.padStart(10)).join('') + 'difference'.padStart(12));
for (const [label, key] of [
  ['call -> write', 'toWrite'],
  ['write -> reply', 'roundTrip'],
  ['reply -> resume', 'toResume'],
  ['sum', 'total'],
  ['script (Redis)', 'script'],
  ['redis cpu', 'redisCpu'],
] as const) {
  const [ours, bull] = rows.map((r) => r[key]);
  console.log(label.padEnd(18) + rows.map((r) => r[key].toFixed(2).padStart(10)).join('') + (ours! - bull!).toFixed(2).padStart(12));
}

await probe.close();
await store.close();
for (const key of await admin.keys(`segments:${run}:*`)) await admin.del(key);
await queue.obliterate({ force: true }).catch(() => {});
await queue.close();
await Promise.all([ourClient.quit(), bullClient.quit()]);
await admin.quit();
