import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker, isLogger } from '../src/index.js';
import { expectCode } from './helpers.js';

// A logger whose methods cannot be read (a Proxy over a closed transport, a getter that throws):
// not a logger, so its option is refused like any other bad value, not with what its trap threw.
const unreadable = new Proxy({}, { get: () => { throw new Error('trap'); } });

describe('a logger whose methods cannot be read', () => {
  it('is not a logger: isLogger says false instead of throwing', () => {
    expect(isLogger(unreadable)).toBe(false);
    expect(isLogger({ debug() {}, info() {}, warn() {}, get error() { throw new Error('getter'); } })).toBe(false);
  });

  it('is refused by ProgressTracker.open with INVALID_ARGUMENT, and nothing is stored', async () => {
    const store = new MemoryStore();
    await expectCode(() => ProgressTracker.open({ upgradeId: 'log', planId: 'p', clusterName: 'c', store, logger: unreadable as never }), 'INVALID_ARGUMENT');
    expect(await store.load('log')).toBeUndefined();
  });
});
