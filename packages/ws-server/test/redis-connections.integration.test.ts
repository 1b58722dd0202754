import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { RedisStore } from '@progress/storage-redis';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressWebSocketServer } from '../src/index.js';
import { deleteKeys } from '../../../tools/test-utils/src/redis.js';
import { TestClient } from './helpers.js';

const closers: Array<() => Promise<unknown>> = [];

afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

/** Redis' `CLIENT LIST`, asked over a plain socket (inline command, bulk-string reply). */
async function clientList(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port) || 6379, hostname, () => socket.write('CLIENT LIST\r\n'));
    let reply = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      reply += chunk;
      const header = /^\$(\d+)\r\n/.exec(reply);
      if (header && Buffer.byteLength(reply) >= header[0].length + Number(header[1]) + 2) {
        socket.end();
        resolve(reply.slice(header[0].length));
      }
    });
    socket.on('error', reject);
  });
}

describe('ws-server over Redis: the connections clients can make it open', () => {
  it('opens at most maxWatchedUpgrades watch connections, whatever the clients subscribe to', async () => {
    const url = process.env.REDIS_URL;
    if (!url) throw new Error('REDIS_URL is not set: the global setup should have started a Redis');
    const connectionName = `ws-conn-${randomUUID().slice(0, 8)}`;
    const store = new RedisStore({ url, keyPrefix: `${connectionName}:`, connectionName, watchBlockMs: 200 });
    // Run in reverse: the keys go once the store is closed.
    closers.push(() => deleteKeys(url, `${connectionName}:`), () => store.close());
    const server = new ProgressWebSocketServer({ port: 0, store, maxWatchedUpgrades: 3 });
    closers.push(() => server.stop());
    const { url: wsUrl } = await server.start();
    const clients = await Promise.all([TestClient.connect(wsUrl), TestClient.connect(wsUrl)]);
    closers.push(...clients.map((c) => () => c.close()));
    // Upgrade ids nobody writes: each one followed would be a Redis connection of its own.
    clients.forEach((c, n) => {
      for (let i = 0; i < 5; i++) c.send({ type: 'subscribe', upgradeId: `nobody-${n}-${i}` });
      c.send({ type: 'ping' });
    });
    await Promise.all(clients.map((c) => c.next((m) => m.type === 'pong')));
    expect(clients.flatMap((c) => c.ofType('subscribed'))).toHaveLength(3);
    expect(clients.flatMap((c) => c.ofType('error')).map((m) => m.code)).toEqual(['RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED']);
    // The watch connections open as each watch starts: wait for the three (Redis sees what the server counts).
    let watching = 0;
    for (let tries = 0; tries < 100 && watching < 3; tries++) {
      watching = (await clientList(url)).split('\n').filter((line) => line.includes(` name=${connectionName}:watch `)).length;
      if (watching < 3) await new Promise((r) => setTimeout(r, 20));
    }
    expect(watching).toBe(3);
    expect(server.getStats().watchedUpgrades).toBe(3);
  });
});
