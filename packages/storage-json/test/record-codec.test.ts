import { describe, expect, it } from 'vitest';
import { EventFactory } from '@progress/core/testing';
import { decodeEventLine, decodeSnapshot, encodeEventLine, encodeEvents, encodeSnapshot } from '../src/record-codec.js';

describe('the line and snapshot formats', () => {
  it('encodes a batch exactly as line by line, unicode and big details included, and decodes it back', () => {
    const f = new EventFactory('codec');
    const events = [
      ...f.batch(3),
      f.next('task.progress', { taskId: 't1', message: 'héllo ✓ 日本語 🚀 \u2028 "q" \\ \n', details: { big: 'ü'.repeat(70_000), nul: '\u0000' } }),
    ];
    const buf = encodeEvents(events);
    expect(buf.toString('utf8')).toBe(events.map(encodeEventLine).join(''));
    const lines = buf.toString('utf8').split('\n').slice(0, -1);
    expect(lines).toHaveLength(4);
    expect(lines.map((l) => decodeEventLine(Buffer.from(l)))).toEqual(JSON.parse(JSON.stringify(events)));
  });

  it('tells a flipped byte, a cut line and a bad shape apart', () => {
    const f = new EventFactory('codec');
    const line = Buffer.from(encodeEventLine(f.batch(1)[0]!).trimEnd());
    const flipped = Buffer.from(line);
    flipped[40] = flipped[40]! ^ 1;
    expect(decodeEventLine(flipped)).toBe('checksum');
    expect(decodeEventLine(line.subarray(0, 50))).toBe('format');
    expect(decodeEventLine(Buffer.from('{"c":"00000000","e":{}}'))).toBe('checksum');
    expect(decodeEventLine(Buffer.from(encodeEventLine({ seq: 'x' } as never).trimEnd()))).toBe('shape');
  });

  it('round-trips a snapshot and refuses a damaged one', () => {
    const f = new EventFactory('snap');
    f.batch(5);
    const text = encodeSnapshot({ v: 1, lastSeq: 5, offset: 1234 }, JSON.stringify(f.state));
    expect(JSON.parse(text).lastSeq).toBe(5);
    expect(decodeSnapshot(text)).toEqual({ v: 1, lastSeq: 5, offset: 1234, state: JSON.parse(JSON.stringify(f.state)) });
    expect(decodeSnapshot(text.replace('"planId":"plan-1"', '"planId":"plan-2"'))).toBeUndefined();
    expect(decodeSnapshot(text.replace('"offset":1234', '"offset":1235'))).toBeUndefined();
    expect(decodeSnapshot(text.slice(0, 100))).toBeUndefined();
  });
});
