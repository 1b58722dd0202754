// Benchmark of @progress/storage-redis beside BullMQ and the raw ioredis ceiling, in one run on the
// same Redis. Run from the repository root:
//   npx tsx --conditions=@progress/source tools/bench/storage-redis/index.ts
// REDIS_URL picks the Redis (default redis://127.0.0.1:6379). Exits 1 when a target is missed.
import { randomUUID } from 'node:crypto';
import { ProgressTracker } from '@progress/core';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { RedisStore } from '../../../packages/storage-redis/src/index.js';
import { openBenchTracker } from '../core/bench-tracker.js';
import { deleteKeysWith } from '../../test-utils/src/redis.js';
import { paced, startReader } from './reader-process.js';
import { ROUNDS, alternate, burstRound, fmt, median, pct, printRows, rate, sequentialRound, type Row } from './rounds.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const runId = randomUUID().slice(0, 8);
const keyPrefix = `bench:storage-redis:${runId}:`;
const bullPrefix = `bench-bull-${runId}`;
// Per round and contender, ROUNDS (rounds.ts) rounds alternating.
const SEQ = 1_000;
const BURSTS = 40;

const rows: Row[] = [];

// ------------------------------------------------------------------ tracker on RedisStore

const store = new RedisStore({ url, keyPrefix, connectionName: 'bench-store' });
let upgrades = 0;
const openTracker = (): Promise<ProgressTracker> => openBenchTracker(store, `u${++upgrades}`);

const trackerSequential = (): Promise<number> => sequentialRound(openTracker, SEQ);
const trackerBursts = (): Promise<number> => burstRound(openTracker, BURSTS);

// ------------------------------------------------------------------ BullMQ

const bullConnection = new Redis(url, { maxRetriesPerRequest: null });
const queue = new Queue('progress-bench', { connection: bullConnection, prefix: bullPrefix });

/** BullMQ carries the same information as our events: a progress event of the same shape and size. */
let sampleEvent: Record<string, unknown> = {};
const bullProgress = (i: number): Record<string, unknown> => ({ ...sampleEvent, seq: i, percentage: i % 100 });

async function bullSequential(): Promise<number> {
  const job = await queue.add('upgrade', { cluster: 'bench' });
  const start = performance.now();
  for (let i = 0; i < SEQ; i++) await job.updateProgress(bullProgress(i));
  return rate(SEQ, performance.now() - start);
}

async function bullBursts(): Promise<number> {
  const job = await queue.add('upgrade', { cluster: 'bench' });
  const start = performance.now();
  for (let b = 0; b < BURSTS; b++) {
    const burst: Array<Promise<unknown>> = [];
    for (let i = 0; i < 100; i++) burst.push(job.updateProgress(bullProgress(i)));
    await Promise.all(burst);
  }
  return rate(BURSTS * 100, performance.now() - start);
}

// ------------------------------------------------------------------ raw ceiling

const raw = new Redis(url);
async function rawPipelined(): Promise<number> {
  // The same bytes as a stored event: one JSON per XADD, pipelined 100 at a time.
  const sample = JSON.stringify(sampleEvent);
  const key = `${keyPrefix}raw-${randomUUID().slice(0, 4)}`;
  let seq = 0;
  const start = performance.now();
  for (let b = 0; b < BURSTS; b++) {
    const p = raw.pipeline();
    for (let i = 0; i < 100; i++) {
      seq++;
      p.xadd(key, `0-${seq}`, 'e', sample);
    }
    await p.exec();
  }
  return rate(BURSTS * 100, performance.now() - start);
}

async function rawBatched(): Promise<number> {
  // The layout the store now writes: one XADD per burst of 100, its field the JSON array of the events.
  const sample = JSON.stringify(sampleEvent);
  const batch = `[${Array.from({ length: 100 }, () => sample).join(',')}]`;
  const key = `${keyPrefix}rawb-${randomUUID().slice(0, 4)}`;
  const start = performance.now();
  for (let b = 0; b < BURSTS; b++) await raw.xadd(key, `0-${(b + 1) * 100}`, 'b', batch);
  return rate(BURSTS * 100, performance.now() - start);
}

// ------------------------------------------------------------------ latency to another process

const LATENCY_EVENTS = 3_000;
/**
 * Rounds of each latency row, the order reversed every other round, each with a reader process of
 * its own (its warm-up counted); the p99 is over the events of all rounds. One round each, ours
 * always first, left the row to whichever contender met the machine's stalls.
 */
const LATENCY_ROUNDS = 3;
let latencyRound = 0;

async function watchLatency(): Promise<number[]> {
  const upgradeId = `u-latency-${latencyRound++}`;
  const reader = startReader({ kind: 'watch', url, keyPrefix, upgradeId, count: LATENCY_EVENTS });
  await reader.ready;
  await new Promise((r) => setTimeout(r, 200));
  const tracker = await ProgressTracker.open({ upgradeId, planId: 'plan', clusterName: 'bench', store });
  await tracker.startUpgrade();
  await tracker.addTask('t1', 'Task 1');
  await paced(LATENCY_EVENTS, 1000, (t) => tracker.updateTaskProgress('t1', 50, 'step', { t }));
  const latencies = await reader.result;
  await tracker.close();
  return latencies;
}

async function bullLatency(): Promise<number[]> {
  const name = `progress-latency-${latencyRound++}`;
  const q = new Queue(name, { connection: bullConnection, prefix: bullPrefix });
  const reader = startReader({ kind: 'bullmq', url, queue: name, count: LATENCY_EVENTS, prefix: bullPrefix });
  await reader.ready;
  await new Promise((r) => setTimeout(r, 200));
  const job = await q.add('upgrade', {});
  await paced(LATENCY_EVENTS, 1000, (t) => job.updateProgress({ t }));
  const latencies = await reader.result;
  await q.close();
  return latencies;
}

// ------------------------------------------------------------------ run

async function cleanup(): Promise<void> {
  for (const prefix of [keyPrefix, `${bullPrefix}:`]) await deleteKeysWith(raw, prefix);
}

try {
  process.stderr.write(`storage-redis bench on ${url} (${ROUNDS} alternating rounds)\n`);
  if (!process.env.BENCH_SKIP_THROUGHPUT) {
    const probe = await openTracker();
    sampleEvent = JSON.parse(JSON.stringify(await probe.updateTaskProgress('t1', 50, 'Progress: 50%'))) as Record<string, unknown>;
    await probe.close();
    // Warm up the JIT on every path.
    await trackerBursts();
    await trackerSequential();
    await bullSequential();
    await bullBursts();
    const seq = await alternate({ 'RedisStore sequential': trackerSequential, 'BullMQ sequential': bullSequential });
    const bursts = await alternate({ 'RedisStore bursts of 100': trackerBursts, 'BullMQ bursts of 100': bullBursts, 'raw pipelined XADD': rawPipelined, 'raw XADD of 100': rawBatched });
    const [seqOurs, seqBull] = [seq['RedisStore sequential']!, seq['BullMQ sequential']!];
    const [burstOurs, burstBull, rawRate, rawBatchRate] = [bursts['RedisStore bursts of 100']!, bursts['BullMQ bursts of 100']!, bursts['raw pipelined XADD']!, bursts['raw XADD of 100']!];
    rows.push(
      { name: 'tracker on RedisStore, sequential awaited (events/s)', value: fmt(seqOurs), target: `>= BullMQ sequential (${fmt(seqBull)})`, result: seqOurs >= seqBull ? 'PASS' : 'FAIL' },
      { name: 'BullMQ job.updateProgress, sequential (events/s)', value: fmt(seqBull), target: '-', result: 'info' },
      { name: 'tracker on RedisStore, bursts of 100 (events/s)', value: fmt(burstOurs), target: `>= 3x BullMQ bursts (${fmt(3 * burstBull)})`, result: burstOurs >= 3 * burstBull ? 'PASS' : 'FAIL' },
      { name: 'BullMQ job.updateProgress, bursts of 100 (events/s)', value: fmt(burstBull), target: '-', result: 'info' },
      { name: 'raw ioredis pipelined XADD, one entry per event (events/s)', value: fmt(rawRate), target: '-', result: 'info' },
      { name: 'raw ioredis XADD, one entry per 100 events (events/s)', value: fmt(rawBatchRate), target: '-', result: 'info' },
    );
  }
  const ours: number[] = [];
  const bull: number[] = [];
  const perRound: string[] = [];
  for (let i = 0; i < LATENCY_ROUNDS; i++) {
    const [a, b] = i % 2 ? [bullLatency, watchLatency] : [watchLatency, bullLatency];
    const [first, second] = [await a(), await b()];
    const [o, q] = i % 2 ? [second, first] : [first, second];
    ours.push(...o);
    bull.push(...q);
    perRound.push(`${pct(o, 99).toFixed(2)} / ${pct(q, 99).toFixed(2)}`);
  }
  process.stderr.write(`  watch() / BullMQ p99 per round (ms): ${perRound.join(', ')}\n`);
  rows.push(
    { name: `watch() in another process at 1,000/s, median (ms)`, value: median(ours).toFixed(2), target: '-', result: 'info' },
    { name: `watch() in another process at 1,000/s, p99 (ms)`, value: pct(ours, 99).toFixed(2), target: '< 5', result: pct(ours, 99) < 5 ? 'PASS' : 'FAIL' },
    { name: `BullMQ QueueEvents 'progress' at 1,000/s, median (ms)`, value: median(bull).toFixed(2), target: '-', result: 'info' },
    { name: `BullMQ QueueEvents 'progress' at 1,000/s, p99 (ms)`, value: pct(bull, 99).toFixed(2), target: '-', result: 'info' },
  );
} finally {
  await store.close();
  await queue.close();
  await cleanup();
  await bullConnection.quit();
  await raw.quit();
}

printRows(rows);
