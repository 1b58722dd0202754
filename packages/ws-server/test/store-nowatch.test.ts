import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressError, ProgressTracker, type ProgressEvent } from '@progress/core';
import { ProgressWebSocketServer } from '../src/index.js';
import { closedAfterEach, openTracker, sleep, type TestClient } from './helpers.js';
import { SlowAppendStore, UnreliableStore } from './watchable-store.js';

// A store without watch()/watchAll() (JsonFileStore): stored upgrades get snapshots and replays, but no
// live events. The answers depended on whether another client was connected: a new subscriber of an
// upgrade another client held got the state loaded for that client (get_summary on the same connection
// answered from a fresh load), and `*` sent no stored upgrade at all. (Found by a review on 2026-11-29;
// each test failed before the fix.)

const opened = closedAfterEach();


/**
 * Upgrade u1 written to `shared` up to seq 3, a server on `store` with client `a` subscribed to it,
 * then a tracker of this process going on with the server as a sink, without track() (README: "A
 * tracker that lists the server in sinks without track() is served too"): seq 4 reaches `a` live.
 */
async function sinkFed(shared: SlowAppendStore, store: UnreliableStore) {
  const first = await openTracker('u1', shared);
  await first.startUpgrade();
  await first.addTask('t', 'T');
  await first.close();
  opened.server = new ProgressWebSocketServer({ port: 0, store });
  const { url } = await opened.server.start();
  const a = await opened.connect(url);
  a.send({ type: 'subscribe', upgradeId: 'u1' });
  expect((await a.next((m) => m.type === 'snapshot')).seq).toBe(3);
  const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'plan-1', clusterName: 'prod-cluster', store: shared, sinks: [opened.server] });
  opened.trackers.push(t);
  await t.startTask('t');
  await a.until((ms) => ms.some((m) => m.type === 'progress_event' && m.data.seq === 4), 5000, 'seq 4');
  return { url, a, t };
}

/** Upgrade `upgradeId` with task "t" (seq 3), written to `store` by another process's tracker (not tracked by the server). */
async function written(store: UnreliableStore, upgradeId: string) {
  const writer = await openTracker(upgradeId, store.shared);
  opened.trackers.push(writer);
  await writer.startUpgrade();
  await writer.addTask('t', 'T');
  return writer;
}

/** No watch (as JsonFileStore); readEvents reads what the store holds when called (as a file read), then waits for `gate`. */
class GatedReadStore extends UnreliableStore {
  gateReads: Promise<void> | undefined;
  reads = 0;
  override readEvents(upgradeId: string, afterSeq: number, limit?: number): AsyncIterable<ProgressEvent> {
    this.reads++;
    const inner = this.shared.readEvents(upgradeId, afterSeq, limit);
    const gate = this.gateReads;
    return (async function* () {
      const all: ProgressEvent[] = [];
      for await (const e of inner) all.push(e);
      if (gate) await gate;
      yield* all;
    })();
  }
}

/**
 * A server over a store that cannot watch, a client `a` sent the snapshot of u1 at seq 3, then u1
 * written on to seq 5 (task t at 50%) by a writer the server is not told of.
 */
async function heldThenWritten(): Promise<{ url: string; a: TestClient }> {
  const store = new UnreliableStore(new MemoryStore());
  const writer = await written(store, 'u1');
  opened.server = new ProgressWebSocketServer({ port: 0, store });
  const { url } = await opened.server.start();
  const a = await opened.connect(url);
  a.send({ type: 'subscribe', upgradeId: 'u1' });
  expect((await a.next((m) => m.type === 'snapshot')).seq).toBe(3);
  await writer.startTask('t');
  await writer.updateTaskProgress('t', 50);
  return { url, a };
}

describe('a server store that cannot watch', () => {
  it('gives a new subscriber, and get_summary, what the store holds now, also while another client holds the upgrade', async () => {
    const { url, a } = await heldThenWritten();

    const b = await opened.connect(url);
    b.send({ type: 'subscribe', upgradeId: 'u1' });
    b.send({ type: 'get_summary', upgradeId: 'u1' });
    const snapshot = await b.next((m) => m.type === 'snapshot');
    const summary = await b.next((m) => m.type === 'progress_summary');
    expect(snapshot.seq).toBe(5);
    expect(snapshot.data.tasks.t.percentage).toBe(50);
    expect(summary.data.lastSeq).toBe(5);
    // The same for a resume: the events after its seq, up to what the store holds.
    const r = await opened.connect(url);
    r.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 3 });
    await r.until((ms) => ms.filter((m) => m.type === 'progress_event').length === 2, 10_000, 'seqs 4 and 5');
    await r.answered();
    expect(r.seqs('u1')).toEqual([4, 5]);
    expect(r.ofType('resync')).toEqual([]);
    // The first subscriber keeps what it was sent: no live events over such a store.
    await a.answered();
    expect(a.ofType('snapshot').map((m) => m.seq)).toEqual([3]);
    expect(a.ofType('resync')).toEqual([]);
  });

  it('answers get_summary from a load of the store, not from the state held for another client, and leaves that client as it is', async () => {
    const { url, a } = await heldThenWritten();

    // No subscribe on this connection first (whose check would bring the topic to the store's state).
    const b = await opened.connect(url);
    b.send({ type: 'get_summary', upgradeId: 'u1' });
    const summary = await b.next((m) => m.type === 'progress_summary');
    expect(summary.data.lastSeq).toBe(5);
    await a.answered();
    expect(a.ofType('snapshot').map((m) => m.seq)).toEqual([3]);
    expect(a.ofType('progress_event')).toEqual([]);
  });

  it('"*" sends the snapshot of each stored upgrade the client may read (as the store holds it now), and an error naming one it cannot load', async () => {
    const store = new UnreliableStore(new MemoryStore());
    const w1 = await written(store, 'u1');
    await written(store, 'u2');
    await written(store, 'secret');
    await written(store, 'broken');
    opened.server = new ProgressWebSocketServer({ port: 0, store, authorize: (_p, upgradeId) => upgradeId !== 'secret' });
    const { url } = await opened.server.start();
    // u1 held by another client at seq 3, then written further.
    const a = await opened.connect(url);
    a.send({ type: 'subscribe', upgradeId: 'u1' });
    await a.next((m) => m.type === 'snapshot');
    await w1.startTask('t'); // seq 4
    store.down.add('broken');
    store.error = () => new ProgressError('STORE_UNAVAILABLE', 'EIO: i/o error, open /var/lib/progress/broken.json');

    const c = await opened.connect(url);
    c.send({ type: 'subscribe', upgradeId: '*' });
    await c.next((m) => m.type === 'subscribed');
    await c.answered();
    const snapshots = c.ofType('snapshot');
    expect(snapshots.map((m) => m.upgradeId).sort()).toEqual(['u1', 'u2']);
    expect(snapshots.find((m) => m.upgradeId === 'u1')!.seq).toBe(4);
    expect(c.ofType('error')).toEqual([expect.objectContaining({ code: 'STORE_UNAVAILABLE', upgradeId: 'broken' })]);
    expect(JSON.stringify(c.messages)).not.toContain('/var/lib');

    // Subscribing again asks the store again.
    store.down.clear();
    const from = c.messages.length;
    c.send({ type: 'subscribe', upgradeId: '*' });
    await c.next((m) => m.type === 'subscribed', from);
    await c.answered();
    expect(c.messages.slice(from).filter((m) => m.type === 'snapshot').map((m) => m.upgradeId).sort()).toEqual(['broken', 'u1', 'u2']);
  });

  // Found by a second review on 2026-11-29: taking on the store's newer state dropped, as already
  // held, a sink's event that was still on its way; the subscribers held never got it.
  it('brings the subscribers it holds up to the state it takes on, so a sink event still on its way is not lost to them', async () => {
    const shared = new SlowAppendStore();
    const { url, a, t } = await sinkFed(shared, new UnreliableStore(shared)); // no watch(), no watchAll()

    shared.delayMs = 200;
    const done = t.completeTask('t'); // seq 5: in the store at once, handed to the sink 200 ms later
    await sleep(20);
    const b = await opened.connect(url);
    b.send({ type: 'subscribe', upgradeId: 'u1' });
    expect((await b.next((m) => m.type === 'snapshot')).seq).toBe(5);
    await done;
    await sleep(300);
    await a.answered();
    // Expected: a gets seq 5 (it was sent seq 4 live, and nothing else tells it 5 happened).
    expect(a.seqs('u1')).toEqual([4, 5]);
  });

  // Found by a fourth review on 2026-11-29: a subscriber whose replay read the store before the topic
  // took on its newer state was told `resync unavailable`, though the store held the rest.
  it('a subscriber replaying when another subscribe adopts the store\'s newer state gets the events, not a resync "unavailable"', async () => {
    const shared = new SlowAppendStore();
    const store = new GatedReadStore(shared);
    const { url, t } = await sinkFed(shared, store);

    // c resumes from seq 3: its replay reads [4] and is still sending it...
    let open!: () => void;
    store.gateReads = new Promise<void>((r) => (open = r));
    const c = await opened.connect(url);
    c.send({ type: 'subscribe', upgradeId: 'u1', sinceSeq: 3 });
    await c.next((m) => m.type === 'subscribed');
    const readsBefore = store.reads;
    expect(readsBefore).toBeGreaterThan(0);

    // ...when seq 5 is in the store (its sink call still on its way) and b's subscribe adopts it.
    shared.delayMs = 300;
    const done = t.completeTask('t');
    await sleep(20);
    const b = await opened.connect(url);
    b.send({ type: 'subscribe', upgradeId: 'u1' });
    expect((await b.next((m) => m.type === 'snapshot')).seq).toBe(5);
    open();
    store.gateReads = undefined;
    await done;
    await sleep(400);
    await c.answered();
    expect(c.ofType('resync')).toEqual([]);
    expect(c.seqs('u1')).toEqual([4, 5]);
  });
});

// README: over a store without watchAll(), "an upgrade it stores later comes only once some client
// subscribes to it by name". It never came when a client already waited for it by name (`progress
// watch ws://... u1` started before the run, a dashboard URL ending in #u1): the subscribe that found
// it resynced the waiting subscribers to it, and gave the `*` subscribers nothing, then or later.
describe('"*" over a server store that cannot watch, for an upgrade a client waits for by name', () => {
  it('gets the upgrade once a subscribe by name finds it in the store', async () => {
    const store = new UnreliableStore(new MemoryStore());
    opened.server = new ProgressWebSocketServer({ port: 0, store });
    const { url } = await opened.server.start();
    const waiting = await opened.connect(url);
    waiting.send({ type: 'subscribe', upgradeId: 'u1' });
    expect(await waiting.next((m) => m.type === 'subscribed')).toMatchObject({ exists: false });
    const star = await opened.connect(url);
    star.send({ type: 'subscribe', upgradeId: '*' });
    await star.next((m) => m.type === 'subscribed');
    await written(store, 'u1'); // seq 3, by a tracker the server is not told of

    const b = await opened.connect(url);
    b.send({ type: 'subscribe', upgradeId: 'u1' });
    expect((await b.next((m) => m.type === 'snapshot')).seq).toBe(3);
    expect((await waiting.next((m) => m.type === 'snapshot')).seq).toBe(3);
    expect((await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'u1', 0, 5000)).seq).toBe(3);
  });

  it('gets it again once a subscribe by name finds it created again after a deletion', async () => {
    const store = new UnreliableStore(new MemoryStore());
    const first = await written(store, 'u1');
    await first.close();
    opened.server = new ProgressWebSocketServer({ port: 0, store });
    const { url } = await opened.server.start();
    const waiting = await opened.connect(url);
    waiting.send({ type: 'subscribe', upgradeId: 'u1' });
    await waiting.next((m) => m.type === 'snapshot');
    const star = await opened.connect(url);
    star.send({ type: 'subscribe', upgradeId: '*' });
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'u1');
    expect(await store.shared.delete('u1')).toBe(true);
    // A list finds it gone: every subscriber is told, and `*` lets go of it.
    const lister = await opened.connect(url);
    lister.send({ type: 'list_upgrades' });
    await lister.next((m) => m.type === 'upgrades');
    expect(await star.next((m) => m.type === 'resync' && m.upgradeId === 'u1')).toMatchObject({ exists: false });
    const from = star.messages.length;
    await sleep(5);
    const again = await written(store, 'u1');
    await again.startTask('t'); // seq 4 of the new run

    const b = await opened.connect(url);
    b.send({ type: 'subscribe', upgradeId: 'u1' });
    expect((await b.next((m) => m.type === 'snapshot')).seq).toBe(4);
    expect((await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'u1', from, 5000)).seq).toBe(4);
  });
});

// README: what the server holds of a store-followed upgrade is checked with the store before
// `list_upgrades` "for an upgrade the store does not list as the same run". A subscriber whose
// upgrade was deleted (a list found it gone and resynced it to nothing) was left there for good once
// the upgrade was created again: the lists that followed showed the new run, and the check skipped
// the topic, which held no state to compare. (The dashboard asks for the list every 5 s: its selected
// upgrade stayed "does not exist" beside its own row in the list.)
describe('list_upgrades over a server store that cannot watch, after the upgrade a client follows was deleted', () => {
  it('brings the subscriber to the run created again under its id, which it lists', async () => {
    const store = new UnreliableStore(new MemoryStore());
    const first = await written(store, 'u1');
    await first.close();
    opened.server = new ProgressWebSocketServer({ port: 0, store });
    const { url } = await opened.server.start();
    const a = await opened.connect(url);
    a.send({ type: 'subscribe', upgradeId: 'u1' });
    await a.next((m) => m.type === 'snapshot');
    expect(await store.shared.delete('u1')).toBe(true);
    const lister = await opened.connect(url);
    lister.send({ type: 'list_upgrades' });
    expect((await lister.next((m) => m.type === 'upgrades')).data).toEqual([]);
    expect(await a.next((m) => m.type === 'resync')).toMatchObject({ upgradeId: 'u1', exists: false });
    const from = a.messages.length;
    await sleep(5);
    const again = await written(store, 'u1');
    await again.startTask('t'); // seq 4 of the new run

    const at = lister.messages.length;
    lister.send({ type: 'list_upgrades' });
    const rows = (await lister.next((m) => m.type === 'upgrades', at)).data;
    expect(rows).toEqual([expect.objectContaining({ upgradeId: 'u1', lastSeq: 4 })]);
    const snapshot = await a.next((m) => m.type === 'snapshot', from, 5000);
    expect(snapshot.seq).toBe(4);
    expect(snapshot.data.createdAt).toBe(rows[0].createdAt);
  });
});
