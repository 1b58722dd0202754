// The README's "`rediss://` works for TLS", against a real TLS redis-server: a throwaway CA and
// server certificate made with openssl at the start (into a temp dir removed at the end), and a
// redis-server of the test's own serving TLS on one port (and plain text on another, for the admin
// connection). Skipped, with the reason, when openssl or a redis-server built with TLS is missing.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventFactory } from '@progress/core/testing';
import type { ProgressEvent } from '@progress/core';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestCertificates, missingOpenssl, startTlsRedisServer, type TlsRedisServer } from '../../../tools/test-utils/src/tls.js';
import { errorOf, redisUrl } from './helpers.js';
import { RedisStore } from '../src/index.js';

let dir: string | undefined;
let server: TlsRedisServer | undefined;
let skipped: string | undefined;
let tlsPort = 0;
let admin: Redis | undefined;
/** The private CA that signed the server's certificate, and one that did not. */
let ca: Buffer;
let otherCa: Buffer;

beforeAll(async () => {
  skipped = missingOpenssl();
  if (skipped) return;
  dir = mkdtempSync(join(tmpdir(), 'progress-redis-tls-'));
  const certs = makeTestCertificates(dir);
  ca = readFileSync(certs.ca);
  otherCa = readFileSync(certs.other);
  const started = await startTlsRedisServer(dir);
  if (typeof started === 'string') return void (skipped = started);
  server = started;
  tlsPort = started.tlsPort;
  admin = new Redis({ port: started.plainPort, host: '127.0.0.1', connectionName: 'progress-test-admin' });
});

afterAll(async () => {
  admin?.disconnect();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Follows what `open` returns in the background: what it hands out, and stop() (aborts it, waits for its end, throws its error if it failed). */
function follow(open: (signal: AbortSignal) => AsyncIterable<ProgressEvent>): { seen: string[]; stop: () => Promise<void> } {
  const seen: string[] = [];
  const controller = new AbortController();
  let failure: unknown;
  const following = (async () => {
    for await (const ev of open(controller.signal)) seen.push(`${ev.upgradeId}:${ev.seq}`);
  })().catch((err: unknown) => (failure ??= err));
  return {
    seen,
    stop: async () => {
      controller.abort();
      await following;
      if (failure !== undefined) throw failure;
    },
  };
}

async function until(check: () => boolean, ms = 4000): Promise<void> {
  for (const end = Date.now() + ms; !check() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 10));
}

/** The local addresses Redis sees the connections named `name` on. */
async function connectionsOf(name: string): Promise<string[]> {
  return ((await admin!.call('CLIENT', 'LIST')) as string)
    .split('\n')
    .filter((l) => l.includes(` name=${name} `))
    .map((l) => /\bladdr=(\S*)/.exec(l)![1]!);
}

describe('RedisStore over TLS (rediss://, a private CA)', () => {
  it('appends, loads, lists and deletes; watch() and watchAll() keep the TLS settings and recover from killed connections', async (ctx) => {
    if (skipped) return ctx.skip(skipped);
    const client = new Redis(`rediss://127.0.0.1:${tlsPort}`, { tls: { ca }, maxRetriesPerRequest: null });
    const store = new RedisStore({ redis: client, keyPrefix: 'tls:', connectionName: 'tls-store', commandTimeoutMs: 2000 });
    const watched = follow((signal) => store.watch('u1', 0, { signal }));
    const fed = follow((signal) => store.watchAll({ signal }));
    try {
      const f = new EventFactory('u1');
      await store.append('u1', f.batch(3), 0, f.snapshot());
      expect((await store.load('u1'))?.lastSeq).toBe(3);
      expect((await store.list()).map((row) => row.upgradeId)).toEqual(['u1']);
      await until(() => watched.seen.length === 3 && fed.seen.length === 3);
      expect(watched.seen).toEqual(['u1:1', 'u1:2', 'u1:3']);
      expect(fed.seen).toEqual(['u1:1', 'u1:2', 'u1:3']);
      // The watchers' own connections (duplicates of the client) are on the TLS port too.
      expect(await connectionsOf('tls-store:watch')).toEqual([`127.0.0.1:${tlsPort}`, `127.0.0.1:${tlsPort}`]);

      // Every TLS connection killed: all of them connect again, over TLS, and go on.
      await admin!.call('CLIENT', 'KILL', 'LADDR', `127.0.0.1:${tlsPort}`);
      await store.append('u1', f.batch(2), 3, f.snapshot());
      await until(() => watched.seen.length === 5 && fed.seen.length === 5);
      expect(watched.seen).toEqual(['u1:1', 'u1:2', 'u1:3', 'u1:4', 'u1:5']);
      expect(fed.seen).toEqual(['u1:1', 'u1:2', 'u1:3', 'u1:4', 'u1:5']);
      expect(await store.delete('u1')).toBe(true);
      expect(await store.list()).toEqual([]);
    } finally {
      await watched.stop();
      await fed.stop();
      await store.close();
      client.disconnect();
    }
  });

  it('checks the certificate by default: one no trusted CA signed is refused with STORE_UNAVAILABLE naming the TLS failure', async (ctx) => {
    if (skipped) return ctx.skip(skipped);
    // The store's own client (from url): Node's default CAs, which do not hold the private one.
    const store = new RedisStore({ url: `rediss://127.0.0.1:${tlsPort}`, keyPrefix: 'tls-refused:', commandTimeoutMs: 1000 });
    // A client passed in trusting another CA.
    const client = new Redis(`rediss://127.0.0.1:${tlsPort}`, { tls: { ca: otherCa }, maxRetriesPerRequest: null });
    client.on('error', () => {});
    const other = new RedisStore({ redis: client, keyPrefix: 'tls-refused:', commandTimeoutMs: 1000 });
    try {
      const f = new EventFactory('u1');
      const watchAll = (async () => {
        for await (const ev of store.watchAll()) throw new Error(`watchAll handed out ${ev.upgradeId}:${ev.seq}`);
      })();
      const [err, watchAllErr, otherErr] = await Promise.all([errorOf(store.append('u1', f.batch(1), 0, f.snapshot())), errorOf(watchAll), errorOf(other.list())]);
      expect(err.code).toBe('STORE_UNAVAILABLE');
      expect(err.message).toMatch(/the connection is down: self-signed certificate/);
      // watchAll() too says why: not a bare "no answer from Redis", which reads as a slow or stopped server.
      expect(watchAllErr.code).toBe('STORE_UNAVAILABLE');
      expect(watchAllErr.message).toMatch(/the connection is down: self-signed certificate/);
      expect(otherErr.code).toBe('STORE_UNAVAILABLE');
      expect(await admin!.keys('tls-refused:*')).toEqual([]);
    } finally {
      await store.close();
      await other.close();
      client.disconnect();
    }
  });

  it('a store made from a rediss:// url trusts the CAs of NODE_EXTRA_CA_CERTS (appends, load, watchAll)', async (ctx) => {
    if (skipped) return ctx.skip(skipped);
    const fixture = fileURLToPath(new URL('./fixtures/tls-url.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@progress/source', fixture], {
      cwd: fileURLToPath(new URL('../../../', import.meta.url)),
      env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir!, 'ca.pem'), PROGRESS_TEST: JSON.stringify({ url: `rediss://127.0.0.1:${tlsPort}`, keyPrefix: 'tls-url:', upgradeId: 'u2' }) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += String(d)));
    const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const code = await new Promise((r) => child.once('exit', r));
    clearTimeout(kill);
    expect({ code, result: JSON.parse(out) as unknown }).toEqual({ code: 0, result: { lastSeq: 3, fed: [1, 2, 3] } });
    expect(await admin!.exists('tls-url:{u2}:events')).toBe(1);
  });
});

// A URL whose scheme the server does not speak: a user who wrote rediss:// for a plain Redis (or
// redis:// for a TLS-only one) was told only "no answer from Redis within 3000 ms", which reads as a
// slow or stopped server. A plain Redis never answers a TLS ClientHello (it waits for the end of an
// inline command), and a TLS-only one resets the connection on a plain command without a byte back.
describe('RedisStore with a URL whose scheme the server does not speak', () => {
  it('rediss:// to a plain Redis: the timeout says the TLS handshake went unanswered, and asks whether the server speaks TLS', async () => {
    const url = redisUrl().replace(/^redis:/, 'rediss:');
    const store = new RedisStore({ url, keyPrefix: 'tls-plain:', commandTimeoutMs: 1000 });
    try {
      const said =
        '[@progress/storage-redis] could not read the index of upgrades: no answer from Redis within 1000 ms (the connection is down: the server took the connection but did not answer the TLS handshake; does it speak TLS? the URL says rediss://)';
      const f = new EventFactory('u1');
      const [err, appendErr] = await Promise.all([errorOf(store.list()), errorOf(store.append('u1', f.batch(1), 0, f.snapshot()))]);
      expect(err.code).toBe('STORE_UNAVAILABLE');
      expect(err.message).toBe(said);
      expect(appendErr.message).toContain('(the connection is down: the server took the connection but did not answer the TLS handshake; does it speak TLS? the URL says rediss://)');
      // ioredis gives that try up after its connectTimeout (10 s), with "connect ETIMEDOUT": a store
      // that lives on (a server's) says the same of the next try, not that.
      await new Promise<void>((resolve) => store.client.on('error', (e: { code?: string }) => e.code === 'ETIMEDOUT' && resolve()));
      expect((await errorOf(store.list())).message).toBe(said);
    } finally {
      await store.close();
    }
  }, 30_000);

  it('redis:// to a TLS-only Redis: the timeout says the server closed the connection without a word, and asks whether it wants TLS', async (ctx) => {
    if (skipped) return ctx.skip(skipped);
    const store = new RedisStore({ url: `redis://127.0.0.1:${tlsPort}`, keyPrefix: 'tls-plain:', commandTimeoutMs: 1000 });
    try {
      const err = await errorOf(store.list());
      expect(err.code).toBe('STORE_UNAVAILABLE');
      expect(err.message).toMatch(
        /^\[@progress\/storage-redis\] could not read the index of upgrades: no answer from Redis within 1000 ms \(the connection is down: (read|write) ECONNRESET; the server closed the connection without answering; does it want TLS\? the URL says redis:\/\/\)$/,
      );
    } finally {
      await store.close();
    }
  });

  // Not TLS, but the same kind of mistake: the port of another server (the demo's dashboard, 8765,
  // for Redis' 6379). ioredis' parser said "Protocol error, got "H" as reply type byte. Please report
  // this.", which sent the user to ioredis' issues.
  it('redis:// to an HTTP server: says it does not speak Redis, and asks whether the port is a Redis one', async () => {
    const http = createServer((socket) => socket.once('data', () => socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n')));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const port = (http.address() as AddressInfo).port;
    const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, keyPrefix: 'not-redis:', commandTimeoutMs: 1000 });
    try {
      const err = await errorOf(store.list());
      expect(err.code).toBe('STORE_UNAVAILABLE');
      expect(err.message).toBe(
        `[@progress/storage-redis] could not read the index of upgrades: no answer from Redis within 1000 ms (the connection is down: the server does not speak Redis' protocol (its reply began with "H"); is 127.0.0.1:${port} a Redis port?)`,
      );
    } finally {
      await store.close();
      http.close();
    }
  });

  it('rediss:// to a server that resets the connection is not asked whether it wants TLS', async () => {
    // A server that resets every connection on its first bytes, without a word back, as a TLS-only Redis does a plain one's.
    const resetting = createServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
    await new Promise<void>((resolve) => resetting.listen(0, '127.0.0.1', resolve));
    const store = new RedisStore({ url: `rediss://127.0.0.1:${(resetting.address() as AddressInfo).port}`, keyPrefix: 'tls-plain:', commandTimeoutMs: 1000 });
    try {
      const err = await errorOf(store.list());
      expect(err.message).toMatch(/\(the connection is down: (.*ECONNRESET|Client network socket disconnected.*)\)$/);
      expect(err.message).not.toContain('TLS?');
    } finally {
      await store.close();
      resetting.close();
    }
  });
});
