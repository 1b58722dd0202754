import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createProgressTracker, isProgressError, resolveOptions } from '../src/index.js';
import { runCli, uniqueId } from './helpers.js';

const base = () => ({ upgradeId: uniqueId('urls'), planId: 'p', clusterName: 'c' });
// What a URL taken for a folder path made, relative to the working directory.
const made = ['redis:', 'rediss:', 'file:'].map((name) => join(process.cwd(), name));

afterEach(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

describe('storage given as a URL string', () => {
  it('refuses a URL as the folder of { json } or storagePath, rather than making a folder named after it', async () => {
    // storagePath: process.env.REDIS_URL made ./redis:/:hunter2@host:6379 and kept the events there.
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ storagePath: 'redis://:hunter2@127.0.0.1:6379' }, /\{ redis: url \}/],
      [{ storage_path: 'rediss://user:hunter2@cache.example:6380/0' }, /\{ redis: url \}/],
      [{ storage: { json: 'redis://:hunter2@127.0.0.1:6379' } }, /\{ redis: url \}/],
      [{ storage: { json: 'file:///var/lib/progress' } }, /folder's path/],
      [{ storagePath: 'file:///var/lib/progress' }, /folder's path/],
    ];
    for (const [options, hint] of cases) {
      const made_ = createProgressTracker({ ...base(), ...options } as never);
      const err: unknown = await made_.then(
        async (t) => {
          await t.close();
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(isProgressError(err, 'INVALID_ARGUMENT'), `${JSON.stringify(options)}: ${String(err)}`).toBe(true);
      expect((err as Error).message).toMatch(hint);
      expect((err as Error).message).not.toContain('hunter2');
    }
    for (const dir of made) expect(existsSync(dir), dir).toBe(false);
  });

  it('keeps the password of a redis:// URL given as storage itself out of the error, and says which form it needs', () => {
    let caught: unknown;
    try {
      resolveOptions({ ...base(), storage: 'redis://:hunter2@127.0.0.1:6379' as never });
    } catch (err) {
      caught = err;
    }
    expect(isProgressError(caught, 'INVALID_ARGUMENT')).toBe(true);
    expect((caught as Error).message).not.toContain('hunter2');
    expect((caught as Error).message).toContain('redis://:***@127.0.0.1:6379');
    expect((caught as Error).message).toMatch(/write \{ redis: url \}/);
  });

  it('says which form a bare folder path given as storage itself needs, as it does for a bare URL', () => {
    // `storage: './progress-data'` reads naturally (the README's comment beside it says storagePath);
    // the error listed the forms but did not say which one the path was meant for.
    for (const dir of ['./progress-data', '/var/lib/progress', 'data/progress', 'C:\\progress']) {
      let caught: unknown;
      try {
        resolveOptions({ ...base(), storage: dir as never });
      } catch (err) {
        caught = err;
      }
      expect(isProgressError(caught, 'INVALID_ARGUMENT'), dir).toBe(true);
      expect((caught as Error).message).toContain(`(write { json: ${JSON.stringify(dir)} }, or storagePath: ${JSON.stringify(dir)})`);
    }
    // A word that is no path gets no such hint (`'json'` is not a folder meant).
    for (const word of ['json', 'redis', 'Memory']) {
      let caught: unknown;
      try {
        resolveOptions({ ...base(), storage: word as never });
      } catch (err) {
        caught = err;
      }
      expect((caught as Error).message, word).not.toContain('write { json:');
    }
  });

  it('still takes folder paths that hold a colon but are not URLs', () => {
    for (const dir of ['./data', '/var/lib/progress', 'C:\\progress', 'C:/progress', 'C://progress', './a:b']) {
      expect(resolveOptions({ ...base(), storage: { json: dir } }).storage).toEqual({ json: dir });
      expect(resolveOptions({ ...base(), storagePath: dir }).storage).toEqual({ json: dir });
    }
  });
});

describe('a folder starting with "~", which only a shell expands', () => {
  // `storagePath: '~/progress-data'` from a config or .env file, or `progress demo --dir=~/progress-data`
  // (bash leaves a "~" after "=" as it is), made a folder named "~" in the working directory.
  const literal = resolve('~');
  const existedBefore = existsSync(literal);

  it('is refused (INVALID_ARGUMENT) as { json } or storagePath, saying how to name the home folder', async () => {
    for (const options of [{ storage: { json: '~/progress-data' } }, { storagePath: '~/progress-data' }, { storage_path: '~' }]) {
      const err: unknown = await createProgressTracker({ ...base(), ...options } as never).then(
        async (t) => {
          await t.close();
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(isProgressError(err, 'INVALID_ARGUMENT'), `${JSON.stringify(options)}: ${String(err)}`).toBe(true);
      expect((err as Error).message).toMatch(/starts with "~", which only a shell expands: .*os\.homedir\(\)/);
    }
    if (!existedBefore) expect(existsSync(literal)).toBe(false);
  });

  it('progress demo --dir=~/...: a usage error (exit 2) saying to write --dir ~/... with a space; ls of a quoted "~/..." says why it is not found', async () => {
    expect(await runCli('demo', '--dir=~/progress-data', '--speed', '1000')).toMatchObject({
      code: 2,
      out: '',
      err: 'progress: --dir "~/progress-data": the shell does not expand "~" after "--dir=" (nor inside quotes): write --dir ~/... with a space, or the full path; "./~/progress-data" for a folder named "~"\n',
    });
    expect(await runCli('ls', '~/progress-data')).toMatchObject({
      code: 3,
      err: `progress: no such folder: ${join(literal, 'progress-data')} (the shell does not expand "~" inside quotes: write ~/... unquoted, or the full path)\n`,
    });
    if (!existedBefore) expect(existsSync(literal)).toBe(false);
  });
});
