// Run by store-timeout.test.ts in a process of its own: `hang` makes the second append a promise
// that never settles and holds no socket, file or timer (nothing but the tracker's own timer keeps
// the process alive); `idle` writes and ends without close(), under the default bound.
import { MemoryStore, ProgressTracker } from '../../src/index.js';
import { delegatingStore } from '../delegating-store.js';

const mode = process.argv[2];
const inner = new MemoryStore();
let calls = 0;
const store = delegatingStore(inner, {
  append: (id, events, expectedSeq, state) => (mode === 'hang' && ++calls === 2 ? new Promise<void>(() => {}) : inner.append(id, events, expectedSeq, state)),
});
const t = await ProgressTracker.open({ upgradeId: 'u', planId: 'p', clusterName: 'c', store, ...(mode === 'hang' ? { storeTimeoutMs: 200 } : {}) });
try {
  await t.startUpgrade();
  console.log('stored');
} catch (err) {
  const e = err as { code: string; context: { reason?: string } };
  console.log(`refused ${e.code} ${e.context.reason}`);
}
await t.setCurrentPhase('next');
console.log('next stored');
