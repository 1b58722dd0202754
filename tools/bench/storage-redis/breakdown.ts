// Where the sequential path's time goes: each layer, one awaited call at a time, finely interleaved
// (ROUNDS rounds of CHUNK calls per contender, the order reversed every other round) so that the
// machine's drifting background load weighs on all alike. Per contender: mean us per call, its
// rate against BullMQ's (ratio of the totals, and the median of the per-round ratios), and this
// process's CPU per call (user, system).
//   bull         BullMQ job.updateProgress (one EVALSHA)
//   script       our append script through plain ioredis evalsha, arguments prebuilt: Redis' work and the bytes
//   store        RedisStore.append of prebuilt events: adds the store's client work
//   tracker      ProgressTracker.updateTaskProgress on RedisStore: adds core's work (what index.ts measures)
//   core+script  the tracker on a store that acknowledges at once, then one `script` round trip:
//                core's cost between round trips, without the store
// (The what-if scripts this tool measured until 2026-11-28 are rows of instructions.ts now, which
// counts Redis' instructions: a difference of a few percent is lost in this tool's timing noise.)
// Run on a private Redis: redis-server --port 6390 --save '' --daemonize yes
//   REDIS_URL=redis://127.0.0.1:6390 npx tsx --conditions=@progress/source tools/bench/storage-redis/breakdown.ts
// ONLY=bull,tracker picks contenders (bull always runs: it is the yardstick).
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { RedisStore } from '../../../packages/storage-redis/src/index.js';
import { APPEND_LUA, pushAppendArgs } from '../../../packages/storage-redis/src/scripts.js';
import { openBenchTracker } from '../core/bench-tracker.js';
import { instantStore } from '../core/instant-store.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ROUNDS = Number(process.env.ROUNDS ?? 30);
const CHUNK = Number(process.env.CHUNK ?? 400);
const run = randomUUID().slice(0, 8);
const prefix = `breakdown:${run}:`;
const r = new Redis(url);

// Shared setup: a tracker on RedisStore with 10 tasks, one of its events as the sample payload.
const store = new RedisStore({ url, keyPrefix: prefix });
const tracker = await openBenchTracker(store, 'u0');
const sample = JSON.parse(JSON.stringify(await tracker.updateTaskProgress('t1', 50, 'Progress: 50%'))) as Record<string, unknown>;
const sampleJson = JSON.stringify(sample);

// A tracker whose store acknowledges at once (setup goes to a MemoryStore).
const instant = instantStore();
const coreOnly = await openBenchTracker(instant, 'c0');

const appendSha = (await r.script('LOAD', APPEND_LUA)) as string;
const deadline = String(Date.now() + 3_600_000);
let upgrades = 0;
/** One awaited script call per event, arguments as RedisStore sends them. */
const scriptCalls = (sha: string) => {
  const id = `${prefix}{s${++upgrades}}`;
  let seq = 0;
  return async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++, seq++) {
      const args = [`${id}:events`, `${id}:meta`, `${prefix}feed`];
      pushAppendArgs(args, 1, seq, 1, '', id, `${seq + 1}|12.5|2026-11-28T14:00:00.000Z`, `e${seq}`);
      args[3] = deadline;
      await r.evalsha(sha, 3, ...args, `[${sampleJson}]`);
    }
  };
};

const bullConnection = new Redis(url, { maxRetriesPerRequest: null });
const queue = new Queue('breakdown', { connection: bullConnection, prefix: `breakdown-bull-${run}` });
const job = await queue.add('x', {});
const storeState = { ...(tracker.progress as object), upgradeId: 'sd', lastSeq: 0 } as { lastSeq: number } & Record<string, unknown>;
let storeSeq = 0;
const rawScript = scriptCalls(appendSha);
const contenders: Record<string, (n: number) => Promise<void>> = {
  bull: async (n) => {
    for (let i = 0; i < n; i++) await job.updateProgress({ ...sample, seq: i });
  },
  script: rawScript,
  store: async (n) => {
    for (let i = 0; i < n; i++, storeSeq++) {
      storeState.lastSeq = storeSeq + 1;
      await store.append('sd', [{ ...sample, upgradeId: 'sd', seq: storeSeq + 1, eventId: `e${storeSeq}` } as never], storeSeq, storeState as never);
    }
  },
  tracker: async (n) => {
    for (let i = 0; i < n; i++) await tracker.updateTaskProgress(`t${i % 10}`, i % 100, 'step');
  },
  'core+script': async (n) => {
    for (let i = 0; i < n; i++) {
      await coreOnly.updateTaskProgress(`t${i % 10}`, i % 100, 'step');
      await rawScript(1);
    }
  },
};
const only = process.env.ONLY?.split(',');
const names = Object.keys(contenders).filter((name) => name === 'bull' || !only || only.includes(name));

const wall: Record<string, number[]> = {};
const user: Record<string, number[]> = {};
const system: Record<string, number[]> = {};
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 ? [...names].reverse() : names;
  for (const name of order) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await contenders[name]!(CHUNK);
    (wall[name] ??= []).push(((performance.now() - t0) * 1000) / CHUNK);
    const cpu = process.cpuUsage(cpu0);
    (user[name] ??= []).push(cpu.user / CHUNK);
    (system[name] ??= []).push(cpu.system / CHUNK);
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
console.log(`sequential, one awaited call at a time: ${ROUNDS} rounds x ${CHUNK} calls per contender, on ${url}`);
console.log(`${'contender'.padEnd(14)} ${'us/call'.padStart(8)} ${'rate/BullMQ'.padStart(12)} ${'(median)'.padStart(9)} ${'cpu user'.padStart(9)} ${'cpu sys'.padStart(8)}`);
const cell = (value: number, digits: number, width: number): string => value.toFixed(digits).padStart(width);
for (const name of names) {
  const ratios = wall[name]!.map((us, i) => wall.bull![i]! / us);
  const total = sum(wall[name]!);
  console.log(
    `${name.padEnd(14)} ${cell(total / ROUNDS, 1, 8)} ${cell(sum(wall.bull!) / total, 3, 12)} ${cell(median(ratios), 3, 9)} ${cell(median(user[name]!), 1, 9)} ${cell(median(system[name]!), 1, 8)}`
  );
}

await tracker.close();
await coreOnly.close();
await store.close();
await queue.obliterate({ force: true }).catch(() => {});
await queue.close();
await bullConnection.quit();
for (const key of await r.keys(`${prefix}*`)) await r.del(key);
await r.quit();
