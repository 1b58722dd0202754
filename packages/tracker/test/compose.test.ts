import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { localClientConfig, startEventBridgeEndpoint, type EventBridgeEndpoint } from '../../../tools/test-utils/src/eventbridge-endpoint.js';
import {
  CallbackManager,
  EventBridgeNotifier,
  JsonFileStore,
  MemoryStore,
  ProgressStatus,
  ProgressWebSocketServer,
  RedisStore,
  createProgressTracker,
  isProgressError,
  type ProgressEvent,
} from '../src/index.js';
import { cleanupTempDirs, deleteKeys, legacyDir, tempDir, uniqueId, wsClient } from './helpers.js';

const base = () => ({ upgradeId: uniqueId('meta'), planId: 'plan-1', clusterName: 'cluster-1' });

afterAll(() => cleanupTempDirs());

describe('createProgressTracker', () => {
  it('composes memory storage and callbacks by default, with the whole engine API', async () => {
    const t = await createProgressTracker(base());
    expect(t.storage).toBeInstanceOf(MemoryStore);
    expect(t.callbacks).toBeInstanceOf(CallbackManager);
    expect(t.notifier).toBeUndefined();
    expect(t.websocket).toBeUndefined();
    const seen: string[] = [];
    const completed: string[] = [];
    const off = t.addEventCallback((event: ProgressEvent) => {
      seen.push(event.type);
    });
    t.addStatusCallback(ProgressStatus.COMPLETED, (task) => {
      completed.push(task.taskId);
    });
    await t.startUpgrade();
    await t.addTasks([{ taskId: 'a', taskName: 'A' }, { taskId: 'b', taskName: 'B' }]);
    await t.startTask('a');
    await t.updateTaskProgress('a', 50);
    await t.completeTask('a');
    off();
    await t.completeTask('b');
    await t.completeUpgrade();
    await t.flush();
    expect(seen).toEqual(['upgrade.started', 'task.added', 'task.added', 'task.started', 'task.progress', 'task.completed']);
    expect(completed).toEqual(['a', 'b']);
    expect(t.getProgressSummary()).toMatchObject({ status: 'completed', overallPercentage: 100, completedTasks: 2 });
    expect(t.getSystemInfo()).toMatchObject({ store: { name: 'MemoryStore' }, notifier: null, websocket: { enabled: false }, callbacks: { eventCallbacks: 0 } });
    await t.close();
    await expect(t.startTask('a')).rejects.toMatchObject({ code: 'CLOSED' });
    await expect(t.startWebSocketServer()).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it("passes metadata and now to the engine: the upgrade's created event holds the metadata, stamped by that clock", async () => {
    const at = Date.parse('2026-01-02T03:04:05.000Z');
    const t = await createProgressTracker({ ...base(), metadata: { ticket: 'OPS-1', targetVersion: '1.31' }, now: () => at });
    await t.startUpgrade();
    expect(t.progress.metadata).toEqual({ ticket: 'OPS-1', targetVersion: '1.31' });
    expect(t.progress.createdAt).toBe('2026-01-02T03:04:05.000Z');
    expect(t.progress.startedAt).toBe('2026-01-02T03:04:05.000Z');
    await t.close();
  });

  it('leaves a store passed in open when closed: it is shared, and its owner closes it', async () => {
    const store = new MemoryStore();
    const options = base();
    const t = await createProgressTracker({ ...options, storage: store });
    expect(t.storage).toBe(store);
    await t.startUpgrade();
    await t.close();
    expect((await store.list()).map((r) => r.upgradeId)).toEqual([options.upgradeId]);
    await store.close();
  });

  it("has the engine's closed: false while open, true once close() is called", async () => {
    // It was the one member of the engine's API left out: tracker.closed read undefined, even after close().
    const t = await createProgressTracker(base());
    expect(t.closed).toBe(false);
    const closing = t.close();
    expect(t.closed).toBe(true);
    await closing;
    expect(t.closed).toBe(true);
  });

  it('keeps events in a JSON folder under storage: { json } and under the old storagePath, and resumes from it', async () => {
    const dir = tempDir('json');
    const ids = base();
    const t = await createProgressTracker({ ...ids, storage: { json: dir } });
    expect(t.storage).toBeInstanceOf(JsonFileStore);
    await t.startUpgrade('Plan');
    await t.addTask('a', 'A');
    await t.close();
    expect(readdirSync(join(dir, 'upgrades'))).toContain(ids.upgradeId);
    const again = await createProgressTracker({ ...ids, storagePath: dir });
    expect(again.progress).toMatchObject({ status: 'in_progress', currentPhase: 'Plan', lastSeq: 3 });
    await again.completeTask('a');
    await again.close();
  });

  it("loads the old module's JSON file through storagePath", async () => {
    const t = await createProgressTracker({ upgradeId: 'test-upgrade-123', planId: 'test-plan-123', clusterName: 'test-cluster', storagePath: legacyDir() });
    expect(t.progress).toMatchObject({ status: 'failed', currentPhase: 'Test Phase', clusterName: 'test-cluster' });
    expect(Object.keys(t.progress.tasks)).toEqual(['task-1', 'task-2', 'task-3']);
    expect(t.progress.tasks['task-1']!.startedAt).toBe('2025-10-20T05:25:00.869Z');
    await t.close();
  });

  it('keeps events in Redis under storage: { redis, keyPrefix }', async () => {
    const ids = base();
    const url = process.env.REDIS_URL!;
    const keyPrefix = `${uniqueId('compose')}:`;
    const t = await createProgressTracker({ ...ids, storage: { redis: url, keyPrefix } });
    expect(t.storage).toBeInstanceOf(RedisStore);
    await t.startUpgrade();
    await t.addTask('a', 'A');
    const reader = new RedisStore({ url, keyPrefix });
    const other = new RedisStore({ url });
    try {
      expect((await reader.load(ids.upgradeId))?.lastSeq).toBe(3);
      expect(await other.load(ids.upgradeId)).toBeUndefined();
    } finally {
      await t.close();
      await Promise.all([reader.close(), other.close()]);
      await deleteKeys(url, keyPrefix);
    }
  });

  it('refuses bad options with INVALID_ARGUMENT and an engine error as it is', async () => {
    await expect(createProgressTracker({ ...base(), storagePath: '' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(createProgressTracker({ ...base(), upgradeId: '../x' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const dir = tempDir('conflict');
    const ids = base();
    const first = await createProgressTracker({ ...ids, storagePath: dir });
    const err = await createProgressTracker({ ...ids, storagePath: dir }).catch((e: unknown) => e);
    expect(isProgressError(err, 'CONFLICT')).toBe(true);
    await first.close();
  });
});

/**
 * The timeout of each drain() of `notifier` from now on (its flush() and close() drain), in order.
 * With `giveUp`, each drain gives up at once instead of waiting that long.
 */
function drainTimeouts(notifier: EventBridgeNotifier, { giveUp = false } = {}): Array<number | undefined> {
  const timeouts: Array<number | undefined> = [];
  const drain = notifier.drain.bind(notifier);
  notifier.drain = (timeoutMs?: number) => {
    timeouts.push(timeoutMs);
    return drain(giveUp ? 0 : timeoutMs);
  };
  return timeouts;
}

describe('close() after a store whose last write outlasted sinkFlushTimeoutMs', () => {
  it('still closes the callbacks (with no time left, not a negative one): the calls queued are dropped, and no component fails to close', async () => {
    const warnings: Array<{ obj: Record<string, unknown>; msg: string | undefined }> = [];
    const logger = { debug() {}, info() {}, error() {}, warn: (obj: object, msg?: string) => void warnings.push({ obj: obj as Record<string, unknown>, msg }) };
    let slow = false;
    class SlowStore extends MemoryStore {
      override async append(...args: Parameters<MemoryStore['append']>): ReturnType<MemoryStore['append']> {
        if (slow) await new Promise((r) => setTimeout(r, 500));
        return super.append(...args);
      }
    }
    const store = new SlowStore();
    const t = await createProgressTracker({ ...base(), storage: store, callbackTimeoutMs: 5000, sinkFlushTimeoutMs: 100, logger });
    t.addEventCallback(() => new Promise(() => {}));
    await t.startUpgrade();
    await t.addTasks(Array.from({ length: 5 }, (_, i) => ({ taskId: `t${i}`, taskName: `T${i}` })));
    // The last command's write takes longer than sinkFlushTimeoutMs: close() waits for it first.
    slow = true;
    const last = t.startTask('t0');
    await t.close();
    await last;
    await store.close();
    expect(warnings.filter((w) => w.msg === 'closing a component failed')).toEqual([]);
    const { dropped } = t.callbacks.getStats();
    expect(dropped).toBeGreaterThan(0);
    expect(warnings).toContainEqual({ obj: { dropped }, msg: 'callbacks closed before these queued calls ran; they were dropped' });
  }, 20_000);
});

describe('createProgressTracker with EventBridge (the real SDK client against a local endpoint)', () => {
  let endpoint: EventBridgeEndpoint;
  beforeAll(async () => {
    endpoint = await startEventBridgeEndpoint();
  });
  afterEach(() => endpoint.reset());
  afterAll(async () => {
    await endpoint.close();
  });

  it('sends the old DetailTypes through eventBridge: { busName, client }', async () => {
    const client = new EventBridgeClient(localClientConfig(endpoint.url));
    const t = await createProgressTracker({ ...base(), eventBridge: { busName: 'upgrades', client, source: 'my-agent' } });
    expect(t.notifier).toBeInstanceOf(EventBridgeNotifier);
    await t.startUpgrade('Pre-flight');
    await t.addTask('a', 'A');
    await t.startTask('a');
    await t.completeTask('a');
    await t.completeUpgrade();
    await t.close();
    expect(endpoint.entries.map((e) => e.DetailType)).toEqual(['upgrade.started', 'task.started', 'task.completed', 'upgrade.completed']);
    expect(endpoint.entries.every((e) => e.EventBusName === 'upgrades' && e.Source === 'my-agent')).toBe(true);
    client.destroy();
  });

  it('waits for EventBridge within one flush timeout in all: not a second one after the engine gave up, and not cut short by sinkFlushTimeoutMs', async () => {
    // An endpoint that never answers: the engine's flush gives up after sinkFlushTimeoutMs, and the
    // notifier's close waits only for what is left of its flush timeout.
    const silent = await startEventBridgeEndpoint({ latencyMs: 60_000 });
    const silentClient = new EventBridgeClient(localClientConfig(silent.url));
    // One that answers after 1.5 s: delivered, though sinkFlushTimeoutMs is shorter.
    const slow = await startEventBridgeEndpoint({ latencyMs: 1500 });
    const slowClient = new EventBridgeClient(localClientConfig(slow.url));
    try {
      const t = await createProgressTracker({ ...base(), eventBridge: { busName: 'upgrades', client: silentClient, flushTimeoutMs: 500 }, sinkFlushTimeoutMs: 200 });
      const notifier = t.notifier!;
      const drains = drainTimeouts(notifier);
      await t.startUpgrade();
      await t.close();
      // The engine's flush (what is left of the 500 ms, cut at 200 ms), then the close with the rest.
      expect(drains).toHaveLength(2);
      expect(drains[0]).toBeGreaterThanOrEqual(0);
      expect(drains[0]).toBeLessThanOrEqual(500);
      expect(drains[1]).toBeGreaterThanOrEqual(0);
      expect(drains[1]).toBeLessThanOrEqual(300);
      expect(notifier.stats()).toMatchObject({ failed: 1, queued: 0, inFlight: 0 });

      const u = await createProgressTracker({ ...base(), eventBridge: { busName: 'upgrades', client: slowClient }, sinkFlushTimeoutMs: 300 });
      await u.startUpgrade();
      await u.close();
      expect(u.notifier!.stats()).toMatchObject({ sent: 1, failed: 0 });
    } finally {
      silentClient.destroy();
      slowClient.destroy();
      await silent.close();
      await slow.close();
    }
  });

  it('closes the components it made in the order the README gives: callbacks, notifier, WebSocket server, store', async () => {
    const client = new EventBridgeClient(localClientConfig(endpoint.url));
    try {
      const t = await createProgressTracker({ ...base(), eventBridge: { busName: 'upgrades', client }, webSocket: { port: 0 } });
      await t.startWebSocketServer();
      await t.startUpgrade();
      const closed: string[] = [];
      const record = <T extends object>(name: string, target: T, method: keyof T & string): void => {
        const original = (target[method] as (...args: unknown[]) => Promise<unknown>).bind(target);
        (target as Record<string, unknown>)[method] = async (...args: unknown[]) => {
          closed.push(name);
          return original(...args);
        };
      };
      record('callbacks', t.callbacks, 'close');
      record('notifier', t.notifier!, 'close');
      record('websocket', t.websocket!, 'stop');
      record('store', t.storage, 'close');
      await t.close();
      // The server's clients are closed before the store that backs what it serves.
      expect(closed).toEqual(['callbacks', 'notifier', 'websocket', 'store']);
    } finally {
      client.destroy();
    }
  });

  it('waits for EventBridge within eventBridge.flushTimeoutMs, 10 s by default as the README says', async () => {
    const silent = await startEventBridgeEndpoint({ latencyMs: 60_000 });
    const client = new EventBridgeClient(localClientConfig(silent.url));
    try {
      const t = await createProgressTracker({ ...base(), eventBridge: { busName: 'upgrades', client }, sinkFlushTimeoutMs: 200 });
      const notifier = t.notifier!;
      // Each drain given up at once: the test does not wait the 10 s.
      const drains = drainTimeouts(notifier, { giveUp: true });
      await t.startUpgrade();
      await t.close();
      // The engine's flush is given what is left of the 10 s from the start of close(): more than
      // half of it (not a shorter default), and no more than it (not a longer one).
      expect(drains).toHaveLength(2);
      expect(drains[0]).toBeGreaterThan(5_000);
      expect(drains[0]).toBeLessThanOrEqual(10_000);
    } finally {
      client.destroy();
      await silent.close();
    }
  });

  it("counts the callbacks' close in the notifier's budget: nothing is left for it after a callback that outlasts the flush timeout", async () => {
    const silent = await startEventBridgeEndpoint({ latencyMs: 60_000 });
    const client = new EventBridgeClient(localClientConfig(silent.url));
    try {
      // (sinkFlushTimeoutMs bounds the wait for the callbacks too: 2 s lets this one finish.)
      const t = await createProgressTracker({ ...base(), eventBridge: { busName: 'upgrades', client, flushTimeoutMs: 1000 }, sinkFlushTimeoutMs: 2000 });
      const notifier = t.notifier!;
      const drains = drainTimeouts(notifier);
      // A callback busy for 1.2 s: the close waits for it, past the notifier's 1 s.
      t.addEventCallback(async () => {
        await new Promise((r) => setTimeout(r, 1200));
      });
      await t.startUpgrade();
      await t.close();
      expect(drains).toEqual([expect.any(Number), 0]);
    } finally {
      client.destroy();
      await silent.close();
    }
  });

  it("counts a slow store's last write in the notifier's budget: the engine's flush of it waits no longer than what is left", async () => {
    // The engine's flush ran the notifier's own flush timeout again once the store had answered,
    // so close() waited for delivery for the store's time plus a whole flushTimeoutMs.
    const silent = await startEventBridgeEndpoint({ latencyMs: 60_000 });
    const client = new EventBridgeClient(localClientConfig(silent.url));
    class SlowStore extends MemoryStore {
      slow = false;
      override async append(...args: Parameters<MemoryStore['append']>): Promise<void> {
        // Longer than the flush timeout below: none of it is left once this write is durable.
        if (this.slow) await new Promise((r) => setTimeout(r, 700));
        return super.append(...args);
      }
    }
    const store = new SlowStore();
    try {
      const t = await createProgressTracker({ ...base(), storage: store, eventBridge: { busName: 'upgrades', client, flushTimeoutMs: 500 } });
      const notifier = t.notifier!;
      const drains = drainTimeouts(notifier);
      await t.startUpgrade();
      store.slow = true;
      const completed = t.completeUpgrade();
      await t.close();
      await completed;
      expect(drains).toEqual([0, 0]);
      expect(notifier.stats()).toMatchObject({ failed: 2, queued: 0, inFlight: 0 });
    } finally {
      client.destroy();
      await silent.close();
      await store.close();
    }
  });

  it('sends them under the old names eventBridgeBusName + awsRegion too', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, { AWS_ENDPOINT_URL_EVENTBRIDGE: endpoint.url, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
    try {
      const t = await createProgressTracker({ ...base(), eventBridgeBusName: 'legacy-bus', awsRegion: 'eu-central-1' });
      await t.startUpgrade();
      await t.failUpgrade('boom');
      await t.close();
      expect(endpoint.entries.map((e) => [e.DetailType, e.EventBusName, e.Source])).toEqual([
        ['upgrade.started', 'legacy-bus', 'eks-upgrade-agent'],
        ['upgrade.failed', 'legacy-bus', 'eks-upgrade-agent'],
      ]);
      expect(endpoint.requests[0]!.headers.authorization).toContain('/eu-central-1/events/');
    } finally {
      process.env = saved;
    }
  });

  it('takes the region from eventBridge.clientConfig, with none in the environment (the README says a region is needed only without it)', async () => {
    const saved = { ...process.env };
    delete process.env.AWS_REGION;
    delete process.env.AWS_DEFAULT_REGION;
    try {
      const t = await createProgressTracker({ ...base(), eventBridge: { busName: 'bus', clientConfig: { ...localClientConfig(endpoint.url), region: 'ap-south-1' } } });
      await t.startUpgrade();
      await t.close();
      expect(endpoint.entries.map((e) => e.DetailType)).toEqual(['upgrade.started']);
      expect(endpoint.requests[0]!.headers.authorization).toContain('/ap-south-1/events/');
    } finally {
      process.env = saved;
    }
  });

  it("takes the region of the AWS profile, as boto3 did; with no region anywhere it refuses to start (INVALID_ARGUMENT) and leaves nothing open", async () => {
    const saved = { ...process.env };
    const dir = tempDir('region');
    for (const name of ['AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE', 'AWS_EC2_METADATA_SERVICE_ENDPOINT']) delete process.env[name];
    // The old module's setting: the bus by name, the rest from the environment and ~/.aws (as boto3 reads them).
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_EVENTBRIDGE: endpoint.url,
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_CONFIG_FILE: join(dir, 'config'),
      AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'),
      AWS_EC2_METADATA_DISABLED: 'true',
    });
    try {
      writeFileSync(join(dir, 'config'), '[default]\nregion = eu-north-1\n');
      const t = await createProgressTracker({ ...base(), eventBridgeBusName: 'legacy-bus' });
      await t.startUpgrade();
      await t.close();
      expect(endpoint.entries.map((e) => [e.DetailType, e.EventBusName])).toEqual([['upgrade.started', 'legacy-bus']]);
      expect(endpoint.requests[0]!.headers.authorization).toContain('/eu-north-1/events/');
      // No region: a config file of another name (the SDK keeps a file it has read), without one.
      process.env.AWS_CONFIG_FILE = join(dir, 'config-without-region');
      writeFileSync(process.env.AWS_CONFIG_FILE, '[default]\noutput = json\n');
      const ids = base();
      const storage = { json: join(dir, 'store') };
      await expect(createProgressTracker({ ...ids, storage, eventBridgeBusName: 'legacy-bus' })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        message: expect.stringMatching(/no AWS region for the client the notifier makes: .*profile "default"/),
      });
      // Nothing held: the folder's writer lock is free, and nothing was sent.
      const again = await createProgressTracker({ ...ids, storage });
      await again.startUpgrade();
      await again.close();
      expect(endpoint.requests).toHaveLength(1);
    } finally {
      process.env = saved;
    }
  });
});

describe('createProgressTracker with the WebSocket server', () => {
  it('listens only once startWebSocketServer() is called, idempotently, and streams events', async () => {
    const ids = base();
    const t = await createProgressTracker({ ...ids, webSocket: { port: 0 } });
    expect(t.websocket).toBeInstanceOf(ProgressWebSocketServer);
    expect(t.getSystemInfo().websocket).toEqual({ enabled: true, listening: false, url: null });
    await t.startUpgrade();
    const address = await t.startWebSocketServer();
    expect(await t.startWebSocketServer()).toEqual(address);
    expect(address.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/ws$/);
    const client = await wsClient(address.url);
    client.ws.send(JSON.stringify({ type: 'subscribe', upgradeId: ids.upgradeId, sinceSeq: 0 }));
    await client.next('subscribed');
    await t.addTask('a', 'A');
    const added = await client.next('progress_event', (m) => (m.data as ProgressEvent).type === 'task.added');
    expect((added.data as ProgressEvent).seq).toBe(3);
    expect(client.messages.filter((m) => m.type === 'progress_event').map((m) => (m.data as ProgressEvent).seq)).toEqual([1, 2, 3]);
    client.ws.close();
    await t.stopWebSocketServer();
    expect(t.getSystemInfo().websocket.listening).toBe(false);
    await t.close();
  });

  it('stops a server it made when closed, also one started through tracker.websocket.start(), and never reports a stopped one', async () => {
    const t = await createProgressTracker({ ...base(), webSocket: { port: 0 } });
    const address = await t.websocket!.start();
    await t.close();
    expect(t.websocket!.address).toBeUndefined();
    // Nothing listens there any more.
    await expect(wsClient(address.url)).rejects.toThrow();
    // A stop while a start is pending: the address is not set afterwards.
    const u = await createProgressTracker({ ...base(), webSocket: { port: 0 } });
    const starting = u.startWebSocketServer();
    await u.stopWebSocketServer();
    await starting.catch(() => {});
    expect(u.getSystemInfo().websocket).toMatchObject({ listening: false, url: null });
    await u.close();
  });

  it('stops, when closed, the default server startWebSocketServer() made when none was configured', async (ctx) => {
    const t = await createProgressTracker(base());
    // The default server listens on 8765, which another process of this machine may hold.
    const address = await t.startWebSocketServer().catch((e: unknown) => {
      if (isProgressError(e, 'CONFLICT')) return undefined;
      throw e;
    });
    if (!address) {
      await t.close();
      return ctx.skip('port 8765 is taken');
    }
    await t.close();
    expect(t.websocket!.address).toBeUndefined();
    expect(t.getSystemInfo().websocket).toMatchObject({ listening: false, url: null });
    await expect(wsClient(address.url)).rejects.toThrow();
  });

  it('closes while an attached http.Server it was given has not started listening: the pending start rejects', async () => {
    const http = createServer();
    const t = await createProgressTracker({ ...base(), webSocket: { server: http } });
    const starting = t.startWebSocketServer();
    await t.close();
    await expect(starting).rejects.toMatchObject({ code: 'CLOSED' });
    // Also stopWebSocketServer() alone.
    const u = await createProgressTracker({ ...base(), webSocket: { server: http } });
    const again = u.startWebSocketServer();
    await u.stopWebSocketServer();
    await expect(again).rejects.toMatchObject({ code: 'CLOSED' });
    await u.close();
  });

  it('closes although a sink never finishes its flush(), after sinkFlushTimeoutMs, and stops the server and store', async () => {
    const warnings: string[] = [];
    const logger = { debug() {}, info() {}, warn: (_: object, msg?: string) => warnings.push(msg ?? ''), error() {} };
    const stuck = { name: 'stuck', handle() {}, flush: () => new Promise<void>(() => {}) };
    const t = await createProgressTracker({ ...base(), webSocket: { port: 0 }, sinks: [stuck], logger, sinkFlushTimeoutMs: 200 });
    await t.startWebSocketServer();
    await t.startUpgrade();
    await t.close();
    expect(warnings).toContain('sink flush timed out; going on without it');
    expect(t.getSystemInfo().websocket.listening).toBe(false);
  });

  it("reports the server's own address, however it was started or stopped, and starts it again after a stop made elsewhere", async () => {
    const shared = new ProgressWebSocketServer({ port: 0 });
    const started = await shared.start();
    const t = await createProgressTracker({ ...base(), webSocket: shared });
    // Started by its owner: listening, before this tracker asked.
    expect(t.getSystemInfo().websocket).toEqual({ enabled: true, listening: true, url: started.url });
    await shared.stop();
    expect(t.getSystemInfo().websocket).toMatchObject({ listening: false, url: null });
    // Stopped elsewhere: startWebSocketServer() starts it again, at an address that answers.
    const again = await t.startWebSocketServer();
    expect(t.getSystemInfo().websocket).toEqual({ enabled: true, listening: true, url: again.url });
    const client = await wsClient(again.url);
    await client.next('welcome');
    client.ws.close();
    await t.close();
    await shared.stop();
  });

  it('takes the old enableWebSocket + webSocketPort', async () => {
    const t = await createProgressTracker({ ...base(), enableWebSocket: true, webSocketPort: 0 });
    const { port } = await t.startWebSocketServer();
    expect(port).toBeGreaterThan(0);
    await t.close();
  });

  it('shares one server between the trackers of a process', async () => {
    const server = new ProgressWebSocketServer({ port: 0 });
    const a = await createProgressTracker({ ...base(), webSocket: server });
    const b = await createProgressTracker({ ...base(), webSocket: server });
    const { url } = await a.startWebSocketServer();
    expect((await b.startWebSocketServer()).url).toBe(url);
    const client = await wsClient(url);
    client.ws.send(JSON.stringify({ type: 'list_upgrades' }));
    const list = await client.next('upgrades');
    expect((list.data as Array<{ upgradeId: string }>).map((r) => r.upgradeId).sort()).toEqual([a.upgradeId, b.upgradeId].sort());
    client.ws.close();
    await a.close();
    // A shared server is only detached from: it goes on serving the other tracker.
    expect(server.address?.url).toBe(url);
    await b.close();
    expect(server.address?.url).toBe(url);
    await server.stop();
  });
});
