import type { ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, silentServer, spawnCli } from './helpers.js';

// `watch` of a ws-server never reached gives up after `--connect-timeout` seconds (README: "for
// --connect-timeout seconds, default 10, then exit 4"). Against a host that takes the connection and
// never answers the upgrade request (a hung server, a firewall that accepts and drops), each try
// waited ws's own 5 s handshake timeout whatever the option said: `--connect-timeout 0.5` in a
// script gave up after 5 s, and a larger one overshot by up to that much again.

const children: ChildProcess[] = [];
const closers: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all(closers.map((close) => close()));
});

describe('progress watch --connect-timeout against a server that never answers the handshake', () => {
  it('gives up after the timeout given (exit 4), not after the 5 s of a handshake', async () => {
    const server = await silentServer();
    closers.push(server.close);
    const run = spawnCli(['watch', `ws://127.0.0.1:${server.port}/ws`, 'u1', '--connect-timeout', '0.5']);
    children.push(run.child);
    const connectedAt = await server.connected;
    const code = await run.exited;
    expect({ code, stderr: run.stderr() }).toEqual({ code: 4, stderr: expect.stringMatching(/^progress: cannot connect to ws:\/\/127\.0\.0\.1:\d+\/ws \(Opening handshake has timed out\)\n$/) });
    // A generous bound on a wait of 0.5 s: before, ws's 5 s handshake timeout held it at least 5 s.
    expect(Date.now() - connectedAt).toBeLessThan(4000);
  }, 30_000);

  it('waits the seconds given, not as many ms', async () => {
    const server = await silentServer();
    closers.push(server.close);
    const started = Date.now();
    const result = await runCli('watch', `ws://127.0.0.1:${server.port}/ws`, 'u1', '--connect-timeout', '1.5');
    expect(result).toMatchObject({ code: 4, err: expect.stringContaining('Opening handshake has timed out') });
    // A lower bound the timers enforce.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
  }, 30_000);
});
