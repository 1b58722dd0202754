import { describe, expect, it } from 'vitest';
import { fastUUID } from '../src/uuid.js';

describe('fastUUID', () => {
  it('gives version 4, variant 10 UUIDs in the canonical lowercase form, all different, across pool refills', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const id = fastUUID();
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      seen.add(id);
    }
    expect(seen.size).toBe(2000);
  });

  it('uses every hex digit in every free position (the bytes are random, not a counter)', () => {
    const digits = Array.from({ length: 36 }, () => new Set<string>());
    for (let i = 0; i < 2000; i++) [...fastUUID()].forEach((c, k) => digits[k]!.add(c));
    for (const k of [0, 1, 7, 9, 15, 20, 35]) expect(digits[k]!.size).toBe(16);
    expect([...digits[14]!]).toEqual(['4']);
    expect([...digits[19]!].sort()).toEqual(['8', '9', 'a', 'b']);
  });
});
