import { afterAll, beforeAll, expect } from 'vitest';
import type { Page } from 'playwright-core';
import type { MemoryStore, ProgressTracker } from '@progress/core';
import { launchChromium, type TestChromium } from '../../../tools/test-utils/src/chromium.js';
import { ProgressWebSocketServer } from '../src/index.js';
import { openTracker } from './helpers.js';

// What the dashboard tests in a real Chromium share: watching a page, reading what it shows, and one
// browser per test file with the servers, trackers and pages its tests open, closed after them.

/** Watches a page: its errors, and the frames it sends. */
export function watchPage(page: Page): { problems: string[]; sent: string[] } {
  const problems: string[] = [];
  const sent: string[] = [];
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(msg.text());
  });
  page.on('websocket', (ws) => ws.on('framesent', (f) => sent.push(String(f.payload))));
  return { problems, sent };
}

/** The problems that are not the connection refusals a reconnect test causes on purpose. */
export const realProblems = (problems: string[]): string[] => problems.filter((p) => !/WebSocket|ERR_CONNECTION_REFUSED/.test(p));

/** What the page shows: each task row's bar, the overall bar, the facts. (Page code as text: this package's tests have no DOM types.) */
const SHOWN = `(() => {
  const tasks = {};
  for (const row of document.querySelectorAll('[data-task-id]')) tasks[row.getAttribute('data-task-id')] = row.querySelector('[role=progressbar]').getAttribute('aria-valuenow');
  const facts = {};
  for (const d of document.querySelectorAll('.facts > div')) facts[d.firstChild.textContent] = d.lastChild.textContent;
  const overall = document.querySelector('#overall');
  return { overall: overall ? overall.getAttribute('aria-valuenow') : null, tasks, facts, overview: document.querySelector('#overview').textContent };
})()`;

export async function shown(page: Page): Promise<{ overall: string | null; tasks: Record<string, string | null>; facts: Record<string, string>; overview: string }> {
  return page.evaluate(SHOWN);
}

/**
 * Counts the frames the page sends, in the page as it sends them: a frame sent while the clock ran is
 * counted once runFor returns (playwright's framesent events may come later). Returns the function
 * that counts those of a type to an upgrade (not the subscribe with a sinceSeq that follows a
 * snapshot, for the "Recent events" it did not bring). The socket last sent on is `window.pageSocket`
 * (an init script is not subject to the page's CSP: a test may send on it as the page).
 */
export async function countSent(page: Page): Promise<(upgradeId: string, type?: string) => Promise<number>> {
  await page.addInitScript(`(() => {
    const sent = [];
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) { sent.push(String(data)); window.pageSocket = this; return send.call(this, data); };
    window.sentFrames = sent;
  })()`);
  return async (upgradeId, type = 'subscribe') =>
    (await page.evaluate<string[]>('window.sentFrames')).filter((f) => f.includes(`"type":"${type}"`) && f.includes(`"upgradeId":"${upgradeId}"`) && !f.includes('"sinceSeq"')).length;
}

/** Waits until the page has applied every event the tracker wrote (its Seq fact). */
export async function caughtUp(page: Page, tracker: ProgressTracker, timeout = 15_000): Promise<void> {
  await expect.poll(async () => (await shown(page)).facts['Seq'], { timeout }).toBe(String(tracker.durableProgress.lastSeq));
}

/** Call inside a `describe`: its Chromium, and what its tests open, each closed after the file's tests (in reverse order). */
export function dashboardSuite(): {
  newPage(): Promise<Page>;
  serve(options?: ConstructorParameters<typeof ProgressWebSocketServer>[0]): Promise<{ server: ProgressWebSocketServer; port: number }>;
  tracker(upgradeId: string, store?: MemoryStore): Promise<ProgressTracker>;
} {
  let chromium: TestChromium;
  const cleanup: Array<() => Promise<unknown>> = [];
  beforeAll(async () => {
    chromium = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
    await chromium?.close();
  });
  return {
    async newPage() {
      const page = await chromium.context.newPage();
      cleanup.push(() => page.close());
      return page;
    },
    async serve(options = {}) {
      const server = new ProgressWebSocketServer({ port: 0, ...options });
      const { port } = await server.start();
      cleanup.push(() => server.stop());
      return { server, port };
    },
    async tracker(upgradeId, store) {
      const t = await openTracker(upgradeId, store);
      cleanup.push(() => t.close());
      return t;
    },
  };
}
