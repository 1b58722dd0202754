import { describe, expect, it } from 'vitest';
import { bar } from '../src/render.js';

const refused = expect.objectContaining({ name: 'ProgressError', code: 'INVALID_ARGUMENT' });

describe('the renderer refuses a bad width with INVALID_ARGUMENT', () => {
  it('bar(): a width that is not a whole number of cells from 0 to 1000 (a negative or infinite one threw a RangeError)', () => {
    for (const width of [-1, 1.5, Infinity, Number.NaN, 2 ** 53, 1001, '30', 10n]) {
      expect(() => bar(50, width as number), String(width)).toThrow(refused);
    }
    expect(bar(50, 4)).toBe('██░░');
    expect(bar(50, 0)).toBe('');
    expect(bar(120)).toBe('█'.repeat(30));
  });

});
