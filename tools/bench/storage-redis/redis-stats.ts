import type { Redis } from 'ioredis';

/** Redis' CPU time so far, user plus system, in seconds (`INFO cpu`): per-call costs are differences of two readings. */
export async function redisCpuSeconds(client: Redis): Promise<number> {
  const info = await client.info('cpu');
  return Number(/used_cpu_user:([\d.]+)/.exec(info)![1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)![1]);
}

/** Redis' counters per command so far (`INFO commandstats`): calls, and usec spent running them (inside the script, for EVALSHA). */
export async function commandStats(client: Redis): Promise<Map<string, { calls: number; usec: number }>> {
  const out = new Map<string, { calls: number; usec: number }>();
  for (const m of (await client.info('commandstats')).matchAll(/cmdstat_(\S+):calls=(\d+),usec=(\d+)/g)) out.set(m[1]!, { calls: Number(m[2]), usec: Number(m[3]) });
  return out;
}
