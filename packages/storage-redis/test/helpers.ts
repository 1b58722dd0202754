import { randomUUID } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { isProgressError, type ProgressError, type ProgressEvent } from '@progress/core';
import type { EventFactory } from '@progress/core/testing';
import { Redis } from 'ioredis';
import { deleteKeysWith } from '../../../tools/test-utils/src/redis.js';
import { RedisStore, type RedisStoreOptions } from '../src/index.js';

/** The Redis of the tests (the global setup sets REDIS_URL). */
export const redisUrl = (): string => {
  const url = process.env.REDIS_URL;
  if (!url) throw new Error('REDIS_URL is not set: run through vitest (its global setup finds or starts a Redis)');
  return url;
};

/** A key prefix no other test uses. */
export const freshPrefix = (label = 't'): string => `test:storage-redis:${label}:${randomUUID().slice(0, 8)}:`;

/** An admin connection for assertions and cleanup. */
export const adminClient = (): Redis => new Redis(redisUrl(), { connectionName: 'progress-test-admin' });

/** Deletes every key under the prefixes. */
export async function cleanup(admin: Redis, prefixes: Iterable<string>): Promise<void> {
  for (const prefix of prefixes) await deleteKeysWith(admin, prefix);
}

/** A store on the test Redis with a fresh prefix (recorded in `prefixes` for cleanup). */
export function makeStore(prefixes: Set<string>, options: RedisStoreOptions = {}): RedisStore {
  const keyPrefix = options.keyPrefix ?? freshPrefix();
  prefixes.add(keyPrefix);
  return new RedisStore(options.redis ? { ...options, keyPrefix } : { url: redisUrl(), ...options, keyPrefix });
}

/** Collects an async iterable. */
export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** Appends the factory's next `n` events in one call, at its current seq; returns them. */
export async function appendBatch(store: RedisStore, f: EventFactory, n: number): Promise<ProgressEvent[]> {
  const expected = f.lastSeq;
  const events = f.batch(n);
  await store.append(f.upgradeId, events, expected, f.snapshot());
  return events;
}

/** The ProgressError a promise rejects with (any other rejection, or none, fails the test). */
export async function errorOf(promise: Promise<unknown>): Promise<ProgressError> {
  try {
    await promise;
  } catch (err) {
    if (isProgressError(err)) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

/** The heap in use after a full collection (gc() made reachable at run time): for tests of what a long run keeps. */
export function heapAfterGc(): number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/**
 * A `watch(upgradeId)` and a `watchAll()` of `reader` in the background: what each hands out, their
 * errors (`watch: CODE message`, `watchAll: ...`), and stop() (aborts both, waits for their end).
 */
export function watchBoth(reader: RedisStore, upgradeId: string): { watched: ProgressEvent[]; followed: ProgressEvent[]; errors: string[]; stop(): Promise<void> } {
  const controller = new AbortController();
  const watched: ProgressEvent[] = [];
  const followed: ProgressEvent[] = [];
  const errors: string[] = [];
  const watching = (async () => {
    for await (const e of reader.watch(upgradeId, 0, { signal: controller.signal })) watched.push(e);
  })().catch((e: Error & { code?: string }) => errors.push(`watch: ${e.code} ${e.message}`));
  const following = (async () => {
    for await (const e of reader.watchAll({ signal: controller.signal })) followed.push(e);
  })().catch((e: Error & { code?: string }) => errors.push(`watchAll: ${e.code} ${e.message}`));
  return {
    watched,
    followed,
    errors,
    async stop() {
      controller.abort();
      await Promise.all([watching, following]);
    },
  };
}

export const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until `check` holds (a check that throws counts as not yet), for at most `ms`. On timeout the
 * error says what the check threw last, and what `explain` finds then (the state of what it waited on).
 */
export async function until(what: string, check: () => boolean | Promise<boolean>, ms = 20_000, explain?: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + ms;
  let threw: unknown;
  const holds = (): Promise<boolean> =>
    Promise.resolve()
      .then(check)
      .catch((err: unknown) => {
        threw = err;
        return false;
      });
  while (!(await holds())) {
    if (Date.now() > deadline) {
      const last = threw === undefined ? '' : `; the check threw last: ${threw instanceof Error ? threw.message : String(threw)}`;
      const found = explain ? `\n${await explain().catch((err: unknown) => `(could not tell why: ${String(err)})`)}` : '';
      throw new Error(`timed out waiting for ${what}${last}${found}`);
    }
    await pause(20);
  }
}

/** Iterates to the end; resolves with the error that ended the iteration (undefined when it ended cleanly). */
export async function endOf(iterable: AsyncIterable<ProgressEvent>, each: (ev: ProgressEvent) => void = () => {}): Promise<ProgressError | undefined> {
  try {
    for await (const ev of iterable) each(ev);
    return undefined;
  } catch (err) {
    return err as ProgressError;
  }
}

/**
 * Starts a watchAll() to iterate by hand; resolves once its start point is taken: it is asked on the
 * store's connection at the call, so a command sent on that connection after it is answered after it.
 */
export async function followAll(store: RedisStore): Promise<{ stop: AbortController; iterator: AsyncIterator<ProgressEvent> }> {
  const stop = new AbortController();
  const iterator = store.watchAll({ signal: stop.signal })[Symbol.asyncIterator]();
  await store.list();
  return { stop, iterator };
}

/** What `iterator` hands out before the event `eventId` (a marker appended last: everything before it was read). */
export async function readUpTo(iterator: AsyncIterator<ProgressEvent>, eventId: string): Promise<ProgressEvent[]> {
  const got: ProgressEvent[] = [];
  for (let ev = (await iterator.next()).value as ProgressEvent; ev.eventId !== eventId; ev = (await iterator.next()).value as ProgressEvent) got.push(ev);
  return got;
}

/** An ACL user's rules: every key, channel and command. */
export const ALL_ACCESS = ['~*', '&*', '+@all'] as const;

/**
 * A Redis ACL user of its own, named `<label>-<random>`, with password `pw` and `rules` (ACL
 * SETUSER's, after `reset on >pw`), and the URL (on `base`) that logs in as it. Delete it with
 * `ACL DELUSER`.
 */
export async function aclUser(admin: Redis, label: string, rules: readonly string[] = ALL_ACCESS, base = redisUrl()): Promise<{ user: string; url: string }> {
  const user = `${label}-${Math.random().toString(36).slice(2, 8)}`;
  await admin.call('ACL', 'SETUSER', user, 'reset', 'on', '>pw', ...rules);
  const url = new URL(base);
  url.username = user;
  url.password = 'pw';
  return { user, url: url.toString() };
}
