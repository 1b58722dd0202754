import type { ProgressStore } from '../src/index.js';

// A module of its own, without vitest: test/child/hung-append.ts runs it in a plain node process.

/**
 * Every method of ProgressStore, the optional ones included. Typed so that a method added to the
 * interface fails the typecheck here until it is listed, and so is forwarded by delegatingStore.
 */
const METHODS: { [K in keyof ProgressStore]-?: true } = {
  acquire: true,
  release: true,
  load: true,
  append: true,
  readEvents: true,
  list: true,
  delete: true,
  info: true,
  close: true,
  watch: true,
  watchAll: true,
};

/**
 * A test store that is `inner` but for `overrides` (a method that fails, hangs, waits or counts its
 * calls). Every method of ProgressStore that `overrides` does not name is forwarded to `inner`,
 * called on `inner` (a MemoryStore keeps its state in #private fields, which no other `this`
 * reaches); an optional one that `inner` does not have is left out, and so is one that `overrides`
 * sets to `undefined` (`{ acquire: undefined, release: undefined }`: a store without a writer lock).
 * The overrides are copied as they are (a getter stays a getter, read on each use) and are called
 * on the store returned: `this` in one is the whole store. The methods are own, writable
 * properties, so a test may swap one later (`store.readEvents = ...`).
 */
export function delegatingStore(inner: ProgressStore, overrides: Partial<ProgressStore> & ThisType<ProgressStore> = {}): ProgressStore {
  const store: Record<string, unknown> = {};
  for (const name of Object.keys(METHODS) as Array<keyof ProgressStore>) {
    if (Object.hasOwn(overrides, name) || typeof inner[name] !== 'function') continue;
    // Looked up on each call, as `(id) => inner.load(id)` would.
    store[name] = (...args: unknown[]) => (inner[name] as (...args: unknown[]) => unknown).apply(inner, args);
  }
  const given = Object.getOwnPropertyDescriptors(overrides);
  for (const [name, descriptor] of Object.entries(given)) {
    if ('value' in descriptor && descriptor.value === undefined) delete given[name];
  }
  Object.defineProperties(store, given);
  return store as unknown as ProgressStore;
}
