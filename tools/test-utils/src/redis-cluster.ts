import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './net.js';

/** A real Redis Cluster of `redis-server` processes on loopback, for the tests. */
export interface TestRedisCluster {
  /** The masters' addresses, for `new Cluster(nodes)`. */
  nodes: Array<{ host: string; port: number }>;
  /** With `replicas: true`: the replica of each master, in the order of `nodes` (none otherwise). */
  replicas: Array<{ host: string; port: number }>;
  stop(): Promise<void>;
}

const SLOTS = 16384;

/**
 * Starts `masters` redis-server processes in cluster mode on free ports, gives each an equal range
 * of the 16,384 slots (CLUSTER ADDSLOTSRANGE), gives every node a config epoch of its own (CLUSTER
 * SET-CONFIG-EPOCH), joins them (CLUSTER MEET) and waits until every node reports
 * `cluster_state:ok`. `extraArgs` go to every redis-server. With `replicas: true`, one more
 * redis-server per master is made its replica (CLUSTER REPLICATE), in step with it when this
 * resolves (`replicas` lists them). Needs `redis-server` 7 or later on PATH; throws a message
 * saying so when it is missing.
 *
 * Each node's cluster bus gets a free port of its own (`--cluster-port`): by default it listens on
 * the node's port + 10,000, which redis-server refuses above port 55,535 (a free port is up to
 * 60,999 here) and which another process may hold. A port taken between the pick and the listen
 * makes a node exit at once: the whole start is then tried again on new ports (three times).
 */
export async function startRedisCluster(masters = 3, extraArgs: readonly string[] = [], options: { replicas?: boolean } = {}): Promise<TestRedisCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(masters, extraArgs, options.replicas === true);
    } catch (err) {
      if (!(err instanceof PortTaken) || attempt === 3) throw err;
    }
  }
}

/** A node exited while starting although redis-server runs: most likely its port was taken meanwhile. */
class PortTaken extends Error {}
const lastWords = new WeakMap<ChildProcess, () => string>();

async function startOnce(masters: number, extraArgs: readonly string[], withReplicas: boolean): Promise<TestRedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'progress-redis-cluster-'));
  const children: ChildProcess[] = [];
  const admins: Redis[] = [];
  const stop = async (): Promise<void> => {
    for (const admin of admins) admin.disconnect();
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ports: number[] = [];
    const busPorts: number[] = [];
    const taken = new Set<number>();
    const pick = async (): Promise<number> => {
      for (;;) {
        const port = await freePort();
        if (!taken.has(port)) return taken.add(port), port;
      }
    };
    // With replicas: one more server per master, started the same way, made its replica below.
    for (let i = 0; i < (withReplicas ? 2 * masters : masters); i++) {
      const port = await pick();
      const bus = await pick();
      ports.push(port);
      busPorts.push(bus);
      const child = spawn(
        'redis-server',
        [
          ...['--port', String(port), '--cluster-port', String(bus), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`],
          // A replica's first sync at once (Redis waits 5 s by default for more replicas to join it).
          ...['--cluster-node-timeout', '2000', '--save', '', '--appendonly', 'no', '--repl-diskless-sync-delay', '0', '--dir', dir, ...extraArgs],
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      // Its last words, for the error when it exits while starting (redis-server logs to stdout).
      let said = '';
      const keep = (chunk: Buffer): void => void (said = (said + chunk.toString()).slice(-400));
      child.stdout?.on('data', keep);
      child.stderr?.on('data', keep);
      lastWords.set(child, () => said.trim().split('\n').at(-1) ?? '');
      children.push(child);
      child.once('error', () => {});
    }
    for (const port of ports) {
      const admin = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      // A node a test stops on purpose: its admin connection's error is expected.
      admin.on('error', () => {});
      admins.push(admin);
      await until(async () => admin.connect().then(() => true, () => false), `redis-server (cluster mode) to answer on 127.0.0.1:${port}`, children);
    }
    // A config epoch of its own for each node, before they meet, as redis-cli --cluster create
    // does. Left at 0, the nodes settle their epochs by collision, racing with the replicas being
    // made: a replica could keep the highest epoch while a master reached the same one, and then its
    // CLUSTER FAILOVER TAKEOVER did not bump it (Redis skips the bump for the highest epoch) and
    // the other nodes refused its claim of the master's slots, no newer than the dead master's
    // (seen once: CLUSTERDOWN until the test timed out).
    await Promise.all(admins.map((admin, i) => admin.call('CLUSTER', 'SET-CONFIG-EPOCH', String(i + 1))));
    const per = Math.ceil(SLOTS / masters);
    await Promise.all(admins.slice(0, masters).map((admin, i) => admin.call('CLUSTER', 'ADDSLOTSRANGE', String(i * per), String(Math.min(SLOTS, (i + 1) * per) - 1))));
    for (let i = 1; i < admins.length; i++) await admins[0]!.call('CLUSTER', 'MEET', '127.0.0.1', String(ports[i]), String(busPorts[i]));
    for (let i = masters; i < admins.length; i++) {
      const master = String(await admins[i - masters]!.call('CLUSTER', 'MYID'));
      // Once the replica knows its master (gossip), and then in step with it.
      await until(async () => (await admins[i]!.call('CLUSTER', 'REPLICATE', master)) === 'OK', `the node on port ${ports[i]} to become a replica`, children);
      await until(async () => String(await admins[i]!.info('replication')).includes('master_link_status:up'), `the replica on port ${ports[i]} to sync`, children);
    }
    await until(
      async () => {
        for (const admin of admins) if (!String(await admin.call('CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
        return true;
      },
      'the cluster to report cluster_state:ok on every node',
      children,
    );
    const address = (port: number): { host: string; port: number } => ({ host: '127.0.0.1', port });
    return { nodes: ports.slice(0, masters).map(address), replicas: ports.slice(masters).map(address), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function until(check: () => Promise<boolean>, what: string, children: ChildProcess[]): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (children.some((c) => c.pid === undefined)) {
      throw new Error('redis-server could not be started: the cluster tests need redis-server 7 or later on PATH (Debian/Ubuntu: apt-get install redis-server)');
    }
    const failed = children.find((c) => c.exitCode !== null);
    if (failed) {
      throw new PortTaken(
        `redis-server exited while starting in cluster mode (exit code ${failed.exitCode}: "${lastWords.get(failed)?.() ?? ''}"); the cluster tests need redis-server 7 or later on PATH and free loopback ports`,
      );
    }
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after 20 s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
