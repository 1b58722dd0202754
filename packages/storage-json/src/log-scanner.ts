import { open, type FileHandle } from 'node:fs/promises';
import type { ProgressEvent } from '@progress/core';
import { corruptedLine } from './errors.js';
import { isCode } from './fs-utils.js';
import { decodeEventLine } from './record-codec.js';

const CHUNK = 1 << 20;

/** Where to scan `events.jsonl` from, and what to expect there. */
export interface ScanFrom {
  upgradeId: string;
  /** The file, for reading and for error messages. */
  path: string;
  /** Byte offset of the first line to read (just after a newline, or 0). @default 0 */
  start?: number;
  /** The seq of the line at `start` (line number = seq). @default 1 */
  firstSeq?: number;
  /** Do not read past this byte offset (a writer's durable end). @default the end of the file */
  end?: number;
  /** Count lines with a seq up to this one without decoding them. @default 0 */
  skipThroughSeq?: number;
}

/** What a scan found past its last good line. */
export interface ScanResult {
  /** Byte offset just after the last good line. */
  endOffset: number;
  /** The seq of the last good line (`firstSeq - 1` when none). */
  lastSeq: number;
  /** A torn last line (no newline, or a bad final line): where it starts and how long it is. */
  torn?: { offset: number; length: number; line: number; reason: string };
}

/**
 * Reads the events of `events.jsonl` in order, checking each line's checksum, seq and upgrade. A bad
 * final line (torn by a crash) ends the scan and is reported in `result.torn`; a bad line anywhere
 * else throws `DATA_CORRUPTED` naming the file and line. A missing file reads as empty.
 */
export async function* scanLog(from: ScanFrom, result: ScanResult): AsyncGenerator<ProgressEvent> {
  const start = from.start ?? 0;
  const firstSeq = from.firstSeq ?? 1;
  const skip = from.skipThroughSeq ?? 0;
  result.endOffset = start;
  result.lastSeq = firstSeq - 1;
  delete result.torn;
  let handle: FileHandle;
  try {
    handle = await open(from.path, 'r');
  } catch (err) {
    if (isCode(err, 'ENOENT')) return;
    throw err;
  }
  try {
    const limit = from.end ?? (await handle.stat()).size;
    let pos = start;
    let carry: Buffer = Buffer.alloc(0);
    let carryOffset = start;
    let seq = firstSeq;
    let suspect: { offset: number; length: number; line: number; reason: string } | undefined;
    while (pos < limit) {
      const want = Math.min(CHUNK, limit - pos);
      const buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await handle.read(buf, 0, want, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      const data = carry.length ? Buffer.concat([carry, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
      let at = 0;
      for (;;) {
        const nl = data.indexOf(0x0a, at);
        if (nl < 0) break;
        const lineOffset = carryOffset + at;
        if (suspect) throw corruptedLine(from.upgradeId, from.path, suspect.line, suspect.reason);
        if (seq <= skip) {
          seq++;
          result.endOffset = lineOffset + nl - at + 1;
          result.lastSeq = seq - 1;
        } else {
          const decoded = decodeEventLine(data.subarray(at, nl));
          if (typeof decoded === 'string') {
            suspect = { offset: lineOffset, length: nl - at + 1, line: seq, reason: `bad ${decoded}` };
          } else {
            if (decoded.seq !== seq) throw corruptedLine(from.upgradeId, from.path, seq, `holds seq ${decoded.seq} where seq ${seq} belongs`);
            if (decoded.upgradeId !== from.upgradeId) throw corruptedLine(from.upgradeId, from.path, seq, `belongs to upgrade "${decoded.upgradeId}"`);
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
    if (carry.length > 0) {
      if (suspect) throw corruptedLine(from.upgradeId, from.path, suspect.line, suspect.reason);
      result.torn = { offset: carryOffset, length: carry.length, line: seq, reason: 'no newline at the end' };
    } else if (suspect) {
      result.torn = suspect;
    }
  } finally {
    await handle.close();
  }
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
