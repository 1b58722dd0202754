// The append script called in other forms than the shipped one, beside BullMQ, on the sequential
// path (one awaited call at a time, one event, arguments prebuilt: no tracker or store work):
//   evalsha packed     what RedisStore sends: EVALSHA, the small values packed in one head string
//   evalsha unpacked   the same script reading them as separate arguments (no pattern match)
//   fcall unpacked     that script as a Redis 7 function (FUNCTION LOAD, then FCALL)
// Per form: the round trip, its rate against BullMQ's, and Redis' CPU per call (INFO cpu, which also
// counts reading the request: more arguments cost there). Alternating rounds, the order reversed
// every other round. The unpacked forms are not shipped (see README.md, "Finding where the time goes").
// Use a private Redis (it loads and deletes a function library):
//   redis-server --port 6390 --save '' --appendonly no --daemonize yes
//   REDIS_URL=redis://127.0.0.1:6390 npx tsx --conditions=@progress/source tools/bench/storage-redis/call-forms.ts
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { APPEND_LUA, appendHead } from '../../../packages/storage-redis/src/scripts.js';
import { redisCpuSeconds } from './redis-stats.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6390';
const ROUNDS = Number(process.env.ROUNDS ?? 30);
const CHUNK = Number(process.env.CHUNK ?? 400);
const r = new Redis(url);
const run = randomUUID().slice(0, 8);
const library = `progress_call_forms_${run.replace(/-/g, '')}`;

/** Replaces `from` by `to` in `text`, and fails when the shipped script no longer holds `from`. */
const swap = (text: string, from: string, to: string): string => {
  if (!text.includes(from)) throw new Error(`call-forms.ts: the append script changed (no ${JSON.stringify(from)}); update this bench`);
  return text.replace(from, to);
};
// The shipped script reading ARGV 1-7 as deadline, flags, expectedSeq, newLastSeq, fast, feed, rest
// instead of one head; the batch, row and snapshot move to ARGV 8-10.
let unpacked = APPEND_LUA.slice(0, APPEND_LUA.indexOf('local head = ARGV[1]'));
unpacked += 'local deadline, flags, expectedText, newLast, fast, feed, restArg = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]\n';
unpacked += APPEND_LUA.slice(APPEND_LUA.indexOf('local feedKey, indexKey, snapKey'));
unpacked = swap(unpacked, "redis.pcall('XADD', events, '0-' .. newLast, 'b', ARGV[2])", "redis.pcall('XADD', events, '0-' .. newLast, 'b', ARGV[8])");
unpacked = swap(unpacked, 'local row = ARGV[3]', 'local row = ARGV[9]');
unpacked = swap(unpacked, "redis.call('SET', snapKey, ARGV[4])", "redis.call('SET', snapKey, ARGV[10])");
unpacked = swap(unpacked, 'local rest = string.sub(head, restAt)', 'local rest = restArg');
unpacked = swap(unpacked, 'local feed = string.sub(head, feedAt, restAt - 1)', '');
await r.call('FUNCTION', 'LOAD', `#!lua name=${library}\nredis.register_function('${library}_append', function(KEYS, ARGV)\n${unpacked}\nend)`);
const packedSha = (await r.script('LOAD', APPEND_LUA)) as string;
const unpackedSha = (await r.script('LOAD', unpacked)) as string;

const event = JSON.stringify({ eventId: randomUUID(), seq: 1, upgradeId: 'u1', type: 'task.progress', timestamp: '2026-11-28T14:00:00.000Z', status: 'in_progress', message: 'step', details: {}, taskId: 't1', taskType: 'upgrade_step', percentage: 50 });
let upgrades = 0;
const form = (kind: 'evalsha packed' | 'evalsha unpacked' | 'fcall unpacked') => {
  const id = `call-forms:${run}:{u${++upgrades}}`;
  const keys = [`${id}:events`, `${id}:meta`, `call-forms:${run}:feed`];
  let seq = 0;
  return async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++, seq++) {
      // A deadline 10 s ahead, as the store sends (its clock offset is ~0 on loopback).
      const deadline = String(Date.now() + 10_000);
      const fast = `${seq + 1}|12.5|2026-11-28T14:00:00.000Z`;
      if (kind === 'evalsha packed') {
        await r.evalsha(packedSha, 3, ...keys, `${deadline}${appendHead(1, seq, 1, '', id, fast, `e${seq}`)}`, `[${event}]`);
        continue;
      }
      const args = [deadline, '1', String(seq), String(seq + 1), fast, `${seq + 1}|1|${id}`, `${id}|e${seq}`, `[${event}]`];
      if (kind === 'evalsha unpacked') await r.evalsha(unpackedSha, 3, ...keys, ...args);
      else await r.call('FCALL', `${library}_append`, 3, ...keys, ...args);
    }
  };
};
const bullConnection = new Redis(url, { maxRetriesPerRequest: null });
const queue = new Queue('call-forms', { connection: bullConnection, prefix: `call-forms-bull-${run}` });
const job = await queue.add('x', {});
const sample = JSON.parse(event) as Record<string, unknown>;
const contenders: Record<string, (n: number) => Promise<void>> = {
  bull: async (n) => {
    for (let i = 0; i < n; i++) await job.updateProgress({ ...sample, seq: i });
  },
  'evalsha packed': form('evalsha packed'),
  'evalsha unpacked': form('evalsha unpacked'),
  'fcall unpacked': form('fcall unpacked'),
};
const redisCpuUs = async (): Promise<number> => (await redisCpuSeconds(r)) * 1e6;
const names = Object.keys(contenders);
const wall: Record<string, number> = {};
const cpu: Record<string, number> = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const name of round % 2 ? [...names].reverse() : names) {
    const cpu0 = await redisCpuUs();
    const t0 = performance.now();
    await contenders[name]!(CHUNK);
    wall[name] = (wall[name] ?? 0) + (performance.now() - t0) * 1000;
    cpu[name] = (cpu[name] ?? 0) + (await redisCpuUs()) - cpu0;
  }
}
const calls = ROUNDS * CHUNK;
console.log(`sequential, one awaited call at a time: ${ROUNDS} rounds x ${CHUNK} calls per form, on ${url}`);
console.log(`${'form'.padEnd(18)} ${'us/call'.padStart(8)} ${'rate/BullMQ'.padStart(12)} ${'redis cpu us/call'.padStart(18)}`);
for (const name of names) {
  console.log(`${name.padEnd(18)} ${(wall[name]! / calls).toFixed(1).padStart(8)} ${(wall.bull! / wall[name]!).toFixed(3).padStart(12)} ${(cpu[name]! / calls).toFixed(1).padStart(18)}`);
}
await queue.obliterate({ force: true }).catch(() => {});
await queue.close();
await bullConnection.quit();
for (const key of await r.keys(`call-forms:${run}:*`)) await r.del(key);
await r.call('FUNCTION', 'DELETE', library);
await r.quit();
