// The README's Watching section: the watchers never end because of a lost connection or a failover,
// they read again. A server that loads a dataset answers every read with `LOADING Redis is loading
// the dataset in memory`: a demoted master loading its new master's RDB after a full sync
// (`REPLICAOF` under a watcher, as Sentinel does), or a server started again over its RDB, read by a
// client that skips ioredis' ready check. Checked here on real redis-server processes of this file's
// own, kept loading for seconds with Redis' hidden `key-load-delay` (microseconds slept per key
// loaded) over 20,000 filler keys, and `loading-process-events-interval-bytes` low enough that
// Redis answers its clients (LOADING) while it loads. Redis' `INFO errorstats` shows that the
// watchers did meet LOADING. Also a watchAll() called while Redis loads (its start point). Skipped
// when redis-server is not installed.
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

/** Keys loaded with `key-load-delay` (us each): the load lasts at least 20,000 x 100 us = 2 s (about 5 s measured here). */
const FILLER_KEYS = 20_000;
const LOAD_DELAY = ['--key-load-delay', '100', '--loading-process-events-interval-bytes', '1024'];

/** What each test started, let go of after it. */
const servers: ChildProcess[] = [];
const dirs: string[] = [];
const clients: Array<{ disconnect(): void }> = [];
const stores: RedisStore[] = [];

afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
  for (const client of clients.splice(0)) client.disconnect();
  for (const server of servers.splice(0)) await kill(server);
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** One INFO section as Redis answers it (INFO is answered while loading, without an error). */
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
      // A bulk reply: `$<length>\r\n<text>\r\n`.
      const length = Number(/^\$(\d+)\r\n/.exec(text)?.[1]);
      if (text.length >= String(length).length + 3 + length + 2) done();
    });
  });
}

/**
 * Waits until the server on `port` answers and says `loading:<flag>`: 0, it has loaded its data (and,
 * as a replica, is in step); 1, it is loading.
 */
async function loading(port: number, flag: 0 | 1, replica = false): Promise<void> {
  for (const end = Date.now() + 60_000; ; ) {
    const persistence = await info(port, 'persistence');
    const inStep = !replica || (await info(port, 'replication')).includes('master_link_status:up');
    // (`loading:0`, not `async_loading:0`.)
    if (new RegExp(`^loading:${flag}\\r?$`, 'm').test(persistence) && inStep) return;
    if (Date.now() > end) throw new Error(`redis-server on port ${port} never said loading:${flag} within 60 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** How many LOADING replies the server gave since it started (INFO errorstats). */
async function loadingReplies(port: number): Promise<number> {
  return Number(/errorstat_LOADING:count=(\d+)/.exec(await info(port, 'errorstats'))?.[1] ?? 0);
}

/** A redis-server on `port` over `dir`; with `wait` (the default), once it has loaded its data. */
async function startServer(port: number, dir: string, extra: string[] = [], wait = true): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--dbfilename', 'dump.rdb', '--save', '', '--appendonly', 'no', '--repl-backlog-size', '16kb', ...extra],
    { stdio: 'ignore' },
  );
  child.once('error', () => {});
  servers.push(child);
  if (wait) await loading(port, 0);
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** A new server on a free port, over a temp dir of its own. */
async function newServer(extra: string[] = []): Promise<{ port: number; dir: string; child: ChildProcess }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'progress-loading-'));
  dirs.push(dir);
  return { port, dir, child: await startServer(port, dir, extra) };
}

async function fill(client: Redis): Promise<void> {
  const pipeline = client.pipeline();
  for (let i = 0; i < FILLER_KEYS; i++) pipeline.set(`filler:${i}`, 'x');
  await pipeline.exec();
}

const client = (port: number, options: { enableReadyCheck?: boolean } = {}): Redis => {
  const c = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: null, retryStrategy: () => 50, ...options });
  c.on('error', () => {});
  clients.push(c);
  return c;
};

const store = (redis: Redis, options: { commandTimeoutMs?: number } = {}): RedisStore => {
  const s = new RedisStore({ redis, keyPrefix: 'loading:', watchBlockMs: 200, commandTimeoutMs: 120_000, ...options });
  stores.push(s);
  return s;
};

/** `watch(upgradeId, 0)` and `watchAll()` of `reader` in the background: what each hands out, and how each ended. */
function follow(reader: RedisStore, upgradeId: string) {
  const stop = new AbortController();
  const watched: ProgressEvent[] = [];
  const followed: ProgressEvent[] = [];
  /** How each ended, as it ended (a test waiting for events fails at once with it). */
  const ends: string[] = [];
  const ended = (what: string) => (err: unknown) => {
    const end = err ? `${what}: ${(err as ProgressError).code} ${(err as ProgressError).message}` : `${what}: done`;
    ends.push(end);
    return end;
  };
  const watching = (async () => {
    for await (const e of reader.watch(upgradeId, 0, { signal: stop.signal })) watched.push(e);
  })().then(ended('watch'), ended('watch'));
  const following = (async () => {
    for await (const e of reader.watchAll({ signal: stop.signal })) followed.push(e);
  })().then(ended('watchAll'), ended('watchAll'));
  return { watched, followed, watching, following, stop, ends };
}

/** Waits until `check()`; fails when a watcher of `w` ended meanwhile, with how it ended. */
const until = async (w: { ends: string[] }, check: () => boolean, what: string, ms = 60_000): Promise<void> => {
  for (const end = Date.now() + ms; !check(); ) {
    if (w.ends.length > 0) throw new Error(`waiting for ${what}, a watcher ended: ${w.ends.join('; ')}`);
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

const plain = (events: ProgressEvent[]): unknown => JSON.parse(JSON.stringify(events));

describe.skipIf(!hasRedisServer)('watch() and watchAll() while Redis loads its dataset (LOADING)', () => {
  it('read again through a restart over the RDB seen without the ready check, and hand out every event once, in order', { timeout: 120_000 }, async () => {
    const { port, dir, child } = await newServer();
    const admin = client(port);
    await fill(admin);
    // The watchers' connections are duplicates of this client: no ready check, so they read while Redis loads.
    const reader = store(client(port, { enableReadyCheck: false }));
    const writer = store(client(port));
    const f = new EventFactory('u1');
    const written = await appendBatch(writer, f, 3);
    const w = follow(reader, 'u1');
    await until(w, () => w.watched.length === 3, 'the first events');
    // watchAll() hands out what is appended after its start.
    await new Promise((r) => setTimeout(r, 300));
    written.push(...(await appendBatch(writer, f, 2)));
    await until(w, () => w.watched.length === 5 && w.followed.length === 2, 'the events before the restart');

    await admin.save();
    await kill(child);
    servers.splice(servers.indexOf(child), 1);
    // Started again over its RDB, loading for seconds; the watchers' reads, sent again on the new connection, meet LOADING.
    await startServer(port, dir, LOAD_DELAY);
    expect(await loadingReplies(port)).toBeGreaterThan(0);
    written.push(...(await appendBatch(writer, f, 3)));
    await until(w, () => w.watched.length >= 8 && w.followed.length >= 5, 'the events after the load');
    // No more than that comes (a page read twice would hand out more).
    written.push(...(await appendBatch(writer, f, 1)));
    await until(w, () => w.watched.length >= 9 && w.followed.length >= 6, 'the last event');
    w.stop.abort();
    expect([await w.watching, await w.following]).toEqual(['watch: done', 'watchAll: done']);
    expect(w.watched).toEqual(plain(written));
    expect(w.followed).toEqual(plain(written.slice(3)));
  });

  it('read again on a master demoted by REPLICAOF while it loads its new master\'s RDB, with the ready check on', { timeout: 120_000 }, async () => {
    const a = await newServer();
    const b = await newServer();
    const adminA = client(a.port);
    const adminB = client(b.port);
    const reader = store(client(a.port));
    const f = new EventFactory('u1');
    const written = await appendBatch(store(client(a.port)), f, 3);
    await adminB.replicaof('127.0.0.1', String(a.port));
    await loading(b.port, 0, true);
    const w = follow(reader, 'u1');
    await until(w, () => w.watched.length === 3, 'the first events');
    await new Promise((r) => setTimeout(r, 300));
    // B takes over with every event, and is written to past its backlog: A, made its replica, needs a
    // full sync, and loads B's RDB (20,000 keys) for seconds.
    await adminB.replicaof('NO', 'ONE');
    await fill(adminB);
    const writer = store(client(b.port));
    written.push(...(await appendBatch(writer, f, 2)));
    await adminA.config('SET', 'key-load-delay', '100');
    await adminA.config('SET', 'loading-process-events-interval-bytes', '1024');
    const before = await loadingReplies(a.port);
    await adminA.replicaof('127.0.0.1', String(b.port));
    // REPLICAOF ends the watchers' blocked reads (UNBLOCKED), and they read again at once: a read
    // sent before the load began stays blocked until it ends (Redis serves no timeout meanwhile),
    // and the load met no read in about one run of four. Ended again while A loads, as REPLICAOF
    // ends them, they read again into the load.
    await loading(a.port, 1);
    const blocked = String(await adminA.call('CLIENT', 'LIST', 'TYPE', 'normal'))
      .split('\n')
      .filter((line) => / cmd=xread /.test(line))
      .map((line) => /^id=(\d+) /.exec(line)![1]!);
    for (const id of blocked) await adminA.call('CLIENT', 'UNBLOCK', id, 'ERROR');
    await loading(a.port, 0, true);
    expect(await loadingReplies(a.port)).toBeGreaterThan(before);
    written.push(...(await appendBatch(writer, f, 2)));
    await until(w, () => w.watched.length >= 7 && w.followed.length >= 4, 'the events after the load');
    w.stop.abort();
    expect([await w.watching, await w.following]).toEqual(['watch: done', 'watchAll: done']);
    expect(w.watched).toEqual(plain(written));
    expect(w.followed).toEqual(plain(written.slice(3)));
  });

  it('end with STORE_UNAVAILABLE naming LOADING when the load lasts past commandTimeoutMs', { timeout: 120_000 }, async () => {
    const { port, dir, child } = await newServer();
    const admin = client(port);
    await fill(admin);
    const reader = store(client(port, { enableReadyCheck: false }), { commandTimeoutMs: 300 });
    const f = new EventFactory('u1');
    await appendBatch(store(client(port)), f, 3);
    const w = follow(reader, 'u1');
    await until(w, () => w.watched.length === 3, 'the first events');
    await admin.save();
    await kill(child);
    servers.splice(servers.indexOf(child), 1);
    // The load lasts at least 2 s: past the reader's 300 ms.
    await startServer(port, dir, LOAD_DELAY);
    expect(await w.watching).toMatch(/^watch: STORE_UNAVAILABLE .*upgrade "u1": watch failed: LOADING /);
    expect(await w.following).toMatch(/^watchAll: STORE_UNAVAILABLE .*watchAll failed: LOADING /);
  });

  // A watchAll() CALLED while Redis loads: its start point, read at the call, is refused with LOADING
  // too. It reads it again, and hands out what is appended once the load ends.
  it('a watchAll() called during the load reads its start point again, and hands out what is appended once the load ends', { timeout: 120_000 }, async () => {
    const { port, dir, child } = await newServer();
    const admin = client(port);
    await fill(admin);
    const f = new EventFactory('u1');
    await appendBatch(store(client(port)), f, 3);
    await admin.save();
    await kill(child);
    servers.splice(servers.indexOf(child), 1);
    // Started again over its RDB, loading for seconds.
    await startServer(port, dir, LOAD_DELAY, false);
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
