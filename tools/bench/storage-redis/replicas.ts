// What `replicas: { count: 1 }` costs: the tracker on RedisStore with it and without, on a master
// and one replica this bench starts itself (two redis-servers on free ports, no persistence), in
// alternating rounds. Information only (no target). Run from the repository root:
//   npx tsx --conditions=@progress/source tools/bench/storage-redis/replicas.ts
// It needs `redis-server` on the PATH; REDIS_URL is not used (a replica cannot be attached to it).
import type { ProgressTracker } from '@progress/core';
import { Redis } from 'ioredis';
import { RedisStore } from '../../../packages/storage-redis/src/index.js';
import { openBenchTracker } from '../core/bench-tracker.js';
import { startRedisServer } from '../../test-utils/src/redis.js';
import { ROUNDS, alternate, burstRound, fmt, printRows, sequentialRound, type Row } from './rounds.js';

const SEQ = 500;
const BURSTS = 20;

const [master, replica] = await Promise.all([startRedisServer(), startRedisServer()]);
const stores: RedisStore[] = [];
try {
  const replicaClient = new Redis(replica.url);
  await replicaClient.call('REPLICAOF', '127.0.0.1', new URL(master.url).port);
  for (let i = 0; !String(await replicaClient.info('replication')).includes('master_link_status:up'); i++) {
    if (i > 200) throw new Error('the replica did not sync with the master within 20 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  replicaClient.disconnect();

  const plain = new RedisStore({ url: master.url, keyPrefix: 'bench:plain:', connectionName: 'bench-plain' });
  const waited = new RedisStore({ url: master.url, keyPrefix: 'bench:replicas:', connectionName: 'bench-replicas', replicas: { count: 1, timeoutMs: 1000 } });
  stores.push(plain, waited);
  let upgrades = 0;
  const opener = (store: RedisStore) => (): Promise<ProgressTracker> => openBenchTracker(store, `u${++upgrades}`);

  process.stderr.write(`storage-redis replicas bench: master ${master.url}, one replica (${ROUNDS} alternating rounds)\n`);
  // Warm up the JIT on every path.
  for (const store of stores) {
    await sequentialRound(opener(store), SEQ);
    await burstRound(opener(store), BURSTS);
  }
  const seq = await alternate({ 'replicas: 1, sequential': () => sequentialRound(opener(waited), SEQ), 'no replicas, sequential': () => sequentialRound(opener(plain), SEQ) });
  const bursts = await alternate({ 'replicas: 1, bursts of 100': () => burstRound(opener(waited), BURSTS), 'no replicas, bursts of 100': () => burstRound(opener(plain), BURSTS) });
  const row = (name: string, value: number, base: number): Row => ({ name, value: fmt(value), target: `${(value / base).toFixed(2)}x without`, result: 'info' });
  const [seqWaited, seqPlain] = [seq['replicas: 1, sequential']!, seq['no replicas, sequential']!];
  const [burstWaited, burstPlain] = [bursts['replicas: 1, bursts of 100']!, bursts['no replicas, bursts of 100']!];
  printRows([
    row('tracker on RedisStore with replicas: 1, sequential awaited (events/s)', seqWaited, seqPlain),
    { name: 'tracker on RedisStore without replicas, sequential awaited (events/s)', value: fmt(seqPlain), target: '-', result: 'info' },
    row('tracker on RedisStore with replicas: 1, bursts of 100 (events/s)', burstWaited, burstPlain),
    { name: 'tracker on RedisStore without replicas, bursts of 100 (events/s)', value: fmt(burstPlain), target: '-', result: 'info' },
  ]);
} finally {
  for (const store of stores) await store.close();
  await Promise.all([master.stop(), replica.stop()]);
}
