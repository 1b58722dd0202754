import { describe, expect, it } from 'vitest';
import { Fifo } from '../src/fifo.js';

describe('Fifo', () => {
  it('keeps order across compactions and interleaved push/shift', () => {
    const q = new Fifo<number>();
    const out: number[] = [];
    let next = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 100; i++) q.push(next++);
      for (let i = 0; i < 60; i++) out.push(q.shift()!);
    }
    expect(q.length).toBe(50 * 40);
    while (q.length > 0) out.push(q.shift()!);
    expect(out).toEqual(Array.from({ length: next }, (_, i) => i));
    expect(q.shift()).toBeUndefined();
    q.push(1);
    q.push(2);
    expect(q.clear()).toBe(2);
    expect(q.length).toBe(0);
  });
});
