import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryStore, isProgressError } from '@progress/core';
import { ProgressWebSocketServer, createProgressTracker } from '../src/index.js';
import { resolveOptions } from '../src/options.js';
import { thrown } from '../../../tools/test-utils/src/thrown.js';

const base = { upgradeId: 'u1', planId: 'p1', clusterName: 'c1' };

describe('resolveOptions: every option of the old constructor, under its new name and its old one', () => {
  it('defaults to memory storage, no EventBridge, no WebSocket', () => {
    expect(resolveOptions(base)).toEqual({ ...base, storage: 'memory', sinks: [] });
  });

  it('storage: { json } and storagePath / storage_path', () => {
    expect(resolveOptions({ ...base, storage: { json: '/data' } }).storage).toEqual({ json: '/data' });
    expect(resolveOptions({ ...base, storagePath: '/data' }).storage).toEqual({ json: '/data' });
    expect(resolveOptions({ ...base, storage_path: '/data' } as never).storage).toEqual({ json: '/data' });
    // Both names of one folder say the same thing: taken, not refused as two stores.
    expect(resolveOptions({ ...base, storage: { json: '/data' }, storagePath: '/data' }).storage).toEqual({ json: '/data' });
  });

  it('takes an old name beside its new one when both give the same value (the old module passed both)', () => {
    expect(resolveOptions({ ...base, upgrade_id: 'u1', plan_id: 'p1', cluster_name: 'c1' } as never)).toMatchObject(base);
    expect(resolveOptions({ ...base, eventBridgeBusName: 'bus', eventbridge_bus_name: 'bus' } as never).eventBridge).toEqual({ busName: 'bus' });
    expect(resolveOptions({ ...base, webSocketPort: 9001, websocket_port: 9001 } as never).webSocket).toEqual({ port: 9001 });
  });

  it('storage: exactly the documented forms; anything else is INVALID_ARGUMENT naming them', async () => {
    const store = new MemoryStore();
    expect(resolveOptions({ ...base, storage: 'memory' }).storage).toBe('memory');
    expect(resolveOptions({ ...base, storage: { redis: 'redis://127.0.0.1:6379' } }).storage).toEqual({ redis: 'redis://127.0.0.1:6379' });
    expect(resolveOptions({ ...base, storage: { redis: 'redis://127.0.0.1:6379', keyPrefix: 'acme:' } }).storage).toEqual({ redis: 'redis://127.0.0.1:6379', keyPrefix: 'acme:' });
    expect(resolveOptions({ ...base, storage: store }).storage).toBe(store);
    // A key prefix goes with Redis only, as a string (RedisStore checks what it holds).
    for (const storage of [{ json: '/a', keyPrefix: 'x:' }, { redis: 'redis://x', keyPrefix: 5 }, { redis: 'redis://x', keyPrefix: '' }, { keyPrefix: 'x:' }]) {
      expect(() => resolveOptions({ ...base, storage: storage as never }), JSON.stringify(storage)).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('storage.keyPrefix is a non-empty string, and goes with { redis: url } only') }),
      );
    }
    const bad = ['./data', 'redis', 'json', '', 42, null, true, [], {}, { json: '' }, { json: 42 }, { redis: '' }, { redis: null }, { json: '/a', redis: 'redis://x' }, { append: 'no' }];
    for (const storage of bad) {
      let caught: unknown;
      try {
        await createProgressTracker({ ...base, storage: storage as never });
      } catch (err) {
        caught = err;
      }
      expect(isProgressError(caught, 'INVALID_ARGUMENT'), `${JSON.stringify(storage)}: ${String(caught)}`).toBe(true);
      expect((caught as Error).message).toMatch(/^\[@progress\/tracker\] storage must be 'memory', \{ json: dir \}, \{ redis: url \} or a ProgressStore, got /);
    }
  });

  it('storage: a { json } or { redis } form whose value is missing or wrong says which key and what it takes', () => {
    // `storage: { json: process.env.PROGRESS_DIR }` with the variable unset was refused as "got an
    // object of none of these forms": the object given was the { json } form, its value the mistake.
    // (Found by a review on 2026-12-02; the test failed before the fix.)
    const cases: Array<[object, string]> = [
      [{ json: undefined }, 'got storage.json undefined: it takes the folder\'s path, a non-empty string'],
      [{ json: 42 }, 'got storage.json 42: it takes the folder\'s path, a non-empty string'],
      [{ redis: undefined }, 'got storage.redis undefined: it takes a redis:// or rediss:// URL, a non-empty string'],
      [{ redis: '' }, 'got storage.redis "": it takes a redis:// or rediss:// URL, a non-empty string'],
      [{ json: '/a', redis: 'redis://:secret@x' }, 'got both storage.json and storage.redis: give one'],
      // A key given undefined beside the other is left out (`{ json: undefined, redis: url }` is the
      // { redis } form): the value of the other is the mistake.
      [{ json: undefined, redis: '' }, 'got storage.redis "": it takes a redis:// or rediss:// URL, a non-empty string'],
      [{ json: 7, redis: undefined }, 'got storage.json 7: it takes the folder\'s path, a non-empty string'],
    ];
    for (const [storage, message] of cases) {
      expect(() => resolveOptions({ ...base, storage: storage as never }), JSON.stringify(storage)).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT', message: `[@progress/tracker] storage must be 'memory', { json: dir }, { redis: url } or a ProgressStore, ${message}` }),
      );
    }
  });

  it('storage: a key the { json } or { redis } form does not take is refused, naming the one meant, not left out', () => {
    // A misspelt keyPrefix used to be dropped: the upgrade went under the default `progress:` prefix.
    const cases: Array<[object, string]> = [
      [{ redis: 'redis://127.0.0.1:6379', keyprefix: 'acme:' }, 'unknown option "storage.keyprefix" (did you mean "storage.keyPrefix"?)'],
      [{ redis: 'redis://127.0.0.1:6379', prefix: 'acme:' }, 'unknown option "storage.prefix"'],
      [{ json: '/data', durability: 'none' }, 'unknown option "storage.durability"'],
    ];
    for (const [storage, message] of cases) {
      expect(() => resolveOptions({ ...base, storage: storage as never }), JSON.stringify(storage)).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT', message: `[@progress/tracker] ${message}` }),
      );
    }
  });

  it('storage: a ProgressStore of its own that also has a json or redis key is that store, not a new JsonFileStore or RedisStore', async () => {
    // resolveOptions took it as a store (it has every method), and the tracker then opened a store
    // of its own in the folder (or at the URL) that key happened to name.
    const dir = join(tmpdir(), `progress-options-${process.pid}-${Date.now()}`);
    class NamedStore extends MemoryStore {
      constructor(readonly json?: string, readonly redis?: string) {
        super();
      }
    }
    try {
      for (const store of [new NamedStore(dir), new NamedStore(undefined, 'redis://127.0.0.1:1')]) {
        expect(resolveOptions({ ...base, storage: store }).storage).toBe(store);
        const t = await createProgressTracker({ ...base, storage: store });
        try {
          expect(t.storage).toBe(store);
          await t.startUpgrade();
          expect((await store.load('u1'))?.status).toBe('in_progress');
        } finally {
          await t.close();
        }
      }
      expect(existsSync(dir)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // storagePath beside such a store is two stores given, as beside any other.
    expect(() => resolveOptions({ ...base, storage: new NamedStore(dir), storagePath: dir })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: '[@progress/tracker] give either storage or storagePath, not both' }));
  });

  it('eventBridge.busName / eventBridgeBusName / eventbridge_bus_name, and region / awsRegion / aws_region', () => {
    expect(resolveOptions({ ...base, eventBridge: { busName: 'bus', region: 'eu-west-1' } }).eventBridge).toEqual({ busName: 'bus', region: 'eu-west-1' });
    expect(resolveOptions({ ...base, eventBridgeBusName: 'bus', awsRegion: 'eu-west-1' }).eventBridge).toEqual({ busName: 'bus', region: 'eu-west-1' });
    expect(resolveOptions({ ...base, eventbridge_bus_name: 'bus', aws_region: 'eu-west-1' } as never).eventBridge).toEqual({ busName: 'bus', region: 'eu-west-1' });
    expect(resolveOptions({ ...base, event_bridge_bus_name: 'bus' } as never).eventBridge).toEqual({ busName: 'bus' });
    expect(resolveOptions({ ...base, eventBridge: { busName: 'bus' }, awsRegion: 'us-east-2' }).eventBridge).toEqual({ busName: 'bus', region: 'us-east-2' });
  });

  it('webSocket options / enableWebSocket + webSocketPort / enable_websocket + websocket_port', () => {
    expect(resolveOptions({ ...base, webSocket: { port: 9000 } }).webSocket).toEqual({ port: 9000 });
    expect(resolveOptions({ ...base, enableWebSocket: true }).webSocket).toEqual({ port: 8765 });
    expect(resolveOptions({ ...base, enableWebSocket: true, webSocketPort: 9001 }).webSocket).toEqual({ port: 9001 });
    expect(resolveOptions({ ...base, enable_websocket: true, websocket_port: 0 } as never).webSocket).toEqual({ port: 0 });
    expect(resolveOptions({ ...base, enableWebSocket: false }).webSocket).toBeUndefined();
  });

  it('upgrade_id, plan_id, cluster_name', () => {
    expect(resolveOptions({ upgrade_id: 'u1', plan_id: 'p1', cluster_name: 'c1' } as never)).toMatchObject(base);
  });

  it('refuses contradictions and bad values with INVALID_ARGUMENT', async () => {
    // A shared server (never started here): a port cannot apply to it.
    const shared = new ProgressWebSocketServer({ port: 0 });
    const bad = [
      { ...base, storage: 'memory' as const, storagePath: '/x' },
      { ...base, storagePath: '' },
      { ...base, upgrade_id: 'other' },
      { ...base, awsRegion: 'eu-west-1' },
      { ...base, eventBridge: { busName: '' } },
      { ...base, eventBridge: { busName: 'a' }, eventBridgeBusName: 'b' },
      { ...base, eventBridge: { busName: 'a', region: 'eu-west-1' }, awsRegion: 'us-east-1' },
      { ...base, webSocketPort: 70000 },
      { ...base, webSocketPort: 65536 },
      { ...base, webSocketPort: -1 },
      { ...base, webSocket: shared, webSocketPort: 9001 },
      { ...base, webSocket: shared, enableWebSocket: true, webSocketPort: 9001 },
      { ...base, webSocketPort: 1.5 },
      { ...base, enableWebSocket: 'yes' },
      { ...base, enableWebSocket: false, webSocket: { port: 1 } },
      { ...base, webSocket: { port: 1 }, webSocketPort: 2 },
      { ...base, sinks: 'no' },
      // A port where the options go, and other values that are no options (they used to give a
      // server on 8765, or a TypeError for null).
      { ...base, webSocket: 9000 },
      { ...base, webSocket: 'x' },
      { ...base, webSocket: null },
      { ...base, webSocket: true },
      { ...base, webSocket: [] },
      { ...base, eventBridge: null },
      { ...base, eventBridge: null, eventBridgeBusName: 'b' },
      { ...base, eventBridge: null, awsRegion: 'eu-west-1' },
      { ...base, eventBridge: 'bus' },
    ];
    for (const options of bad) {
      let caught: unknown;
      try {
        resolveOptions(options as never);
      } catch (err) {
        caught = err;
      }
      expect(isProgressError(caught, 'INVALID_ARGUMENT'), JSON.stringify(options)).toBe(true);
    }
    await shared.stop();
    // The largest port is one, and the old switch off wins over the old port: no server, as in the old module.
    expect(resolveOptions({ ...base, webSocketPort: 65535 }).webSocket).toEqual({ port: 65535 });
    expect(resolveOptions({ ...base, enableWebSocket: false, webSocketPort: 9001 }).webSocket).toBeUndefined();
  });

  it('awsRegion alone names what it needs, not an eventBridge.busName that was never given', () => {
    // The old module's region without its bus: the error is about awsRegion, the key the user wrote.
    for (const options of [{ ...base, awsRegion: 'eu-west-1' }, { ...base, aws_region: 'eu-west-1' }]) {
      expect(() => resolveOptions(options as never), JSON.stringify(options)).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT', message: '[@progress/tracker] awsRegion needs eventBridgeBusName (or eventBridge.busName)' }),
      );
    }
  });
});

describe('storeTimeoutMs: passed to the engine', () => {
  it('refuses a command the store never answers with STORE_UNAVAILABLE after storeTimeoutMs, and the next command works', async () => {
    const inner = new MemoryStore();
    let hang = false;
    const store = Object.assign(Object.create(null) as object, {
      acquire: (id: string) => inner.acquire(id),
      release: (id: string) => inner.release(id),
      load: (id: string) => inner.load(id),
      append: (...args: Parameters<MemoryStore['append']>) => (hang ? new Promise<void>(() => {}) : inner.append(...args)),
      readEvents: (id: string, afterSeq: number, limit?: number) => inner.readEvents(id, afterSeq, limit),
      list: () => inner.list(),
      delete: (id: string) => inner.delete(id),
      info: () => inner.info(),
      close: () => inner.close(),
    }) as MemoryStore;
    expect(resolveOptions({ ...base, storeTimeoutMs: 100 }).storeTimeoutMs).toBe(100);
    const t = await createProgressTracker({ ...base, storage: store, storeTimeoutMs: 100 });
    hang = true;
    await expect(t.startUpgrade()).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'timeout', timeoutMs: 100 } });
    hang = false;
    expect((await t.startUpgrade()).seq).toBe(2);
    await t.close();
    await expect(createProgressTracker({ ...base, storeTimeoutMs: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('a nested option object that cannot be read', () => {
  // The top-level options object was already refused as one that could not be read; a nested one
  // (storage, eventBridge, webSocket, callbacks) threw what its getter or Proxy trap threw.
  const unreadable = (): object => new Proxy({}, { get: () => { throw new Error('trap'); }, has: () => { throw new Error('trap'); }, ownKeys: () => { throw new Error('trap'); }, getPrototypeOf: () => { throw new Error('trap'); } });
  it.each(['storage', 'eventBridge', 'webSocket', 'callbacks'])('%s is refused with INVALID_ARGUMENT by resolveOptions and createProgressTracker', async (option) => {
    const caught = thrown(() => resolveOptions({ ...base, [option]: unreadable() }));
    expect(isProgressError(caught, 'INVALID_ARGUMENT'), String(caught)).toBe(true);
    expect(caught.message).toContain('could not be read');
    await expect(createProgressTracker({ ...base, [option]: unreadable() })).rejects.toMatchObject({ name: 'ProgressError', code: 'INVALID_ARGUMENT' });
  });
});
