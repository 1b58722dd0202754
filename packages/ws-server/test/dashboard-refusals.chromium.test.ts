import { describe, expect, it } from 'vitest';
import { hasChromium } from '../../../tools/test-utils/src/chromium.js';
import { dashboardSuite, realProblems, shown, watchPage } from './dashboard-page.js';

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
});
