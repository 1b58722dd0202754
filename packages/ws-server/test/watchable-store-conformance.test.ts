import { describeProgressStore } from '@progress/core/testing';
import { describe, it } from 'vitest';
import { GatedLoadStore, WatchableMemoryStore } from './watchable-store.js';

// The server's tests stand the double in for a RedisStore: it must keep the watch()/watchAll()
// contract core documents (and RedisStore keeps), or a server test could pass against behaviour no
// real store has. Core's whole suite runs on it, so that the double cannot drift from the contract.
describeProgressStore('WatchableMemoryStore (ws-server test double)', { create: () => new WatchableMemoryStore(), reopen: (store) => store }, { describe, it });
// The subclass the load-failure tests use, with nothing held or failing: the same store otherwise.
describeProgressStore('GatedLoadStore (ws-server test double)', { create: () => new GatedLoadStore(), reopen: (store) => store }, { describe, it });
