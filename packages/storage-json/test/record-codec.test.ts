import { describe, expect, it } from 'vitest';
import { EventFactory } from '@progress/core/testing';
import { decodeEventLine, decodeSnapshot, encodeEventLine, encodeEvents, encodeSnapshot, stampWriteOffset, writeOffsetOf } from '../src/record-codec.js';

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
    // Each field the scan relies on, on its own: a sound checksum over an event without it is no event.
    const event = f.batch(1)[0]!;
    for (const [key, value] of [['seq', '2'], ['upgradeId', 7], ['type', null], ['eventId', undefined]] as const) {
      expect(decodeEventLine(Buffer.from(encodeEventLine({ ...event, [key]: value } as never).trimEnd())), key).toBe('shape');
    }
  });

  it('stamps the write offset on every line of a write, outside the checksum, and still reads lines written without one', () => {
    const f = new EventFactory('codec');
    const events = f.batch(3);
    const buf = encodeEvents(events);
    const lines = (b: Buffer): Buffer[] => b.toString('latin1').split('\n').slice(0, -1).map((l) => Buffer.from(l, 'latin1'));
    expect(lines(buf).map(writeOffsetOf)).toEqual([0, 0, 0]);
    stampWriteOffset(buf, 0xabcdef12345);
    expect(buf.toString('latin1')).toContain('"w":"00abcdef12345","e":{');
    expect(lines(buf).map(writeOffsetOf)).toEqual([0xabcdef12345, 0xabcdef12345, 0xabcdef12345]);
    expect(lines(buf).map(decodeEventLine)).toEqual(JSON.parse(JSON.stringify(events)));
    expect(() => stampWriteOffset(buf, 2 ** 52)).toThrow(RangeError);
    // A line as written before lines had a write offset.
    const old = Buffer.from(encodeEventLine(events[0]!).trimEnd().replace(/"w":"0{13}",/, ''));
    expect(old.toString()).toMatch(/^\{"c":"[0-9a-f]{8}","e":\{/);
    expect(decodeEventLine(old)).toEqual(JSON.parse(JSON.stringify(events[0])));
    expect(writeOffsetOf(old)).toBe(-1);
    // A write offset that is not 13 hex digits makes the line unreadable.
    const line = lines(buf)[0]!.toString('latin1');
    expect(decodeEventLine(Buffer.from(line.replace('"w":"00abcdef12345"', '"w":"00abcdef1234g"')))).toBe('format');
    expect(decodeEventLine(Buffer.from(line.replace('"w":"00abcdef12345"', '"w":"0abcdef12345"')))).toBe('format');
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
    // Sound bytes, but a state of another seq than the one the header names: not the state at lastSeq.
    expect(decodeSnapshot(encodeSnapshot({ v: 1, lastSeq: 6, offset: 1234 }, JSON.stringify(f.state)))).toBeUndefined();
  });
});
