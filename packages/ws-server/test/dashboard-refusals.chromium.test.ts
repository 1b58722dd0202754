import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { ProgressTracker } from '@progress/core';
import { hasChromium } from '../../../tools/test-utils/src/chromium.js';
import { countSent, dashboardSuite, realProblems, shown, watchPage } from './dashboard-page.js';
import { UnreliableStore, WatchableMemoryStore } from './watchable-store.js';
import { createReadToken, readTokenAuth } from '../src/index.js';

/** The tasks the page shows once it has drawn (a frame is a timer of the page's clock, when a test runs it). */
async function tasksAsTimeRuns(page: Page): Promise<Record<string, string | null>> {
  await page.clock.runFor(20);
  return (await shown(page)).tasks;
}

// What the dashboard does with what the server refuses of what it sends: the rate limit, which names
// no upgrade (the refused message may have been the subscribe of the upgrade selected).
describe.skipIf(!hasChromium() && !process.env.CI)('dashboard: refused messages', () => {
  const { newPage, serve, tracker } = dashboardSuite();

  it('subscribes again when the rate limit refused a message, and shows the upgrade selected, not "Waiting for" for ever', async () => {
    const { server, port } = await serve({ rateLimit: { messagesPerSecond: 1, burst: 3, maxViolations: 50 } });
    for (const id of ['u-a', 'u-b']) {
      const t = await tracker(id);
      server.track(t);
      await t.startUpgrade('Phase');
      await t.addTask(id === 'u-a' ? 'x' : 'y', 'T');
    }
    const page = await newPage();
    const { problems } = watchPage(page);
    await page.goto(`http://127.0.0.1:${port}/#u-a`);
    await expect.poll(async () => (await shown(page)).tasks, { timeout: 10_000 }).toEqual({ x: '0' });
    // The user goes back and forth (the Back key held, quick clicks): an unsubscribe and a subscribe
    // each, six messages where the bucket holds at most three. The last subscribe is refused.
    await page.evaluate(`(async () => { for (const id of ['u-b', 'u-a', 'u-b']) { location.hash = id; await new Promise((r) => setTimeout(r, 10)); } })()`);
    await expect.poll(() => page.textContent('#conn'), { timeout: 10_000 }).toContain('too many messages');
    // The page asks again once the bucket refilled: the upgrade selected is shown, and the refusal,
    // which was of a message since served, is no longer said.
    await expect.poll(async () => (await shown(page)).tasks, { timeout: 15_000 }).toEqual({ y: '0' });
    await expect.poll(() => page.textContent('#conn'), { timeout: 10_000 }).toBe('live');
    expect(realProblems(problems)).toEqual([]);
  }, 60_000);

  it('says that a hash which cannot be an upgrade id names none, sends nothing for it, and shows no error once an upgrade is picked', async () => {
    const { server, port } = await serve();
    const t = await tracker('u-ok');
    server.track(t);
    await t.startUpgrade('Phase');
    await t.addTask('x', 'X');
    const page = await newPage();
    const { problems, sent } = watchPage(page);
    // A link mangled on its way (a space, a slash pasted with it): no upgrade has such an id.
    await page.goto(`http://127.0.0.1:${port}/#u%20ok/`);
    await expect.poll(() => page.textContent('#overview'), { timeout: 10_000 }).toBe('No upgrade can be named "u ok/"');
    expect(await page.textContent('#conn')).toBe('live');
    await expect.poll(() => page.textContent('#upgrades .id'), { timeout: 10_000 }).toBe('u-ok');
    await page.click('#upgrades li');
    await expect.poll(async () => (await shown(page)).tasks, { timeout: 10_000 }).toEqual({ x: '0' });
    expect(await page.textContent('#conn')).toBe('live');
    // Nothing was sent of the id that cannot be one (the server would refuse it: INVALID_MESSAGE).
    expect(sent.filter((f) => f.includes('u ok'))).toEqual([]);
    // Nor can '..' (core's rule: it would name the directory above in a file store), though its
    // characters are all allowed.
    await page.evaluate(`location.hash = '#..'`);
    await expect.poll(() => page.textContent('#overview'), { timeout: 10_000 }).toBe('No upgrade can be named ".."');
    expect(sent.filter((f) => f.includes('":".."'))).toEqual([]);
    expect(realProblems(problems)).toEqual([]);
  }, 60_000);

  it('lets a keyboard pick an upgrade (Tab, Enter), and keeps the focus when the list is refreshed', async () => {
    const { server, port } = await serve();
    for (const id of ['u-one', 'u-two']) {
      const t = await tracker(id);
      server.track(t);
      await t.startUpgrade('Phase');
      await t.addTask(id === 'u-one' ? 'x' : 'y', 'T');
    }
    const page = await newPage();
    const { problems } = watchPage(page);
    let lists = 0;
    page.on('websocket', (ws) => ws.on('framereceived', (f) => void (String(f.payload).startsWith('{"type":"upgrades"') && lists++)));
    await page.goto(`http://127.0.0.1:${port}/#u-one`);
    await expect.poll(async () => (await shown(page)).tasks, { timeout: 10_000 }).toEqual({ x: '0' });
    await expect.poll(() => page.locator('#upgrades li').count(), { timeout: 10_000 }).toBe(2);
    const focused = (): Promise<string | null> => page.evaluate('document.activeElement && document.activeElement.closest("#upgrades li") ? document.activeElement.querySelector(".id").textContent : null');
    // The rows are the list's order (the latest updated first): Tab goes through them.
    const order: Array<string | null> = [];
    for (let i = 0; i < 2; i++) {
      await page.keyboard.press('Tab');
      order.push(await focused());
    }
    expect([...order].sort()).toEqual(['u-one', 'u-two']);
    if (order[1] !== 'u-two') await page.keyboard.press('Shift+Tab');
    expect(await focused()).toBe('u-two');
    await page.keyboard.press('Enter');
    await expect.poll(async () => (await shown(page)).tasks, { timeout: 10_000 }).toEqual({ y: '0' });
    expect(await page.textContent('#upgrades li[aria-current="true"] .id')).toBe('u-two');
    // The page asks for the list every 5 s and draws it anew: the row the keyboard is on keeps the focus.
    const before = lists;
    await expect.poll(() => lists, { timeout: 15_000 }).toBeGreaterThan(before);
    await page.waitForTimeout(100);
    expect(await focused()).toBe('u-two');
    await page.keyboard.press(order[1] === 'u-two' ? 'Shift+Tab' : 'Tab');
    expect(await focused()).toBe('u-one');
    await page.keyboard.press('Space');
    await expect.poll(async () => (await shown(page)).tasks, { timeout: 10_000 }).toEqual({ x: '0' });
    expect(realProblems(problems)).toEqual([]);
  }, 60_000);

  it("does not scroll the page back to the row clicked each time the list is refreshed: an operator reading a long task list stays where he scrolled", async () => {
    const { server, port } = await serve();
    const t = await tracker('u-long');
    server.track(t);
    await t.startUpgrade('Phase');
    await t.addTasks(Array.from({ length: 300 }, (_, i) => ({ taskId: `t${i}`, taskName: `Task ${i}` })));
    const page = await newPage();
    const { problems } = watchPage(page);
    let lists = 0;
    page.on('websocket', (ws) => ws.on('framereceived', (f) => void (String(f.payload).startsWith('{"type":"upgrades"') && lists++)));
    await page.goto(`http://127.0.0.1:${port}/`);
    await expect.poll(async () => Object.keys((await shown(page)).tasks).length, { timeout: 10_000 }).toBe(300);
    // The user picks the upgrade with the mouse (the row takes the focus), then scrolls down its tasks.
    await page.click('#upgrades li');
    await page.mouse.wheel(0, 6000);
    await expect.poll(() => page.evaluate<number>('window.scrollY')).toBeGreaterThan(3000);
    const scrolled = await page.evaluate<number>('window.scrollY');
    // The page asks for the list every 5 s and draws it anew: the view stays where the user put it.
    const before = lists;
    await expect.poll(() => lists, { timeout: 15_000 }).toBeGreaterThan(before);
    await page.waitForTimeout(100);
    expect(await page.evaluate<number>('window.scrollY')).toBe(scrolled);
    // And the row keeps the focus (the keyboard goes on from it).
    expect(await page.evaluate('document.activeElement.getAttribute("data-upgrade-id")')).toBe('u-long');
    expect(realProblems(problems)).toEqual([]);
  }, 60_000);

  it('takes a click whose press and release straddle a refresh of the list: the row stays the element clicked', async () => {
    const { server, port } = await serve();
    const trackers: Record<string, ProgressTracker> = {};
    for (const id of ['u-first', 'u-second']) {
      const t = (trackers[id] = await tracker(id));
      server.track(t);
      await t.startUpgrade('Phase');
      await t.addTask(id === 'u-first' ? 'x' : 'y', 'T');
    }
    const page = await newPage();
    const { problems } = watchPage(page);
    let lists = 0;
    page.on('websocket', (ws) => ws.on('framereceived', (f) => void (String(f.payload).startsWith('{"type":"upgrades"') && lists++)));
    await page.goto(`http://127.0.0.1:${port}/#u-first`);
    await expect.poll(async () => (await shown(page)).tasks, { timeout: 10_000 }).toEqual({ x: '0' });
    const row = page.locator('#upgrades li[data-upgrade-id="u-second"]');
    const box = (await row.boundingBox())!;
    // The press lands, the list is drawn anew (every 5 s; with a thousand upgrades that takes a while),
    // then the release: one click on the same row, as the user sees it.
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    const before = lists;
    await expect.poll(() => lists, { timeout: 15_000 }).toBeGreaterThan(before);
    await page.waitForTimeout(100);
    await page.mouse.up();
    await expect.poll(async () => (await shown(page)).tasks, { timeout: 10_000 }).toEqual({ y: '0' });
    expect(await page.textContent('#upgrades li[aria-current="true"] .id')).toBe('u-second');
    // The rows kept from one answer to the next still show what the list says, in its order (the latest
    // updated first), and only the selected one is marked.
    await trackers['u-first']!.updateTaskProgress('x', 50);
    const list = (): Promise<unknown> => page.evaluate('[...document.querySelectorAll("#upgrades li")].map((li) => [li.getAttribute("data-upgrade-id"), li.querySelector("[role=progressbar]").getAttribute("aria-valuenow"), li.getAttribute("aria-current")])');
    await expect.poll(list, { timeout: 15_000 }).toEqual([['u-first', '50', null], ['u-second', '0', 'true']]);
    expect(realProblems(problems)).toEqual([]);
  }, 60_000);

  // Last in this file: it installs a clock for the whole browser context.
  it('unsubscribes again from an upgrade it left when the rate limit refused that unsubscribe: the server stops sending its events', async () => {
    // 2 messages a second, 4 at once. The unsubscribe of an upgrade the user left can be refused too: the
    // server kept the subscription and sent its events for as long as the connection lived (each one
    // a place of maxSubscriptionsPerClient: after 100 such, every subscribe was refused).
    const { server, port } = await serve({ rateLimit: { messagesPerSecond: 2, burst: 4, maxViolations: 50 } });
    const trackers = new Map<string, ProgressTracker>();
    for (const id of ['u-a', 'u-b', 'u-c']) {
      const t = await tracker(id);
      server.track(t);
      await t.startUpgrade('Phase');
      await t.addTask('x', 'T');
      // The last 15 events are the task's (its recentEvents): the page asks for no more after a snapshot.
      for (let i = 1; i <= 16; i++) await t.updateTaskProgress('x', i);
      trackers.set(id, t);
    }
    const page = await newPage();
    const { problems } = watchPage(page);
    const received: Array<{ upgradeId: string; seq: number }> = [];
    page.on('websocket', (ws) =>
      ws.on('framereceived', (f) => {
        const m = JSON.parse(String(f.payload)) as { type: string; upgradeId: string; data: { seq: number } };
        if (m.type === 'progress_event') received.push({ upgradeId: m.upgradeId, seq: m.data.seq });
      }),
    );
    // The page's timers run only when the test says (its list every 5 s would take tokens at any time).
    await page.clock.install();
    await page.clock.pauseAt(Date.now() + 1000);
    await page.goto(`http://127.0.0.1:${port}/#u-a`);
    await expect.poll(() => tasksAsTimeRuns(page), { timeout: 10_000 }).toEqual({ x: '16' });
    await expect.poll(() => page.locator('#upgrades li').count(), { timeout: 10_000 }).toBe(3);
    // The bucket fills up again (4 tokens); then three clicks, six messages: unsubscribe u-a, subscribe
    // u-b, unsubscribe u-b, subscribe u-c; unsubscribe u-c and subscribe u-b are refused.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    await page.evaluate(`for (const id of ['u-b', 'u-c', 'u-b']) document.querySelector('#upgrades li[data-upgrade-id="' + id + '"]').click()`);
    await expect.poll(() => page.textContent('#conn'), { timeout: 10_000 }).toContain('too many messages');
    // Once the bucket refilled, the page asks again (its timers run on).
    await new Promise((resolve) => setTimeout(resolve, 2000));
    for (let i = 0; i < 12; i++) await page.clock.runFor(1000);
    await expect.poll(() => tasksAsTimeRuns(page), { timeout: 10_000 }).toEqual({ x: '16' });
    expect(await page.textContent('#conn')).toBe('live');
    // An event of u-c (left) then one of u-b (shown): once u-b's has come, u-c's would have too.
    const leaked = async (): Promise<boolean> => {
      const c = trackers.get('u-c')!;
      const b = trackers.get('u-b')!;
      await c.updateTaskProgress('x', c.durableProgress.tasks['x']!.percentage + 1);
      await b.updateTaskProgress('x', b.durableProgress.tasks['x']!.percentage + 1);
      const seq = b.durableProgress.lastSeq;
      await expect.poll(() => received.some((r) => r.upgradeId === 'u-b' && r.seq === seq), { timeout: 10_000 }).toBe(true);
      return received.some((r) => r.upgradeId === 'u-c' && r.seq === c.durableProgress.lastSeq);
    };
    expect(await leaked()).toBe(false);
    // The upgrade shown is followed live (no unsubscribe of it was sent again).
    await expect.poll(async () => (await tasksAsTimeRuns(page))['x'], { timeout: 10_000 }).toBe(String(trackers.get('u-b')!.durableProgress.tasks['x']!.percentage));
    expect(realProblems(problems)).toEqual([]);
  }, 60_000);
});

// The page knows that the server took an unsubscribe from the answer to a message it sent after it,
// whatever upgrade that answer is of: the answer to a subscribe comes also when the user has left
// that upgrade meanwhile. Counted as no answer, every answer after it was taken for the one before,
// and unsubscribes the server had taken were sent again at the next refusal of the rate limit: a
// message spent each, again and again while it refuses messages. Mutants that did not count such an
// answer (a 'subscribed', an error naming the upgrade) passed every other dashboard test that switches
// upgrades. Its own Chromium: it runs the page's clock by hand, and a clock is installed for the whole
// browser context.
describe.skipIf(!hasChromium() && !process.env.CI)('dashboard: refused messages, after an answer of an upgrade left', () => {
  const { newPage, serve, tracker } = dashboardSuite();

  for (const answer of ['subscribed', 'an error naming it'] as const) {
    it(`sends no unsubscribe again that the server took, when the answer of the upgrade left is ${answer}`, async () => {
      const shared = new WatchableMemoryStore();
      for (const id of ['u-a', 'u-b', 'u-c']) {
        const t = await tracker(id, shared);
        await t.startUpgrade('Phase');
        await t.addTask('x', 'T');
        // The last 15 events are the task's (its recentEvents): the page asks for no more after a snapshot.
        for (let i = 1; i <= 16; i++) await t.updateTaskProgress('x', i);
      }
      const store = new UnreliableStore(shared);
      // The store cannot serve u-b: its subscribe is answered by an error that names it.
      if (answer !== 'subscribed') store.down.add('u-b');
      const { port } = await serve({ store, rateLimit: { messagesPerSecond: 1, burst: 40, maxViolations: 50 } });
      const page = await newPage();
      const { problems } = watchPage(page);
      // (Also keeps the page's socket, window.pageSocket, to spend the rate limit's burst on.)
      const sentTo = await countSent(page);
      await page.clock.install();
      await page.clock.pauseAt(Date.now() + 1000);
      await page.goto(`http://127.0.0.1:${port}/#u-a`);
      await expect.poll(() => tasksAsTimeRuns(page), { timeout: 10_000 }).toEqual({ x: '16' });
      await expect.poll(() => page.locator('#upgrades li').count(), { timeout: 10_000 }).toBe(3);
      // Two clicks at once: unsubscribe u-a, subscribe u-b, unsubscribe u-b, subscribe u-c. The answer
      // to u-b's subscribe comes once u-b is left; the one to u-c's says both unsubscribes were taken.
      await page.evaluate(`for (const id of ['u-b', 'u-c']) document.querySelector('#upgrades li[data-upgrade-id="' + id + '"]').click()`);
      await expect
        .poll(
          async () => {
            await page.clock.runFor(20);
            return page.textContent('#overview h2');
          },
          { timeout: 10_000 },
        )
        .toBe('u-c');
      // Then the rate limit refuses messages (pings past its burst), which names none of them.
      await page.evaluate(`for (let i = 0; i < 45; i++) window.pageSocket.send(JSON.stringify({ type: 'ping' }))`);
      await expect.poll(() => page.textContent('#conn'), { timeout: 10_000 }).toContain('too many messages');
      // Past the longest wait before an unsubscribe is sent again (10 s and its jitter): none was.
      await page.clock.runFor(10_250);
      expect([await sentTo('u-a', 'unsubscribe'), await sentTo('u-b', 'unsubscribe')]).toEqual([1, 1]);
      expect(realProblems(problems)).toEqual([]);
    }, 60_000);
  }
});

// A handshake the server refused is, to a page, a socket that closed before it opened, as for a
// server that is down: it asks the endpoint (a plain request, answered as the handshake would be).
describe.skipIf(!hasChromium() && !process.env.CI)('dashboard: a WebSocket the server refuses', () => {
  const { newPage, serve, tracker } = dashboardSuite();
  const SECRET = 'a-dashboard-secret-long-enough-0123456789';

  it('says the server needs a read token when opened without one, and that it refused the token when it is wrong; with the right one it is live', async () => {
    const { server, port } = await serve(readTokenAuth({ secret: SECRET }));
    const t = await tracker('u-token');
    server.track(t);
    await t.startUpgrade('Phase');
    const bare = await newPage();
    await bare.goto(`http://127.0.0.1:${port}/`);
    await expect.poll(() => bare.textContent('#conn'), { timeout: 10_000 }).toContain('the server needs a read token: open the dashboard at the URL that carries one (?token=...)');
    const wrong = await newPage();
    const other = createReadToken({ secret: 'another-secret-long-enough-0123456789', upgradeIds: ['*'] });
    await wrong.goto(`http://127.0.0.1:${port}/?token=${other}`);
    await expect.poll(() => wrong.textContent('#conn'), { timeout: 10_000 }).toContain('the server refused the read token of this page');
    const right = await newPage();
    const { problems } = watchPage(right);
    await right.goto(`http://127.0.0.1:${port}/?token=${createReadToken({ secret: SECRET, upgradeIds: ['*'] })}#u-token`);
    await expect.poll(() => right.textContent('#conn'), { timeout: 10_000 }).toBe('live');
    expect(realProblems(problems)).toEqual([]);
  }, 60_000);

  it('makes no refusal up for a server that is down, which answers nothing: "disconnected" or "reconnecting" alone', async () => {
    const { server, port } = await serve();
    const page = await newPage();
    await page.goto(`http://127.0.0.1:${port}/`);
    await expect.poll(() => page.textContent('#conn'), { timeout: 10_000 }).toBe('live');
    await server.stop();
    await expect.poll(() => page.textContent('#conn'), { timeout: 10_000 }).toMatch(/^(disconnected|reconnecting)$/);
    // Several refused attempts later (the backoff starts at 250 ms), each asked about in vain.
    await page.waitForTimeout(2000);
    expect(await page.textContent('#conn')).toMatch(/^(disconnected|reconnecting)$/);
  }, 60_000);
});
