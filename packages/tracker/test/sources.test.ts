import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProgressError } from '@progress/core';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError } from '../src/cli/errors.js';
import { parseSource, storeError, wsPathOfPage } from '../src/cli/sources.js';
import { cleanupTempDirs, tempDir } from './helpers.js';

afterAll(cleanupTempDirs);

describe('wsPathOfPage', () => {
  it('unescapes the character references of the meta tag, by number, in hex and by name', () => {
    expect(wsPathOfPage(`<meta name="progress-ws-path" content="/a&#47;b&#x2F;c&amp;d&lt;&gt;&quot;&apos;">`)).toBe(`/a/b/c&d<>"'`);
    expect(wsPathOfPage(`<meta content='/x' name='progress-ws-path'>`)).toBe('/x');
    expect(wsPathOfPage('<meta name="progress-ws-path" content="ws://elsewhere/ws">')).toBeUndefined();
    expect(wsPathOfPage('<html></html>')).toBeUndefined();
  });
});

describe('storeError: the exit code of a store error', () => {
  it('is 3 for NOT_FOUND, 2 for INVALID_ARGUMENT, 4 for anything else, and a CliError keeps its own', () => {
    const exitOf = (err: unknown) => storeError(err).exitCode;
    expect(exitOf(new ProgressError('NOT_FOUND', 'gone'))).toBe(3);
    expect(exitOf(new ProgressError('INVALID_ARGUMENT', 'bad id'))).toBe(2);
    expect(exitOf(new ProgressError('STORE_UNAVAILABLE', 'down'))).toBe(4);
    expect(exitOf(new Error('socket closed'))).toBe(4);
    const own = new CliError('mine', 130);
    expect(storeError(own)).toBe(own);
  });
});

describe('parseSource', () => {
  it('refuses a file given as the folder, with exit code 2', async () => {
    const file = join(tempDir('sources'), 'upgrade.json');
    writeFileSync(file, '{}');
    await expect(parseSource(file, false)).rejects.toMatchObject({ exitCode: 2, message: `not a folder: ${file}` });
  });
});
