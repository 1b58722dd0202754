import { describe, expect, it } from 'vitest';
import { isoTimestamp } from '../src/iso-time.js';

describe('isoTimestamp', () => {
  it('equals toISOString() on boundaries, across seconds in any order, and outside the fast range', () => {
    const times = [0, 1, 999, 1000, 1001, 59_999, 60_000, 1_764_338_400_123, 1_764_338_400_999, 1_764_338_401_000, 1_764_338_400_500, 253_402_300_799_999, 253_402_300_800_000, -1, -86_400_001, 1.5, 8.64e15];
    for (const t of times) expect(isoTimestamp(t), String(t)).toBe(new Date(t).toISOString());
  });

  it('equals toISOString() for random times, each second met several times', () => {
    let seed = 42;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let i = 0; i < 5000; i++) {
      const t = i % 3 === 0 ? Math.floor(random() * 253_402_300_800_000) : 1_764_338_400_000 + Math.floor(random() * 5000);
      expect(isoTimestamp(t)).toBe(new Date(t).toISOString());
    }
  });

  it('throws like toISOString() for an invalid time', () => {
    expect(() => isoTimestamp(Number.NaN)).toThrow(RangeError);
  });
});
