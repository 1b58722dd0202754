// Races of the check with the store before an answer (Topic.confirmRun and its callers), with real
// sockets and a real Redis (REDIS_URL). The served store wraps a RedisStore so that the reply of one
// load can be delivered late (a slow link, a large reply queued before it): what is read is what
// Redis held when the command ran. (Found by a review on 2026-11-29; each test failed before the fix.)
import type { ProgressStore } from '@progress/core';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { deferred, openTracker, sleep, type TestClient } from './helpers.js';
import { Harness, holdNextLoad, redisUrl, watchConnections } from './two-processes.js';

const harness = new Harness();
afterAll(() => harness.cleanup());
const setup = (): ReturnType<Harness['setup']> => harness.setup();
const serve = (store: ProgressStore): ReturnType<Harness['serve']> => harness.serve(store);
const connect = (wsUrl: string): Promise<TestClient> => harness.connect(wsUrl);
const followAll = (wsUrl: string): Promise<TestClient> => harness.followAll(wsUrl);

describe('ws-server over Redis: a confirming read that arrives after the topic moved on', () => {
  it('a get_summary whose confirming load answers after the watch brought the newly created upgrade does not wipe it (it answered NOT_FOUND and resynced subscribers to nothing)', async () => {
    const { writing, store, hooks } = setup();
    const { wsUrl } = await serve(store);

    // A waits for an upgrade that does not exist yet: its topic is loaded (nothing) and watched.
    const a = await connect(wsUrl);
    a.send({ type: 'subscribe', upgradeId: 'late' });
    expect(await a.next((m) => m.type === 'subscribed')).toMatchObject({ exists: false });
    await sleep(300);

    // B asks for its summary: confirmRun loads it. Redis runs that load now (nothing there yet); its
    // reply is delivered late.
    const { gate, issued } = holdNextLoad(hooks, 'late');
    const b = await connect(wsUrl);
    b.send({ type: 'get_summary', upgradeId: 'late' });
    await issued.promise;
    await sleep(50);

    // Meanwhile the upgrade is created by another process, and A gets it live from the store watch.
    const tracker = await openTracker('late', writing);
    await tracker.startUpgrade();
    await tracker.close();
    await a.until((ms) => ms.filter((m) => m.type === 'progress_event').length === 2, 5000, "A's events");
    const seenByA = a.messages.length;

    gate.resolve(); // the late reply: "no such upgrade" as of before it was created
    const answer = await b.next((m) => m.type === 'progress_summary' || m.type === 'error');
    await sleep(300);
    const afterRelease = a.messages.slice(seenByA).map((m) => m.type);

    // Before the fix: B is told NOT_FOUND for an upgrade the server had already streamed to A (and the store
    // holds), and A is sent `resync` with no snapshot (the upgrade "is gone"), then its events again.
    expect({ answer: answer.type === 'error' ? answer.code : answer.type, resyncsOfA: afterRelease.filter((t) => t === 'resync').length }).toEqual({
      answer: 'progress_summary',
      resyncsOfA: 0,
    });
  }, 20_000);
});

describe('ws-server over Redis: a topic released while a subscribe chose it', () => {
  it("a subscribe that lands on a topic released by another client's confirmRun (deleted upgrade) leaves no store watch running after unsubscribe and stop()", async () => {
    const { writing, store, name, hooks } = setup();
    const admin = new Redis(redisUrl());
    harness.onCleanup(async () => admin.quit());
    const { server, wsUrl } = await serve(store);
    const star = await connect(wsUrl); // a dashboard on '*': keeps every upgrade's topic
    star.send({ type: 'subscribe', upgradeId: '*' });
    await star.next((m) => m.type === 'subscribed');

    const subscribers: TestClient[] = [];
    const tries = 24;
    for (let k = 0; k < tries; k++) {
      const id = `race-${k}`;
      const tracker = await openTracker(id, writing);
      await tracker.startUpgrade();
      await tracker.close();
      await star.next((m) => m.type === 'snapshot' && m.upgradeId === id);

      // A's confirming load runs before the delete (same run: no news), B's after it (none); both
      // replies are held, then delivered k microtasks apart.
      const gateA = deferred();
      const gateB = deferred();
      const issuedA = deferred();
      const issuedB = deferred();
      let n = 0;
      hooks.load = (loaded, read) => {
        if (loaded !== id) return read;
        const mine = n++;
        if (mine === 0) issuedA.resolve();
        else {
          issuedB.resolve();
          hooks.load = undefined;
        }
        return read.then(async (value) => {
          await (mine === 0 ? gateA.promise : gateB.promise);
          return value;
        });
      };
      const a = await connect(wsUrl);
      subscribers.push(a);
      a.send({ type: 'subscribe', upgradeId: id });
      await issuedA.promise;
      await sleep(20);
      await writing.delete(id);
      const b = await connect(wsUrl);
      b.send({ type: 'get_summary', upgradeId: id });
      await sleep(20);
      // B's confirming read is sent once A's has answered (confirming reads of a topic are shared,
      // each caller getting one sent after it asked): A's answer is let go, then B's, k microtasks
      // after B's was sent.
      gateA.resolve();
      await issuedB.promise;
      for (let i = 0; i < k; i++) await Promise.resolve();
      gateB.resolve();
      await a.next((m) => m.type === 'subscribed');
      await b.next((m) => m.type === 'progress_summary' || m.type === 'error');
      await b.close();
    }
    await sleep(500);
    // Every subscriber leaves, the '*' one too, and the server stops: no store watch may be left.
    for (const a of subscribers) await a.close();
    await star.close();
    await sleep(300);
    const afterUnsubscribe = await watchConnections(admin, name);
    const counted = server.getStats().watchedUpgrades;
    await server.stop();
    await sleep(300);
    // Before the fix, for some k: A's subscription was added to a topic #gone had closed and removed from the
    // map; syncWatch started a watch on it that no unsubscribe, nor stop(), ever ends.
    expect({ afterUnsubscribe, counted, afterStop: await watchConnections(admin, name) }).toEqual({ afterUnsubscribe: 0, counted: 0, afterStop: 0 });
  }, 60_000);
});

describe('ws-server over Redis: a confirming read during a reload', () => {
  it("a get_summary answered while a '*' topic reloads a re-created upgrade waits for the reload and does not take the server back to its older read (events were lost, summaries stale)", async () => {
    const { writing, store, hooks } = setup();
    const { wsUrl } = await serve(store);
    const star = await followAll(wsUrl);
    const first = await openTracker('dbl', writing);
    await first.startUpgrade();
    await first.close();
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'dbl');

    // The upgrade is deleted and created again by another process. watchAll brings the new run's
    // `upgrade.created`: the topic reloads it (refit). That load's reply is delivered late.
    const { gate, issued } = holdNextLoad(hooks, 'dbl');
    await writing.delete('dbl');
    const second = await openTracker('dbl', writing); // seq 1 of the new run
    await issued.promise;
    await sleep(50); // the refit's load has read the store: seq 1
    await second.startUpgrade();
    await second.addTask('t', 'T');
    await second.updateTaskProgress('t', 50); // seq 4
    await second.close();
    await sleep(200); // watchAll brought seq 2..4: held while the refit loads

    // A get_summary now: it waits for the reload running (its read is seq 1; seq 2..4 are held and
    // follow it), then asks the store, which holds the same run at seq 4.
    const b = await connect(wsUrl);
    b.send({ type: 'get_summary', upgradeId: 'dbl' });
    await sleep(100);
    gate.resolve(); // the reload's read (seq 1) lands
    expect((await b.next((m) => m.type === 'progress_summary')).data.lastSeq).toBe(4);
    await sleep(300);
    const c = await connect(wsUrl);
    c.send({ type: 'get_summary', upgradeId: 'dbl' });
    const later = await c.next((m) => m.type === 'progress_summary');
    const starSeqs = star.messages.filter((m) => m.upgradeId === 'dbl' && (m.type === 'snapshot' || m.type === 'progress_event')).map((m) => (m.type === 'snapshot' ? m.seq : m.data.seq) as number);
    // It took the server back to the reload's older read, for good (a confirming read that started
    // over dropped the events held for the reload): summaries of seq 1, the '*' client left at seq 1.
    expect({ summarySeq: later.data.lastSeq, starLast: starSeqs.at(-1), starResyncs: star.ofType('resync', 'dbl').length }).toEqual({
      summarySeq: 4,
      starLast: 4,
      starResyncs: 1,
    });
  }, 20_000);

  it("a get_summary waiting for a hung reload is answered after its bound also when the wall clock steps back an hour meanwhile (the wait was reckoned on Date.now(): an hour more)", async () => {
    const { writing, store, hooks } = setup();
    const { wsUrl } = await serve(store);
    const star = await followAll(wsUrl);
    const first = await openTracker('hung', writing);
    await first.startUpgrade();
    await first.close();
    await star.next((m) => m.type === 'snapshot' && m.upgradeId === 'hung');
    // A reload (the upgrade created again) whose reply does not come for the rest of the test.
    const { gate, issued } = holdNextLoad(hooks, 'hung');
    await writing.delete('hung');
    const second = await openTracker('hung', writing);
    await issued.promise;
    await second.close();
    const b = await connect(wsUrl);
    b.send({ type: 'get_summary', upgradeId: 'hung' });
    await sleep(100);
    // The wall clock is set back an hour while the get_summary waits for the reload.
    const realNow = Date.now.bind(Date);
    const stepped = vi.spyOn(Date, 'now').mockImplementation(() => realNow() - 3_600_000);
    try {
      // Answered once the wait's bound (2 s) has passed, with what the server holds.
      const answer = await b.next((m) => m.type === 'progress_summary' || m.type === 'error', 0, 8_000);
      expect(answer.type).toBe('progress_summary');
    } finally {
      stepped.mockRestore();
      gate.resolve();
    }
  }, 20_000);
});
