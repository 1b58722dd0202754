import { createHash, randomBytes } from 'node:crypto';
import { constants, readdirSync, statSync, type Dirent } from 'node:fs';
import { open, readdir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { resolve as resolvePath, join } from 'node:path';
import {
  appendInputError,
  applyEventInPlace,
  assertAppend,
  assertAppendState,
  assertListFilter,
  assertReadEvents,
  cloneState,
  describeValue,
  filterRows,
  isProgressError,
  isTerminal,
  isValidId,
  replayEvents,
  toSummaryRow,
  type ListFilter,
  type ProgressError,
  type ProgressEvent,
  type ProgressStore,
  type StoreInfo,
  type UpgradeProgress,
  type UpgradeSummaryRow,
} from '@progress/core';
import { caseConflict, differOnlyInCase, foundUnderOtherCase, isCaseConflict } from './case-collision.js';
import { corruptedLine, storeError, unreadable } from './errors.js';
import { NOFOLLOW, datasyncFile, ensureDir, exists, fsyncDir, isCode, isCodeOrCause, isSymlink, truncateNoFollow, writeFileAtomic } from './fs-utils.js';
import { legacyIdInFile, readLegacyEvents } from './legacy/legacy-file.js';
import { legacyDir, legacyIdOf, upgradePaths, upgradesDir, type UpgradePaths } from './layout.js';
import { LogWriter, type WriterStart } from './log-writer.js';
import { eventAt, eventBefore, lineNear, scanLog, scanToEnd, type ScanResult } from './log-scanner.js';
import { resolveOptions, type JsonFileStoreOptions, type ResolvedOptions } from './options.js';
import { DURABLE_WRITE, decodeSnapshot, encodeEvents, encodeSnapshot, stampWriteOffset, type Snapshot } from './record-codec.js';
import { forgetLock, holderOf, leftByDeadTaker, releaseLock, lockedByOther, takeLock, type WriterLease } from './writer-lock.js';

interface HeldLock {
  lease: WriterLease;
  /** Taken by `acquire()` (a tracker), not only by an append. */
  explicit: boolean;
  /**
   * A digest of the legacy import the first `load()` under this lock returned (the state a tracker
   * goes on from): the import written at the first append must be that one, not the file as the old
   * module may have rewritten it since (as another reader's later load of this store returned it).
   */
  legacyLoaded?: string;
}

/** What tells two legacy imports apart: a digest of their events. */
const importDigest = (events: readonly ProgressEvent[]): string => createHash('sha1').update(JSON.stringify(events)).digest('hex');

/** The temp files of `writeFileAtomic` in an upgrade's folder (`<file>.<12 hex>.tmp`), for the files only the lock holder writes. */
const LEFT_TEMP = /^(?:snapshot\.json|events\.jsonl|legacy-deleted)\.[0-9a-f]{12}\.tmp$/;
/** The temp files of taking the writer lock or its takeover mutex (`<file>.<uuid>.tmp`), which any store makes. */
const LOCK_TEMP = /^writer\.lock(?:\.takeover)?\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.tmp$/;

/** How old a `~deleted-*` folder must be for a later delete of its upgrade to remove it (see `#removeOldGraves`). */
const OLD_GRAVE_MS = 60_000;

/**
 * A {@link ProgressStore} in plain files: per upgrade an append-only JSON Lines log with a CRC-32 per
 * line (`upgrades/<id>/events.jsonl`), an atomic `snapshot.json` every `snapshotEvery` events, and an
 * exclusive writer lock (`writer.lock`). Appends cost the same whatever the log's length, and appends
 * that arrive while a write is in flight share one write and one `fdatasync` (group commit). Reads
 * the old Python module's `progress/upgrade_<id>.json` files too, and imports them on first append.
 *
 * One store instance per process and directory is the intended use; two instances (in one process or
 * two) never write one upgrade at once: the writer lock gives the second `CONFLICT`.
 *
 * @example
 * const store = new JsonFileStore({ directory: './progress-data' });
 * const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p1', clusterName: 'prod', store });
 */
export class JsonFileStore implements ProgressStore {
  readonly #opts: ResolvedOptions;
  readonly #root: string;
  readonly #writers = new Map<string, Promise<LogWriter>>();
  readonly #open = new Map<string, LogWriter>();
  /** Writers taken out of the store (release, delete) whose close is not done: readers stop at their durable end meanwhile. */
  readonly #closingWriters = new Map<string, LogWriter>();
  /** What earlier deletes left behind, by upgrade id (see `#findGraves`), once a delete has looked. */
  #graves: Promise<Map<string, string[]>> | undefined;
  readonly #locks = new Map<string, HeldLock>();
  /**
   * A release() or delete() running now, per upgrade: acquire() and the opening of a writer wait for
   * it. Opened meanwhile, a writer would borrow the lock being let go, and go on writing without one
   * after it (over another writer's lines).
   */
  readonly #lettingGo = new Map<string, Promise<unknown>>();
  /**
   * Locks being taken now (an acquire(), a writer opening, a delete): close() waits for them. One
   * that an acquire() began before close() is in no other map yet, and would otherwise be taken after
   * close() resolved (a store opened next would get CONFLICT, a process exiting then would leave it).
   */
  readonly #taking = new Set<Promise<void>>();
  /**
   * Where the log must be cut back to, per upgrade, before it is read to write again: a failed write
   * whose own cut failed too left the lines of rejected events there, which the scan would take for
   * stored ones. The lock stays held meanwhile, so that nobody else reads them either.
   */
  readonly #uncut = new Map<string, { offset: number; lease: WriterLease | undefined }>();
  /** The lease each open writer writes under: a cut it leaves owed is made only under that same lease. */
  readonly #leaseOf = new WeakMap<LogWriter, WriterLease>();
  readonly #pathCache = new Map<string, UpgradePaths>();
  /** Legacy files list() found with an id it cannot load, each warned about once (list() may run every few seconds). */
  readonly #unloadable = new Set<string>();
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(options: JsonFileStoreOptions) {
    this.#opts = resolveOptions(options);
    this.#root = resolvePath(this.#opts.directory);
  }

  get #sync(): boolean {
    return this.#opts.durability === 'fsync';
  }

  // ------------------------------------------------------------------ lock

  /** Takes the upgrade's writer lock (`CONFLICT` when another writer, here or elsewhere, holds it). */
  async acquire(upgradeId: string): Promise<void> {
    const paths = this.#paths(upgradeId);
    while (this.#lettingGo.has(upgradeId)) await this.#lettingGo.get(upgradeId);
    // close() may have begun meanwhile, and let go of this upgrade already.
    this.#assertOpen();
    const held = this.#locks.get(upgradeId);
    // Taken over while we stalled: only release() (or close()) lets go of it, so that acquiring again
    // starts from the log as the other writer left it.
    if (held?.lease.lost) throw held.lease.lost;
    if (held?.explicit) throw storeError('CONFLICT', `upgrade "${upgradeId}" is already open for writing in this store`, { upgradeId });
    if (held) {
      held.explicit = true;
      return;
    }
    await this.#lock(upgradeId, paths, true);
  }

  /** Gives the writer lock back after the pending writes; the next append takes it again. */
  async release(upgradeId: string): Promise<void> {
    // (async: a bad id rejects. What comes before the first await runs at the call.)
    const paths = this.#paths(upgradeId, false);
    // The writer open now goes (after its pending writes); one opened from here on waits for this.
    const writer = this.#detachWriter(upgradeId);
    await this.#lettingGoOf(upgradeId, async () => {
      // A failing close (a disk that fails) must not keep the lock: it is logged, and the lock goes.
      await this.#closeWriter(upgradeId, writer).catch((err: unknown) => this.#opts.logger.warn({ err, upgradeId }, 'closing a writer failed'));
      const held = this.#locks.get(upgradeId);
      if (!held) return;
      await this.#lastCut(upgradeId, paths, held.lease);
      this.#locks.delete(upgradeId);
      await releaseLock(paths.lock, held.lease, upgradeId, this.#opts.logger).catch((err: unknown) => {
        throw isProgressError(err) ? err : storeError('STORE_UNAVAILABLE', `upgrade "${upgradeId}": could not release the writer lock ${paths.lock}`, { upgradeId, lock: paths.lock }, err);
      });
    });
  }

  /** Runs `letGo` (a release or delete) after any other of the upgrade's, with acquire() and writer openings waiting for it. */
  #lettingGoOf<T>(upgradeId: string, letGo: () => Promise<T>): Promise<T> {
    const run = (this.#lettingGo.get(upgradeId) ?? Promise.resolve()).then(letGo);
    const done = run.then(
      () => undefined,
      () => undefined,
    );
    this.#lettingGo.set(upgradeId, done);
    void done.then(() => {
      if (this.#lettingGo.get(upgradeId) === done) this.#lettingGo.delete(upgradeId);
    });
    return run;
  }

  /** Takes the writer lock; `makeFolder` false for delete(), which must not make again a folder another store deleted. */
  #lock(upgradeId: string, paths: UpgradePaths, explicit: boolean, makeFolder = true): Promise<void> {
    const taking = this.#takeLock(upgradeId, paths, explicit, makeFolder);
    this.#taking.add(taking);
    const done = (): void => void this.#taking.delete(taking);
    void taking.then(done, done);
    return taking;
  }

  async #takeLock(upgradeId: string, paths: UpgradePaths, explicit: boolean, makeFolder: boolean): Promise<void> {
    let lease: WriterLease;
    try {
      if (makeFolder) await ensureDir(paths.dir, this.#sync);
      lease = await takeLock(paths.lock, upgradeId, this.#opts.logger, this.#opts.lockLeaseMs).catch(async (err: unknown) => {
        // The folder went between its making and the lock: another store deleted the upgrade (its
        // retention). Made again, as for an upgrade that was never there: the writer starts it anew.
        if (!makeFolder || !isCode(err, 'ENOENT')) throw err;
        await ensureDir(paths.dir, this.#sync);
        return takeLock(paths.lock, upgradeId, this.#opts.logger, this.#opts.lockLeaseMs);
      });
    } catch (err) {
      // CONFLICT as it is; the file system failing (a full disk, a read-only mount) is STORE_UNAVAILABLE.
      throw isProgressError(err) ? err : storeError('STORE_UNAVAILABLE', `upgrade "${upgradeId}": cannot take the writer lock ${paths.lock}`, { upgradeId, lock: paths.lock }, err);
    }
    if (this.#closed) {
      await releaseLock(paths.lock, lease, upgradeId, this.#opts.logger);
      throw this.#closedError();
    }
    this.#locks.set(upgradeId, { lease, explicit });
  }

  // ------------------------------------------------------------------ write

  /**
   * Appends events durably (see `durability`). `CONFLICT` when the stored last seq is not
   * `expectedSeq` or another writer holds the lock; `STORE_UNAVAILABLE` when the disk fails (the
   * events are then not stored: the log is cut back to its last durable line).
   */
  async append(upgradeId: string, events: readonly ProgressEvent[], expectedSeq: number, state: Readonly<UpgradeProgress>): Promise<void> {
    this.#paths(upgradeId);
    // Also refuses events the log's reader would take for damage (no eventId, type or details object):
    // stored, such a line would be an acknowledged event that load() skips as a torn tail.
    assertAppend('@progress/storage-json', upgradeId, events, expectedSeq);
    assertAppendState('@progress/storage-json', upgradeId, state);
    // Serialize now: `state` is only valid until the first await.
    const last = events[events.length - 1]!.seq;
    const every = this.#opts.snapshotEvery;
    let data: Buffer;
    let snapshot: string | undefined;
    try {
      data = encodeEvents(events);
      snapshot = state.lastSeq === last && Math.floor(last / every) > Math.floor(expectedSeq / every) ? JSON.stringify(state) : undefined;
    } catch (cause) {
      throw appendInputError('@progress/storage-json', upgradeId, expectedSeq, 'the events or the state could not be written as JSON', cause);
    }
    let writer = await this.#writer(upgradeId);
    while (writer.broken) {
      // A failed write whose cut failed too: open the log again, cut back to the durable end first.
      if (this.#open.get(upgradeId) === writer) await this.#dropWriter(upgradeId);
      writer = await this.#writer(upgradeId);
    }
    return writer.append(data, events.length, expectedSeq, snapshot);
  }

  /**
   * The writer of an upgrade, opened once: every caller awaits the same promise, so appends reach the
   * writer in the order they were made.
   */
  #writer(upgradeId: string): Promise<LogWriter> {
    this.#assertOpen();
    let opening = this.#writers.get(upgradeId);
    if (!opening) {
      const p = this.#openWriter(upgradeId);
      opening = p;
      this.#writers.set(upgradeId, p);
      p.then(
        (w) => {
          if (this.#writers.get(upgradeId) === p) this.#open.set(upgradeId, w);
          // Taken out of the store while it opened (a release() or delete() right behind the first
          // append): its first write may be in flight already, and #closeWriter closes it. Until
          // then, this store's readers stop at its durable end, as for one detached when open.
          else this.#closingWriters.set(upgradeId, w);
        },
        () => {
          if (this.#writers.get(upgradeId) === p) this.#writers.delete(upgradeId);
        },
      );
    }
    return opening;
  }

  async #openWriter(upgradeId: string): Promise<LogWriter> {
    const paths = this.#paths(upgradeId);
    // The let-go queued when this opening began: not one queued after it, which takes this opening out
    // and waits for it (a delete() right behind an append).
    await this.#lettingGo.get(upgradeId);
    this.#assertOpen();
    const implicit = !this.#locks.has(upgradeId);
    if (implicit) await this.#lock(upgradeId, paths, false);
    const lease = this.#locks.get(upgradeId)!.lease;
    try {
      await this.#cutBack(upgradeId, paths, lease);
      const start = await this.#locateEnd(upgradeId, paths, lease);
      // Every write checks the lease first: a writer whose lock was taken over while its event loop
      // or disk stalled gets CONFLICT and writes nothing.
      const writer = new LogWriter(upgradeId, paths, start, { sync: this.#sync, logger: this.#opts.logger, guard: () => lease.check() });
      this.#leaseOf.set(writer, lease);
      return writer;
    } catch (err) {
      const held = this.#locks.get(upgradeId);
      // A cut still owed keeps the lock (see #uncut).
      if (implicit && held && !this.#uncut.has(upgradeId)) {
        // Not release(): that would wait for this very opening.
        this.#locks.delete(upgradeId);
        await releaseLock(paths.lock, held.lease, upgradeId, this.#opts.logger).catch(() => {});
      }
      throw isProgressError(err) ? err : storeError('STORE_UNAVAILABLE', `upgrade "${upgradeId}": cannot open its log ${paths.events} for writing`, { upgradeId, file: paths.events }, err);
    }
  }

  /** Before the lock goes: the cut owed, if any; when it fails again, nothing more can be done than say so. */
  async #lastCut(upgradeId: string, paths: UpgradePaths, lease: WriterLease): Promise<void> {
    if (!this.#uncut.has(upgradeId)) return;
    await this.#cutBack(upgradeId, paths, lease).catch((err: unknown) =>
      this.#opts.logger.error({ err, upgradeId }, 'letting the writer lock go with the lines of rejected events still in the log: a reader may take them for stored ones'),
    );
    this.#uncut.delete(upgradeId);
  }

  /** Cuts the log back to where a broken writer's durable lines end, when that is owed (see #uncut). */
  async #cutBack(upgradeId: string, paths: UpgradePaths, lease: WriterLease): Promise<void> {
    const owed = this.#uncut.get(upgradeId);
    if (owed === undefined) return;
    // Only under the lock the failed write was made under: once that lock went, another writer may
    // have written past the offset, and cutting there would remove its acknowledged events.
    if (owed.lease !== lease) {
      this.#uncut.delete(upgradeId);
      this.#opts.logger.error({ upgradeId }, 'a cut owed after a failed write was not made before its lock went: the lines of rejected events may be in the log');
      return;
    }
    const offset = owed.offset;
    await lease.check();
    try {
      await truncateNoFollow(paths.events, offset);
      if (this.#sync) await datasyncFile(paths.events);
    } catch (err) {
      // No log (deleted): nothing left to cut.
      if (isCode(err, 'ENOENT')) return void this.#uncut.delete(upgradeId);
      throw storeError('STORE_UNAVAILABLE', `upgrade "${upgradeId}": could not cut ${paths.events} back to its last stored event after a failed write`, { upgradeId, file: paths.events }, err);
    }
    this.#uncut.delete(upgradeId);
  }

  /** The writer's start: end of the good log (a torn last write cut off: we hold the lock), or the legacy import. */
  async #locateEnd(upgradeId: string, paths: UpgradePaths, lease: WriterLease): Promise<WriterStart> {
    // The writer cuts and appends to its log: through a link put in its place, it cut and wrote
    // whatever file the link named (a torn "last line" of that file was cut off, then events written in).
    if (await isSymlink(paths.events)) {
      throw storeError('STORE_UNAVAILABLE', `upgrade "${upgradeId}": its log ${paths.events} is a symbolic link; the store writes only a file of its own there, and leaves the link and the file it names as they are`, {
        upgradeId,
        file: paths.events,
      });
    }
    // First: a log that lost acknowledged events is refused before anything in the folder changes.
    const snap = await this.#readSnapshot(upgradeId, paths);
    await this.#removeLeftTempFiles(upgradeId, paths);
    const result = await scanToEnd({ upgradeId, path: paths.events, start: snap?.offset ?? 0, firstSeq: (snap?.lastSeq ?? 0) + 1 });
    if (result.torn) {
      await lease.check();
      await this.#cutTornTail(upgradeId, paths, result);
    } else if (this.#sync && result.endOffset > 0) {
      // A writer that was killed may have left sound lines that were never synced (nor acknowledged)
      // in the page cache. This writer's O_DSYNC writes sync only their own bytes: synced once now,
      // those lines cannot turn into zeros ahead of acknowledged ones at a later power loss.
      await datasyncFile(paths.events);
    }
    if (result.lastSeq === 0) {
      const legacy = await this.#legacyEvents(upgradeId, paths);
      // The old module rewrote its file in place on every update: one still running may have rewritten
      // it since the load the caller goes on from. Imported as it is now, the log would hold a history
      // other than the one the caller's state and checks came from, under the same seqs.
      const loaded = this.#locks.get(upgradeId)?.legacyLoaded;
      if (loaded !== undefined && legacy && legacy.length > 0 && importDigest(legacy) !== loaded) {
        throw storeError(
          'CONFLICT',
          `upgrade "${upgradeId}": the legacy file ${paths.legacy} changed since it was loaded (is the old module still writing it?); nothing was written: open the upgrade again to go on from the file as it is now`,
          { upgradeId, file: paths.legacy },
        );
      }
      if (legacy && legacy.length > 0) {
        // The import goes to disk alone and atomically (temp file, fsync, rename, fsync of the
        // folder) before any new event: a crash leaves all of the imported history or none of it,
        // never a torn part that the next writer would cut back to.
        const data = encodeEvents(legacy);
        stampWriteOffset(data, DURABLE_WRITE);
        await lease.check();
        await writeFileAtomic(paths.events, data, this.#sync);
        // With a snapshot of its own, as an append of that many events would have: the next boundary
        // may be up to snapshotEvery events away, and opening, load() and list() would replay the whole
        // import until then. Written once the import is durable (it covers all of it); a failure only
        // costs replay time, as for the writer's snapshots.
        if (legacy.length >= this.#opts.snapshotEvery) {
          const header = { v: 1, lastSeq: legacy.length, offset: data.length } as const;
          await lease.check();
          await writeFileAtomic(paths.snapshot, encodeSnapshot(header, JSON.stringify(replayEvents(legacy))), this.#sync).catch((err: unknown) =>
            this.#opts.logger.warn({ err, upgradeId, lastSeq: legacy.length }, 'snapshot write failed; load() replays more of the log until the next one'),
          );
        }
        return { seq: legacy.length, offset: data.length };
      }
    }
    return { seq: result.lastSeq, offset: result.endOffset };
  }

  /**
   * Removes the temp files of atomic writes (a snapshot, the legacy import, the legacy marker) that a
   * writer killed in the middle of one left in the folder: each is as large as the state, and a writer
   * killed often (OOM kills, evictions) would otherwise pile them up for as long as the upgrade lives.
   * Only the lock holder writes them, and we hold the lock now, so none of them is being written. The
   * lock's own temp files are made by any store trying to take the lock: only those a taker killed
   * meanwhile left go, once older than the lease and judged dead as a lock is (see leftByDeadTaker).
   */
  async #removeLeftTempFiles(upgradeId: string, paths: UpgradePaths): Promise<void> {
    const names = await readdir(paths.dir).catch(() => [] as string[]);
    for (const name of names) {
      if (!LEFT_TEMP.test(name) && !(LOCK_TEMP.test(name) && (await leftByDeadTaker(join(paths.dir, name), this.#opts.lockLeaseMs).catch(() => false)))) continue;
      await rm(join(paths.dir, name), { force: true }).then(
        () => this.#opts.logger.warn({ upgradeId, file: join(paths.dir, name) }, 'removed a temp file a killed writer left behind'),
        (err: unknown) => this.#opts.logger.warn({ err, upgradeId, file: join(paths.dir, name) }, 'could not remove a temp file a killed writer left behind'),
      );
    }
  }

  async #cutTornTail(upgradeId: string, paths: UpgradePaths, result: ScanResult): Promise<void> {
    const torn = result.torn!;
    const handle = await open(paths.events, constants.O_RDONLY | NOFOLLOW);
    const bytes = Buffer.alloc(Math.min(torn.length, 512));
    try {
      await handle.read(bytes, 0, bytes.length, torn.offset);
    } finally {
      await handle.close();
    }
    await truncateNoFollow(paths.events, torn.offset);
    if (this.#sync) await datasyncFile(paths.events);
    this.#opts.logger.warn(
      { upgradeId, file: paths.events, line: torn.line, offset: torn.offset, length: torn.length, reason: torn.reason, head: bytes.toString('utf8') },
      'cut the torn end of the last write off the log (it was never acknowledged)',
    );
  }

  // ------------------------------------------------------------------ read

  /** Snapshot + replay of the tail; the legacy file's import when the upgrade has no new-format log. */
  async load(upgradeId: string): Promise<UpgradeProgress | undefined> {
    return this.#load(upgradeId, this.#paths(upgradeId), true);
  }

  /**
   * load(), also while close() waits for a delete that reads the upgrade under its lock. With
   * `remember` (a caller's load, not list()'s), the first legacy import loaded under this store's
   * lock is remembered as the one the first append must write.
   */
  async #load(upgradeId: string, paths: UpgradePaths, remember = false): Promise<UpgradeProgress | undefined> {
    const writer = this.#open.get(upgradeId);
    // Never past the durable end: the writer's, or where a cut is owed (rejected events lie after it).
    const end = writer?.offset ?? this.#closingWriters.get(upgradeId)?.offset ?? this.#uncut.get(upgradeId)?.offset;
    // The log the snapshot was checked against, read on through the same handle: another store may
    // delete the upgrade meanwhile (the file stays readable) and create it again (a new log under
    // the path, another run's, where the snapshot's offset means nothing).
    const log: { handle?: FileHandle } = {};
    let state: UpgradeProgress | undefined;
    let snap: Snapshot | undefined;
    const result: ScanResult = { endOffset: 0, lastSeq: 0 };
    try {
      snap = await this.#readSnapshot(upgradeId, paths, false, log);
      // A copy whose tasks record has no prototype (as the reducer's own): task ids like `constructor`
      // or `__proto__`, added after the snapshot, are then folded as the ids they are.
      state = snap ? cloneState(snap.state) : undefined;
      const from = { upgradeId, path: paths.events, ...(log.handle ? { handle: log.handle } : {}), start: snap?.offset ?? 0, firstSeq: (snap?.lastSeq ?? 0) + 1, ...(end !== undefined ? { end, durable: end } : {}) };
      for await (const event of scanLog(from, result)) {
        try {
          state = applyEventInPlace(state, event);
        } catch (err) {
          throw corruptedLine(upgradeId, paths.events, event.seq, isProgressError(err) ? err.message : String(err), err);
        }
      }
    } finally {
      await log.handle?.close();
    }
    // The log went after the snapshot was read (one at offset 0, not checked against the log): the
    // upgrade was deleted meanwhile (by another store). The snapshot alone is an older state than the
    // one stored, without its tail.
    if (snap && result.missing) return undefined;
    if (state === undefined) {
      const legacy = await this.#legacyEvents(upgradeId, paths);
      // The first import loaded under the lock (the writer's, right after acquire()): a later load() on
      // this store (a ws-server or dashboard given it) must not make the file as rewritten since the
      // one the first append writes.
      const held = remember ? this.#locks.get(upgradeId) : undefined;
      if (held && held.legacyLoaded === undefined && legacy && legacy.length > 0) held.legacyLoaded = importDigest(legacy);
      return legacy ? replayEvents(legacy) : undefined;
    }
    return state;
  }

  /**
   * The stored events after `afterSeq`, read from the log (never past what is durable here): from the
   * snapshot's offset when `afterSeq` is at or after its seq, else from a line near `afterSeq` found
   * by probing the part of the log the snapshot covers (see `lineNear`), else from the start.
   */
  async *readEvents(upgradeId: string, afterSeq: number, limit = Infinity): AsyncIterable<ProgressEvent> {
    const paths = this.#paths(upgradeId);
    assertReadEvents('@progress/storage-json', upgradeId, afterSeq, limit);
    if (limit === 0) return;
    const writer = this.#open.get(upgradeId);
    const end = writer?.offset ?? this.#closingWriters.get(upgradeId)?.offset ?? this.#uncut.get(upgradeId)?.offset;
    let sent = 0;
    // The log the snapshot's header was checked against, read through the same handle (see #load).
    const log: { handle?: FileHandle } = {};
    try {
      const header = await this.#snapshotHeader(upgradeId, paths, end, log);
      const useSnap = header && header.lastSeq <= afterSeq;
      // Below the snapshot's seq: the part of the log it covers is durable and its line ending at
      // `offset` fits (see #snapshotHeader), so a line near the sought one is found by its bytes.
      // Without this a client resuming a few hundred events behind read the whole log each time.
      const near = header && !useSnap && log.handle ? await lineNear(log.handle, upgradeId, { offset: header.offset, seq: header.lastSeq + 1 }, afterSeq + 1).catch(() => undefined) : undefined;
      const result: ScanResult = { endOffset: 0, lastSeq: 0 };
      const from = {
        upgradeId,
        path: paths.events,
        ...(log.handle ? { handle: log.handle } : {}),
        start: useSnap ? header.offset : (near?.offset ?? 0),
        firstSeq: useSnap ? header.lastSeq + 1 : (near?.seq ?? 1),
        skipThroughSeq: afterSeq,
        // What this store's writer wrote, and the snapshot's part of the log, were acknowledged. (A
        // header that does not fit the log, say for damage just before its offset, is not one to read
        // from; the snapshot itself, checksum and all, still tells what was durable.)
        durable: Math.max(header?.offset ?? (await this.#readSnapshot(upgradeId, paths))?.offset ?? 0, end ?? 0),
        ...(end !== undefined ? { end } : {}),
      };
      let events = scanLog(from, result);
      try {
        let next = await events.next().catch((err: unknown) => {
          // The seek landed on a line whose seq its place does not fit (lines missing or doubled
          // below the snapshot): read from the start, as before the seek, which says what it finds.
          if (!near || !isProgressError(err) || err.code !== 'DATA_CORRUPTED') throw err;
          return undefined;
        });
        if (next === undefined) {
          events = scanLog({ ...from, start: 0, firstSeq: 1 }, result);
          next = await events.next();
        }
        for (; !next.done; next = await events.next()) {
          yield next.value;
          if (++sent >= limit) return;
        }
      } finally {
        await events.return(undefined);
      }
      if (result.lastSeq > 0 || useSnap) return;
    } finally {
      await log.handle?.close();
    }
    for (const event of (await this.#legacyEvents(upgradeId, paths)) ?? []) {
      if (event.seq <= afterSeq) continue;
      yield event;
      if (++sent >= limit) return;
    }
  }

  /**
   * The old Python module's file of an upgrade held only as that file (no new-format log or
   * snapshot yet, not deleted here), with its size, modification time and inode; `undefined` for
   * any other upgrade (one with a log, a deleted one, an unknown one).
   *
   * The events of such an upgrade are derived from the whole file on every read, and the old module
   * may still be rewriting it: a rewrite can change events at seqs already read (a task that starts,
   * a task added ahead of others), so reading "the events after the last seq" does not follow it. A
   * reader that follows an upgrade (`progress watch <folder>`) reads such an upgrade whole again
   * when these values change, and cheaply checks them otherwise.
   *
   * @example
   * const file = await store.legacyFileStat('u1'); // { path, size, mtimeMs, ino } or undefined
   */
  async legacyFileStat(upgradeId: string): Promise<{ path: string; size: number; mtimeMs: number; ino: number } | undefined> {
    const paths = this.#paths(upgradeId);
    // A look that fails otherwise than ENOENT (EACCES: a folder of another user's) is the store's error naming the file, as load() says it.
    const look = (file: string) => exists(file).catch((err: unknown) => Promise.reject(unreadable(upgradeId, file, err)));
    // As load() and readEvents() decide: the log (its first event, or a snapshot) wins over the file.
    if (this.#open.has(upgradeId) || (await look(paths.snapshot)) || ((await stat(paths.events).catch(() => undefined))?.size ?? 0) > 0) return undefined;
    if (await look(paths.legacyHidden)) return undefined;
    const info = await stat(paths.legacy).catch((err: unknown) => {
      if (isCode(err, 'ENOENT')) return undefined;
      throw storeError('STORE_UNAVAILABLE', `upgrade "${upgradeId}": cannot read legacy file ${paths.legacy}`, { upgradeId, file: paths.legacy }, err);
    });
    return info?.isFile() ? { path: paths.legacy, size: info.size, mtimeMs: info.mtimeMs, ino: info.ino } : undefined;
  }

  /** Every upgrade (new and legacy), from snapshots and tails, filtered by core's `filterRows`. A damaged upgrade is logged and left out. */
  async list(filter?: ListFilter): Promise<UpgradeSummaryRow[]> {
    this.#assertOpen();
    assertListFilter(filter);
    const ids = new Set<string>();
    for (const [dir, legacy] of [[upgradesDir(this.#root), false], [legacyDir(this.#root), true]] as const) {
      let entries: Dirent[] = [];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (!isCode(err, 'ENOENT')) throw storeError('STORE_UNAVAILABLE', `cannot read the folder ${dir}`, { file: dir }, err);
      }
      for (const entry of entries) {
        // An upgrade is a folder: a stray file there (a `.DS_Store` from a Finder window, a note
        // someone left) has a name that passes the id check, and loading it as an upgrade would
        // fail with ENOTDIR and take every other upgrade down with it. (A link to a folder is one.)
        if (legacy ? entry.isDirectory() : !entry.isDirectory() && !(entry.isSymbolicLink() && (await stat(join(dir, entry.name)).catch(() => undefined))?.isDirectory())) continue;
        const id = legacy ? legacyIdOf(entry.name) : entry.name;
        if (id !== undefined && isValidId(id)) ids.add(id);
        else if (legacy && id !== undefined) this.#warnUnloadable(join(dir, entry.name), id);
      }
    }
    const rows: UpgradeSummaryRow[] = [];
    /** The upgrades listed under the id of their log, their folder having another case of it on disk. */
    const owners = new Set<string>();
    const all = [...ids];
    for (let i = 0; i < all.length; i += 16) {
      await Promise.all(
        all.slice(i, i + 16).map(async (id) => {
          try {
            const state = await this.#load(id, this.#paths(id));
            if (state) rows.push(toSummaryRow(state));
          } catch (err) {
            // Deleted since the readdir above: it is simply not there any more.
            if (isCodeOrCause(err, 'ENOENT')) return;
            // A folder whose name on disk is another case of the id whose log it holds: made by the
            // other id first (a deleted legacy upgrade's folder, which stays for its marker), on a file
            // system that ignores case. Listed under the id of its log, which loads it there; on one
            // that does not (renamed by hand), that id finds no folder and it is left out, logged.
            if (isCaseConflict(err)) {
              const owner = String((err as ProgressError).context.caseOf);
              // Once: two names on disk may lead to one owner (loads run 16 at a time: marked before the await).
              const first = !ids.has(owner) && !owners.has(owner);
              owners.add(owner);
              const state = first ? await this.#load(owner, this.#paths(owner)).catch(() => undefined) : undefined;
              if (state?.upgradeId === owner) return void rows.push(toSummaryRow(state));
              return void this.#opts.logger.error({ err, upgradeId: id }, 'upgrade left out of list(): its folder holds another upgrade, whose id differs only in case');
            }
            // Files this process may not read (a folder another user made, 0700 as every folder here):
            // like damage, one such upgrade must not hide the others, nor stop every retention run.
            if (isProgressError(err, 'STORE_UNAVAILABLE') && (isCodeOrCause(err, 'EACCES') || isCodeOrCause(err, 'EPERM'))) {
              return void this.#opts.logger.error({ err, upgradeId: id }, 'upgrade left out of list(): this process may not read its files');
            }
            if (!isProgressError(err, 'DATA_CORRUPTED')) throw err;
            this.#opts.logger.error({ err, upgradeId: id }, 'upgrade left out of list(): its data is damaged');
          }
        }),
      );
    }
    return filterRows(rows, filter);
  }

  /**
   * A legacy file whose id is not a valid one (the old module took any string, `prod upgrade 42`
   * too) is not loaded: ids are the names of files and folders here, and every call refuses such an
   * id, so no row of it could be opened, continued or deleted. Loading it under another id (spaces
   * made `_`) could give two files one id. Said once per file and store, instead of leaving it out
   * silently while info() counts it.
   */
  #warnUnloadable(file: string, id: string): void {
    if (this.#unloadable.has(file)) return;
    if (this.#unloadable.size >= 10_000) this.#unloadable.clear();
    this.#unloadable.add(file);
    this.#opts.logger.warn(
      { file, upgradeId: id },
      `legacy file ${file} is not loaded: its upgrade id ${JSON.stringify(id)} is not a valid id (1..128 characters of [A-Za-z0-9_.:-], not . or ..); rename it to upgrade_<a valid id>.json to load it under that id`,
    );
  }

  // ------------------------------------------------------------------ delete and retention

  /**
   * Removes an upgrade's folder (log, snapshot, lock). A legacy file is never touched: a marker in a
   * fresh folder hides it from then on. `CONFLICT` when another writer holds the upgrade.
   */
  delete(upgradeId: string): Promise<boolean> {
    return this.#deleteIf(upgradeId);
  }

  /** delete(); with `still`, only when the upgrade, read again under the writer lock, still passes it (for retention). */
  async #deleteIf(upgradeId: string, still?: (state: UpgradeProgress | undefined) => boolean): Promise<boolean> {
    const paths = this.#paths(upgradeId);
    // As in release(): the writer open now goes; one opened from here on waits for the delete.
    const writer = this.#detachWriter(upgradeId);
    return await this.#lettingGoOf(upgradeId, () => this.#delete(upgradeId, paths, writer, still)).catch((err: unknown) => {
      // A file system error on the way (the lock or a file this process may not read): said as the store's.
      throw isProgressError(err) ? err : storeError('STORE_UNAVAILABLE', `upgrade "${upgradeId}": could not delete it from ${paths.dir}`, { upgradeId, file: paths.dir }, err);
    });
  }

  async #delete(upgradeId: string, paths: UpgradePaths, writer: Promise<LogWriter> | undefined, still?: (state: UpgradeProgress | undefined) => boolean): Promise<boolean> {
    // First, as release() does: the lock of a writer opened just before counts as this store's.
    await this.#closeWriter(upgradeId, writer).catch((err: unknown) => this.#opts.logger.warn({ err, upgradeId }, 'closing a writer failed'));
    // Never another upgrade's files: on a file system that ignores case, `upg-1` names the folder
    // (and legacy file) of `UPG-1`. Looked at before the lock too, so that a live writer of that other
    // upgrade gives false, not CONFLICT.
    if (await this.#belongsToOther(upgradeId, paths)) return false;
    const held = this.#locks.get(upgradeId);
    const other = await lockedByOther(paths.lock, held?.lease.token, this.#opts.lockLeaseMs);
    if (other !== false) {
      const who = other ? ` by ${holderOf(paths.lock, other)}` : '';
      throw storeError('CONFLICT', `upgrade "${upgradeId}" cannot be deleted: it is held for writing${who}`, { upgradeId, lock: paths.lock });
    }
    // Hold the writer lock while the folder goes: a writer that took it between the check above and
    // the rename below would otherwise have its open log moved away under it. A legacy upgrade with
    // no folder yet too: a writer importing it meanwhile would have its log, acknowledged events and
    // all, moved out of the folder the marker is written in.
    // The folder is made for the lock only when there is none yet (a legacy upgrade): one that was
    // there and went meanwhile was deleted by another store (retention running in two processes),
    // and making it again would leave an empty folder behind (list() skips it; nothing removes it).
    const folder = await exists(paths.dir);
    if (!held && (folder || (await exists(paths.legacy)))) {
      try {
        await this.#lock(upgradeId, paths, false, !folder);
      } catch (err) {
        // Its folder went between the look above and the lock: deleted by another store. Nothing is
        // left to delete here.
        if (isCodeOrCause(err, 'ENOENT')) {
          if (!(await exists(paths.dir))) return false;
        }
        throw err;
      }
    }
    // Again under the lock: the folder may hold another upgrade's log since the look above (deleted,
    // then made again by that upgrade), and from here on no one else writes to it. For retention, the
    // upgrade must still be the ended one it listed: another store may have deleted that one since,
    // and a new run been started under its id (which an unreadable upgrade may be too: it stays).
    if (
      (await this.#belongsToOther(upgradeId, paths)) ||
      (still !== undefined &&
        !still(
          await this.#load(upgradeId, paths).catch((err: unknown) => {
            this.#opts.logger.warn({ err, upgradeId }, 'retention skipped an upgrade it could not read again under the writer lock');
            return undefined;
          }),
        ))
    ) {
      const taken = this.#locks.get(upgradeId);
      if (!held && taken) {
        this.#locks.delete(upgradeId);
        await releaseLock(paths.lock, taken.lease, upgradeId, this.#opts.logger);
      }
      return false;
    }
    const logSize = await stat(paths.events).then((s) => s.size, () => 0);
    const legacy = !(await exists(paths.legacyHidden)) && (await exists(paths.legacy));
    const ours = this.#locks.get(upgradeId);
    if (logSize === 0 && !legacy) {
      // The log is empty: no cut is owed to it any more.
      this.#uncut.delete(upgradeId);
      if (!held && ours) {
        this.#locks.delete(upgradeId);
        await releaseLock(paths.lock, ours.lease, upgradeId, this.#opts.logger);
      }
      return false;
    }
    // Not the folder of a writer that took the lock over while we stalled.
    if (ours) await ours.lease.check();
    this.#locks.delete(upgradeId);
    const grave = join(upgradesDir(this.#root), `~deleted-${upgradeId}-${randomBytes(4).toString('hex')}`);
    // With a legacy file, the folder stays (it holds the marker that hides that file); else it goes whole.
    const legacyFile = await exists(paths.legacy);
    let moved: boolean;
    try {
      moved = legacyFile
        ? await this.#emptyHidingLegacy(paths, grave)
        : await rename(paths.dir, grave).then(
            () => true,
            (err: unknown) => {
              if (isCode(err, 'ENOENT')) return false;
              throw err;
            },
          );
    } catch (err) {
      // The folder stays. A lock held before this delete (a tracker open in this store) stays held,
      // with any cut still owed. One this delete took would stay held by no one: the cut it owes is
      // made first (rejected events must not become readable), then it is given back, so that this
      // store (and any other) can take it again at once, and a later run try the delete again.
      if (held) this.#locks.set(upgradeId, held);
      else if (ours) {
        await this.#lastCut(upgradeId, paths, ours.lease);
        await releaseLock(paths.lock, ours.lease, upgradeId, this.#opts.logger).catch(() => forgetLock(ours.lease));
      }
      throw storeError('STORE_UNAVAILABLE', `upgrade "${upgradeId}": could not delete its folder ${paths.dir}`, { upgradeId, file: paths.dir }, err);
    }
    // The log went (with the lock file, when the folder went): no cut is owed to it any more.
    this.#uncut.delete(upgradeId);
    if (ours) {
      if (legacyFile) await releaseLock(paths.lock, ours.lease, upgradeId, this.#opts.logger).catch(() => forgetLock(ours.lease));
      else await forgetLock(ours.lease);
    }
    try {
      if (this.#sync) await fsyncDir(upgradesDir(this.#root));
      if (moved) await rm(grave, { recursive: true, force: true });
      await this.#removeOldGraves(upgradeId);
    } catch (err) {
      // Deleted already (what is left is a folder no reader looks in): the error still says so.
      throw storeError('STORE_UNAVAILABLE', `upgrade "${upgradeId}" is deleted, but its old files could not be removed from ${grave}`, { upgradeId, file: grave }, err);
    }
    // Not moved: another store deleted the folder first (and only a legacy file was hidden here).
    return moved || legacyFile;
  }

  /**
   * Whether the files `upgradeId` names hold another upgrade (logged as a warning): the folder's log
   * (its first line) or snapshot names another id, or, with neither, the legacy file is another id's
   * that differs only in case, found under that other name. A folder that tells nothing (no log yet,
   * or a damaged first line and snapshot) is taken for this id's, as before.
   */
  async #belongsToOther(upgradeId: string, paths: UpgradePaths): Promise<boolean> {
    let other = await this.#folderOwner(paths);
    let file = paths.dir;
    /** Whether `file` was found under another case of its name (read once: it lists the whole folder). */
    let underOtherCase: boolean | undefined;
    if (other === undefined) {
      const inFile = await legacyIdInFile(paths.legacy);
      // A legacy file's id is its name: only one found under another case of that name is another's.
      if (inFile !== undefined && differOnlyInCase(inFile, upgradeId) && (underOtherCase = await foundUnderOtherCase(paths.legacy))) [other, file] = [inFile, paths.legacy];
    }
    if (other === undefined || other === upgradeId) return false;
    const why = differOnlyInCase(other, upgradeId) && (underOtherCase ?? (await foundUnderOtherCase(file))) ? ': the two ids differ only in case, which this file system does not tell apart' : '';
    this.#opts.logger.warn({ upgradeId, holds: other, file }, `delete("${upgradeId}") left ${file} alone: it holds upgrade "${other}"${why}`);
    return true;
  }

  /** The id of the upgrade whose log (its first line) or snapshot is in the folder; `undefined` when neither tells. */
  async #folderOwner(paths: UpgradePaths): Promise<string | undefined> {
    const handle = await open(paths.events, 'r').catch(() => undefined);
    if (handle) {
      try {
        const size = (await handle.stat()).size;
        const first = size > 0 ? await eventAt(handle, 0, size) : undefined;
        if (first) return first.upgradeId;
      } catch {
        // unreadable: the snapshot may tell
      } finally {
        await handle.close();
      }
    }
    const text = await readFile(paths.snapshot, 'utf8').catch(() => undefined);
    return text === undefined ? undefined : decodeSnapshot(text)?.state.upgradeId;
  }

  /**
   * Deletes the upgrade of a legacy file: first the marker that hides the legacy file is written in
   * its folder, which stays; then the upgrade's own files leave the folder for `grave`, the snapshot
   * first (a log without its snapshot is whole; the log holds the imported history too). A crash or
   * a failure at any point leaves the upgrade as acknowledged, or deleted: never the legacy file's
   * older state, which moving the folder away before writing the marker in a new one showed until
   * the marker was written (and for good after a crash there). Returns whether `grave` was made.
   */
  async #emptyHidingLegacy(paths: UpgradePaths, grave: string): Promise<boolean> {
    await ensureDir(paths.dir, this.#sync);
    if (!(await exists(paths.legacyHidden))) await writeFileAtomic(paths.legacyHidden, `${JSON.stringify({ deletedAt: new Date().toISOString() })}\n`, this.#sync);
    const files = [
      [paths.snapshot, 'snapshot.json'],
      [paths.events, 'events.jsonl'],
    ] as const;
    if (!(await exists(paths.snapshot)) && !(await exists(paths.events))) return false;
    await ensureDir(grave, false);
    try {
      for (const [from, name] of files) {
        await rename(from, join(grave, name)).catch((err: unknown) => {
          if (!isCode(err, 'ENOENT')) throw err;
        });
      }
    } catch (err) {
      // The log stays (a reader holds it, EBUSY): the upgrade is not deleted. Its snapshot goes back
      // to it (opening stays snapshot + tail), and no copy of it is left in `grave`.
      await rename(join(grave, 'snapshot.json'), paths.snapshot).catch(() => undefined);
      await rm(grave, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    }
    if (this.#sync) await fsyncDir(paths.dir);
    return true;
  }

  /**
   * Removes what earlier deletes of `upgradeId` left in `upgrades/` (a `~deleted-<id>-<8 hex>` folder
   * whose removal a crash cut short): the old log and snapshot of a deleted upgrade stay on disk
   * otherwise. Only folders a minute old or more: a delete running now in another process fills its own.
   */
  async #removeOldGraves(upgradeId: string): Promise<void> {
    const graves = await (this.#graves ??= this.#findGraves());
    const young: string[] = [];
    for (const name of graves.get(upgradeId) ?? []) {
      const path = join(upgradesDir(this.#root), name);
      const age = await stat(path).then((st) => Date.now() - st.mtimeMs, () => 0);
      if (age < OLD_GRAVE_MS) young.push(name);
      else await rm(path, { recursive: true, force: true }).catch((err: unknown) => this.#opts.logger.warn({ err, upgradeId }, "could not remove an earlier delete's folder"));
    }
    // (One too young now is looked at again by the next delete of the upgrade.)
    if (young.length > 0) graves.set(upgradeId, young);
    else graves.delete(upgradeId);
  }

  /**
   * The `~deleted-<id>-<8 hex>` folders in `upgrades/`, by id: read once per store (they are what a
   * crash left, not made while it runs), so that retention deleting n upgrades does not read the
   * folder n times. A name of exactly that shape only: `~deleted-a-` is not the start of another id's.
   */
  async #findGraves(): Promise<Map<string, string[]>> {
    const graves = new Map<string, string[]>();
    for (const name of await readdir(upgradesDir(this.#root)).catch(() => [] as string[])) {
      const id = name.slice('~deleted-'.length, -9);
      if (!name.startsWith('~deleted-') || name[name.length - 9] !== '-' || !/^[0-9a-f]{8}$/.test(name.slice(-8)) || !isValidId(id)) continue;
      graves.set(id, [...(graves.get(id) ?? []), name]);
    }
    return graves;
  }

  /**
   * Retention: deletes every upgrade that ended (completed, failed, cancelled) more than `ageMs` ago.
   * Upgrades held by another writer are skipped (logged): in another store, or open in this one (a
   * tracker that has not been closed).
   *
   * @returns the ids deleted.
   */
  async deleteCompletedOlderThan(ageMs: number, now: number = Date.now()): Promise<string[]> {
    if (typeof ageMs !== 'number' || !Number.isFinite(ageMs) || ageMs < 0) throw storeError('INVALID_ARGUMENT', `ageMs must be a number >= 0, got ${describeValue(ageMs)}`);
    // `now` far off (Infinity, a date in the seconds) would delete every ended upgrade, however recent.
    if (typeof now !== 'number' || !Number.isFinite(now)) throw storeError('INVALID_ARGUMENT', `now must be a finite number of ms since the epoch, got ${describeValue(now)}`);
    const cutoff = now - ageMs;
    const old = (row: UpgradeSummaryRow): boolean => isTerminal(row.status) && Date.parse(row.completedAt ?? row.updatedAt) < cutoff;
    const deleted: string[] = [];
    for (const row of await this.list()) {
      if (!old(row)) continue;
      // Open for writing in this store (acquire(): a tracker): delete() would not count that lock as another writer's.
      if (this.#locks.get(row.upgradeId)?.explicit) {
        this.#opts.logger.warn({ upgradeId: row.upgradeId }, 'retention skipped an upgrade open for writing in this store');
        continue;
      }
      try {
        if (await this.#deleteIf(row.upgradeId, (state) => state !== undefined && old(toSummaryRow(state)))) deleted.push(row.upgradeId);
      } catch (err) {
        if (isProgressError(err, 'CLOSED')) throw err;
        // One upgrade that cannot be deleted now (held by a writer, a file system error) does not
        // stop the others: the next run tries it again.
        if (isProgressError(err, 'CONFLICT')) this.#opts.logger.warn({ err, upgradeId: row.upgradeId }, 'retention skipped an upgrade held by a writer');
        else this.#opts.logger.error({ err, upgradeId: row.upgradeId }, 'retention could not delete an upgrade; going on with the others');
      }
    }
    return deleted;
  }

  // ------------------------------------------------------------------ info and close

  /** Directory, durability, counts and sizes (read synchronously from the folder: for diagnostics). */
  info(): StoreInfo {
    let upgrades = 0;
    let logBytes = 0;
    let snapshotBytes = 0;
    let legacyFiles = 0;
    try {
      for (const name of readdirSync(upgradesDir(this.#root))) {
        if (!isValidId(name)) continue;
        const paths = this.#paths(name, false);
        try {
          const size = statSync(paths.events).size;
          if (size > 0) upgrades++;
          logBytes += size;
        } catch {
          // no log yet
        }
        try {
          snapshotBytes += statSync(paths.snapshot).size;
        } catch {
          // no snapshot yet
        }
      }
    } catch {
      // no upgrades folder yet
    }
    try {
      legacyFiles = readdirSync(legacyDir(this.#root)).filter((n) => legacyIdOf(n) !== undefined).length;
    } catch {
      // no legacy folder
    }
    const writers = [...this.#open.values()].map((w) => ({ upgradeId: w.upgradeId, lastSeq: w.seq, bytes: w.offset, commits: w.commits }));
    return {
      name: 'JsonFileStore',
      durable: this.#sync,
      directory: this.#root,
      durability: this.#opts.durability,
      snapshotEvery: this.#opts.snapshotEvery,
      upgrades,
      legacyFiles,
      logBytes,
      snapshotBytes,
      openWriters: writers.length,
      eventsInOpenWriters: writers.reduce((n, w) => n + w.lastSeq, 0),
      writers,
      locksHeld: this.#locks.size,
      closed: this.#closed,
    };
  }

  /** Waits for pending writes and snapshots, closes every file and releases every lock. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      // A release or delete running now finishes first (it holds a lock this would let go under it).
      await Promise.all(this.#lettingGo.values());
      // A lock being taken now gives itself back once it sees the store closed (see #taking).
      while (this.#taking.size > 0) await Promise.allSettled([...this.#taking]);
      const ids = new Set([...this.#writers.keys(), ...this.#locks.keys()]);
      for (const id of ids) {
        await this.#dropWriter(id).catch((err: unknown) => this.#opts.logger.warn({ err, upgradeId: id }, 'closing a writer failed'));
        const held = this.#locks.get(id);
        this.#locks.delete(id);
        if (held) await this.#lastCut(id, this.#paths(id, false), held.lease);
        if (held) {
          await releaseLock(this.#paths(id, false).lock, held.lease, id, this.#opts.logger).catch((err: unknown) =>
            this.#opts.logger.warn({ err, upgradeId: id }, 'releasing a lock failed'),
          );
        }
      }
    })();
    return this.#closing;
  }

  // ------------------------------------------------------------------ internals

  async #dropWriter(upgradeId: string): Promise<void> {
    await this.#closeWriter(upgradeId, this.#detachWriter(upgradeId));
  }

  /**
   * Closes a writer taken out of the store (after its pending writes; one that failed to open is
   * nothing to close). One whose failed write could not be cut back leaves that cut owed (#uncut).
   */
  async #closeWriter(upgradeId: string, pending: Promise<LogWriter> | undefined): Promise<void> {
    const writer = await pending?.catch(() => undefined);
    if (!writer) return;
    const owedBefore = writer.cutOwed;
    try {
      // It waits for the write in flight, which may fail and leave its cut owed then.
      await writer.close();
    } finally {
      // Recorded once (not again after a detach recorded it, and #lastCut may have made it since).
      if (writer.cutOwed && !owedBefore) this.#owe(upgradeId, writer);
      if (this.#closingWriters.get(upgradeId) === writer) this.#closingWriters.delete(upgradeId);
    }
  }

  /** Records the cut a broken writer leaves owed, with the lease it wrote under. */
  #owe(upgradeId: string, writer: LogWriter): void {
    this.#uncut.set(upgradeId, { offset: writer.offset, lease: this.#leaseOf.get(writer) });
  }

  /** Takes the upgrade's writer (or its opening) out of the store, so that the next append opens another; close it with #closeWriter. */
  #detachWriter(upgradeId: string): Promise<LogWriter> | undefined {
    // Owed at once (not only once it is closed): a writer opened right after must cut first.
    const open = this.#open.get(upgradeId);
    if (open?.cutOwed) this.#owe(upgradeId, open);
    // Its write in flight is not acknowledged yet: this store's readers must not read it meanwhile.
    if (open) this.#closingWriters.set(upgradeId, open);
    const pending = this.#writers.get(upgradeId);
    this.#writers.delete(upgradeId);
    this.#open.delete(upgradeId);
    return pending;
  }

  /**
   * The upgrade's snapshot when it is sound and the log holds what it covers. With `log`, the log it
   * was checked against is left open there (the caller closes it) for reading the tail from.
   */
  async #readSnapshot(upgradeId: string, paths: UpgradePaths, again = false, log?: { handle?: FileHandle }): Promise<Snapshot | undefined> {
    let text: string;
    try {
      text = await readFile(paths.snapshot, 'utf8');
    } catch (err) {
      if (isCode(err, 'ENOENT')) return undefined;
      throw storeError('STORE_UNAVAILABLE', `upgrade "${upgradeId}": cannot read ${paths.snapshot}`, { upgradeId, file: paths.snapshot }, err);
    }
    const snap = decodeSnapshot(text);
    // Another id's that differs only in case: not damage (see scanLog), and replaying its log instead would only find the same.
    if (snap && differOnlyInCase(snap.state.upgradeId, upgradeId)) throw await caseConflict(upgradeId, snap.state.upgradeId, paths.dir);
    if (snap && snap.state.upgradeId === upgradeId) {
      const misfit = await this.#logMisfit(upgradeId, paths, snap, log);
      if (misfit === undefined) return snap;
      // Deleted since the snapshot was read (the log goes after it): no upgrade, as when both had gone.
      // Or the log is another run's whose line of the snapshot's seq ends at its offset too: the log
      // is read whole (through `log`, when given).
      if (misfit === 'deleted' || misfit === 'another run') return undefined;
      // The upgrade deleted and made again between the two reads (the old snapshot, then the new
      // log): not a loss. Read once more when the snapshot changed meanwhile.
      if (!again && (await readFile(paths.snapshot, 'utf8').catch(() => undefined)) !== text) return this.#readSnapshot(upgradeId, paths, true, log);
      const lost = await this.#logLost(upgradeId, paths, snap, misfit);
      if (this.#sync) throw lost;
      // With durability 'none' a machine crash loses the log's last events by design (often with no
      // snapshot to tell, too): refusing only when the snapshot's rename reached the disk would stop
      // an agent resuming after a reboot until someone moved the file. Said as an error, and the log
      // alone goes on, as the user chose.
      this.#opts.logger.error(
        { err: lost, upgradeId, file: paths.snapshot },
        "durability 'none': the log lost events its snapshot covers (a machine crash?); going on from the log alone, whose seqs after its last event go to new events",
      );
      return undefined;
    }
    this.#opts.logger.warn({ upgradeId, file: paths.snapshot }, 'snapshot is damaged; replaying the whole log instead');
    return undefined;
  }

  /**
   * Why the log does not hold what a sound snapshot of this upgrade covers (`undefined` when it
   * does). The writer writes a snapshot only once the log's write up to its offset has returned (and
   * is durable, with fsync durability), so a crash of the process never leaves one ahead of the log:
   * a log that ends before the offset, or holds no line of seq `lastSeq` ending there, lost
   * acknowledged events (a machine crash with durability 'none', a log cut back or replaced by hand).
   * A damaged line ending there is only damage the snapshot covers: readEvents reports it. With
   * `log`, a log that fits, or is `another run`'s, is left open there (see #readSnapshot).
   */
  async #logMisfit(upgradeId: string, paths: UpgradePaths, snap: Snapshot, log?: { handle?: FileHandle }): Promise<string | 'deleted' | 'another run' | undefined> {
    if (snap.offset === 0) return undefined;
    let handle;
    try {
      handle = await open(paths.events, 'r');
    } catch (err) {
      if (!isCode(err, 'ENOENT')) throw storeError('STORE_UNAVAILABLE', `upgrade "${upgradeId}": cannot read ${paths.events}`, { upgradeId, file: paths.events }, err);
      return (await exists(paths.snapshot)) ? 'is missing' : 'deleted';
    }
    try {
      const size = (await handle.stat()).size;
      if (size < snap.offset) return `ends at byte ${size}, before the snapshot's offset`;
      const nl = Buffer.alloc(1);
      const { bytesRead } = await handle.read(nl, 0, 1, snap.offset - 1);
      if (bytesRead !== 1 || nl[0] !== 0x0a) return `has no line ending at the snapshot's offset`;
      const e = await eventBefore(handle, snap.offset);
      if (e !== undefined && (e.seq !== snap.lastSeq || e.upgradeId !== upgradeId)) return `holds seq ${e.seq} of upgrade "${e.upgradeId}" on the line ending at the snapshot's offset`;
      // The event there is not the one the snapshot's state ends with (its updatedAt is that event's
      // timestamp): the upgrade was deleted and run again since the snapshot was read, the same way,
      // so that the new run's line of that seq ends at the same offset (same events, same lengths).
      // The old snapshot with the new log's tail would be the state of neither run.
      const another = e !== undefined && e.timestamp !== snap.state.updatedAt;
      if (log) {
        log.handle = handle;
        handle = undefined;
      }
      return another ? 'another run' : undefined;
    } catch (err) {
      throw unreadable(upgradeId, paths.events, err);
    } finally {
      await handle?.close();
    }
  }

  /** `DATA_CORRUPTED` for a sound snapshot the log does not hold (see #logMisfit), saying how to go on from the log. */
  async #logLost(upgradeId: string, paths: UpgradePaths, snap: Snapshot, misfit: string): Promise<ProgressError> {
    // What the log holds, for the message (a damaged log says so in its own error, when read alone).
    const held = await scanToEnd({ upgradeId, path: paths.events }).then(
      (r) => r.lastSeq,
      () => undefined,
    );
    const logHolds = held === undefined ? 'its own lines are damaged too' : held === 0 ? 'it holds no event' : `it holds seq 1 to ${held}`;
    return storeError(
      'DATA_CORRUPTED',
      `upgrade "${upgradeId}": ${paths.snapshot} holds the state up to seq ${snap.lastSeq} (the first ${snap.offset} bytes of the log), but ${paths.events} ${misfit} (${logHolds}): ` +
        `the log lost acknowledged events. Both files are left as they are for inspection. To go on from the log alone, move ${paths.snapshot} away: ` +
        `${held === undefined ? "the seqs after the log's last event" : `seq ${held + 1} on`} will then be given to new events, though readers may already have seen the lost events under them`,
      { upgradeId, file: paths.events, snapshot: paths.snapshot, snapshotLastSeq: snap.lastSeq, snapshotOffset: snap.offset, logLastSeq: held },
    );
  }

  /**
   * The seq and offset of the snapshot, from its first bytes only (for readEvents), when the log
   * agrees with them. The header is read without the snapshot's checksum, which covers the whole
   * file, so a damaged header would make readEvents skip events, or report sound lines as damaged.
   * It is used only when the line starting at `offset` is the sound event `lastSeq + 1`, or, when no
   * such line is there (`offset` is the end of the log, or a torn last line starts there), the line
   * ending at `offset` is the sound event `lastSeq`; otherwise the log is read from its start. With
   * `log`, the log a header was found to fit is left open there (the caller closes it).
   */
  async #snapshotHeader(upgradeId: string, paths: UpgradePaths, end: number | undefined, log?: { handle?: FileHandle }): Promise<{ lastSeq: number; offset: number } | undefined> {
    let handle;
    try {
      handle = await open(paths.snapshot, 'r');
    } catch (err) {
      if (isCode(err, 'ENOENT')) return undefined;
      throw storeError('STORE_UNAVAILABLE', `upgrade "${upgradeId}": cannot read ${paths.snapshot}`, { upgradeId, file: paths.snapshot }, err);
    }
    let header;
    try {
      const buf = Buffer.alloc(128);
      const { bytesRead } = await handle.read(buf, 0, 128, 0);
      const m = /^\{"v":1,"lastSeq":(\d+),"offset":(\d+),/.exec(buf.toString('latin1', 0, bytesRead));
      if (!m) return undefined;
      header = { lastSeq: Number(m[1]), offset: Number(m[2]) };
    } catch (err) {
      throw unreadable(upgradeId, paths.snapshot, err);
    } finally {
      await handle.close();
    }
    if (!Number.isSafeInteger(header.lastSeq) || !Number.isSafeInteger(header.offset) || header.offset < 1) return undefined;
    let file: FileHandle | undefined;
    try {
      file = await open(paths.events, 'r');
    } catch {
      return undefined;
    }
    try {
      const size = end ?? (await file.stat()).size;
      if (header.offset > size) return undefined;
      const fits = (e: ProgressEvent | undefined, seq: number): boolean => e !== undefined && e.seq === seq && e.upgradeId === upgradeId;
      const next = await eventAt(file, header.offset, size);
      let fit: boolean;
      if (next !== undefined) {
        const nl = Buffer.alloc(1);
        const { bytesRead } = await file.read(nl, 0, 1, header.offset - 1);
        fit = fits(next, header.lastSeq + 1) && bytesRead === 1 && nl[0] === 0x0a;
      } else {
        // No sound line starts there; eventBefore checks that the byte before `offset` is a newline.
        fit = fits(await eventBefore(file, header.offset), header.lastSeq);
      }
      if (!fit) return undefined;
      if (log) {
        log.handle = file;
        file = undefined;
      }
      return header;
    } catch (err) {
      throw unreadable(upgradeId, paths.events, err);
    } finally {
      await file?.close();
    }
  }

  async #legacyEvents(upgradeId: string, paths: UpgradePaths): Promise<ProgressEvent[] | undefined> {
    if (await exists(paths.legacyHidden)) return undefined;
    return readLegacyEvents(paths.legacy, upgradeId);
  }

  #closedError(): Error {
    return storeError('CLOSED', `JsonFileStore on ${this.#root} is closed`);
  }

  #assertOpen(): void {
    if (this.#closed) throw this.#closedError();
  }

  #paths(upgradeId: string, checkOpen = true): UpgradePaths {
    if (checkOpen) this.#assertOpen();
    // Only ids that passed assertValidId (in upgradePaths) are ever cached.
    let paths = this.#pathCache.get(upgradeId);
    if (!paths) {
      paths = upgradePaths(this.#root, upgradeId);
      if (this.#pathCache.size >= 10_000) this.#pathCache.clear();
      this.#pathCache.set(upgradeId, paths);
    }
    return paths;
  }
}
