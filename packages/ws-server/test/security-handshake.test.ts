import { createServer } from 'node:http';
import { connect as connectTcp, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rejectUpgrade } from '../src/http-reject.js';
import { ProgressWebSocketServer, createReadToken, readTokenAuth, type ProgressWebSocketServerOptions } from '../src/index.js';
import { closedAfterEach, openTracker, sleep } from './helpers.js';
import { clientFrame, closeCodeIn, rawExchange, rawWebSocket, upgradeRequest } from './raw.js';
import { GatedLoadStore, UnreliableStore, WatchableMemoryStore } from './watchable-store.js';

// The edges of the server's security checks (the handshake's origin and authenticate, a credential's
// expiry, authorize, what a connection negotiates) that security.test.ts does not reach: each test
// here fails on a loosened (or tightened) check that every other test let pass.

const opened = closedAfterEach();
const { connect, trackers } = opened;

async function start(options: ProgressWebSocketServerOptions = {}): Promise<{ url: string; port: number }> {
  opened.server = new ProgressWebSocketServer({ port: 0, ...options });
  return opened.server.start();
}
function status(err: unknown): number | undefined {
  return (err as { statusCode?: number }).statusCode;
}
/** The status line's code of the answer to an upgrade request sent to 127.0.0.1:`port` with these Host and Origin headers. */
async function statusFor(port: number, host: string, origin: string): Promise<string> {
  const request = upgradeRequest('/ws', [`Origin: ${origin}`]).replace('Host: 127.0.0.1', `Host: ${host}`);
  const { response } = await rawExchange(port, request);
  return response.slice(0, 12);
}
const hasIpv6Loopback = Object.values(networkInterfaces())
  .flat()
  .some((i) => i?.internal && i.family === 'IPv6');

describe('a refused handshake', () => {
  it('is answered with a complete plain-text response, and the connection is closed', async () => {
    const { port } = await start({ authenticate: () => false });
    expect(await rawExchange(port, upgradeRequest('/ws'))).toEqual({
      response: 'HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 13\r\n\r\nUnauthorized\n',
      closed: true,
    });
  });

  it('is not answered again on a socket whose side was already ended: no write after end, which would fail the socket', async () => {
    const tcp = createTcpServer({ allowHalfOpen: true });
    const accepted = new Promise<Socket>((resolve) => tcp.once('connection', resolve));
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    const peer = connectTcp({ host: '127.0.0.1', port: (tcp.address() as AddressInfo).port, allowHalfOpen: true });
    try {
      const socket = await accepted;
      const errors: unknown[] = [];
      socket.on('error', (err) => errors.push(err));
      socket.end();
      rejectUpgrade(socket, 503);
      expect(socket.errored).toBeNull();
      expect(errors).toEqual([]);
      socket.destroy();
    } finally {
      peer.destroy();
      tcp.close();
    }
  });
});

describe('the default origin check on a loopback connection (DNS rebinding)', () => {
  it('refuses a DNS name that only starts like a loopback address (127.x.example): a rebound name can be any name', async () => {
    const { port } = await start();
    const names = ['127.evil.example', '127.0.0.1.evil.example', '127.0.0.2'];
    const answers = await Promise.all(names.map((name) => statusFor(port, `${name}:${port}`, `http://${name}:${port}`)));
    // A real 127.x address (any of 127.0.0.0/8) passes.
    expect(answers).toEqual(['HTTP/1.1 403', 'HTTP/1.1 403', 'HTTP/1.1 101']);
  });

  it('takes a loopback Host that names no port (a page on the scheme\'s default port), [::1] included', async () => {
    const { port } = await start();
    const hosts = ['[::1]', 'localhost', '127.0.0.1', 'rebound.example'];
    const answers = await Promise.all(hosts.map((host) => statusFor(port, host, `http://${host}`)));
    expect(answers).toEqual(['HTTP/1.1 101', 'HTTP/1.1 101', 'HTTP/1.1 101', 'HTTP/1.1 403']);
  });

  it('refuses a rebound name on a connection that arrived on ::1 (the IPv6 loopback address)', { skip: !hasIpv6Loopback }, async () => {
    const { port } = await start({ host: '::1' });
    const url = `ws://[::1]:${port}/ws`;
    const asPageOf = (host: string) => connect(url, { headers: { host }, origin: `http://${host}` });
    await expect(asPageOf(`rebound.example:${port}`)).rejects.toSatisfy((e) => status(e) === 403);
    await (await asPageOf(`[::1]:${port}`)).next((m) => m.type === 'welcome');
  });
});

describe('the default origin check on a unix socket (behind a proxy on the same machine)', () => {
  it('takes the Host a proxy forwards when the Origin matches it: a unix socket is no loopback address', async () => {
    const path = join(tmpdir(), `progress-ws-h-${process.pid}-${Date.now()}.sock`);
    const http = createServer();
    await new Promise<void>((r) => http.listen(path, () => r()));
    try {
      opened.server = new ProgressWebSocketServer({ server: http });
      const { url } = await opened.server.start();
      await (await connect(url, { headers: { host: 'ops.example' }, origin: 'http://ops.example' })).next((m) => m.type === 'welcome');
      await expect(connect(url, { headers: { host: 'ops.example' }, origin: 'http://evil.example' })).rejects.toSatisfy((e) => status(e) === 403);
    } finally {
      await Promise.all(opened.clients.splice(0).map((c) => c.close()));
      await opened.server?.stop();
      await new Promise<void>((r) => {
        http.close(() => r());
        http.closeAllConnections();
      });
    }
  });
});

describe('the Origin header', () => {
  it('takes an empty Origin for an Origin, not for its absence: no allow-list holds it', async () => {
    const { port } = await start({ allowedOrigins: ['http://ops.example'] });
    const answers = await Promise.all([statusFor(port, '127.0.0.1', ''), statusFor(port, '127.0.0.1', 'http://ops.example')]);
    expect(answers).toEqual(['HTTP/1.1 403', 'HTTP/1.1 101']);
  });

  it('compares the Host name without regard to case, as the Origin is', async () => {
    const { port } = await start();
    const answers = await Promise.all([statusFor(port, `LocalHost:${port}`, `http://localhost:${port}`), statusFor(port, `REBOUND.example:${port}`, `http://rebound.example:${port}`)]);
    expect(answers).toEqual(['HTTP/1.1 101', 'HTTP/1.1 403']);
  });
});

describe('compression', () => {
  it('declines permessage-deflate when a client offers it: no inflating of what a client sends, no compressing per client of what is framed once', async () => {
    const { url } = await start();
    const c = await connect(url, { perMessageDeflate: true });
    await c.next((m) => m.type === 'welcome');
    expect(c.ws.extensions).toBe('');
    await c.answered();
  });
});

describe('subprotocols', () => {
  it('never echoes a token subprotocol, also when the client offers no other: the token stays out of the response', async () => {
    const secret = 'a-test-secret-that-is-long-enough-0123456789';
    const { port } = await start(readTokenAuth({ secret }));
    const token = createReadToken({ secret, upgradeIds: ['u1'], ttlSeconds: 60 });
    const { response } = await rawExchange(port, upgradeRequest('/ws', [`Sec-WebSocket-Protocol: progress-token.${token}`]));
    // Authenticated by it (101), and not answered with it.
    expect(response).toMatch(/^HTTP\/1\.1 101 /);
    expect(response).not.toMatch(/sec-websocket-protocol/i);
    expect(response).not.toContain(token);
  });
});

describe('authenticate', () => {
  it('gives authorize the principal true when there is no authenticate hook', async () => {
    const seen: unknown[] = [];
    const { url } = await start({ authorize: (p) => (seen.push(p), true) });
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'u1' });
    await c.next((m) => m.type === 'subscribed');
    expect(seen).toEqual([true]);
  });

  it('counts once a handshake that stop() answered while authenticate ran, however authenticate answers later', async () => {
    let answer!: (principal: unknown) => void;
    let asked!: () => void;
    const called = new Promise<void>((resolve) => (asked = resolve));
    const { port } = await start({
      authenticate: () => {
        asked();
        return new Promise((resolve) => (answer = resolve));
      },
    });
    const exchange = rawExchange(port, upgradeRequest('/ws'));
    await called;
    await opened.server!.stop();
    expect((await exchange).response).toMatch(/^HTTP\/1\.1 503 /);
    answer(undefined);
    // The verdict follows within microtasks of the hook's answer: all run before the next turn.
    await new Promise((resolve) => setImmediate(resolve));
    expect(opened.server!.getStats().handshakesRefused).toBe(1);
  });

  it('takes any principal but undefined, null and false, as the README says: a user id 0 or an empty name is one', async () => {
    for (const principal of [0, '']) {
      const seen: unknown[] = [];
      const { url } = await start({ authenticate: () => principal, authorize: (p) => (seen.push(p), true) });
      const c = await connect(url);
      await c.next((m) => m.type === 'welcome');
      c.send({ type: 'subscribe', upgradeId: 'u1' });
      await c.next((m) => m.type === 'subscribed');
      expect(seen).toEqual([principal]);
      await c.close();
      await opened.server!.stop();
    }
  });

  it('closes a connection only for an exp that is a finite number: a principal whose exp is NaN, Infinity or text keeps its connection', async () => {
    for (const exp of [Number.NaN, Number.POSITIVE_INFINITY, '0']) {
      const { url } = await start({ authenticate: () => ({ user: 'ann', exp }) });
      const c = await connect(url);
      await c.next((m) => m.type === 'welcome');
      // Long enough for a timer set for "now" to have fired.
      await sleep(100);
      await c.answered();
      expect(c.closeCode, String(exp)).toBeUndefined();
      await c.close();
      await opened.server!.stop();
    }
  });
});

describe('authorize', () => {
  it('takes only true for a yes, as the README says: undefined (a hook that forgets to return), 1, "yes" or a throw is FORBIDDEN', async () => {
    const answers: Record<string, () => unknown> = {
      undefined: () => undefined,
      one: () => 1,
      yes: () => 'yes',
      throws: () => {
        throw new Error('directory down');
      },
      allowed: () => true,
    };
    // Typed boolean: these are the answers of hooks written in JavaScript, or cast.
    const { url } = await start({ authorize: ((_p: unknown, id: string) => answers[id]!()) as never });
    const c = await connect(url);
    for (const id of Object.keys(answers)) c.send({ type: 'subscribe', upgradeId: id });
    await c.answered();
    expect(c.ofType('error').map((e) => `${e.code} ${e.message}`)).toEqual(['undefined', 'one', 'yes', 'throws'].map((id) => `FORBIDDEN not allowed to read upgrade "${id}"`));
    expect(c.ofType('subscribed').map((m) => m.upgradeId)).toEqual(['allowed']);
  });
});

describe('the rate limit', () => {
  it('serves `burst` messages at once, a burst of 1 included', async () => {
    const { url } = await start({ rateLimit: { messagesPerSecond: 1, burst: 1, maxViolations: 50 } });
    const c = await connect(url);
    await c.next((m) => m.type === 'welcome');
    c.send({ type: 'ping' });
    c.send({ type: 'ping' });
    await c.until((ms) => ms.length === 3, 10_000, 'two answers');
    expect(c.messages.slice(1).map((m) => (m.type === 'error' ? `error:${m.code}` : m.type))).toEqual(['pong', 'error:RATE_LIMITED']);
  });

  it('counts no refusal after it closed a connection: what a closing client still sends is not read', async () => {
    const { url } = await start({ rateLimit: { messagesPerSecond: 1, burst: 1, maxViolations: 3 } });
    const c = await connect(url);
    await c.next((m) => m.type === 'welcome');
    // One message the bucket holds, three refusals (the third closes), then six more sent before the close arrives.
    for (let i = 0; i < 10; i++) c.send({ type: 'ping' });
    expect(await c.closed).toBe(1008);
    expect(opened.server!.getStats().rateLimited).toBe(3);
  });
});

describe('maxWatchedUpgrades', () => {
  it('holds for subscribes of several clients whose loads run at once: the bound is checked again once they are loaded', async () => {
    const store = new GatedLoadStore();
    let open!: () => void;
    store.gate = new Promise<void>((resolve) => (open = resolve));
    const { url } = await start({ store, maxWatchedUpgrades: 1 });
    const [a, b] = await Promise.all([connect(url), connect(url)]);
    a.send({ type: 'subscribe', upgradeId: 'u-1' });
    b.send({ type: 'subscribe', upgradeId: 'u-2' });
    // Both passed the check made before a load (no watch runs yet), and wait for their load.
    for (let i = 0; i < 500 && store.loads < 2; i++) await sleep(10);
    expect(store.loads).toBe(2);
    open();
    await Promise.all([a.answered(), b.answered()]);
    const answers = [...a.messages, ...b.messages].filter((m) => m.type === 'subscribed' || m.type === 'error').map((m) => `${m.type}${m.code ? ` ${m.code}` : ''}`);
    expect(answers.sort()).toEqual(['error RATE_LIMITED', 'subscribed']);
    expect(store.activeWatches).toBe(1);
    expect(opened.server!.getStats().watchedUpgrades).toBe(1);
  });
});

describe('authorize and a "*" subscription over a store that can watchAll', () => {
  it('tells a "*" subscriber nothing of an upgrade it may not read when the store fails to load it', async () => {
    const store = new UnreliableStore(new WatchableMemoryStore());
    store.down.add('secret');
    const { url } = await start({
      store,
      authenticate: (req) => req.headers['x-user'] ?? 'guest',
      authorize: (principal, id) => principal === 'admin' || id !== 'secret',
    });
    const admin = await connect(url, { headers: { 'x-user': 'admin' } });
    const guest = await connect(url);
    for (const c of [admin, guest]) {
      c.send({ type: 'subscribe', upgradeId: '*' });
      await c.next((m) => m.type === 'subscribed');
    }
    // It appears (watchAll brings its first event) and its load fails: the admin is told.
    const born = await openTracker('secret', store.shared);
    trackers.push(born);
    await born.startUpgrade();
    expect(await admin.next((m) => m.upgradeId === 'secret')).toMatchObject({ type: 'error', code: 'STORE_UNAVAILABLE' });
    await guest.answered();
    expect(JSON.stringify(guest.messages)).not.toContain('secret');
  });
});

describe('a "*" subscription made again', () => {
  it('replaces the one before: each event comes once, and the store watchAll stops when the client leaves', async () => {
    const store = new WatchableMemoryStore();
    const writer = await openTracker('u1', store);
    trackers.push(writer);
    await writer.startUpgrade();
    const { url } = await start({ store });
    const c = await connect(url);
    for (let i = 0; i < 2; i++) {
      const from = c.messages.length;
      c.send({ type: 'subscribe', upgradeId: '*' });
      await c.next((m) => m.type === 'snapshot' && m.upgradeId === 'u1', from);
    }
    await writer.addTask('t', 'T');
    await c.until(() => c.seqs('u1').includes(3));
    await c.answered();
    expect(c.seqs('u1')).toEqual([3]);
    expect(store.activeWatches).toBe(1);
    // What a client that subscribed twice leaves behind: nothing (a "*" left over would keep watchAll, and what it holds, for ever).
    await c.close();
    for (let i = 0; i < 500 && store.activeWatches > 0; i++) await sleep(10);
    expect(store.activeWatches).toBe(0);
  });
});

describe('a subscribe whose client left while it loaded', () => {
  it('lets go of the upgrade a client subscribed to and left before its load answered', async () => {
    const store = new GatedLoadStore();
    let open!: () => void;
    store.gate = new Promise<void>((resolve) => (open = resolve));
    const { url } = await start({ store });
    const c = await connect(url);
    c.send({ type: 'subscribe', upgradeId: 'made-up' });
    for (let i = 0; i < 500 && store.loads < 1; i++) await sleep(10);
    expect(store.loads).toBe(1);
    await c.close();
    for (let i = 0; i < 500 && opened.server!.getStats().clients > 0; i++) await sleep(10);
    open();
    // Else a client that subscribes to made-up ids and leaves at once makes the server keep a topic for each.
    for (let i = 0; i < 500 && opened.server!.getStats().topics > 0; i++) await sleep(10);
    expect(opened.server!.getStats()).toMatchObject({ clients: 0, topics: 0, watchedUpgrades: 0 });
  });
});

describe('fragments', () => {
  /** `{"type":"ping"}` as a text message of `count` frames (the ones between the first and the last empty). */
  function pingInFrames(count: number): Buffer {
    const frames = [clientFrame(0x1, Buffer.from('{'), false)];
    for (let i = 0; i < count - 2; i++) frames.push(clientFrame(0x0, Buffer.alloc(0), false));
    frames.push(clientFrame(0x0, Buffer.from('"type":"ping"}'), true));
    return Buffer.concat(frames);
  }

  it('takes a message of 1024 fragments and closes with 1008 at 1025, as the README says', async () => {
    const { port } = await start();
    const { socket, received } = await rawWebSocket(port, '/ws');
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write(pingInFrames(1024));
    for (let i = 0; i < 500 && !received().toString('latin1').includes('"type":"pong"'); i++) await sleep(10);
    expect(received().toString('latin1')).toContain('"type":"pong"');
    expect(closeCodeIn(received())).toBeUndefined();
    socket.write(pingInFrames(1025));
    await Promise.race([closed, sleep(5000)]);
    expect(closeCodeIn(received())).toBe(1008);
    socket.destroy();
  });
});

describe('maxPayload', () => {
  it('takes a message of exactly maxPayload bytes and closes with 1009 at one byte more', async () => {
    const { url } = await start({ maxPayload: 1024 });
    const c = await connect(url);
    await c.next((m) => m.type === 'welcome');
    const ping = (bytes: number): string => {
      const text = JSON.stringify({ type: 'ping', pad: '' });
      return JSON.stringify({ type: 'ping', pad: 'x'.repeat(bytes - text.length) });
    };
    expect(ping(1024)).toHaveLength(1024);
    c.send(ping(1024));
    await c.next((m) => m.type === 'pong');
    const from = c.messages.length;
    c.send(ping(1025));
    expect(await Promise.race([c.closed, c.next((m) => m.type === 'pong', from).then(() => 'answered')])).toBe(1009);
  });
});
