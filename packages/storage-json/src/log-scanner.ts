import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ProgressEvent } from '@progress/core';
import { caseConflict, differOnlyInCase } from './case-collision.js';
import { corruptedLine, storeError, unreadable } from './errors.js';
import { isCode } from './fs-utils.js';
import { decodeEventLine, writeOffsetOf } from './record-codec.js';

const CHUNK = 1 << 20;

/** Lines the scans walked over (decoded, or only counted), for tests. @internal */
export const scanStats = { lines: 0 };

/** Where to scan `events.jsonl` from, and what to expect there. */
export interface ScanFrom {
  upgradeId: string;
  /** The file, for reading and for error messages. */
  path: string;
  /**
   * The file already open, read instead of opening `path` (and left open): the very log a snapshot
   * was checked against. Another store may delete the upgrade and create it again under the same
   * path meanwhile; its new log is another run's, where the snapshot's offset means nothing.
   */
  handle?: FileHandle;
  /** Byte offset of the first line to read (just after a newline, or 0). @default 0 */
  start?: number;
  /** The seq of the line at `start` (line number = seq). @default 1 */
  firstSeq?: number;
  /** Do not read past this byte offset (a writer's durable end). @default the end of the file */
  end?: number;
  /** Count lines with a seq up to this one without decoding them. @default 0 */
  skipThroughSeq?: number;
  /**
   * The log is known durable below this byte offset (a snapshot's offset, a writer's durable end):
   * damage there is never a torn write. `start` is durable too. @default 0
   */
  durable?: number;
}

/** What a scan found past its last good line. */
export interface ScanResult {
  /** Byte offset just after the last good line. */
  endOffset: number;
  /** The seq of the last good line (`firstSeq - 1` when none). */
  lastSeq: number;
  /**
   * A torn tail: a bad last line (no newline, or damaged), or the damaged rest of the last write (see
   * {@link scanLog}). Where it starts, how long it is, and the line (seq) it starts at.
   */
  torn?: { offset: number; length: number; line: number; reason: string };
  /** The file was not there (read as empty). */
  missing?: true;
}

/** The first damaged line of a scan, and what the scan found after it. */
interface Damage {
  offset: number;
  line: number;
  reason: string;
  /** Lines, sound or not, after the damaged one. */
  after: number;
  /** Why the bytes from the damaged line on cannot be a torn last write, once that is known. */
  refused?: string;
  /**
   * The write offsets the torn write may have begun at: the damaged line's own offset (the write
   * began with it), or the write of the sound line before it, when that write began at or above the
   * floor (below it the log is known durable) and before the damage (the legacy import's lines carry
   * an offset past any line: they were durable before anything was acknowledged).
   */
  writes: [number, number];
  /** The write offset every sound line after the damaged one carries (-2 while none was seen). */
  write: number;
  /** The seq of the last sound line after the damaged one (they must rise). */
  seq: number;
}

/**
 * Reads the events of `events.jsonl` in order, checking each line's checksum, seq and upgrade, and
 * yields them. A bad line stops the events; the scan reads on to the end, to tell a torn tail from
 * damage:
 * - a bad last line (no newline, or damaged) is torn: a crash cut the last write short;
 * - so are the damaged line and everything after it when they all lie in the last write, and the
 *   damage is what a crash leaves: every damaged line holds zero bytes (blocks the file system had
 *   allocated but not yet written), and every sound line after the first damaged one carries the
 *   same write offset, at or before the damage (one write, begun before it, and not acknowledged:
 *   the writer acknowledges a write once all of it is durable, and starts the next one only then);
 * - anything else (a flipped byte, a sound line of a later write, a line of another format) throws
 *   `DATA_CORRUPTED` naming the file and the first damaged line.
 * A torn tail is reported in `result.torn`. A missing file reads as empty (`result.missing`).
 */
export async function* scanLog(from: ScanFrom, result: ScanResult): AsyncGenerator<ProgressEvent> {
  const start = from.start ?? 0;
  const firstSeq = from.firstSeq ?? 1;
  const skip = from.skipThroughSeq ?? 0;
  // Below this the log was acknowledged: a torn write begins at or after it.
  const floor = Math.max(start, from.durable ?? 0);
  result.endOffset = start;
  result.lastSeq = firstSeq - 1;
  delete result.torn;
  delete result.missing;
  let handle: FileHandle;
  if (from.handle) handle = from.handle;
  else {
    try {
      handle = await open(from.path, 'r');
    } catch (err) {
      if (isCode(err, 'ENOENT')) return void (result.missing = true);
      throw storeError('STORE_UNAVAILABLE', `upgrade "${from.upgradeId}": cannot read ${from.path}`, { upgradeId: from.upgradeId, file: from.path }, err);
    }
  }
  try {
    // A read failing past the open (EIO, EISDIR) is the store's STORE_UNAVAILABLE, as a failing open is.
    const limit = from.end ?? (await handle.stat().catch((err: unknown) => Promise.reject(unreadable(from.upgradeId, from.path, err)))).size;
    let pos = start;
    let carry: Buffer = Buffer.alloc(0);
    let carryOffset = start;
    let seq = firstSeq;
    let damage: Damage | undefined;
    // The line before the current one (in `prevData`), for the write offset it carries.
    let prevData: Buffer | undefined;
    let prevAt = 0;
    let prevEnd = 0;
    /** Whether the last line was only counted (skipped), not decoded. */
    let skipped = false;
    while (pos < limit) {
      const want = Math.min(CHUNK, limit - pos);
      const buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await handle.read(buf, 0, want, pos).catch((err: unknown) => Promise.reject(unreadable(from.upgradeId, from.path, err)));
      if (bytesRead === 0) break;
      pos += bytesRead;
      const data = carry.length ? Buffer.concat([carry, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
      let at = 0;
      // The next zero byte, while lines are skipped: a skipped line is counted, not decoded, and one
      // holding zeros (blocks of a torn write, whether its newline survived or the zeros merged it
      // with the next line) must be decoded to be seen.
      let zero = seq <= skip ? data.indexOf(0) : -1;
      for (;;) {
        const nl = data.indexOf(0x0a, at);
        if (nl < 0) break;
        const lineOffset = carryOffset + at;
        scanStats.lines++;
        if (zero >= 0 && zero < at) zero = data.indexOf(0, at);
        if (damage) {
          afterDamage(damage, data.subarray(at, nl), from.upgradeId);
        } else if (seq <= skip && !(zero >= 0 && zero < nl)) {
          prevData = data;
          prevAt = at;
          prevEnd = nl;
          skipped = true;
          seq++;
          result.endOffset = lineOffset + nl - at + 1;
          result.lastSeq = seq - 1;
        } else {
          skipped = false;
          const line = data.subarray(at, nl);
          const decoded = decodeEventLine(line);
          if (typeof decoded === 'string') {
            const before = prevData ? writeOffsetOf(prevData.subarray(prevAt, prevEnd)) : -1;
            damage = { offset: lineOffset, line: seq, reason: `bad ${decoded}`, after: 0, writes: [lineOffset, before >= floor && before < lineOffset ? before : lineOffset], write: -2, seq: seq - 1 };
            prevData = undefined;
            if (lineOffset < floor) damage.refused = 'it lies where the log is known durable';
            else if (line.indexOf(0) < 0) damage.refused = 'no zero bytes';
          } else {
            if (decoded.seq !== seq) throw corruptedLine(from.upgradeId, from.path, seq, `holds seq ${decoded.seq} where seq ${seq} belongs`);
            if (decoded.upgradeId !== from.upgradeId) {
              // The folder of another id that differs only in case: one folder for both on a file
              // system that ignores case. Not damage: CONFLICT, saying so.
              if (differOnlyInCase(decoded.upgradeId, from.upgradeId)) throw await caseConflict(from.upgradeId, decoded.upgradeId, dirname(from.path));
              throw corruptedLine(from.upgradeId, from.path, seq, `belongs to upgrade "${decoded.upgradeId}"`);
            }
            prevData = data;
            prevAt = at;
            prevEnd = nl;
            seq++;
            result.endOffset = lineOffset + nl - at + 1;
            result.lastSeq = decoded.seq;
            yield decoded;
          }
        }
        at = nl + 1;
      }
      carryOffset += at;
      carry = Buffer.from(data.subarray(at));
    }
    if (from.end !== undefined && pos < from.end) {
      // This store's writer acknowledged the log up to `end`: a shorter file was cut back (or
      // replaced) under it, and lost acknowledged events. Read to its end, it would give an older
      // state, or a tail that stops short, as if nothing were missing.
      throw storeError(
        'DATA_CORRUPTED',
        `upgrade "${from.upgradeId}": ${from.path} ends at byte ${pos}, before the ${from.end} bytes this store's writer stored in it: it was cut back or replaced, and lost acknowledged events; the file is left as it is for inspection`,
        { upgradeId: from.upgradeId, file: from.path, size: pos, offset: from.end },
      );
    }
    if (!damage && skipped && prevData) {
      // Every line was only counted: lines removed from the middle by hand (or a log of another run
      // with fewer lines) would read as "nothing after afterSeq" for ever, the events after the hole
      // never reported. The last line counted must be the seq its place says.
      const decoded = decodeEventLine(prevData.subarray(prevAt, prevEnd));
      if (typeof decoded !== 'string' && decoded.seq !== result.lastSeq) throw corruptedLine(from.upgradeId, from.path, result.lastSeq, `holds seq ${decoded.seq} where seq ${result.lastSeq} belongs`);
    }
    if (damage) {
      // Bytes after the last newline are the end of the last write, cut short: anything goes there.
      if (carry.length > 0) damage.after++;
      // A damaged last line on its own is torn whatever its damage (the write it was in ends there),
      // unless it lies where the log is known durable.
      const refused = damage.after === 0 && damage.offset >= floor ? undefined : (damage.refused ?? (damage.write === -2 || damage.writes.includes(damage.write) ? undefined : 'a sound line after it belongs to another write'));
      if (refused !== undefined) throw corruptedLine(from.upgradeId, from.path, damage.line, damage.reason);
      const end = carryOffset + carry.length;
      const reason = damage.after === 0 ? damage.reason : `${damage.reason}, then ${damage.after} more line(s) of the same write`;
      result.torn = { offset: damage.offset, length: end - damage.offset, line: damage.line, reason };
    } else if (carry.length > 0) {
      if (carryOffset < floor) throw corruptedLine(from.upgradeId, from.path, seq, 'no newline at its end, where the log is known durable');
      result.torn = { offset: carryOffset, length: carry.length, line: seq, reason: 'no newline at the end' };
    }
  } finally {
    if (!from.handle) await handle.close();
  }
}

/** Checks one line after the first damaged one: is it still part of a torn last write? */
function afterDamage(damage: Damage, line: Buffer, upgradeId: string): void {
  damage.after++;
  if (damage.refused !== undefined) return;
  const decoded = decodeEventLine(line);
  if (typeof decoded === 'string') {
    if (line.indexOf(0) < 0) damage.refused = `a line after it is damaged without zero bytes (bad ${decoded})`;
    return;
  }
  const write = writeOffsetOf(line);
  if (write < 0) damage.refused = 'a sound line after it has no write offset';
  else if (damage.write !== -2 && write !== damage.write) damage.refused = 'sound lines after it belong to different writes';
  else if (decoded.upgradeId !== upgradeId || decoded.seq <= damage.seq) damage.refused = 'a sound line after it is out of place';
  damage.write = write;
  damage.seq = decoded.seq;
}

/** Runs a scan to its end, collecting nothing but the result (and the events when asked). */
export async function scanToEnd(from: ScanFrom, onEvent?: (e: ProgressEvent) => void): Promise<ScanResult> {
  const result: ScanResult = { endOffset: 0, lastSeq: 0 };
  for await (const e of scanLog(from, result)) onEvent?.(e);
  return result;
}

const decoded = (line: Buffer): ProgressEvent | undefined => {
  const event = decodeEventLine(line);
  return typeof event === 'string' ? undefined : event;
};

/**
 * The event on the line that starts at byte `start` of an open log, read on its own (4 KiB first,
 * more only for a longer line): `undefined` when no complete, sound line starts there before `end`.
 */
export async function eventAt(handle: FileHandle, start: number, end: number): Promise<ProgressEvent | undefined> {
  for (let size = 4096; ; size *= 4) {
    const want = Math.min(size, end - start);
    if (want <= 0) return undefined;
    const buf = Buffer.allocUnsafe(want);
    const { bytesRead } = await handle.read(buf, 0, want, start);
    const nl = buf.subarray(0, bytesRead).indexOf(0x0a);
    if (nl >= 0) return decoded(buf.subarray(0, nl));
    if (bytesRead < want || want === end - start) return undefined;
  }
}

/**
 * The event on the line that ends just before byte `end` of an open log (its newline is the byte at
 * `end - 1`), read backwards on its own: `undefined` when there is no such complete, sound line.
 */
export async function eventBefore(handle: FileHandle, end: number): Promise<ProgressEvent | undefined> {
  if (end < 2) return undefined;
  for (let size = 4096; ; size *= 4) {
    const from = Math.max(0, end - size);
    const buf = Buffer.allocUnsafe(end - from);
    const { bytesRead } = await handle.read(buf, 0, buf.length, from);
    if (bytesRead !== buf.length || buf[buf.length - 1] !== 0x0a) return undefined;
    const nl = buf.lastIndexOf(0x0a, buf.length - 2);
    if (nl >= 0 || from === 0) return decoded(buf.subarray(nl + 1, buf.length - 1));
  }
}

/**
 * How close a seek ({@link lineNear}) gets to the sought line, in bytes: the scan counts the lines
 * in between (cheaply), and one more probe would cost about as much as counting them.
 */
const NEAR = 1 << 16;

/**
 * A line of the log below `below.offset` (the part a snapshot covers, known durable, whose line at
 * `below.offset` holds `below.seq`) whose seq is at most `target`, some {@link NEAR} bytes or less
 * before the line of `target` (or that line itself): its offset and seq, for a scan to start there.
 * Found by probing bytes, aimed where the mean length of the lines puts the line (most often one
 * probe), halving the range every other probe at worst. Every probe decodes a line (checksum and
 * all), which must be the upgrade's and hold a seq between those of the lines probed before and
 * after it. `undefined` when the line of `target` lies near the start, or a probe found anything
 * else (a damaged line, another upgrade's, a seq out of place): the caller reads from the start then.
 */
export async function lineNear(handle: FileHandle, upgradeId: string, below: { offset: number; seq: number }, target: number): Promise<{ offset: number; seq: number } | undefined> {
  // The line at `lo` holds `loSeq` (the log's first line, seq 1); the first line at or after `hi`
  // holds `hiSeq`, and none after it less. So the line of `target` lies in [lo, hi).
  let lo = 0;
  let loSeq = 1;
  let hi = below.offset;
  let hiSeq = below.seq;
  if (target <= loSeq || target >= hiSeq) return undefined;
  let bisect = false;
  // Near enough: the range is small, or the line at `lo` is, by the lines' mean length in it.
  while (hi - lo > NEAR && (target - loSeq) * (hi - lo) > NEAR * (hiSeq - loSeq)) {
    const width = hi - lo;
    const aim = bisect ? lo + width / 2 : lo + (width * (target - loSeq)) / (hiSeq - loSeq) - NEAR / 2;
    const at = Math.min(hi - 1, Math.max(lo + 1, Math.floor(aim)));
    const probe = await lineFrom(handle, at, hi, below.offset);
    if (probe === undefined) return undefined;
    if (probe === 'none') {
      // No line starts in [at, hi) (a line longer than that): the line of `target` lies before it.
      hi = at;
    } else {
      const e = probe.event;
      if (e === undefined || e.upgradeId !== upgradeId || e.seq <= loSeq || e.seq >= hiSeq) return undefined;
      if (e.seq <= target) {
        lo = probe.start;
        loSeq = e.seq;
      } else {
        hi = probe.start;
        hiSeq = e.seq;
      }
    }
    // An aim that left more than half the range (lines of very different lengths): halve it next.
    bisect = !bisect && hi - lo > width / 2;
  }
  return lo === 0 ? undefined : { offset: lo, seq: loSeq };
}

/**
 * The first line that starts at or after byte `pos` (> 0) and before `limit`, just after the first
 * newline at or after `pos - 1`, with its event (`undefined` when it is not a complete sound line
 * ending by `end`); `'none'` when no line starts there; `undefined` when the file ends before `limit`.
 */
async function lineFrom(handle: FileHandle, pos: number, limit: number, end: number): Promise<{ start: number; event: ProgressEvent | undefined } | 'none' | undefined> {
  let at = pos - 1;
  for (let size = 4096; at < limit - 1; size = Math.min(size * 4, CHUNK)) {
    const want = Math.min(size, end - at);
    const buf = Buffer.allocUnsafe(want);
    const { bytesRead } = await handle.read(buf, 0, want, at);
    const data = buf.subarray(0, bytesRead);
    const nl = data.indexOf(0x0a);
    if (nl >= 0) {
      if (at + nl >= limit - 1) return 'none';
      const start = at + nl + 1;
      // The whole line is most often in the bytes read already.
      const next = data.indexOf(0x0a, nl + 1);
      return { start, event: next >= 0 ? decoded(data.subarray(nl + 1, next)) : await eventAt(handle, start, end) };
    }
    if (bytesRead < want) return undefined;
    at += want;
  }
  return 'none';
}
