import { eventToJson, type ProgressEvent, type UpgradeProgress } from '@progress/core';
import { crc32, crc32Hex } from './checksum.js';

const LINE_HEAD = '{"c":"';
const LINE_WRITE = '","w":"';
const LINE_MID = '","e":';
/** Hex digits of a line's write offset: any offset below 2^52 (4 PiB). */
const WRITE_DIGITS = 13;
/** Where a line's write offset starts: after `{"c":"` and the checksum's 8 hex digits, and `","w":"`. */
const WRITE_AT = LINE_HEAD.length + 8 + LINE_WRITE.length;
/** Bytes before the event JSON in a line: `{"c":"` + 8 hex digits + `","w":"` + 13 hex digits + `","e":`. */
const EVENT_START = WRITE_AT + WRITE_DIGITS + LINE_MID.length;
/** The same in lines written before the write offset existed: `{"c":"` + 8 hex digits + `","e":`. */
const EVENT_START_V0 = LINE_HEAD.length + 8 + LINE_MID.length;
const HEX8 = /^[0-9a-f]{8}$/;
const HEX_WRITE = /^[0-9a-f]{13}$/;
const ZERO_WRITE = '0'.repeat(WRITE_DIGITS);

/**
 * One line of `events.jsonl`: `{"c":"<crc32 of the event JSON>","w":"<write offset>","e":<event JSON>}`
 * and a newline. The checksum covers the exact bytes of the event JSON, so a torn or flipped byte is
 * detected. The write offset (13 lowercase hex digits) is the byte offset in the log where the write
 * that holds the line begins: every line of one write carries the same one. After a crash it tells
 * the lines of the last write, which was never acknowledged, from the ones before it (see
 * `log-scanner.ts`). It is not in the checksum: the writer stamps it when it knows where the write
 * goes ({@link stampWriteOffset}), and a tear cannot damage it alone (it sits between the checksum
 * and the event, which the checksum covers). Encoded here as 0 (a write at the start of the file).
 */
export function encodeEventLine(event: ProgressEvent): string {
  const json = eventToJson(event);
  return `${LINE_HEAD}${crc32Hex(json)}${LINE_WRITE}${ZERO_WRITE}${LINE_MID}${json}}\n`;
}

let scratch = Buffer.allocUnsafe(1 << 16);
/** `{"c":"00000000","w":"0000000000000","e":` as bytes: the head of every line, its hex digits filled in place. */
const HEAD_BYTES = Buffer.from(`${LINE_HEAD}00000000${LINE_WRITE}${ZERO_WRITE}${LINE_MID}`, 'latin1');
const HEX = Buffer.from('0123456789abcdef', 'latin1');

/**
 * The lines of `events` (see {@link encodeEventLine}) in one buffer, each event's JSON encoded to
 * UTF-8 once, straight into place, and checksummed there. Same bytes as `encodeEventLine`, faster.
 */
export function encodeEvents(events: readonly ProgressEvent[]): Buffer {
  let pos = 0;
  for (const event of events) {
    const json = eventToJson(event);
    const need = pos + EVENT_START + json.length * 3 + 2;
    if (need > scratch.length) {
      const bigger = Buffer.allocUnsafe(Math.max(need, scratch.length * 2));
      scratch.copy(bigger, 0, 0, pos);
      scratch = bigger;
    }
    scratch.set(HEAD_BYTES, pos);
    const start = pos + EVENT_START;
    const n = scratch.write(json, start, 'utf8');
    let crc = crc32(scratch.subarray(start, start + n));
    for (let i = pos + LINE_HEAD.length + 7; i >= pos + LINE_HEAD.length; i--) {
      scratch[i] = HEX[crc & 0xf]!;
      crc >>>= 4;
    }
    scratch[start + n] = 0x7d; // }
    scratch[start + n + 1] = 0x0a; // newline
    pos = start + n + 2;
  }
  return Buffer.from(scratch.subarray(0, pos));
}

/**
 * The write offset of lines made durable before anything was acknowledged (the legacy import, written
 * to a temp file, synced and renamed into place): it names no write a crash can tear, so damage among
 * such lines is never taken for a torn last write.
 */
export const DURABLE_WRITE = 2 ** (4 * WRITE_DIGITS) - 1;

/**
 * Stamps `offset` as the write offset of every line in `lines` (whole lines of {@link encodeEvents}),
 * in place: the writer calls it once it knows where in the log the write that holds them goes.
 */
export function stampWriteOffset(lines: Buffer, offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset >= 2 ** (4 * WRITE_DIGITS)) throw new RangeError(`write offset ${offset} does not fit ${WRITE_DIGITS} hex digits`);
  const digits = Buffer.from(offset.toString(16).padStart(WRITE_DIGITS, '0'), 'latin1');
  for (let at = 0; at < lines.length; ) {
    digits.copy(lines, at + WRITE_AT);
    const nl = lines.indexOf(0x0a, at + EVENT_START);
    if (nl < 0) break;
    at = nl + 1;
  }
}

/**
 * The write offset a sound line carries (see {@link encodeEventLine}); -1 for a line written before
 * lines carried one. Only for a line that {@link decodeEventLine} accepted.
 */
export function writeOffsetOf(line: Buffer): number {
  if (line.toString('latin1', WRITE_AT - LINE_WRITE.length, WRITE_AT) !== LINE_WRITE) return -1;
  return parseInt(line.toString('latin1', WRITE_AT, WRITE_AT + WRITE_DIGITS), 16);
}

/** Why a line could not be decoded. */
export type LineProblem = 'format' | 'checksum' | 'json' | 'shape';

/** The event of a line (without its newline), or the reason it is damaged. */
export function decodeEventLine(line: Buffer): ProgressEvent | LineProblem {
  if (line.length < EVENT_START_V0 + 2 || line[line.length - 1] !== 0x7d /* } */) return 'format';
  // The line's format: with the write offset, or from before it (`","e":` right after the checksum).
  const start = line.toString('latin1', WRITE_AT - LINE_WRITE.length, WRITE_AT) === LINE_WRITE ? EVENT_START : EVENT_START_V0;
  if (line.length < start + 2) return 'format';
  const head = line.toString('latin1', 0, start);
  if (!head.startsWith(LINE_HEAD) || !head.endsWith(LINE_MID) || !HEX8.test(head.slice(LINE_HEAD.length, LINE_HEAD.length + 8))) return 'format';
  if (start === EVENT_START && !HEX_WRITE.test(head.slice(WRITE_AT, WRITE_AT + WRITE_DIGITS))) return 'format';
  const body = line.subarray(start, line.length - 1);
  if (crc32Hex(body) !== head.slice(LINE_HEAD.length, LINE_HEAD.length + 8)) return 'checksum';
  let event: unknown;
  try {
    event = JSON.parse(body.toString('utf8'));
  } catch {
    return 'json';
  }
  return hasEventShape(event) ? event : 'shape';
}

/** The shape a line's event must have to be read back (the writer refuses events without it). */
export function hasEventShape(event: unknown): event is ProgressEvent {
  if (!event || typeof event !== 'object') return false;
  const e = event as Partial<ProgressEvent>;
  return typeof e.seq === 'number' && typeof e.upgradeId === 'string' && typeof e.type === 'string' && typeof e.eventId === 'string';
}

/** What `snapshot.json` says besides the state. */
export interface SnapshotHeader {
  /** Format version, 1. */
  v: 1;
  /** The seq of the last event folded into the state. */
  lastSeq: number;
  /** Byte offset in `events.jsonl` just after the line of `lastSeq`. */
  offset: number;
}

/** A decoded snapshot. */
export interface Snapshot extends SnapshotHeader {
  state: UpgradeProgress;
}

const snapshotHead = (h: SnapshotHeader, crc: string): string => `{"v":${h.v},"lastSeq":${h.lastSeq},"offset":${h.offset},"c":"${crc}","state":`;

/** The CRC-32 of a snapshot covers its seq, its offset and the exact state JSON. */
const snapshotCrc = (h: SnapshotHeader, stateJson: string): string => crc32Hex(`${h.lastSeq} ${h.offset} ${stateJson}`);

/** `snapshot.json`: valid JSON whose `c` is the CRC-32 of its seq, offset and the exact state JSON that follows. */
export function encodeSnapshot(header: SnapshotHeader, stateJson: string): string {
  return `${snapshotHead(header, snapshotCrc(header, stateJson))}${stateJson}}\n`;
}

/** The snapshot in `text`, or `undefined` when it is damaged in any way. */
export function decodeSnapshot(text: string): Snapshot | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  const p = parsed as Partial<Snapshot> & { c?: unknown };
  if (!p || p.v !== 1 || !Number.isSafeInteger(p.lastSeq) || !Number.isSafeInteger(p.offset) || typeof p.c !== 'string' || !p.state) return undefined;
  const head = snapshotHead(p as SnapshotHeader, p.c);
  const trimmed = text.endsWith('\n') ? text.slice(0, -1) : text;
  if (!trimmed.startsWith(head) || !trimmed.endsWith('}')) return undefined;
  if (snapshotCrc(p as SnapshotHeader, trimmed.slice(head.length, -1)) !== p.c) return undefined;
  if (p.state.lastSeq !== p.lastSeq) return undefined;
  return { v: 1, lastSeq: p.lastSeq!, offset: p.offset!, state: p.state };
}
