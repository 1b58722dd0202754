// `progress ls | show | watch | demo --redis` with the URL of one node of a Redis Cluster, as a user
// copies it (an ElastiCache configuration endpoint, a node of their own cluster). A store on that
// node alone was answered MOVED for every key in another node's slots: `ls` failed with
// "MOVED 14697 127.0.0.1:45117" through two nodes in three, and `show` of an upgrade on another node
// likewise. The CLI now goes through a Cluster client that finds the other nodes from the one named.
// Against a real Cluster of three redis-server processes started for this file.
import { spawnSync } from 'node:child_process';
import { createServer, Socket, type AddressInfo, type Server } from 'node:net';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisCluster, type TestRedisCluster } from '../../../tools/test-utils/src/redis-cluster.js';
import { RedisStore, createProgressTracker } from '../src/index.js';
import { main } from '../src/cli/main.js';
import { Capture, runCli, spawnCli, uniqueId, until } from './helpers.js';

// The cluster is made of redis-server processes this file starts, so it needs the binary even when
// REDIS_URL points the other tests at a server elsewhere (.ci/run installs it).
const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;
if (!hasRedisServer) console.warn('[tracker] skipping the Redis Cluster CLI tests: redis-server is not on PATH (Debian/Ubuntu: apt-get install redis-server)');

/**
 * Runs `use` with an admin connection to each node of `cluster` (a Cluster does not share its users
 * nor its config between nodes), and disconnects them after it, whatever it did.
 */
async function onEveryNode(cluster: TestRedisCluster, use: (admins: Redis[]) => Promise<void>): Promise<void> {
  const admins = cluster.nodes.map((node) => new Redis(node.port, node.host));
  try {
    await use(admins);
  } finally {
    for (const admin of admins) admin.disconnect();
  }
}

/** The upgrade ids of `progress ls --json` output, sorted. */
const listedIds = (out: string): string[] => (JSON.parse(out) as Array<{ upgradeId: string }>).map((row) => row.upgradeId).sort();

describe.skipIf(!hasRedisServer)('progress with the URL of one node of a Redis Cluster', () => {
  let cluster: TestRedisCluster;
  let client: Cluster;
  let store: RedisStore;
  /** One URL per node: each holds a third of the slots. */
  let urls: string[];
  const prefix = `${uniqueId('cli-cluster')}:`;
  /** More upgrades than nodes, so that every node holds some and misses others. */
  const ids = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta'];

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    urls = cluster.nodes.map((node) => `redis://${node.host}:${node.port}`);
    client = new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: null } });
    store = new RedisStore({ redis: client, keyPrefix: prefix });
    for (const upgradeId of ids) {
      const t = await createProgressTracker({ upgradeId, planId: 'p', clusterName: 'c', storage: store });
      await t.addTasks([{ taskId: 't1', taskName: 'One' }]);
      await t.startUpgrade('Nodes');
      await t.updateTaskProgress('t1', 40);
      await t.close();
    }
  }, 60_000);

  afterAll(async () => {
    await store?.close();
    client?.disconnect();
    await cluster?.stop();
  });

  /** The ids a store on node `url` alone is answered MOVED for: those in another node's slots. */
  async function elsewhere(url: string): Promise<string[]> {
    const plain = new RedisStore({ url, keyPrefix: prefix, commandTimeoutMs: 3000 });
    try {
      const outcomes = await Promise.allSettled(ids.map((id) => plain.load(id)));
      return ids.filter((_id, i) => outcomes[i]!.status === 'rejected' && /\bMOVED\b/.test(String((outcomes[i] as PromiseRejectedResult).reason)));
    } finally {
      await plain.close();
    }
  }

  it('each node alone holds some of the upgrades, not all (what the tests below stand on)', async () => {
    for (const url of urls) {
      const moved = await elsewhere(url);
      expect(moved.length).toBeGreaterThan(0);
      expect(moved.length).toBeLessThan(ids.length);
    }
  });

  it('ls through any node lists every upgrade', async () => {
    for (const url of urls) {
      const result = await runCli('ls', url, '--prefix', prefix, '--json');
      expect(result.err).toBe('');
      expect(result.code).toBe(0);
      expect(listedIds(result.out)).toEqual([...ids].sort());
      expect((JSON.parse(result.out) as Array<{ status: string }>).every((row) => row.status === 'in_progress')).toBe(true);
    }
  });

  it('show through any node reads each upgrade, wherever its slot is', async () => {
    for (const url of urls) {
      for (const upgradeId of ids) {
        const result = await runCli('show', url, upgradeId, '--prefix', prefix, '--json');
        expect(result.err).toBe('');
        expect(result.code).toBe(0);
        expect(JSON.parse(result.out)).toMatchObject({ upgradeId, lastSeq: 4, tasks: { t1: { percentage: 40 } } });
      }
    }
  });

  it('watch through a node follows an upgrade to its end, live', async () => {
    // Through a node that does not hold it.
    const url = urls[0]!;
    const upgradeId = (await elsewhere(url))[0]!;
    const out = new Capture();
    const err = new Capture();
    const watching = main(['watch', url, upgradeId, '--prefix', prefix], out as unknown as NodeJS.WriteStream, err as unknown as NodeJS.WriteStream);
    await until('printed the state', () => out.text.includes(`${upgradeId} state in_progress at seq 4`), () => out.text + err.text);
    const t = await createProgressTracker({ upgradeId, planId: 'p', clusterName: 'c', storage: store });
    await t.updateTaskProgress('t1', 80);
    await t.completeTask('t1');
    await t.completeUpgrade();
    await t.close();
    expect(await watching).toBe(0);
    expect(err.text).toBe('');
    expect(out.text).toMatch(new RegExp(`#5 ${upgradeId} task\\.progress t1 in_progress 80%[^\\n]*\\n[^\\n]*#6 ${upgradeId} task\\.completed[^\\n]*\\n[^\\n]*#7 ${upgradeId} upgrade\\.completed`));
  });

  it('demo --redis writes through the Cluster, and a second run starts the next upgrade', async () => {
    const demoPrefix = `${uniqueId('cli-cluster-demo')}:`;
    for (const expected of ['eks-demo', 'eks-demo-2']) {
      const result = await runCli('demo', '--redis', urls[2]!, '--prefix', demoPrefix, '--speed', '1000', '--port', '0', '--linger', '0');
      expect(result.err).toBe('');
      expect(result.code).toBe(0);
      expect(result.out).toContain(`Storage:   Redis Cluster ${urls[2]}, key prefix ${demoPrefix}`);
      expect(result.out).toContain(`Upgrade:   ${expected}\n`);
      const stored = new RedisStore({ redis: client, keyPrefix: demoPrefix });
      try {
        expect((await stored.load(expected))?.status).toBe('completed');
      } finally {
        await stored.close();
      }
    }
  }, 60_000);

  it('a command in a process of its own ends once done: the Cluster client it made is closed', async () => {
    // A Cluster left open (its connections, its slots refresh) would keep the process alive: the test's timeout.
    const run = spawnCli(['ls', urls[1]!, '--prefix', prefix]);
    expect(await run.exited).toBe(0);
    for (const upgradeId of ids) expect(run.stdout()).toContain(upgradeId);
  }, 30_000);

  it('a user without @dangerous commands (INFO is one) is taken through the Cluster too, on every node', async () => {
    // Made on every node (a Cluster does not share its users); the Cluster client logs in as it on each.
    const withUser = (url: string): string => url.replace('redis://', 'redis://cli-writer:Pw-writer1@');
    await onEveryNode(cluster, async (admins) => {
      try {
        for (const admin of admins) await admin.call('ACL', 'SETUSER', 'cli-writer', 'on', '>Pw-writer1', '~*', '&*', '+@all', '-@dangerous');
        for (const url of urls) {
          const result = await runCli('ls', withUser(url), '--prefix', prefix, '--json');
          expect(result.err).toBe('');
          expect(result.code).toBe(0);
          expect(listedIds(result.out)).toEqual([...ids].sort());
        }
        // Where a first read cannot tell: the node that holds the (empty) index of a new prefix answers
        // the probe's list itself, and only the demo's writes (other slots) would meet MOVED or CROSSSLOT.
        const demoPrefix = `${uniqueId('cli-cluster-acl')}:`;
        const listed = await Promise.all(
          urls.map(async (url) => {
            const plain = new RedisStore({ url, keyPrefix: demoPrefix, commandTimeoutMs: 3000 });
            return plain.list().then(
              () => true,
              () => false,
            ).finally(() => plain.close());
          }),
        );
        const indexNode = urls[listed.indexOf(true)]!;
        expect(listed.filter(Boolean)).toHaveLength(1);
        const demo = await runCli('demo', '--redis', withUser(indexNode), '--prefix', demoPrefix, '--speed', '1000', '--port', '0', '--linger', '0');
        expect(demo.err).toBe('');
        expect(demo.code).toBe(0);
        expect(demo.out).toContain('Storage:   Redis Cluster');
      } finally {
        for (const admin of admins) await admin.call('ACL', 'DELUSER', 'cli-writer').catch(() => {});
      }
    });
  });

  it("the user and password of the URL's query (and REDISCLI_AUTH's beside a ?username=) log in on every node", async () => {
    // The default user may read no key meanwhile: a Cluster client that dropped the query's user
    // logged in as it instead (as another user, with its rights, or refused NOPERM).
    await onEveryNode(cluster, async (admins) => {
      try {
        for (const admin of admins) await admin.call('ACL', 'SETUSER', 'cli-query', 'on', '>Pw-query1', '~*', '&*', '+@all');
        for (const admin of admins) await admin.call('ACL', 'SETUSER', 'default', 'resetkeys');
        const url = `${urls[0]}?username=cli-query`;
        for (const [args, env] of [
          [['ls', `${url}&password=Pw-query1`, '--prefix', prefix, '--json'], {}],
          [['ls', url, '--prefix', prefix, '--json'], { REDISCLI_AUTH: 'Pw-query1' }],
        ] as const) {
          const run = spawnCli([...args], { env: { REDISCLI_AUTH: undefined, ...env } });
          expect(await run.exited, run.output()).toBe(0);
          expect(listedIds(run.stdout())).toEqual([...ids].sort());
        }
      } finally {
        for (const admin of admins) {
          await admin.call('ACL', 'SETUSER', 'default', 'allkeys').catch(() => {});
          await admin.call('ACL', 'DELUSER', 'cli-query').catch(() => {});
        }
      }
    });
  }, 30_000);

  it('a database other than 0 is refused as a Cluster refuses it (usage, exit 2)', async () => {
    const result = await runCli('ls', `${urls[0]}/3`);
    expect(result.code).toBe(2);
    expect(result.err).toContain('SELECT is not allowed in cluster mode');
  });
});

describe.skipIf(!hasRedisServer)('progress with the URL of a Cluster node whose nodes announce addresses that do not answer', () => {
  let cluster: TestRedisCluster;
  /** Where every node says it is (cluster-announce-port): a server that takes connections and never answers, nor closes them. */
  let silent: Server;
  let silentPort: number;
  const accepted = new Set<Socket>();

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    silent = createServer({ allowHalfOpen: true }, (socket) => {
      accepted.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    silentPort = (silent.address() as AddressInfo).port;
    await onEveryNode(cluster, async (admins) => {
      for (const admin of admins) await admin.config('SET', 'cluster-announce-port', String(silentPort));
      // Until the node the URL names tells of no other address (the others' come by gossip).
      for (let tries = 0; ; tries++) {
        const slots = (await admins[0]!.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>;
        if (slots.length > 0 && slots.every((range) => range[2][1] === silentPort)) break;
        if (tries === 500) throw new Error(`the nodes never announced port ${silentPort}: ${JSON.stringify(slots)}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    });
  }, 60_000);

  afterAll(async () => {
    for (const socket of accepted) socket.destroy();
    await new Promise<void>((resolve) => (silent ? silent.close(() => resolve()) : resolve()));
    await cluster?.stop();
  });

  it('fails once the probe times out, and leaves no connection to a node open (the process exits then)', async () => {
    const result = await runCli('ls', `redis://${cluster.nodes[0]!.host}:${cluster.nodes[0]!.port}`);
    expect(result.code).toBe(4);
    expect(result.err).toContain('cannot reach the Redis Cluster of');
    // The node named answered: what did not is where the Cluster says its nodes are.
    expect(result.err).toContain(`its nodes announce themselves at 127.0.0.1:${silentPort}`);
    // ioredis' disconnect() only half-closes a socket the server does not close: it stayed open, and
    // kept the process alive, for ioredis' disconnectTimeout (2 s) after the command was done.
    const open = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().filter((handle) => handle instanceof Socket && handle.remotePort === silentPort && !handle.destroyed);
    expect(open).toHaveLength(0);
  }, 30_000);
});
