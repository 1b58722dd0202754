import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { MemoryStore, ProgressError, ProgressTracker, type ProgressEvent } from '@progress/core';
import { hasChromium } from '../../../tools/test-utils/src/chromium.js';
import { caughtUp, dashboardSuite, realProblems, shown, watchPage } from './dashboard-page.js';
import { WatchableMemoryStore } from './watchable-store.js';

// What the page folds and draws itself, between snapshots, as an operator reads it: the facts of an
// upgrade that appears while the page waits for it, the time since its start moving on without any
// event, "No tasks", "Recent events" in seq order when its tasks' events are interleaved (asked for
// once), and nothing of an upgrade the page left. Mutants that dropped each of these (the plan,
// cluster and start of a run followed from its first event; the 1 s redraw; a list row's phase; the
// sort of a snapshot's events; the check of the upgrade an event or a snapshot is of) survived every
// test.
describe.skipIf(!hasChromium() && !process.env.CI)('dashboard: an upgrade followed live', () => {
  const { newPage, serve, tracker } = dashboardSuite();

  /** "Recent events" as listed: '#seq type', newest first. */
  const listed = (page: Page): Promise<string[]> =>
    page.evaluate(`[...document.querySelectorAll('#events li')].map((li) => li.children[0].textContent + ' ' + li.children[2].textContent)`);

  it('shows the plan, cluster and start of an upgrade that appears while the page waits for it, and moves its elapsed time on with no event', async () => {
    const { server, port } = await serve();
    const page = await newPage();
    const { problems } = watchPage(page);
    await page.goto(`http://127.0.0.1:${port}/#u-new`);
    await expect.poll(() => page.textContent('#overview'), { timeout: 10_000 }).toBe('Waiting for u-new\u2026');
    // It appears: the page follows it from its first event (upgrade.created), no snapshot.
    const t = await ProgressTracker.open({ upgradeId: 'u-new', planId: 'plan-42', clusterName: 'prod-ap' });
    try {
      server.track(t);
      await t.startUpgrade('Nodes');
      await t.addTask('a', 'A');
      await t.updateTaskProgress('a', 10);
      await caughtUp(page, t);
      const { facts } = await shown(page);
      expect([facts['Plan'], facts['Cluster'], facts['Phase']]).toEqual(['plan-42', 'prod-ap', 'Nodes']);
      expect(facts['Started']).toBe(await page.evaluate(`new Date(${Date.parse(t.durableProgress.startedAt!)}).toLocaleTimeString()`));
      // No event comes from here on: the time since the start still moves on (redrawn every second).
      // (Drawn within the welcome's delivery time of the start, it may be below zero, '-', at first.)
      const elapsed = async (): Promise<string | undefined> => (await shown(page)).facts['Elapsed'];
      await expect.poll(elapsed, { timeout: 10_000 }).toMatch(/^\d+s$/);
      const first = await elapsed();
      await expect.poll(elapsed, { timeout: 10_000 }).not.toBe(first);
      expect(await elapsed()).toMatch(/^\d+s$/);
      expect((await shown(page)).facts['Seq']).toBe(String(t.durableProgress.lastSeq));
      // Its row in the list (refreshed every 5 s) follows a change of phase alone: its status and
      // percentage stay the same.
      const row = '#upgrades [data-upgrade-id="u-new"] .muted';
      await expect.poll(() => page.textContent(row), { timeout: 15_000 }).toBe('prod-ap \u00b7 Nodes');
      await t.setCurrentPhase('Addons');
      await caughtUp(page, t);
      await expect.poll(() => page.textContent(row), { timeout: 15_000 }).toBe('prod-ap \u00b7 Addons');
      expect(await page.textContent('#upgrades [data-upgrade-id="u-new"] .badge')).toBe('in progress');
      expect(realProblems(problems)).toEqual([]);
    } finally {
      await t.close();
    }
  }, 60_000);

  it('says what there is to see on a server with no upgrade yet, then selects the first that appears, of no task yet', async () => {
    const { server, port } = await serve();
    const page = await newPage();
    const { problems } = watchPage(page);
    await page.goto(`http://127.0.0.1:${port}/`);
    await expect.poll(() => page.textContent('#conn'), { timeout: 10_000 }).toBe('live');
    await expect.poll(() => page.textContent('#upgrades'), { timeout: 10_000 }).toBe('No upgrades yet');
    expect(await page.textContent('#overview')).toBe('Select an upgrade');
    const t = await tracker('u-first');
    server.track(t);
    await t.startUpgrade('Prepare');
    // The list (asked for every 5 s) brings it: the page selects it, and says it has no task yet.
    await expect.poll(() => page.evaluate('location.hash'), { timeout: 15_000 }).toBe('#u-first');
    await caughtUp(page, t);
    expect(await page.textContent('#tasks')).toBe('No tasks');
    await t.addTask('a', 'A');
    await caughtUp(page, t);
    expect(await page.textContent('#tasks')).not.toContain('No tasks');
    expect(realProblems(problems)).toEqual([]);
  }, 60_000);

  it('lists "Recent events" in seq order after a snapshot whose tasks\' events are interleaved', async () => {
    const { server, port } = await serve();
    const t = await tracker('u-interleaved');
    server.track(t);
    await t.startUpgrade('Nodes');
    await t.addTask('a', 'A');
    await t.addTask('b', 'B');
    // a, b, a, b, ...: each task's recentEvents holds every other seq, and together they hold the last
    // 15 seqs (the page asks for none again): only their order by seq puts them in place.
    for (let i = 1; i <= 7; i++) {
      await t.updateTaskProgress('a', i * 5);
      await t.updateTaskProgress('b', i * 4);
    }
    const want: string[] = [];
    for await (const e of t.readEvents(0)) want.unshift(`#${e.seq} ${e.type}`);
    want.splice(15);
    expect(want.at(-1)).toBe('#4 task.added');
    const page = await newPage();
    const { problems } = watchPage(page);
    await page.goto(`http://127.0.0.1:${port}/#u-interleaved`);
    await caughtUp(page, t);
    await expect.poll(() => listed(page), { timeout: 10_000 }).toEqual(want);
    expect(realProblems(problems)).toEqual([]);
  }, 60_000);

  it('asks once for the events a snapshot did not bring, also when the store no longer holds them (a resync and a snapshot answer)', async () => {
    // The store has trimmed what came before the last seq: the subscribe that asks for the upgrade's
    // own events is answered with resync and a snapshot, which lacks them as the first did. A mutant
    // that asked again after each such snapshot (no longer once per subscribe) survived every test.
    class TrimmedStore extends WatchableMemoryStore {
      trimmedBelow = 0;
      override async *readEvents(upgradeId: string, afterSeq: number, limit?: number): AsyncIterable<ProgressEvent> {
        if (afterSeq < this.trimmedBelow) throw new ProgressError('NOT_FOUND', `events of "${upgradeId}" before seq ${this.trimmedBelow} are trimmed`, { context: { upgradeId, reason: 'trimmed' } });
        yield* super.readEvents(upgradeId, afterSeq, limit);
      }
    }
    const store = new TrimmedStore();
    const t = await tracker('u-trimmed', store);
    await t.startUpgrade('Nodes');
    await t.addTask('a', 'A');
    await t.updateTaskProgress('a', 20);
    store.trimmedBelow = t.durableProgress.lastSeq;
    const { port } = await serve({ store });
    const page = await newPage();
    const { problems, sent } = watchPage(page);
    let snapshots = 0;
    page.on('websocket', (ws) => ws.on('framereceived', (f) => void (String(f.payload).startsWith('{"type":"snapshot"') && snapshots++)));
    await page.goto(`http://127.0.0.1:${port}/#u-trimmed`);
    await expect.poll(() => snapshots, { timeout: 10_000 }).toBe(2);
    // Live on: an event after the trimmed ones reaches the page.
    await t.updateTaskProgress('a', 30);
    await caughtUp(page, t);
    const asked = sent.map((f) => JSON.parse(f) as Record<string, unknown>).filter((m) => m['type'] === 'subscribe' && 'sinceSeq' in m);
    expect(asked).toHaveLength(1);
    expect(snapshots).toBe(2);
    expect((await shown(page)).tasks).toEqual({ a: '30' });
    expect(realProblems(problems)).toEqual([]);
  }, 60_000);

  it('shows nothing of an upgrade it left whose events still come (the server had not taken its unsubscribe)', async () => {
    const { server, port } = await serve();
    const a = await tracker('u-left');
    const b = await tracker('u-shown');
    for (const t of [a, b]) {
      server.track(t);
      await t.startUpgrade('Phase');
      await t.addTask('x', 'X');
    }
    // u-left has more events than u-shown: the next one's seq is past u-shown's.
    for (let i = 1; i <= 5; i++) await a.updateTaskProgress('x', i * 10);
    await b.updateTaskProgress('x', 5);
    const page = await newPage();
    const { problems } = watchPage(page);
    // The unsubscribes the page sends are lost on their way (as when the rate limit refused one): the
    // server goes on sending the events of the upgrade it left. (An init script is not subject to the CSP.)
    await page.addInitScript(`(() => {
      const native = WebSocket.prototype.send;
      WebSocket.prototype.send = function (data) { if (!String(data).includes('"unsubscribe"')) native.call(this, data); };
    })()`);
    const received: Array<{ upgradeId: string; seq: number }> = [];
    const snapshots: string[] = [];
    page.on('websocket', (ws) =>
      ws.on('framereceived', (f) => {
        const m = JSON.parse(String(f.payload)) as { type: string; upgradeId: string; data: { seq: number } };
        if (m.type === 'progress_event') received.push({ upgradeId: m.upgradeId, seq: m.data.seq });
        if (m.type === 'snapshot') snapshots.push(m.upgradeId);
      }),
    );
    await page.goto(`http://127.0.0.1:${port}/#u-left`);
    await caughtUp(page, a);
    await expect.poll(() => page.locator('#upgrades li').count(), { timeout: 10_000 }).toBe(2);
    await page.click('#upgrades li[data-upgrade-id="u-shown"]');
    await caughtUp(page, b);
    // An event of u-left, then one of u-shown: once u-shown's has come, u-left's came before it.
    await a.updateTaskProgress('x', 90);
    await b.updateTaskProgress('x', 7);
    await expect.poll(() => received.some((r) => r.upgradeId === 'u-shown' && r.seq === b.durableProgress.lastSeq), { timeout: 10_000 }).toBe(true);
    expect(received.some((r) => r.upgradeId === 'u-left' && r.seq === a.durableProgress.lastSeq)).toBe(true);
    await caughtUp(page, b);
    expect((await shown(page)).tasks).toEqual({ x: '7' });
    const seqs = (await listed(page)).map((e) => Number(e.split(' ')[0]!.slice(1)));
    expect(Math.max(...seqs)).toBe(b.durableProgress.lastSeq);
    // u-left is run again: the server resyncs its subscribers, with a snapshot of the new run. That
    // snapshot is not of the upgrade shown either.
    server.untrack(a);
    const again = await tracker('u-left', new MemoryStore());
    server.track(again);
    await again.startUpgrade('Again');
    const before = snapshots.length;
    await expect.poll(() => snapshots.slice(before), { timeout: 10_000 }).toContain('u-left');
    await b.updateTaskProgress('x', 8);
    await caughtUp(page, b);
    expect(await page.textContent('#overview h2')).toBe('u-shown');
    expect((await shown(page)).tasks).toEqual({ x: '8' });
    expect(realProblems(problems)).toEqual([]);
  }, 60_000);
});
