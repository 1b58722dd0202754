// The reader process of the latency rows and of reader-cost.ts. Config in PROGRESS_TEST (JSON, as
// test-utils' spawnScript passes it):
// { kind: 'watch' | 'watchAll' | 'xread' | 'bullmq', url, keyPrefix?, upgradeId?, queue?, prefix?, count }.
// Prints "ready" once listening, then one JSON line: the latencies in ms (append -> delivery); then
// one more: its CPU per event and its garbage collections, both from its 100th event on.
// 'xread' is a plain XREAD BLOCK loop on the upgrade's stream (the floor under watch()).
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { QueueEvents } from 'bullmq';
import { RedisStore } from '../../../packages/storage-redis/src/index.js';

const config = JSON.parse(process.env.PROGRESS_TEST ?? '{}') as { kind: 'watch' | 'watchAll' | 'xread' | 'bullmq'; url: string; keyPrefix: string; upgradeId: string; queue: string; prefix: string; count: number };
const now = (): number => performance.timeOrigin + performance.now();
const latencies: number[] = [];
const WARM = 100;
let cpuStart: NodeJS.CpuUsage | undefined;
const gc = { minor: 0, major: 0, totalMs: 0, maxMs: 0 };
new PerformanceObserver((list) => {
  if (!cpuStart) return;
  for (const entry of list.getEntries()) {
    const kind = (entry as { detail?: { kind?: number } }).detail?.kind;
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) gc.minor++;
    else gc.major++;
    gc.totalMs += entry.duration;
    gc.maxMs = Math.max(gc.maxMs, entry.duration);
  }
}).observe({ entryTypes: ['gc'] });
const report = (): void => {
  const cpu = process.cpuUsage(cpuStart);
  const measured = Math.max(1, latencies.length - WARM);
  process.stdout.write(`${JSON.stringify(latencies)}\n`);
  process.stdout.write(`${JSON.stringify({ cpuPerEventUs: (cpu.user + cpu.system) / measured, gc })}\n`);
};
/** Records one event's latency; true once `count` were seen. */
const seen = (t: unknown): boolean => {
  if (typeof t === 'number') latencies.push(now() - t);
  if (latencies.length === WARM) cpuStart = process.cpuUsage();
  return latencies.length >= config.count;
};
// Never outlive the bench: give up after 60 s with what was measured.
setTimeout(() => {
  report();
  process.exit(0);
}, 60_000).unref();

if (config.kind === 'watch' || config.kind === 'watchAll') {
  const store = new RedisStore({ url: config.url, keyPrefix: config.keyPrefix, connectionName: 'bench-watch-reader' });
  const stop = new AbortController();
  const iterable = config.kind === 'watch' ? store.watch(config.upgradeId, 0, { signal: stop.signal }) : store.watchAll({ signal: stop.signal });
  process.stdout.write('ready\n');
  for await (const ev of iterable) if (seen((ev.details as { t?: number }).t)) break;
  await store.close();
} else if (config.kind === 'xread') {
  const conn = new Redis(config.url, { connectionName: 'bench-xread-reader' });
  const key = `${config.keyPrefix}{${config.upgradeId}}:events`;
  let after = '0-0';
  process.stdout.write('ready\n');
  reading: for (;;) {
    const reply = (await conn.xread('COUNT', 500, 'BLOCK', 5000, 'STREAMS', key, after)) as Array<[string, Array<[string, string[]]>]> | null;
    for (const [id, fields] of reply?.[0]?.[1] ?? []) {
      after = id;
      for (const ev of JSON.parse(fields[1]!) as Array<{ details?: { t?: number } }>) if (seen(ev.details?.t)) break reading;
    }
  }
  conn.disconnect();
} else {
  const connection = new Redis(config.url, { maxRetriesPerRequest: null });
  const events = new QueueEvents(config.queue, { connection, prefix: config.prefix });
  await events.waitUntilReady();
  await new Promise<void>((resolve) => {
    events.on('progress', ({ data }) => {
      if (seen((data as { t?: number }).t)) resolve();
    });
    process.stdout.write('ready\n');
  });
  await events.close();
  await connection.quit();
}
report();
