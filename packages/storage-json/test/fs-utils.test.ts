import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressError } from '@progress/core';
import { datasyncFile, ensureDir, exists, isCodeOrCause, isSymlink, writeFileAtomic } from '../src/fs-utils.js';
import { removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

describe('the file helpers', () => {
  it('take a missing path as missing, not as an error', async () => {
    const missing = join(await tempDir('fs-utils'), 'missing');
    await expect(datasyncFile(missing)).resolves.toBeUndefined();
    expect([await exists(missing), await isSymlink(missing)]).toEqual([false, false]);
  });

  it('tell a file system error by its code, also wrapped in a ProgressError as its cause', () => {
    const enoent = Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    expect(isCodeOrCause(enoent, 'ENOENT')).toBe(true);
    expect(isCodeOrCause(new ProgressError('STORE_UNAVAILABLE', 'x', { cause: enoent }), 'ENOENT')).toBe(true);
    expect(isCodeOrCause(new ProgressError('STORE_UNAVAILABLE', 'x', { cause: enoent }), 'EACCES')).toBe(false);
  });

  it('create folders 0700 and files 0600, and say whether the folder was new', async () => {
    const dir = join(await tempDir('fs-utils'), 'a', 'b');
    expect(await ensureDir(dir, true)).toBe(true);
    expect(await ensureDir(dir, true)).toBe(false);
    await writeFileAtomic(join(dir, 'f.json'), '{}', true);
    expect([(await stat(dir)).mode & 0o777, (await stat(join(dir, 'f.json'))).mode & 0o777]).toEqual([0o700, 0o600]);
  });

  it('leave no temp file behind when the atomic write fails', async () => {
    const dir = await tempDir('fs-utils');
    // A folder in the file's place: the rename over it fails.
    await mkdir(join(dir, 'taken'));
    await writeFile(join(dir, 'taken', 'x'), '');
    await expect(writeFileAtomic(join(dir, 'taken'), 'data', false)).rejects.toThrow();
    expect(await readdir(dir)).toEqual(['taken']);
  });
});
