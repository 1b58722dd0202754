import { describe, it } from 'vitest';
import { MemoryStore } from '../src/index.js';
import { describeProgressStore } from '../src/testing/index.js';

// MemoryStore runs the suite it ships, which also tests the suite. A small snapshotEvery makes the
// snapshot + tail path run in every case.
describeProgressStore('MemoryStore', { create: () => new MemoryStore({ snapshotEvery: 7 }), reopen: (store) => store }, { describe, it });
describeProgressStore('MemoryStore (default snapshots)', { create: () => new MemoryStore(), reopen: (store) => store }, { describe, it });
