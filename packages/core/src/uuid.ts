import { randomFillSync } from 'node:crypto';

/** Random bytes for 256 UUIDs, refilled when used up (the same batching `randomUUID` does). */
const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let offset = POOL_BYTES;
/** The UUID is written here as ASCII, then read out as one flat string. */
const text = Buffer.alloc(36);
/** Two ASCII hex digits per byte value. */
const HEX = new Uint8Array(512);
for (let i = 0; i < 256; i++) {
  const h = i.toString(16).padStart(2, '0');
  HEX[2 * i] = h.charCodeAt(0);
  HEX[2 * i + 1] = h.charCodeAt(1);
}

/**
 * A random (version 4) UUID, like `crypto.randomUUID()` and from the same source
 * (`randomFillSync`), in about a third of the time: `randomUUID()` builds its string from 20
 * concatenations (a rope that must be flattened before use), this writes the 36 ASCII bytes into a
 * buffer and decodes them once into a flat string. Every event gets one, so it is on the hot path.
 */
export function fastUUID(): string {
  if (offset + 16 > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const o = offset;
  offset += 16;
  pool[o + 6] = (pool[o + 6]! & 0x0f) | 0x40; // version 4
  pool[o + 8] = (pool[o + 8]! & 0x3f) | 0x80; // variant 10
  let p = 0;
  for (let i = 0; i < 16; i++) {
    if (p === 8 || p === 13 || p === 18 || p === 23) text[p++] = 0x2d; // '-'
    const v = pool[o + i]!;
    text[p++] = HEX[2 * v]!;
    text[p++] = HEX[2 * v + 1]!;
  }
  return text.toString('latin1', 0, 36);
}
