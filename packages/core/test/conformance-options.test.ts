import { describe, expect, it } from 'vitest';
import { MemoryStore, type ProgressStore } from '../src/index.js';
import { EventFactory, describeProgressStore, type ConformanceOptions, type StoreFactory, type TestApi } from '../src/testing/index.js';

/** A runner that records the cases the suite registers. */
function recorder(): { api: TestApi; cases: string[] } {
  const cases: string[] = [];
  return { api: { describe: (_name, fn) => fn(), it: (name) => void cases.push(name) }, cases };
}

const factory: StoreFactory = { create: () => new MemoryStore(), reopen: (store: ProgressStore) => store };

// A misspelt `second` (or `waitTimeOut`) was left out without a word: every case that needs a second
// store passed at once, as for a store that cannot have one, so the suite could not fail them.
describe('describeProgressStore checks what it is given', () => {
  it('refuses a misspelt factory method or option, a bad timeout and a runner without describe and it, registering no case', () => {
    const bad: Array<[string, StoreFactory, TestApi | undefined, ConformanceOptions | undefined]> = [
      ['factory.secnd', { ...factory, secnd: factory.reopen } as StoreFactory, undefined, undefined],
      ['factory.second not a function', { ...factory, second: 'yes' } as never, undefined, undefined],
      ['factory without create', { reopen: factory.reopen } as never, undefined, undefined],
      ['options.waitTimeOut', factory, undefined, { waitTimeOut: 1000 } as ConformanceOptions],
      ['options.timeout -1', factory, undefined, { timeout: -1 }],
      ['options.waitTimeout NaN', factory, undefined, { waitTimeout: Number.NaN }],
      ['options.largeDetailsBytes 1.5', factory, undefined, { largeDetailsBytes: 1.5 }],
      ['options not an object', factory, undefined, 5 as never],
      ['runner without it', factory, { describe: () => {} } as never, undefined],
    ];
    for (const [what, f, api, options] of bad) {
      const { api: recording, cases } = recorder();
      expect(() => describeProgressStore('x', f, api ?? recording, options), what).toThrow(expect.objectContaining({ name: 'ProgressError', code: 'INVALID_ARGUMENT' }));
      expect(cases, what).toEqual([]);
    }
  });

  it('still takes what it took: a factory with second, a class instance, options left undefined', () => {
    class Factory {
      private readonly made: ProgressStore[] = [];
      create() { const s = new MemoryStore(); this.made.push(s); return s; }
      reopen(store: ProgressStore) { return store; }
    }
    for (const [f, options] of [
      [{ ...factory, second: (s: ProgressStore) => s }, { timeout: 60_000, waitTimeout: undefined }],
      [new Factory(), undefined],
    ] as Array<[StoreFactory, ConformanceOptions | undefined]>) {
      const { api, cases } = recorder();
      describeProgressStore('x', f, api, options);
      expect(cases.length).toBeGreaterThan(10);
    }
  });
});

// EventFactory is exported with the suite, for a store's own tests. batch(Infinity) never returned
// (an endless loop filling memory), batch('3') returned a single event, next(type, null) threw a
// TypeError. (Any upgrade id is taken on purpose: the suite makes events with bad ones, which every
// store must refuse.)
describe('EventFactory checks what it is given', () => {
  const refused = (run: () => unknown): void => {
    expect(run).toThrow(expect.objectContaining({ name: 'ProgressError', code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^\[@progress\/core\/testing\] EventFactory/) }));
  };
  it.each([Infinity, 1e308, 0, -1, 1.5, Number.NaN, '3', null])('refuses batch(%s), making no event', (n) => {
    const f = new EventFactory('u1');
    refused(() => f.batch(n as never));
    expect(f.lastSeq).toBe(0);
  });
  it.each([Symbol('t'), 42, 'upgrade.exploded', undefined])('refuses next() of the type %s, making no event', (type) => {
    const f = new EventFactory('u1');
    refused(() => f.next(type as never));
    expect(f.lastSeq).toBe(0);
  });
  it.each([null, 42, 'x', []])('refuses next() fields %s, making no event', (fields) => {
    const f = new EventFactory('u1');
    refused(() => f.next('upgrade.created', fields as never));
    expect(f.lastSeq).toBe(0);
  });
  it('still makes the events it made', () => {
    const f = new EventFactory('u1');
    expect(f.batch(4).map((e) => e.seq)).toEqual([1, 2, 3, 4]);
  });
});
