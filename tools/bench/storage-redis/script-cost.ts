// Redis' own cost of one append script call (INFO commandstats, usec per EVALSHA), beside a script
// doing what BullMQ's updateProgress does (EXISTS, HGET, HSET, XADD MAXLEN ~) and an empty one, on
// the sequential path (one call at a time, one event, a deadline 10 s ahead as the store sends).
// The "pieces" rows run the append script's common path cut short after each step (the head
// parsed; then HGET; then HSET; then the events XADD), to show what each step adds; the full script
// adds the feed XADD and the deadline check to the last of them. The "what-if" rows are common paths
// not shipped, measured to decide whether to build them (see README.md): the head packed with
// lengths (fewer captures) and the feed entry as one field; that plus lastSeq and the fast fields in
// one string key read and written by SET ... KEEPTTL GET (one command less). Client work does not
// count. Use a private Redis:
//   redis-server --port 6390 --save '' --daemonize yes
//   REDIS_URL=redis://127.0.0.1:6390 npx tsx --conditions=@progress/source tools/bench/storage-redis/script-cost.ts
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { APPEND_LUA, appendHead } from '../../../packages/storage-redis/src/scripts.js';
import { commandStats } from './redis-stats.js';

const r = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6390');
const run = `script-cost:${randomUUID().slice(0, 8)}`;
const event = JSON.stringify({ eventId: randomUUID(), seq: 1, upgradeId: 'u1', type: 'task.progress', timestamp: '2026-11-28T14:00:00.000Z', status: 'in_progress', message: 'step', details: {}, taskId: 't1', taskType: 'upgrade_step', percentage: 50 });
const scripts: Record<string, string> = {
  'append script (ours)': APPEND_LUA,
  'BullMQ-like: EXISTS, HGET, HSET, XADD MAXLEN ~': `redis.call('EXISTS', KEYS[2]) redis.call('HGET', KEYS[2], 'x') redis.call('HSET', KEYS[2], 'p', ARGV[2]) redis.call('XADD', KEYS[3], 'MAXLEN', '~', 10000, '*', 'event', 'progress', 'jobId', 'j1', 'data', ARGV[2]) return 0`,
  'return 1 (the cost of calling a script)': 'return 1',
};
// The append script up to (not including) its first Redis command: the head parsed.
const firstCommand = APPEND_LUA.indexOf("local lastText = redis.call('HGET'");
if (firstCommand < 0) throw new Error('script-cost.ts: the append script changed; update where its head parse ends');
const PARSED = APPEND_LUA.slice(0, firstCommand);
const pieces: Array<[string, string]> = [
  ['pieces: head parsed', ''],
  ['pieces: + HGET lastSeq', "local l = redis.call('HGET', KEYS[2], 'lastSeq')"],
  ['pieces: + HSET lastSeq, fast', "redis.call('HSET', KEYS[2], 'lastSeq', newLast, 'fast', fast)"],
  ['pieces: + XADD of the events', "redis.call('XADD', KEYS[1], '0-' .. newLast, 'b', ARGV[2])"],
];
let body = PARSED;
for (const [name, step] of pieces) {
  body += `\n${step}`;
  scripts[name] = `${body}\nreturn 1`;
}

// The what-ifs' head: `deadline|flags|expectedSeq|newLastSeq|fastBytes|feedBytes|<fast><feed><eventId>`,
// the feed entry's one field `<first>|<n>|<upgradeId>` made by the client. The common path only.
const packedHead = (i: number): string => {
  const fast = `${i + 1}|12.5|2026-11-28T14:00:00.000Z`;
  const feed = `${i + 1}|1|u1`;
  return `${Date.now() + 10_000}|1|${i}|${i + 1}|${fast.length}|${feed.length}|${fast}${feed}e${i}`;
};
// `expected` is the expected seq; with `bar`, followed by its '|' (how the stored fast fields start).
const packedParse = (bar: boolean): string => `local h = ARGV[1]
local deadline, flags, expected, newLast, fastLen, feedLen, at = string.match(h, '^(%d+)|(%d+)|(%d+${bar ? '|)(' : ')|('}%d+)|(%d+)|(%d+)|()')
if not deadline then return redis.error_reply('ERR malformed head') end
local fastEnd = at + tonumber(fastLen)
local fast = string.sub(h, at, fastEnd - 1)
local feed = string.sub(h, fastEnd, fastEnd + tonumber(feedLen) - 1)
if flags ~= '1' then return redis.error_reply('ERR not measured') end`;
const FEED_AND_DEADLINE = `local id = redis.call('XADD', KEYS[3], '*', 'p', feed)
local ms = string.sub(id, 1, string.find(id, '-', 1, true) - 1)
local late
if #ms == #deadline then late = ms > deadline else late = tonumber(ms) > tonumber(deadline) end
if late then return {-1, 0} end`;
const whatIfs: Record<string, { lua: string; head: (i: number) => string; meta: string }> = {
  'what-if: packed head, one-field feed entry': {
    lua: `${packedParse(false)}
local last = redis.call('HGET', KEYS[2], 'lastSeq') or '0'
if last ~= expected then return {0, last} end
${FEED_AND_DEADLINE}
redis.call('XADD', KEYS[1], '0-' .. newLast, 'b', ARGV[2])
redis.call('HSET', KEYS[2], 'lastSeq', newLast, 'fast', fast)
return 1`,
    head: packedHead,
    meta: 'meta',
  },
  'what-if: that, and SET ... KEEPTTL GET for the seq': {
    lua: `${packedParse(true)}
local old = redis.call('SET', KEYS[2], fast, 'KEEPTTL', 'GET')
if (old and string.sub(old, 1, #expected) ~= expected) or (not old and expected ~= '0|') then return {0, old} end
${FEED_AND_DEADLINE}
redis.call('XADD', KEYS[1], '0-' .. newLast, 'b', ARGV[2])
return 1`,
    head: packedHead,
    meta: 'seq',
  },
};
for (const [name, w] of Object.entries(whatIfs)) scripts[name] = w.lua;
const shas = Object.fromEntries(await Promise.all(Object.entries(scripts).map(async ([name, lua]) => [name, (await r.script('LOAD', lua)) as string])));
const evalshaStats = async (): Promise<[number, number]> => {
  const evalsha = (await commandStats(r)).get('evalsha');
  return [evalsha?.calls ?? 0, evalsha?.usec ?? 0];
};
const N = 4000;
const results: Record<string, number[]> = {};
for (let round = 0; round < 5; round++) {
  for (const name of Object.keys(scripts)) {
    const id = `${run}:{u${round}:${Object.keys(scripts).indexOf(name)}}`;
    const before = await evalshaStats();
    for (let i = 0; i < N; i++) {
      // The head as RedisStore sends it: a deadline 10 s ahead, the feed key (flags 1), one event.
      const whatIf = whatIfs[name];
      const head = whatIf ? whatIf.head(i) : `${Date.now() + 10_000}${appendHead(1, i, 1, '', 'u1', `${i + 1}|12.5|2026-11-28T14:00:00.000Z`, `e${i}`)}`;
      await r.evalsha(shas[name]!, 3, `${id}:events`, `${id}:${whatIf?.meta ?? 'meta'}`, `${run}:feed`, head, `[${event}]`);
    }
    const after = await evalshaStats();
    // A what-if that refused its appends (a conflict on its common path) would measure nothing real.
    if (whatIfs[name] && (await r.xlen(`${id}:events`)) !== N) throw new Error(`${name}: not every call appended`);
    (results[name] ??= []).push((after[1] - before[1]) / (after[0] - before[0]));
  }
}
for (const [name, xs] of Object.entries(results)) console.log(`${name.padEnd(48)} ${[...xs].sort((a, b) => a - b)[2]!.toFixed(1).padStart(5)} us per call (runs: ${xs.map((x) => x.toFixed(1)).join(', ')})`);
for (const key of await r.keys(`${run}:*`)) await r.del(key);
await r.quit();
