import type { Cluster, Redis } from 'ioredis';
import { isClusterClient } from './connection.js';
import { KeyLayout } from './keys.js';

/** The most key prefixes looked into: a keyspace of other things named `*index` is not read through. */
const MAX_CANDIDATES = 100;

/** `text` as a SCAN MATCH pattern matching only itself. */
const literalGlob = (text: string): string => text.replace(/[*?[\]\\]/g, '\\$&');

/** Whether `prefix` is one a store takes (see KeyLayout). */
function isStorePrefix(prefix: string): boolean {
  try {
    new KeyLayout(prefix);
    return true;
  } catch {
    return false;
  }
}

/**
 * The key prefixes under which stores keep upgrades in `redis` (every master of a Cluster): a sorted
 * set `<prefix>index` beside a stream `<prefix>feed`, the two keys every store writes. With
 * `upgradeId`, only those whose index holds it. The keyspace is SCANned until `until` (a `Date.now()`
 * time), which ends the search with what it found so far. `clientPrefix` is the client's own
 * ioredis `keyPrefix`, which ioredis puts in front of every key but not of a SCAN's pattern.
 */
export async function findKeyPrefixes(redis: Redis | Cluster, clientPrefix: string, upgradeId: string | undefined, until: number): Promise<string[]> {
  const nodes = isClusterClient(redis) ? redis.nodes('master') : [redis];
  const pattern = `${literalGlob(clientPrefix)}*index`;
  const candidates = new Set<string>();
  search: for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        const prefix = key.slice(clientPrefix.length, key.length - 'index'.length);
        if (isStorePrefix(prefix)) candidates.add(prefix);
        if (candidates.size >= MAX_CANDIDATES) break search;
      }
    } while (cursor !== '0' && Date.now() < until);
    if (Date.now() >= until) break;
  }
  const found: string[] = [];
  for (const prefix of candidates) {
    const layout = new KeyLayout(prefix);
    // Not one pipeline: the keys of a prefix are in different slots of a Cluster.
    const [indexType, feedType] = await Promise.all([redis.type(layout.index), redis.type(layout.feed)]);
    if (indexType !== 'zset' || feedType !== 'stream') continue;
    if (upgradeId === undefined || (await redis.zscore(layout.index, upgradeId)) !== null) found.push(prefix);
  }
  return found.sort();
}
