// The reader process of the latency rows. Config in BENCH_READER (JSON):
// { kind: 'watch' | 'bullmq', url, keyPrefix?, upgradeId?, queue?, count }.
// Prints "ready" once listening, then one JSON line: the latencies in ms (append -> delivery).
import { Redis } from 'ioredis';
import { QueueEvents } from 'bullmq';
import { RedisStore } from '../../../packages/storage-redis/src/index.js';

const config = JSON.parse(process.env.BENCH_READER ?? '{}') as { kind: 'watch' | 'bullmq'; url: string; keyPrefix: string; upgradeId: string; queue: string; prefix: string; count: number };
// Never outlive the bench: give up after 60 s with what was measured.
setTimeout(() => {
  process.stdout.write(`${JSON.stringify(latencies)}\n`);
  process.exit(0);
}, 60_000).unref();
const now = (): number => performance.timeOrigin + performance.now();
const latencies: number[] = [];

if (config.kind === 'watch') {
  const store = new RedisStore({ url: config.url, keyPrefix: config.keyPrefix, connectionName: 'bench-watch-reader' });
  const stop = new AbortController();
  const iterable = store.watch(config.upgradeId, 0, { signal: stop.signal });
  process.stdout.write('ready\n');
  for await (const ev of iterable) {
    const t = (ev.details as { t?: number }).t;
    if (typeof t === 'number') latencies.push(now() - t);
    if (latencies.length >= config.count) break;
  }
  await store.close();
} else {
  const connection = new Redis(config.url, { maxRetriesPerRequest: null });
  const events = new QueueEvents(config.queue, { connection, prefix: config.prefix });
  await events.waitUntilReady();
  await new Promise<void>((resolve) => {
    events.on('progress', ({ data }) => {
      const t = (data as { t?: number }).t;
      if (typeof t === 'number') latencies.push(now() - t);
      if (latencies.length >= config.count) resolve();
    });
    process.stdout.write('ready\n');
  });
  await events.close();
  await connection.quit();
}
process.stdout.write(`${JSON.stringify(latencies)}\n`);
