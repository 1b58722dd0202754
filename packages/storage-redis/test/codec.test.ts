import { describe, expect, it } from 'vitest';
import { decodeEntry, decodeFeedEntry, decodeRow, decodeSnapshot, feedPointer, streamIdBefore } from '../src/codec.js';

describe('decodeFeedEntry', () => {
  it('reads the one-field layout the append script writes, whatever valid id it names', () => {
    expect(decodeFeedEntry(['p', feedPointer('u1', 3, 2)])).toEqual({ upgradeId: 'u1', first: 3, count: 2 });
    expect(decodeFeedEntry(['p', feedPointer('eks.prod-1:2026_11', 1, 100)])).toEqual({ upgradeId: 'eks.prod-1:2026_11', first: 1, count: 100 });
  });

  it('reads the earlier layout (u, s, n)', () => {
    expect(decodeFeedEntry(['u', 'u1', 's', '7', 'n', '1'])).toEqual({ upgradeId: 'u1', first: 7, count: 1 });
  });

  it('calls an entry damaged rather than guessing', () => {
    for (const fields of [['p', ''], ['p', '3|2'], ['p', '3|2|'], ['p', '0|1|u1'], ['p', '1|0|u1'], ['p', 'x|1|u1'], ['p', '1.5|1|u1'], ['u', 'u1', 's', '1'], [], ['p', '1|1|not an id'], ['p', '1|1|büro'], ['p', '1|1|..']]) {
      expect(decodeFeedEntry(fields), JSON.stringify(fields)).toBeUndefined();
    }
  });
});

describe('streamIdBefore', () => {
  it('orders stream ids by their numbers, not as text', () => {
    expect(streamIdBefore('999-0', '1000-0')).toBe(true);
    expect(streamIdBefore('1000-0', '999-0')).toBe(false);
    expect(streamIdBefore('1764400000000-9', '1764400000000-10')).toBe(true);
    expect(streamIdBefore('1764400000000-10', '1764400000000-9')).toBe(false);
    expect(streamIdBefore('1764400000000-3', '1764400000000-3')).toBe(false);
    expect(streamIdBefore('1764400000000-99999999999999999999', '1764400000001-0')).toBe(true);
    expect(streamIdBefore('0-0', '0-1')).toBe(true);
  });
});

/** The DATA_CORRUPTED error `decode` throws (any other outcome fails the test). */
const damage = (decode: () => unknown): unknown => {
  try {
    decode();
  } catch (err) {
    return err;
  }
  throw new Error('decoded without an error');
};
const corrupted = expect.objectContaining({ code: 'DATA_CORRUPTED' });

describe('decodeEntry', () => {
  const event = (seq: number): object => ({ seq, type: 'task.progress' });

  it('reads a batch entry whose id is the seq of its last event, and the earlier one-event layout (fields i and e)', () => {
    expect(decodeEntry('k', ['0-3', ['b', JSON.stringify([event(2), event(3)])]])).toEqual([event(2), event(3)]);
    expect(decodeEntry('k', ['0-7', ['i', 'evt-7', 'e', JSON.stringify(event(7))]])).toEqual([event(7)]);
  });

  it('calls an entry damaged when its events do not end at its id, or it holds none', () => {
    for (const fields of [['b', JSON.stringify([event(1), event(2)])], ['b', JSON.stringify([event(2), event(2)])], ['b', '[]'], ['e', JSON.stringify(event(2))], ['b', '{']]) {
      expect(damage(() => decodeEntry('k', ['0-3', fields])), JSON.stringify(fields)).toEqual(corrupted);
    }
  });
});

describe('decodeSnapshot', () => {
  it('calls a snapshot damaged whose lastSeq is not the seq it is stored at', () => {
    expect(decodeSnapshot('k', JSON.stringify({ lastSeq: 4 }), 4)).toEqual({ lastSeq: 4 });
    expect(damage(() => decodeSnapshot('k', JSON.stringify({ lastSeq: 3 }), 4))).toEqual(corrupted);
  });
});

describe('decodeRow', () => {
  const row = { upgradeId: 'u1', status: 'in_progress', updatedAt: '2026-01-01T00:00:00.000Z', lastSeq: 5, overallPercentage: 10 };
  const json = JSON.stringify(row);

  it('lays the fast field over the row when it is as new or newer, and keeps a row written after it', () => {
    expect(decodeRow('k', 'u1', json, '5|20|2026-01-01T00:00:01.000Z')).toEqual({ ...row, overallPercentage: 20, updatedAt: '2026-01-01T00:00:01.000Z' });
    expect(decodeRow('k', 'u1', json, '6|30|2026-01-01T00:00:02.000Z')).toEqual({ ...row, lastSeq: 6, overallPercentage: 30, updatedAt: '2026-01-01T00:00:02.000Z' });
    expect(decodeRow('k', 'u1', json, '4|5|2025-12-31T00:00:00.000Z')).toEqual(row);
    expect(decodeRow('k', 'u1', json, null)).toEqual(row);
  });

  it("calls damaged a row that is not this upgrade's, and a fast field that does not parse", () => {
    for (const other of [{ ...row, upgradeId: 'u2' }, { ...row, status: undefined }, { ...row, updatedAt: 5 }, { ...row, lastSeq: '5' }, [row]]) {
      expect(damage(() => decodeRow('k', 'u1', JSON.stringify(other), null)), JSON.stringify(other)).toEqual(corrupted);
    }
    for (const fast of ['5', '5|20', 'x|20|t', '5|y|t']) {
      expect(damage(() => decodeRow('k', 'u1', json, fast)), fast).toEqual(corrupted);
    }
  });
});
