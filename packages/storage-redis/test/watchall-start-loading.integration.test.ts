// watchAll() CALLED while Redis loads its dataset (see watch-loading.integration.test.ts for watchers
// that were running when the load began): its start point, read at the call, is refused with
// `LOADING Redis is loading the dataset in memory` by a client that skips ioredis' ready check. The
// changeset says watchAll() no longer ends with STORE_UNAVAILABLE (LOADING) while Redis loads: it
// reads the start point again, as its other reads, and hands out what is appended once the load
// ends. A real redis-server of this file's own, kept loading for seconds with Redis' hidden
// `key-load-delay` over 20,000 filler keys. Skipped when redis-server is not installed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProgressError, ProgressEvent } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../../tools/test-utils/src/net.js';
import { RedisStore } from '../src/index.js';
import { appendBatch } from './helpers.js';

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

const servers: ChildProcess[] = [];
const dirs: string[] = [];
const clients: Redis[] = [];
const stores: RedisStore[] = [];

afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
  for (const client of clients.splice(0)) client.disconnect();
  for (const server of servers.splice(0)) await kill(server);
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** One INFO section as Redis answers it (INFO is answered while loading). */
function info(port: number, section: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    const done = (): void => {
      socket.destroy();
      resolve(text);
    };
    socket.setTimeout(1000, done);
    socket.once('error', done);
    socket.once('connect', () => socket.write(`INFO ${section}\r\n`));
    socket.on('data', (d) => {
      text += d.toString();
      const length = Number(/^\$(\d+)\r\n/.exec(text)?.[1]);
      if (text.length >= String(length).length + 3 + length + 2) done();
    });
  });
}

/** Waits until INFO persistence of the server on `port` says `loading:<flag>`. */
async function loading(port: number, flag: 0 | 1): Promise<void> {
  for (const end = Date.now() + 60_000; ; ) {
    if (new RegExp(`^loading:${flag}\\r?$`, 'm').test(await info(port, 'persistence'))) return;
    if (Date.now() > end) throw new Error(`redis-server on port ${port} never said loading:${flag}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function startServer(port: number, dir: string, extra: string[] = []): ChildProcess {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--dbfilename', 'dump.rdb', '--save', '', '--appendonly', 'no', ...extra], { stdio: 'ignore' });
  child.once('error', () => {});
  servers.push(child);
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

const client = (port: number, options: { enableReadyCheck?: boolean } = {}): Redis => {
  const c = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: null, retryStrategy: () => 50, ...options });
  c.on('error', () => {});
  clients.push(c);
  return c;
};

const store = (redis: Redis): RedisStore => {
  const s = new RedisStore({ redis, keyPrefix: 'start-loading:', watchBlockMs: 200, commandTimeoutMs: 120_000 });
  stores.push(s);
  return s;
};

describe.skipIf(!hasRedisServer)('watchAll() called while Redis loads its dataset (LOADING)', () => {
  it('reads its start point again and hands out what is appended once the load ends', { timeout: 120_000 }, async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'progress-start-loading-'));
    dirs.push(dir);
    const first = startServer(port, dir);
    await loading(port, 0);
    const admin = client(port);
    const pipeline = admin.pipeline();
    for (let i = 0; i < 20_000; i++) pipeline.set(`filler:${i}`, 'x');
    await pipeline.exec();
    const f = new EventFactory('u1');
    await appendBatch(store(client(port)), f, 3);
    await admin.save();
    await kill(first);
    servers.splice(servers.indexOf(first), 1);
    // Started again over its RDB, loading for seconds.
    startServer(port, dir, ['--key-load-delay', '100', '--loading-process-events-interval-bytes', '1024']);
    await loading(port, 1);
    // A client without the ready check: its commands reach Redis while it loads.
    const reader = store(client(port, { enableReadyCheck: false }));
    const stop = new AbortController();
    const followed: ProgressEvent[] = [];
    let ended: string | undefined;
    const following = (async () => {
      for await (const e of reader.watchAll({ signal: stop.signal })) followed.push(e);
    })().then(
      () => (ended = 'done'),
      (err: unknown) => (ended = `${(err as ProgressError).code} ${(err as ProgressError).message}`),
    );
    await loading(port, 0);
    // (The writer's client has the ready check: it waits for the load.)
    const written = await appendBatch(store(client(port)), f, 2);
    for (const end = Date.now() + 30_000; followed.length < 2 && ended === undefined && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
    stop.abort();
    await following;
    expect(ended).toBe('done');
    expect(followed.map((e) => e.eventId)).toEqual(written.map((e) => e.eventId));
  });
});
