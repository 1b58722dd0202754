import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hasChromium, launchChromium } from '../../../tools/test-utils/src/chromium.js';
import { main } from '../src/cli/main.js';
import { LiveView } from '../src/cli/terminal.js';
import { JsonFileStore, createProgressTracker } from '../src/index.js';
import { Capture, cleanupTempDirs, freePort, hasScript, spawnCli, tempDir } from './helpers.js';

const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  cleanupTempDirs();
});

/** Starts `progress demo` as a user would (from source, through tsx), and collects its output. */
function startDemo(args: string[], options: { terminal?: boolean } = {}): { child: ChildProcess; output: () => string; waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>; exited: Promise<number | null> } {
  const { child, output, exited } = spawnCli(['demo', ...args], options);
  children.push(child);
  const waitFor = async (re: RegExp, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = output().match(re);
      if (m) return m;
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`demo never printed ${re}; it printed:\n${output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { child, output, waitFor, exited };
}

describe('progress demo', () => {
  it.skipIf(!hasChromium() && !process.env.CI)('prints the dashboard URL first, and the page at it shows the upgrade progressing', async () => {
    const demo = startDemo(['--dir', tempDir('demo'), '--port', '0', '--speed', '4', '--linger', '20']);
    const [, url] = await demo.waitFor(/Dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/);
    expect(demo.output().trimStart().startsWith('Dashboard: ')).toBe(true);
    const chromium = await launchChromium();
    try {
      const page = await chromium.context.newPage();
      await page.goto(`${url}#eks-demo`);
      await page.waitForSelector('[data-task-id="control-plane"]', { timeout: 20_000 });
      const overall = async () => Number(await page.getAttribute('#overall', 'aria-valuenow'));
      const first = await overall();
      await expect.poll(overall, { timeout: 20_000 }).toBeGreaterThan(first);
      await expect.poll(overall, { timeout: 30_000 }).toBe(100);
      expect(await page.textContent('[data-task-id="ng-apps"] .name')).toBe('Node group apps (5 nodes)');
    } finally {
      await chromium.close();
      demo.child.kill('SIGINT');
    }
    expect(await demo.exited).toBe(130);
    // Not a terminal here: a plain line per event, then the final bars.
    expect(demo.output()).toMatch(/#\d+ eks-demo task\.completed ng-apps completed/);
    expect(demo.output()).toMatch(/overall █{30} 100\.0%/);
  });

  it('watch from a second shell follows the demo, and a killed and restarted demo resumes instead of starting over', async () => {
    const dir = tempDir('demo-resume');
    const port = await freePort();
    const first = startDemo(['--dir', dir, '--port', String(port), '--speed', '3', '--linger', '30']);
    await first.waitFor(/Dashboard: /);
    const out = new Capture();
    const watching = main(['watch', `ws://127.0.0.1:${port}/ws`, 'eks-demo'], out as unknown as NodeJS.WriteStream, new Capture() as unknown as NodeJS.WriteStream);
    await first.waitFor(/#2\d eks-demo /);
    first.child.kill('SIGKILL');
    await first.exited;
    const second = startDemo(['--dir', dir, '--port', String(port), '--speed', '3', '--linger', '30']);
    const [, resumedAfter] = await second.waitFor(/resuming after seq (\d+)/);
    expect(Number(resumedAfter)).toBeGreaterThanOrEqual(20);
    const code = await watching;
    second.child.kill('SIGINT');
    await second.exited;
    expect(code).toBe(0);
    expect(out.text).toContain('reconnected');
    const seqs = [...out.text.matchAll(/#(\d+) eks-demo /g)].map((m) => Number(m[1]));
    // Every event exactly once, in order, across the restart, up to upgrade.completed.
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => seqs[0]! + i));
    expect(out.text).toMatch(/upgrade\.completed/);
    // The second demo went on with the same upgrade: no second upgrade.created, no second task.added.
    expect(second.output()).not.toMatch(/task\.added/);
  }, 120_000);

  it.skipIf(!hasScript())('on a terminal, keeps the dashboard up after the upgrade until Ctrl-C, then exits 130 and lets the upgrade go', async () => {
    const dir = tempDir('demo-tty');
    // No --linger: on a terminal the dashboard stays up until Ctrl-C (README).
    const demo = startDemo(['--dir', dir, '--port', '0', '--speed', '1000'], { terminal: true });
    const [, url] = await demo.waitFor(/Dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/);
    await demo.waitFor(/The dashboard stays up; Ctrl\+C to stop\./);
    expect(demo.output()).toMatch(/Upgrade completed in \d+\.\ds: 14\/14 tasks\./);
    expect((await fetch(url!)).status).toBe(200);
    demo.child.stdin!.write('\x03');
    expect(await demo.exited).toBe(130);
    expect(existsSync(join(dir, 'upgrades', 'eks-demo', 'writer.lock'))).toBe(false);
    // Its server went with it.
    await expect(fetch(url!)).rejects.toThrow();
  }, 60_000);

  it('stops as on Ctrl-C when its stdout is closed by the reader (| head -1), and lets the upgrade go', async () => {
    const dir = tempDir('demo-epipe');
    const demo = startDemo(['--dir', dir, '--port', '0', '--speed', '2', '--linger', '0']);
    await demo.waitFor(/Dashboard: /);
    // The reader goes away: the demo's next write fails with EPIPE.
    demo.child.stdout!.destroy();
    expect(await demo.exited).toBe(130);
    expect(demo.output()).not.toMatch(/Unhandled|EPIPE/);
    expect(existsSync(join(dir, 'upgrades', 'eks-demo', 'writer.lock'))).toBe(false);
    // The upgrade is there to be resumed: another writer opens it at once.
    const store = new JsonFileStore({ directory: dir });
    await store.acquire('eks-demo');
    expect((await store.load('eks-demo'))?.status).toBe('in_progress');
    await store.close();
  }, 60_000);
});

describe('live bars in a terminal', () => {
  it('redraws bars in place on a TTY, without colours under NO_COLOR', async () => {
    const out = new Capture();
    out.isTTY = true;
    const saved = process.env.NO_COLOR;
    process.env.NO_COLOR = '1';
    try {
      const view = new LiveView({ out: out as unknown as NodeJS.WriteStream, intervalMs: 0 });
      const t = await createProgressTracker({ upgradeId: 'tty', planId: 'p', clusterName: 'c' });
      t.subscribe((e, s) => view.update(s, e));
      await t.startUpgrade();
      await t.addTask('a', 'Drain nodes', 'upgrade_step', { totalSteps: 4 });
      await t.advanceTask('a');
      await t.advanceTask('a');
      view.finish();
      await t.close();
    } finally {
      if (saved === undefined) delete process.env.NO_COLOR;
      else process.env.NO_COLOR = saved;
    }
    expect(out.text).toContain('\x1b[');
    const ESC = String.fromCharCode(27);
    expect(out.text).toMatch(new RegExp(`${ESC}\\[\\d+A${ESC}\\[0J`));
    expect(out.text).not.toMatch(new RegExp(`${ESC}\\[3\\dm`));
    expect(out.text).toMatch(/▶ Drain nodes\s+█{10}░{10}\s+50\.0% 2\/4/);
  });
});
