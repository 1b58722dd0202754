import { ProgressError, type ErrorCode, type ProgressErrorContext } from '@progress/core';

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
