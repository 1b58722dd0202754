import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DIR_MODE, FILE_MODE } from './layout.js';

/** fsyncs a folder, so that a file created, renamed or removed in it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | (constants.O_DIRECTORY ?? 0));
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fdatasyncs a file, when it exists: what any process wrote to it is then durable. */
export async function datasyncFile(path: string): Promise<void> {
  let handle;
  try {
    handle = await open(path, 'r+');
  } catch (err) {
    if (isCode(err, 'ENOENT')) return;
    throw err;
  }
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/** True when `path` exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (isCode(err, 'ENOENT')) return false;
    throw err;
  }
}

/** `err.code === code` for a Node system error. */
export const isCode = (err: unknown, code: string): boolean => (err as NodeJS.ErrnoException | undefined)?.code === code;

/** {@link isCode} of the error or of its `cause` (a file system error this store wrapped in a `ProgressError`). */
export const isCodeOrCause = (err: unknown, code: string): boolean => isCode(err, code) || isCode((err as { cause?: unknown } | undefined)?.cause, code);

/**
 * Creates `dir` (and missing parents) with mode 0700; with `sync`, fsyncs the parent of every folder
 * it created so the new entries are durable. Returns true when it created `dir`.
 */
export async function ensureDir(dir: string, sync: boolean): Promise<boolean> {
  let first: string | undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      first = await mkdir(dir, { recursive: true, mode: DIR_MODE });
      break;
    } catch (err) {
      // A recursive mkdir that found the folder there (EEXIST), then lost it before its check that it
      // is a folder (another process's delete moved the upgrade's folder away in between), fails with
      // ENOENT: the folder is made again, as one that was never there. A few tries only: ENOENT that
      // stays (a dangling link on the path) is the caller's error.
      if (!isCode(err, 'ENOENT') || attempt >= 5) throw err;
    }
  }
  if (first === undefined) return false;
  if (sync) {
    let d = dir;
    const dirs: string[] = [];
    while (d.length >= first.length) {
      dirs.push(dirname(d));
      if (d === first) break;
      d = dirname(d);
    }
    for (const p of dirs) await fsyncDir(p);
  }
  return true;
}

/**
 * Writes `data` to `path` atomically: a temp file in the same folder (mode 0600), fsync, rename over
 * `path`, fsync of the folder. A reader sees the old file or the new one, never a mix.
 */
export async function writeFileAtomic(path: string, data: string | Buffer, sync: boolean): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, FILE_MODE);
  try {
    try {
      await handle.writeFile(data);
      if (sync) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  if (sync) await fsyncDir(dirname(path));
}

/** `O_NOFOLLOW` where the platform has it: the store writes its own files, never the file a symbolic link in their place points to. */
export const NOFOLLOW = constants.O_NOFOLLOW ?? 0;

/** True when `path` is a symbolic link (false when it is missing). */
export async function isSymlink(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isSymbolicLink();
  } catch (err) {
    if (isCode(err, 'ENOENT')) return false;
    throw err;
  }
}

/** Cuts the file at `path` to `length` bytes; a symbolic link there fails (ELOOP) instead of cutting the file it points to. */
export async function truncateNoFollow(path: string, length: number): Promise<void> {
  const handle = await open(path, constants.O_WRONLY | NOFOLLOW);
  try {
    await handle.truncate(length);
  } finally {
    await handle.close();
  }
}
