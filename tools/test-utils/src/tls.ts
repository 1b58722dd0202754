import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './net.js';
import { answersPing } from './redis.js';

/** What {@link makeTestCertificates} wrote: paths of PEM files in its folder, and the server's key and certificate. */
export interface TestCertificates {
  /** The CA that signed `cert` (a PEM file). */
  ca: string;
  /** A CA that signed nothing here (a PEM file): trusting it instead of `ca` must fail. */
  other: string;
  /** The server's key and certificate (for 127.0.0.1 and localhost), PEM text. */
  key: string;
  cert: string;
  /** The same two as files in `dir` (a redis-server reads files). */
  keyFile: string;
  certFile: string;
}

/** Why TLS tests cannot run here (no openssl), or undefined when they can. */
export function missingOpenssl(): string | undefined {
  return spawnSync('openssl', ['version']).status === 0 ? undefined : 'openssl is not installed (Debian: apt-get install openssl)';
}

/**
 * A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost, valid one day,
 * made with openssl into `dir` (the caller's temp folder, removed by the caller). EC keys: made in
 * milliseconds.
 */
export function makeTestCertificates(dir: string): TestCertificates {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const caExt = ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=progress test CA', ...caExt);
  ssl('req', '-x509', ...ec, '-keyout', 'other.key', '-out', 'other.pem', '-days', '1', '-subj', '/CN=progress test CA', ...caExt);
  ssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'ext.cnf');
  const keyFile = join(dir, 'server.key');
  const certFile = join(dir, 'server.pem');
  return { ca: join(dir, 'ca.pem'), other: join(dir, 'other.pem'), key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8'), keyFile, certFile };
}

/** A redis-server of a test's own serving TLS (see {@link startTlsRedisServer}). */
export interface TlsRedisServer {
  /** The plain-text port, for an admin connection. */
  plainPort: number;
  /** The TLS port, with the certificate {@link makeTestCertificates} wrote into the folder. */
  tlsPort: number;
  /** Stops it (SIGTERM) and waits for its exit. */
  stop(): Promise<void>;
}

/**
 * Starts a redis-server serving TLS with the certificate {@link makeTestCertificates} wrote into
 * `dir` (clients need not present one), and plain text on another port, keeping nothing on disk.
 * Resolves with why it cannot run here (no redis-server, or one built without TLS) as a string, for
 * the caller to skip with.
 */
export async function startTlsRedisServer(dir: string): Promise<TlsRedisServer | string> {
  const plainPort = await freePort();
  const tlsPort = await freePort();
  let output = '';
  const server = spawn(
    'redis-server',
    ['--port', String(plainPort), '--tls-port', String(tlsPort), '--bind', '127.0.0.1', '--tls-cert-file', 'server.pem', '--tls-key-file', 'server.key',
      '--tls-ca-cert-file', 'ca.pem', '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no', '--dir', dir],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  server.stdout.on('data', (d: Buffer) => (output += String(d)));
  server.stderr.on('data', (d: Buffer) => (output += String(d)));
  const gone = new Promise<string>((resolve) => {
    server.once('error', () => resolve('redis-server is not installed'));
    server.once('exit', () => resolve(`redis-server would not start with TLS (a build without TLS support?): ${output.trim().split('\n').at(-1) ?? ''}`));
  });
  const stop = async (): Promise<void> => {
    if (server.exitCode !== null || server.signalCode !== null || server.pid === undefined) return;
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  };
  for (const end = Date.now() + 10_000; ; ) {
    const up = await Promise.race([gone, answersPing('127.0.0.1', plainPort).then((ok) => (ok ? null : undefined))]);
    if (typeof up === 'string') return up;
    if (up === null) return { plainPort, tlsPort, stop };
    if (Date.now() > end) {
      await stop();
      throw new Error(`redis-server did not answer on 127.0.0.1:${plainPort} within 10 s: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
