// Where the burst path's time goes: bursts of 100 concurrent tracker commands (awaited together, as
// index.ts's burst row), layer by layer, finely interleaved (ROUNDS rounds of BURSTS bursts per
// contender, the order reversed every other round). Per contender: mean us per event, its rate
// against BullMQ's bursts (ratio of the totals, and the median of the per-round ratios), and this
// process's CPU per event (user, system).
//   bull        BullMQ job.updateProgress, 100 at once (ioredis pipelines them: 100 EVALSHAs in one write)
//   core        the tracker on a store that acknowledges at once: core's own work, no I/O
//   core+ping   the same store answering each append after one PING round trip: core between round trips
//   core+json   also the batch's JSON made (eventsToJson) before the PING: the serializer, cold
//   core+xadd   the JSON sent as one plain XADD instead of the PING: the bytes over the socket and into
//               a stream, with no script
//   tracker     the tracker on RedisStore (what index.ts measures): adds the append script (the seq
//               check, the feed entry, the row) and the store's own client work
//   no-snap     the same with snapshots off (snapshotEvery 1e9): what the snapshot every 1,000 events
//               costs (JSON.stringify of a ~53 KB state, and its trip through the script's arguments)
// Run on a private Redis: redis-server --port 6390 --save '' --daemonize yes
//   REDIS_URL=redis://127.0.0.1:6390 npx tsx --conditions=@progress/source tools/bench/storage-redis/burst-layers.ts
import { randomUUID } from 'node:crypto';
import { eventsToJson, type ProgressStore, type ProgressTracker } from '@progress/core';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { RedisStore } from '../../../packages/storage-redis/src/index.js';
import { openBenchTracker } from '../core/bench-tracker.js';
import { instantStore } from '../core/instant-store.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ROUNDS = Number(process.env.ROUNDS ?? 20);
const BURSTS = Number(process.env.BURSTS ?? 20);
const run = randomUUID().slice(0, 8);
const prefix = `burst-layers:${run}:`;
const r = new Redis(url);

let xaddSeq = 0;
const stores: Record<string, ProgressStore> = {
  core: instantStore(),
  'core+ping': instantStore(3, () => r.ping()),
  'core+json': instantStore(3, (events) => {
    eventsToJson(events);
    return r.ping();
  }),
  'core+xadd': instantStore(3, (events) => r.xadd(`${prefix}xadd`, `0-${++xaddSeq}`, 'b', eventsToJson(events))),
  tracker: new RedisStore({ url, keyPrefix: prefix }),
  'no-snap': new RedisStore({ url, keyPrefix: `${prefix}n:`, snapshotEvery: 1e9 }),
};
const trackers: Record<string, ProgressTracker> = {};
for (const [name, store] of Object.entries(stores)) trackers[name] = await openBenchTracker(store, `u-${name.replace('+', '-')}`);
const sample = JSON.parse(JSON.stringify(await trackers.tracker!.updateTaskProgress('t1', 50, 'Progress: 50%'))) as Record<string, unknown>;

const bullConnection = new Redis(url, { maxRetriesPerRequest: null });
const queue = new Queue('burst-layers', { connection: bullConnection, prefix: `burst-layers-bull-${run}` });
const job = await queue.add('x', {});

const bursts = (command: (i: number) => Promise<unknown>) => async (): Promise<void> => {
  for (let b = 0; b < BURSTS; b++) {
    const burst: Array<Promise<unknown>> = [];
    for (let i = 0; i < 100; i++) burst.push(command(i));
    await Promise.all(burst);
  }
};
const contenders: Record<string, () => Promise<void>> = { bull: bursts((i) => job.updateProgress({ ...sample, seq: i, percentage: i % 100 })) };
for (const [name, tracker] of Object.entries(trackers)) contenders[name] = bursts((i) => tracker.updateTaskProgress(`t${i % 10}`, i, 'step'));

const names = Object.keys(contenders);
const events = BURSTS * 100;
const wall: Record<string, number[]> = {};
const user: Record<string, number[]> = {};
const system: Record<string, number[]> = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const name of round % 2 ? [...names].reverse() : names) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await contenders[name]!();
    (wall[name] ??= []).push(((performance.now() - t0) * 1000) / events);
    const cpu = process.cpuUsage(cpu0);
    (user[name] ??= []).push(cpu.user / events);
    (system[name] ??= []).push(cpu.system / events);
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
console.log(`bursts of 100 commands awaited together: ${ROUNDS} rounds x ${BURSTS} bursts per contender, on ${url}`);
console.log(`${'contender'.padEnd(10)} ${'us/event'.padStart(9)} ${'rate/BullMQ'.padStart(12)} ${'(median)'.padStart(9)} ${'cpu user'.padStart(9)} ${'cpu sys'.padStart(8)}`);
const cell = (value: number, digits: number, width: number): string => value.toFixed(digits).padStart(width);
for (const name of names) {
  const ratios = wall[name]!.map((us, i) => wall.bull![i]! / us);
  const total = sum(wall[name]!);
  console.log(
    `${name.padEnd(10)} ${cell(total / ROUNDS, 2, 9)} ${cell(sum(wall.bull!) / total, 2, 12)} ${cell(median(ratios), 2, 9)} ${cell(median(user[name]!), 2, 9)} ${cell(median(system[name]!), 2, 8)}`,
  );
}

for (const tracker of Object.values(trackers)) await tracker.close();
for (const store of Object.values(stores)) await store.close();
await queue.obliterate({ force: true }).catch(() => {});
await queue.close();
await bullConnection.quit();
for (const key of await r.keys(`${prefix}*`)) await r.del(key);
await r.quit();
