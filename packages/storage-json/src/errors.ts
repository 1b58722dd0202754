import { isProgressError, ProgressError, type ErrorCode, type ProgressErrorContext } from '@progress/core';

/** The prefix of every message of this package. */
export const PKG = '[@progress/storage-json]';

/** A {@link ProgressError} whose message starts with the package name. */
export function storeError(code: ErrorCode, message: string, context: ProgressErrorContext = {}, cause?: unknown): ProgressError {
  return new ProgressError(code, `${PKG} ${message}`, { context, ...(cause === undefined ? {} : { cause }) });
}

/** `DATA_CORRUPTED` naming the upgrade, the file and the line. */
export function corruptedLine(upgradeId: string, file: string, line: number, why: string, cause?: unknown): ProgressError {
  return storeError(
    'DATA_CORRUPTED',
    `upgrade "${upgradeId}": line ${line} of ${file} is damaged (${why}); the file is left as it is for inspection`,
    { upgradeId, file, line },
    cause,
  );
}

/**
 * `err` as the store's error: a `ProgressError` as it is; anything else (a read that failed after
 * the open: EIO from a failing disk, EISDIR) as `STORE_UNAVAILABLE` naming the file, with the cause.
 */
export function unreadable(upgradeId: string, file: string, err: unknown): ProgressError {
  return isProgressError(err) ? err : storeError('STORE_UNAVAILABLE', `upgrade "${upgradeId}": cannot read ${file}`, { upgradeId, file }, err);
}
