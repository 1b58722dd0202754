import { readFile, stat } from 'node:fs/promises';
import type { ProgressEvent } from '@progress/core';
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
  return importLegacyUpgrade(doc, upgradeId, path, mtime.toISOString());
}
