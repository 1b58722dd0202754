import * as zlib from 'node:zlib';

let table: Uint32Array | undefined;

function crc32Js(data: Uint8Array): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

const native = (zlib as { crc32?: (data: Uint8Array | string) => number }).crc32;

/**
 * CRC-32 (IEEE) of `data` as 8 lowercase hex digits: node's native `zlib.crc32` when the runtime has
 * it (Node >= 20.15), a table-driven fallback otherwise.
 */
export function crc32Hex(data: Uint8Array | string): string {
  const value = native ? native(data) : crc32Js(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  return (value >>> 0).toString(16).padStart(8, '0');
}

/** CRC-32 (IEEE) of `data` as a number. */
export function crc32(data: Uint8Array): number {
  return (native ? native(data) : crc32Js(data)) >>> 0;
}
