// Found on 2026-12-01: the bytes of a legacy file were decoded leniently. A file saved with a UTF-8
// byte order mark (a Windows editor, PowerShell's Out-File) was refused as "not valid JSON" although
// its JSON is sound, and bytes that are not UTF-8 (a file edited in a Latin-1 editor: "café" as
// 63 61 66 e9) loaded with U+FFFD in their place, imported for good at the first append.
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressTracker } from '@progress/core';
import { JsonFileStore } from '../src/index.js';
import { removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

async function folderWith(bytes: Buffer): Promise<{ dir: string; file: string }> {
  const dir = await tempDir('legacy-encoding');
  await mkdir(join(dir, 'progress'));
  const file = join(dir, 'progress', 'upgrade_u1.json');
  await writeFile(file, bytes);
  return { dir, file };
}

// As json.dump(..., indent=2, default=str) wrote it (ensure_ascii: "\u00e9"), with CRLF line ends.
const doc = '{\r\n  "upgrade_id": "u1",\r\n  "plan_id": "p",\r\n  "cluster_name": "caf\\u00e9 \\ud83d\\ude80",\r\n  "status": "in_progress",\r\n  "started_at": "2025-10-20 05:25:01.056236+00:00"\r\n}\r\n';

describe('the bytes of a legacy file', () => {
  it('loads a file that starts with a UTF-8 byte order mark as the same file without it', async () => {
    const { dir } = await folderWith(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(doc)]));
    const store = new JsonFileStore({ directory: dir });
    try {
      expect(await store.load('u1')).toMatchObject({ clusterName: 'café 🚀', status: 'in_progress', startedAt: '2025-10-20T05:25:01.056Z' });
      expect((await store.list()).map((r) => r.upgradeId)).toEqual(['u1']);
    } finally {
      await store.close();
    }
  });

  it('refuses bytes that are not UTF-8 with DATA_CORRUPTED naming the file and the byte, instead of loading U+FFFD in their place', async () => {
    const { dir, file } = await folderWith(Buffer.from(doc.replace('caf\\u00e9', 'caf\xe9'), 'latin1'));
    const store = new JsonFileStore({ directory: dir });
    try {
      const err = await store.load('u1').catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'DATA_CORRUPTED', context: { upgradeId: 'u1', file }, message: expect.stringContaining(`legacy file ${file} is not valid UTF-8 (byte 67)`) });
      const open = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store }).catch((e: unknown) => e);
      expect(open).toMatchObject({ code: 'DATA_CORRUPTED' });
      // Nothing was imported.
      expect(await readdir(join(dir, 'upgrades', 'u1')).catch(() => [])).not.toContain('events.jsonl');
    } finally {
      await store.close();
    }
  });

  it('names the first byte that is not UTF-8: an overlong lead, a surrogate, a code point past U+10FFFF, a sequence cut short', async () => {
    // The decoder refuses each of these; the offset in the message is this store's own reading of the bytes.
    const at = doc.indexOf('caf');
    /** The document with `bytes` put in before `caf`. */
    const withBytes = (...bytes: number[]): Buffer => Buffer.concat([Buffer.from(doc.slice(0, at)), Buffer.from(bytes), Buffer.from(doc.slice(at))]);
    const cases: Array<[string, Buffer, number]> = [
      ['overlong C0 80', withBytes(0xc0, 0x80), at],
      ['surrogate ED A0 80', withBytes(0xed, 0xa0, 0x80), at],
      ['a lead byte last', Buffer.concat([Buffer.from(doc), Buffer.from([0xc3])]), Buffer.byteLength(doc)],
      // Each lead byte's own range for the byte after it: E0 and F0 refuse the overlong forms, F4 what lies past U+10FFFF.
      ['overlong E0 80 80', withBytes(0xe0, 0x80, 0x80), at],
      ['overlong F0 80 80 80', withBytes(0xf0, 0x80, 0x80, 0x80), at],
      ['past U+10FFFF F4 90 80 80', withBytes(0xf4, 0x90, 0x80, 0x80), at],
      // A lead byte whose third byte is not a continuation byte.
      ['E2 82 followed by ASCII', withBytes(0xe2, 0x82), at],
    ];
    for (const [name, bytes, byte] of cases) {
      const { dir, file } = await folderWith(bytes);
      const store = new JsonFileStore({ directory: dir });
      try {
        const err = await store.load('u1').catch((e: unknown) => e);
        expect(err, name).toMatchObject({ code: 'DATA_CORRUPTED', context: { byte }, message: expect.stringContaining(`legacy file ${file} is not valid UTF-8 (byte ${byte})`) });
      } finally {
        await store.close();
      }
    }
  });

  it('answers STORE_UNAVAILABLE naming the file for one that cannot be read, never "no such upgrade"', async () => {
    // A folder where the file belongs reads as EISDIR, as a file without read permission gives EACCES.
    const dir = await tempDir('legacy-encoding');
    const file = join(dir, 'progress', 'upgrade_u1.json');
    await mkdir(file, { recursive: true });
    const store = new JsonFileStore({ directory: dir });
    try {
      expect(await store.load('u1').catch((e: unknown) => e)).toMatchObject({ code: 'STORE_UNAVAILABLE', message: expect.stringContaining(`cannot read legacy file ${file}`) });
    } finally {
      await store.close();
    }
  });
});
