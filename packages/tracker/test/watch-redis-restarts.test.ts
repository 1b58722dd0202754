// `progress watch redis://...` when the upgrade it follows is deleted (and created again) or its
// events are removed by retention: RedisStore.watch() ends with NOT_FOUND (reason 'deleted' or
// 'trimmed'), which ended the command with exit 3, where `watch <folder>` and `watch ws://` go on
// with the new run or a reloaded state.
import { afterAll, describe, expect, it } from 'vitest';
import { RedisStore, createProgressTracker } from '../src/index.js';
import { main } from '../src/cli/main.js';
import { startRedisProxy } from '../../../tools/test-utils/src/redis-proxy.js';
import { Capture, deleteKeys, uniqueId } from './helpers.js';

const url = process.env.REDIS_URL!;
const prefixes: string[] = [];
afterAll(async () => {
  for (const p of prefixes) await deleteKeys(url, p);
});

const seqsOf = (text: string, id: string): number[] => [...text.matchAll(new RegExp(`#(\\d+) ${id} `, 'g'))].map((m) => Number(m[1]));

/** Runs `progress watch <source> <id> --prefix <prefix>` in this process; its output is readable while it runs. */
function watch(id: string, keyPrefix: string, source = url) {
  const out = new Capture();
  const err = new Capture();
  const exited = main(['watch', source, id, '--prefix', keyPrefix], out as unknown as NodeJS.WriteStream, err as unknown as NodeJS.WriteStream);
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
    const id = uniqueId('redis-again');
    const keyPrefix = `${uniqueId('cli-redis-again')}:`;
    prefixes.push(keyPrefix);
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

  it('reloads the state when the events after the seq it holds were removed by retention, and follows on', async () => {
    const id = uniqueId('redis-trim');
    const keyPrefix = `${uniqueId('cli-redis-trim')}:`;
    prefixes.push(keyPrefix);
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
