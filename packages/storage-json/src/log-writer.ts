import { constants, fstatSync, lstatSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Logger } from '@progress/core';
import { storeError } from './errors.js';
import { NOFOLLOW, fsyncDir, isCode, writeFileAtomic } from './fs-utils.js';
import { FILE_MODE, type UpgradePaths } from './layout.js';
import { encodeSnapshot, stampWriteOffset } from './record-codec.js';

/** Where a writer starts: the end of the good part of the log, as found by a scan. */
export interface WriterStart {
  seq: number;
  offset: number;
}

interface Pending {
  data: Buffer;
  count: number;
  resolve: () => void;
  reject: (err: unknown) => void;
  snapshot?: string | undefined;
}

/**
 * The one writer of an upgrade's `events.jsonl` in this store. It keeps the open file, the seq and
 * the byte offset in memory, so an append never reads the log. Appends that arrive while a write is
 * in flight are committed together: one write and one `fdatasync` for all of them (group commit).
 * After each durable batch that crossed a snapshot boundary it writes `snapshot.json` atomically,
 * in the background.
 */
export class LogWriter {
  readonly upgradeId: string;
  readonly #paths: UpgradePaths;
  readonly #sync: boolean;
  readonly #logger: Logger;
  readonly #guard: () => Promise<void> | undefined;
  #handle: FileHandle | undefined;
  /** Seq and byte offset of what is durable. */
  #seq: number;
  #offset: number;
  /** Seq once every accepted append is written: what the next append must expect. */
  #projected: number;
  #queue: Pending[] = [];
  #writing: Promise<void> | undefined;
  #snapshots: Promise<void> = Promise.resolve();
  #nextSnapshot: { stateJson: string; lastSeq: number; offset: number } | undefined;
  #broken: Error | undefined;
  /** Set once the log under this writer was found changed by someone else: every later append rejects with it. */
  #moved: Error | undefined;
  #closed = false;
  #commits = 0;

  /**
   * @param options.guard Called before each write to the log or the snapshot: `undefined` to go on, or
   *   a promise that rejects when this writer must not write (its writer lock was taken over). It is
   *   the writer lock's lease check, which is a clock compare unless the lease lapsed.
   */
  constructor(upgradeId: string, paths: UpgradePaths, start: WriterStart, options: { sync: boolean; logger: Logger; guard?: () => Promise<void> | undefined }) {
    this.upgradeId = upgradeId;
    this.#paths = paths;
    this.#sync = options.sync;
    this.#logger = options.logger;
    this.#guard = options.guard ?? (() => undefined);
    this.#seq = start.seq;
    this.#offset = start.offset;
    this.#projected = start.seq;
  }

  /** The last durable seq. */
  get seq(): number {
    return this.#seq;
  }

  /** Whether a failed write's cut back failed too: what it left past {@link offset} must still go. */
  get cutOwed(): boolean {
    return this.#broken !== undefined;
  }

  /** Byte length of the durable part of the log. */
  get offset(): number {
    return this.#offset;
  }

  /** How many writes (each with its sync) this writer made: fewer than appends when group commit kicks in. */
  get commits(): number {
    return this.#commits;
  }

  /** Set when the log could not be brought back to a known state after a failed write. */
  get broken(): boolean {
    return this.#broken !== undefined || this.#closed;
  }

  /**
   * Queues encoded lines for the next write. Checks `expectedSeq` against the seq every accepted
   * append will have reached (CONFLICT otherwise), synchronously, so two racing appends at one seq
   * cannot both pass.
   *
   * @param snapshot The JSON of the state after these lines, when a snapshot is due.
   */
  append(data: Buffer, count: number, expectedSeq: number, snapshot?: string): Promise<void> {
    if (this.#broken) return Promise.reject(storeError('STORE_UNAVAILABLE', `upgrade "${this.upgradeId}": the log is not writable`, { upgradeId: this.upgradeId }, this.#broken));
    if (this.#moved) return Promise.reject(this.#moved);
    if (this.#closed) return Promise.reject(storeError('CLOSED', `upgrade "${this.upgradeId}": the writer is closed`, { upgradeId: this.upgradeId }));
    if (expectedSeq !== this.#projected) {
      return Promise.reject(
        storeError('CONFLICT', `upgrade "${this.upgradeId}" is at seq ${this.#projected}, not ${expectedSeq}`, {
          upgradeId: this.upgradeId,
          expectedSeq,
          storedSeq: this.#projected,
        }),
      );
    }
    this.#projected += count;
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ data, count, resolve, reject, snapshot });
      this.#writing ??= this.#drain();
    });
  }

  /**
   * With fsync durability the log is opened O_DSYNC where the platform has it: each write returns
   * once its data is durable, as write + fdatasync would, in one system call instead of two.
   */
  get #dsync(): number {
    return this.#sync ? (constants.O_DSYNC ?? 0) : 0;
  }

  async #file(): Promise<FileHandle> {
    if (this.#handle) return this.#handle;
    try {
      this.#handle = await open(this.#paths.events, constants.O_RDWR | NOFOLLOW | this.#dsync);
    } catch (err) {
      if (!isCode(err, 'ENOENT')) throw err;
      // Gone since the writer found its end there: made afresh, it would get our lines after a hole.
      if (this.#offset > 0) throw this.#changed(`is gone`, 'DATA_CORRUPTED');
      this.#handle = await open(this.#paths.events, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | NOFOLLOW | this.#dsync, FILE_MODE);
      if (this.#sync) await fsyncDir(this.#paths.dir);
    }
    return this.#handle;
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue;
      this.#queue = [];
      const parts: Buffer[] = [];
      let count = 0;
      let length = 0;
      for (const p of batch) {
        parts.push(p.data);
        count += p.count;
        length += p.data.length;
      }
      const buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
      const guarding = this.#guard();
      if (guarding) {
        try {
          await guarding;
        } catch (err) {
          this.#refuse(err, batch);
          continue;
        }
      }
      let file: FileHandle;
      try {
        file = this.#handle ?? (await this.#file());
        this.#assertUnchanged(file);
      } catch (err) {
        // Past the caller's `this.#writing ??= this.#drain()` first: refused without an await, the
        // first batch would clear #writing before that assignment sets it, for good.
        await Promise.resolve();
        if (err === this.#moved) this.#refuse(err, batch);
        else await this.#undo(err, batch);
        continue;
      }
      try {
        // Every line of the write names where it begins: after a crash, the lines of a torn last write
        // are told from acknowledged ones by it (see log-scanner.ts).
        stampWriteOffset(buf, this.#offset);
        let done = 0;
        while (done < buf.length) {
          const { bytesWritten } = await file.write(buf, done, buf.length - done, this.#offset + done);
          done += bytesWritten;
        }
        if (this.#sync && this.#dsync === 0) await file.datasync();
      } catch (err) {
        await this.#undo(err, batch);
        continue;
      }
      // Offsets of each append's end, for its snapshot.
      let end = this.#offset;
      let seq = this.#seq;
      for (const p of batch) {
        end += p.data.length;
        seq += p.count;
        if (p.snapshot !== undefined) this.#snapshot(p.snapshot, seq, end);
      }
      this.#commits++;
      this.#offset += buf.length;
      this.#seq += count;
      for (const p of batch) p.resolve();
    }
    this.#writing = undefined;
  }

  /**
   * Checks, before a write, that the log is still the file this writer found and wrote, and ends where
   * its last write ended. Someone else may have changed it: deleted it (a cleanup cron), cut it back
   * or put an older copy in its place (a restore from backup), removed the whole folder, or written
   * to it (a second writer, the lock file deleted by hand). Written at the offset kept in memory, the
   * batch would be acknowledged in an unlinked file (gone at close), after a hole of zeros, or over
   * another writer's lines. Two `stat` calls, no read of the log.
   */
  #assertUnchanged(file: FileHandle): void {
    const own = fstatSync(file.fd);
    let named;
    try {
      named = lstatSync(this.#paths.events);
    } catch (err) {
      if (!isCode(err, 'ENOENT') && !isCode(err, 'ENOTDIR')) throw err;
    }
    if (named === undefined) throw this.#changed('is gone (deleted, or its folder was)', 'DATA_CORRUPTED');
    if (named.ino !== own.ino || named.dev !== own.dev) throw this.#changed('was replaced by another file', 'DATA_CORRUPTED');
    if (own.size < this.#offset) throw this.#changed(`was cut back to ${own.size} bytes`, 'DATA_CORRUPTED');
    if (own.size > this.#offset) throw this.#changed(`grew to ${own.size} bytes: another writer wrote to it (was its writer.lock deleted?)`, 'CONFLICT');
  }

  /** The error of a log changed under this writer (see {@link #assertUnchanged}), kept: every later append rejects with it. */
  #changed(what: string, code: 'DATA_CORRUPTED' | 'CONFLICT'): Error {
    this.#moved ??= storeError(
      code,
      `upgrade "${this.upgradeId}": its log ${this.#paths.events} ${what} while this writer held it at seq ${this.#seq} (byte ${this.#offset}); nothing was written, and this store writes no more to the upgrade until it is released`,
      { upgradeId: this.upgradeId, file: this.#paths.events, seq: this.#seq, offset: this.#offset },
    );
    this.#logger.error({ err: this.#moved, upgradeId: this.upgradeId, file: this.#paths.events }, 'the log changed under its writer; this store stops writing the upgrade');
    return this.#moved;
  }

  /** A failed write: cut the file back to the durable end, and reject the batch and what queued behind it. */
  async #undo(cause: unknown, batch: Pending[]): Promise<void> {
    const behind = this.#queue;
    this.#queue = [];
    this.#projected = this.#seq;
    try {
      if (this.#handle) {
        await this.#handle.truncate(this.#offset);
        if (this.#sync) await this.#handle.datasync();
      }
    } catch (err) {
      this.#broken = err instanceof Error ? err : new Error(String(err));
      this.#logger.error({ err, upgradeId: this.upgradeId }, 'could not cut the log back after a failed write; the writer stops');
    }
    this.#logger.error({ err: cause, upgradeId: this.upgradeId, seq: this.#seq }, 'append failed; events not stored');
    const error = storeError('STORE_UNAVAILABLE', `upgrade "${this.upgradeId}": could not write ${this.#paths.events}`, { upgradeId: this.upgradeId, file: this.#paths.events }, cause);
    for (const p of [...batch, ...behind]) p.reject(error);
  }

  /** The lock forbade the write: nothing was written, so the batch and what queued behind it are only rejected (the log is not cut back: it may be another writer's now). */
  #refuse(err: unknown, batch: Pending[]): void {
    const behind = this.#queue;
    this.#queue = [];
    this.#projected = this.#seq;
    for (const p of [...batch, ...behind]) p.reject(err);
  }

  /**
   * Queues a snapshot. At most one waits behind the one being written: a newer one replaces it, so a
   * fast writer never piles up snapshot writes.
   */
  #snapshot(stateJson: string, lastSeq: number, offset: number): void {
    const queued = this.#nextSnapshot !== undefined;
    this.#nextSnapshot = { stateJson, lastSeq, offset };
    if (queued) return;
    this.#snapshots = this.#snapshots.then(async () => {
      const next = this.#nextSnapshot!;
      this.#nextSnapshot = undefined;
      try {
        // An old snapshot over the one of the writer that took the lock over would only cost replay
        // time, but the lock says who writes this folder.
        await this.#guard();
        await writeFileAtomic(this.#paths.snapshot, encodeSnapshot({ v: 1, lastSeq: next.lastSeq, offset: next.offset }, next.stateJson), this.#sync);
      } catch (err) {
        this.#logger.warn({ err, upgradeId: this.upgradeId, lastSeq: next.lastSeq }, 'snapshot write failed; load() replays more of the log until the next one');
      }
    });
  }

  /** Waits for queued writes and snapshots, then closes the file. Idempotent. */
  async close(): Promise<void> {
    while (this.#writing) await this.#writing;
    this.#closed = true;
    await this.#snapshots;
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
  }
}
