// findKeyPrefixes(): where the stores of a Redis keep their upgrades, for a tool that finds nothing
// under its own prefix (the CLI's `ls`/`show`/`watch` without the `--prefix` a writer used).
import { ProgressTracker, isProgressError } from '@progress/core';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../src/index.js';
import { adminClient, cleanup, freshPrefix, makeStore, redisUrl } from './helpers.js';

const prefixes = new Set<string>();
const admin = adminClient();
const clients: Redis[] = [];
afterAll(async () => {
  await cleanup(admin, prefixes);
  for (const client of clients) client.disconnect();
  admin.disconnect();
});

/** Writes upgrade `upgradeId` (started) through `store`. */
async function written(store: RedisStore, upgradeId: string): Promise<void> {
  const tracker = await ProgressTracker.open({ upgradeId, planId: 'p', clusterName: 'c', store });
  await tracker.startUpgrade();
  await tracker.close();
}

describe('RedisStore.findKeyPrefixes()', () => {
  it("finds the prefixes that hold upgrades (an index beside a feed), and with upgradeId the ones holding it; not other keys named *index", async () => {
    const a = makeStore(prefixes, { keyPrefix: freshPrefix('find-a') });
    const b = makeStore(prefixes, { keyPrefix: freshPrefix('find-b') });
    const [idA, idB, idBoth] = ['a', 'b', 'both'].map((label) => `find-${label}-${randomUUID().slice(0, 8)}`) as [string, string, string];
    await written(a, idA);
    await written(b, idB);
    await written(a, idBoth);
    await written(b, idBoth);
    // Keys named like an index that are not a store's: a sorted set with no feed beside it, a string,
    // and a prefix no store takes (a space in it).
    const [lone, text] = [freshPrefix('find-lone'), freshPrefix('find-text')];
    prefixes.add(lone).add(text);
    await admin.zadd(`${lone}index`, 1, idB);
    await admin.set(`${text}index`, 'x');
    await admin.xadd(`${text}feed`, '*', 'p', '1|1|x');
    const spaced = `${freshPrefix('find spaced')}`;
    prefixes.add(spaced);
    await admin.zadd(`${spaced}index`, 1, idB);
    await admin.xadd(`${spaced}feed`, '*', 'p', '1|1|x');

    const all = await a.findKeyPrefixes();
    expect(all).toEqual(expect.arrayContaining([a.keys.prefix, b.keys.prefix]));
    for (const other of [lone, text, spaced]) expect(all).not.toContain(other);
    expect(all).toEqual([...all].sort());
    expect(await a.findKeyPrefixes({ upgradeId: idB })).toEqual([b.keys.prefix]);
    expect(await b.findKeyPrefixes({ upgradeId: idA })).toEqual([a.keys.prefix]);
    expect(await a.findKeyPrefixes({ upgradeId: idBoth })).toEqual([a.keys.prefix, b.keys.prefix].sort());
    expect(await a.findKeyPrefixes({ upgradeId: `find-none-${randomUUID().slice(0, 8)}` })).toEqual([]);
    // A search cut short still answers, with what it found by then.
    expect(Array.isArray(await a.findKeyPrefixes({ timeoutMs: 1 }))).toBe(true);
  });

  it("through a client with an ioredis keyPrefix of its own: the store's prefixes, without the client's", async () => {
    const tenant = `${freshPrefix('tenant')}`;
    const client = new Redis(redisUrl(), { keyPrefix: tenant });
    clients.push(client);
    const keyPrefix = freshPrefix('find-tenant');
    prefixes.add(tenant + keyPrefix);
    const store = new RedisStore({ redis: client, keyPrefix });
    const upgradeId = `find-tenant-${randomUUID().slice(0, 8)}`;
    await written(store, upgradeId);
    expect(await store.findKeyPrefixes({ upgradeId })).toEqual([keyPrefix]);
    expect(await store.findKeyPrefixes()).toContain(keyPrefix);
    // Another store on the same Redis, without the client's prefix, does not see it under that name.
    const plain = makeStore(prefixes);
    expect(await plain.findKeyPrefixes({ upgradeId })).toEqual([tenant + keyPrefix]);
    await store.close();
    await plain.close();
  });

  it('refuses bad options with INVALID_ARGUMENT and a closed store with CLOSED', async () => {
    const store = makeStore(prefixes);
    for (const options of [{ upgradeId: '../x' }, { upgradeId: '' }, { timeoutMs: 0 }, { timeoutMs: Number.NaN }, { timeoutMs: '5' as never }, { timeoutMs: 2 ** 31 }, { upgradeid: 'x' } as never, null as never]) {
      const error: unknown = await store.findKeyPrefixes(options).then(() => undefined, (err: unknown) => err);
      expect(isProgressError(error, 'INVALID_ARGUMENT'), JSON.stringify(options)).toBe(true);
    }
    await store.close();
    await expect(store.findKeyPrefixes()).rejects.toMatchObject({ code: 'CLOSED' });
  });
});
