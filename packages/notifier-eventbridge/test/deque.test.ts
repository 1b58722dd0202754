import { describe, expect, it } from 'vitest';
import { Deque } from '../src/deque.js';

// The notifier's backlog: what it holds must come out in order, whole, however long it grew.

describe('Deque', () => {
  it('gives its items back first in, first out, and nothing once empty', () => {
    const queue = new Deque<number>();
    for (const n of [1, 2, 3]) queue.push(n);
    expect(queue.peek()).toBe(1);
    expect([queue.shift(), queue.shift()]).toEqual([1, 2]);
    expect([...queue]).toEqual([3]);
    expect([queue.shift(), queue.shift(), queue.shift()]).toEqual([3, undefined, undefined]);
    expect(queue.length).toBe(0);
    queue.push(4);
    expect([queue.length, queue.peek()]).toEqual([1, 4]);
  });

  it('loses and repeats nothing across the compaction of a long backlog', () => {
    const queue = new Deque<number>();
    for (let n = 0; n < 5000; n++) queue.push(n);
    const out: Array<number | undefined> = [];
    for (let n = 0; n < 3000; n++) out.push(queue.shift());
    expect(out).toEqual(Array.from({ length: 3000 }, (_, n) => n));
    expect(queue.length).toBe(2000);
    expect(queue.peek()).toBe(3000);
    expect([...queue]).toEqual(Array.from({ length: 2000 }, (_, n) => 3000 + n));
  });

  it('is empty after clear(), and fills again from there', () => {
    const queue = new Deque<string>();
    for (const s of ['a', 'b', 'c']) queue.push(s);
    queue.shift();
    queue.clear();
    expect([queue.length, queue.peek(), [...queue]]).toEqual([0, undefined, []]);
    queue.push('d');
    expect([queue.length, [...queue]]).toEqual([1, ['d']]);
  });
});
