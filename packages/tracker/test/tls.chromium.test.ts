import { spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ProgressTracker } from '@progress/core';
import { createReadToken, ProgressWebSocketServer, readTokenAuth } from '@progress/ws-server';
import { CHROMIUM_PATH, hasChromium } from '../../../tools/test-utils/src/chromium.js';
import { makeTestCertificates, missingOpenssl, type TestCertificates } from '../../../tools/test-utils/src/tls.js';
import { uniqueId } from './helpers.js';

// The ws-server attached to a real node:https server under a path prefix, as production puts the
// dashboard behind HTTPS, with a certificate of a private CA made by openssl for this run: the
// dashboard in Chromium (trusting that certificate only) and the `progress watch` CLI (trusting the
// CA through NODE_EXTRA_CA_CERTS, read at process start: the CLI runs in a process of its own).

const SECRET = 'a-test-secret-of-at-least-32-chars';
const packageDir = fileURLToPath(new URL('..', import.meta.url));

/** The status a WebSocket handshake to `port` with these headers is answered (101 when accepted). */
function handshakeStatus(port: number, path: string, headers: Record<string, string>, ca: Buffer): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path,
      ca,
      servername: 'localhost',
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
    });
    req.once('upgrade', (res, socket) => {
      socket.destroy();
      resolve(res.statusCode);
    });
    req.once('response', (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.once('error', reject);
    req.end();
  });
}

/** `progress <args>` in a process of its own (from source, through tsx), with `env` added. */
function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@progress/source', 'src/cli/bin.ts', ...args], {
    cwd: packageDir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', NODE_EXTRA_CA_CERTS: '', ...env },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, out, err })));
}

describe.skipIf((!hasChromium() || missingOpenssl() !== undefined) && !process.env.CI)('the ws-server attached to an https server under /progress/, with read tokens', () => {
  let dir: string;
  let certs: TestCertificates;
  let https: Server;
  let server: ProgressWebSocketServer;
  let port: number;
  let url: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'progress-tls-'));
    certs = makeTestCertificates(dir);
    https = createServer({ key: certs.key, cert: certs.cert }, (req, res) => {
      if (req.url?.startsWith('/progress/')) server.dashboardHandler(req, res);
      else res.writeHead(404).end();
    });
    server = new ProgressWebSocketServer({ server: https, path: '/progress/ws', ...readTokenAuth({ secret: SECRET }) });
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
    port = (https.address() as AddressInfo).port;
    ({ url } = await server.start());
  });

  afterAll(async () => {
    await server?.stop();
    https?.close();
    https?.closeAllConnections();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('start() gives the wss:// address of the endpoint, and a client trusting the CA connects to it', async () => {
    expect(url).toBe(`wss://127.0.0.1:${port}/progress/ws`);
    const token = createReadToken({ secret: SECRET, upgradeIds: ['*'] });
    const ws = new WebSocket(`${url}?token=${token}`, { ca: readFileSync(certs.ca) });
    const welcome = await new Promise<Record<string, unknown>>((resolve, reject) => {
      ws.once('message', (raw) => resolve(JSON.parse(raw.toString()) as Record<string, unknown>));
      ws.once('error', reject);
    });
    ws.close();
    expect(welcome.type).toBe('welcome');
  });

  it('refuses, by default, a page of the same host name over plain http (another origin), as a browser on http://localhost sends to wss://localhost', async () => {
    const token = createReadToken({ secret: SECRET, upgradeIds: ['*'] });
    const ca = readFileSync(certs.ca);
    // What a browser sends for wss://localhost/progress/ws (port 443, left out of Host and Origin), from each page.
    const from = (origin: string) => handshakeStatus(port, `/progress/ws?token=${token}`, { Host: 'localhost', Origin: origin }, ca);
    expect(await from('https://localhost')).toBe(101);
    expect(await from('http://localhost')).toBe(403);
  });

  it('serves the dashboard over https, which connects with wss:// to the prefixed path and shows live events; the CLI follows the upgrade over wss:// with the CA, and says what is wrong with the certificate without it', async () => {
    const id = uniqueId('tls');
    const tracker = await ProgressTracker.open({ upgradeId: id, planId: 'p', clusterName: 'c' });
    server.track(tracker);
    await tracker.startUpgrade('Control plane');
    await tracker.addTask('plan', 'Upgrade plan', 'upgrade_plan');
    const token = createReadToken({ secret: SECRET, upgradeIds: [id] });

    // Chromium trusts this certificate's key only (its hash in --ignore-certificate-errors-spki-list), no other.
    const spki = createHash('sha256').update(new X509Certificate(certs.cert).publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
    const userDataDir = mkdtempSync(join(tmpdir(), 'progress-chromium-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update', '--no-first-run', `--ignore-certificate-errors-spki-list=${spki}`],
    });
    try {
      const page = await context.newPage();
      const sockets: string[] = [];
      page.on('websocket', (ws) => sockets.push(ws.url()));
      await page.goto(`https://127.0.0.1:${port}/progress/?token=${token}#${id}`);
      await page.waitForSelector('[data-task-id="plan"]');
      await expect.poll(() => page.textContent('#conn')).toBe('live');
      expect(sockets).toEqual([`wss://127.0.0.1:${port}/progress/ws?token=${token}`]);
      await tracker.addTask('drain', 'Drain nodes', 'upgrade_step', { totalSteps: 4 });
      await tracker.updateTaskProgress('drain', 50);
      await expect.poll(() => page.getAttribute('[data-task-id="drain"] [role="progressbar"]', 'aria-valuenow')).toBe('50');
    } finally {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    }

    // The CLI, from the endpoint's wss:// URL, follows the upgrade to its end (events written while it watches).
    const trusted = { NODE_EXTRA_CA_CERTS: certs.ca };
    const endpoint = `wss://127.0.0.1:${port}/progress/ws`;
    const watching = cli(['watch', endpoint, id, '--token', token], trusted);
    await expect.poll(() => server.getStats().clients, { timeout: 10_000 }).toBeGreaterThan(0);
    await tracker.completeTask('plan');
    await tracker.completeTask('drain');
    await tracker.completeUpgrade();
    const watched = await watching;
    expect(watched.err).toBe('');
    expect(watched.code).toBe(0);
    expect(watched.out).toContain(`${id}  cluster c  plan p  COMPLETED`);

    // From the dashboard's https:// URL, as copied from the browser (the page names the endpoint).
    const fromPage = await cli(['watch', `https://127.0.0.1:${port}/progress/?token=${token}#${id}`], trusted);
    expect(fromPage.err).toBe('');
    expect(fromPage.code).toBe(0);
    expect(fromPage.out).toContain(`${id}  cluster c  plan p  COMPLETED`);

    // Not trusting the CA (none, or another): exit 4 with OpenSSL's reason on one line, no stack trace.
    for (const env of [{}, { NODE_EXTRA_CA_CERTS: certs.other }]) {
      const refused = await cli(['watch', endpoint, id, '--token', token, '--connect-timeout', '0'], env);
      expect(refused.code).toBe(4);
      expect(refused.err).toBe(`progress: cannot connect to ${endpoint} (unable to verify the first certificate; to trust a private CA, run with NODE_EXTRA_CA_CERTS=<its PEM file>)\n`);
    }
    await tracker.close();
  });
});
