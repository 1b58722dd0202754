import { afterAll, describe, expect, it } from 'vitest';
import { ProgressTracker, type ProgressEvent } from '@progress/core';
import { JsonFileStore } from '../src/index.js';
import { removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

// Values that a bare String() or JSON.stringify() cannot render: building the refusal's message threw
// a TypeError of its own ("Do not know how to serialize a BigInt", "Cannot convert object to
// primitive value") instead of the INVALID_ARGUMENT it was writing.
const unrenderable: [string, unknown][] = [
  ['a bigint', 10n],
  ['an object without prototype', Object.create(null)],
  ['an object whose toJSON throws', { toJSON() { throw new Error('toJSON'); } }],
];

describe('an option value no message can print is refused with INVALID_ARGUMENT all the same', () => {
  it('durability', () => {
    for (const [what, durability] of unrenderable) {
      expect(() => new JsonFileStore({ directory: '/tmp/x', durability: durability as 'none' }), what).toThrow(
        expect.objectContaining({ name: 'ProgressError', code: 'INVALID_ARGUMENT', message: expect.stringContaining('durability') }),
      );
    }
  });

  it('deleteCompletedOlderThan ageMs and now, named by their kind, and a long string cut short', async () => {
    const store = new JsonFileStore({ directory: await tempDir('odd-values') });
    for (const [what, bad] of [...unrenderable, ['a symbol', Symbol('s')]] as [string, unknown][]) {
      await expect(store.deleteCompletedOlderThan(bad as number), what).rejects.toMatchObject({ name: 'ProgressError', code: 'INVALID_ARGUMENT', message: expect.stringContaining('ageMs') });
      await expect(store.deleteCompletedOlderThan(0, bad as number), what).rejects.toMatchObject({ name: 'ProgressError', code: 'INVALID_ARGUMENT', message: expect.stringContaining('now') });
    }
    // An object read as "[object Object]", a 100,000-character string printed whole.
    const refusal = (bad: unknown) => store.deleteCompletedOlderThan(bad as number).then(() => undefined, (err: Error) => err.message);
    expect(await refusal({ days: 30 })).toMatch(/got an object$/);
    expect((await refusal('x'.repeat(100_000)))!.length).toBeLessThan(200);
    await store.close();
  });
});

describe('append of an event or a state that cannot be read', () => {
  it('is refused with INVALID_ARGUMENT (it threw the trap\'s own error), and nothing is written', async () => {
    const dir = await tempDir('odd-append');
    const tracker = await ProgressTracker.open({ upgradeId: 'odd', planId: 'p', clusterName: 'c' });
    const events: ProgressEvent[] = [];
    for await (const e of tracker.readEvents(0)) events.push(e);
    const state = structuredClone(tracker.progress);
    await tracker.close();
    const unreadable = new Proxy({}, { get: () => { throw new Error('trap'); } });
    const store = new JsonFileStore({ directory: dir });
    await expect(store.append('odd', [unreadable as never], 0, state)).rejects.toMatchObject({ name: 'ProgressError', code: 'INVALID_ARGUMENT' });
    await expect(store.append('odd', events, 0, unreadable as never)).rejects.toMatchObject({ name: 'ProgressError', code: 'INVALID_ARGUMENT' });
    expect(await store.load('odd')).toBeUndefined();
    await store.close();
  });
});
