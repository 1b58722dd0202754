import { randomUUID } from 'node:crypto';
import { constants, fstatSync } from 'node:fs';
import { link, open, readFile, readlink, rename, truncate, unlink, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { MAX_TIMER_MS, type Logger } from '@progress/core';
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
  /** The writer's lease (ms): it stamps the file's mtime every third of it while it holds the lock. */
  leaseMs?: number;
}

/** A lock file as read: its owner (`null` when empty or garbled) and the mtime its holder last stamped. */
interface LockFile {
  owner: LockOwner | null;
  mtimeMs: number;
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

/** The state (field 3: `R`, `S`, `Z`...) in the text of a `/proc/<pid>/stat`, counted from the last `)` as {@link parseStartTime} does. */
export function parseState(stat: string): string | undefined {
  const close = stat.lastIndexOf(')');
  return close < 0 ? undefined : stat.slice(close + 1).trim().split(/\s+/)[0];
}

/** What `/proc/<pid>/stat` tells of a pid of our namespace (its state and start time), or `undefined` when it cannot be read. */
async function procStat(pid: number): Promise<{ state: string | undefined; startTime: number | undefined } | undefined> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat === undefined ? undefined : { state: parseState(stat), startTime: parseStartTime(stat) };
}

/**
 * Whether a pid in state `Z` is a process that has exited whole. `Z` alone does not say so: a
 * process whose main thread called pthread_exit() shows `Z` for its pid while its other threads run
 * on; its `Threads:` count in `/proc/<pid>/status` is then above 1. A count that cannot be read
 * counts as alive.
 */
async function exitedWhole(pid: number): Promise<boolean> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  return status !== undefined && /^Threads:\s*1\s*$/m.test(status);
}

async function newOwner(token: string, leaseMs: number): Promise<LockOwner> {
  const me = await selfIdentity();
  return {
    pid: process.pid,
    hostname: hostname(),
    token,
    createdAt: new Date().toISOString(),
    ...(me.bootId !== undefined ? { bootId: me.bootId } : {}),
    ...(me.pidNs !== undefined ? { pidNs: me.pidNs } : {}),
    ...(me.startTime !== undefined ? { startTime: me.startTime } : {}),
    leaseMs,
  };
}

function parseOwner(text: string): LockOwner | null {
  try {
    const owner = JSON.parse(text) as Partial<LockOwner>;
    if (typeof owner.pid === 'number' && typeof owner.hostname === 'string' && typeof owner.token === 'string') return owner as LockOwner;
  } catch {
    // fall through: unreadable
  }
  return null;
}

/** Owner and mtime of a lock file, both from one open file: read by path one after the other, they could come from two locks. */
async function readLock(path: string): Promise<LockFile | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    if (isCode(err, 'ENOENT')) return undefined;
    throw err;
  }
  try {
    const text = await handle.readFile('utf8');
    const { mtimeMs } = await handle.stat();
    return { owner: parseOwner(text), mtimeMs };
  } finally {
    await handle.close();
  }
}

/** Same lock file: the same token, or both empty or garbled. */
const sameLock = (a: LockFile | undefined, b: LockFile | undefined): boolean =>
  a !== undefined && b !== undefined && (a.owner === null ? b.owner === null : b.owner !== null && a.owner.token === b.owner.token);

/** What a stamp is rounded up to (ms): the mtime of a live holder's lock can stay the same that much longer than its stamps' spacing. */
const STAMP_STEP_MS = 1000;

/**
 * The mtime a holder stamps on its lock: now, rounded up to a whole second. Some filesystems keep
 * mtimes to the second and cut the rest off, which would make a lock just stamped look up to a second
 * older to a taker; rounded up, it can only look younger than it is (its lease runs up to a second longer).
 */
function stampNow(): Date {
  return new Date(Math.ceil(Date.now() / STAMP_STEP_MS) * STAMP_STEP_MS);
}

/** Whether a lock's writer is provably gone (`reason` says how we know); when it is not, `why` says what kept us from checking it (nothing when it was seen alive). */
type Verdict = { dead: true; reason: string } | { dead: false; why?: string };

/**
 * Whether the process that wrote a lock is provably gone. A pid means something only in its own PID
 * namespace on its own boot of its own machine: in another container with the same hostname (often
 * pid 1 there too), `kill(pid, 0)` would reach an unrelated process or none, and either answer could
 * hand a live writer's lock to a second writer. So:
 *
 * - another hostname: never judged (hostnames identify machines; theirs may be alive);
 * - the same hostname and another boot id: by its lease (below). That boot ended, taking its
 *   processes with it, unless another machine shares the folder under this hostname, whose live
 *   writer keeps stamping;
 * - the same boot and PID namespace: dead when its pid is gone (ESRCH), is a zombie (exited, not
 *   reaped), or now belongs to a process that started at another time (the pid was reused);
 * - the same boot but another PID namespace (a restarted container of the same pod, or a live
 *   sidecar: the pid cannot tell them apart), or a lock without the namespace or start time: by its
 *   lease. Its holder stamps the file's mtime every third of its lease, so the lock is dead once its
 *   mtime is older than the lease (the longer of the holder's and ours). One kernel, so one clock.
 *
 * A lock without a boot id (an older or foreign writer, which stamps no lease) is never judged where
 * we have one. Without `/proc` (not Linux) neither side has these fields, and hostname + pid is all
 * there is to go by.
 */
async function judge(file: LockFile, leaseMs: number): Promise<Verdict> {
  const { owner } = file;
  // Written by link() of a complete file, a lock is never seen half-written while its owner lives;
  // an empty or garbled one is what a power loss leaves.
  if (owner === null) return { dead: true, reason: 'the lock file is empty or garbled (left by a power loss)' };
  if (owner.hostname !== hostname()) return { dead: false, why: 'it was written on another host' };
  const me = await selfIdentity();
  if (owner.bootId !== me.bootId) {
    // Another boot: this machine rebooted since (its writer is gone), or another machine shares the
    // folder under this hostname (its writer may live, and stamps its lease). The lease tells them
    // apart: a lock left before a reboot has not been stamped since, and a boot takes longer than
    // a lease more often than not; a live writer elsewhere keeps stamping.
    if (owner.bootId !== undefined && me.bootId !== undefined) return byLease(file, owner, leaseMs, 'it has another boot id (this machine rebooted since, or another machine has this hostname)');
    return { dead: false, why: owner.bootId === undefined ? 'the lock has no boot id (an older or foreign writer)' : 'it has a boot id, and this process cannot read its own' };
  }
  let unsure: string | undefined;
  if (owner.pidNs !== me.pidNs) unsure = owner.pidNs === undefined ? 'the lock has no PID namespace' : 'its writer runs in another PID namespace (another container?)';
  else if (owner.startTime === undefined && me.startTime !== undefined) unsure = 'the lock has no process start time';
  else if (owner.pidNs === undefined && me.bootId !== undefined) unsure = 'neither the lock nor this process has a PID namespace to compare';
  // The lease needs a boot id on both sides: only then are both clocks the same one.
  if (unsure !== undefined) return me.bootId !== undefined ? byLease(file, owner, leaseMs, unsure) : { dead: false, why: unsure };
  // Same pid in the same namespace and boot: this process, or an earlier one that had its pid (a
  // container's pid 1 after a restart). A token this copy of the module holds is ours. Another one
  // may still be this very process: a worker thread, or another copy of this module, holds its own
  // tokens. The start time tells: another one is an earlier process; the same one is this process,
  // whose lock lives while its holder stamps it (a worker thread that ended, or a lock left by a
  // failed delete, goes stale with its lease).
  if (owner.pid === process.pid) {
    if (heldTokens.has(owner.token)) return { dead: false };
    if (owner.startTime !== undefined && me.startTime !== undefined) {
      if (owner.startTime !== me.startTime) return { dead: true, reason: 'it has our pid and was taken by a process that started at another time (an earlier process with our pid)' };
      return byLease(file, owner, leaseMs, 'it is held in this very process, by another thread or another copy of this module');
    }
    return { dead: true, reason: 'it has our pid and a token this process does not hold (an earlier process with our pid)' };
  }
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    return isCode(err, 'ESRCH') ? { dead: true, reason: 'its pid is gone' } : { dead: false };
  }
  // The pid is taken. /proc is read only where it shows our namespace's pids; a pid we cannot read
  // counts as alive.
  if (me.procIsOurs) {
    const proc = await procStat(owner.pid);
    // kill(pid, 0) succeeds for a zombie too: a process that exited (a SIGKILLed writer) and that its
    // parent has not reaped, which lasts for ever under a parent that never reaps (a container whose
    // pid 1 is a shell script or `sleep`, not an init). It holds its pid and start time, but runs no
    // more. (`X`, dying, is seen only for an instant.)
    if (proc?.state === 'X' || (proc?.state === 'Z' && (await exitedWhole(owner.pid)))) return { dead: true, reason: 'its process has exited (a zombie: its parent has not reaped it)' };
    // By the writer only if it started when the writer did.
    if (owner.startTime !== undefined && proc?.startTime !== undefined && proc.startTime !== owner.startTime) return { dead: true, reason: 'its pid now belongs to a process that started at another time' };
  }
  return { dead: false };
}

/** The lease a lock runs by: the holder keeps to its own, so a taker with a shorter one must not cut it short. */
const leaseOf = (owner: LockOwner | null, leaseMs: number): number =>
  Math.max(leaseMs, owner !== null && Number.isSafeInteger(owner.leaseMs) && owner.leaseMs! > 0 && owner.leaseMs! <= MAX_TIMER_MS ? owner.leaseMs! : 0);

/**
 * Each lock stamp judged by its lease in this process (by token): its mtime, and when (monotonic,
 * `performance.now()`) this process first saw that mtime on it. A stamp's age by the wall clock is
 * wrong once that clock was set back after the stamp (an NTP step, a VM's clock put right): it lies
 * in the future, and its dead holder's lock was refused for as long as the step, an hour for an
 * hour. A stamp seen unchanged for a whole lease by our monotonic clock is as good a proof: a live
 * holder stamps every third of its lease. Only the latest entries are kept.
 */
const seenStamps = new Map<string, { mtimeMs: number; since: number }>();
const SEEN_STAMPS_MAX = 1024;

/** How long (ms, monotonic) this process has seen this stamp of the lock unchanged. */
function seenUnchangedFor(owner: LockOwner, mtimeMs: number): number {
  const now = performance.now();
  const seen = seenStamps.get(owner.token);
  if (seen !== undefined && seen.mtimeMs === mtimeMs) return now - seen.since;
  seenStamps.delete(owner.token);
  seenStamps.set(owner.token, { mtimeMs, since: now });
  if (seenStamps.size > SEEN_STAMPS_MAX) seenStamps.delete(seenStamps.keys().next().value!);
  return 0;
}

/**
 * A lock of this boot whose pid cannot be checked: dead once its holder has not stamped it for a
 * whole lease, by the wall clock (the stamp's mtime), or by our monotonic clock since we first saw
 * that stamp (a wall clock set back since the stamp makes it look younger than it is).
 */
function byLease(file: LockFile, owner: LockOwner, leaseMs: number, unsure: string): Verdict {
  const lease = leaseOf(owner, leaseMs);
  const age = Math.round(Date.now() - file.mtimeMs);
  const seen = Math.round(seenUnchangedFor(owner, file.mtimeMs));
  if (age > lease) return { dead: true, reason: `its lease ran out: not refreshed for ${age} ms, more than its lease of ${lease} ms (${unsure})` };
  // Seen unchanged: one mtime stands for every stamp of one whole second, so a live holder's can stay
  // a second longer than the spacing of its stamps (up to half a lease when it is late): only a
  // lease and that second unchanged is a holder gone.
  if (seen > lease + STAMP_STEP_MS) return { dead: true, reason: `its lease ran out: seen unrefreshed for ${seen} ms, more than its lease of ${lease} ms and the second a stamp is rounded up by (${age < 0 ? `its stamp lies ${-age} ms ahead of this clock` : `its stamp looks only ${age} ms old by this clock`}, which was set back since) (${unsure})` };
  const ahead = age < -1000 ? ` (its stamp lies ${-age} ms ahead of this clock, which was set back since: counted from when this process first saw it)` : '';
  return { dead: false, why: `${unsure}; its lease was refreshed ${Math.max(0, age)} ms ago${ahead}, and it is taken over once it goes ${lease} ms without` };
}

/**
 * Who holds a lock, for a `CONFLICT` message: another store of this very process (a token it holds;
 * told to delete the lock file "if that writer is really gone", one would have broken a live
 * writer's lock), or the pid and host in the file, with what to remove if that writer is gone.
 */
export function holderOf(path: string, owner: LockOwner): string {
  if (heldTokens.has(owner.token)) return `another store of this process (pid ${owner.pid}): close the tracker or store that has it open first`;
  return `pid ${owner.pid} on host "${owner.hostname}" (since ${owner.createdAt}); if that writer is really gone, delete ${path}`;
}

function conflict(upgradeId: string, path: string, owner: LockOwner | null, why?: string): Error {
  if (!owner) return storeError('CONFLICT', `upgrade "${upgradeId}" is held for writing by another writer`, { upgradeId, lock: path, owner });
  if (heldTokens.has(owner.token)) return storeError('CONFLICT', `upgrade "${upgradeId}" is held for writing by ${holderOf(path, owner)}`, { upgradeId, lock: path, owner });
  const who = `pid ${owner.pid} on host "${owner.hostname}" (since ${owner.createdAt})`;
  const unsure = why ? `, which cannot be checked from here: ${why}` : '';
  return storeError('CONFLICT', `upgrade "${upgradeId}" is held for writing by ${who}${unsure}; if that writer is really gone, delete ${path}`, { upgradeId, lock: path, owner });
}

/**
 * The writer lock this process holds on an upgrade, and its lease. While held, an unref'd timer
 * stamps the lock file's mtime every third of the lease, through a descriptor of our own lock file:
 * once another writer has renamed its lock over ours, the stamps land on our orphaned file, never on
 * theirs. Before each write, {@link check} makes sure no one could have taken the lock over since: a
 * clock compare while the lease was refreshed less than half a lease ago, a look at the file otherwise.
 */
export class WriterLease {
  readonly token: string;
  readonly leaseMs: number;
  readonly #path: string;
  readonly #upgradeId: string;
  readonly #logger: Logger;
  readonly #handle: FileHandle;
  readonly #timer: NodeJS.Timeout;
  /** `performance.now()` when the last stamp that counts was made (taken before the stamp's time, so never later than it). */
  #refreshedAt: number;
  #beating = false;
  #checking: Promise<void> | undefined;
  #lost: Error | undefined;
  #stopped: Promise<void> | undefined;

  constructor(path: string, upgradeId: string, token: string, handle: FileHandle, refreshedAt: number, leaseMs: number, logger: Logger) {
    this.#path = path;
    this.#upgradeId = upgradeId;
    this.token = token;
    this.#handle = handle;
    this.#refreshedAt = refreshedAt;
    this.leaseMs = leaseMs;
    this.#logger = logger;
    this.#timer = setInterval(() => void this.#beat(), Math.floor(leaseMs / 3));
    // A held lock must not keep the process alive; its lease runs out once the process is gone.
    this.#timer.unref();
  }

  /** The `CONFLICT` of a lock that was taken over, once that was seen. */
  get lost(): Error | undefined {
    return this.#lost;
  }

  /**
   * To be called before each write under this lock: `undefined` (go on) while the lease was refreshed
   * less than half a lease ago, by the monotonic clock. Otherwise (the event loop or the disk stalled)
   * a taker may have found the lock stale: the lock is stamped and read again, and the promise
   * resolves when it still holds our token, or rejects with `CONFLICT` when it does not (for good:
   * every later check rejects too). Half a lease is the margin left for the write itself to land.
   */
  check(): Promise<void> | undefined {
    if (this.#lost) return Promise.reject(this.#lost);
    const unlinked = this.#unlinked();
    if (!unlinked && performance.now() - this.#refreshedAt < this.leaseMs / 2) return undefined;
    this.#checking ??= this.#confirm(unlinked).finally(() => (this.#checking = undefined));
    return this.#checking;
  }

  /**
   * Whether our lock file no longer has a name (one `fstat`): deleted by hand, or replaced by another
   * writer's lock, while we held it. Its stamps then land on a file no one sees, and a second writer
   * may have taken the lock: lease or not, we must not write on.
   */
  #unlinked(): boolean {
    try {
      return fstatSync(this.#handle.fd).nlink === 0;
    } catch {
      return false;
    }
  }

  /** The timer's stamp. It renews the lease only when it landed within half a lease of the last one: later, a taker may have seen the lock stale first, and only {@link check} can tell. */
  async #beat(): Promise<void> {
    if (this.#beating || this.#lost || this.#stopped) return;
    this.#beating = true;
    const last = this.#refreshedAt;
    const at = performance.now();
    try {
      await this.#handle.utimes(stampNow(), stampNow());
      if (performance.now() - last < this.leaseMs / 2) this.#refreshedAt = Math.max(this.#refreshedAt, at);
    } catch (err) {
      if (!this.#stopped) this.#logger.warn({ err, upgradeId: this.#upgradeId, lock: this.#path }, 'could not refresh the writer lock\'s lease');
    } finally {
      this.#beating = false;
    }
  }

  async #confirm(unlinked = false): Promise<void> {
    const at = performance.now();
    const since = Math.round(at - this.#refreshedAt);
    // Stamp, then read, under the takeover mutex: a taker holds it from its last "still the same,
    // still stale" read until its rename, so our stamp and read land either before that read (the
    // taker then sees a fresh lock and gives up) or after the rename (we then see its token). Without
    // the mutex, a confirm landing between the taker's read and its rename would let both write.
    let file: LockFile | undefined;
    try {
      const release = await holdMutex(`${this.#path}.takeover`, this.leaseMs);
      try {
        await this.#handle.utimes(stampNow(), stampNow());
        file = await readLock(this.#path);
      } finally {
        await release();
      }
    } catch (err) {
      // Our lock deleted with its folder: no mutex to take there, and nothing left to confirm.
      if (!(unlinked && isCode(err, 'ENOENT'))) throw storeError('STORE_UNAVAILABLE', `upgrade "${this.#upgradeId}": cannot check the writer lock ${this.#path}`, { upgradeId: this.#upgradeId, lock: this.#path }, err);
    }
    if (file?.owner?.token === this.token && !unlinked) {
      this.#refreshedAt = Math.max(this.#refreshedAt, at);
      return;
    }
    if (this.#lost) throw this.#lost;
    const owner = file?.owner ?? null;
    const by = file === undefined ? `${this.#path} is gone` : owner ? `it is now held by pid ${owner.pid} on host "${owner.hostname}" (since ${owner.createdAt})` : `${this.#path} no longer holds our token`;
    const how = unlinked && since < this.leaseMs / 2 ? `the writer lock ${this.#path} was deleted or replaced while this writer held it` : `the writer lock was taken over after this writer's lease lapsed (not refreshed for ${since} ms, lease ${this.leaseMs} ms)`;
    this.#lost = storeError(
      'CONFLICT',
      `upgrade "${this.#upgradeId}": ${how}: ${by}; nothing was written, and this store writes no more to the upgrade until it is released`,
      { upgradeId: this.#upgradeId, lock: this.#path, owner },
    );
    this.#logger.error({ upgradeId: this.#upgradeId, lock: this.#path, owner, sinceRefreshMs: since, leaseMs: this.leaseMs }, 'the writer lock was taken over; this store stops writing the upgrade');
    void this.stop();
    throw this.#lost;
  }

  /** Stops the stamps and closes the descriptor. Idempotent. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      clearInterval(this.#timer);
      await this.#handle.close().catch(() => {});
    })();
    return this.#stopped;
  }
}

/**
 * Takes the exclusive writer lock of an upgrade: a file holding pid, hostname, a random token, the
 * lease and, on Linux, the boot id, PID namespace and start time of this process, created whole
 * (written to a temp file opened with O_EXCL, then hard-linked into place, which fails when the lock
 * exists). A lock whose owner is provably dead (see {@link judge}) is taken over under a second
 * O_EXCL file, after checking again that it is still the same dead lock.
 *
 * @returns the held lock, whose lease is kept fresh until {@link releaseLock}.
 * @throws ProgressError `CONFLICT` when a live owner, or one that cannot be checked from here, holds it.
 */
export async function takeLock(path: string, upgradeId: string, logger: Logger, leaseMs: number): Promise<WriterLease> {
  const owner = await newOwner(randomUUID(), leaseMs);
  const tmp = `${path}.${owner.token}.tmp`;
  const at = performance.now();
  // A write that fails (a full disk) leaves no temp file behind.
  await writeWhole(tmp, owner).catch(async (err: unknown) => {
    await unlink(tmp).catch(() => {});
    throw err;
  });
  // Opened before it becomes the lock: the descriptor stays on our file whatever is renamed over it later.
  let handle: FileHandle | undefined = await open(tmp, 'r').catch(async (err: unknown) => {
    await unlink(tmp).catch(() => {});
    throw err;
  });
  const held = (): WriterLease => {
    heldTokens.add(owner.token);
    const lease = new WriterLease(path, upgradeId, owner.token, handle!, at, leaseMs, logger);
    handle = undefined;
    return lease;
  };
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await link(tmp, path);
        return held();
      } catch (err) {
        if (!isCode(err, 'EEXIST')) throw err;
      }
      const current = await readLock(path);
      if (current === undefined) continue; // released meanwhile: try again
      const verdict = await judge(current, leaseMs);
      if (!verdict.dead) throw conflict(upgradeId, path, current.owner, verdict.why);
      if (await takeOver(path, current, tmp, upgradeId, leaseMs)) {
        logger.warn({ upgradeId, lock: path, previousOwner: current.owner, reason: verdict.reason }, `took over the writer lock of a dead writer: ${verdict.reason}`);
        return held();
      }
    }
    throw conflict(upgradeId, path, null);
  } finally {
    await handle?.close().catch(() => {});
    await unlink(tmp).catch(() => {});
  }
}

async function takeOver(path: string, stale: LockFile, tmp: string, upgradeId: string, leaseMs: number): Promise<boolean> {
  const mutex = `${path}.takeover`;
  const attempt = await tryMutex(mutex, leaseMs);
  if (!attempt.held) {
    if (attempt.verdict && !attempt.verdict.dead) throw conflict(upgradeId, mutex, attempt.holder!.owner, attempt.verdict.why);
    return false;
  }
  try {
    // Still the same lock, and still dead: a holder whose lease we judged run out may have stamped it
    // since (its event loop or disk had stalled); it then goes on writing, so we must not.
    const again = await readLock(path);
    if (!sameLock(stale, again) || !(await judge(again!, leaseMs)).dead) return false;
    await rename(tmp, path);
    return true;
  } finally {
    await attempt.release();
  }
}

/**
 * Takes the takeover mutex for a holder's check of its own lock, waiting while a live taker holds it
 * (a takeover takes two reads and a rename) and trying again at once after one left by a dead taker
 * was removed; gives up with an error after `leaseMs`. Resolves with the function that gives it back.
 */
async function holdMutex(mutex: string, leaseMs: number): Promise<() => Promise<void>> {
  const until = performance.now() + leaseMs;
  for (;;) {
    const attempt = await tryMutex(mutex, leaseMs);
    if (attempt.held) return attempt.release;
    if (attempt.verdict?.dead) continue;
    if (performance.now() > until) throw new Error(`${mutex} stayed held for ${leaseMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** One try at a takeover mutex: held (with its release), or who holds it and how it was judged. */
type MutexAttempt = { held: true; release: () => Promise<void> } | { held: false; holder?: LockFile; verdict?: Verdict };

/**
 * One try at the takeover mutex `mutex`, the one place that takes it (for a takeover and for a
 * holder's check of its lease). The mutex is made whole before it appears (temp file, then link),
 * and its token is known as ours while we hold it: a racing store, here or in another process, sees
 * a live owner, never an empty or foreign-looking file that it would remove as a dead one's. A mutex
 * left by a taker that died is removed, only if it is still that one; the caller may then try again.
 */
async function tryMutex(mutex: string, leaseMs: number): Promise<MutexAttempt> {
  const token = randomUUID();
  const tmp = `${mutex}.${token}.tmp`;
  heldTokens.add(token);
  let held = false;
  try {
    await writeWhole(tmp, await newOwner(token, leaseMs));
    try {
      await link(tmp, mutex);
      held = true;
      return {
        held: true,
        release: async () => {
          await unlink(mutex).catch(() => {});
          // Emptied too, through our temp file's name for it (kept while held): a taker that moved it
          // aside by mistake (see removeDeadMutex) and puts it back then puts back a dead one.
          await truncate(tmp).catch(() => {});
          await unlink(tmp).catch(() => {});
          heldTokens.delete(token);
        },
      };
    } catch (err) {
      if (!isCode(err, 'EEXIST')) throw err;
    }
    const holder = await readLock(mutex);
    if (holder === undefined) return { held: false };
    const verdict = await judge(holder, leaseMs);
    if (verdict.dead) await removeDeadMutex(mutex, holder, tmp);
    return { held: false, holder, verdict };
  } finally {
    if (!held) {
      await unlink(tmp).catch(() => {});
      heldTokens.delete(token);
    }
  }
}

/**
 * Removes the takeover mutex `dead` that a dead taker left, and only that one. Not unlinked by path:
 * another store may have removed it since our look and taken a mutex of its own, which the unlink
 * would remove, letting two takers take the lock over at once (both then write, over each other's
 * events). It is moved to `aside` (our temp file's name) instead, which moves whatever is there now,
 * and looked at there: a live one moved by mistake goes back at once.
 */
async function removeDeadMutex(mutex: string, dead: LockFile, aside: string): Promise<void> {
  for (;;) {
    try {
      await rename(mutex, aside);
    } catch {
      return; // gone already (removed by another taker, or released)
    }
    if (sameLock(dead, await readLock(aside).catch(() => undefined))) return;
    if (!(await link(aside, mutex).then(() => true, () => false))) return;
    // Its holder may have let it go while it was aside (its release empties it): then no one holds
    // the one put back, and it goes as a dead one. (Our name for it goes first: a rename between two
    // names of one file does nothing.)
    const after = await readLock(aside).catch(() => undefined);
    if (after?.owner !== null) return;
    await unlink(aside).catch(() => {});
    dead = after;
  }
}

/**
 * Whether `path`, a temp file of {@link takeLock} or of the takeover mutex (`<file>.<uuid>.tmp`, an
 * owner record), was left by a taker killed between writing it and unlinking it. A live taker keeps
 * one for milliseconds, and nothing stamps it after it is written (unless it became the lock, whose
 * name it then shares with the lock until it is unlinked a moment later): so it is left over only
 * once it is older than the lease (ours or its own, the longer) and its writer is judged dead as a
 * lock's is (never one of another host). An empty or garbled one (killed while writing it) goes by
 * its age alone.
 */
export async function leftByDeadTaker(path: string, leaseMs: number): Promise<boolean> {
  const file = await readLock(path);
  if (file === undefined || Date.now() - file.mtimeMs <= leaseOf(file.owner, leaseMs)) return false;
  return (await judge(file, leaseMs)).dead;
}

/** Writes an owner record to a new file (O_EXCL, 0600), stamped as its lease's first refresh. */
async function writeWhole(path: string, owner: LockOwner): Promise<void> {
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, FILE_MODE);
  try {
    await handle.writeFile(`${JSON.stringify(owner)}\n`);
    await handle.utimes(stampNow(), stampNow());
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
export async function releaseLock(path: string, lease: WriterLease, upgradeId: string, logger: Logger): Promise<void> {
  try {
    await lease.stop();
    const owner = (await readLock(path))?.owner;
    if (owner && owner.token === lease.token) {
      await unlink(path).catch((err: unknown) => {
        if (!isCode(err, 'ENOENT')) throw err;
      });
    } else if (owner !== undefined) {
      logger.warn({ upgradeId, lock: path, owner }, 'writer lock is no longer ours; left in place');
    }
  } finally {
    heldTokens.delete(lease.token);
  }
}

/** Forgets a lock whose file went away with its folder (delete): stops its lease and its token. */
export async function forgetLock(lease: WriterLease): Promise<void> {
  await lease.stop();
  heldTokens.delete(lease.token);
}

/** Whether the lock is held by a live owner other than `token` (for delete and retention). */
export async function lockedByOther(path: string, token: string | undefined, leaseMs: number): Promise<LockOwner | null | false> {
  const file = await readLock(path);
  if (file === undefined) return false;
  if (file.owner !== null && file.owner.token === token) return false;
  return (await judge(file, leaseMs)).dead ? false : file.owner;
}
