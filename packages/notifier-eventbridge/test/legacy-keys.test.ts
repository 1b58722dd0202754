import { ProgressTracker, type EventType, type ProgressEvent, type UpgradeProgress } from '@progress/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEventBridgeEndpoint, type EventBridgeEndpoint } from '../../../tools/test-utils/src/eventbridge-endpoint.js';
import { CUT_MARK, EventBridgeNotifier, LEGACY_DETAIL_KEYS, buildDetail } from '../src/index.js';
import { fakeEvent, fakeState } from './fixtures.js';
import { localClient } from './helpers.js';

let endpoint: EventBridgeEndpoint;
beforeAll(async () => {
  endpoint = await startEventBridgeEndpoint();
});
afterAll(() => endpoint.close());

// The old module's keys of its seven DetailTypes (DESIGN.md section 7), in its order.
const OLD_KEYS: Record<string, string[]> = {
  'upgrade.started': ['upgrade_id', 'cluster_name', 'phase'],
  'upgrade.completed': ['upgrade_id', 'cluster_name', 'duration'],
  'upgrade.failed': ['upgrade_id', 'cluster_name', 'error_message'],
  'upgrade.phase_changed': ['upgrade_id', 'cluster_name', 'phase'],
  'task.started': ['upgrade_id', 'cluster_name', 'task_id', 'task_name'],
  'task.completed': ['upgrade_id', 'cluster_name', 'task_id', 'task_name', 'duration'],
  'task.failed': ['upgrade_id', 'cluster_name', 'task_id', 'task_name', 'error_message'],
};
const WITH_DURATION_MS = new Set(['upgrade.completed', 'upgrade.failed', 'task.completed', 'task.failed']);

describe('an entry trimmed to fit maxBatchBytes', () => {
  it('keeps every key of the old module for its DetailType, so that existing rules still match it', async () => {
    expect(LEGACY_DETAIL_KEYS).toStrictEqual(OLD_KEYS);
    endpoint.reset();
    const notifier = new EventBridgeNotifier({ busName: 'b', client: localClient(endpoint.url), maxBatchBytes: 600, eventTypes: Object.keys(OLD_KEYS) as EventType[] });
    // A cluster name too long for the entry: the entry is trimmed, and that name cut.
    const state = {
      ...fakeState,
      clusterName: 'c'.repeat(1000),
      durationMs: 62_345,
      tasks: { t1: { taskId: 't1', taskName: 'Task one', durationMs: 62_345, retryCount: 0 } },
    } as unknown as UpgradeProgress;
    const types = Object.keys(OLD_KEYS) as EventType[];
    types.forEach((type, i) => notifier.handle(fakeEvent(i + 1, type, { phase: 'Init', errorMessage: 'boom' }), state));
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(notifier.stats()).toMatchObject({ sent: types.length, trimmed: types.length });
    expect(endpoint.entries.map((e) => e.DetailType).sort()).toEqual([...types].sort());
    for (const entry of endpoint.entries) {
      const type = entry.DetailType!;
      const expected = [...OLD_KEYS[type]!, 'event_id', 'seq', ...(WITH_DURATION_MS.has(type) ? ['duration_ms'] : []), 'truncated'];
      expect(Object.keys(entry.detail!), type).toEqual(expected);
      expect((entry.detail!.cluster_name as string).endsWith(CUT_MARK), type).toBe(true);
      if ('phase' in entry.detail!) expect(entry.detail!.phase, type).toBe('Init');
      if ('duration' in entry.detail!) expect(entry.detail!.duration, type).toBe('0:01:02.345000');
      if ('error_message' in entry.detail!) expect(entry.detail!.error_message, type).toBe('boom');
    }
    await notifier.close();
  });

  it('never cuts upgrade_id or task_id, however long: it cuts the other text values instead', async () => {
    endpoint.reset();
    const notifier = new EventBridgeNotifier({ busName: 'b', client: localClient(endpoint.url), maxBatchBytes: 600 });
    const upgradeId = 'u'.repeat(128);
    const taskId = 't'.repeat(128);
    const event = { ...fakeEvent(1, 'task.started'), upgradeId, taskId } as ProgressEvent;
    const state = { ...fakeState, upgradeId, clusterName: 'c'.repeat(100), tasks: { [taskId]: { taskId, taskName: 'n'.repeat(120), durationMs: null, retryCount: 0 } } } as unknown as UpgradeProgress;
    notifier.handle(event, state);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.entries).toHaveLength(1);
    const detail = endpoint.entries[0]!.detail!;
    expect(detail).toMatchObject({ upgrade_id: upgradeId, task_id: taskId, event_id: event.eventId, truncated: true });
    expect((detail.task_name as string).endsWith(CUT_MARK)).toBe(true);
    await notifier.close();
  });
});

describe('the limits of the options, as AWS has them', () => {
  it('takes a source of 256 characters and a busName of 1600 (an ARN), and refuses one more', () => {
    const make = (extra: Record<string, string>) => () => new EventBridgeNotifier({ busName: 'b', region: 'eu-west-1', ...extra });
    expect(make({ source: 's'.repeat(256) })).not.toThrow();
    expect(make({ source: 's'.repeat(257) })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(make({ busName: 'b'.repeat(1600) })).not.toThrow();
    expect(make({ busName: 'b'.repeat(1601) })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('refuses an empty busName or source, and the bounds of the numeric options just outside them', () => {
    const make = (extra: Record<string, unknown>) => () => new EventBridgeNotifier({ busName: 'b', region: 'eu-west-1', ...extra });
    const refused = expect.objectContaining({ code: 'INVALID_ARGUMENT' });
    for (const extra of [{ busName: '' }, { source: '' }, { maxQueue: 0 }, { requestTimeoutMs: 0 }, { maxConcurrentRequests: 65 }]) {
      expect(make(extra), JSON.stringify(extra)).toThrow(refused);
    }
    for (const extra of [{ maxQueue: 1 }, { requestTimeoutMs: 1 }, { maxConcurrentRequests: 64 }, { maxConcurrentRequests: 1 }]) {
      expect(make(extra), JSON.stringify(extra)).not.toThrow();
    }
  });

  it('sends an entry of 256 KB (262144 bytes, the default maxBatchBytes) whole', async () => {
    endpoint.reset();
    const notifier = new EventBridgeNotifier({ busName: 'b', client: localClient(endpoint.url) });
    // An entry of 260,000 bytes as AWS counts them: over 256,000, within 256 * 1024.
    const overhead = 'eks-upgrade-agent'.length + 'task.failed'.length + 14 + JSON.stringify(buildDetail(fakeEvent(1, 'task.failed', { errorMessage: '' }), fakeState)).length;
    const event = fakeEvent(1, 'task.failed', { errorMessage: 'x'.repeat(260_000 - overhead) });
    notifier.handle(event, fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(notifier.stats()).toMatchObject({ sent: 1, trimmed: 0 });
    expect(endpoint.entries[0]!.detail).toStrictEqual(buildDetail(event, fakeState));
    await notifier.close();
  });
});

describe('task.added, when switched on', () => {
  it('sends the parent of a child task as parent_task_id', async () => {
    endpoint.reset();
    const notifier = new EventBridgeNotifier({ busName: 'b', client: localClient(endpoint.url), eventTypes: ['task.added'] });
    const tracker = await ProgressTracker.open({ upgradeId: 'u-tree', planId: 'p', clusterName: 'prod', sinks: [notifier] });
    await tracker.addTask('nodes', 'Upgrade node groups');
    await tracker.addTask('ng-1', 'Node group ng-1', 'upgrade_step', { parentTaskId: 'nodes' });
    await tracker.close();
    await notifier.close();
    expect(endpoint.entries.map((e) => [e.detail!.task_id, e.detail!.parent_task_id])).toEqual([
      ['nodes', null],
      ['ng-1', 'nodes'],
    ]);
  });
});

describe('retry.retryableEntryCodes', () => {
  it('is the list given to the constructor: emptying that array afterwards changes nothing', async () => {
    const throttling = await startEventBridgeEndpoint({ failEntry: (_entry, { requestIndex }) => (requestIndex === 0 ? 'ThrottlingException' : undefined) });
    const client = localClient(throttling.url);
    const codes = ['ThrottlingException'];
    const failures: string[] = [];
    const notifier = new EventBridgeNotifier({ busName: 'b', client, retry: { baseDelayMs: 1, maxDelayMs: 5, retryableEntryCodes: codes }, onError: (f) => failures.push(f.reason) });
    codes.length = 0;
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(failures).toEqual([]);
    expect(notifier.stats()).toMatchObject({ sent: 1, retried: 1, failed: 0 });
    await notifier.close();
    client.destroy();
    await throttling.close();
  });
});
