import { describe, expect, it } from 'vitest';
import * as tracker from '../src/index.js';

// "One import is enough": every runtime export of every package is re-exported, the same object.
describe('@progress/tracker re-exports', () => {
  it.each(['@progress/core', '@progress/storage-json', '@progress/storage-redis', '@progress/notifier-eventbridge', '@progress/callbacks', '@progress/ws-server'])(
    'every export of %s',
    async (name) => {
      const mod = (await import(name)) as Record<string, unknown>;
      const missing = Object.keys(mod).filter((key) => (tracker as Record<string, unknown>)[key] !== mod[key]);
      expect(missing).toEqual([]);
      expect(Object.keys(mod).length).toBeGreaterThan(0);
    },
  );
});
