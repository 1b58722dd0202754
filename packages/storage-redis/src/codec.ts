import { isValidId, type ProgressEvent, type UpgradeProgress, type UpgradeSummaryRow } from '@progress/core';
import { corrupted } from './errors.js';
import { seqOf } from './keys.js';
import type { StreamEntry } from './scripts.js';

/**
 * The events of a stream entry, checked against its entry id. Two layouts: field `b`, a JSON array of
 * contiguous events whose last seq is the entry id's (one entry per append, the current layout); or
 * field `e`, one event whose seq is the entry id's (development builds before the first release wrote one entry per event,
 * some also with an `i` field, the eventId).
 */
export function decodeEntry(key: string, entry: StreamEntry): ProgressEvent[] {
  const [id, fields] = entry;
  const seq = seqOf(id);
  let json: string | undefined;
  let batch = false;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'b') {
      json = fields[i + 1];
      batch = true;
    } else if (fields[i] === 'e') {
      json = fields[i + 1];
    }
  }
  const what = batch ? `the events up to seq ${seq} (entry ${id})` : `the event at seq ${seq} (entry ${id})`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json ?? '');
  } catch (err) {
    throw corrupted(key, what, err, { seq });
  }
  const events = (batch ? parsed : [parsed]) as ProgressEvent[];
  if (!Array.isArray(events) || events.length === 0) throw corrupted(key, what, undefined, { seq });
  const first = seq - events.length + 1;
  for (let i = 0; i < events.length; i++) {
    const event = events[i];
    if (!event || typeof event !== 'object' || event.seq !== first + i) throw corrupted(key, what, undefined, { seq });
  }
  return events;
}

/** The state of a snapshot key. */
export function decodeSnapshot(key: string, json: string, snapSeq: number): UpgradeProgress {
  let state: UpgradeProgress;
  try {
    state = JSON.parse(json) as UpgradeProgress;
  } catch (err) {
    throw corrupted(key, `the snapshot at seq ${snapSeq}`, err, { seq: snapSeq });
  }
  if (!state || typeof state !== 'object' || state.lastSeq !== snapSeq) throw corrupted(key, `the snapshot at seq ${snapSeq}`, undefined, { seq: snapSeq });
  return state;
}

/**
 * The pointer of one feed entry: field `p`, `<first seq>|<count>|<upgradeId>` (one field: the append
 * script's cheapest entry), or the earlier layout's fields `u` upgradeId, `s` first seq, `n` count;
 * undefined when damaged.
 */
export function decodeFeedEntry(fields: string[]): { upgradeId: string; first: number; count: number } | undefined {
  let upgradeId: string | undefined;
  let first = NaN;
  let count = NaN;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const value = fields[i + 1]!;
    if (fields[i] === 'p') {
      const a = value.indexOf('|');
      const b = a < 0 ? -1 : value.indexOf('|', a + 1);
      if (b < 0) return undefined;
      first = Number(value.slice(0, a));
      count = Number(value.slice(a + 1, b));
      upgradeId = value.slice(b + 1);
    } else if (fields[i] === 'u') upgradeId = value;
    else if (fields[i] === 's') first = Number(value);
    else if (fields[i] === 'n') count = Number(value);
  }
  // An id the store would refuse is damage like a bad seq: skipped, not the end of every upgrade's feed.
  return isValidId(upgradeId) && Number.isSafeInteger(first) && first >= 1 && Number.isSafeInteger(count) && count >= 1 ? { upgradeId, first, count } : undefined;
}

/** Whether stream entry id `a` (`<ms>-<seq>`, as Redis writes it: no leading zeros) comes before `b`; exact for any size. */
export function streamIdBefore(a: string, b: string): boolean {
  const da = a.indexOf('-');
  const db = b.indexOf('-');
  const before = (x: string, y: string): number => (x.length === y.length ? (x < y ? -1 : x > y ? 1 : 0) : x.length < y.length ? -1 : 1);
  const ms = before(a.slice(0, da), b.slice(0, db));
  return ms < 0 || (ms === 0 && before(a.slice(da + 1), b.slice(db + 1)) < 0);
}

/** The feed entry's field value for an append of `count` events from seq `first` (see {@link decodeFeedEntry}). */
export const feedPointer = (upgradeId: string, first: number, count: number): string => `${first}|${count}|${upgradeId}`;

/**
 * The `list()` row of an upgrade's meta hash: the `row` field (JSON, written when more than the fast
 * fields change) with the `fast` field (`lastSeq|overallPercentage|updatedAt`, written by every
 * append) laid over it when it is newer. A row written later than `fast` (by an earlier version of
 * this package, which wrote the whole row every time) wins.
 */
export function decodeRow(key: string, upgradeId: string, json: string, fast: string | null): UpgradeSummaryRow {
  let row: UpgradeSummaryRow;
  try {
    row = JSON.parse(json) as UpgradeSummaryRow;
  } catch (err) {
    throw corrupted(key, 'the field "row"', err, { upgradeId });
  }
  // JSON that is not this upgrade's row (another kind of value, another upgrade's) would be listed
  // as a row without an id, or under another one: damage, like JSON that does not parse.
  if (!row || typeof row !== 'object' || Array.isArray(row) || row.upgradeId !== upgradeId || typeof row.status !== 'string' || typeof row.updatedAt !== 'string' || typeof row.lastSeq !== 'number') {
    throw corrupted(key, 'the field "row"', undefined, { upgradeId });
  }
  if (fast) {
    const a = fast.indexOf('|');
    const b = fast.indexOf('|', a + 1);
    const lastSeq = Number(fast.slice(0, a));
    const pct = Number(fast.slice(a + 1, b));
    if (a < 0 || b < 0 || !Number.isSafeInteger(lastSeq) || !Number.isFinite(pct)) throw corrupted(key, 'the field "fast"', undefined, { upgradeId });
    if (lastSeq >= row.lastSeq) return { ...row, lastSeq, overallPercentage: pct, updatedAt: fast.slice(b + 1) };
  }
  return row;
}
