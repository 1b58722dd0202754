import { createServer, type Server } from 'node:http';
import { describe, expect, it } from 'vitest';
import { MemoryStore, isProgressError } from '@progress/core';
import {
  ProgressWebSocketServer,
  createDashboardHandler,
  createReadToken,
  readTokenAuth,
  type DashboardOptions,
  type ProgressWebSocketServerOptions,
  type ReadTokenAuthOptions,
  type ReadTokenOptions,
} from '../src/index.js';
import { freePort } from '../../../tools/test-utils/src/net.js';
import { thrown } from '../../../tools/test-utils/src/thrown.js';
import { closedAfterEach } from './helpers.js';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const opened = closedAfterEach();
const { connect } = opened;
const logger = { debug() {}, info() {}, warn() {}, error() {} };

/** `fn` is refused with INVALID_ARGUMENT whose message names `key` and, when given, suggests `meant`. */
function expectUnknown(fn: () => unknown, key: string, meant?: string): void {
  const err = thrown(fn);
  expect(isProgressError(err, 'INVALID_ARGUMENT'), String(err)).toBe(true);
  expect(err.message).toContain(`unknown option ${JSON.stringify(key)}`);
  if (meant) expect(err.message).toContain(`(did you mean ${JSON.stringify(meant)}?)`);
  else expect(err.message).toContain('(known: ');
}

/** Whether `port` can be listened on now (nothing holds it). */
async function canListen(port: number): Promise<boolean> {
  const probe = createServer();
  const ok = await new Promise<boolean>((resolve) => {
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (ok) await new Promise<void>((resolve) => probe.close(() => resolve()));
  return ok;
}

describe('ProgressWebSocketServer options: a name it does not know is refused', () => {
  it('takes every documented option at once, rateLimit included, and serves with them', async () => {
    const http: Server = createServer();
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    try {
      const all: Required<ProgressWebSocketServerOptions> = {
        port: 0,
        host: '127.0.0.1',
        server: http,
        path: '/progress/ws',
        store: new MemoryStore(),
        authenticate: () => ({ user: 'u' }),
        handshakeTimeoutMs: 5000,
        authorize: () => true,
        allowedOrigins: ['https://ops.example.com'],
        maxPayload: 4096,
        maxBufferedBytes: 1024 * 1024,
        closeTimeoutMs: 1000,
        heartbeatMs: 0,
        rateLimit: { messagesPerSecond: 10, burst: 20, maxViolations: 5 },
        maxSubscriptionsPerClient: 10,
        maxWatchedUpgrades: 10,
        maxRetainedUpgrades: 10,
        logger,
      };
      opened.server = new ProgressWebSocketServer(all);
      const { url } = await opened.server.start();
      expect(url).toMatch(/\/progress\/ws$/);
      const c = await connect(url);
      await c.next((m) => m.type === 'welcome');
      await c.close();
    } finally {
      await opened.server?.stop();
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
    }
  });

  it('refuses a misspelt option with INVALID_ARGUMENT naming the one meant, security options included', () => {
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ allowedOrigin: ['https://ops.example.com'] }, 'allowedOrigin', 'allowedOrigins'],
      [{ allowed_origins: '*' }, 'allowed_origins', 'allowedOrigins'],
      [{ authorise: () => false }, 'authorise', 'authorize'],
      [{ authenticat: () => undefined }, 'authenticat', 'authenticate'],
      [{ maxPaylod: 1024 }, 'maxPaylod', 'maxPayload'],
      [{ prot: 9000 }, 'prot', 'port'],
      [{ heartbeat: 1000 }, 'heartbeat', 'heartbeatMs'],
      [{ maxSubscriptionsPerClients: 5 }, 'maxSubscriptionsPerClients', 'maxSubscriptionsPerClient'],
      [{ rateLimit: { burts: 2 } }, 'rateLimit.burts', 'rateLimit.burst'],
      [{ rateLimit: { messagesPerSec: 2 } }, 'rateLimit.messagesPerSec', 'rateLimit.messagesPerSecond'],
    ];
    for (const [options, key, meant] of cases) expectUnknown(() => new ProgressWebSocketServer({ port: 0, ...options } as ProgressWebSocketServerOptions), key, meant);
    // Nothing near it: the known names are listed.
    expectUnknown(() => new ProgressWebSocketServer({ tls: { cert: 'x' } } as ProgressWebSocketServerOptions), 'tls');
    // Also in an object without prototype, and with undefined as its value.
    const bare = Object.assign(Object.create(null) as object, { allowedOrigin: undefined });
    expectUnknown(() => new ProgressWebSocketServer(bare as ProgressWebSocketServerOptions), 'allowedOrigin', 'allowedOrigins');
  });

  it('starts nothing when it refuses: the port asked for stays free', async () => {
    const port = await freePort();
    expectUnknown(() => new ProgressWebSocketServer({ port, allowedOrigin: ['https://ops.example.com'] } as ProgressWebSocketServerOptions), 'allowedOrigin', 'allowedOrigins');
    expect(await canListen(port)).toBe(true);
  });

  it('reads a settings class by the option names alone, and checks no object it passes through', async () => {
    class Settings {
      // Its own state, not options.
      readonly loadedFrom = '/etc/progress.json';
      get port(): number {
        return 0;
      }
      get heartbeatMs(): number {
        return 0;
      }
    }
    opened.server = new ProgressWebSocketServer(new Settings() as ProgressWebSocketServerOptions);
    const { port } = await opened.server.start();
    expect(port).toBeGreaterThan(0);
    await opened.server.stop();
    // A store, a logger and an HTTP server are other libraries' objects with keys of their own.
    const store = Object.assign(new MemoryStore(), { extra: 1 });
    const richLogger = { ...logger, level: 'info', child: () => richLogger, fatal() {} };
    const http = createServer();
    expect(() => new ProgressWebSocketServer({ store, logger: richLogger, server: http })).not.toThrow();
  });
});

describe('read tokens and the dashboard handler: a name they do not know is refused', () => {
  it('createReadToken takes every option, and refuses a misspelt one', () => {
    const all: Required<ReadTokenOptions> = { secret: SECRET, upgradeIds: ['u1'], ttlSeconds: 60, now: () => 1_000_000 };
    expect(createReadToken(all)).toMatch(/^[\w-]+\.[\w-]+$/);
    expectUnknown(() => createReadToken({ secret: SECRET, upgradeIds: ['u1'], ttlSecond: 3600 } as ReadTokenOptions), 'ttlSecond', 'ttlSeconds');
    expectUnknown(() => createReadToken({ secret: SECRET, upgradeIds: ['u1'], ttl: 3600 } as ReadTokenOptions), 'ttl', 'ttlSeconds');
    expect(isProgressError(thrown(() => createReadToken(undefined as never)), 'INVALID_ARGUMENT')).toBe(true);
  });

  it('readTokenAuth takes every option, and refuses a misspelt one', () => {
    const all: Required<ReadTokenAuthOptions> = { secret: SECRET, now: () => 1_000_000 };
    expect(typeof readTokenAuth(all).authorize).toBe('function');
    expectUnknown(() => readTokenAuth({ secret: SECRET, nwo: Date.now } as ReadTokenAuthOptions), 'nwo', 'now');
    expect(isProgressError(thrown(() => readTokenAuth(null as never)), 'INVALID_ARGUMENT')).toBe(true);
  });

  it("readTokenAuth takes createReadToken's ttlSeconds too, so that one settings object serves both, but not upgradeIds", () => {
    const shared = { secret: SECRET, ttlSeconds: 600 };
    const auth = readTokenAuth(shared);
    const claims = auth.authenticate({ url: `/ws?token=${createReadToken({ ...shared, upgradeIds: ['u1'] })}`, headers: {} } as never);
    expect(auth.authorize(claims, 'u1')).toBe(true);
    expect(auth.authorize(claims, 'u2')).toBe(false);
    // upgradeIds would read as the server's scope, which each token's own decides: refused.
    const err = thrown(() => readTokenAuth({ secret: SECRET, upgradeIds: ['u1'] } as ReadTokenAuthOptions));
    expect(isProgressError(err, 'INVALID_ARGUMENT') && /unknown option "upgradeIds"/.test(err.message)).toBe(true);
  });

  it('createDashboardHandler takes every option, and refuses a misspelt one', () => {
    const all: Required<DashboardOptions> = { wsPath: '/progress/ws' };
    expect(typeof createDashboardHandler(all)).toBe('function');
    expectUnknown(() => createDashboardHandler({ wspath: '/progress/ws' } as DashboardOptions), 'wspath', 'wsPath');
    // A wsPath that names no endpoint the page could reach (the server's own rule for its path).
    for (const wsPath of [42, 'ws', '/ws?x=1', '/w s']) {
      const err = thrown(() => createDashboardHandler({ wsPath } as never));
      expect(isProgressError(err, 'INVALID_ARGUMENT') && /wsPath must start with "\/"/.test(err.message)).toBe(true);
    }
  });
});

describe('an option value no message can print', () => {
  it('host: a BigInt, or an object whose toJSON throws, is refused with INVALID_ARGUMENT (building the message threw a TypeError)', () => {
    for (const host of [10n, { toJSON() { throw new Error('toJSON'); } }]) {
      const err = thrown(() => new ProgressWebSocketServer({ port: 0, host } as never));
      expect(isProgressError(err, 'INVALID_ARGUMENT'), String(err)).toBe(true);
      expect(err.message).toContain('host must be');
    }
  });
});
