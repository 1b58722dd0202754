import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { link, open, readFile, readlink, rename, unlink } from 'node:fs/promises';
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
  /** `/proc/sys/kernel/random/boot_id` of the writer's machine (Linux). */
  bootId?: string;
  /** The link target of the writer's `/proc/self/ns/pid`, e.g. `pid:[4026531836]` (Linux). */
  pidNs?: string;
  /** Field 22 of the writer's `/proc/<pid>/stat`: its start time in clock ticks after boot (Linux). */
  startTime?: number;
}

/** What this process can tell about itself, read once. */
interface Self {
  bootId: string | undefined;
  pidNs: string | undefined;
  startTime: number | undefined;
  /** `/proc` lists the pids of our own PID namespace (not so in a new namespace that kept its parent's `/proc` mount). */
  procIsOurs: boolean;
}

/** Tokens of the locks held in this process, by any store: tells our own live locks from a dead predecessor's with the same pid. */
const heldTokens = new Set<string>();

let self: Promise<Self> | undefined;

/** Boot id, PID namespace and start time of this process: none of them changes while it runs. Each is `undefined` where `/proc` does not have it (not Linux). */
function selfIdentity(): Promise<Self> {
  self ??= (async (): Promise<Self> => {
    const [bootId, pidNs, stat, procSelf] = await Promise.all([
      readFile('/proc/sys/kernel/random/boot_id', 'utf8').then((t) => t.trim() || undefined, () => undefined),
      readlink('/proc/self/ns/pid').catch(() => undefined),
      readFile('/proc/self/stat', 'utf8').catch(() => undefined),
      readlink('/proc/self').catch(() => undefined),
    ]);
    return { bootId, pidNs, startTime: stat === undefined ? undefined : parseStartTime(stat), procIsOurs: procSelf === String(process.pid) };
  })();
  return self;
}

/**
 * The start time (field 22, clock ticks after boot) in the text of a `/proc/<pid>/stat`. The command
 * name (field 2, in parentheses) may hold spaces and parentheses itself, so the fields are counted
 * from the last `)`.
 */
export function parseStartTime(stat: string): number | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  // After the `)`: field 3 (the state) first, so field 22 is the 20th.
  const field = stat.slice(close + 1).trim().split(/\s+/)[19];
  return field !== undefined && /^\d+$/.test(field) ? Number(field) : undefined;
}

/** The start time of a pid of our namespace, or `undefined` when it cannot be read. */
async function startTimeOf(pid: number): Promise<number | undefined> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat === undefined ? undefined : parseStartTime(stat);
}

async function newOwner(token: string): Promise<LockOwner> {
  const me = await selfIdentity();
  return {
    pid: process.pid,
    hostname: hostname(),
    token,
    createdAt: new Date().toISOString(),
    ...(me.bootId !== undefined ? { bootId: me.bootId } : {}),
    ...(me.pidNs !== undefined ? { pidNs: me.pidNs } : {}),
    ...(me.startTime !== undefined ? { startTime: me.startTime } : {}),
  };
}

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

/** Whether a lock's writer is provably gone; when it is not, `why` says what kept us from checking it (nothing when it was seen alive). */
type Verdict = { dead: true } | { dead: false; why?: string };

/**
 * Whether the process that wrote `owner` is provably gone. A pid means something only in its own
 * PID namespace on its own boot of its own machine: in another container with the same hostname
 * (often pid 1 there too), `kill(pid, 0)` would reach an unrelated process or none, and either answer
 * could hand a live writer's lock to a second writer. So a lock is judged only when it carries the
 * same hostname, boot id and PID namespace as ours, and is then dead when its pid is gone (ESRCH) or
 * now belongs to a process that started at another time (the pid was reused). A lock written
 * without these fields (an older or foreign writer) is never judged where we have them. Without
 * `/proc` (not Linux) neither side has them, and hostname + pid is all there is to go by.
 */
async function judge(owner: LockOwner | null): Promise<Verdict> {
  // Written by link() of a complete file, a lock is never seen half-written while its owner lives;
  // an empty or garbled one is what a power loss leaves.
  if (owner === null) return { dead: true };
  if (owner.hostname !== hostname()) return { dead: false, why: 'it was written on another host' };
  const me = await selfIdentity();
  if (owner.bootId !== me.bootId) {
    return { dead: false, why: owner.bootId === undefined ? 'the lock has no boot id (an older or foreign writer)' : 'it was written on another boot, or on another machine with the same hostname' };
  }
  if (owner.pidNs !== me.pidNs) {
    return { dead: false, why: owner.pidNs === undefined ? 'the lock has no PID namespace (an older or foreign writer)' : 'its writer runs in another PID namespace (another container?)' };
  }
  if (owner.startTime === undefined && me.startTime !== undefined) return { dead: false, why: 'the lock has no process start time (an older or foreign writer)' };
  // Same pid in the same namespace and boot: this process, or an earlier one that had its pid.
  if (owner.pid === process.pid) return heldTokens.has(owner.token) ? { dead: false } : { dead: true };
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    return isCode(err, 'ESRCH') ? { dead: true } : { dead: false };
  }
  // The pid is taken. By the writer only if it started when the writer did; the start time is
  // only read where /proc shows our namespace's pids, and a pid we cannot read counts as alive.
  if (me.procIsOurs && owner.startTime !== undefined) {
    const started = await startTimeOf(owner.pid);
    if (started !== undefined && started !== owner.startTime) return { dead: true };
  }
  return { dead: false };
}

function conflict(upgradeId: string, path: string, owner: LockOwner | null, why?: string): Error {
  if (!owner) return storeError('CONFLICT', `upgrade "${upgradeId}" is held for writing by another writer`, { upgradeId, lock: path, owner });
  const who = `pid ${owner.pid} on host "${owner.hostname}" (since ${owner.createdAt})`;
  const unsure = why ? `, which cannot be checked from here: ${why}` : '';
  return storeError('CONFLICT', `upgrade "${upgradeId}" is held for writing by ${who}${unsure}; if that writer is really gone, delete ${path}`, { upgradeId, lock: path, owner });
}

/**
 * Takes the exclusive writer lock of an upgrade: a file holding pid, hostname, a random token and,
 * on Linux, the boot id, PID namespace and start time of this process, created whole (written to a
 * temp file opened with O_EXCL, then hard-linked into place, which fails when the lock exists). A
 * lock whose owner is provably dead (see {@link judge}) is taken over under a second O_EXCL file,
 * after checking again that it is still the same dead lock.
 *
 * @returns the token of the lock, for {@link releaseLock}.
 * @throws ProgressError `CONFLICT` when a live owner, or one that cannot be checked from here, holds it.
 */
export async function takeLock(path: string, upgradeId: string, logger: Logger): Promise<string> {
  const owner = await newOwner(randomUUID());
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
      const verdict = await judge(current);
      if (!verdict.dead) throw conflict(upgradeId, path, current, verdict.why);
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
    await writeWhole(mutexTmp, await newOwner(token));
    try {
      await link(mutexTmp, mutex);
      held = true;
    } catch (err) {
      if (!isCode(err, 'EEXIST')) throw err;
      const other = await readOwner(mutex);
      if (other === undefined) return false;
      const verdict = await judge(other);
      if (!verdict.dead) throw conflict(upgradeId, mutex, other, verdict.why);
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
  return (await judge(owner)).dead ? false : owner;
}
