// A real Redis Cluster of three masters with a replica each, for the failover tests: its admin
// connections, stores on it, and which node serves a key. One per test file (start in beforeAll,
// stop in afterAll).
import { Cluster, Redis } from 'ioredis';
import { startRedisCluster, type TestRedisCluster } from '../../../tools/test-utils/src/redis-cluster.js';
import { RedisStore } from '../src/index.js';
import { until } from './helpers.js';

export interface ReplicatedCluster {
  readonly cluster: TestRedisCluster;
  /** Admin connections: the masters', and the replicas' (replica i of master i). */
  readonly masters: Redis[];
  readonly replicas: Redis[];
  /** A store on its own Cluster client (closed by stop()). */
  clusterStore(keyPrefix: string, options?: { watchBlockMs?: number; commandTimeoutMs?: number }): RedisStore;
  /**
   * Which node serves `key`'s slot now, as the first master that answers sees it (or as `via` sees
   * it: a replica that took over knows at once, the other masters once its news reached them): i for
   * master i, -1 - i for replica i.
   */
  ownerOf(key: string, via?: Redis): Promise<number>;
  /** Each node's view of the cluster (`cluster_state` and `CLUSTER NODES`), for a test that timed out waiting on it. */
  views(): Promise<string>;
  /**
   * Replica i stops copying master i (it can no longer authenticate to it), once `inStep` holds
   * on it (read-only) and it is listed in CLUSTER SLOTS (Redis 7 lists a replica once its master
   * heard of its replication offset, and a Cluster client then connects to it too): what master i
   * acknowledges from now on is its own only, as when a master dies before its last writes reached
   * its replica.
   */
  detach(i: number, inStep: { what: string; check: (replica: Redis) => Promise<boolean> }): Promise<void>;
  /**
   * Master i dies (SHUTDOWN NOSAVE) and replica i takes over (CLUSTER FAILOVER TAKEOVER) without
   * what it did not copy; resolves once every live master and the replica see it serve `key`'s slot.
   */
  takeOver(i: number, key: string): Promise<void>;
  start(): Promise<void>;
  /** Closes the stores given out, then stops the cluster. */
  stop(): Promise<void>;
}

export function replicatedCluster(): ReplicatedCluster {
  let cluster: TestRedisCluster | undefined;
  let masters: Redis[] = [];
  let replicas: Redis[] = [];
  const clients: Cluster[] = [];
  const stores: RedisStore[] = [];
  /** The masters that died, their replica promoted in their place (takeOver()). */
  const taken = new Set<number>();
  const admin = (n: { host: string; port: number }): Redis => {
    const r = new Redis(n.port, n.host, { maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => {});
    return r;
  };
  const rc: ReplicatedCluster = {
    get cluster() {
      return cluster!;
    },
    get masters() {
      return masters;
    },
    get replicas() {
      return replicas;
    },
    clusterStore(keyPrefix, options = {}) {
      const client = new Cluster(cluster!.nodes, { redisOptions: { maxRetriesPerRequest: null } });
      clients.push(client);
      const store = new RedisStore({ redis: client, keyPrefix, ...options });
      stores.push(store);
      return store;
    },
    async ownerOf(key, via) {
      for (const a of via ? [via] : masters) {
        const slots = await Promise.all([a.call('CLUSTER', 'KEYSLOT', key), a.call('CLUSTER', 'SLOTS')]).catch(() => undefined);
        if (!slots) continue;
        const slot = Number(slots[0]);
        const port = (slots[1] as Array<[number, number, [string, number]]>).find(([from, to]) => from <= slot && slot <= to)![2][1];
        const master = cluster!.nodes.findIndex((n) => n.port === port);
        return master >= 0 ? master : -1 - cluster!.replicas.findIndex((n) => n.port === port);
      }
      throw new Error('no master answers');
    },
    async views() {
      const nodes = [...cluster!.nodes, ...cluster!.replicas];
      const views = await Promise.all(
        [...masters, ...replicas].map(async (a, i) => {
          const [info, table] = await Promise.all([a.call('CLUSTER', 'INFO'), a.call('CLUSTER', 'NODES')]).catch((err: unknown) => [`down (${String(err)})`, '']);
          const state = /cluster_state:\w+/.exec(String(info))?.[0] ?? String(info);
          return `node :${nodes[i]!.port} ${state}\n${String(table).trim()}`;
        }),
      );
      return views.join('\n');
    },
    async detach(i, inStep) {
      const replica = replicas[i]!;
      await replica.call('READONLY');
      await until(inStep.what, () => inStep.check(replica));
      await until('the replica to be listed in CLUSTER SLOTS', async () => JSON.stringify(await masters[i]!.call('CLUSTER', 'SLOTS')).includes(`,${cluster!.replicas[i]!.port},`));
      await replica.call('CONFIG', 'SET', 'masterauth', 'not-the-password');
      await replica.call('CLIENT', 'KILL', 'TYPE', 'master');
      await until('the replica to lose its master', async () => String(await replica.info('replication')).includes('master_link_status:down'));
    },
    async takeOver(i, key) {
      const replica = replicas[i]!;
      await masters[i]!.call('SHUTDOWN', 'NOSAVE').catch(() => {});
      await replica.call('CLUSTER', 'FAILOVER', 'TAKEOVER');
      await replica.call('CONFIG', 'SET', 'masterauth', '');
      taken.add(i);
      // The masters alive: the first ones not taken over, and the replicas that took over.
      const live = masters.map((m, j) => (taken.has(j) ? replicas[j]! : m));
      await until('the replica to serve the slot, as every live master sees it', async () => (await Promise.all(live.map((a) => rc.ownerOf(key, a)))).every((o) => o === -1 - i), undefined, () => rc.views());
    },
    async start() {
      cluster = await startRedisCluster(3, [], { replicas: true });
      masters = cluster.nodes.map(admin);
      replicas = cluster.replicas.map(admin);
    },
    async stop() {
      for (const store of stores) await store.close();
      for (const client of clients) client.disconnect();
      for (const a of [...masters, ...replicas]) a.disconnect();
      await cluster?.stop();
    },
  };
  return rc;
}
