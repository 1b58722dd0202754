import { readFile, stat } from 'node:fs/promises';
import type { ProgressEvent } from '@progress/core';
import { caseConflict, differOnlyInCase, foundUnderOtherCase } from '../case-collision.js';
import { storeError } from '../errors.js';
import { isCode } from '../fs-utils.js';
import { importLegacyUpgrade } from './legacy-import.js';
import { parsePythonJson } from './python-json.js';

/**
 * Reads a file of the old Python module and returns the events it imports as, or `undefined` when
 * there is no such file. The file is only ever read.
 *
 * @throws ProgressError `DATA_CORRUPTED` naming the file when it is not valid JSON or does not fit.
 */
export async function readLegacyEvents(path: string, upgradeId: string): Promise<ProgressEvent[] | undefined> {
  let bytes: Buffer;
  let mtime: Date;
  try {
    bytes = await readFile(path);
    mtime = (await stat(path)).mtime;
  } catch (err) {
    if (isCode(err, 'ENOENT')) return undefined;
    throw storeError('STORE_UNAVAILABLE', `upgrade "${upgradeId}": cannot read legacy file ${path}`, { upgradeId, file: path }, err);
  }
  const text = decodeUtf8(bytes);
  if (text === undefined) {
    const at = firstBadUtf8(bytes);
    throw storeError('DATA_CORRUPTED', `upgrade "${upgradeId}": legacy file ${path} is not valid UTF-8 (byte ${at}); it is left as it is`, { upgradeId, file: path, byte: at });
  }
  let doc: unknown;
  try {
    doc = parsePythonJson(text);
  } catch (err) {
    throw storeError('DATA_CORRUPTED', `upgrade "${upgradeId}": legacy file ${path} is not valid JSON; it is left as it is`, { upgradeId, file: path }, err);
  }
  // Another id's file, that differs only in case, found under that name by a file system that ignores
  // case: imported as this id, it would be one upgrade under two ids. (The id is the file name's, so a
  // file renamed by hand to another case is this id's.)
  const inFile = idIn(doc);
  if (inFile !== undefined && differOnlyInCase(inFile, upgradeId) && (await foundUnderOtherCase(path))) throw await caseConflict(upgradeId, inFile, path);
  return importLegacyUpgrade(doc, upgradeId, path, mtime.toISOString());
}

const idIn = (doc: unknown): string | undefined => {
  const id = typeof doc === 'object' && doc !== null ? (doc as { upgrade_id?: unknown }).upgrade_id : undefined;
  return typeof id === 'string' ? id : undefined;
};

/** The `upgrade_id` a legacy file holds, or `undefined` (no such file, not readable, not JSON, none in it). */
export async function legacyIdInFile(path: string): Promise<string | undefined> {
  const bytes = await readFile(path).catch(() => undefined);
  const text = bytes === undefined ? undefined : decodeUtf8(bytes);
  if (text === undefined) return undefined;
  try {
    return idIn(parsePythonJson(text));
  } catch {
    return undefined;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The file's text, without a leading byte order mark (a Windows editor saves one; the old module
 * wrote none, and JSON.parse refuses it); `undefined` when its bytes are not UTF-8, which a lenient
 * decoding would load as U+FFFD in their place (a file edited in a Latin-1 editor).
 */
function decodeUtf8(bytes: Buffer): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** The offset of the first byte that does not belong to a well-formed UTF-8 sequence, for messages. */
function firstBadUtf8(bytes: Buffer): number {
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    const more = b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : 0;
    if (more === 0 || i + more >= bytes.length) return i;
    // The second byte's range excludes overlong forms, surrogates and code points past U+10FFFF.
    const lo = b === 0xe0 ? 0xa0 : b === 0xf0 ? 0x90 : 0x80;
    const hi = b === 0xed ? 0x9f : b === 0xf4 ? 0x8f : 0xbf;
    if (bytes[i + 1]! < lo || bytes[i + 1]! > hi) return i;
    for (let k = 2; k <= more; k++) if ((bytes[i + k]! & 0xc0) !== 0x80) return i;
    i += more + 1;
  }
  return bytes.length;
}
