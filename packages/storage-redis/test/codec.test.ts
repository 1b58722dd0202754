import { describe, expect, it } from 'vitest';
import { decodeFeedEntry, feedPointer, streamIdBefore } from '../src/codec.js';

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
