import { describe, it } from 'vitest';
import { ProgressTracker } from '../src/index.js';
import { expectCode } from './helpers.js';

describe('ProgressTracker.open({ store: null })', () => {
  it('is INVALID_ARGUMENT, not a TypeError, and not a MemoryStore in its place', async () => {
    // `store: config.store ?? null`: null is not "no store" (the default MemoryStore would lose every
    // event with the process without a word), and reading `append` of it threw a bare TypeError.
    await expectCode(() => ProgressTracker.open({ upgradeId: 'u1', planId: 'p1', clusterName: 'c1', store: null as never }), 'INVALID_ARGUMENT');
  });
});
