import { describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { ProgressTracker } from '@progress/core';
import { hasChromium } from '../../../tools/test-utils/src/chromium.js';
import { freePort } from '../../../tools/test-utils/src/net.js';
import { caughtUp, dashboardSuite, realProblems, watchPage } from './dashboard-page.js';

// The dashboard for people not on a mouse and a big screen (WCAG 2.2 A/AA), in a real headless
// Chromium: the keyboard, a screen reader's view of it, contrast, and a phone's width.

/** Text shown on a background of less than 4.5:1 (WCAG 1.4.3): [text, colour, background, ratio]. Page code as text: no DOM types here. */
const LOW_CONTRAST = `(() => {
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = (c) => { const [r, g, b] = rgb(c).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const bg = (e) => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor, p = rgb(c); if (p.length < 4 || p[3] > 0) return c; } return 'rgb(255, 255, 255)'; };
  const low = [];
  for (const e of document.querySelectorAll('body *')) {
    if (![...e.childNodes].some((n) => n.nodeType === 3 && n.nodeValue.trim())) continue;
    const color = getComputedStyle(e).color, back = bg(e), a = lum(color), b = lum(back);
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) low.push([e.textContent.slice(0, 40), color, back, Math.round(ratio * 100) / 100]);
  }
  return low;
})()`;

/** The focused element's outline and box shadow. */
const FOCUS_LOOK = `(() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth, s.outlineColor, s.outlineOffset, s.boxShadow].join(' '); })()`;
const look = (page: Page, selector: string): Promise<string> =>
  page.evaluate(`(() => { const s = getComputedStyle(document.querySelector(${JSON.stringify(selector)})); return [s.outlineStyle, s.outlineWidth, s.outlineColor, s.outlineOffset, s.boxShadow].join(' '); })()`);

describe.skipIf(!hasChromium() && !process.env.CI)('dashboard accessibility in Chromium', () => {
  const suite = dashboardSuite();

  /** A server with a failed task on 'eks-upgrade-1' (selected) and a second upgrade, and the page open on it. */
  async function open(
    options: { port?: number } = {},
  ): Promise<{ page: Page; problems: string[]; port: number; server: Awaited<ReturnType<typeof suite.serve>>['server']; tracker: ProgressTracker }> {
    const { server, port } = await suite.serve(options);
    const tracker = await suite.tracker('eks-upgrade-1');
    server.track(tracker);
    await tracker.startUpgrade('Control plane');
    await tracker.addTask('plan', 'Upgrade plan', 'upgrade_plan');
    await tracker.addTask('drain', 'Drain nodes', 'upgrade_step', { totalSteps: 4 });
    await tracker.updateTaskProgress('drain', 30, 'node-1 drained');
    await tracker.failTask('plan', 'quota exceeded for node group');
    const other = await suite.tracker('other-upgrade');
    server.track(other);
    await other.startUpgrade('Nodes');
    const page = await suite.newPage();
    const { problems } = watchPage(page);
    await page.goto(`http://127.0.0.1:${port}/#eks-upgrade-1`);
    await caughtUp(page, tracker);
    await page.waitForSelector('[data-upgrade-id="other-upgrade"]');
    return { page, problems, port, server, tracker };
  }
  it('shows every text, an error message and the selected or hovered row included, at 4.5:1 or more in the light and the dark scheme', async () => {
    const { page, problems } = await open();
    for (const colorScheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme });
      expect(await page.evaluate(LOW_CONTRAST), colorScheme).toEqual([]);
      // A row under the pointer takes the selected row's background.
      await page.hover('[data-upgrade-id="other-upgrade"]');
      expect(await page.evaluate(LOW_CONTRAST), `${colorScheme}, hovered`).toEqual([]);
      await page.mouse.move(0, 0);
    }
    expect(realProblems(problems)).toEqual([]);
  }, 60_000);

  it('shows where the keyboard focus is on the selected upgrade too', async () => {
    const { page } = await open();
    const focusedId = (): Promise<string | null> => page.evaluate('document.activeElement.getAttribute("data-upgrade-id")');
    // Tab (the list's order is the server's) until the row has the focus.
    const tabTo = async (id: string): Promise<void> => {
      for (let i = 0; i < 6 && (await focusedId()) !== id; i++) await page.keyboard.press('Tab');
      expect(await focusedId()).toBe(id);
    };
    const unfocused = await look(page, '[data-upgrade-id="eks-upgrade-1"]');
    await tabTo('eks-upgrade-1');
    const focused = await page.evaluate<string>(FOCUS_LOOK);
    expect(focused).not.toMatch(/^none/);
    // Its selection outline alone (what it shows without the focus) says nothing of where the focus is.
    expect(focused).not.toBe(unfocused);
    // The same after picking another upgrade with the keyboard: the focus stays on the row picked.
    await tabTo('other-upgrade');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getAttribute('[data-upgrade-id="other-upgrade"]', 'aria-current')).toBe('true');
    expect(await focusedId()).toBe('other-upgrade');
    expect(await page.evaluate<string>(FOCUS_LOOK)).not.toBe(unfocused);
  }, 60_000);

  it('moves the focus between upgrade rows with the arrow keys, Home and End, without scrolling the page or selecting', async () => {
    const { page, server } = await open();
    // A third upgrade: first, middle and last rows to move between.
    const third = await suite.tracker('third-upgrade');
    server.track(third);
    await third.startUpgrade('Addons');
    await page.waitForSelector('[data-upgrade-id="third-upgrade"]', { timeout: 15_000 });
    const order = await page.evaluate<string[]>('[...document.querySelectorAll("#upgrades [data-upgrade-id]")].map((li) => li.getAttribute("data-upgrade-id"))');
    expect(order).toHaveLength(3);
    const focusedId = (): Promise<string | null> => page.evaluate('document.activeElement.getAttribute("data-upgrade-id")');
    await page.focus(`[data-upgrade-id="${order[0]}"]`);
    const scrollY = await page.evaluate<number>('window.scrollY');
    // Each key, and the row it leaves the focus on (past the last or the first row, it stays there).
    const moves: Array<[string, number]> = [['ArrowDown', 1], ['ArrowDown', 2], ['ArrowDown', 2], ['ArrowUp', 1], ['Home', 0], ['ArrowUp', 0], ['End', 2]];
    for (const [key, row] of moves) {
      await page.keyboard.press(key);
      expect(await focusedId(), key).toBe(order[row]);
    }
    expect(await page.evaluate<number>('window.scrollY')).toBe(scrollY);
    // Moving the focus picks nothing: the selected upgrade is still the one in the address.
    expect(await page.getAttribute('[data-upgrade-id="eks-upgrade-1"]', 'aria-current')).toBe('true');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getAttribute(`[data-upgrade-id="${order[2]}"]`, 'aria-current')).toBe('true');
  }, 60_000);

  it('reflows at 320 CSS px (a phone, or 400% zoom) without scrolling the page sideways', async () => {
    const { page } = await open();
    await page.setViewportSize({ width: 320, height: 640 });
    await expect.poll(() => page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth')).toBe(0);
    // Nor does "Recent events" scroll sideways inside its own box.
    expect(await page.evaluate('(() => { const e = document.getElementById("events"); return e.scrollWidth - e.clientWidth; })()')).toBe(0);
  }, 60_000);

  it('names each progress bar, as a screen reader lists them', async () => {
    const { page } = await open();
    expect(await page.getByRole('progressbar', { name: 'Drain nodes', exact: true }).count()).toBe(1);
    expect(await page.getByRole('progressbar', { name: 'Drain nodes', exact: true }).getAttribute('aria-valuenow')).toBe('30');
    expect(await page.getByRole('progressbar', { name: 'Upgrade plan', exact: true }).count()).toBe(1);
    expect(await page.getByRole('progressbar', { name: /^Overall/ }).count()).toBe(1);
    expect(await page.getByRole('progressbar', { name: /other-upgrade/ }).count()).toBe(1);
    // Every bar has a name; none is left nameless.
    const bars = page.getByRole('progressbar');
    const n = await bars.count();
    expect(n).toBe(5);
    const names = await page.evaluate<string[]>('[...document.querySelectorAll("[role=progressbar]")].map((b) => b.getAttribute("aria-label") || "")');
    expect(names.filter((x) => !x)).toEqual([]);
    // A list row's button still says how far its upgrade is (its bar's value, not its name).
    expect(await page.getByRole('button', { name: /^other-upgrade .* 0$/ }).count()).toBe(1);
  }, 60_000);

  /** Records every text the status region is given from now on: returns the function that reads them. */
  async function listen(page: Page): Promise<() => Promise<string[]>> {
    await page.evaluate(`(() => {
      const region = document.querySelector('[role=status]');
      window.__said = [];
      new MutationObserver(() => { if (region.textContent) window.__said.push(region.textContent); }).observe(region, { childList: true, characterData: true, subtree: true });
    })()`);
    return () => page.evaluate<string[]>('window.__said.slice()');
  }

  it('announces a lost and a restored connection once each, and the selected upgrade failing, without taking the focus', async () => {
    const { page, problems, server, tracker } = await open({ port: await freePort() });
    let sockets = 0;
    page.on('websocket', () => sockets++);
    // One polite status region (WCAG 4.1.3): what it is given is read out, the rest of the page is not.
    const status = page.getByRole('status');
    expect(await status.count()).toBe(1);
    expect(await page.locator('[aria-live]:not([aria-live="off"]), [role=alert], [role=log]').count()).toBe(0);
    const said = await listen(page);
    const focusedId = (): Promise<string | null> => page.evaluate('document.activeElement.getAttribute("data-upgrade-id")');
    await page.keyboard.press('Tab');
    const focused = await focusedId();
    expect(focused).not.toBeNull();

    await server.stop();
    await expect.poll(said).toEqual([expect.stringMatching(/connection lost/i)]);
    // Reconnects that fail (each shown as "reconnecting", then "disconnected") say nothing more.
    const before = sockets;
    await expect.poll(() => sockets, { timeout: 20_000 }).toBeGreaterThanOrEqual(before + 3);
    expect(await said()).toHaveLength(1);
    await server.start();
    await expect.poll(() => page.textContent('#conn'), { timeout: 20_000 }).toBe('live');
    await expect.poll(said).toEqual([expect.stringMatching(/connection lost/i), expect.stringMatching(/connected/i)]);

    // The selected upgrade's end, as it happens (a pause each time); its progress events say nothing.
    await tracker.updateTaskProgress('drain', 60);
    await tracker.pauseUpgrade('maintenance window');
    await expect.poll(said).toHaveLength(3);
    await tracker.resumeUpgrade();
    await tracker.updateTaskProgress('drain', 70);
    await tracker.pauseUpgrade();
    await expect.poll(said).toHaveLength(4);
    await tracker.resumeUpgrade();
    await tracker.failUpgrade('control plane unreachable');
    await expect.poll(said).toHaveLength(5);
    expect((await said()).slice(2)).toEqual(['eks-upgrade-1 paused', 'eks-upgrade-1 paused', 'eks-upgrade-1 failed: control plane unreachable']);
    // The focus never left the row that had it.
    expect(await focusedId()).toBe(focused);
    expect(realProblems(problems)).toEqual([]);
  }, 90_000);
  it('announces the selected upgrade cancelled while the page was away, once the snapshot of its reconnect shows it', async () => {
    const { page, problems, server, tracker } = await open({ port: await freePort() });
    const said = await listen(page);
    await server.stop();
    await expect.poll(said).toEqual([expect.stringMatching(/connection lost/i)]);
    // It ends while the page cannot hear it: the snapshot after the reconnect is the first to say so.
    await tracker.cancelUpgrade('maintenance window over');
    await server.start();
    await caughtUp(page, tracker, 20_000);
    await expect.poll(said).toContain('eks-upgrade-1 cancelled');
    expect(await page.textContent('#overview .badge')).toBe('cancelled');
    expect(realProblems(problems)).toEqual([]);
  }, 60_000);

  it('shows the progress bars in forced colours (a high-contrast theme)', async () => {
    const { page } = await open();
    await page.emulateMedia({ forcedColors: 'active' });
    // The fill of each bar against what is behind the bar: the theme takes every background away, and
    // the list's bars, which have no percentage beside them, showed nothing at all.
    const seen = `(() => [...document.querySelectorAll('[role=progressbar]')].map((b) => {
      let back = b.parentElement;
      while (getComputedStyle(back).backgroundColor === 'rgba(0, 0, 0, 0)') back = back.parentElement;
      const s = getComputedStyle(b);
      return [b.getAttribute('aria-label'), getComputedStyle(b.firstElementChild).backgroundColor !== getComputedStyle(back).backgroundColor, s.borderTopStyle !== 'none' && s.borderTopWidth !== '0px'];
    }))()`;
    const bars = await page.evaluate<Array<[string, boolean, boolean]>>(seen);
    expect(bars.length).toBe(5);
    // Its fill differs from what is behind it, and its outline shows where 100% is.
    expect(bars.filter(([, fill, edge]) => !fill || !edge)).toEqual([]);
  }, 60_000);
  it('draws each progress bar at 3:1 or more: its extent against the page, its fill against its track, in both schemes', async () => {
    const { page } = await open();
    // [name, edge against what is behind the bar, fill against the track (null at 0 or 100%)]. The list's
    // bars have no percentage beside them: the bar is all a sighted user has (WCAG 1.4.11).
    const ratios = `(() => {
      const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
      const lum = (c) => { const [r, g, b] = rgb(c).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
      const ratio = (x, y) => { const a = lum(x), b = lum(y); return Math.round((Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05) * 100) / 100; };
      const opaque = (c) => { const p = rgb(c); return p.length < 4 || p[3] > 0; };
      return [...document.querySelectorAll('[role=progressbar]')].map((b) => {
        let back = b.parentElement;
        while (!opaque(getComputedStyle(back).backgroundColor)) back = back.parentElement;
        const s = getComputedStyle(b), behind = getComputedStyle(back).backgroundColor, v = Number(b.getAttribute('aria-valuenow'));
        const edge = Math.max(ratio(s.backgroundColor, behind), s.borderTopStyle !== 'none' && s.borderTopWidth !== '0px' ? ratio(s.borderTopColor, behind) : 0);
        return [b.getAttribute('aria-label'), edge, v > 0 && v < 100 ? ratio(getComputedStyle(b.firstElementChild).backgroundColor, s.backgroundColor) : null];
      });
    })()`;
    for (const colorScheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme });
      const bars = await page.evaluate<Array<[string, number, number | null]>>(ratios);
      expect(bars.length).toBe(5);
      expect(bars.filter(([, edge, fill]) => edge < 3 || (fill !== null && fill < 3)), colorScheme).toEqual([]);
    }
  }, 60_000);
  it('keeps a deep task readable at 320 CSS px: its indent does not leave its name a letter wide', async () => {
    const { server, port } = await suite.serve();
    const tracker = await suite.tracker('deep-upgrade');
    server.track(tracker);
    await tracker.startUpgrade('Nodes');
    // Plan, phase, node group, node, step...: 8 levels below the top, as deep as the page shows.
    await tracker.addTask('d0', 'Upgrade the worker nodes', 'upgrade_step');
    for (let i = 1; i <= 8; i++) await tracker.addTask(`d${i}`, `Drain node group number ${i}`, 'upgrade_step', { parentTaskId: `d${i - 1}` });
    await tracker.updateTaskProgress('d8', 40, undefined, { currentStep: 'evicting pods from ip-10-0-0-1' });
    const page = await suite.newPage();
    await page.setViewportSize({ width: 320, height: 640 });
    await page.goto(`http://127.0.0.1:${port}/#deep-upgrade`);
    await caughtUp(page, tracker);
    // The width left to the deepest task's name and its step, past their indent: at 18 px a level, 12 px
    // of a 156 px column, a letter a line.
    const room = await page.evaluate<number[]>(`(() => [...document.querySelectorAll('[data-task-id=d8] > span:not(.badge):not(.pct)')].map((e) => {
      const s = getComputedStyle(e);
      return e.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
    }))()`);
    expect(room.length).toBe(2);
    for (const px of room) expect(px).toBeGreaterThanOrEqual(90);
    // At a desktop width a level is still 18 px.
    await page.setViewportSize({ width: 1280, height: 860 });
    expect(await page.evaluate('getComputedStyle(document.querySelector("[data-task-id=d1] .name")).paddingLeft')).toBe('18px');
  }, 60_000);
});
