import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { IncomingMessage } from 'node:http';
import { MemoryStore } from '@progress/core';
import type { Socket } from 'node:net';
import { ProgressWebSocketServer, createReadToken, readTokenAuth, verifyReadToken, type ProgressWebSocketServerOptions } from '../src/index.js';
import { resolveOptions } from '../src/options.js';
import { closedAfterEach, openTracker, sleep, type TestClient } from './helpers.js';
import { makeTestCertificates, missingOpenssl } from '../../../tools/test-utils/src/tls.js';
import { clientFrame, closeCodeIn, rawExchange, rawWebSocket, upgradeRequest } from './raw.js';
import { UnreliableStore, WatchableMemoryStore } from './watchable-store.js';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const opened = closedAfterEach();
const { trackers, clients, connect } = opened;

async function start(options: ProgressWebSocketServerOptions = {}): Promise<{ url: string; port: number }> {
  opened.server = new ProgressWebSocketServer({ port: 0, ...options });
  return opened.server.start();
}
function status(err: unknown): number | undefined {
  return (err as { statusCode?: number }).statusCode;
}
/** Connects to `address` as a page served from `http://${host}` does (a rebound DNS name, or a loopback one): Host and Origin name `host`. */
async function asPageOf(host: string, port: number, address = '127.0.0.1'): Promise<TestClient> {
  const c = await connect(`ws://${address.includes(':') ? `[${address}]` : address}:${port}/ws`, { headers: { host }, origin: `http://${host}` });
  await c.next((m) => m.type === 'welcome');
  return c;
}
/** The first address of this machine that is not a loopback one, if any. */
function outsideAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((i) => i && !i.internal && i.family === 'IPv4')?.address;
}
const hasIpv6 = Object.values(networkInterfaces())
  .flat()
  .some((i) => i?.internal && i.family === 'IPv6');
/** The server still serves: a fresh client gets welcome and pong. */
async function stillServes(url: string): Promise<void> {
  const c = await connect(url);
  await c.answered();
}

describe('credentials that expire', () => {
  it('closes a connection with 1008 when the read token that opened it expires', async () => {
    const { url } = await start(readTokenAuth({ secret: SECRET }));
    const token = createReadToken({ secret: SECRET, upgradeIds: ['u1'], ttlSeconds: 1 });
    const client = await connect(`${url}?token=${token}`);
    await client.next((m) => m.type === 'welcome');
    expect(await client.closed).toBe(1008);
  });

  it('lets go of the expiry timer of a connection that closed before its credentials expired', async () => {
    const { url } = await start({ heartbeatMs: 0, ...readTokenAuth({ secret: SECRET }) });
    const token = createReadToken({ secret: SECRET, upgradeIds: ['u1'], ttlSeconds: 3600 });
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const client = await connect(`${url}?token=${token}`);
      await client.next((m) => m.type === 'welcome');
      expect(vi.getTimerCount()).toBeGreaterThan(0);
      client.ws.close();
      for (let i = 0; i < 500 && opened.server!.getStats().clients > 0; i++) await vi.advanceTimersByTimeAsync(10);
      expect(opened.server!.getStats().clients).toBe(0);
      // A timer per connection left until its token's exp would hold each closed connection for as long.
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('closes it too when the token expires further away than a timer can wait (30 days)', async () => {
    const { url } = await start({ heartbeatMs: 0, ...readTokenAuth({ secret: SECRET }) });
    const token = createReadToken({ secret: SECRET, upgradeIds: ['u1'], ttlSeconds: 30 * 24 * 3600 });
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const client = await connect(`${url}?token=${token}`);
      await client.next((m) => m.type === 'welcome');
      await vi.advanceTimersByTimeAsync(29 * 24 * 3600 * 1000);
      expect(client.closeCode).toBeUndefined();
      await vi.advanceTimersByTimeAsync(2 * 24 * 3600 * 1000);
      vi.useRealTimers();
      expect(await client.closed).toBe(1008);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('heartbeat', () => {
  it('terminates a peer that reads nothing although it sends pongs unasked: only the answer to the ping counts', async () => {
    const { url } = await start({ heartbeatMs: 50 });
    const c = await connect(url);
    await c.next((m) => m.type === 'welcome');
    (c.ws as unknown as { _socket: Socket })._socket.pause();
    const pongs = setInterval(() => c.ws.pong(), 20);
    try {
      for (let i = 0; i < 100 && opened.server!.getStats().clients > 0; i++) await sleep(20);
      expect(opened.server!.getStats().clients).toBe(0);
    } finally {
      clearInterval(pongs);
    }
  });
});

describe('handshake: authenticate (401) and origins (403)', () => {
  it('answers 401 before any frame when authenticate refuses, and accepts what it accepts', async () => {
    const { url, port } = await start({ authenticate: (req: IncomingMessage) => (req.headers.authorization === 'Bearer good' ? { user: 'ann' } : undefined) });
    await expect(connect(url)).rejects.toSatisfy((e) => status(e) === 401);
    await expect(connect(url, { headers: { authorization: 'Bearer bad' } })).rejects.toSatisfy((e) => status(e) === 401);
    const raw = await rawExchange(port, upgradeRequest('/ws'));
    expect(raw.response).toMatch(/^HTTP\/1\.1 401 /);
    expect(raw.response).not.toContain('101');
    const ok = await connect(url, { headers: { authorization: 'Bearer good' } });
    await ok.next((m) => m.type === 'welcome');
  });

  it('answers 401 when authenticate returns false or null, as the README says, sync or async', async () => {
    // The natural hook is a check: `(req) => req.headers.authorization === 'Bearer good'`.
    for (const refusal of [false, null]) {
      for (const hook of [(req: IncomingMessage) => (req.headers.authorization === 'Bearer good' ? true : refusal), async (req: IncomingMessage) => (req.headers.authorization === 'Bearer good' ? true : refusal)]) {
        const { url } = await start({ authenticate: hook });
        await expect(connect(url, { headers: { authorization: 'Bearer bad' } }), `${String(refusal)}, ${hook.constructor.name}`).rejects.toSatisfy((e) => status(e) === 401);
        await (await connect(url, { headers: { authorization: 'Bearer good' } })).next((m) => m.type === 'welcome');
        await opened.server!.stop();
      }
    }
  });

  it('answers 401 when authenticate throws or rejects', async () => {
    const { url } = await start({ authenticate: async () => Promise.reject(new Error('boom')) });
    await expect(connect(url)).rejects.toSatisfy((e) => status(e) === 401);
  });

  it('answers 403 to an origin not allowed; allowed origins and requests without Origin pass', async () => {
    const { url } = await start({ allowedOrigins: ['https://dash.example.com'] });
    await expect(connect(url, { origin: 'https://evil.example.com' })).rejects.toSatisfy((e) => status(e) === 403);
    await (await connect(url, { origin: 'https://dash.example.com' })).next((m) => m.type === 'welcome');
    await (await connect(url)).next((m) => m.type === 'welcome');
    expect(opened.server!.getStats().handshakesRefused).toBe(1);
  });

  it('compares an Origin with the allow-list without regard to case, as scheme and host are', async () => {
    const { url } = await start({ allowedOrigins: ['https://Dash.Example.com'] });
    await (await connect(url, { origin: 'HTTPS://DASH.EXAMPLE.COM' })).next((m) => m.type === 'welcome');
    await (await connect(url, { origin: 'https://dash.example.com' })).next((m) => m.type === 'welcome');
    await expect(connect(url, { origin: 'HTTPS://EVIL.EXAMPLE.COM' })).rejects.toSatisfy((e) => status(e) === 403);
  });

  it('refuses an allowedOrigins entry that no browser sends as Origin, naming the origin meant, rather than answer every page 403', async () => {
    // A browser's Origin is scheme://host[:port]: no path, no trailing slash, no default port. Such an
    // entry matched nothing, and the server started and refused every page without a word.
    for (const [entry, meant] of [
      ['https://ops.example.com/', 'https://ops.example.com'],
      ['https://ops.example.com:443', 'https://ops.example.com'],
      ['http://ops.example.com:80/dashboard', 'http://ops.example.com'],
      ['ops.example.com', 'https://ops.example.com'],
      ['*', "allowedOrigins: '*'"],
      // An empty entry (a list read from `ORIGINS=a,b,` split on commas): said so, not "did you mean https://".
      ['', 'an empty entry'],
    ]) {
      expect(() => new ProgressWebSocketServer({ port: 0, allowedOrigins: ['https://ok.example.com', entry!] }), entry).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining(meant!) }),
      );
    }
    // Origins as browsers send them pass, in any case, as do the opaque 'null' and other schemes' origins.
    for (const entry of ['https://ops.example.com', 'HTTP://LOCALHOST:3000', 'http://[::1]:8080', 'null', 'chrome-extension://abcdefghijklmnop']) {
      expect(() => new ProgressWebSocketServer({ port: 0, allowedOrigins: [entry] }), entry).not.toThrow();
    }
    const { url } = await start({ allowedOrigins: ['HTTPS://Dash.Example.com'] });
    await (await connect(url, { origin: 'https://dash.example.com' })).next((m) => m.type === 'welcome');
  });

  it("takes 'file://' in allowedOrigins: the Origin an Electron or Cordova page loaded from a file sends", async () => {
    // Refused as "not an origin" (it has no host) while such an app's pages connect with exactly that Origin.
    const { url } = await start({ allowedOrigins: ['file://'] });
    await (await connect(url, { origin: 'file://' })).next((m) => m.type === 'welcome');
    await expect(connect(url, { origin: 'https://evil.example.com' })).rejects.toSatisfy((e) => status(e) === 403);
  });

  it('by default takes only its own origin, and only loopback Host names on a loopback address (no DNS rebinding)', async () => {
    const { url, port } = await start();
    await expect(connect(url, { origin: 'https://evil.example.com' })).rejects.toSatisfy((e) => status(e) === 403);
    await expect(connect(url, { origin: `http://127.0.0.1:${port + 1}` })).rejects.toSatisfy((e) => status(e) === 403);
    await (await connect(url, { origin: `http://127.0.0.1:${port}` })).next((m) => m.type === 'welcome');
    await (await connect(url)).next((m) => m.type === 'welcome');
    // A page on rebound.example (resolving to 127.0.0.1) sends its own name as Host and Origin.
    const rebound = await rawExchange(
      port,
      upgradeRequest('/ws', [`Origin: http://rebound.example:${port}`]).replace('Host: 127.0.0.1', `Host: rebound.example:${port}`),
    );
    expect(rebound.response).toMatch(/^HTTP\/1\.1 403 /);
  });

  it('takes only loopback Host names on a loopback connection also when listening on 0.0.0.0 or ::, or attached to an http.Server', async () => {
    const http = createServer((_req, res) => res.end('app'));
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
    try {
      const ports: Array<[string, number]> = [];
      const any = new ProgressWebSocketServer({ port: 0, host: '0.0.0.0' });
      ports.push(['0.0.0.0', (await any.start()).port]);
      const attached = new ProgressWebSocketServer({ server: http });
      ports.push(['attached', (await attached.start()).port]);
      const dual = hasIpv6 ? new ProgressWebSocketServer({ port: 0, host: '::' }) : undefined; // 127.0.0.1 arrives as ::ffff:127.0.0.1
      if (dual) ports.push(['::', (await dual.start()).port]);
      try {
        for (const [label, port] of ports) {
          // A page on rebound.example, whose name now resolves to 127.0.0.1, sends its own name as Host and Origin.
          await expect(asPageOf(`rebound.example:${port}`, port), label).rejects.toSatisfy((e) => status(e) === 403);
          for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `127.3.2.1:${port}`, `[::1]:${port}`]) await asPageOf(host, port);
        }
      } finally {
        await Promise.all(clients.splice(0).map((c) => c.close()));
        await Promise.all([any.stop(), attached.stop(), dual?.stop()]);
      }
    } finally {
      await new Promise<void>((r) => {
        http.close(() => r());
        http.closeAllConnections();
      });
    }
  });

  it('reports a wildcard host however it is written as localhost, a URL whose page is let in', async () => {
    // '0' is 0.0.0.0 to the OS; a page opened at http://0:PORT/ is refused (its Host is not a loopback name).
    // '::ffff:0.0.0.0' (0.0.0.0 mapped into IPv6) takes IPv4 connections on every interface too: it was
    // reported as ws://[::ffff:0.0.0.0]:PORT/ws, a URL whose page was refused.
    for (const host of ['0.0.0.0', '0', ...(hasIpv6 ? ['::', '::0', '0:0:0:0:0:0:0:0', '::ffff:0.0.0.0'] : [])]) {
      const { url, port } = await start({ host });
      expect(url, host).toBe(`ws://localhost:${port}/ws`);
      const page = await connect(url, { origin: `http://localhost:${port}` });
      await page.next((m) => m.type === 'welcome');
      await page.close();
      await opened.server!.stop();
    }
  });

  it('takes a Host that is not loopback on a connection to another address, and any listed origin on a loopback one', async () => {
    const { port } = await start({ host: '0.0.0.0' });
    const outside = outsideAddress();
    if (outside) {
      await asPageOf(`ops.example:${port}`, port, outside);
      await expect(connect(`ws://${outside}:${port}/ws`, { origin: 'http://evil.example' })).rejects.toSatisfy((e) => status(e) === 403);
    }
    await opened.server!.stop();
    const listed = await start({ allowedOrigins: ['http://ops.example'] });
    await asPageOf('ops.example', listed.port);
    await expect(asPageOf(`rebound.example:${listed.port}`, listed.port)).rejects.toSatisfy((e) => status(e) === 403);
  });

  it('by default takes, over TLS (attached to an https.Server), only an https page of its own name: an http one is another origin', { skip: missingOpenssl() !== undefined }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'progress-ws-origin-tls-'));
    const certs = makeTestCertificates(dir);
    const https = createHttpsServer({ key: certs.key, cert: certs.cert });
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', () => r()));
    try {
      opened.server = new ProgressWebSocketServer({ server: https });
      const { url, port } = await opened.server.start();
      const ca = readFileSync(certs.ca);
      await (await connect(url, { ca, origin: `https://127.0.0.1:${port}` })).next((m) => m.type === 'welcome');
      await expect(connect(url, { ca, origin: `http://127.0.0.1:${port}` })).rejects.toSatisfy((e) => status(e) === 403);
    } finally {
      await opened.server?.stop();
      https.closeAllConnections();
      await new Promise<void>((r) => https.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('by default refuses a page (an Origin) whose request names no Host: it cannot be the server\'s own', async () => {
    const { port } = await start();
    const request = upgradeRequest('/ws', [`Origin: http://127.0.0.1:${port}`]).replace('Host: 127.0.0.1\r\n', '');
    expect(request).not.toMatch(/^Host:/im);
    expect((await rawExchange(port, request)).response).toMatch(/^HTTP\/1\.1 403 /);
    // Without an Origin (not a browser) it passes, Host or not.
    expect((await rawExchange(port, upgradeRequest('/ws').replace('Host: 127.0.0.1\r\n', ''))).response).toMatch(/^HTTP\/1\.1 101 /);
  });

  it("takes any origin with allowedOrigins: '*'", async () => {
    const { url } = await start({ allowedOrigins: '*' });
    await (await connect(url, { origin: 'https://anywhere.example.com' })).next((m) => m.type === 'welcome');
  });

  it('answers 404 to an upgrade on another path', async () => {
    const { port } = await start();
    const raw = await rawExchange(port, upgradeRequest('/elsewhere'));
    expect(raw.response).toMatch(/^HTTP\/1\.1 404 /);
  });
});

describe('a plain request to the endpoint (not an upgrade)', () => {
  it('is answered as its handshake would be: 401 without a token the server takes, 403 from an origin it refuses, else 426; 405 for another method', async () => {
    const token = createReadToken({ secret: SECRET, upgradeIds: ['*'] });
    const { port } = await start(readTokenAuth({ secret: SECRET }));
    const at = (query = '') => `http://127.0.0.1:${port}/ws${query}`;
    expect((await fetch(at())).status).toBe(401);
    expect((await fetch(at('?token=not-a-token'))).status).toBe(401);
    const accepted = await fetch(at(`?token=${token}`));
    expect(accepted.status).toBe(426);
    expect(accepted.headers.get('upgrade')).toBe('websocket');
    expect(accepted.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect((await fetch(at(`?token=${token}`), { method: 'HEAD' })).status).toBe(426);
    expect((await fetch(at(`?token=${token}`), { headers: { origin: 'http://evil.example' } })).status).toBe(403);
    expect((await fetch(at(), { method: 'POST' })).status).toBe(405);
    // The dashboard is served as before, and other paths are still 404.
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${port}/nope`)).status).toBe(404);
    await opened.server!.stop();
    // Without authenticate: 426.
    const open = await start();
    expect((await fetch(`http://127.0.0.1:${open.port}/ws`)).status).toBe(426);
  });

  it('through the dashboardHandler mounted on an attached server too, at its path', async () => {
    let handler: ProgressWebSocketServer['dashboardHandler'] = (_req, res) => void res.writeHead(500).end();
    const http = createServer((req, res) => handler(req, res));
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
    try {
      opened.server = new ProgressWebSocketServer({ server: http, path: '/live', ...readTokenAuth({ secret: SECRET }) });
      handler = opened.server.dashboardHandler;
      const { port } = await opened.server.start();
      expect((await fetch(`http://127.0.0.1:${port}/live`)).status).toBe(401);
      expect((await fetch(`http://127.0.0.1:${port}/live?token=${createReadToken({ secret: SECRET, upgradeIds: ['u1'] })}`)).status).toBe(426);
      expect((await fetch(`http://127.0.0.1:${port}/ws`)).status).toBe(404);
      await opened.server.stop();
    } finally {
      await new Promise((r) => http.close(r));
    }
  });
});

describe('listening where other machines reach it', () => {
  /** A logger that keeps its warnings' messages. */
  const warningsOf = (): { warnings: string[]; logger: ProgressWebSocketServerOptions['logger'] } => {
    const warnings: string[] = [];
    return { warnings, logger: { debug() {}, info() {}, warn: (_obj: unknown, msg?: string) => void warnings.push(msg ?? ''), error() {} } };
  };
  const OPEN = /reachable from other machines without authenticate: anyone who reaches it reads every upgrade \(give authenticate, e\.g\. readTokenAuth, or listen on 127\.0\.0\.1\)/;

  it('warns once per start when it listens on a wildcard or an outside address without authenticate; not on a loopback one, nor with authenticate', async () => {
    for (const [host, expected] of [['0.0.0.0', 1], ['127.0.0.1', 0], ['::1', hasIpv6 ? 0 : -1], ['localhost', 0], [outsideAddress() ?? '', outsideAddress() ? 1 : -1]] as const) {
      if (expected === -1) continue;
      const { warnings, logger } = warningsOf();
      await start({ host, logger });
      expect(warnings.filter((w) => OPEN.test(w)), host).toHaveLength(expected);
      await opened.server!.stop();
    }
    const { warnings, logger } = warningsOf();
    await start({ host: '0.0.0.0', logger, ...readTokenAuth({ secret: SECRET }) });
    expect(warnings.filter((w) => OPEN.test(w))).toEqual([]);
  });

  it('warns for an attached server listening on every interface too', async () => {
    const http = createServer();
    await new Promise<void>((resolve) => http.listen(0, '0.0.0.0', resolve));
    try {
      const { warnings, logger } = warningsOf();
      await start({ server: http, logger });
      expect(warnings.filter((w) => OPEN.test(w))).toHaveLength(1);
      await opened.server!.stop();
    } finally {
      await new Promise((resolve) => http.close(resolve));
    }
  });
});

describe('authorize and read tokens', () => {
  it('tells a "*" subscriber nothing of an upgrade it may not read, not even that the store failed to read it', async () => {
    // A store that cannot watchAll (as a JsonFileStore): a failed load is told to the "*" subscriber itself.
    const shared = new MemoryStore();
    for (const id of ['mine', 'secret']) {
      const t = await openTracker(id, shared);
      trackers.push(t);
      await t.startUpgrade();
    }
    const store = new UnreliableStore(shared);
    store.down.add('secret');
    const { url } = await start({ store, authorize: (_p, id) => id !== 'secret' });
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: '*' });
    await c.next((m) => m.type === 'snapshot' && m.upgradeId === 'mine');
    await c.answered();
    expect(JSON.stringify(c.messages)).not.toContain('secret');
    // Nor is the store asked for it on this client's behalf.
    expect(store.loads).toBe(1);
  });

  it('refuses a subscription authorize denies with FORBIDDEN, and the connection stays', async () => {
    const t = await openTracker('secret');
    trackers.push(t);
    const { url } = await start({ authorize: (_p, id) => id !== 'secret' });
    opened.server!.track(t);
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'secret' });
    c.send({ type: 'get_summary', upgradeId: 'secret' });
    c.send({ type: 'list_upgrades' });
    c.send({ type: 'subscribe', upgradeId: '*' });
    await c.next((m) => m.type === 'upgrades');
    await c.next((m) => m.type === 'subscribed' && m.upgradeId === '*');
    await t.startUpgrade();
    await c.answered();
    expect(c.ofType('error').map((e) => e.code)).toEqual(['FORBIDDEN', 'FORBIDDEN']);
    expect(c.ofType('upgrades')[0]!.data).toEqual([]);
    expect(c.ofType('snapshot')).toHaveLength(0);
    expect(c.ofType('progress_event')).toHaveLength(0);
    expect(c.ofType('subscribed', 'secret')).toHaveLength(0);
  });

  it('refuses, and does not crash the process, when authorize returns a promise (one that rejects included): it must answer synchronously', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const t = await openTracker('u1');
      trackers.push(t);
      const warnings: unknown[] = [];
      const logger = { trace() {}, debug() {}, info() {}, warn: (obj: unknown, msg?: string) => void warnings.push(msg ?? obj), error() {}, fatal() {}, child: () => logger };
      // A Promise-returning function that is not an `async` one (those are refused by the constructor).
      const authorize = ((_p: unknown, id: string) => (id === 'u1' ? Promise.reject(new Error('auth backend down')) : Promise.resolve(true))) as never;
      const { url } = await start({ authorize, logger: logger as never });
      opened.server!.track(t);
      const c = await connect(url);
      c.send({ type: 'subscribe', upgradeId: 'u1' });
      c.send({ type: 'get_summary', upgradeId: 'u1' });
      c.send({ type: 'list_upgrades' });
      c.send({ type: 'subscribe', upgradeId: '*' });
      await c.next((m) => m.type === 'subscribed' && m.upgradeId === '*');
      await t.startUpgrade();
      await c.answered();
      // Rejections are reported on a later turn.
      await sleep(50);
      expect(unhandled).toEqual([]);
      expect(c.ofType('error').map((e) => e.code)).toEqual(['FORBIDDEN', 'FORBIDDEN']);
      expect(c.ofType('upgrades')[0]!.data).toEqual([]);
      expect(c.ofType('snapshot')).toHaveLength(0);
      expect(c.ofType('progress_event')).toHaveLength(0);
      expect(warnings.some((w) => typeof w === 'string' && /authorize returned a promise/.test(w))).toBe(true);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('refuses, and answers, when authorize returns a thenable whose then() throws', async () => {
    const t = await openTracker('u1');
    trackers.push(t);
    const authorize = (() => ({ then: () => { throw new Error('not a real promise'); } })) as never;
    const { url } = await start({ authorize });
    opened.server!.track(t);
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    await c.answered();
    // Was STORE_UNAVAILABLE: the throw escaped authorize's check as the store's failure.
    expect(c.ofType('error').map((e) => e.code)).toEqual(['FORBIDDEN']);
  });

  it('refuses an async authorize with INVALID_ARGUMENT: it would refuse every subscription', () => {
    expect(() => new ProgressWebSocketServer({ authorize: (async () => true) as never })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/authorize must answer synchronously/) }));
  });

  it('verifies tokens: signature, expiry, shape', () => {
    let now = 1_000_000_000_000;
    const token = createReadToken({ secret: SECRET, upgradeIds: ['u1'], ttlSeconds: 60, now: () => now });
    expect(verifyReadToken(token, SECRET, () => now)).toEqual({ upgradeIds: ['u1'], exp: now / 1000 + 60 });
    expect(verifyReadToken(token, `${SECRET}x`, () => now)).toBeUndefined();
    const [payload, sig] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ upgradeIds: ['*'], exp: now / 1000 + 60 })).toString('base64url');
    expect(verifyReadToken(`${forged}.${sig}`, SECRET, () => now)).toBeUndefined();
    expect(verifyReadToken(`${payload}.${sig!.slice(0, -2)}`, SECRET, () => now)).toBeUndefined();
    expect(verifyReadToken('garbage', SECRET, () => now)).toBeUndefined();
    now += 61_000;
    expect(verifyReadToken(token, SECRET, () => now)).toBeUndefined();
    expect(() => createReadToken({ secret: 'short', upgradeIds: ['u1'] })).toThrow(/secret/);
  });

  it('takes a token only in the form it was issued: no other spelling of its signature verifies', () => {
    const now = 1_000_000_000_000;
    const token = createReadToken({ secret: SECRET, upgradeIds: ['u1'], ttlSeconds: 60, now: () => now });
    const [payload, sig] = token.split('.') as [string, string];
    // base64url decoding skips what is not base64 and ignores the unused low bits of the last
    // character: each of these decoded to the same MAC and was accepted, so one token had many
    // spellings (a deny-list or a log search by token missed them).
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    // The last of the 43 characters of a 32-byte MAC carries 4 bits and 2 unused ones.
    const lowBit = alphabet[alphabet.indexOf(sig.at(-1)!) ^ 1]!;
    for (const spelling of [`${sig}=`, `${sig}!`, `${sig} `, `${sig.slice(0, -1)}${lowBit}`, `${sig.slice(0, 10)}*${sig.slice(10)}`]) {
      expect(verifyReadToken(`${payload}.${spelling}`, SECRET, () => now), spelling).toBeUndefined();
    }
    expect(verifyReadToken(token, SECRET, () => now)).toBeDefined();
  });

  it('makes a token that lives at least ttlSeconds, even when made late in a second', () => {
    const made = 1_000_000_000_999;
    const token = createReadToken({ secret: SECRET, upgradeIds: ['u1'], ttlSeconds: 1, now: () => made });
    expect(verifyReadToken(token, SECRET, () => made + 999)).toBeDefined();
    expect(verifyReadToken(token, SECRET, () => made + 2_001)).toBeUndefined();
  });

  it('makes a token valid for 300 s when no ttlSeconds is given, as the README says (a longer default leaves a leaked token alive longer)', () => {
    const made = 1_000_000_000_000;
    const token = createReadToken({ secret: SECRET, upgradeIds: ['u1'], now: () => made });
    expect(verifyReadToken(token, SECRET, () => made)).toEqual({ upgradeIds: ['u1'], exp: made / 1000 + 300 });
    expect(verifyReadToken(token, SECRET, () => made + 300_000)).toBeUndefined();
  });

  it('authenticates a token from the query or a subprotocol, and scopes it to its upgrades', async () => {
    const t1 = await openTracker('u1');
    const t2 = await openTracker('u2');
    trackers.push(t1, t2);
    const { url } = await start(readTokenAuth({ secret: SECRET }));
    opened.server!.track(t1);
    opened.server!.track(t2);
    const token = createReadToken({ secret: SECRET, upgradeIds: ['u1'], ttlSeconds: 60 });
    await expect(connect(url)).rejects.toSatisfy((e) => status(e) === 401);
    const expired = createReadToken({ secret: SECRET, upgradeIds: ['u1'], ttlSeconds: 1, now: () => Date.now() - 5000 });
    await expect(connect(`${url}?token=${expired}`)).rejects.toSatisfy((e) => status(e) === 401);

    const byQuery = await connect(`${url}?token=${token}`);
    byQuery.send({ type: 'subscribe', upgradeId: 'u1' });
    byQuery.send({ type: 'subscribe', upgradeId: 'u2' });
    await byQuery.next((m) => m.type === 'snapshot' && m.upgradeId === 'u1');
    await byQuery.next((m) => m.type === 'error');
    expect(byQuery.ofType('error')[0]).toMatchObject({ code: 'FORBIDDEN' });

    const byProtocol = await connect(url, { protocols: ['progress.v1', `progress-token.${token}`] });
    expect(byProtocol.ws.protocol).toBe('progress.v1');
    byProtocol.send({ type: 'list_upgrades' });
    const rows = await byProtocol.next((m) => m.type === 'upgrades');
    expect(rows.data.map((r: { upgradeId: string }) => r.upgradeId)).toEqual(['u1']);
  });
});

describe('limits', () => {
  it('keeps its rate limit when the wall clock is set back (NTP, a VM restored): a client within the rate is served', async () => {
    const { url } = await start({ rateLimit: { messagesPerSecond: 1, burst: 2, maxViolations: 50 } });
    const c = await connect(url);
    await c.next((m) => m.type === 'welcome');
    // The bucket was refilled by Date.now() differences: a clock set back an hour took an hour's
    // tokens away, and every message of the connection was refused (then the connection closed).
    const real = Date.now;
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => real() - 3_600_000);
    try {
      await c.answered();
      expect(c.ofType('error')).toEqual([]);
    } finally {
      spy.mockRestore();
    }
  });

  it('closes with 1009 a message larger than maxPayload', async () => {
    const { url } = await start({ maxPayload: 1024 });
    const c = await connect(url);
    c.send({ type: 'ping', pad: 'x'.repeat(2000) });
    expect(await c.closed).toBe(1009);
    await stillServes(url);
  });

  it('closes with 1009 at the default 64 KiB', async () => {
    const { url } = await start();
    const c = await connect(url);
    c.send({ type: 'ping', pad: 'x'.repeat(60_000) });
    await c.next((m) => m.type === 'pong');
    c.send({ type: 'ping', pad: 'x'.repeat(70_000) });
    expect(await c.closed).toBe(1009);
  });

  it('answers RATE_LIMITED past the rate, then closes an abusive client (1008)', async () => {
    const { url } = await start({ rateLimit: { messagesPerSecond: 1, burst: 5, maxViolations: 10 } });
    const c = await connect(url);
    for (let i = 0; i < 8; i++) c.send({ type: 'ping' });
    await c.until((ms) => ms.filter((m) => m.type === 'error').length === 3);
    expect(c.ofType('pong')).toHaveLength(5);
    expect(c.ofType('error').every((e) => e.code === 'RATE_LIMITED')).toBe(true);
    expect(c.closeCode).toBeUndefined();
    for (let i = 0; i < 20; i++) c.send({ type: 'ping' });
    expect(await c.closed).toBe(1008);
  });
  it('closes the connection at its maxViolations-th refusal, as the README says, not one later', async () => {
    const { url } = await start({ rateLimit: { messagesPerSecond: 1, burst: 1, maxViolations: 3 } });
    const c = await connect(url);
    await c.next((m) => m.type === 'welcome');
    // One message the bucket holds, then three refusals: the third closes.
    for (let i = 0; i < 4; i++) c.send({ type: 'ping' });
    const code = await Promise.race([c.closed, sleep(5000).then(() => 'still open')]);
    expect(code).toBe(1008);
  });

  it('holds at most `burst` messages however long a connection was idle', async () => {
    const { url } = await start({ rateLimit: { messagesPerSecond: 10, burst: 2, maxViolations: 50 } });
    const c = await connect(url);
    await c.next((m) => m.type === 'welcome');
    // Idle for a second: ten messages' worth of refill, of which the bucket keeps two.
    await sleep(1000);
    for (let i = 0; i < 10; i++) c.send({ type: 'ping' });
    await c.until((ms) => ms.filter((m) => m.type === 'pong' || m.type === 'error').length === 10, 10_000, 'ten answers');
    // Two, and what the rate refills while the ten are read (a busy machine may take a while to read them).
    expect(c.ofType('pong').length).toBeLessThanOrEqual(4);
    expect(c.ofType('error').every((e) => e.code === 'RATE_LIMITED')).toBe(true);
  });

  it('answers RATE_LIMITED in the order of the messages, behind the answer a slow store holds up', async () => {
    const store = new UnreliableStore(new WatchableMemoryStore());
    let open!: () => void;
    store.gate = new Promise<void>((resolve) => (open = resolve));
    const { url } = await start({ store, rateLimit: { messagesPerSecond: 1, burst: 2, maxViolations: 50 } });
    const c = await connect(url);
    await c.next((m) => m.type === 'welcome');
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    c.send({ type: 'ping' });
    c.send({ type: 'ping' }); // over the rate
    await sleep(100);
    open();
    await c.until((ms) => ms.length === 4, 5000, 'three answers');
    expect(c.messages.slice(1).map((m) => (m.type === 'error' ? `error:${m.code}` : m.type))).toEqual(['subscribed', 'pong', 'error:RATE_LIMITED']);
  });

  it('refuses a subscribe past maxSubscriptionsPerClient with RATE_LIMITED and starts no store watch for it; the connection stays', async () => {
    // Each subscription to a store-backed upgrade runs a store watch (on Redis, a connection of its own).
    const store = new WatchableMemoryStore();
    const { url } = await start({ store, maxSubscriptionsPerClient: 3 });
    const c = await connect(url);
    for (let i = 1; i <= 5; i++) c.send({ type: 'subscribe', upgradeId: `nope-${i}` });
    await c.answered();
    expect(c.ofType('subscribed').map((m) => m.upgradeId)).toEqual(['nope-1', 'nope-2', 'nope-3']);
    expect(c.ofType('error')).toEqual([
      // Each names the upgrade whose subscribe it refuses: the refusal may pass (after an unsubscribe).
      { type: 'error', code: 'RATE_LIMITED', message: expect.stringContaining('at most 3 subscriptions'), upgradeId: 'nope-4' },
      { type: 'error', code: 'RATE_LIMITED', message: expect.stringContaining('at most 3 subscriptions'), upgradeId: 'nope-5' },
    ]);
    expect(store.activeWatches).toBe(3);
    expect(opened.server!.getStats().topics).toBe(3);

    // Subscribing again to an upgrade replaces its subscription (no new slot); an unsubscribe frees one.
    const from = c.messages.length;
    c.send({ type: 'subscribe', upgradeId: 'nope-1' });
    c.send({ type: 'unsubscribe', upgradeId: 'nope-2' });
    c.send({ type: 'subscribe', upgradeId: 'nope-4' });
    c.send({ type: 'subscribe', upgradeId: 'nope-5' });
    await c.answered();
    const later = c.messages.slice(from);
    expect(later.filter((m) => m.type === 'subscribed').map((m) => m.upgradeId)).toEqual(['nope-1', 'nope-4']);
    expect(later.filter((m) => m.type === 'error').map((m) => m.code)).toEqual(['RATE_LIMITED']);
    expect(store.activeWatches).toBe(3);
    expect(c.closeCode).toBeUndefined();

    // The limit is per client.
    const other = await connect(url);
    other.send({ type: 'subscribe', upgradeId: 'nope-5' });
    await other.next((m) => m.type === 'subscribed' && m.upgradeId === 'nope-5');
  });

  it('does not count a "*" subscription against maxSubscriptionsPerClient, as the README says', async () => {
    const { url } = await start({ store: new WatchableMemoryStore(), maxSubscriptionsPerClient: 2 });
    const c = await connect(url);
    for (const id of ['*', 'nope-1', 'nope-2']) c.send({ type: 'subscribe', upgradeId: id });
    await c.answered();
    expect(c.ofType('subscribed').map((m) => m.upgradeId)).toEqual(['*', 'nope-1', 'nope-2']);
    expect(c.ofType('error')).toEqual([]);
  });

  it('takes 100 subscriptions per client by default', async () => {
    const { url } = await start({ store: new WatchableMemoryStore(), rateLimit: { messagesPerSecond: 1000, burst: 200 } });
    const c = await connect(url);
    for (let i = 1; i <= 101; i++) c.send({ type: 'subscribe', upgradeId: `u-${i}` });
    await c.answered();
    expect(c.ofType('subscribed')).toHaveLength(100);
    expect(c.ofType('error')).toEqual([{ type: 'error', code: 'RATE_LIMITED', message: expect.stringContaining('at most 100 subscriptions'), upgradeId: 'u-101' }]);
  });

  it('follows at most maxWatchedUpgrades upgrades from the store for all clients together; past it a subscribe gets RATE_LIMITED', async () => {
    // Per-client limits alone let many clients together open a Redis connection per upgrade id they name.
    const store = new WatchableMemoryStore();
    const loaded: string[] = [];
    const load = store.load.bind(store);
    store.load = (id: string) => (loaded.push(id), load(id));
    const { url } = await start({ store, maxWatchedUpgrades: 3 });
    const a = await connect(url);
    const b = await connect(url);
    for (const id of ['u-1', 'u-2']) a.send({ type: 'subscribe', upgradeId: id });
    await a.answered();
    for (const id of ['u-3', 'u-4', 'u-1']) b.send({ type: 'subscribe', upgradeId: id });
    await b.answered();
    // u-4 would be a fourth watch; u-1 is followed already and costs nothing more.
    expect(b.ofType('subscribed').map((m) => m.upgradeId)).toEqual(['u-3', 'u-1']);
    expect(b.ofType('error')).toEqual([{ type: 'error', code: 'RATE_LIMITED', message: expect.stringContaining('at most 3 upgrades'), upgradeId: 'u-4' }]);
    expect(store.activeWatches).toBe(3);
    expect(opened.server!.getStats().watchedUpgrades).toBe(3);
    expect(b.closeCode).toBeUndefined();
    // Refused before the store is read: a client that asks again (the dashboard does) costs no load.
    expect(loaded.filter((id) => id === 'u-4')).toEqual([]);

    // An upgrade nobody follows any more frees its watch.
    const from = b.messages.length;
    a.send({ type: 'unsubscribe', upgradeId: 'u-2' });
    await a.answered();
    b.send({ type: 'subscribe', upgradeId: 'u-4' });
    await b.next((m) => m.type === 'subscribed' && m.upgradeId === 'u-4', from);
    expect(store.activeWatches).toBe(3);
    expect(opened.server!.getStats().watchedUpgrades).toBe(3);
  });

  it('refuses a maxWatchedUpgrades that is not a whole number >= 1 with INVALID_ARGUMENT', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, '10']) {
      expect(() => new ProgressWebSocketServer({ maxWatchedUpgrades: bad as number })).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('[@progress/ws-server] maxWatchedUpgrades') }),
      );
    }
  });

  it('refuses a maxSubscriptionsPerClient that is not a whole number >= 1 with INVALID_ARGUMENT', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, '10']) {
      expect(() => new ProgressWebSocketServer({ maxSubscriptionsPerClient: bad as number })).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('[@progress/ws-server] maxSubscriptionsPerClient') }),
      );
    }
    expect(() => new ProgressWebSocketServer({ maxSubscriptionsPerClient: 1 })).not.toThrow();
  });
});

describe('ws CVE inputs and floods do not hurt the server', () => {
  it('CVE-2021-32640: a Sec-WebSocket-Protocol header full of spaces is answered', async () => {
    const { url, port } = await start();
    const header = `Sec-WebSocket-Protocol: b${' '.repeat(12_000)}x`;
    const raw = await rawExchange(port, upgradeRequest('/ws', [header]), 5000);
    expect(raw.response).toMatch(/^HTTP\/1\.1 (101|400)/);
    await stillServes(url);
  });

  it('CVE-2024-37890: a request with more headers than maxHeadersCount does not crash the server', async () => {
    const { url, port } = await start();
    const extra = Array.from({ length: 2100 }, (_, i) => `X-Filler-${i}: a`);
    const raw = await rawExchange(port, upgradeRequest('/ws', extra), 5000);
    expect(raw.response).toMatch(/^HTTP\/1\.1 (400|431)/);
    // The same with the key pushed past the limit: the header that matters is dropped.
    const keyLast = ['GET /ws HTTP/1.1', 'Host: 127.0.0.1', ...extra, 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', '', ''].join('\r\n');
    const raw2 = await rawExchange(port, keyLast, 5000);
    expect(raw2.response).not.toMatch(/^HTTP\/1\.1 101/);
    await stillServes(url);
  });

  it('a flood of 1-byte continuation frames is cut off at maxPayload (1009) and others are served', async () => {
    const { url, port } = await start({ maxPayload: 512 });
    const { socket, received } = await rawWebSocket(port, '/ws');
    const frames: Buffer[] = [clientFrame(0x1, Buffer.from('{'), false)];
    for (let i = 0; i < 20_000; i++) frames.push(clientFrame(0x0, Buffer.from(' '), false));
    socket.write(Buffer.concat(frames));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await Promise.race([closed, sleep(5000)]);
    expect(closeCodeIn(received())).toBe(1009);
    await stillServes(url);
  });

  it('a flood of empty continuation frames is cut off (1008) and others are served', async () => {
    const { url, port } = await start();
    const { socket, received } = await rawWebSocket(port, '/ws');
    const frames: Buffer[] = [clientFrame(0x1, Buffer.from('{'), false)];
    for (let i = 0; i < 50_000; i++) frames.push(clientFrame(0x0, Buffer.alloc(0), false));
    socket.write(Buffer.concat(frames));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await Promise.race([closed, sleep(5000)]);
    expect(closeCodeIn(received())).toBe(1008);
    await stillServes(url);
  });
});

describe('attached to an existing http.Server', () => {
  it('refuses a client that connects while stop() waits for the others to close: it would outlive the stop on the app server', async () => {
    const http = createServer((_req, res) => res.writeHead(404).end());
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
    let late: TestClient | undefined;
    try {
      // A peer that never answers the close frame holds stop() until closeTimeoutMs cuts it off.
      opened.server = new ProgressWebSocketServer({ server: http, closeTimeoutMs: 3000 });
      const { url, port } = await opened.server.start();
      const peer = await rawWebSocket(port, '/ws');
      for (let i = 0; i < 100 && opened.server.getStats().clients === 0; i++) await sleep(10);
      const stopping = opened.server.stop();
      for (let i = 0; i < 300 && closeCodeIn(peer.received()) === undefined; i++) await sleep(10);
      expect(closeCodeIn(peer.received())).toBe(1001);
      // stop() is waiting for the peer now: a new client is not let in behind the clients it closes.
      late = await connect(url).then(
        (c) => c,
        () => undefined,
      );
      await stopping;
      peer.socket.destroy();
      expect(opened.server.getStats().clients).toBe(0);
      if (late) expect(await Promise.race([late.closed, sleep(2000).then(() => 'still open')])).not.toBe('still open');
    } finally {
      // (An upgraded socket is no longer the app server's to close: one left open would hold its close.)
      late?.ws.terminate();
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    }
  });

  it('takes only its upgrade path and exposes dashboardHandler', async () => {
    const http = createServer((req, res) => {
      if (req.url?.startsWith('/progress/')) return opened.server!.dashboardHandler(req, res);
      res.writeHead(200).end('app');
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
    try {
      opened.server = new ProgressWebSocketServer({ server: http, path: '/progress/ws' });
      const { url, port } = await opened.server.start();
      expect(url).toBe(`ws://127.0.0.1:${port}/progress/ws`);
      const c = await connect(url);
      await c.next((m) => m.type === 'welcome');
      const page = await fetch(`http://127.0.0.1:${port}/progress/`);
      expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect(await page.text()).toContain('content="/progress/ws"');
      expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe('app');
      await c.close();
      await opened.server.stop();
      expect(http.listening).toBe(true);
    } finally {
      await new Promise<void>((r) => {
        http.close(() => r());
        http.closeAllConnections();
      });
    }
  });

  it('answers 404 to an upgrade on another path when the app has no upgrade listener of its own, and leaves it to the app when it has one', async () => {
    const http = createServer((_req, res) => res.writeHead(200).end('app'));
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
    try {
      opened.server = new ProgressWebSocketServer({ server: http, path: '/progress/ws' });
      const { port } = await opened.server.start();
      // Alone on 'upgrade': a request nobody else answers would hold its socket for ever.
      const alone = await rawExchange(port, upgradeRequest('/other'));
      expect(alone.response).toMatch(/^HTTP\/1\.1 404/);
      expect(alone.closed).toBe(true);
      // With the app's own listener, the other path is the app's.
      http.on('upgrade', (req, socket) => {
        if (req.url === '/other') socket.end('HTTP/1.1 418 I am the app\r\n\r\n');
      });
      const app = await rawExchange(port, upgradeRequest('/other'));
      expect(app.response).toMatch(/^HTTP\/1\.1 418/);
    } finally {
      await new Promise<void>((r) => {
        http.close(() => r());
        http.closeAllConnections();
      });
    }
  });

  it('answers 404 once to a path no server attached to the app serves, and lets each serve its own path', async () => {
    const http = createServer((_req, res) => res.writeHead(200).end('app'));
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
    const other = new ProgressWebSocketServer({ server: http, path: '/b' });
    try {
      opened.server = new ProgressWebSocketServer({ server: http, path: '/a' });
      const { port } = await opened.server.start();
      await other.start();
      const stray = await rawExchange(port, upgradeRequest('/c'));
      expect(stray.response).toMatch(/^HTTP\/1\.1 404/);
      expect(stray.response.match(/HTTP\/1\.1/g)).toHaveLength(1);
      // One of them answered it, and counted it: not both, the second finding the socket answered.
      expect(opened.server.getStats().handshakesRefused + other.getStats().handshakesRefused).toBe(1);
      for (const path of ['/a', '/b']) {
        const c = await connect(`ws://127.0.0.1:${port}${path}`);
        await c.next((m) => m.type === 'welcome');
        await c.close();
      }
    } finally {
      await other.stop();
      await new Promise<void>((r) => {
        http.close(() => r());
        http.closeAllConnections();
      });
    }
  });

  it('start() rejects when the attached server fails to listen, and stop() does not wait for a server that never listens', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const http = createServer();
    try {
      opened.server = new ProgressWebSocketServer({ server: http });
      const started = opened.server.start();
      http.listen((taken.address() as { port: number }).port, '127.0.0.1');
      // The port another process holds: CONFLICT, as for a server of its own (see lifecycle.test.ts).
      await expect(started).rejects.toMatchObject({ code: 'CONFLICT' });
      expect(http.listenerCount('upgrade')).toBe(0);
      // Never listening: stop() ends the wait (start() rejects CLOSED) instead of hanging on it.
      const idle = new ProgressWebSocketServer({ server: createServer() });
      const waiting = idle.start();
      await idle.stop();
      await expect(waiting).rejects.toMatchObject({ code: 'CLOSED' });
    } finally {
      taken.close();
    }
  });

  it('attaches to a server listening on a unix socket and serves it there', async () => {
    const path = join(tmpdir(), `progress-ws-${process.pid}-${Date.now()}.sock`);
    const http = createServer();
    await new Promise<void>((r) => http.listen(path, () => r()));
    try {
      opened.server = new ProgressWebSocketServer({ server: http });
      const { url, port } = await opened.server.start();
      expect({ url, port }).toEqual({ url: `ws+unix://${path}:/ws`, port: 0 });
      const c = await connect(url, { headers: { host: 'localhost' } });
      await c.next((m) => m.type === 'welcome');
      await c.close();
    } finally {
      await opened.server?.stop();
      await new Promise<void>((r) => {
        http.close(() => r());
        http.closeAllConnections();
      });
    }
  });
});

describe('options', () => {
  it('refuses bad options with INVALID_ARGUMENT from the constructor, not a TypeError or a 1 ms timer later', () => {
    const bad: unknown[] = [
      { heartbeatMs: 2 ** 31 },
      { closeTimeoutMs: 2 ** 31 },
      { host: 4321 },
      { host: '' },
      { store: {} },
      { server: {} },
      { logger: {} },
      { logger: 'debug' },
      { rateLimit: 5 },
      { path: '/ws?x=1' },
      { path: '/ws#x' },
      { port: 65536 },
      { authenticate: 'Bearer x' },
      { authorize: true },
      { allowedOrigins: 'https://ops.example.com' },
      { allowedOrigins: [8080] },
      { server: { on() {} } },
      { store: { load() {}, readEvents() {} } },
      { rateLimit: [] },
      8080,
    ];
    for (const options of bad) expect(() => new ProgressWebSocketServer(options as never), JSON.stringify(options)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('applies the defaults the README documents, and takes the bounds they may be set to', () => {
    expect(resolveOptions()).toMatchObject({
      port: 8765,
      host: '127.0.0.1',
      path: '/ws',
      allowedOrigins: 'same-origin',
      handshakeTimeoutMs: 10_000,
      maxPayload: 65_536,
      maxBufferedBytes: 8 * 1024 * 1024,
      closeTimeoutMs: 2000,
      heartbeatMs: 30_000,
      rateLimit: { messagesPerSecond: 20, burst: 40, maxViolations: 50 },
      maxSubscriptionsPerClient: 100,
      maxWatchedUpgrades: 1000,
      maxRetainedUpgrades: 100,
    });
    expect(resolveOptions({ port: 65535, heartbeatMs: 0, maxRetainedUpgrades: 0 })).toMatchObject({ port: 65535, heartbeatMs: 0, maxRetainedUpgrades: 0 });
  });
});

describe('what one client can make the server hold', () => {
  it('is maxBufferedBytes for all its subscriptions together: a client that stops reading during replays of several upgrades is closed (1013)', async () => {
    const LIMIT = 256 * 1024;
    const { url } = await start({ maxBufferedBytes: LIMIT, heartbeatMs: 0 });
    const pad = 'p'.repeat(4000);
    const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
    for (const id of ids) {
      const t = await openTracker(id);
      trackers.push(t);
      opened.server!.track(t);
      await t.startUpgrade();
      await t.addTask('t', 'T');
      for (let i = 0; i < 1500; i++) await t.updateTaskProgress('t', 1 + (i % 98), undefined, { pad });
    }
    const c = await connect(url);
    await c.next((m) => m.type === 'welcome');
    for (const id of ids) c.send({ type: 'subscribe', upgradeId: id, sinceSeq: 0 });
    await sleep(50);
    // It stops reading: the replays stall, and the live events are held for it.
    (c.ws as unknown as { _socket: Socket })._socket.pause();
    await sleep(500);
    // ~200 KB of live events per upgrade: under the limit for each subscription, far over it together.
    for (let i = 0; i < 48 && opened.server!.getStats().slowClientsClosed === 0; i++) for (const t of trackers) await t.updateTaskProgress('t', 1 + (i % 98), undefined, { pad });
    expect(opened.server!.getStats().slowClientsClosed).toBe(1);
    c.ws.terminate(); // its paused socket would hold the close handshake for ws' 30 s
  }, 60_000);
});
