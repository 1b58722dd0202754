// What moving a large argument into Lua costs on this Redis, and what sending a burst's batch as a
// plain XADD beside the script (in a MULTI) would save. Redis' own CPU per call (INFO cpu), so the
// client's work does not count. Use a private Redis:
//   redis-server --port 6390 --save '' --daemonize yes
//   REDIS_URL=redis://127.0.0.1:6390 npx tsx --conditions=@progress/source tools/bench/storage-redis/lua-args.ts
// The MULTI variant is a measurement only: it skips what a safe version needs (see README.md).
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { APPEND_LUA, pushAppendArgs } from '../../../packages/storage-redis/src/scripts.js';
import { redisCpuSeconds } from './redis-stats.js';

const r = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6390');
const run = `lua-args:${randomUUID().slice(0, 8)}`;
const event = JSON.stringify({ type: 'task.progress', seq: 1, eventId: randomUUID(), message: 'step', pad: 'p'.repeat(150) });
const batch = `[${Array.from({ length: 100 }, () => event).join(',')}]`; // about 25 KB, a burst of 100
const N = 2000;
const cpu = (): Promise<number> => redisCpuSeconds(r);
const returnOne = (await r.script('LOAD', 'return 1')) as string;
const append = (await r.script('LOAD', APPEND_LUA)) as string;

/** The append's ARGV 1-7 (see APPEND_LUA) for burst i of 100 events: no deadline, the feed key only. */
const small = (i: number): string[] => {
  const args: string[] = [];
  pushAppendArgs(args, 1, i * 100, 100, '', 'u', `${(i + 1) * 100}|1|x`, 'e');
  args[0] = '0';
  return args;
};
const contenders: Record<string, (key: string, i: number) => Promise<unknown>> = {
  'EVALSHA "return 1" with a 25 KB argument': () => r.evalsha(returnOne, 0, batch),
  'plain XADD of the 25 KB': (key) => r.xadd(key, '*', 'b', batch),
  'append script, batch inside (today)': (key, i) => r.evalsha(append, 3, `${key}:{u}:e`, `${key}:{u}:m`, `${key}:f`, ...small(i), batch),
  'append script without the batch + XADD in MULTI': (key, i) =>
    r
      .multi()
      .evalsha(append, 3, `${key}:{u}:e`, `${key}:{u}:m`, `${key}:f`, ...small(i), '[]')
      .xadd(`${key}:{u}:e2`, `0-${(i + 1) * 100}`, 'b', batch)
      .exec(),
};
const results: Record<string, number[]> = {};
for (let round = 0; round < 3; round++) {
  for (const [name, fn] of Object.entries(contenders)) {
    const key = `${run}:${round}:${Object.keys(contenders).indexOf(name)}`;
    const before = await cpu();
    for (let i = 0; i < N; i++) await fn(key, i);
    (results[name] ??= []).push(((await cpu()) - before) * 1e6 / N);
    for (const suffix of [':{u}:e', ':{u}:e2', ':{u}:m', ':i', ':f', '']) await r.del(`${key}${suffix}`);
  }
}
for (const [name, xs] of Object.entries(results)) console.log(`${name.padEnd(50)} ${[...xs].sort((a, b) => a - b)[1]!.toFixed(1).padStart(6)} us Redis CPU per call (runs: ${xs.map((x) => x.toFixed(0)).join(', ')})`);
await r.quit();
