import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';

/** Where Debian/Ubuntu install Chromium; override with CHROMIUM_PATH. Never downloaded. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** A running headless Chromium and how to let go of it. */
export interface TestChromium {
  browser: Browser;
  context: BrowserContext;
  close(): Promise<void>;
}

/** True when a Chromium binary is installed where {@link launchChromium} looks for it. */
export function hasChromium(): boolean {
  return existsSync(CHROMIUM_PATH);
}

/**
 * Launches the system Chromium headless through playwright-core (never a browser download), with a
 * fresh user-data-dir that `close()` removes, and the flags a container needs.
 */
export async function launchChromium(): Promise<TestChromium> {
  if (!hasChromium()) {
    throw new Error(`No Chromium at ${CHROMIUM_PATH}: install it (Debian: \`apt-get install chromium\`) or set CHROMIUM_PATH.`);
  }
  const userDataDir = mkdtempSync(join(tmpdir(), 'progress-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-component-update', '--no-first-run'],
    viewport: { width: 1280, height: 860 },
  });
  const browser = context.browser();
  return {
    // launchPersistentContext has no separate Browser object; the context is what tests use.
    browser: browser as Browser,
    context,
    close: async () => {
      await context.close().catch(() => undefined);
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
