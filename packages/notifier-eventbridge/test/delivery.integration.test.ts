import { ProgressTracker, type ProgressEvent } from '@progress/core';
import { afterEach, describe, expect, it } from 'vitest';
import { startEventBridgeEndpoint, type EventBridgeEndpoint } from '../../../tools/test-utils/src/eventbridge-endpoint.js';
import { EventBridgeNotifier, type DeliveryFailure } from '../src/index.js';
import { fakeEvent, fakeState } from './fixtures.js';
import { localClient } from './helpers.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function endpointWith(options: Parameters<typeof startEventBridgeEndpoint>[0]): Promise<EventBridgeEndpoint> {
  const endpoint = await startEventBridgeEndpoint(options);
  cleanups.push(() => endpoint.close());
  return endpoint;
}

/** Opens a tracker with `tasks` tasks (added in one commit: task.added is not sent). */
async function trackerWith(notifier: EventBridgeNotifier, upgradeId: string, tasks: number): Promise<ProgressTracker> {
  const tracker = await ProgressTracker.open({ upgradeId, planId: 'p', clusterName: 'prod', sinks: [notifier] });
  cleanups.push(() => tracker.close());
  await tracker.addTasks(Array.from({ length: tasks }, (_, i) => ({ taskId: `t${i}`, taskName: `Task ${i}` })));
  return tracker;
}

/** 2 notified events per task: task.started, task.completed. */
async function runTasks(tracker: ProgressTracker, tasks: number, after?: () => void): Promise<ProgressEvent[]> {
  const events: ProgressEvent[] = [];
  for (let i = 0; i < tasks; i++) {
    events.push(await tracker.startTask(`t${i}`));
    after?.();
    events.push(await tracker.completeTask(`t${i}`));
    after?.();
  }
  return events;
}

function countById(endpoint: EventBridgeEndpoint): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of endpoint.entries) counts.set(e.detail!.event_id as string, (counts.get(e.detail!.event_id as string) ?? 0) + 1);
  return counts;
}

describe('EventBridgeNotifier against a local endpoint (real SDK client)', () => {
  it('with a 150 ms endpoint, 300 events do not hold up the commands, and all arrive in batches of at most 10', async () => {
    const endpoint = await endpointWith({ latencyMs: 150 });
    const notifier = new EventBridgeNotifier({ busName: 'b', client: localClient(endpoint.url) });
    cleanups.push(() => notifier.close());
    const tracker = await trackerWith(notifier, 'u-slow', 150);

    const events = await runTasks(tracker, 150);
    // Every command has resolved; EventBridge has not answered for most of them yet.
    const atDone = { stats: notifier.stats(), accepted: endpoint.entries.length, answered: endpoint.requests.filter((r) => r.answeredAt !== undefined).length };
    expect(events).toHaveLength(300);
    expect(atDone.accepted).toBeLessThan(300);
    expect(atDone.stats.sent).toBeLessThan(300);
    expect(atDone.stats.queued + atDone.stats.inFlight).toBeGreaterThan(0);

    const report = await notifier.drain(20_000);
    expect(report).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.entries).toHaveLength(300);
    expect([...countById(endpoint).keys()].sort()).toEqual(events.map((e) => e.eventId).sort());
    expect(Math.max(...endpoint.requests.map((r) => r.entries.length))).toBeLessThanOrEqual(10);
    expect(endpoint.requests.length).toBeGreaterThanOrEqual(30);
    expect(notifier.stats()).toMatchObject({ sent: 300, failed: 0, dropped: 0, queued: 0, inFlight: 0, requests: endpoint.requests.length });
    console.log(`[notifier-eventbridge] 150 ms endpoint: commands done with ${atDone.accepted}/300 accepted and ${atDone.answered} answers back; ${endpoint.requests.length} requests in all`);
  });

  it('delivers a backlog of thousands of events exactly once, in order, as the queue is worked off', async () => {
    const endpoint = await endpointWith({});
    const notifier = new EventBridgeNotifier({ busName: 'b', client: localClient(endpoint.url), maxConcurrentRequests: 1 });
    cleanups.push(() => notifier.close());
    // Handed in within one turn: every one of them is queued before the first request goes.
    for (let seq = 1; seq <= 3000; seq++) notifier.handle(fakeEvent(seq), fakeState);
    expect(notifier.stats()).toMatchObject({ queued: 3000, dropped: 0 });
    expect(await notifier.drain(60_000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.entries.map((e) => e.detail!.seq)).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
    expect(notifier.stats()).toMatchObject({ sent: 3000, failed: 0, queued: 0 });
  });


  it('with every 4th request failing (500) and every 7th entry throttled, every event arrives exactly once', async () => {
    const endpoint = await endpointWith({
      failRequest: ({ index }) => (index % 4 === 3 ? 500 : undefined),
      failEntry: (_entry, { entryIndex }) => (entryIndex % 7 === 6 ? 'ThrottlingException' : undefined),
    });
    const failures: DeliveryFailure[] = [];
    const notifier = new EventBridgeNotifier({
      busName: 'b',
      client: localClient(endpoint.url),
      retry: { baseDelayMs: 2, maxDelayMs: 20, maxAttempts: 50 },
      onError: (f) => failures.push(f),
    });
    cleanups.push(() => notifier.close());
    const tracker = await trackerWith(notifier, 'u-flaky', 150);
    const events = await runTasks(tracker, 150);
    const report = await notifier.drain(20_000);

    expect(report.complete).toBe(true);
    expect(failures).toEqual([]);
    expect(endpoint.requests.filter((r) => r.status === 500).length).toBeGreaterThan(0);
    expect(endpoint.failedEntries.length).toBeGreaterThan(0);
    const counts = countById(endpoint);
    expect(counts.size).toBe(300);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect([...counts.keys()].sort()).toEqual(events.map((e) => e.eventId).sort());
    const stats = notifier.stats();
    expect(stats).toMatchObject({ sent: 300, failed: 0, dropped: 0, queued: 0, inFlight: 0 });
    // Every entry in a 500'd request and every throttled entry was retried, and nothing else.
    const resent = endpoint.requests.filter((r) => r.status === 500).reduce((n, r) => n + r.entries.length, 0) + endpoint.failedEntries.length;
    expect(stats.retried).toBe(resent);
  });

  it('with the endpoint down for good, the tracker keeps working, the queue stays within maxQueue, and close() reports what was not delivered', async () => {
    const gone = await startEventBridgeEndpoint();
    await gone.close(); // nothing listens on this port any more
    const failures: DeliveryFailure[] = [];
    const notifier = new EventBridgeNotifier({
      busName: 'b',
      client: localClient(gone.url),
      maxQueue: 50,
      flushTimeoutMs: 300,
      retry: { baseDelayMs: 5, maxDelayMs: 50, maxAttempts: 1_000 },
      onError: (f) => failures.push(f),
    });
    const tracker = await ProgressTracker.open({ upgradeId: 'u-down', planId: 'p', clusterName: 'prod', sinks: [notifier] });
    await tracker.addTasks(Array.from({ length: 150 }, (_, i) => ({ taskId: `t${i}`, taskName: `Task ${i}` })));
    let maxQueued = 0;
    const events = await runTasks(tracker, 150, () => {
      maxQueued = Math.max(maxQueued, notifier.stats().queued);
    });
    expect(events).toHaveLength(300);
    expect(tracker.progress.tasks.t149!.status).toBe('completed');
    expect(maxQueued).toBeLessThanOrEqual(50);
    await tracker.close(); // flushes the sink: bounded by flushTimeoutMs

    const before = notifier.stats();
    expect(before.sent).toBe(0);
    expect(before.dropped).toBeGreaterThanOrEqual(300 - 50 - 40); // at most 50 queued and 4 requests of 10 in flight
    expect(before.requests).toBeGreaterThan(1);
    const startedAt = Date.now();
    const closed = await notifier.shutdown();
    const took = Date.now() - startedAt;
    expect(closed.complete).toBe(false);
    expect(closed.undelivered.length).toBe(before.queued + before.inFlight);
    expect(closed.undelivered.length).toBeGreaterThan(0);
    expect(closed.undelivered.length + before.dropped).toBe(300);
    expect(closed.undelivered.every((u) => u.upgradeId === 'u-down' && typeof u.eventId === 'string')).toBe(true);
    // The undelivered are the newest events (drop-oldest), reported in seq order.
    const seqs = closed.undelivered.map((u) => u.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(seqs.at(-1)).toBe(events.at(-1)!.seq);
    expect(closed.stats).toMatchObject({ queued: 0, inFlight: 0, failed: closed.undelivered.length });
    expect(failures.filter((f) => f.reason === 'dropped')).toHaveLength(before.dropped);
    expect(failures.find((f) => f.reason === 'closed')!.events).toEqual(closed.undelivered);
    expect(took).toBeLessThan(5_000); // bounded by flushTimeoutMs (300 ms); generous for a loaded machine
    // Closed: later events are counted as dropped, nothing is queued, close is idempotent.
    notifier.handle(events[1]!, tracker.durableProgress);
    expect(notifier.stats()).toMatchObject({ queued: 0, dropped: before.dropped + 1 });
    expect(await notifier.shutdown()).toBe(closed);
  });
  it('flush() waits for the events handed in before it, not for those another tracker hands in meanwhile', async () => {
    // Entries of upgrade "b" are throttled for good (retried until close); "a"'s are accepted, after
    // 300 ms, so that b's are already being retried while the flush still waits for a's.
    const endpoint = await endpointWith({
      latencyMs: (ctx) => (JSON.stringify(ctx.body).includes('upgrade_id\\":\\"a\\"') ? 300 : 0),
      failEntry: (entry) => (entry.Detail?.includes('"upgrade_id":"b"') ? 'ThrottlingException' : undefined),
    });
    const notifier = new EventBridgeNotifier({ busName: 'b', client: localClient(endpoint.url), flushTimeoutMs: 200, retry: { baseDelayMs: 1, maxDelayMs: 20, maxAttempts: 1_000_000 } });
    cleanups.push(() => notifier.shutdown());
    const a = await trackerWith(notifier, 'a', 1);
    const b = await trackerWith(notifier, 'b', 1);
    const aEvents = [await a.startUpgrade(), await a.setCurrentPhase('one')];
    const flushed = notifier.drain(10_000);
    // Handed in after the flush began: not its business, although they never get through.
    await b.startUpgrade();
    await b.setCurrentPhase('two');
    await notifier.flush(0); // hands b's to the sender at once
    const report = await flushed;
    expect(report).toEqual({ complete: true, undelivered: [] });
    const accepted = new Set(endpoint.entries.map((e) => e.detail!.event_id));
    for (const e of aEvents) expect(accepted.has(e.eventId)).toBe(true);
    expect(endpoint.failedEntries.some((e) => e.Detail?.includes('"upgrade_id":"b"'))).toBe(true);
  });

  it('shutdown(timeoutMs) waits that long instead of flushTimeoutMs (0: gives up at once), and refuses a timeout that is not one', async () => {
    const gone = await startEventBridgeEndpoint();
    await gone.close();
    // flushTimeoutMs far beyond the test's own timeout: only the given one can end the wait.
    const notifier = new EventBridgeNotifier({ busName: 'b', client: localClient(gone.url), flushTimeoutMs: 600_000, retry: { baseDelayMs: 5, maxDelayMs: 50, maxAttempts: 1_000 } });
    const tracker = await trackerWith(notifier, 'u-close-now', 1);
    await tracker.startUpgrade();
    for (const bad of [-1, Number.NaN, '5' as never]) await expect(notifier.shutdown(bad)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(notifier.stats().queued + notifier.stats().inFlight).toBe(1); // a refused call changed nothing
    const closed = await notifier.shutdown(0);
    expect(closed).toMatchObject({ complete: false, undelivered: [expect.objectContaining({ upgradeId: 'u-close-now', type: 'upgrade.started' })] });
  });

  it('drain(timeoutMs) and flush(timeoutMs) refuse a timeout that is not one, as shutdown() does, changing nothing', async () => {
    const gone = await startEventBridgeEndpoint();
    await gone.close();
    const notifier = new EventBridgeNotifier({ busName: 'b', client: localClient(gone.url), flushTimeoutMs: 600_000, retry: { baseDelayMs: 5, maxDelayMs: 50, maxAttempts: 1_000 } });
    const tracker = await trackerWith(notifier, 'u-drain-bad', 1);
    await tracker.startUpgrade();
    // null skips a default parameter: it waited 0 ms and said "incomplete", as if it had waited.
    for (const bad of [null, -1, Number.NaN, '5'] as never[]) {
      await expect(notifier.drain(bad)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(notifier.flush(bad)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
    expect(notifier.stats().queued + notifier.stats().inFlight).toBe(1);
    expect(await notifier.shutdown(0)).toMatchObject({ complete: false, undelivered: [expect.objectContaining({ upgradeId: 'u-drain-bad' })] });
  });

  it('a drain() waiting beside shutdown() reports the events shutdown() abandoned', async () => {
    const gone = await startEventBridgeEndpoint();
    await gone.close(); // nothing listens on this port any more
    const notifier = new EventBridgeNotifier({ busName: 'b', client: localClient(gone.url), flushTimeoutMs: 200, retry: { baseDelayMs: 5, maxDelayMs: 50, maxAttempts: 1_000 } });
    const tracker = await trackerWith(notifier, 'u-abandoned', 1);
    await tracker.startUpgrade();
    await tracker.setCurrentPhase('one');
    const drained = notifier.drain(30_000);
    const closed = await notifier.shutdown();
    const report = await drained;
    expect(closed.undelivered.length).toBe(2);
    expect(report).toEqual({ complete: false, undelivered: closed.undelivered });
  });
});
