import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnCli } from './helpers.js';

// The wall clock of a machine steps (an NTP step after a VM resumes, a clock an hour wrong put
// right): a deadline or an interval taken from Date.now() moves with it. These run the code in a
// process of its own under libfaketime, whose clock the test steps while it runs (the monotonic
// clock left alone, as a real step leaves it).

const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const children: ChildProcess[] = [];
const dirs: string[] = [];
afterAll(async () => {
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

const until = async (check: () => boolean, ms = 20_000): Promise<void> => {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
};

describe.skipIf(!existsSync(LIBFAKETIME))('a wall clock that steps', () => {
  it('`watch --connect-timeout` still gives up after its seconds when the clock steps back an hour meanwhile', async () => {
    const clock = await steppableClock();
    const port = await closedPort();
    const run = spawnCli(['watch', `ws://127.0.0.1:${port}/ws`, 'u1', '--connect-timeout', '3'], { env: clock.env });
    children.push(run.child);
    await until(() => run.output().includes('retrying'));
    await clock.step('-1h');
    // Before, the deadline was Date.now() + 3 s: set back an hour, it lay an hour and 3 s away, and
    // a script's `progress watch` of a server that is down retried for an hour instead of failing.
    const code = await Promise.race([run.exited, new Promise((resolve) => setTimeout(resolve, 25_000, 'still retrying'))]);
    expect({ code, stderr: run.stderr() }).toEqual({ code: 4, stderr: expect.stringMatching(/progress: cannot connect to ws:\/\/127\.0\.0\.1:\d+\/ws \(.*\)\n$/) });
  }, 40_000);
});
