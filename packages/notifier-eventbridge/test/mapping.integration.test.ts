import { EVENT_TYPES, ProgressTracker } from '@progress/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEventBridgeEndpoint, type AcceptedEntry, type EventBridgeEndpoint } from '../../../tools/test-utils/src/eventbridge-endpoint.js';
import { DEFAULT_EVENT_TYPES, EventBridgeNotifier } from '../src/index.js';
import { fakeEvent, fakeState } from './fixtures.js';
import { clock, localClient } from './helpers.js';

let endpoint: EventBridgeEndpoint;
beforeAll(async () => {
  endpoint = await startEventBridgeEndpoint();
});
afterAll(() => endpoint.close());

const epochSeconds = (iso: string): number => Date.parse(iso) / 1000;

describe('the old module\'s DetailTypes and details, over the real SDK client', () => {
  it('sends every event type under its DetailType with the old keys, in order, plus event_id, seq, duration_ms', async () => {
    endpoint.reset();
    const client = localClient(endpoint.url);
    const notifier = new EventBridgeNotifier({ busName: 'upgrades-bus', client, eventTypes: EVENT_TYPES });
    const c = clock();
    const tracker = await ProgressTracker.open({ upgradeId: 'u-1', planId: 'plan-1', clusterName: 'prod-eks', metadata: { team: 'core' }, sinks: [notifier], now: c.now });
    const events = [];
    c.advance(1000);
    events.push(await tracker.startUpgrade('Preflight'));
    events.push(await tracker.setCurrentPhase('Control plane'));
    await tracker.addTask('cp', 'Upgrade control plane', 'upgrade_step');
    c.advance(1000);
    events.push(await tracker.startTask('cp'));
    events.push(await tracker.updateTaskProgress('cp', 50, 'half way', { node: 'n1' }));
    c.advance(62_345);
    events.push(await tracker.completeTask('cp'));
    await tracker.addTask('nodes', 'Upgrade node groups', 'upgrade_step');
    events.push(await tracker.startTask('nodes'));
    c.advance(1500);
    events.push(await tracker.failTask('nodes', 'node group ng-1 did not drain'));
    events.push(await tracker.retryTask('nodes'));
    await tracker.addTask('skip-me', 'Optional cleanup', 'cleanup');
    events.push(await tracker.skipTask('skip-me', 'not needed'));
    await tracker.addTask('cancel-me', 'Validation', 'validation');
    events.push(await tracker.startTask('cancel-me'));
    c.advance(1000);
    events.push(await tracker.cancelTask('cancel-me', 'superseded'));
    events.push(await tracker.pauseUpgrade('maintenance window'));
    events.push(await tracker.resumeUpgrade());
    c.advance(93_784_005 - 1000 - 62_345 - 1500 - 1000 - 1000 + 1000);
    events.push(await tracker.completeUpgrade());
    await tracker.close();
    await notifier.close();

    const seen = new Map(endpoint.entries.map((e) => [e.detail!.event_id as string, e]));
    const bySeq = (seq: number): AcceptedEntry => [...seen.values()].find((e) => e.detail!.seq === seq)!;
    // upgrade.created (seq 1) and the task.added events are here too, since eventTypes is every type.
    expect(endpoint.entries.map((e) => e.detail!.seq)).toEqual(Array.from({ length: tracker.progress.lastSeq }, (_, i) => i + 1));
    for (const e of endpoint.entries) {
      expect(e.Source).toBe('eks-upgrade-agent');
      expect(e.EventBusName).toBe('upgrades-bus');
      expect(e.Resources).toEqual([]);
    }
    for (const ev of events) {
      const entry = seen.get(ev.eventId)!;
      expect(entry.DetailType).toBe(ev.type);
      expect(entry.Time).toBe(epochSeconds(ev.timestamp));
    }
    const ids = (seq: number) => ({ event_id: bySeq(seq).detail!.event_id, seq });
    const detailOf = (ev: { seq: number }) => bySeq(ev.seq).detail!;
    const keysOf = (ev: { seq: number }) => Object.keys(detailOf(ev));
    const [started, phase, tStarted, tProgress, tCompleted, nStarted, tFailed, tRetried, tSkipped, cStarted, tCancelled, paused, resumed, completed] = events;
    const upg = { upgrade_id: 'u-1', cluster_name: 'prod-eks' };
    expect(detailOf(bySeq(1).detail as { seq: number })).toStrictEqual({ ...upg, plan_id: 'plan-1', metadata: { team: 'core' }, ...ids(1) });

    // The seven DetailTypes of the old module: its keys, in its order, then ours.
    expect(keysOf(started!)).toEqual(['upgrade_id', 'cluster_name', 'phase', 'event_id', 'seq']);
    expect(detailOf(started!)).toStrictEqual({ ...upg, phase: 'Preflight', ...ids(started!.seq) });
    expect(keysOf(phase!)).toEqual(['upgrade_id', 'cluster_name', 'phase', 'event_id', 'seq']);
    expect(detailOf(phase!)).toStrictEqual({ ...upg, phase: 'Control plane', ...ids(phase!.seq) });
    const cp = { ...upg, task_id: 'cp', task_name: 'Upgrade control plane' };
    expect(keysOf(tStarted!)).toEqual(['upgrade_id', 'cluster_name', 'task_id', 'task_name', 'event_id', 'seq']);
    expect(detailOf(tStarted!)).toStrictEqual({ ...cp, ...ids(tStarted!.seq) });
    expect(keysOf(tCompleted!)).toEqual(['upgrade_id', 'cluster_name', 'task_id', 'task_name', 'duration', 'event_id', 'seq', 'duration_ms']);
    expect(detailOf(tCompleted!)).toStrictEqual({ ...cp, duration: '0:01:02.345000', ...ids(tCompleted!.seq), duration_ms: 62_345 });
    const nodes = { ...upg, task_id: 'nodes', task_name: 'Upgrade node groups' };
    expect(keysOf(tFailed!)).toEqual(['upgrade_id', 'cluster_name', 'task_id', 'task_name', 'error_message', 'event_id', 'seq', 'duration_ms']);
    expect(detailOf(tFailed!)).toStrictEqual({ ...nodes, error_message: 'node group ng-1 did not drain', ...ids(tFailed!.seq), duration_ms: 1500 });
    expect(keysOf(completed!)).toEqual(['upgrade_id', 'cluster_name', 'duration', 'event_id', 'seq', 'duration_ms']);
    expect(detailOf(completed!)).toStrictEqual({ ...upg, duration: '1 day, 2:03:04.005000', ...ids(completed!.seq), duration_ms: 93_784_005 });

    // The other types, in the same style.
    expect(detailOf(nStarted!)).toStrictEqual({ ...nodes, ...ids(nStarted!.seq) });
    expect(detailOf(tProgress!)).toStrictEqual({
      ...cp,
      percentage: 50,
      message: 'half way',
      current_step: null,
      completed_steps: 0,
      total_steps: null,
      details: { node: 'n1' },
      ...ids(tProgress!.seq),
    });
    expect(detailOf(tRetried!)).toStrictEqual({ ...nodes, retry_count: 1, ...ids(tRetried!.seq) });
    expect(detailOf(tSkipped!)).toStrictEqual({ ...upg, task_id: 'skip-me', task_name: 'Optional cleanup', reason: 'not needed', ...ids(tSkipped!.seq), duration_ms: null });
    expect(detailOf(cStarted!)).toStrictEqual({ ...upg, task_id: 'cancel-me', task_name: 'Validation', ...ids(cStarted!.seq) });
    expect(detailOf(tCancelled!)).toStrictEqual({ ...upg, task_id: 'cancel-me', task_name: 'Validation', reason: 'superseded', ...ids(tCancelled!.seq), duration_ms: 1000 });
    expect(detailOf(paused!)).toStrictEqual({ ...upg, phase: 'Control plane', reason: 'maintenance window', ...ids(paused!.seq) });
    expect(detailOf(resumed!)).toStrictEqual({ ...upg, phase: 'Control plane', ...ids(resumed!.seq) });
    const added = endpoint.entries.filter((e) => e.DetailType === 'task.added').map((e) => e.detail);
    expect(added[0]).toStrictEqual({ ...cp, task_type: 'upgrade_step', parent_task_id: null, event_id: added[0]!.event_id, seq: 4 });
    expect(added.map((d) => d!.task_id)).toEqual(['cp', 'nodes', 'skip-me', 'cancel-me']);
  });

  it('sends a task\'s duration as the old module did: the last attempt after a retry, null for a task that ended without a start', async () => {
    endpoint.reset();
    const notifier = new EventBridgeNotifier({ busName: 'b', client: localClient(endpoint.url) });
    const c = clock();
    const tracker = await ProgressTracker.open({ upgradeId: 'u-dur', planId: 'p', clusterName: 'prod', sinks: [notifier], now: c.now });
    await tracker.startUpgrade();
    await tracker.addTask('flaky', 'Flaky step');
    await tracker.startTask('flaky');
    c.advance(120_000);
    await tracker.failTask('flaky', 'timeout');
    c.advance(5_000);
    await tracker.retryTask('flaky'); // the old module called start_task() again: a new started_at
    c.advance(10_000);
    const retried = await tracker.completeTask('flaky');
    await tracker.addTask('instant', 'Never started');
    const instant = await tracker.completeTask('instant');
    await tracker.addTask('doomed', 'Failed before it started');
    const doomed = await tracker.failTask('doomed', 'precondition');
    await tracker.close();
    await notifier.close();
    const detail = (seq: number) => endpoint.entries.find((e) => e.detail!.seq === seq)!.detail!;
    expect(detail(retried.seq)).toMatchObject({ task_id: 'flaky', duration: '0:00:10', duration_ms: 10_000 });
    expect(detail(instant.seq)).toMatchObject({ task_id: 'instant', duration: null, duration_ms: null });
    expect(detail(doomed.seq)).toMatchObject({ task_id: 'doomed', error_message: 'precondition', duration_ms: null });
  });

  it('sends upgrade.failed and upgrade.cancelled with their details', async () => {
    endpoint.reset();
    const client = localClient(endpoint.url);
    const notifier = new EventBridgeNotifier({ busName: 'b', source: 'my-agent', client });
    const c = clock();
    const failing = await ProgressTracker.open({ upgradeId: 'u-fail', planId: 'p', clusterName: 'staging', sinks: [notifier], now: c.now });
    await failing.startUpgrade();
    c.advance(1500);
    const failed = await failing.failUpgrade('control plane upgrade timed out');
    const cancelling = await ProgressTracker.open({ upgradeId: 'u-cancel', planId: 'p', clusterName: 'dev', sinks: [notifier], now: c.now });
    await cancelling.startUpgrade('Init');
    c.advance(1);
    const cancelled = await cancelling.cancelUpgrade('operator request');
    await notifier.flush();
    const find = (id: string) => endpoint.entries.find((e) => e.detail!.event_id === id)!;
    expect(find(failed.eventId).DetailType).toBe('upgrade.failed');
    expect(find(failed.eventId).Source).toBe('my-agent');
    expect(Object.keys(find(failed.eventId).detail!)).toEqual(['upgrade_id', 'cluster_name', 'error_message', 'event_id', 'seq', 'duration_ms']);
    expect(find(failed.eventId).detail).toStrictEqual({
      upgrade_id: 'u-fail',
      cluster_name: 'staging',
      error_message: 'control plane upgrade timed out',
      event_id: failed.eventId,
      seq: failed.seq,
      duration_ms: 1500,
    });
    expect(find(cancelled.eventId).DetailType).toBe('upgrade.cancelled');
    expect(find(cancelled.eventId).detail).toStrictEqual({
      upgrade_id: 'u-cancel',
      cluster_name: 'dev',
      reason: 'operator request',
      duration: '0:00:00.001000',
      event_id: cancelled.eventId,
      seq: cancelled.seq,
      duration_ms: 1,
    });
    // Defaults: upgrade.created (and task.added, task.progress) are not sent.
    expect(endpoint.entries.map((e) => e.DetailType).sort()).toEqual(['upgrade.cancelled', 'upgrade.failed', 'upgrade.started', 'upgrade.started']);
    await failing.close();
    await cancelling.close();
    await notifier.close();
  });

  it('sends by default every event type but upgrade.created, task.added and task.progress', async () => {
    endpoint.reset();
    const chatty: readonly string[] = ['upgrade.created', 'task.added', 'task.progress'];
    expect([...DEFAULT_EVENT_TYPES].sort()).toEqual(EVENT_TYPES.filter((t) => !chatty.includes(t)).sort());
    const notifier = new EventBridgeNotifier({ busName: 'b', client: localClient(endpoint.url) });
    EVENT_TYPES.forEach((type, i) => notifier.handle(fakeEvent(i + 1, type), fakeState));
    await notifier.close();
    expect(endpoint.entries.map((e) => e.DetailType).sort()).toEqual([...DEFAULT_EVENT_TYPES].sort());
  });

  it('sends reason null when none was given', async () => {
    endpoint.reset();
    const notifier = new EventBridgeNotifier({ busName: 'b', client: localClient(endpoint.url) });
    const tracker = await ProgressTracker.open({ upgradeId: 'u-why', planId: 'p', clusterName: 'prod', sinks: [notifier] });
    await tracker.startUpgrade();
    await tracker.addTask('a', 'Task a');
    await tracker.addTask('b', 'Task b');
    await tracker.startTask('b');
    const events = [await tracker.skipTask('a'), await tracker.cancelTask('b'), await tracker.pauseUpgrade(), await tracker.resumeUpgrade(), await tracker.cancelUpgrade()];
    await tracker.close();
    await notifier.close();
    const detail = (seq: number) => endpoint.entries.find((e) => e.detail!.seq === seq)!.detail!;
    for (const ev of events.filter((e) => e.type !== 'upgrade.resumed')) expect(detail(ev.seq), ev.type).toMatchObject({ reason: null });
  });


  it('trims an oversized detail to the old keys, event_id, seq and truncated, instead of failing the batch', async () => {
    endpoint.reset();
    const client = localClient(endpoint.url);
    const failures: string[] = [];
    const notifier = new EventBridgeNotifier({ busName: 'b', client, eventTypes: ['task.progress', 'task.started'], onError: (f) => failures.push(f.reason) });
    const tracker = await ProgressTracker.open({ upgradeId: 'u-big', planId: 'p', clusterName: 'prod', sinks: [notifier] });
    await tracker.startUpgrade();
    await tracker.addTask('t', 'Big task');
    const started = tracker.startTask('t');
    const big = tracker.updateTaskProgress('t', 10, 'big', { blob: 'é'.repeat(140 * 1024) }); // 280 KB of UTF-8
    const small = tracker.updateTaskProgress('t', 20, 'small');
    const [s, b, sm] = await Promise.all([started, big, small]);
    await notifier.flush();
    expect(endpoint.entries).toHaveLength(3);
    expect(endpoint.requests.filter((r) => r.status === 200)).toHaveLength(1); // one batch of three, nothing failed
    const bigEntry = endpoint.entries.find((e) => e.detail!.event_id === b.eventId)!;
    expect(bigEntry.detail).toStrictEqual({ upgrade_id: 'u-big', cluster_name: 'prod', task_id: 't', task_name: 'Big task', event_id: b.eventId, seq: b.seq, truncated: true });
    expect(endpoint.entries.find((e) => e.detail!.event_id === sm.eventId)!.detail!.percentage).toBe(20);
    expect(endpoint.entries.find((e) => e.detail!.event_id === s.eventId)!.detail!.truncated).toBeUndefined();
    expect(notifier.stats()).toMatchObject({ sent: 3, trimmed: 1, failed: 0 });
    expect(failures).toEqual([]);
    await tracker.close();
    await notifier.close();
  });
});
