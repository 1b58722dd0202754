import type { ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnCli } from './helpers.js';

// `watch` of a ws-server never reached gives up after `--connect-timeout` seconds (README: "for
// --connect-timeout seconds, default 10, then exit 4"). Against a host that takes the connection and
// never answers the upgrade request (a hung server, a firewall that accepts and drops), each try
// waited ws's own 5 s handshake timeout whatever the option said: `--connect-timeout 0.5` in a
// script gave up after 5 s, and a larger one overshot by up to that much again.

const children: ChildProcess[] = [];
const servers: Server[] = [];
const sockets: Socket[] = [];
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const socket of sockets) socket.destroy();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A server that takes connections and never answers a byte; `connected` resolves at the first. */
async function silentServer(): Promise<{ url: string; connected: Promise<number> }> {
  let onConnect!: (at: number) => void;
  const connected = new Promise<number>((resolve) => (onConnect = resolve));
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    onConnect(Date.now());
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`, connected };
}

describe('progress watch --connect-timeout against a server that never answers the handshake', () => {
  it('gives up after the timeout given (exit 4), not after the 5 s of a handshake', async () => {
    const server = await silentServer();
    const run = spawnCli(['watch', server.url, 'u1', '--connect-timeout', '0.5']);
    children.push(run.child);
    const connectedAt = await server.connected;
    const code = await run.exited;
    expect({ code, stderr: run.stderr() }).toEqual({ code: 4, stderr: expect.stringMatching(/^progress: cannot connect to ws:\/\/127\.0\.0\.1:\d+\/ws \(Opening handshake has timed out\)\n$/) });
    // A generous bound on a wait of 0.5 s: before, ws's 5 s handshake timeout held it at least 5 s.
    expect(Date.now() - connectedAt).toBeLessThan(4000);
  }, 30_000);
});
