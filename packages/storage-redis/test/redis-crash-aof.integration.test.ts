// The README's Durability section: "Surviving a crash of Redis itself depends on how Redis is
// configured: use AOF with `appendfsync always`". Checked here with a redis-server of this file's
// own (`--appendonly yes --appendfsync always`, Redis 7's multi-part AOF in `--appenddirname`), killed
// with SIGKILL at a seeded random moment while a tracker's commands are in flight (sequential ones
// and bursts of 100 that the tracker group-commits), and started again on the same port and dir,
// which replays the AOF. After each kill: every acknowledged event is stored, once, in order, with no
// gap; the events a rejected command wrote are stored only if the tracker handed them out too (it
// adopts a write of unknown outcome); `load()`, `list()` and the meta agree with the events; a new
// tracker opens and appends; and a `watch()` never hands out a different event under a seq it handed
// out. Skipped when redis-server is not installed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProgressTracker, isProgressError, replayEvents, type ProgressEvent } from '@progress/core';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../tools/test-utils/src/net.js';
import { answersPing } from '../../../tools/test-utils/src/redis.js';
import { RedisStore } from '../src/index.js';
import { collect } from './helpers.js';

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

let dir: string;
let port: number;
let server: ChildProcess | undefined;

/** Starts redis-server on `port` over `dir` (the same both times: a restart replays the AOF there). */
async function startServer(): Promise<void> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--appenddirname', 'aof'],
    { stdio: 'ignore' },
  );
  child.once('error', () => {});
  server = child;
  for (const end = Date.now() + 15_000; !(await answersPing('127.0.0.1', port)); ) {
    if (Date.now() > end || child.exitCode !== null) throw new Error(`redis-server did not answer on port ${port}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** SIGKILL: no shutdown, no AOF rewrite, whatever was in flight is cut. */
async function killServer(): Promise<void> {
  const child = server!;
  server = undefined;
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

beforeAll(async () => {
  if (!hasRedisServer) return;
  dir = mkdtempSync(join(tmpdir(), 'progress-aof-'));
  port = await freePort();
  await startServer();
});

afterAll(async () => {
  if (!hasRedisServer) return;
  if (server) await killServer();
  rmSync(dir, { recursive: true, force: true });
});

/** A seeded generator (mulberry32): the same kill moments on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Command {
  /** `m<index>`: the event's message. */
  message: string;
  /** The order the commands were issued in (seq order for those stored). */
  index: number;
  /** 'ok', or the code it was refused with; undefined while it waits. */
  outcome?: string;
}

const TASKS = ['t0', 't1', 't2', 't3', 't4'];

describe.skipIf(!hasRedisServer)('RedisStore on a Redis with appendfsync always, killed with SIGKILL and restarted (AOF replay)', () => {
  it('keeps every acknowledged event, once, in order; the meta, load(), list() and a watcher agree; a new tracker goes on', async () => {
    const url = `redis://127.0.0.1:${port}`;
    const keyPrefix = 'aof:';
    const upgradeId = 'crashed';
    const rand = random(20261130);
    const admin = new Redis(url, { maxRetriesPerRequest: null, retryStrategy: () => 50 });
    admin.on('error', () => {});
    const commands: Command[] = [];
    const stores: RedisStore[] = [];
    let next = 0;
    try {
      for (let round = 0; round < 5; round++) {
        // commandTimeoutMs is short so that an outage longer than it leaves rejected commands too.
        const store = new RedisStore({ url, keyPrefix, commandTimeoutMs: 1000, snapshotEvery: 40 });
        const reader = new RedisStore({ url, keyPrefix, commandTimeoutMs: 1000, watchBlockMs: 200 });
        stores.push(store, reader);
        // A new tracker each round resumes from what the AOF gave back (round 0 creates the upgrade).
        const tracker = await ProgressTracker.open({ upgradeId, planId: 'p', clusterName: 'c', store });
        const startSeq = tracker.progress.lastSeq;
        const handedOut: ProgressEvent[] = [];
        tracker.subscribe((event) => handedOut.push(event));
        if (round === 0) {
          await tracker.startUpgrade();
          await tracker.addTasks(TASKS.map((taskId) => ({ taskId, taskName: taskId })));
        }

        // The watcher, from the seq the round starts at.
        const watched: ProgressEvent[] = [];
        let watchError: unknown;
        const stopWatch = new AbortController();
        const watching = (async () => {
          for await (const event of reader.watch(upgradeId, startSeq, { signal: stopWatch.signal })) watched.push(event);
        })().catch((err: unknown) => (watchError = err));

        // The kill comes just after a seeded command is issued (inside a burst or among sequential
        // ones), with it and the writes before it in flight; the server stays down a while (past
        // commandTimeoutMs in some rounds: ioredis' backoff adds to it) and is started again.
        const killAt = next + 50 + Math.floor(rand() * 600);
        const downFor = Math.floor(rand() * 1600);
        let killed!: () => void;
        const killing = new Promise<void>((resolve) => (killed = resolve));
        let inFlight: Command[] = [];
        const issue = (): Promise<void> => {
          const command: Command = { message: `m${next}`, index: next++ };
          commands.push(command);
          const done = tracker.updateTaskProgress(TASKS[command.index % TASKS.length]!, command.index % 101, command.message);
          if (command.index === killAt) {
            server!.kill('SIGKILL');
            inFlight = commands.filter((c) => c.outcome === undefined);
            killed();
          }
          return done.then(
            () => void (command.outcome = 'ok'),
            (err: unknown) => void (command.outcome = isProgressError(err) ? err.code : String(err)),
          );
        };
        let writing = true;
        const writer = (async () => {
          while (writing) {
            const sequential = 1 + Math.floor(rand() * 20);
            for (let i = 0; i < sequential && writing; i++) await issue();
            await Promise.all(Array.from({ length: 100 }, issue));
          }
        })();

        await killing;
        await killServer();
        await new Promise((r) => setTimeout(r, downFor));
        await startServer();
        // Write on after the restart until 100 more commands resolved: a write of unknown outcome
        // is met (and adopted) by a later one.
        const after = commands.length;
        for (const end = Date.now() + 15_000; Date.now() < end; ) {
          if (commands.slice(after).filter((c) => c.outcome === 'ok').length >= 100) break;
          await new Promise((r) => setTimeout(r, 20));
        }
        writing = false;
        await writer;
        await tracker.close();

        const events = await collect(store.readEvents(upgradeId, 0));
        const last = events.length;
        const byMessage = new Map(events.map((e) => [e.message, e.seq]));
        const count = (list: Command[], outcome: string) => list.filter((c) => c.outcome === outcome).length;
        const summary =
          `round ${round}: killed at command ${killAt} with ${inFlight.length} commands in flight, down ${downFor} ms; in flight: ` +
          `${count(inFlight, 'ok')} resolved, ${inFlight.length - count(inFlight, 'ok')} rejected (${inFlight.filter((c) => c.outcome !== 'ok' && byMessage.has(c.message)).length} of them stored); ` +
          `${last} events stored`;

        // Every acknowledged command's event is there; contiguous from seq 1, each event once, in the order issued.
        expect(commands.filter((c) => c.outcome === 'ok' && !byMessage.has(c.message)).map((c) => c.message), summary).toEqual([]);
        expect(events.map((e) => e.seq), summary).toEqual(Array.from({ length: last }, (_, i) => i + 1));
        expect(new Set(events.map((e) => e.eventId)).size, summary).toBe(last);
        const mine = events.filter((e) => /^m\d+$/.test(e.message)).map((e) => Number(e.message.slice(1)));
        expect(new Set(mine).size, summary).toBe(mine.length);
        expect(mine, summary).toEqual([...mine].sort((a, b) => a - b));
        // The commands cut by the kill resolved after the restart or were refused as unavailable;
        // nothing was a CONFLICT or damage.
        expect(inFlight.length, summary).toBeGreaterThan(0);
        expect(commands.filter((c) => c.outcome !== 'ok' && c.outcome !== 'STORE_UNAVAILABLE').map((c) => `${c.message}: ${c.outcome}`), summary).toEqual([]);
        // The tracker's view is the store's: what it handed out (acknowledged, or adopted after a
        // write of unknown outcome) is exactly what is stored after the round's start, so a rejected
        // command whose event is stored was told truthfully once the tracker found it.
        expect(tracker.durableProgress.lastSeq, summary).toBe(last);
        expect(handedOut.map((e) => [e.seq, e.eventId]), summary).toEqual(events.filter((e) => e.seq > startSeq).map((e) => [e.seq, e.eventId]));

        // load() is the fold of the events; list() and the meta say the same last seq.
        expect(await store.load(upgradeId), summary).toEqual(replayEvents(events));
        expect((await store.list()).find((r) => r.upgradeId === upgradeId)?.lastSeq, summary).toBe(last);
        expect(await admin.hget(`${keyPrefix}{${upgradeId}}:meta`, 'lastSeq'), summary).toBe(String(last));

        // The watcher: under every seq it handed out, the stored event; and either every event to the
        // last one, or an end a reader resyncs from (NOT_FOUND).
        for (const end = Date.now() + 10_000; watchError === undefined && watched.at(-1)?.seq !== last && Date.now() < end; ) {
          await new Promise((r) => setTimeout(r, 20));
        }
        stopWatch.abort();
        await watching;
        const stored = new Map(events.map((e) => [e.seq, e.eventId]));
        expect(watched.map((e) => [e.seq, e.eventId]), summary).toEqual(watched.map((e) => [e.seq, stored.get(e.seq)]));
        expect(watched.map((e) => e.seq), summary).toEqual(Array.from({ length: watched.length }, (_, i) => startSeq + 1 + i));
        if (watchError === undefined) expect(watched.at(-1)?.seq, summary).toBe(last);
        else expect(isProgressError(watchError, 'NOT_FOUND'), `${summary}; the watcher ended with ${String(watchError)}`).toBe(true);
      }
      // The meta the last restart left: one more tracker opens and appends without CONFLICT or DATA_CORRUPTED.
      const store = new RedisStore({ url, keyPrefix });
      stores.push(store);
      const tracker = await ProgressTracker.open({ upgradeId, planId: 'p', clusterName: 'c', store });
      const lastSeq = tracker.progress.lastSeq;
      await tracker.completeUpgrade();
      await tracker.close();
      expect((await collect(store.readEvents(upgradeId, lastSeq))).map((e) => [e.seq, e.type])).toEqual([[lastSeq + 1, 'upgrade.completed']]);
    } finally {
      for (const store of stores) await store.close();
      admin.disconnect();
    }
  }, 60_000);
});
