// `progress watch <dashboard URL>` when the page redirects between http:// and https:// on the same
// host name: up to https:// (a server that moved its dashboard to TLS), the endpoint the page names
// is used on the port the redirect ended on, over wss://; down to http://, the page names nothing
// and the token stays on the https:// host the user named. Real servers: node:http, node:https with
// a certificate of a private CA made by openssl for this run, and the CLI in a process of its own
// trusting that CA through NODE_EXTRA_CA_CERTS (read at process start).
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestCertificates, missingOpenssl, type TestCertificates } from '../../../tools/test-utils/src/tls.js';
import { ProgressWebSocketServer, createProgressTracker, dashboardHtml } from '../src/index.js';
import { recordRequests, spawnCli } from './helpers.js';

/** `progress <args>`, trusting the test CA, to its exit. */
async function watch(ca: string, ...args: string[]) {
  const { exited, stdout, stderr } = spawnCli(args, { env: { NODE_EXTRA_CA_CERTS: ca } });
  const code = await exited;
  return { code, out: stdout(), err: stderr() };
}

describe.skipIf(missingOpenssl() !== undefined && !process.env.CI)('progress watch <dashboard URL> redirected between http:// and https:// on one host name', () => {
  let dir: string;
  let certs: TestCertificates;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'progress-redirect-tls-'));
    certs = makeTestCertificates(dir);
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('follows a page moved up to https:// on another port: the endpoint it names, there, over wss://', async () => {
    // The dashboard served over TLS under /progress/, with its endpoint at /progress/live (not beside the page).
        const https = createHttpsServer({ key: certs.key, cert: certs.cert }, (req, res) => {
      if (req.url?.startsWith('/progress/')) ws.dashboardHandler(req, res);
      else res.writeHead(404).end();
    });
    const ws = new ProgressWebSocketServer({ server: https, path: '/progress/live' });
    const secure = await recordRequests(https, { answerUpgrades: false });
    await ws.start();
    const tracker = await createProgressTracker({ upgradeId: 'moved', planId: 'p', clusterName: 'c', webSocket: ws });
    await tracker.startUpgrade();
    await tracker.completeUpgrade();
    // The old address: plain http, redirecting every request to the https:// one (a port of its own).
        const plain = await recordRequests(createHttpServer((req, res) => res.writeHead(301, { location: `https://127.0.0.1:${secure.port}${req.url}` }).end()));
    try {
      // With credentials for the old address: not taken to the new one.
      const result = await watch(certs.ca, 'watch', `http://alice:pw@127.0.0.1:${plain.port}/progress/#moved`, '--connect-timeout', '10');
      expect(result, result.err).toMatchObject({ code: 0, err: '' });
      expect(result.out).toMatch(/moved .*COMPLETED/);
      // The page was read through the redirect; the socket went straight to the endpoint it names.
      expect(plain.seen.map((r) => `${r.kind} ${r.url}`)).toEqual(['http /progress/']);
      expect(secure.seen.map((r) => `${r.kind} ${r.url} ${r.authorization}`)).toEqual(['http /progress/ undefined', 'upgrade /progress/live undefined']);
      expect(plain.seen[0]!.authorization).toBe(`Basic ${Buffer.from('alice:pw').toString('base64')}`);
    } finally {
      await tracker.close();
      await ws.stop();
      await secure.close();
      await plain.close();
    }
  });

  it('does not follow a page redirected down to http://: the token stays on the https:// host named, beside the page', async () => {
    // The http:// page names an endpoint of its own: the token would go to it in the clear.
        const plain = await recordRequests(createHttpServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(dashboardHtml('/elsewhere'))));
        const secure = await recordRequests(createHttpsServer({ key: certs.key, cert: certs.cert }, (_req, res) => res.writeHead(302, { location: `http://127.0.0.1:${plain.port}/page/` }).end()));
    try {
      const result = await watch(certs.ca, 'watch', `https://127.0.0.1:${secure.port}/?token=query-secret`, 'u1', '--token', 'flag-secret', '--connect-timeout', '5');
      // The endpoint beside the page answers 404: nothing to follow.
      expect(result.code, result.out + result.err).toBe(3);
      expect(plain.seen.filter((r) => r.kind === 'upgrade')).toEqual([]);
      expect(JSON.stringify(plain.seen)).not.toMatch(/secret/);
      expect(secure.seen.filter((r) => r.kind === 'upgrade').map((r) => [r.url, r.authorization])).toEqual([['/ws?token=query-secret', 'Bearer flag-secret']]);
    } finally {
      await secure.close();
      await plain.close();
    }
  });
});
