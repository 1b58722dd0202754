import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { Redis } from 'ioredis';
import { freePort } from './net.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A Redis the tests may use, and how to let go of it. */
export interface TestRedis {
  url: string;
  /** True when this helper started the server (and will stop it). */
  started: boolean;
  stop(): Promise<void>;
}

/** True once a Redis on `host:port` answers PING with PONG (not while it loads its data: LOADING). */
export function answersPing(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

/**
 * Finds a Redis for the tests: `REDIS_URL` when set; else 127.0.0.1:6379 when it answers; else a
 * `redis-server` started on a free port (stopped by `stop()`). Throws a message that says what is
 * missing when none can be had.
 */
export async function ensureRedis(): Promise<TestRedis> {
  const given = process.env.REDIS_URL;
  if (given) return { url: given, started: false, stop: async () => {} };
  if (await answersPing('127.0.0.1', 6379)) {
    return { url: 'redis://127.0.0.1:6379', started: false, stop: async () => {} };
  }
  return startRedisServer();
}

/**
 * Starts a `redis-server` of its own on a free port (no persistence), stopped by `stop()`: for the
 * tests when no Redis answers, and for a test that changes what the whole server does (`maxmemory`,
 * `CLIENT PAUSE`), which on a shared Redis would fail the test files running meanwhile. Throws a
 * message that says what is missing when there is no `redis-server`.
 */
export async function startRedisServer(): Promise<TestRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'progress-redis-'));
  let child: ChildProcess;
  try {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
      stdio: 'ignore',
    });
  } catch (err) {
    throw missing(err);
  }
  const spawnError = new Promise<never>((_, reject) => child.once('error', (err) => reject(missing(err))));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await Promise.race([answersPing('127.0.0.1', port), spawnError]);
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not answer on 127.0.0.1:${port} within 10 s`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    started: true,
    stop: async () => {
      await new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function missing(cause: unknown): Error {
  return new Error(
    'The Redis tests need a Redis server: set REDIS_URL=redis://host:port, start one on 127.0.0.1:6379, ' +
      'or install redis-server (Debian/Ubuntu: `apt-get install redis-server`; macOS: `brew install redis`) ' +
      'so that the test setup can start one itself.',
    { cause },
  );
}

/**
 * Deletes every key under `prefix` on the Redis at `url`: a test that writes to a developer's own
 * Redis (the default when one answers on 6379) leaves nothing behind.
 */
export async function deleteKeys(url: string, prefix: string): Promise<void> {
  const admin = new Redis(url, { connectionName: 'progress-test-cleanup', lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await deleteKeysWith(admin, prefix);
  } finally {
    admin.disconnect();
  }
}

/** {@link deleteKeys} on a connection the caller holds. */
export async function deleteKeysWith(admin: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await admin.del(...keys);
  } while (cursor !== '0');
}
