import { describeProgressStore } from '@progress/core/testing';
import { afterAll, describe, it } from 'vitest';
import { RedisStore } from '../src/index.js';
import { adminClient, cleanup, makeStore, redisUrl } from './helpers.js';

const prefixes = new Set<string>();
const reopen = (store: RedisStore) => async () => {
  await store.close();
  return new RedisStore({ url: redisUrl(), keyPrefix: store.keys.prefix, snapshotEvery: (store.info().snapshotEvery as number) });
};

describeProgressStore(
  'RedisStore',
  {
    create: () => makeStore(prefixes),
    reopen: (store) => reopen(store as RedisStore)(),
    second: (store) => new RedisStore({ url: redisUrl(), keyPrefix: (store as RedisStore).keys.prefix }),
    // Retention keeps the last 5 events (past the last snapshot): the rest are trimmed.
    retaining: () => makeStore(prefixes, { snapshotEvery: 7, retention: { maxEvents: 5 } }),
  },
  { describe, it },
);

// Snapshots every 7 events: load() is snapshot + replayed tail in every case.
describeProgressStore(
  'RedisStore (snapshotEvery 7)',
  {
    create: () => makeStore(prefixes, { snapshotEvery: 7 }),
    reopen: (store) => reopen(store as RedisStore)(),
    second: (store) => new RedisStore({ url: redisUrl(), keyPrefix: (store as RedisStore).keys.prefix, snapshotEvery: 7 }),
  },
  { describe, it },
);

afterAll(async () => {
  const admin = adminClient();
  await cleanup(admin, prefixes);
  await admin.quit();
});

// Cluster mode on a single node: the script touches only the upgrade's slot, and the index and
// feed are written by the follow-up commands (the path a Redis Cluster takes).
describeProgressStore(
  'RedisStore (cluster mode)',
  {
    create: () => makeStore(prefixes, { mode: 'cluster' }),
    reopen: async (store) => {
      await store.close();
      return new RedisStore({ url: redisUrl(), keyPrefix: (store as RedisStore).keys.prefix, mode: 'cluster' });
    },
    second: (store) => new RedisStore({ url: redisUrl(), keyPrefix: (store as RedisStore).keys.prefix, mode: 'cluster' }),
    retaining: () => makeStore(prefixes, { mode: 'cluster', snapshotEvery: 7, retention: { maxEvents: 5 } }),
  },
  { describe, it },
);
