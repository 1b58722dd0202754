// A certificate the CLI does not trust will not be trusted on the next try: `progress` gives up at
// once, with the one-line error (and the NODE_EXTRA_CA_CERTS hint) and exit 4 it gave after its
// retries, not after `--connect-timeout` of them (10 s by default). Against real TLS servers with a
// certificate of a private CA made by openssl for this run: a wss:// ws-server on node:https, and a
// redis-server serving TLS. The CLI runs in a process of its own, as a user runs it, with
// NODE_EXTRA_CA_CERTS emptied (or naming another CA). And a URL whose scheme the server does not
// speak (rediss:// for a plain Redis, redis:// for a TLS-only one) is said as such, not as a Redis
// that did not answer; ws:// to the wss:// server asks whether it wants TLS.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProgressWebSocketServer } from '@progress/ws-server';
import { makeTestCertificates, missingOpenssl, startTlsRedisServer, type TestCertificates, type TlsRedisServer } from '../../../tools/test-utils/src/tls.js';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const HINT = '; to trust a private CA, run with NODE_EXTRA_CA_CERTS=<its PEM file>';

/**
 * `progress <args>` in a process of its own (from source, through tsx), with `env` added. Killed
 * when the test ends (a CLI still retrying when the test timed out must not outlive it).
 */
const children = new Set<ChildProcess>();
function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@progress/source', 'src/cli/bin.ts', ...args], {
    cwd: packageDir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', NODE_EXTRA_CA_CERTS: '', ...env },
  });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) =>
    child.once('close', (code) => {
      children.delete(child);
      resolve({ code, out, err });
    }),
  );
}

let dir: string | undefined;
let certs: TestCertificates;
const skipped = missingOpenssl();

beforeAll(() => {
  if (skipped) return;
  dir = mkdtempSync(join(tmpdir(), 'progress-tls-refused-'));
  certs = makeTestCertificates(dir);
});

afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(skipped !== undefined && !process.env.CI)('progress watch wss:// to a server whose certificate it does not trust', () => {
  let https: Server;
  let server: ProgressWebSocketServer;
  let endpoint: string;

  beforeAll(async () => {
    https = createServer({ key: certs.key, cert: certs.cert });
    server = new ProgressWebSocketServer({ server: https, path: '/ws' });
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
    await server.start();
    endpoint = `wss://127.0.0.1:${(https.address() as AddressInfo).port}/ws`;
  });

  afterAll(async () => {
    await server?.stop();
    https?.close();
    https?.closeAllConnections();
  });

  // The bound is the test's timeout (30 s) against --connect-timeout 60: a CLI that retried a
  // refused certificate until then would time the test out.
  it('gives up at once, not after --connect-timeout: the one-line error with the hint, exit 4', async () => {
    for (const env of [{}, { NODE_EXTRA_CA_CERTS: certs.other }]) {
      const refused = await cli(['watch', endpoint, 'u1', '--connect-timeout', '60'], env);
      expect(refused.err).toBe(`progress: cannot connect to ${endpoint} (unable to verify the first certificate${HINT})\n`);
      expect(refused.code).toBe(4);
      // No "retrying": nothing is tried again.
      expect(refused.out).not.toContain('retrying');
    }
  }, 30_000);

  it('so too from the dashboard URL (https://) of that server', async () => {
    const page = endpoint.replace('wss://', 'https://').replace(/\/ws$/, '/');
    const refused = await cli(['watch', `${page}#u1`, '--connect-timeout', '60'], {});
    expect(refused.err).toBe(`progress: cannot connect to ${endpoint} (unable to verify the first certificate${HINT})\n`);
    expect(refused.code).toBe(4);
  }, 30_000);

  // The reverse: ws:// to this wss:// server, which closes the plain connection without a word, as a
  // server going down may: retried until --connect-timeout, each line and the final error asking
  // about TLS.
  it('ws:// to it: retried, asking whether it wants TLS, exit 4', async () => {
    const plain = endpoint.replace('wss://', 'ws://');
    const result = await cli(['watch', plain, 'u1', '--connect-timeout', '0.5'], { NODE_EXTRA_CA_CERTS: certs.ca });
    // Node's words for a server that closed the connection (`socket hang up`), or reset it.
    const why = '(socket hang up|read ECONNRESET); the server closed the connection without answering; does it want TLS\\? then use wss://, or https:// for a dashboard page';
    const url = plain.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    expect(result.err).toMatch(new RegExp(`^progress: cannot connect to ${url} \\(${why}\\)\n$`));
    expect(result.code).toBe(4);
    expect(result.out.split('\n')[0]).toMatch(new RegExp(`^cannot connect to ${url}: ${why}; retrying$`));
  }, 30_000);

  it('so too for a certificate of a trusted CA for another host name (said as it is, without the hint)', async (ctx) => {
    // The certificate is for 127.0.0.1 and localhost; 127.0.0.2 is loopback too on Linux.
    const other = createServer({ key: certs.key, cert: certs.cert });
    const listening = await new Promise<boolean>((resolve) => {
      other.once('error', () => resolve(false));
      other.listen(0, '127.0.0.2', () => resolve(true));
    });
    if (!listening) return ctx.skip('cannot listen on 127.0.0.2 here');
    try {
      const url = `wss://127.0.0.2:${(other.address() as AddressInfo).port}/ws`;
      const refused = await cli(['watch', url, 'u1', '--connect-timeout', '60'], { NODE_EXTRA_CA_CERTS: certs.ca });
      expect(refused.err).toBe(`progress: cannot connect to ${url} (Hostname/IP does not match certificate's altnames: IP: 127.0.0.2 is not in the cert's list: 127.0.0.1)\n`);
      expect(refused.code).toBe(4);
    } finally {
      other.close();
      other.closeAllConnections();
    }
  }, 30_000);
});

describe.skipIf(skipped !== undefined && !process.env.CI)('progress ls / show / watch rediss:// to a Redis whose certificate it does not trust, or a scheme the Redis does not speak', () => {
  let redis: TlsRedisServer | undefined;
  let url: string;
  let why: string | undefined;

  beforeAll(async () => {
    if (skipped) return;
    const started = await startTlsRedisServer(dir!);
    if (typeof started === 'string') return void (why = started);
    redis = started;
    url = `rediss://127.0.0.1:${started.tlsPort}`;
  });

  afterAll(() => redis?.stop());

  // The CLI waits 3 s for Redis to answer: no --connect-timeout to make larger. What shows that it
  // gave up on the certificate rather than on that wait is its message: the certificate's reason,
  // not "did not answer within 3000 ms".
  it('gives up on the certificate itself: the one-line error with the hint, exit 4', async (ctx) => {
    if (why) return ctx.skip(why);
    for (const args of [['ls', url], ['show', url, 'u1'], ['watch', url, 'u1']]) {
      for (const env of [{}, { NODE_EXTRA_CA_CERTS: certs.other }]) {
        const refused = await cli(args, env);
        expect(refused.err).toMatch(new RegExp(`^progress: cannot reach Redis at ${url}: self-signed certificate in certificate chain${HINT.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n$`));
        expect(refused.code).toBe(4);
      }
    }
  }, 60_000);

  // The reviewer's `progress ls rediss://127.0.0.1:6434` (a plain Redis) said only "no answer from
  // Redis within 3000 ms". The password of the URL stays out of what is printed.
  it('a URL whose scheme the Redis does not speak: asks whether it speaks TLS, exit 4', async (ctx) => {
    if (why) return ctx.skip(why);
    const said = (shown: string, down: string): string =>
      `progress: cannot reach Redis at ${shown}: [@progress/storage-redis] could not read the index of upgrades: no answer from Redis within 3000 ms (the connection is down: ${down})\n`;
    const [tlsToPlain, plainToTls] = await Promise.all([cli(['ls', `rediss://u:secret@127.0.0.1:${redis!.plainPort}`], {}), cli(['ls', `redis://u:secret@127.0.0.1:${redis!.tlsPort}`], {})]);
    expect(tlsToPlain).toEqual({
      code: 4,
      out: '',
      err: said(`rediss://u:***@127.0.0.1:${redis!.plainPort}`, 'the server took the connection but did not answer the TLS handshake; does it speak TLS? the URL says rediss://'),
    });
    expect(plainToTls.code).toBe(4);
    // A TLS-only Redis resets the connection on the plain command: on a read or a write, as the reset meets the client.
    const reset = (op: string) => said(`redis://u:***@127.0.0.1:${redis!.tlsPort}`, `${op} ECONNRESET; the server closed the connection without answering; does it want TLS? the URL says redis://`);
    expect([reset('read'), reset('write')]).toContain(plainToTls.err);
  }, 30_000);
});
