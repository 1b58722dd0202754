// close-handles.integration.test.ts for a watcher's connection on a real Redis Cluster (a Cluster
// of the store's own: a duplicate() of the Cluster passed in), closed while it waits to reconnect.
//
// Found on 2026-11-29: close() ended that Cluster with its disconnect() alone, which calls
// disconnect() on each node connection. A node connection waiting to reconnect (a
// `clusterNodeRetryStrategy`) kept ioredis' disconnect timer (2 s: ioredis #1247) and never ended,
// the commands queued on it never answered. A Cluster that had lost all its node connections and
// waited to reconnect itself never ended at all (`disconnecting` for good), its offline queue never
// answered, and close() waited its bound (1 s) for it; the connections its last slots refreshes had
// opened (to nodes that refused them) kept the disconnect timer as well (in some runs: when close()
// comes within 2 s of a refresh).
//
// Found on 2026-11-29: close() while a periodic slots refresh of that Cluster (`slotsRefreshInterval`)
// waited for its answer left the refresh's connection (a socket, and the refresh's timeout) to the
// answer; and once answered, ioredis armed the next round of a Cluster that had ended, and every
// round (an empty pool, answered at once) the next: the process never exited.
//
// Each case runs in its own process (test/fixtures/closing-cluster.ts) on a cluster of its own (two
// of them shut nodes down), which reports process.getActiveResourcesInfo() right after close()
// resolved: no timer and no socket. The process must then also exit by itself (the bound below
// only keeps a failure from hanging).
import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { startRedisCluster, type TestRedisCluster } from '../../../tools/test-utils/src/redis-cluster.js';
import { closingReport, expectNothingLeft } from './spawn.js';

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

interface Closed {
  resources: string[];
  read: string;
  watch: string;
  watchConnections: string[];
  nodeConnections: string[];
  refreshers: string[];
}

let cluster: TestRedisCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/** Runs test/fixtures/closing-cluster.ts in `mode` on a new cluster (see closingReport). */
async function closeIn(mode: string) {
  cluster = await startRedisCluster(3);
  return closingReport<Closed>('closing-cluster', { mode, nodes: cluster.nodes, connectionName: `test-closing-cluster-${process.pid}-${mode}` });
}

describe.skipIf(!hasRedisServer)("RedisStore.close() leaves nothing of a watcher's Cluster connection behind", () => {
  it.each([
    ['connection-killed', 'its connection killed'],
    ['node-killed', 'a node that is down'],
  ])('while the node connection of its read waits to reconnect (%s: %s): the command queued on it is rejected', async (mode) => {
    const report = await closeIn(mode);
    const { closed } = report;
    expectNothingLeft(report);
    expect(closed.read).toBe('Connection is closed.');
    expect(closed.watch).toBe('resolved');
    expect(closed.watchConnections).toEqual(['end']);
    expect(closed.nodeConnections.every((s) => s === 'end')).toBe(true);
  }, 60_000);

  it('while a slots refresh of it waits for its answer', async () => {
    const report = await closeIn('refreshing');
    const { closed } = report;
    expectNothingLeft(report);
    expect(closed.watch).toBe('resolved');
    expect(closed.watchConnections).toEqual(['end']);
    // Reached: a refresh's connection was open (waiting for its answer) when close() was called.
    expect(closed.refreshers.length).toBeGreaterThan(0);
  }, 60_000);

  it('while the Cluster waits to reconnect, every node down: its offline queue is rejected', async () => {
    const report = await closeIn('all-down');
    const { closed } = report;
    expectNothingLeft(report);
    expect(closed.read).toBe('None of startup nodes is available');
    expect(closed.watch).toBe('resolved');
    expect(closed.watchConnections).toEqual(['end']);
  }, 60_000);
});
