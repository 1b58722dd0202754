// `progress watch <dashboard URL>` when the page redirects between http:// and https:// on the same
// host name: up to https:// (a server that moved its dashboard to TLS), the endpoint the page names
// is used on the port the redirect ended on, over wss://; down to http://, the page names nothing
// and the token stays on the https:// host the user named. Real servers: node:http, node:https with
// a certificate of a private CA made by openssl for this run, and the CLI in a process of its own
// trusting that CA through NODE_EXTRA_CA_CERTS (read at process start).
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestCertificates, missingOpenssl, type TestCertificates } from '../../../tools/test-utils/src/tls.js';
import { ProgressWebSocketServer, createProgressTracker, dashboardHtml } from '../src/index.js';
import { spawnCli } from './helpers.js';

type Seen = { kind: 'http' | 'upgrade'; url: string; authorization?: string };

/** `server` listening on 127.0.0.1, recording every request (HTTP and WebSocket upgrade); upgrades are answered 404 unless `upgrades` is false (something else takes them). */
async function listening(server: Server, seen: Seen[], upgrades = true) {
  server.prependListener('request', (req: IncomingMessage) => void seen.push({ kind: 'http', url: req.url ?? '', authorization: req.headers.authorization }));
  server.prependListener('upgrade', (req: IncomingMessage) => void seen.push({ kind: 'upgrade', url: req.url ?? '', authorization: req.headers.authorization }));
  if (upgrades) server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

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
    const tlsSeen: Seen[] = [];
    const https = createHttpsServer({ key: certs.key, cert: certs.cert }, (req, res) => {
      if (req.url?.startsWith('/progress/')) ws.dashboardHandler(req, res);
      else res.writeHead(404).end();
    });
    const ws = new ProgressWebSocketServer({ server: https, path: '/progress/live' });
    const secure = await listening(https, tlsSeen, false);
    await ws.start();
    const tracker = await createProgressTracker({ upgradeId: 'moved', planId: 'p', clusterName: 'c', webSocket: ws });
    await tracker.startUpgrade();
    await tracker.completeUpgrade();
    // The old address: plain http, redirecting every request to the https:// one (a port of its own).
    const plainSeen: Seen[] = [];
    const plain = await listening(
      createHttpServer((req, res: ServerResponse) => res.writeHead(301, { location: `https://127.0.0.1:${secure.port}${req.url}` }).end()),
      plainSeen,
    );
    try {
      // With credentials for the old address: not taken to the new one.
      const result = await watch(certs.ca, 'watch', `http://alice:pw@127.0.0.1:${plain.port}/progress/#moved`, '--connect-timeout', '10');
      expect(result, result.err).toMatchObject({ code: 0, err: '' });
      expect(result.out).toMatch(/moved .*COMPLETED/);
      // The page was read through the redirect; the socket went straight to the endpoint it names.
      expect(plainSeen.map((r) => `${r.kind} ${r.url}`)).toEqual(['http /progress/']);
      expect(tlsSeen.map((r) => `${r.kind} ${r.url} ${r.authorization}`)).toEqual(['http /progress/ undefined', 'upgrade /progress/live undefined']);
      expect(plainSeen[0]!.authorization).toBe(`Basic ${Buffer.from('alice:pw').toString('base64')}`);
    } finally {
      await tracker.close();
      await ws.stop();
      await secure.close();
      await plain.close();
    }
  });

  it('does not follow a page redirected down to http://: the token stays on the https:// host named, beside the page', async () => {
    // The http:// page names an endpoint of its own: the token would go to it in the clear.
    const plainSeen: Seen[] = [];
    const plain = await listening(
      createHttpServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(dashboardHtml('/elsewhere'))),
      plainSeen,
    );
    const tlsSeen: Seen[] = [];
    const secure = await listening(
      createHttpsServer({ key: certs.key, cert: certs.cert }, (_req, res) => res.writeHead(302, { location: `http://127.0.0.1:${plain.port}/page/` }).end()),
      tlsSeen,
    );
    try {
      const result = await watch(certs.ca, 'watch', `https://127.0.0.1:${secure.port}/?token=query-secret`, 'u1', '--token', 'flag-secret', '--connect-timeout', '5');
      // The endpoint beside the page answers 404: nothing to follow.
      expect(result.code, result.out + result.err).toBe(3);
      expect(plainSeen.filter((r) => r.kind === 'upgrade')).toEqual([]);
      expect(JSON.stringify(plainSeen)).not.toMatch(/secret/);
      expect(tlsSeen.filter((r) => r.kind === 'upgrade').map((r) => [r.url, r.authorization])).toEqual([['/ws?token=query-secret', 'Bearer flag-secret']]);
    } finally {
      await secure.close();
      await plain.close();
    }
  });
});
