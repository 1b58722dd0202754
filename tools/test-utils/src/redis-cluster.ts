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
  stop(): Promise<void>;
}

const SLOTS = 16384;

/**
 * Starts `masters` redis-server processes in cluster mode on free ports, gives each an equal range
 * of the 16,384 slots (CLUSTER ADDSLOTSRANGE), joins them (CLUSTER MEET) and waits until every
 * node reports `cluster_state:ok`. `extraArgs` go to every redis-server. Needs `redis-server` 7 or
 * later on PATH; throws a message saying so when it is missing.
 */
export async function startRedisCluster(masters = 3, extraArgs: readonly string[] = []): Promise<TestRedisCluster> {
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
    for (let i = 0; i < masters; i++) {
      const port = await freePort();
      ports.push(port);
      const child = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs],
        { stdio: 'ignore' },
      );
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
    const per = Math.ceil(SLOTS / masters);
    await Promise.all(admins.map((admin, i) => admin.call('CLUSTER', 'ADDSLOTSRANGE', String(i * per), String(Math.min(SLOTS, (i + 1) * per) - 1))));
    for (const port of ports.slice(1)) await admins[0]!.call('CLUSTER', 'MEET', '127.0.0.1', String(port));
    await until(
      async () => {
        for (const admin of admins) if (!String(await admin.call('CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
        return true;
      },
      'the cluster to report cluster_state:ok on every node',
      children,
    );
    return { nodes: ports.map((port) => ({ host: '127.0.0.1', port })), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function until(check: () => Promise<boolean>, what: string, children: ChildProcess[]): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const failed = children.find((c) => c.exitCode !== null);
    if (failed || children.some((c) => c.pid === undefined)) {
      throw new Error(`redis-server could not start in cluster mode (exit code ${failed?.exitCode}): the cluster tests need redis-server 7 or later on PATH (Debian/Ubuntu: apt-get install redis-server)`);
    }
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after 20 s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
