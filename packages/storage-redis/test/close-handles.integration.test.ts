// close() must leave nothing of the store's connections behind: a process that closed its store
// exits at once. ioredis' disconnect() left a timer (its disconnectTimeout, 2 s) when the client was
// waiting to reconnect (ioredis #1247), and that client never reached `end`: a read queued on it
// waited for its whole commandTimeoutMs and then failed with STORE_UNAVAILABLE instead of CLOSED. A
// socket still connecting or in its handshake was only ended, not closed. (Found on 2026-11-29 with
// `progress ls redis://127.0.0.1:1`, which printed its error and then lived on for 2 s.)
//
// Each case runs in its own process (test/fixtures/closing.ts), which reports
// process.getActiveResourcesInfo() right after close() resolved: no timer and no socket. The
// process must then also exit by itself (the bound below only keeps a failure from hanging).
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { isProgressError } from '@progress/core';
import { Cluster } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../src/index.js';
import { freePort } from '../../../tools/test-utils/src/net.js';
import { redisUrl } from './helpers.js';
import { closingReport, expectNothingLeft, kept } from './spawn.js';

interface Closed {
  status: string;
  resources: string[];
  read?: string;
  watch?: string;
  watchConnections: string[];
  beforeCallerEnds: string[];
}

const servers: Array<{ server: Server; sockets: Set<Socket> }> = [];
afterAll(async () => {
  for (const { server, sockets } of servers) {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** A server that accepts connections and never answers nor closes them (a hung Redis). */
async function silentServer(): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  servers.push({ server, sockets });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** Runs test/fixtures/closing.ts in `mode` on `url` (see closingReport). */
const closeIn = (mode: string, url: string) => closingReport<Closed>('closing', { mode, url, connectionName: `test-closing-${process.pid}-${mode}` });

describe('RedisStore.close() leaves no socket or timer behind', () => {
  it('while its connection waits to reconnect (Redis refuses): a read queued on it fails with CLOSED', async () => {
    const report = await closeIn('refused', `redis://127.0.0.1:${await freePort()}`);
    const { closed } = report;
    expectNothingLeft(report);
    expect(closed.status).toBe('end');
    expect(closed.read).toBe('CLOSED');
  });

  it("while its first connect, and its watcher's, are still pending", async () => {
    const report = await closeIn('fresh', `redis://127.0.0.1:${await silentServer()}`);
    const { closed } = report;
    expectNothingLeft(report);
    expect(closed.status).toBe('end');
    expect(closed.watch).toBe('resolved');
  });

  it('while Redis accepted the connection but does not answer its handshake', async () => {
    const report = await closeIn('silent', `redis://127.0.0.1:${await silentServer()}`);
    const { closed } = report;
    expectNothingLeft(report);
    expect(closed.status).toBe('end');
  });

  it("while a watcher's connection waits to reconnect", async () => {
    const report = await closeIn('watch', redisUrl());
    const { closed } = report;
    expectNothingLeft(report);
    expect(closed.status).toBe('end');
    expect(closed.watchConnections).toEqual(['end']);
    expect(closed.watch).toBe('resolved');
  });

  it.each(['dropped', 'probing'] as const)('after its connection went silent and the store checked the link (%s)', async (mode) => {
    const report = await closeIn(mode, redisUrl());
    const { closed } = report;
    expectNothingLeft(report);
    expect(closed.status).toBe('end');
  });

  it("with a client passed in: ends the watcher's connection, leaves the caller's client open", async () => {
    const report = await closeIn('watch-passed-in', redisUrl());
    const { closed } = report;
    // Measured after the caller quit its own client.
    expectNothingLeft(report);
    expect(closed.status).toBe('ready');
    expect(closed.watchConnections).toEqual(['end']);
    expect(closed.watch).toBe('resolved');
  });

  it('with a client passed in that waits to reconnect: a read queued on it fails with CLOSED, and no wait of the store is left', async () => {
    const report = await closeIn('refused-passed-in', `redis://127.0.0.1:${await freePort()}`);
    const { closed } = report;
    // Measured after the caller ended its own client.
    expectNothingLeft(report);
    // Before that, only the caller's client is left: its timer of the next attempt to connect. The
    // read failed at close() (it waited until commandTimeoutMs, then failed with STORE_UNAVAILABLE),
    // and no timer of the store's waits is left (each kept the process alive for commandTimeoutMs
    // after the caller closed its client with disconnect(), which leaves the commands it queued unanswered).
    expect(kept(closed.beforeCallerEnds)).toEqual(['Timeout']);
    expect(closed.read).toBe('CLOSED');
    expect(closed.watch).toBe('resolved');
    expect(closed.watchConnections).toEqual(['end']);
  });
});

describe('RedisStore.close() in Cluster mode', () => {
  it("ends a watcher's Cluster that lost every node (waiting to reconnect)", async () => {
    // A Cluster whose nodes are all gone has an empty pool and only the timer of its next attempt:
    // disconnect() cleared the timer but left it `disconnecting` for good (it ends when its pool
    // drains), so the commands queued on it were never answered and close() waited out its bound.
    const duplicates: Cluster[] = [];
    const duplicate = Cluster.prototype.duplicate;
    Cluster.prototype.duplicate = function (this: Cluster, ...args: Parameters<Cluster['duplicate']>) {
      const conn = duplicate.apply(this, args);
      conn.on('error', () => {});
      duplicates.push(conn);
      return conn;
    };
    const client = new Cluster([{ host: '127.0.0.1', port: await freePort() }], { redisOptions: { maxRetriesPerRequest: null } });
    client.on('error', () => {});
    try {
      const store = new RedisStore({ redis: client, keyPrefix: `test:closing:cluster:${process.pid}:` });
      // The watcher's Cluster finds no node: the watcher ends (STORE_UNAVAILABLE) and ends its connection.
      const watched = await store.watch('u1', 0)[Symbol.asyncIterator]().next().then(
        () => 'resolved',
        (err: unknown) => (isProgressError(err) ? err.code : String(err)),
      );
      expect(watched).toBe('STORE_UNAVAILABLE');
      expect(duplicates).toHaveLength(1);
      const conn = duplicates[0]!;
      await store.close();
      expect(conn.status).toBe('end');
    } finally {
      Cluster.prototype.duplicate = duplicate;
      client.disconnect();
    }
  });
});
