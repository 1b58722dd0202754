// A folder this user may not reach (inside another user's 0700 folder: a service's data folder, a
// home) was said "no such folder" (exit 3): the user looked for a typo in a path that was right.
// (Found by a review on 2026-12-03; the test failed before the fix.)
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, completedUpgrade, tempDir } from './helpers.js';

afterAll(cleanupTempDirs);

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;
const packageDir = fileURLToPath(new URL('..', import.meta.url));

/** `progress <args>` run as user `uid`, from source: its exit code and stderr. */
function runAs(uid: number, args: string[]): Promise<{ code: number | null; err: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@progress/source', 'src/cli/bin.ts', ...args], {
    cwd: packageDir,
    uid,
    gid: uid,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', PROGRESS_TOKEN: undefined },
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, err })));
}

describe('a folder source this user may not reach', () => {
  it('is said as a folder that cannot be read (exit 4), with the reason, not as no such folder (exit 3)', async (ctx) => {
    ctx.skip(!isRoot, 'needs root, to run the command as another user');
    // tempDir() is root's, 0700: another user may not look inside it.
    const parent = tempDir('cli-no-access');
    const store = join(parent, 'store');
    mkdirSync(store);
    await completedUpgrade('u1', { json: store });
    const said = `progress: cannot read the folder ${store} (EACCES: permission denied, stat '${store}')\n`;
    for (const args of [['ls', store], ['show', store, 'u1'], ['watch', store], ['watch', store, 'u1']]) {
      expect(await runAs(NOBODY, args), args.join(' ')).toEqual({ code: 4, err: said });
    }
    // A folder that is not there is still not found.
    expect(await runAs(NOBODY, ['ls', '/nonexistent-progress-folder'])).toEqual({ code: 3, err: 'progress: no such folder: /nonexistent-progress-folder\n' });
  }, 60_000);
});
