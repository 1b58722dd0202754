import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, it } from 'vitest';
import { describeProgressStore } from '@progress/core/testing';
import type { ProgressStore } from '@progress/core';
import { JsonFileStore } from '../src/index.js';
import { removeTempDirs, tempDir } from './helpers.js';

const dirs = new WeakMap<ProgressStore, string>();

afterAll(removeTempDirs);

for (const snapshotEvery of [1000, 7]) {
  describeProgressStore(
    `JsonFileStore (snapshotEvery ${snapshotEvery})`,
    {
      async create() {
        const directory = await tempDir('conformance');
        const store = new JsonFileStore({ directory, snapshotEvery, durability: snapshotEvery === 7 ? 'none' : 'fsync' });
        dirs.set(store, directory);
        return store;
      },
      async reopen(store) {
        await store.close();
        const directory = dirs.get(store)!;
        const again = new JsonFileStore({ directory, snapshotEvery });
        dirs.set(again, directory);
        return again;
      },
      second(store) {
        const directory = dirs.get(store)!;
        const other = new JsonFileStore({ directory, snapshotEvery });
        dirs.set(other, directory);
        return other;
      },
      // The upgrade's folder, and a folder a delete moved it to (removed right after).
      async remains(store, upgradeId) {
        const upgrades = join(dirs.get(store)!, 'upgrades');
        const names = await readdir(upgrades).catch(() => [] as string[]);
        return names.filter((name) => name === upgradeId || name.startsWith(`~deleted-${upgradeId}-`)).map((name) => join(upgrades, name));
      },
    },
    { describe, it },
  );
}
