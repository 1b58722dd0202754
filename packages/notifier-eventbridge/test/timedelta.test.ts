import { describe, expect, it } from 'vitest';
import { formatTimedelta } from '../src/index.js';

describe('formatTimedelta: str(timedelta(milliseconds=x)) of Python', () => {
  // Each right-hand side was printed by CPython 3 for timedelta(milliseconds=<left>).
  const cases: Array<[number, string]> = [
    [62_345, '0:01:02.345000'],
    [1000, '0:00:01'],
    [1500, '0:00:01.500000'],
    [0, '0:00:00'],
    [93_784_000.005, '1 day, 2:03:04.000005'],
    [-52.31, '-1 day, 23:59:59.947690'],
    [86_400_000, '1 day, 0:00:00'],
    [172_800_001, '2 days, 0:00:00.001000'],
    [-259_200_001, '-4 days, 23:59:59.999000'],
    [0.0005, '0:00:00'],
    [0.0015, '0:00:00.000002'],
    [123_456_789.123, '1 day, 10:17:36.789123'],
    [-1000, '-1 day, 23:59:59'],
    [36_000_000, '10:00:00'],
  ];
  it.each(cases)('%s ms -> %s', (ms, text) => {
    expect(formatTimedelta(ms)).toBe(text);
  });
  it('refuses what Python could not hold', () => {
    expect(() => formatTimedelta(Number.NaN)).toThrow(expect.objectContaining({ name: 'ProgressError', code: 'INVALID_ARGUMENT' }));
  });
});
