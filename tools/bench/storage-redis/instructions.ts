// Redis' instructions per call (valgrind's callgrind counts them), for the tracker's sequential path,
// for BullMQ's job.updateProgress and for variants of the append script. Unlike every timing on this
// shared 2-core machine, the count repeats within about half a percent from run to run, so it can
// tell a change of 1-2% in Redis' work per call; a timing cannot (see README.md). Instructions are
// not time: Redis' CPU per call also holds its read, write and epoll syscalls (the same for
// everybody, and most of it on this machine), and the client's work is not counted at all.
//
// It starts its own redis-server under callgrind on a free port (so it needs valgrind: `apt-get
// install valgrind`), and stops it at the end. Then, per row: 200 calls to warm up, the counters
// zeroed (callgrind_control -z), N calls (default 2000), the counters dumped, and instructions / N.
//   npx tsx --conditions=@progress/source tools/bench/storage-redis/instructions.ts
//
// Rows:
//   BullMQ                 job.updateProgress with one of our events as its payload (the yardstick)
//   tracker                ProgressTracker.updateTaskProgress on RedisStore (10 tasks), as index.ts
//                          runs it: the shipped script with everything the store sends (snapshots,
//                          list rows, feed trims)
//   script                 the shipped append script with prebuilt arguments: one event, a deadline,
//                          the feed key (what the tracker sends on most calls)
//   script, cluster mode   the same in cluster mode: no feed key, the deadline checked with TIME
//   script via FCALL       the same script as a Redis 7 function (FUNCTION LOAD, then FCALL)
//   what-if rows           scripts that are not shipped, called with the same arguments; they skip
//                          what the shipped one does besides the common path (retries, conflicts,
//                          retention), so only their common path counts:
//     common path only     HGET lastSeq, the feed XADD and the deadline check, XADD, HSET
//     no feed              no feed entry and no deadline check (what watchAll() and the deadline cost)
//     no feed, TIME        no feed entry; the deadline checked with TIME (the feed id gives the clock today)
//     no feed, TIME as text  the same, TIME's seconds compared with the deadline's as text (its
//                          microseconds converted only within the deadline's second)
//     return 1             a script that does nothing, called with these arguments
//     return 1, 5 args     the same with BullMQ's count of arguments (3 keys, 2 values): what
//                          Redis pays per argument before a script runs
//   what-if designs        scripts that take other arguments (one event each, as above):
//     lease clock          the deadline as a key the store would keep set to expire at it (EXISTS
//                          instead of the feed entry's id or TIME), no feed entry
//     lease, feed on demand  the same, and the feed written only while it exists (a watchAll()
//                          would create it and keep it alive); measured with no feed
import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { RedisStore } from '../../../packages/storage-redis/src/index.js';
import { APPEND_LUA, pushAppendArgs } from '../../../packages/storage-redis/src/scripts.js';
import { openBenchTracker } from '../core/bench-tracker.js';

const N = Number(process.env.N ?? 2000);
const WARM = 200;
const run = randomUUID().slice(0, 8);
const exec = promisify(execFile);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

try {
  await exec('valgrind', ['--version']);
} catch {
  console.error('instructions.ts needs valgrind (callgrind): apt-get install valgrind');
  process.exit(2);
}
const dir = await mkdtemp(join(tmpdir(), 'progress-instructions-'));
const port = await freePort();
const valgrind = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${join(dir, 'cg.out')}`, 'redis-server', '--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
const url = `redis://127.0.0.1:${port}`;
const r = new Redis(url, { lazyConnect: true, retryStrategy: () => 200, maxRetriesPerRequest: null });
// Refused connections while valgrind starts Redis, and after the shutdown at the end, are expected.
r.on('error', () => {});
const started = Date.now();
for (;;) {
  try {
    await r.connect();
    await r.ping();
    break;
  } catch (err) {
    if (valgrind.exitCode !== null || Date.now() - started > 60_000) throw new Error(`redis-server under callgrind did not answer on port ${port}`, { cause: err });
    r.disconnect();
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

let dumps = 0;
/** Zeroes Redis' counters, runs `calls` N times, and returns Redis' instructions per call. */
async function measure(label: string, call: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < WARM; i++) await call();
  await exec('callgrind_control', ['-z', String(valgrind.pid)]);
  for (let i = 0; i < N; i++) await call();
  await exec('callgrind_control', ['-d', label.replace(/\W+/g, '_'), String(valgrind.pid)]);
  dumps++;
  const name = (await readdir(dir)).find((f) => f.endsWith(`.${dumps}`));
  if (!name) throw new Error(`no callgrind dump ${dumps} in ${dir}`);
  const summary = /^summary: (\d+)$/m.exec(await readFile(join(dir, name), 'utf8'));
  if (!summary) throw new Error(`callgrind dump ${name} has no summary line`);
  return Number(summary[1]) / N;
}

// The common path of the shipped script, and what-ifs that leave parts of it out. The same
// arguments as the shipped script (see APPEND_LUA); no retry, conflict or retention handling.
const HEAD = `local rcall = redis.call
if rcall('HGET', KEYS[2], 'lastSeq') ~= ARGV[3] then return {0} end`;
const TAIL = `rcall('XADD', KEYS[1], '0-' .. ARGV[4], 'b', ARGV[8])
rcall('HSET', KEYS[2], 'lastSeq', ARGV[4], 'fast', ARGV[5])
return 1`;
const WHAT_IFS: Record<string, string> = {
  'what-if: common path only': `${HEAD}
local id = rcall('XADD', KEYS[3], '*', 'p', ARGV[6])
if string.byte(id, 14) ~= 45 or id > ARGV[1] then return {-1} end
${TAIL}`,
  'what-if: no feed': `${HEAD}
${TAIL}`,
  'what-if: no feed, TIME': `${HEAD}
local t = rcall('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[1]) then return {-1} end
${TAIL}`,
  'what-if: no feed, TIME as text': `${HEAD}
local t = rcall('TIME')
local s = string.sub(ARGV[1], 1, 10)
if t[1] >= s and (t[1] > s or tonumber(t[2]) >= tonumber(string.sub(ARGV[1], 11)) * 1000) then return {-1} end
${TAIL}`,
  'what-if: return 1': 'return 1',
};

// Designs not shipped, whose arguments differ from the shipped script's: [lua, keys and arguments
// for upgrade `id` at seq `seq`]. They count what the common path of each would cost Redis.
const DESIGNS: Record<string, [string, (id: string, seq: number) => string[]]> = {
  'what-if design: lease clock, no feed': [
    `local rcall = redis.call
if rcall('HGET', KEYS[2], 'lastSeq') ~= ARGV[1] then return {0} end
if rcall('EXISTS', KEYS[3]) == 0 then return {-1} end
rcall('XADD', KEYS[1], '0-' .. ARGV[2], 'b', ARGV[5])
rcall('HSET', KEYS[2], 'lastSeq', ARGV[2], 'fast', ARGV[3])
return 1`,
    (id, seq) => ['3', `${id}:events`, `${id}:meta`, `instructions:${run}:lease`, String(seq), String(seq + 1), `${seq + 1}|12.5|2026-11-28T14:00:00.000Z`, `${id}|e${seq}`, `[${event}]`],
  ],
  'what-if design: lease, feed on demand': [
    `local rcall = redis.call
if rcall('HGET', KEYS[2], 'lastSeq') ~= ARGV[1] then return {0} end
-- The lease counted twice: 2 or 3 = in time, 1 or 3 = a feed to write.
local n = rcall('EXISTS', KEYS[3], KEYS[3], KEYS[4])
if n < 2 then return {-1} end
if n == 3 then rcall('XADD', KEYS[4], '*', 'p', ARGV[4]) end
rcall('XADD', KEYS[1], '0-' .. ARGV[2], 'b', ARGV[6])
rcall('HSET', KEYS[2], 'lastSeq', ARGV[2], 'fast', ARGV[3])
return 1`,
    (id, seq) => ['4', `${id}:events`, `${id}:meta`, `instructions:${run}:lease`, `instructions:${run}:no-feed`, String(seq), String(seq + 1), `${seq + 1}|12.5|2026-11-28T14:00:00.000Z`, `${seq + 1}|1|${id}`, `${id}|e${seq}`, `[${event}]`],
  ],
};

const event = JSON.stringify({ eventId: randomUUID(), seq: 1, upgradeId: 'u1', type: 'task.progress', timestamp: '2026-11-28T14:00:00.000Z', status: 'in_progress', message: 'step', details: {}, taskId: 't1', taskType: 'upgrade_step', percentage: 50 });
let upgrades = 0;
/** One awaited append script call per event, its arguments as RedisStore sends them. */
function scriptCalls(send: (args: string[]) => Promise<unknown>, cluster = false): () => Promise<unknown> {
  const id = `instructions:${run}:{s${++upgrades}}`;
  const keys = cluster ? [`${id}:events`, `${id}:meta`] : [`${id}:events`, `${id}:meta`, `instructions:${run}:feed`];
  let seq = 0;
  return async () => {
    const args = [...keys];
    const deadlineAt = args.length;
    pushAppendArgs(args, cluster ? 0 : 1, seq, 1, '', id, `${seq + 1}|12.5|2026-11-28T14:00:00.000Z`, `e${seq}`);
    args[deadlineAt] = String(Date.now() + 10_000);
    args.push(`[${event}]`);
    const reply = await send(args);
    // The what-ifs need lastSeq to start at 0 (the shipped script writes it on its first append).
    if (reply !== 1) throw new Error(`append script replied ${JSON.stringify(reply)}`);
    // Cluster mode: the store takes the first append's `unfed` mark out once its feed entry is
    // written (UNMARK_LUA); without that, every later append would answer {3, epoch}.
    if (cluster && seq === 0) await r.hset(`${id}:meta`, 'unfed', '0');
    seq++;
  };
}

const results: Array<[string, number]> = [];
const bullConnection = new Redis(url, { maxRetriesPerRequest: null });
const queue = new Queue('instructions', { connection: bullConnection, prefix: `instructions-bull-${run}` });
const store = new RedisStore({ url, keyPrefix: `instructions:${run}:` });
try {
  const tracker = await openBenchTracker(store, 'u0');
  const sample = JSON.parse(JSON.stringify(await tracker.updateTaskProgress('t1', 50, 'Progress: 50%'))) as Record<string, unknown>;
  const job = await queue.add('x', {});
  let i = 0;
  results.push(['BullMQ job.updateProgress', await measure('bull', () => job.updateProgress({ ...sample, seq: i++ }))]);
  let t = 0;
  results.push(['tracker.updateTaskProgress on RedisStore', await measure('tracker', () => tracker.updateTaskProgress(`t${t % 10}`, t++ % 100, 'step'))]);
  const sha = (await r.script('LOAD', APPEND_LUA)) as string;
  results.push(['append script, prebuilt arguments', await measure('script', scriptCalls((args) => r.evalsha(sha, 3, ...args)))]);
  results.push(['append script, cluster mode (TIME)', await measure('script cluster', scriptCalls((args) => r.evalsha(sha, 2, ...args), true))]);
  const library = `progress_instructions_${run}`;
  await r.call('FUNCTION', 'LOAD', `#!lua name=${library}\nredis.register_function('${library}_append', function(KEYS, ARGV)\n${APPEND_LUA}\nend)`);
  results.push(['append script via FCALL', await measure('fcall', scriptCalls((args) => r.call('FCALL', `${library}_append`, 3, ...args)))]);
  for (const [name, lua] of Object.entries(WHAT_IFS)) {
    const whatIf = (await r.script('LOAD', lua)) as string;
    const calls = scriptCalls((args) => r.evalsha(whatIf, 3, ...args));
    // Seed lastSeq = 0 for the what-ifs that check it, which never write the first append's meta.
    await r.hset(`instructions:${run}:{s${upgrades}}:meta`, 'lastSeq', '0');
    results.push([name, await measure(name, calls)]);
  }
  const returnOne = (await r.script('LOAD', 'return 1')) as string;
  results.push(['what-if: return 1, 5 args', await measure('return 1, 5 args', () => r.evalsha(returnOne, 3, 'k1', 'k2', 'k3', '1', `[${event}]`))]);
  await r.set(`instructions:${run}:lease`, '1');
  for (const [name, [lua, argsFor]] of Object.entries(DESIGNS)) {
    const sha = (await r.script('LOAD', lua)) as string;
    const id = `instructions:${run}:{d${++upgrades}}`;
    await r.hset(`${id}:meta`, 'lastSeq', '0');
    let seq = 0;
    results.push([
      name,
      await measure(name, async () => {
        const reply = await r.evalsha(sha, ...(argsFor(id, seq) as [string, ...string[]]));
        if (reply !== 1) throw new Error(`${name} replied ${JSON.stringify(reply)}`);
        seq++;
      }),
    ]);
  }
} finally {
  await queue.close().catch(() => {});
  bullConnection.disconnect();
  await store.close().catch(() => {});
  await r.shutdown('NOSAVE').catch(() => {});
  r.disconnect();
  await new Promise((resolve) => (valgrind.exitCode !== null ? resolve(undefined) : valgrind.once('exit', resolve)));
  await rm(dir, { recursive: true, force: true });
}

const bull = results[0]![1];
console.log(`Redis' instructions per call (callgrind), ${N} calls per row after ${WARM} to warm up`);
console.log(`${'row'.padEnd(42)} ${'instructions'.padStart(12)} ${'vs BullMQ'.padStart(10)}`);
for (const [name, n] of results) console.log(`${name.padEnd(42)} ${Math.round(n).toLocaleString('en-US').padStart(12)} ${`${n >= bull ? '+' : ''}${(((n - bull) / bull) * 100).toFixed(1)}%`.padStart(10)}`);
