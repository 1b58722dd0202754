// Run by store-timeout.test.ts in a process of its own: `hang` makes the second append a promise
// that never settles and holds no socket, file or timer (nothing but the tracker's own timer keeps
// the process alive); `hang-after-idle` does so to the third, after a write that left the tracker
// idle (its timer let go of the process then); `idle` writes and ends without close(), under the
// default bound.
import { MemoryStore, ProgressTracker } from '../../src/index.js';
import { delegatingStore } from '../delegating-store.js';

const mode = process.argv[2];
/** Which call of append never settles (1 is upgrade.created, in open()); 0: none. */
const hangAt = mode === 'hang' ? 2 : mode === 'hang-after-idle' ? 3 : 0;
const inner = new MemoryStore();
let calls = 0;
const store = delegatingStore(inner, {
  append: (id, events, expectedSeq, state) => (++calls === hangAt ? new Promise<void>(() => {}) : inner.append(id, events, expectedSeq, state)),
});
const t = await ProgressTracker.open({ upgradeId: 'u', planId: 'p', clusterName: 'c', store, ...(hangAt ? { storeTimeoutMs: 200 } : {}) });
if (mode === 'hang-after-idle') {
  await t.setCurrentPhase('first');
  console.log('first stored');
}
try {
  await t.startUpgrade();
  console.log('stored');
} catch (err) {
  const e = err as { code: string; context: { reason?: string } };
  console.log(`refused ${e.code} ${e.context.reason}`);
}
await t.setCurrentPhase('next');
console.log('next stored');
