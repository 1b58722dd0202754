// The table-driven CRC-32 that runs where node's zlib has no crc32 (Node < 20.15, which this package
// supports): this machine's Node has one, so without this file the fallback ran in no test.
import type * as Zlib from 'node:zlib';
import { describe, expect, it, vi } from 'vitest';
import { crc32, crc32Hex } from '../src/checksum.js';

vi.mock('node:zlib', async (importOriginal) => ({ ...(await importOriginal<typeof Zlib>()), crc32: undefined }));

describe('the CRC-32 fallback (no zlib.crc32)', () => {
  it('gives the CRC-32 (IEEE) check values, as 8 hex digits with leading zeros', () => {
    expect(crc32Hex('123456789')).toBe('cbf43926');
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32Hex('')).toBe('00000000');
    expect(crc32Hex('x31')).toBe('001685f0');
  });

  it('checksums a string as its UTF-8 bytes, as the lines are written', () => {
    expect(crc32Hex('é')).toBe('0e048d3e');
    expect(crc32Hex(Buffer.from('é', 'utf8'))).toBe('0e048d3e');
  });
});
