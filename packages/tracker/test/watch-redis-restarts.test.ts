// `progress watch redis://...` when the upgrade it follows is deleted (and created again) or its
// events are removed by retention: RedisStore.watch() ends with NOT_FOUND (reason 'deleted' or
// 'trimmed'), which ended the command with exit 3, where `watch <folder>` and `watch ws://` go on
// with the new run or a reloaded state. And when Redis stops answering for a while.
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressWebSocketServer, RedisStore, createProgressTracker } from '../src/index.js';
import { main } from '../src/cli/main.js';
import { LiveView } from '../src/cli/terminal.js';
import { createdAgainLine, deletedLine, watchStore } from '../src/cli/watch.js';
import { startRedisProxy, type RedisProxy } from '../../../tools/test-utils/src/redis-proxy.js';
import { Capture, deleteKeys, uniqueId } from './helpers.js';

const url = process.env.REDIS_URL!;
const prefixes: string[] = [];
afterAll(async () => {
  for (const p of prefixes) await deleteKeys(url, p);
});

const seqsOf = (text: string, id: string): number[] => [...text.matchAll(new RegExp(`#(\\d+) ${id} `, 'g'))].map((m) => Number(m[1]));

/** A fresh upgrade id, and a key prefix whose keys are removed after this file. */
function fresh(label: string): { id: string; keyPrefix: string } {
  const keyPrefix = `${uniqueId(`cli-${label}`)}:`;
  prefixes.push(keyPrefix);
  return { id: uniqueId(label), keyPrefix };
}

/** The first run of `id`, written by a tracker that is closed again: started, with task `a` unless `withTask` is false. */
async function firstRun(id: string, keyPrefix: string, withTask = true): Promise<void> {
  const first = await createProgressTracker({ upgradeId: id, planId: 'p', clusterName: 'c', storage: { redis: url, keyPrefix } });
  await first.startUpgrade();
  if (withTask) await first.addTask('a', 'A');
  await first.close();
}

/** Runs `watchStore` on `store` (the CLI's follow of a Redis source), its lines written into `out`. */
function watchInto(store: RedisStore, id: string, signal = new AbortController().signal) {
  const out = new Capture();
  const watching = watchStore(store, id, { view: new LiveView({ out: out as unknown as NodeJS.WriteStream }), signal });
  return { out, watching };
}

/** Runs `progress watch <source> <id> --prefix <prefix>` (no prefix for a ws:// source) in this process; its output is readable while it runs. */
function watch(id: string, keyPrefix: string, source = url) {
  const out = new Capture();
  const err = new Capture();
  const exited = main(['watch', source, id, ...(source.startsWith('redis') ? ['--prefix', keyPrefix] : [])], out as unknown as NodeJS.WriteStream, err as unknown as NodeJS.WriteStream);
  const waitFor = async (what: string, test: (text: string) => boolean) => {
    const deadline = Date.now() + 15_000;
    while (!test(out.text)) {
      if (Date.now() > deadline) throw new Error(`progress watch never printed ${what}; stdout:\n${out.text}\nstderr:\n${err.text}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  return { out, err, exited, waitFor };
}

describe('progress watch redis://, when the upgrade is deleted and created again', () => {
  it('says it was deleted, waits for it, and follows the new run from its first event to its end', async () => {
    const { id, keyPrefix } = fresh('redis-again');
    const storage = { redis: url, keyPrefix };
    const first = await createProgressTracker({ upgradeId: id, planId: 'p', clusterName: 'c', storage });
    await first.startUpgrade();
    await first.addTask('a', 'A');
    const cli = watch(id, keyPrefix);
    // Events written before it read its first state are in that state, not printed: write until one is.
    for (let p = 1; seqsOf(cli.out.text, id).length === 0; p++) {
      await first.updateTaskProgress('a', p);
      await new Promise((r) => setTimeout(r, 100));
    }
    const oldLast = first.progress.lastSeq;
    await cli.waitFor(`seq ${oldLast}`, (text) => seqsOf(text, id).includes(oldLast));
    await first.close();
    const store = new RedisStore({ url, keyPrefix });
    expect(await store.delete(id)).toBe(true);
    await store.close();
    // The new run is longer than the old one: its seqs past 4 would fit the state the watcher holds.
    const second = await createProgressTracker({ upgradeId: id, planId: 'p2', clusterName: 'c', storage });
    await second.startUpgrade();
    await second.addTasks([{ taskId: 'b', taskName: 'B' }]);
    for (let p = 10; p <= 50; p += 10) await second.updateTaskProgress('b', p);
    await second.failUpgrade('boom');
    const last = second.progress.lastSeq;
    await second.close();
    expect(await cli.exited).toBe(1);
    const text = cli.out.text;
    expect(text).toMatch(new RegExp(`upgrade "${id}" was (deleted; waiting for it to be created again|created again; following the new run from its start)`));
    const newRun = text.slice(text.search(/was (deleted|created again)/));
    // The new run from its start, every event once, in order; none of it folded onto the old run.
    expect(seqsOf(newRun, id)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    expect(newRun).toContain('FAILED');
    expect(cli.err.text).toBe('');
  }, 30_000);

  it('through a ws-server over Redis: says the upgrade was deleted while it is gone, not "reloading the snapshot"', async () => {
    const { id, keyPrefix } = fresh('ws-gone');
    await firstRun(id, keyPrefix);
    const serving = new RedisStore({ url, keyPrefix, watchBlockMs: 200 });
    const server = new ProgressWebSocketServer({ port: 0, store: serving });
    try {
      const { url: wsUrl } = await server.start();
      const cli = watch(id, keyPrefix, wsUrl);
      // (Not on a terminal a snapshot prints nothing: the store watch the subscribe starts says it was served.)
      await cli.waitFor('the store watch', () => serving.info().watchers === 1);
      const store = new RedisStore({ url, keyPrefix });
      expect(await store.delete(id)).toBe(true);
      await store.close();
      // The server's resync says no snapshot follows: the watcher says the upgrade is gone and waits.
      await cli.waitFor('that it was deleted', (text) => text.includes(deletedLine(id)));
      expect(cli.out.text).not.toContain('reloading the snapshot');
      const second = await createProgressTracker({ upgradeId: id, planId: 'p2', clusterName: 'c', storage: { redis: url, keyPrefix } });
      await second.startUpgrade();
      await second.completeUpgrade();
      const last = second.progress.lastSeq;
      await second.close();
      expect(await cli.exited).toBe(0);
      const text = cli.out.text;
      expect(text).toContain(createdAgainLine(id));
      const newRun = text.slice(text.indexOf(createdAgainLine(id)));
      expect(seqsOf(newRun, id)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    } finally {
      await server.stop();
      await serving.close();
    }
  }, 30_000);

  // A ws-server's watch says `reconnecting`, a folder's `read failed`; Redis' said nothing while it
  // was away, the bars standing as if the upgrade had stopped.
  it('says when Redis stops answering and when it answers again, then prints what was written meanwhile', async () => {
    const { id, keyPrefix } = fresh('redis-outage');
    const proxy = await startRedisProxy(url);
    const writer = await createProgressTracker({ upgradeId: id, planId: 'p', clusterName: 'c', storage: { redis: url, keyPrefix } });
    try {
      await writer.startUpgrade();
      await writer.addTask('a', 'A');
      const cli = watch(id, keyPrefix, proxy.url);
      await cli.waitFor('the state', (text) => text.includes(`${id} state in_progress at seq 3`));
      // Every connection of the command cut, and new ones refused: Redis is away.
      for (let n = 1; n <= proxy.connections; n++) proxy.down(n);
      await cli.waitFor('that Redis does not answer', (text) => text.includes(`Redis at ${proxy.url} does not answer (`));
      for (let p = 10; p <= 30; p += 10) await writer.updateTaskProgress('a', p);
      proxy.up();
      await cli.waitFor('that Redis answers again', (text) => text.includes(`Redis at ${proxy.url} answers again; following on`));
      await writer.completeTask('a');
      await writer.completeUpgrade();
      expect(await cli.exited).toBe(0);
      expect(cli.err.text).toBe('');
      const text = cli.out.text;
      // Said once each, in that order, and every event after the state, once, in order.
      expect(text.split('does not answer (')).toHaveLength(2);
      expect(text.indexOf('does not answer (')).toBeLessThan(text.indexOf('answers again; following on'));
      expect(seqsOf(text, id)).toEqual([4, 5, 6, 7, 8]);
    } finally {
      await writer.close();
      await proxy.close();
    }
  }, 30_000);

  it('reloads the state when the events after the seq it holds were removed by retention, and follows on', async () => {
    const { id, keyPrefix } = fresh('redis-trim');
    // The watcher reaches Redis through a proxy that can hold its requests.
    const proxy = await startRedisProxy(url);
    const writer = await createProgressTracker({ upgradeId: id, planId: 'p', clusterName: 'c', storage: new RedisStore({ url, keyPrefix, snapshotEvery: 2, retention: { maxEvents: 2 } }) });
    await writer.startUpgrade();
    await writer.addTask('a', 'A');
    const { out, err, exited, waitFor } = watch(id, keyPrefix, proxy.url);
    for (let p = 1; seqsOf(out.text, id).length === 0; p++) {
      await writer.updateTaskProgress('a', p);
      await new Promise((r) => setTimeout(r, 100));
    }
    const seen = writer.progress.lastSeq;
    await waitFor(`seq ${seen}`, (text) => seqsOf(text, id).includes(seen));
    await new Promise((r) => setTimeout(r, 200));
    // Its next read waits in the proxy while retention removes the events it would read.
    proxy.hold();
    for (let p = 50; p <= 90; p++) await writer.updateTaskProgress('a', p);
    proxy.release();
    await waitFor('the resync', (text) => text.includes('resync: history gone; reloading the snapshot'));
    await writer.completeTask('a');
    await writer.completeUpgrade();
    const last = writer.progress.lastSeq;
    await writer.close();
    expect(await exited).toBe(0);
    const after = out.text.slice(out.text.indexOf('resync: history gone'));
    // After the reloaded state, the events that follow it, each once, in order, to the end.
    const seqs = seqsOf(after, id);
    expect(seqs.at(-1)).toBe(last);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => last - seqs.length + 1 + i));
    expect(err.text).toBe('');
    await proxy.close();
  }, 30_000);
});

/**
 * A real RedisStore whose `watch()` and `load()` run `before.watch(call)` and `before.load(call)`
 * first, when given (the call's number for that method, from 1): what another process did between
 * the watcher's reads, put exactly there.
 */
function withBefore(store: RedisStore, before: { watch?: (call: number) => Promise<void>; load?: (call: number) => Promise<void> }): RedisStore {
  let watches = 0;
  let loads = 0;
  return new Proxy(store, {
    get(target, key) {
      if (key === 'watch' && before.watch) {
        const hook = before.watch;
        return (upgradeId: string, afterSeq: number, options?: { signal?: AbortSignal }) =>
          (async function* () {
            await hook(++watches);
            yield* target.watch(upgradeId, afterSeq, options);
          })();
      }
      if (key === 'load' && before.load) {
        const hook = before.load;
        return async (upgradeId: string) => {
          await hook(++loads);
          return target.load(upgradeId);
        };
      }
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** Another run of `id` (plan `planId`), started and failed: what a watcher finds written in its place. */
async function failedRun(id: string, keyPrefix: string, planId: string): Promise<void> {
  const tracker = await createProgressTracker({ upgradeId: id, planId, clusterName: 'c', storage: { redis: url, keyPrefix } });
  await tracker.startUpgrade();
  await tracker.failUpgrade('boom');
  await tracker.close();
}

/** A whole run of `id` written with retention (2 events kept): its first events are gone before a watcher reads them. */
async function trimmedRun(id: string, keyPrefix: string, status: 'complete' | 'fail'): Promise<number> {
  const tracker = await createProgressTracker({ upgradeId: id, planId: 'p2', clusterName: 'c', storage: new RedisStore({ url, keyPrefix, snapshotEvery: 2, retention: { maxEvents: 2 } }) });
  await tracker.startUpgrade();
  await tracker.addTask('b', 'B');
  for (let p = 1; p <= 30; p++) await tracker.updateTaskProgress('b', p);
  if (status === 'fail') await tracker.failUpgrade('boom');
  else {
    await tracker.completeTask('b');
    await tracker.completeUpgrade();
  }
  const last = tracker.progress.lastSeq;
  await tracker.close();
  return last;
}

describe('watchStore on Redis, when a new run under the id is reached through a resync', () => {
  it('says the upgrade was created again when the run it waited for is reloaded after a trim', async () => {
    const { id, keyPrefix } = fresh('redis-wait-trim');
    await firstRun(id, keyPrefix);
    const real = new RedisStore({ url, keyPrefix, watchBlockMs: 50 });
    // The first watch follows the run and sees it deleted; by the time the watch that waits for
    // the id again reads, a new run was written whose first events retention removed.
    const store = withBefore(real, {
      watch: async (call) => {
        if (call === 1) expect(await real.delete(id)).toBe(true);
        if (call === 2) await trimmedRun(id, keyPrefix, 'fail');
      },
    });
    const { out, watching } = watchInto(store, id);
    const state = await watching;
    await real.close();
    expect(state?.status).toBe('failed');
    expect(state?.planId).toBe('p2');
    const text = out.text;
    expect(text).toContain(`upgrade "${id}" was deleted; waiting for it to be created again...`);
    expect(text).toContain('resync: history gone; reloading the snapshot');
    // The new run is announced, though none of its events was read.
    expect(text).toContain(createdAgainLine(id));
  }, 30_000);

  it('says the upgrade was created again when the state reloaded after a trim is of another run', async () => {
    const { id, keyPrefix } = fresh('redis-trim-other');
    await firstRun(id, keyPrefix);
    const real = new RedisStore({ url, keyPrefix, watchBlockMs: 50 });
    // Between the watcher's load and its watch, the run is deleted and a longer one written whose
    // events after the seq held were removed by retention: the watch ends 'trimmed', not 'deleted'.
    let last = 0;
    const store = withBefore(real, {
      watch: async (call) => {
        if (call !== 1) return;
        expect(await real.delete(id)).toBe(true);
        last = await trimmedRun(id, keyPrefix, 'complete');
      },
    });
    const { out, watching } = watchInto(store, id);
    const state = await watching;
    await real.close();
    expect(state?.status).toBe('completed');
    expect(state?.planId).toBe('p2');
    expect(out.text).toContain('resync: history gone; reloading the snapshot');
    expect(out.text).toContain(createdAgainLine(id));
    // The reloaded state is shown: none of its events was read to show it.
    expect(out.text).toContain(`${id} state completed at seq ${last} `);
  }, 30_000);

  it('says the upgrade was deleted when it is gone by the reload after a trim, and created again when a run appears', async () => {
    const { id, keyPrefix } = fresh('redis-trim-gone');
    await firstRun(id, keyPrefix);
    const real = new RedisStore({ url, keyPrefix, watchBlockMs: 50 });
    // The first watch ends 'trimmed' (as above); the reload finds the upgrade deleted; the watch that
    // waits for it again finds a third run.
    const store = withBefore(real, {
      watch: async (call) => {
        if (call === 1) {
          expect(await real.delete(id)).toBe(true);
          await trimmedRun(id, keyPrefix, 'complete');
        }
        if (call === 2) await failedRun(id, keyPrefix, 'p3');
      },
      load: async (call) => {
        if (call === 2) expect(await real.delete(id)).toBe(true);
      },
    });
    const { out, watching } = watchInto(store, id);
    const state = await watching;
    await real.close();
    expect(state?.planId).toBe('p3');
    expect(state?.status).toBe('failed');
    const text = out.text;
    expect(text).toContain('resync: history gone; reloading the snapshot');
    expect(text.indexOf(deletedLine(id))).toBeGreaterThan(text.indexOf('resync: history gone'));
    expect(text.indexOf(createdAgainLine(id))).toBeGreaterThan(text.indexOf(deletedLine(id)));
  }, 30_000);
});

/**
 * Once the watch has its own connection through `proxy` (the second one), takes the store's first
 * connection down (its load fails while the watch goes on) and deletes the upgrade.
 */
async function downThenDelete(proxy: RedisProxy, id: string, keyPrefix: string): Promise<void> {
  while (proxy.connections < 2) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 100));
  proxy.down(1);
  const direct = new RedisStore({ url, keyPrefix });
  await direct.delete(id);
  await direct.close();
}

/** Waits until `watching` says it reads again; fails at once when it ended instead. */
async function untilRetrying(watching: Promise<unknown>, out: Capture): Promise<void> {
  let ended: string | undefined;
  watching.then(
    () => (ended = 'ended'),
    (e: Error) => (ended = `failed: ${e.message}`),
  );
  const deadline = Date.now() + 15_000;
  while (!out.text.includes('retrying')) {
    if (ended !== undefined || Date.now() > deadline) throw new Error(`watchStore never said it reads again (${ended ?? 'still waiting'}); stdout:\n${out.text}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('watchStore on Redis, when the reload after a deleted upgrade fails', () => {
  it('says so and reads again until Redis answers, then follows the new run', async () => {
    const { id, keyPrefix } = fresh('redis-reload-down');
    const proxy = await startRedisProxy(url);
    await firstRun(id, keyPrefix);
    // Through the proxy: the store's own connection (the first one) can be taken down while the watch's stays up.
    const real = new RedisStore({ url: proxy.url, keyPrefix, watchBlockMs: 50, commandTimeoutMs: 300 });
    const store = withBefore(real, {
      watch: async (call) => {
        if (call === 1) void downThenDelete(proxy, id, keyPrefix);
      },
    });
    const { out, watching } = watchInto(store, id);
    await untilRetrying(watching, out);
    proxy.up();
    const last = await trimmedRun(id, keyPrefix, 'fail');
    const state = await watching;
    await real.close();
    await proxy.close();
    expect(state?.status).toBe('failed');
    expect(state?.lastSeq).toBe(last);
    expect(out.text).toContain(createdAgainLine(id));
  }, 30_000);

  it('ends as interrupted, not as a failure, when stopped while the reload keeps failing', async () => {
    const { id, keyPrefix } = fresh('redis-reload-abort');
    const proxy = await startRedisProxy(url);
    await firstRun(id, keyPrefix, false);
    const real = new RedisStore({ url: proxy.url, keyPrefix, watchBlockMs: 50, commandTimeoutMs: 300 });
    const store = withBefore(real, {
      watch: async (call) => {
        if (call === 1) void downThenDelete(proxy, id, keyPrefix);
      },
    });
    const stop = new AbortController();
    const { out, watching } = watchInto(store, id, stop.signal);
    await untilRetrying(watching, out);
    stop.abort();
    // Ends with the last state seen (the CLI exits 130 on Ctrl-C), not with the load's error (exit 4).
    await expect(watching).resolves.toMatchObject({ upgradeId: id });
    proxy.up();
    await real.close();
    await proxy.close();
  }, 30_000);
});

describe('watchStore on Redis, when the upgrade is deleted and already created again when the watch ends', () => {
  it('says it was created again, not that it was deleted and is waited for', async () => {
    const { id, keyPrefix } = fresh('redis-again-at-once');
    await firstRun(id, keyPrefix);
    const real = new RedisStore({ url, keyPrefix, watchBlockMs: 50 });
    // The first watch sees the run deleted; the new run is written before the reload that follows reads.
    const store = withBefore(real, {
      watch: async (call) => {
        if (call === 1) expect(await real.delete(id)).toBe(true);
      },
      load: async (call) => {
        if (call === 2) await failedRun(id, keyPrefix, 'p2');
      },
    });
    const { out, watching } = watchInto(store, id);
    const state = await watching;
    await real.close();
    expect(state?.status).toBe('failed');
    expect(state?.planId).toBe('p2');
    expect(out.text).toContain(createdAgainLine(id));
    // It was there again by the time it was looked for: no line says it is waited for.
    expect(out.text).not.toContain(deletedLine(id));
  }, 30_000);
});
