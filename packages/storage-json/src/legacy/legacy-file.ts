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
  let text: string;
  let mtime: Date;
  try {
    text = await readFile(path, 'utf8');
    mtime = (await stat(path)).mtime;
  } catch (err) {
    if (isCode(err, 'ENOENT')) return undefined;
    throw storeError('STORE_UNAVAILABLE', `upgrade "${upgradeId}": cannot read legacy file ${path}`, { upgradeId, file: path }, err);
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
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return idIn(parsePythonJson(text));
  } catch {
    return undefined;
  }
}
