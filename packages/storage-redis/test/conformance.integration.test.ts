import type { ProgressStore } from '@progress/core';
import { describeProgressStore } from '@progress/core/testing';
import { afterAll, describe, it } from 'vitest';
import { RedisStore } from '../src/index.js';
import { adminClient, cleanup, makeStore, redisUrl } from './helpers.js';

const prefixes = new Set<string>();
let admin: ReturnType<typeof adminClient> | undefined;
/**
 * The keys of `upgradeId` left under the store's prefix, but the two a delete leaves to expire (its
 * call's marker and the deleted runs: README, Key layout), and its index entry.
 */
const remains = async (store: ProgressStore, upgradeId: string): Promise<string[]> => {
  admin ??= adminClient();
  const keys = (store as RedisStore).keys;
  const left = (await admin.keys(`${keys.prefix}{${upgradeId}}*`)).filter((key) => key !== keys.deletedRuns(upgradeId) && !key.startsWith(`${keys.prefix}{${upgradeId}}:delete:`));
  if ((await admin.zscore(keys.index, upgradeId)) !== null) left.push(`${keys.index} ${upgradeId}`);
  return left;
};
const reopen = (store: RedisStore) => async () => {
  await store.close();
  return new RedisStore({ url: redisUrl(), keyPrefix: store.keys.prefix, snapshotEvery: (store.info().snapshotEvery as number) });
};

describeProgressStore(
  'RedisStore',
  {
    create: () => makeStore(prefixes),
    reopen: (store) => reopen(store as RedisStore)(),
    remains,
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
    remains,
    second: (store) => new RedisStore({ url: redisUrl(), keyPrefix: (store as RedisStore).keys.prefix, snapshotEvery: 7 }),
  },
  { describe, it },
);

afterAll(async () => {
  admin ??= adminClient();
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
    remains,
    second: (store) => new RedisStore({ url: redisUrl(), keyPrefix: (store as RedisStore).keys.prefix, mode: 'cluster' }),
    retaining: () => makeStore(prefixes, { mode: 'cluster', snapshotEvery: 7, retention: { maxEvents: 5 } }),
  },
  { describe, it },
);
