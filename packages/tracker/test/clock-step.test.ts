import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { ProgressTracker } from '@progress/core';
import { ProgressWebSocketServer } from '@progress/ws-server';
import { spawnCli, until } from './helpers.js';
import { LIBFAKETIME, missingFaketime } from '../../../tools/test-utils/src/faketime.js';

// The wall clock of a machine steps (an NTP step after a VM resumes, a clock an hour wrong put
// right): a deadline or an interval taken from Date.now() moves with it. These run the code in a
// process of its own under libfaketime, whose clock the test steps while it runs (the monotonic
// clock left alone, as a real step leaves it).

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const children: ChildProcess[] = [];
const dirs: string[] = [];
const closers: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  for (const child of children) child.kill('SIGKILL');
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A file whose text (`+0`, `-1h`) is the offset of the wall clock of the processes given its env, read at every call. */
async function steppableClock(): Promise<{ env: Record<string, string>; step(offset: string): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'progress-clock-'));
  dirs.push(dir);
  const file = join(dir, 'offset');
  await writeFile(file, '+0\n');
  return {
    env: { LD_PRELOAD: LIBFAKETIME, FAKETIME_TIMESTAMP_FILE: file, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' },
    step: (offset) => writeFile(file, `${offset}\n`),
  };
}

/** A port nothing listens on (connections to it are refused). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('a wall clock that steps', () => {
  // Skipped, saying why, without libfaketime (`.ci/run` installs it).
  beforeEach((ctx) => ctx.skip(missingFaketime() !== undefined, missingFaketime()));
  it('`watch --connect-timeout` still gives up after its seconds when the clock steps back an hour meanwhile', async () => {
    const clock = await steppableClock();
    const port = await closedPort();
    const run = spawnCli(['watch', `ws://127.0.0.1:${port}/ws`, 'u1', '--connect-timeout', '3'], { env: clock.env });
    children.push(run.child);
    await until('said it retries', () => run.output().includes('retrying'), run.output, 20_000);
    await clock.step('-1h');
    // Before, the deadline was Date.now() + 3 s: set back an hour, it lay an hour and 3 s away, and
    // a script's `progress watch` of a server that is down retried for an hour instead of failing.
    const code = await Promise.race([run.exited, new Promise((resolve) => setTimeout(resolve, 25_000, 'still retrying'))]);
    expect({ code, stderr: run.stderr() }).toEqual({ code: 4, stderr: expect.stringMatching(/progress: cannot connect to ws:\/\/127\.0\.0\.1:\d+\/ws \(.*\)\n$/) });
  }, 40_000);

  it('the live view of a terminal keeps redrawing when the clock steps back an hour', async () => {
    const clock = await steppableClock();
    const dir = dirs[dirs.length - 1]!;
    const script = join(dir, 'live-view.mts');
    // A LiveView on a terminal (a stream that says it is one), updated once a step is made: each
    // update must be drawn within its interval (100 ms), not an hour later.
    await writeFile(
      script,
      `import { ProgressTracker } from ${JSON.stringify(join(packageDir, '../core/src/index.ts'))};
import { LiveView } from ${JSON.stringify(join(packageDir, 'src/cli/terminal.ts'))};
import { Writable } from 'node:stream';
let text = '';
const out = Object.assign(new Writable({ write(chunk, _enc, done) { text += chunk.toString(); done(); } }), { isTTY: true, columns: 120, rows: 50 });
const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c' });
await tracker.startUpgrade();
await tracker.addTask('t', 'Task');
await tracker.startTask('t');
const view = new LiveView({ out, color: false });
view.update(tracker.progress);
process.stdin.setEncoding('utf8');
process.stdin.on('data', async (line) => {
  const pct = Number(line.trim());
  await tracker.advanceTask('t', { currentStep: 'step-' + pct });
  view.update(tracker.progress);
  const shown = performance.now();
  const wait = setInterval(() => {
    if (text.includes('step-' + pct)) { clearInterval(wait); process.stdout.write('drawn ' + pct + '\\n'); }
    else if (performance.now() - shown > 10_000) { clearInterval(wait); process.stdout.write('not drawn ' + pct + '\\n'); }
  }, 20);
});
process.stdout.write('ready\\n');
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@progress/source', script], { cwd: packageDir, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...clock.env } });
    children.push(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    await until('ready', () => out.includes('ready'), () => out, 20_000);
    child.stdin.write('17\n');
    await until('drawn 17', () => out.includes('drawn 17'), () => out, 20_000);
    await clock.step('-1h');
    child.stdin.write('42\n');
    // Before, the time since the last redraw came out an hour below zero: the redraw waited for a
    // timer of an hour, and the bars stood still (every later update waited on that timer too).
    await until('drawn 42', () => /drawn 42/.test(out), () => out, 20_000);
    expect(out).toContain('\ndrawn 42');
    child.stdin.write('64\n');
    await until('drawn 64', () => /drawn 64/.test(out), () => out, 20_000);
    expect(out).toContain('\ndrawn 64');
  }, 60_000);

  it('`demo --linger` ends after its seconds when the clock steps back an hour while it lingers', async () => {
    const clock = await steppableClock();
    const dir = dirs[dirs.length - 1]!;
    const run = spawnCli(['demo', '--dir', join(dir, 'demo'), '--port', '0', '--speed', '1000', '--linger', '3'], { env: clock.env });
    children.push(run.child);
    await until('said it lingers', () => run.output().includes('Serving the dashboard for 3s more.'), run.output, 60_000);
    await clock.step('-1h');
    // Before, it lingered until Date.now() reached a time an hour and 3 s away.
    const code = await Promise.race([run.exited, new Promise((resolve) => setTimeout(resolve, 25_000, 'still serving'))]);
    expect({ code, output: run.output() }).toMatchObject({ code: 0 });
  }, 90_000);

  it("`watch` of a ws-server gives the ETA by the server's clock when its own is 10 minutes behind (a laptop)", async () => {
    const server = new ProgressWebSocketServer({ port: 0 });
    const { port } = await server.start();
    closers.push(() => server.stop());
    const tracker = await ProgressTracker.open({ upgradeId: 'u-eta', planId: 'p', clusterName: 'c' });
    closers.push(() => tracker.close());
    server.track(tracker);
    await tracker.startUpgrade();
    await tracker.addTask('a', 'A');
    await tracker.startTask('a');
    await tracker.updateTaskProgress('a', 50);
    const clock = await steppableClock();
    await clock.step('-10m');
    const run = spawnCli(['watch', `ws://127.0.0.1:${port}/ws`, 'u-eta'], { env: clock.env });
    children.push(run.child);
    await until('showed the upgrade', () => run.output().includes('state in_progress'), run.output, 20_000);
    // Ctrl-C: the bars are drawn a last time, with the ETA.
    run.child.kill('SIGINT');
    await run.exited;
    const [, day, time] = /overall .* eta (?:(\d{4}-\d\d-\d\d) )?(\d\d:\d\d:\d\d)Z/.exec(run.output()) ?? [];
    expect(time, run.output()).toBeDefined();
    // Half done a moment after it started: due about now by the server's clock (the one that stamped
    // the start). Before, the watcher's own clock was taken: 10 minutes behind, the time spent came
    // out below zero (so none), and the ETA was "now" 10 minutes early.
    const eta = Date.parse(`${day ?? new Date().toISOString().slice(0, 10)}T${time}Z`);
    const off = Math.abs(((eta - Date.now() + 43_200_000) % 86_400_000) - 43_200_000);
    expect(off, run.output()).toBeLessThan(120_000);
  }, 60_000);
});
