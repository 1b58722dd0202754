import { readdir } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { isProgressError, type ProgressError } from '@progress/core';
import { storeError } from './errors.js';

/**
 * Two ids that differ in case alone. Ids are ASCII (`[A-Za-z0-9_.:-]`), so this is how a
 * case-insensitive file system (macOS APFS, Windows NTFS by default) compares them as names: both get
 * one folder (`upgrades/UPG-1` is `upgrades/upg-1`) and one legacy file.
 */
export const differOnlyInCase = (a: string, b: string): boolean => a !== b && a.toLowerCase() === b.toLowerCase();

/**
 * Whether `path` exists under another case of its name: its folder does not list that exact name
 * (a case-insensitive file system found it for us). Reads the whole folder: only for an id already
 * seen to clash.
 */
export async function foundUnderOtherCase(path: string): Promise<boolean> {
  const names = await readdir(dirname(path)).catch(() => undefined);
  return names !== undefined && !names.includes(basename(path));
}

/**
 * `CONFLICT` for upgrade `upgradeId` whose files (`path`, its folder or legacy file) hold upgrade
 * `other`, an id that differs from it only in case. Not `DATA_CORRUPTED`: nothing is damaged, the two
 * ids share their files, and only an id that differs in more than case avoids that.
 */
export async function caseConflict(upgradeId: string, other: string, path: string): Promise<ProgressError> {
  const why = (await foundUnderOtherCase(path))
    ? 'which this file system does not tell apart (it ignores case, as macOS and Windows do by default), so both ids name these files'
    : 'though its name on disk is this id (renamed by hand?)';
  return storeError('CONFLICT', `upgrade "${upgradeId}": ${path} holds upgrade "${other}": the two ids differ only in case, ${why}; use ids that differ in more than case`, {
    upgradeId,
    caseOf: other,
    file: path,
  });
}

/** The error of {@link caseConflict}. */
export const isCaseConflict = (err: unknown): boolean => isProgressError(err, 'CONFLICT') && typeof err.context.caseOf === 'string';
