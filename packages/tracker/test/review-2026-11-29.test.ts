// Found by a review on 2026-11-29; each test failed before its fix.
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { localClientConfig, startEventBridgeEndpoint } from '../../../tools/test-utils/src/eventbridge-endpoint.js';
import { createProgressTracker, isProgressError, type EventBridgeOption, type ProgressWebSocketServerOptions } from '../src/index.js';
import { resolveOptions } from '../src/options.js';
import { main } from '../src/cli/main.js';
import { Capture, cleanupTempDirs, runCli } from './helpers.js';

afterAll(() => cleanupTempDirs());
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('close() with a callback that hangs', () => {
  it('waits for the callbacks no longer than sinkFlushTimeoutMs: the calls still queued then are dropped, and said so', async () => {
    const warnings: Array<{ obj: Record<string, unknown>; msg: string | undefined }> = [];
    const logger = { debug() {}, info() {}, error() {}, warn: (obj: object, msg?: string) => void warnings.push({ obj: obj as Record<string, unknown>, msg }) };
    const t = await createProgressTracker({ upgradeId: 'hung-cb', planId: 'p', clusterName: 'c', callbackTimeoutMs: 200, sinkFlushTimeoutMs: 300, logger });
    let calls = 0;
    // A webhook whose HTTP call never answers: each call times out after 200 ms, and the next runs.
    t.addEventCallback(() => {
      calls++;
      return new Promise(() => {});
    });
    await t.startUpgrade();
    await t.addTasks(Array.from({ length: 10 }, (_, i) => ({ taskId: `t${i}`, taskName: `T${i}` })));
    for (let i = 0; i < 10; i++) await t.startTask(`t${i}`);
    const events = t.progress.lastSeq - 1; // every event after upgrade.created
    await t.close();
    const { dropped } = t.callbacks.getStats();
    // Before, close() waited for all 21 calls, one after the other (21 x 200 ms).
    expect(calls).toBeLessThan(events);
    expect(dropped).toBe(events - calls);
    expect(warnings).toContainEqual({ obj: { dropped }, msg: 'callbacks closed before these queued calls ran; they were dropped' });
  }, 20_000);
});

describe('progress watch ws://: a handshake the server refuses', () => {
  it('closes the connection when it gives up, and prints nothing after its final error', async () => {
    let closed: Promise<void> | undefined;
    const server: Server = createServer((_req, res) => res.end());
    server.on('upgrade', (_req, socket: Socket) => {
      // 'end': the client closed its side (an HTTP server's sockets are half-open: 'close' waits for ours).
      closed = new Promise((resolve) => socket.on('end', () => resolve()));
      // A proxy's 401 on a connection it keeps alive (nginx auth_request does this).
      socket.write('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      const out = new Capture();
      const err = new Capture();
      const code = await main(['watch', `ws://127.0.0.1:${port}/ws`, 'u1'], out as unknown as NodeJS.WriteStream, err as unknown as NodeJS.WriteStream);
      expect(code).toBe(4);
      expect(err.text).toContain('HTTP 401');
      // The client closes it; before, it stayed open until the 5 s handshake timeout, which then
      // printed "...; retrying" after the final error.
      const byClient = await Promise.race([closed!.then(() => true), sleep(4000).then(() => false)]);
      expect(byClient).toBe(true);
      expect(out.text).toBe('');
    } finally {
      server.closeAllConnections();
      server.close();
    }
  }, 20_000);
});

describe('progress demo --redis with something that is not a redis:// URL', () => {
  it('is a usage error about the URL (exit 2), not "no such folder" (exit 3)', async () => {
    const r = await runCli('demo', '--redis', '127.0.0.1:6379', '--linger', '0');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--redis takes a redis:\/\/ or rediss:\/\/ URL/);
    expect(await runCli('demo', '--redis', '', '--linger', '0')).toMatchObject({ code: 2, err: expect.stringMatching(/--redis needs a value/) });
  });
});

describe('createProgressTracker: the options of eventBridge and webSocket', () => {
  const base = { planId: 'p', clusterName: 'c' };

  it('passes every notifier option on (eventTypes here), which were dropped without a word', async () => {
    const endpoint = await startEventBridgeEndpoint();
    const client = new EventBridgeClient({ ...localClientConfig(endpoint.url), maxAttempts: 1 });
    try {
      const t = await createProgressTracker({ ...base, upgradeId: 'eb-types', eventBridge: { busName: 'b', client, eventTypes: ['task.progress'] } });
      await t.startUpgrade();
      await t.addTask('a', 'A');
      await t.updateTaskProgress('a', 50, 'half');
      await t.close();
      expect(endpoint.entries.map((e) => e.DetailType)).toEqual(['task.progress']);
    } finally {
      client.destroy();
      await endpoint.close();
    }
  });

  it('refuses a name neither takes, naming the nearest, before anything is made', async () => {
    const eventBridge = { busName: 'b', regoin: 'eu-west-1' } as unknown as EventBridgeOption;
    const refused = await createProgressTracker({ ...base, upgradeId: 'eb-typo', eventBridge }).catch((e: unknown) => e);
    expect(isProgressError(refused, 'INVALID_ARGUMENT')).toBe(true);
    expect((refused as Error).message).toContain('unknown option "eventBridge.regoin" (did you mean "eventBridge.region"?)');
    const webSocket = { prot: 0 } as unknown as ProgressWebSocketServerOptions;
    const refusedWs = await createProgressTracker({ ...base, upgradeId: 'ws-typo', webSocket }).catch((e: unknown) => e);
    expect(isProgressError(refusedWs, 'INVALID_ARGUMENT')).toBe(true);
    expect((refusedWs as Error).message).toContain('unknown option "webSocket.prot" (did you mean "webSocket.port"?)');
  });
});

describe('createProgressTracker: eventBridge and webSocket options read by name', () => {
  it('takes a busName from a settings class getter, and an undefined logger leaves the tracker one in place', async () => {
    class BusSettings {
      readonly client = new EventBridgeClient({ endpoint: 'http://127.0.0.1:1', region: 'us-east-1', credentials: { accessKeyId: 't', secretAccessKey: 't' }, maxAttempts: 1 });
      readonly flushTimeoutMs = 300;
      readonly logger = undefined;
      get busName(): string {
        return 'upgrades';
      }
    }
    const settings = new BusSettings();
    const lines: string[] = [];
    const logger = { debug() {}, info() {}, warn: (_o: object, m?: string) => void lines.push(`warn ${m}`), error: (_o: object, m?: string) => void lines.push(`error ${m}`) };
    try {
      // Before: the options were spread into the notifier's, which lost the getter (no busName) and
      // let logger: undefined replace the tracker's logger.
      const t = await createProgressTracker({ planId: 'p', clusterName: 'c', upgradeId: 'eb-getter', logger, eventBridge: settings as unknown as EventBridgeOption });
      expect(t.notifier).toBeDefined();
      await t.startUpgrade();
      await t.close();
      // Nothing listens on port 1: the notifier says so, through the tracker's logger.
      expect(lines.length).toBeGreaterThan(0);
    } finally {
      settings.client.destroy();
    }
  }, 20_000);
});

/** A settings object that throws on a name it does not hold (as strict config objects do). */
const strict = <T extends object>(target: T): T =>
  new Proxy(target, {
    get(t, key) {
      if (typeof key === 'string' && !(key in t)) throw new Error(`no setting "${key}"`);
      return (t as Record<PropertyKey, unknown>)[key];
    },
  });

describe('createProgressTracker: a strict settings object (found by a third review on 2026-11-29)', () => {
  const base = { upgradeId: 'u1', planId: 'p', clusterName: 'c' };
  it('takes a strict eventBridge settings object holding only the options it gives', () => {
    const o = resolveOptions({ ...base, eventBridge: strict({ busName: 'bus', region: 'eu-west-1' }) });
    expect(o.eventBridge).toMatchObject({ busName: 'bus', region: 'eu-west-1' });
  });

  it('takes a strict eventBridge settings object beside the old eventBridgeBusName / awsRegion', () => {
    // The old names were checked against the object given, read again by names it need not hold:
    // "no setting busName", a plain Error, instead of the options folded.
    const o = resolveOptions({ ...base, eventBridgeBusName: 'bus', awsRegion: 'eu-west-1', eventBridge: strict({ source: 'agent' }) as unknown as EventBridgeOption });
    expect(o.eventBridge).toMatchObject({ busName: 'bus', region: 'eu-west-1', source: 'agent' });
    const refused = (() => {
      try {
        return resolveOptions({ ...base, eventBridgeBusName: 'bus', eventBridge: strict({ busName: 'other' }) });
      } catch (err) {
        return err;
      }
    })();
    expect(isProgressError(refused, 'INVALID_ARGUMENT')).toBe(true);
  });

  it('takes a strict webSocket settings object holding only the options it gives', () => {
    const o = resolveOptions({ ...base, webSocket: strict({ port: 0, path: '/ws' }) });
    expect(o.webSocket).toMatchObject({ port: 0, path: '/ws' });
  });
});
