import { isProgressError, ProgressError, type ErrorCode, type ProgressErrorContext } from '@progress/core';

/** The prefix of every message of this package. */
export const PKG = '[@progress/storage-json]';

/**
 * A {@link ProgressError} whose message starts with the package name. A file system error as its
 * cause is said at the end of the message too (`(EACCES: permission denied, mkdir '/data/upgrades')`):
 * the message is often all a reader sees (the `progress` command prints it alone, a log its text),
 * and "cannot take the writer lock" alone read as a lock another writer holds.
 */
export function storeError(code: ErrorCode, message: string, context: ProgressErrorContext = {}, cause?: unknown): ProgressError {
  const reason = systemReason(cause);
  const text = reason === undefined || message.includes(reason) ? message : `${message} (${reason})`;
  return new ProgressError(code, `${PKG} ${text}`, { context, ...(cause === undefined ? {} : { cause }) });
}

/** The message of a Node system error (one with a string `code`: EACCES, EIO, ...), on one line; undefined for anything else. */
function systemReason(cause: unknown): string | undefined {
  if (!(cause instanceof Error) || isProgressError(cause) || typeof (cause as NodeJS.ErrnoException).code !== 'string') return undefined;
  return cause.message.trim().replace(/\s*\n\s*/g, ' ') || undefined;
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
