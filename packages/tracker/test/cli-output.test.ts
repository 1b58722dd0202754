import { closeSync, existsSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProgressTracker } from '../src/index.js';
import { cleanupTempDirs, completedUpgrade, spawnCli, tempDir } from './helpers.js';

// What `ls` and `show` print is their whole result: a script reads it (`progress show dir u1 --json >
// state.json`). A write to stdout that failed (a full disk, stdout closed by its reader) was not looked
// at: the command exited 0 with its output lost or cut short, as if it had been written.

const children: ChildProcess[] = [];
let dir: string;
beforeAll(async () => {
  dir = tempDir('output');
  // An upgrade whose JSON is larger than a pipe holds (64 KiB): its write cannot be done before the reader goes.
  const t = await createProgressTracker({ upgradeId: 'big', planId: 'p', clusterName: 'c', metadata: { notes: 'n'.repeat(2 * 1024 * 1024) }, storage: { json: dir } });
  await t.startUpgrade();
  await t.close();
  await completedUpgrade('done', { json: dir });
});
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  cleanupTempDirs();
});

function cli(args: string[], options: { stdout?: number; stderr?: number } = {}): ReturnType<typeof spawnCli> {
  const run = spawnCli(args, options);
  children.push(run.child);
  return run;
}

// `ls` and `show` wait until their output is written: a reader that stops reading (a pager left
// open, a pipe to a process that hangs) must not leave them deaf to Ctrl-C or SIGTERM meanwhile.
describe('output a reader does not take', () => {
  it('show --json stops on SIGTERM with exit 130 while its write waits', async () => {
    const run = cli(['show', dir, 'big', '--json']);
    // Read once, then no more: the pipe fills, and the command's write waits for room.
    run.child.stdout!.once('data', () => {
      run.child.stdout!.pause();
      run.child.kill('SIGTERM');
    });
    expect(await run.exited).toBe(130);
  }, 20_000);
});

describe('output that cannot be written', () => {
  for (const args of [['ls', '{dir}', '--json'], ['show', '{dir}', 'big', '--json'], ['show', '{dir}', 'big'], ['watch', '{dir}', 'done'], ['--version'], ['--help']]) {
    it(`${args.join(' ')} to a full disk says so and exits 4, not as if it had been written`, async () => {
      const full = openSync('/dev/full', 'w');
      try {
        const run = cli(args.map((a) => (a === '{dir}' ? dir : a)), { stdout: full });
        expect({ code: await run.exited, stderr: run.stderr() }).toEqual({ code: 4, stderr: 'progress: cannot write the output: ENOSPC: no space left on device, write\n' });
      } finally {
        closeSync(full);
      }
    }, 20_000);
  }

  // A command that goes on after its first failed write (the demo, whose run the failure stops; a
  // `watch` whose first line says it is retrying) found stdout's error gone by the time it ended:
  // Node's stdout forgets it once reported ('error' emitted, the stream "undestroyed"). It took the
  // stop for an interruption, and exited 130 without a word.
  for (const args of [
    ['demo', '--dir', '{fresh}', '--speed', '1000', '--port', '0'],
    ['watch', 'ws://127.0.0.1:1/ws', 'u1', '--connect-timeout', '5'],
  ]) {
    it(`${args.join(' ')} to a full disk says so and exits 4, not 130 as if interrupted`, async () => {
      const full = openSync('/dev/full', 'w');
      const fresh = tempDir('output-demo');
      try {
        const run = cli(args.map((a) => (a === '{fresh}' ? fresh : a)), { stdout: full });
        expect({ code: await run.exited, stderr: run.stderr() }).toEqual({ code: 4, stderr: 'progress: cannot write the output: ENOSPC: no space left on device, write\n' });
      } finally {
        closeSync(full);
      }
      // The demo stopped as on Ctrl-C: its writer lock went with it.
      if (args[0] === 'demo') expect(existsSync(join(fresh, 'upgrades', 'eks-demo', 'writer.lock'))).toBe(false);
    }, 20_000);
  }

  it('show --json into a reader that closes early (`| head -1`) exits 130, as the README says, and prints nothing', async () => {
    const run = cli(['show', dir, 'big', '--json']);
    run.child.stdout!.once('data', () => run.child.stdout!.destroy());
    expect({ code: await run.exited, stderr: run.stderr() }).toEqual({ code: 130, stderr: '' });
  }, 20_000);
});

// Nothing can be said when stderr itself fails (a full disk, its reader gone): the command's exit
// code is all a script gets. The write's error was an unhandled 'error' event, and every command
// that had something to say on stderr crashed with exit 1 ("the watched upgrade failed").
describe('stderr that cannot be written', () => {
  for (const [args, code] of [
    [['ls', '/nonexistent-progress-folder'], 3],
    [['ls', '--no-such-option'], 2],
    [['show', '{dir}', 'nope'], 3],
  ] as const) {
    it(`${args.join(' ')} still exits ${code}`, async () => {
      const full = openSync('/dev/full', 'w');
      try {
        const run = cli(args.map((a) => (a === '{dir}' ? dir : a)), { stderr: full });
        expect(await run.exited).toBe(code);
      } finally {
        closeSync(full);
      }
    }, 20_000);
  }
});
