import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

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
