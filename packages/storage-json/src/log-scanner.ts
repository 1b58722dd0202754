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
