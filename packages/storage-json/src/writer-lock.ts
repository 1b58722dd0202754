import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { link, open, readFile, rename, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { Logger } from '@progress/core';
import { storeError } from './errors.js';
import { isCode } from './fs-utils.js';
import { FILE_MODE } from './layout.js';

/** What a lock file holds. */
export interface LockOwner {
  pid: number;
  hostname: string;
  token: string;
  createdAt: string;
}

/** Tokens of the locks held in this process, by any store: tells our own live locks from a dead predecessor's with the same pid. */
const heldTokens = new Set<string>();

async function readOwner(path: string): Promise<LockOwner | null | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isCode(err, 'ENOENT')) return undefined;
    throw err;
  }
  try {
    const owner = JSON.parse(text) as Partial<LockOwner>;
    if (typeof owner.pid === 'number' && typeof owner.hostname === 'string' && typeof owner.token === 'string') return owner as LockOwner;
  } catch {
    // fall through: unreadable
  }
  return null;
}

/** True when the process that wrote `owner` is known to be gone. */
function isDead(owner: LockOwner | null): boolean {
  // Written by link() of a complete file, a lock is never seen half-written while its owner lives;
  // an empty or garbled one is what a power loss leaves.
  if (owner === null) return true;
  if (owner.hostname !== hostname()) return false;
  if (owner.pid === process.pid) return !heldTokens.has(owner.token);
  try {
    process.kill(owner.pid, 0);
    return false;
  } catch (err) {
    return isCode(err, 'ESRCH');
  }
}

function conflict(upgradeId: string, path: string, owner: LockOwner | null): Error {
  const who = owner ? `pid ${owner.pid} on host "${owner.hostname}" (since ${owner.createdAt})` : 'another writer';
  const hint = owner && owner.hostname !== hostname() ? `; if that host is gone for good, remove ${path}` : '';
  return storeError('CONFLICT', `upgrade "${upgradeId}" is held for writing by ${who}${hint}`, { upgradeId, lock: path, owner });
}

/**
 * Takes the exclusive writer lock of an upgrade: a file holding pid, hostname and a random token,
 * created whole (written to a temp file opened with O_EXCL, then hard-linked into place, which fails
 * when the lock exists). A lock whose owner is dead (same host, `kill(pid, 0)` says ESRCH) is taken
 * over under a second O_EXCL file, after checking again that it is still the same dead lock.
 *
 * @returns the token of the lock, for {@link releaseLock}.
 * @throws ProgressError `CONFLICT` when a live owner (or one on another host) holds it.
 */
export async function takeLock(path: string, upgradeId: string, logger: Logger): Promise<string> {
  const owner: LockOwner = { pid: process.pid, hostname: hostname(), token: randomUUID(), createdAt: new Date().toISOString() };
  const tmp = `${path}.${owner.token}.tmp`;
  await writeWhole(tmp, owner);
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await link(tmp, path);
        heldTokens.add(owner.token);
        return owner.token;
      } catch (err) {
        if (!isCode(err, 'EEXIST')) throw err;
      }
      const current = await readOwner(path);
      if (current === undefined) continue; // released meanwhile: try again
      if (!isDead(current)) throw conflict(upgradeId, path, current);
      if (await takeOver(path, current, tmp, upgradeId)) {
        heldTokens.add(owner.token);
        logger.warn({ upgradeId, lock: path, previousOwner: current }, 'took over the writer lock of a dead process');
        return owner.token;
      }
    }
    throw conflict(upgradeId, path, null);
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

async function takeOver(path: string, stale: LockOwner | null, tmp: string, upgradeId: string): Promise<boolean> {
  const mutex = `${path}.takeover`;
  // The mutex is made whole before it appears (temp file, then link), and its token is known as ours
  // while we hold it: a racing store, here or in another process, sees a live owner, never an empty
  // or foreign-looking file that it would remove as a dead one's.
  const token = randomUUID();
  const mutexTmp = `${mutex}.${token}.tmp`;
  heldTokens.add(token);
  let held = false;
  try {
    await writeWhole(mutexTmp, { pid: process.pid, hostname: hostname(), token, createdAt: new Date().toISOString() });
    try {
      await link(mutexTmp, mutex);
      held = true;
    } catch (err) {
      if (!isCode(err, 'EEXIST')) throw err;
      const other = await readOwner(mutex);
      if (other === undefined) return false;
      if (!isDead(other)) throw conflict(upgradeId, path, other);
      // Left by a takeover that died: remove it only if it is still that one.
      const again = await readOwner(mutex);
      if (again === null ? other === null : again !== undefined && other !== null && again.token === other.token) await unlink(mutex).catch(() => {});
      return false;
    }
    const again = await readOwner(path);
    const same = again === undefined ? false : again === null ? stale === null : stale !== null && again.token === stale.token;
    if (!same) return false;
    await rename(tmp, path);
    return true;
  } finally {
    await unlink(mutexTmp).catch(() => {});
    if (held) await unlink(mutex).catch(() => {});
    heldTokens.delete(token);
  }
}

/** Writes an owner record to a new file (O_EXCL, 0600). */
async function writeWhole(path: string, owner: LockOwner): Promise<void> {
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, FILE_MODE);
  try {
    await handle.writeFile(`${JSON.stringify(owner)}\n`);
  } finally {
    await handle.close();
  }
}

/**
 * Gives the lock back, unless someone else holds it now (then it is left alone and logged). The
 * token stays held until the file is gone: forgotten earlier, another store of this process could
 * take the file for a dead process's (same pid, unknown token) and take it over, and this release
 * would then unlink that store's lock.
 */
export async function releaseLock(path: string, token: string, upgradeId: string, logger: Logger): Promise<void> {
  try {
    const owner = await readOwner(path);
    if (owner && owner.token === token) {
      await unlink(path).catch((err: unknown) => {
        if (!isCode(err, 'ENOENT')) throw err;
      });
    } else if (owner !== undefined) {
      logger.warn({ upgradeId, lock: path, owner }, 'writer lock is no longer ours; left in place');
    }
  } finally {
    heldTokens.delete(token);
  }
}

/** Whether the lock is held by a live owner other than `token` (for delete and retention). */
export async function lockedByOther(path: string, token: string | undefined): Promise<LockOwner | null | false> {
  const owner = await readOwner(path);
  if (owner === undefined) return false;
  if (owner !== null && owner.token === token) return false;
  return isDead(owner) ? false : owner;
}
