// A ws-server and another process on one Redis, for the tests of what the server answers when the
// store changes under it: two RedisStores on one keyPrefix (`serving`: the server's, as a second
// machine's would be; `writing`: the agent's), and the served store, which wraps `serving` so that a
// test can hold the reply of one load (what is read is what Redis held when the command ran) and
// count the loads.
import { randomUUID } from 'node:crypto';
import { ProgressError, type ProgressStore, type UpgradeProgress } from '@progress/core';
import { RedisStore, type RedisStoreOptions } from '@progress/storage-redis';
import type { Redis } from 'ioredis';
import { ProgressWebSocketServer } from '../src/index.js';
import { deleteKeys } from '../../../tools/test-utils/src/redis.js';
import { TestClient, deferred, sleep, type Deferred } from './helpers.js';

export type LoadHook = (id: string, read: Promise<UpgradeProgress | undefined>) => Promise<UpgradeProgress | undefined>;

export interface TwoProcesses {
  serving: RedisStore;
  writing: RedisStore;
  /** `serving` with the load hook and count: what the server is given. */
  store: ProgressStore;
  /** The serving store's connection name (its watch connections are `<name>:watch`). */
  name: string;
  hooks: { load?: LoadHook };
  loads: Map<string, number>;
  /** `down`: every load rejects as an unreachable Redis fails it; `latencyMs`: added to every load's reply. */
  faults: { down: boolean; latencyMs: number };
}

/** Everything a test file opened, closed (and its keys deleted) by {@link cleanup} in its `afterAll`. */
export class Harness {
  readonly #closers: Array<() => Promise<unknown>> = [];
  readonly #prefixes: string[] = [];

  /** `both` goes to both stores; `serving` (default a 200 ms watch block) to the server's only. */
  setup(options: { both?: Partial<RedisStoreOptions>; serving?: Partial<RedisStoreOptions> } = {}): TwoProcesses {
    const url = redisUrl();
    const name = `ws-two-${randomUUID().slice(0, 8)}`;
    const keyPrefix = `${name}:`;
    this.#prefixes.push(keyPrefix);
    const serving = new RedisStore({ url, keyPrefix, connectionName: name, ...options.both, ...(options.serving ?? { watchBlockMs: 200 }) });
    const writing = new RedisStore({ url, keyPrefix, connectionName: `${name}-writer`, ...options.both });
    this.#closers.push(() => serving.close(), () => writing.close());
    const hooks: { load?: LoadHook } = {};
    const loads = new Map<string, number>();
    const faults = { down: false, latencyMs: 0 };
    const store: ProgressStore = {
      load: (id) => {
        if (faults.down) return Promise.reject(new ProgressError('STORE_UNAVAILABLE', 'connect ECONNREFUSED (test)'));
        loads.set(id, (loads.get(id) ?? 0) + 1);
        let read = serving.load(id); // sent to Redis now
        if (faults.latencyMs > 0) read = read.then(async (value) => (await sleep(faults.latencyMs), value));
        return hooks.load ? hooks.load(id, read) : read;
      },
      append: (id, events, expected, state) => serving.append(id, events, expected, state),
      list: (filter) => serving.list(filter),
      delete: (id) => serving.delete(id),
      info: () => serving.info(),
      close: async () => {},
      readEvents: (id, after, limit) => serving.readEvents(id, after, limit),
      watch: (id, after, watchOptions) => serving.watch(id, after, watchOptions),
      watchAll: (watchOptions) => serving.watchAll(watchOptions),
    };
    return { serving, writing, store, name, hooks, loads, faults };
  }

  async serve(store: ProgressStore): Promise<{ server: ProgressWebSocketServer; wsUrl: string }> {
    const server = new ProgressWebSocketServer({ port: 0, store });
    this.#closers.push(() => server.stop());
    const { url: wsUrl } = await server.start();
    return { server, wsUrl };
  }

  async connect(wsUrl: string): Promise<TestClient> {
    const client = await TestClient.connect(wsUrl);
    this.#closers.push(async () => client.ws.terminate());
    return client;
  }

  /** A client subscribed to every upgrade (`'*'`), once the server said so. */
  async followAll(wsUrl: string): Promise<TestClient> {
    const client = await this.connect(wsUrl);
    client.send({ type: 'subscribe', upgradeId: '*' });
    await client.next((m) => m.type === 'subscribed');
    return client;
  }

  /** Closes at the end what a test opened itself. */
  onCleanup(close: () => Promise<unknown>): void {
    this.#closers.push(close);
  }

  async cleanup(): Promise<void> {
    for (const close of this.#closers.reverse()) await close().catch(() => undefined);
    for (const prefix of this.#prefixes) await deleteKeys(redisUrl(), prefix);
  }
}

export function redisUrl(): string {
  const url = process.env.REDIS_URL;
  if (!url) throw new Error('REDIS_URL is not set: the global setup should have started a Redis');
  return url;
}

/** The watch connections of the serving store named `name` that Redis holds now (CLIENT LIST). */
export async function watchConnections(admin: Redis, name: string): Promise<number> {
  const list = (await admin.call('CLIENT', 'LIST')) as string;
  return list.split('\n').filter((line) => line.includes(` name=${name}:watch `)).length;
}

/** Holds the reply of the next load of `id` until `gate` resolves; `issued` resolves once it was sent. */
export function holdNextLoad(hooks: { load?: LoadHook }, id: string): { gate: Deferred; issued: Deferred } {
  const gate = deferred();
  const issued = deferred();
  hooks.load = (loaded, read) => {
    if (loaded !== id) return read;
    hooks.load = undefined;
    issued.resolve();
    return read.then(async (value) => {
      await gate.promise;
      return value;
    });
  };
  return { gate, issued };
}
