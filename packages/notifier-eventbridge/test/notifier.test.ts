import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { isProgressError, silentLogger, type ProgressError, type ProgressEvent } from '@progress/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  localClientConfig,
  startEventBridgeEndpoint,
  type EventBridgeEndpoint,
  type EventBridgeEndpointOptions,
  type RecordedRequest,
  type WireEntry,
} from '../../../tools/test-utils/src/eventbridge-endpoint.js';
import { throwingLogger } from '../../../tools/test-utils/src/logger.js';
import { CUT_MARK, EventBridgeNotifier, backoffDelay, buildDetail, classifyRequestError, entrySize, fitDetail, trimDetail, type DeliveryFailure, type EventBridgeNotifierOptions } from '../src/index.js';
import { fakeEvent, fakeState, idsOf } from './fixtures.js';
import { localClient } from './helpers.js';

// Every case runs the real SDK client over HTTP against the local endpoint: failures, slowness and
// requests that stay in flight are the endpoint's knobs (failRequest, failEntry, latencyMs, hold).

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function endpointWith(options: EventBridgeEndpointOptions = {}): Promise<EventBridgeEndpoint> {
  const endpoint = await startEventBridgeEndpoint(options);
  cleanups.push(() => endpoint.close());
  return endpoint;
}

async function setup(options: Partial<EventBridgeNotifierOptions> = {}, endpointOptions: EventBridgeEndpointOptions = {}) {
  const endpoint = await endpointWith(endpointOptions);
  const client = localClient(endpoint.url);
  cleanups.push(async () => client.destroy());
  const failures: DeliveryFailure[] = [];
  const notifier = new EventBridgeNotifier({ busName: 'bus', client, retry: { baseDelayMs: 1, maxDelayMs: 5 }, onError: (f) => failures.push(f), ...options });
  cleanups.push(() => notifier.close());
  return { endpoint, client, notifier, failures };
}

/** The event ids of a request's entries, as they came over the wire. */
const idsIn = (request: RecordedRequest): string[] => idsOf({ Entries: request.entries });
const idsOfSeqs = (...seqs: number[]): string[] => seqs.map((s) => fakeEvent(s).eventId);
/** The AWS size of an entry as it came over the wire (`Time` in epoch seconds there). */
const wireSize = (e: WireEntry): number =>
  entrySize({ Source: e.Source, DetailType: e.DetailType, Detail: e.Detail, Resources: e.Resources, Time: e.Time === undefined ? undefined : new Date(e.Time * 1000) });
const turn = () => new Promise((r) => setImmediate(r));
/** What `client.send()` threw (undefined when it did not). */
const errorOf = (client: EventBridgeClient): Promise<unknown> =>
  client.send(new PutEventsCommand({ Entries: [{ Source: 's', DetailType: 'd', Detail: '{}', EventBusName: 'bus' }] })).then(
    () => undefined,
    (err: unknown) => err,
  );

describe('retry decisions', () => {
  it('retries only the throttled and internal-failure entries; reports the others and never resends a delivered one', async () => {
    const firstAnswer = [{ errorCode: 'ThrottlingException', errorMessage: 'slow down' }, 'InternalFailure', { errorCode: 'MalformedDetail', errorMessage: 'bad' }];
    const { endpoint, notifier, failures } = await setup({}, { failEntry: (_entry, { requestIndex, positionInRequest }) => (requestIndex === 0 ? firstAnswer[positionInRequest] : undefined) });
    for (let seq = 1; seq <= 4; seq++) notifier.handle(fakeEvent(seq), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    const [first, second, ...rest] = endpoint.requests;
    expect(rest).toEqual([]);
    expect(idsIn(first!)).toEqual(idsOfSeqs(1, 2, 3, 4));
    expect(idsIn(second!)).toEqual(idsOfSeqs(1, 2));
    // The retried entries go out as they first did.
    expect(second!.entries).toEqual(first!.entries.slice(0, 2));
    expect(endpoint.failedEntries.map((e) => [e.ErrorCode, JSON.parse(e.Detail!).seq])).toEqual([
      ['ThrottlingException', 1],
      ['InternalFailure', 2],
      ['MalformedDetail', 3],
    ]);
    // Each delivered event was accepted once: 4 at the first request, 1 and 2 at the second.
    expect(endpoint.entries.map((e) => e.detail!.seq)).toEqual([4, 1, 2]);
    expect(failures).toEqual([{ reason: 'rejected', errorCode: 'MalformedDetail', errorMessage: 'bad', events: [{ eventId: fakeEvent(3).eventId, upgradeId: 'u1', seq: 3, type: 'task.started' }] }]);
    expect(notifier.stats()).toMatchObject({ sent: 3, failed: 1, retried: 2, requests: 2, queued: 0, inFlight: 0 });
  });

  it('retries only the codes of retry.retryableEntryCodes, and gives up any other, AccessDeniedException included', async () => {
    const firstAnswer = ['QuotaExceeded', 'ThrottlingException', 'AccessDeniedException'];
    const { endpoint, notifier, failures } = await setup(
      { retry: { baseDelayMs: 1, maxDelayMs: 5, retryableEntryCodes: ['QuotaExceeded'] } },
      { failEntry: (_entry, { requestIndex, positionInRequest }) => (requestIndex === 0 ? firstAnswer[positionInRequest] : undefined) },
    );
    for (let seq = 1; seq <= 3; seq++) notifier.handle(fakeEvent(seq), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests.map(idsIn)).toEqual([idsOfSeqs(1, 2, 3), idsOfSeqs(1)]);
    expect(failures.map((f) => [f.reason, f.errorCode, f.events.map((e) => e.seq)])).toEqual([
      ['rejected', 'ThrottlingException', [2]],
      ['rejected', 'AccessDeniedException', [3]],
    ]);
    expect(notifier.stats()).toMatchObject({ sent: 1, failed: 2, retried: 1 });
  });

  it('reports every entry an answer rejects, those of one ErrorCode together', async () => {
    const { notifier, failures } = await setup({}, { failEntry: (_entry, { positionInRequest }) => (positionInRequest < 3 ? { errorCode: 'MalformedDetail', errorMessage: 'bad' } : undefined) });
    for (let seq = 1; seq <= 4; seq++) notifier.handle(fakeEvent(seq), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(failures.map((f) => [f.reason, f.errorCode, f.errorMessage, f.events.map((e) => e.seq)])).toEqual([['rejected', 'MalformedDetail', 'bad', [1, 2, 3]]]);
    expect(notifier.stats()).toMatchObject({ sent: 1, failed: 3, retried: 0, requests: 1 });
  });

  it('gives an entry up after retry.maxAttempts attempts', async () => {
    const { endpoint, notifier, failures } = await setup({ retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 } }, { failEntry: () => ({ errorCode: 'ThrottlingException', errorMessage: 'x' }) });
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests.map(idsIn)).toEqual([idsOfSeqs(1), idsOfSeqs(1), idsOfSeqs(1)]);
    expect(endpoint.entries).toEqual([]);
    expect(failures.map((f) => [f.reason, f.errorCode, f.errorMessage, f.events.map((e) => e.seq)])).toEqual([['retries_exhausted', 'ThrottlingException', 'x', [1]]]);
    expect(notifier.stats()).toMatchObject({ sent: 0, failed: 1, retried: 2, requests: 3 });
  });

  it('retries whole requests on 5xx, throttling and network errors, not on other 4xx', async () => {
    const answers = [
      { status: 500, errorType: 'InternalException' },
      { status: 400, errorType: 'ThrottlingException' },
      { hangUp: true }, // a network error: no HTTP status (ECONNRESET)
      undefined,
      { status: 400, errorType: 'AccessDeniedException', message: 'not yours' },
    ];
    const { endpoint, notifier, failures } = await setup({}, { failRequest: ({ index }) => answers[index] });
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests.map((r) => [r.status, r.hungUp ?? false])).toEqual([
      [500, false],
      [400, false],
      [0, true],
      [200, false],
    ]);
    expect(endpoint.requests.map(idsIn)).toEqual([idsOfSeqs(1), idsOfSeqs(1), idsOfSeqs(1), idsOfSeqs(1)]);
    expect(endpoint.entries.map((e) => e.detail!.seq)).toEqual([1]);
    expect(notifier.stats()).toMatchObject({ sent: 1, retried: 3, failed: 0, requests: 4 });
    notifier.handle(fakeEvent(2), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests).toHaveLength(5);
    expect(endpoint.requests[4]).toMatchObject({ status: 400 });
    expect(failures.map((f) => [f.reason, f.errorCode, f.errorMessage, f.events.map((e) => e.seq)])).toEqual([['rejected', 'AccessDeniedException', 'not yours', [2]]]);
    expect(notifier.stats()).toMatchObject({ sent: 1, retried: 3, failed: 1, requests: 5 });
  });

  it('classifies the errors the real client throws, and spreads the backoff with full jitter', async () => {
    const answers = [
      { status: 400, errorType: 'ResourceNotFoundException' },
      { status: 503, errorType: 'ServiceUnavailable' },
      { status: 429, errorType: 'TooManyRequestsException' },
      { status: 400, errorType: 'ThrottlingException' },
      { status: 400, errorType: 'ValidationException' },
      { hangUp: true },
    ];
    const endpoint = await endpointWith({ failRequest: ({ index }) => answers[index] });
    const client = localClient(endpoint.url);
    cleanups.push(async () => client.destroy());
    expect(classifyRequestError(await errorOf(client))).toMatchObject({ retryable: false, status: 400, code: 'ResourceNotFoundException' });
    expect(classifyRequestError(await errorOf(client))).toMatchObject({ retryable: true, status: 503, code: 'ServiceUnavailable' });
    expect(classifyRequestError(await errorOf(client))).toMatchObject({ retryable: true, status: 429, code: 'TooManyRequestsException' });
    expect(classifyRequestError(await errorOf(client))).toMatchObject({ retryable: true, status: 400, code: 'ThrottlingException' });
    expect(classifyRequestError(await errorOf(client))).toMatchObject({ retryable: false, status: 400, code: 'ValidationException' });
    expect(classifyRequestError(await errorOf(client))).toMatchObject({ retryable: true, status: undefined, code: 'ECONNRESET' });
    expect(await errorOf(client)).toBeUndefined(); // then it answers
    // Nothing listening: the connection is refused.
    const gone = await startEventBridgeEndpoint();
    await gone.close();
    const refused = localClient(gone.url);
    cleanups.push(async () => refused.destroy());
    expect(classifyRequestError(await errorOf(refused))).toMatchObject({ retryable: true, status: undefined, code: 'ECONNREFUSED' });

    const retry = { baseDelayMs: 100, maxDelayMs: 1000 };
    expect(backoffDelay(1, retry, () => 0.999)).toBe(99);
    expect(backoffDelay(3, retry, () => 0.5)).toBe(200);
    expect(backoffDelay(20, retry, () => 0.999)).toBe(999);
    expect(backoffDelay(5, retry, () => 0)).toBe(0);
  });
});

describe('size accounting', () => {
  it('counts Source, DetailType, Detail and Resources in UTF-8 bytes, plus 14 for Time', () => {
    const entry: PutEventsRequestEntry = { Source: 'eks-upgrade-agent', DetailType: 'task.started', Detail: '{"a":"é€"}', Resources: ['arn:x'], EventBusName: 'not counted' };
    expect(entrySize(entry)).toBe(17 + 12 + 13 + 5); // é is 2 bytes, € 3
    expect(entrySize({ ...entry, Time: new Date() })).toBe(17 + 12 + 13 + 5 + 14);
  });

  it('fitDetail keeps a detail of exactly budget bytes whole, and trims one a byte over', () => {
    const detail = buildDetail(fakeEvent(1, 'task.failed', { errorMessage: 'x'.repeat(200) }), fakeState);
    const whole = JSON.stringify(detail);
    const bytes = Buffer.byteLength(whole, 'utf8');
    expect(fitDetail('task.failed', detail, bytes)).toBe(whole);
    expect(JSON.parse(fitDetail('task.failed', detail, bytes - 1)!)).toMatchObject({ error_message: expect.stringMatching(/…\[truncated\]$/), truncated: true });
  });

  it('fitDetail never splits a character of 4 bytes (a surrogate pair), whatever the budget, and keeps the longest start that fits', () => {
    // The cut fell after a whole pair half of the time: a check of one budget could land on either.
    const detail = buildDetail(fakeEvent(1, 'task.failed', { errorMessage: '\u{1F525}'.repeat(100) }), fakeState);
    const trimmed = Buffer.byteLength(JSON.stringify({ ...trimDetail('task.failed', detail), error_message: CUT_MARK }), 'utf8');
    for (let budget = trimmed; budget < trimmed + 12; budget++) {
      const message = (JSON.parse(fitDetail('task.failed', detail, budget)!) as { error_message: string }).error_message;
      expect(message.endsWith(CUT_MARK)).toBe(true);
      const kept = message.slice(0, -CUT_MARK.length);
      expect(kept).toBe('\u{1F525}'.repeat(kept.length / 2));
      // One more character would not fit: each is 4 bytes.
      expect(Buffer.byteLength(kept, 'utf8')).toBeLessThanOrEqual(budget - trimmed);
      expect(budget - trimmed).toBeLessThan(Buffer.byteLength(kept, 'utf8') + 4);
    }
  });

  it('sends an entry of exactly maxBatchBytes whole, and cuts one a byte larger to the longest start that fits', async () => {
    // Two UTF-8 bytes a character: a size counted in UTF-16 code units would cut far more than needed.
    const event = fakeEvent(1, 'task.failed', { errorMessage: 'é'.repeat(300) });
    const detail = buildDetail(event, fakeState);
    const size = entrySize({ Source: 'eks-upgrade-agent', DetailType: 'task.failed', Detail: JSON.stringify(detail), Resources: [], Time: new Date(event.timestamp) });
    const exact = await setup({ maxBatchBytes: size, eventTypes: ['task.failed'] });
    exact.notifier.handle(event, fakeState);
    expect(await exact.notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(exact.endpoint.entries.map((e) => e.detail)).toStrictEqual([detail]);
    expect(exact.notifier.stats()).toMatchObject({ sent: 1, trimmed: 0 });

    const over = await setup({ maxBatchBytes: size - 1, eventTypes: ['task.failed'] });
    over.notifier.handle(event, fakeState);
    expect(await over.notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(over.notifier.stats()).toMatchObject({ sent: 1, trimmed: 1 });
    const [sent] = over.endpoint.entries;
    expect(sent!.detail).toMatchObject({ error_message: expect.stringMatching(/^é+…\[truncated\]$/), truncated: true });
    // The longest start that fits: one more character (2 bytes) would not.
    expect(wireSize(sent!)).toBeLessThanOrEqual(size - 1);
    expect(wireSize(sent!)).toBeGreaterThanOrEqual(size - 2);
  });

  it('splits batches by bytes as well as by count', async () => {
    const { endpoint, notifier } = await setup({ maxBatchBytes: 1000 });
    const state = fakeState;
    for (let seq = 1; seq <= 5; seq++) notifier.handle(fakeEvent(seq, 'task.progress', { pad: 'x'.repeat(200) }), state);
    notifier.handle(fakeEvent(6), state); // not sent: task.progress is off by default, task.started on
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    // task.progress is off by default: only the task.started event goes.
    expect(endpoint.requests.map(idsIn)).toEqual([idsOfSeqs(6)]);

    const wide = await setup({ maxBatchBytes: 1000, eventTypes: ['task.progress'] });
    for (let seq = 1; seq <= 5; seq++) wide.notifier.handle(fakeEvent(seq, 'task.progress', { pad: 'x'.repeat(200) }), state);
    expect(await wide.notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(wide.endpoint.requests.map((r) => r.entries.length)).toEqual([2, 2, 1]);
    expect(wide.endpoint.requests.flatMap(idsIn)).toEqual(idsOfSeqs(1, 2, 3, 4, 5));
    expect(wide.endpoint.requests.every((r) => r.entries.every((e) => e.Time !== undefined))).toBe(true);
    const sizes = wide.endpoint.requests.map((r) => r.entries.reduce((n, e) => n + wireSize(e), 0));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(1000);
    // Three of them would not fit: the split is by bytes, not by count.
    expect(wireSize(wide.endpoint.requests[0]!.entries[0]!) * 3).toBeGreaterThan(1000);
  });

  it('trims an entry over maxBatchBytes, cuts its long text when that is not enough, and gives up on one whose identifiers alone do not fit', async () => {
    const { endpoint, notifier, failures } = await setup({ maxBatchBytes: 400, eventTypes: ['task.progress'] });
    notifier.handle(fakeEvent(1, 'task.progress', { pad: 'x'.repeat(500) }), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.entries).toHaveLength(1);
    expect(endpoint.entries[0]!.detail).toStrictEqual({
      upgrade_id: 'u1',
      cluster_name: 'prod',
      task_id: 't1',
      task_name: 'Task one',
      event_id: fakeEvent(1).eventId,
      seq: 1,
      truncated: true,
    });
    expect(wireSize(endpoint.entries[0]!)).toBeLessThanOrEqual(400);
    expect(notifier.stats()).toMatchObject({ sent: 1, trimmed: 1, failed: 0 });
    const tiny = await setup({ maxBatchBytes: 256, eventTypes: ['task.progress'] });
    const longName = { ...fakeState, clusterName: 'c'.repeat(300) };
    tiny.notifier.handle(fakeEvent(1, 'task.progress'), longName);
    // The identifiers are never cut: two of 128 characters leave no room in 256 bytes.
    const longIds = { ...fakeEvent(2, 'task.progress'), upgradeId: 'u'.repeat(128), taskId: 't'.repeat(128) } as ProgressEvent;
    tiny.notifier.handle(longIds, { ...fakeState, upgradeId: longIds.upgradeId });
    expect(tiny.failures.map((f) => [f.reason, f.errorCode, f.events[0]!.seq])).toEqual([['too_large', 'EntryTooLarge', 2]]);
    expect(await tiny.notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(tiny.notifier.stats()).toMatchObject({ sent: 1, failed: 1, trimmed: 2, queued: 0 });
    expect(tiny.endpoint.entries.map((e) => e.detail!.seq)).toEqual([1]);
    expect(tiny.endpoint.entries[0]!.detail).toMatchObject({ upgrade_id: 'u1', task_id: 't1', truncated: true });
    expect(tiny.endpoint.entries[0]!.detail!.cluster_name).toMatch(/^c*…\[truncated\]$/);
    expect(wireSize(tiny.endpoint.entries[0]!)).toBeLessThanOrEqual(256);
    expect(failures).toEqual([]);
  });

  it('reports as too_large, not a throw from handle(), an entry whose Source alone leaves no room for a detail in maxBatchBytes', async () => {
    // A Source of 256 characters (its longest) with maxBatchBytes at its least: the entry less its
    // detail is already over the limit. handle() threw fitDetail's "needs a budget of bytes >= 0",
    // and the event was lost without a report or a count.
    const { endpoint, notifier, failures } = await setup({ maxBatchBytes: 256, source: 's'.repeat(256) });
    expect(() => notifier.handle(fakeEvent(1, 'upgrade.phase_changed'), fakeState)).not.toThrow();
    expect(failures.map((f) => [f.reason, f.errorCode, f.events.map((e) => e.seq)])).toEqual([['too_large', 'EntryTooLarge', [1]]]);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(notifier.stats()).toMatchObject({ sent: 0, failed: 1, queued: 0 });
    expect(endpoint.requests).toHaveLength(0);
  });

  it('cuts the long text of an entry too large even trimmed (a failure message of 300 KB) rather than giving the failure up', async () => {
    const { endpoint, notifier, failures } = await setup({ eventTypes: ['upgrade.failed', 'task.failed'] });
    // The cut falls in a run of 4-byte characters (surrogate pairs in JS): none may be split.
    const message = `kubectl failed: ${'line of output\n'.repeat(10_000)}${'\u{1F525}'.repeat(40_000)}`;
    notifier.handle(fakeEvent(1, 'upgrade.failed', { errorMessage: message }), fakeState);
    const longName = { ...fakeState, clusterName: 'c'.repeat(300_000) };
    notifier.handle(fakeEvent(2, 'task.failed', { errorMessage: 'e'.repeat(300_000) }), longName);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(failures).toEqual([]);
    expect(endpoint.entries.map((e) => e.DetailType)).toEqual(['upgrade.failed', 'task.failed']);
    const [upgrade, task] = endpoint.entries;
    for (const entry of endpoint.entries) expect(wireSize(entry)).toBeLessThanOrEqual(256 * 1024);
    // The old module's keys, the cut value a prefix of the message and marked as cut.
    expect(Object.keys(upgrade!.detail!)).toEqual(['upgrade_id', 'cluster_name', 'error_message', 'event_id', 'seq', 'duration_ms', 'truncated']);
    const cut = upgrade!.detail!.error_message as string;
    expect(cut.endsWith(CUT_MARK)).toBe(true);
    expect(message.startsWith(cut.slice(0, -CUT_MARK.length))).toBe(true);
    expect(cut.length).toBeGreaterThan(100_000);
    expect(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(cut)).toBe(false);
    // Two long values: each cut as needed, the identifiers never.
    expect(task!.detail).toMatchObject({ upgrade_id: 'u1', task_id: 't1', task_name: 'Task one', event_id: fakeEvent(2).eventId, seq: 2, truncated: true });
    expect((task!.detail!.cluster_name as string).endsWith(CUT_MARK)).toBe(true);
    expect((task!.detail!.error_message as string).endsWith(CUT_MARK)).toBe(true);
    expect(notifier.stats()).toMatchObject({ sent: 2, trimmed: 2, failed: 0 });
  });
});

describe('the bounded queue', () => {
  it.each([
    ['drop-oldest', [1, 7, 8, 9, 10]],
    ['drop-newest', [1, 2, 3, 4, 5]],
  ] as const)('%s keeps the right events and counts the drops', async (dropPolicy, kept) => {
    // The endpoint holds every request: seq 1's stays in flight until the close aborts it.
    const { endpoint, notifier, failures } = await setup({ maxQueue: 4, maxConcurrentRequests: 1, maxBatchEntries: 1, dropPolicy, flushTimeoutMs: 0 }, { hold: () => true });
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(1); // seq 1 went out and hangs
    expect(endpoint.held).toBe(1);
    for (let seq = 2; seq <= 10; seq++) notifier.handle(fakeEvent(seq), fakeState);
    expect(notifier.stats()).toMatchObject({ queued: 4, inFlight: 1, dropped: 5, requests: 1 });
    expect(failures.filter((f) => f.reason === 'dropped')).toHaveLength(5);
    const closed = await notifier.shutdown();
    expect(closed.undelivered.map((u) => u.seq)).toEqual(kept);
    expect(endpoint.requests.map(idsIn)).toEqual([idsOfSeqs(1)]);
    expect(endpoint.entries).toEqual([]);
  });
});

describe('an onError that rejects (an async hook)', () => {
  it('is contained and logged, not left as an unhandled rejection that ends the process', async () => {
    const { logger, calls } = throwingLogger();
    const unhandled: unknown[] = [];
    const listener = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', listener);
    try {
      const heard: DeliveryFailure[] = [];
      // An async hook is a `(failure) => void` to TypeScript: nothing stops a user passing one.
      const onError = async (failure: DeliveryFailure): Promise<void> => {
        heard.push(failure);
        throw new Error('metrics backend down');
      };
      const { notifier } = await setup({ logger, onError }, { failEntry: () => 'MalformedDetail' });
      notifier.handle(fakeEvent(1), fakeState);
      expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
      await notifier.close();
      notifier.handle(fakeEvent(2), fakeState);
      // Two turns: an unhandled rejection is reported after the microtasks of the turn it happened in.
      await turn();
      await turn();
      expect(heard.map((f) => [f.reason, f.events.map((e) => e.seq)])).toEqual([
        ['rejected', [1]],
        ['dropped', [2]],
      ]);
      expect(unhandled).toEqual([]);
      expect(calls.filter((c) => c.msg === 'eventbridge notifier: onError threw')).toHaveLength(2);
    } finally {
      process.off('unhandledRejection', listener);
    }
  });
});

describe('a logger that throws (a closed transport)', () => {
  it('loses no retry, count or report, and fails neither handle() nor close()', async () => {
    const { logger, calls } = throwingLogger();
    // Every request's connection is dropped unanswered: a network error, retried until maxAttempts.
    // No backoff: both events are retried together (with jitter, either could go first), and the
    // order of the reports is fixed.
    const { endpoint, notifier, failures } = await setup({ logger, retry: { maxAttempts: 3, baseDelayMs: 0, maxDelayMs: 0 } }, { failRequest: () => ({ hangUp: true }) });
    notifier.handle(fakeEvent(1), fakeState);
    notifier.handle(fakeEvent(2), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    // Every attempt was made (each event three times), and the events given up on are counted and reported.
    const attempts = endpoint.requests.flatMap(idsIn);
    expect(attempts.filter((id) => id === fakeEvent(1).eventId)).toHaveLength(3);
    expect(attempts.filter((id) => id === fakeEvent(2).eventId)).toHaveLength(3);
    expect(endpoint.requests.map(idsIn)).toEqual([idsOfSeqs(1, 2), idsOfSeqs(1, 2), idsOfSeqs(1, 2)]);
    expect(endpoint.requests.every((r) => r.hungUp)).toBe(true);
    expect(notifier.stats()).toMatchObject({ sent: 0, failed: 2, queued: 0, inFlight: 0, requests: endpoint.requests.length });
    expect(failures.flatMap((f) => f.events.map((e) => [f.reason, f.errorCode, e.seq]))).toEqual([
      ['retries_exhausted', 'ECONNRESET', 1],
      ['retries_exhausted', 'ECONNRESET', 2],
    ]);
    // The logger was called (and threw) for every retry and give-up.
    expect(calls.filter((c) => c.msg === 'PutEvents request failed; retrying')).toHaveLength(endpoint.requests.length);
    expect(calls.filter((c) => c.msg === 'eventbridge entries given up on')).toHaveLength(2);
    await notifier.close();
    expect(() => notifier.handle(fakeEvent(3), fakeState)).not.toThrow();
    expect(notifier.stats()).toMatchObject({ dropped: 1 });
  });
});

describe('options and lifecycle', () => {
  it('refuses bad options with INVALID_ARGUMENT', () => {
    const bad: Array<Partial<EventBridgeNotifierOptions>> = [
      { busName: '' },
      { busName: 'b', region: 'us-east-1', maxBatchEntries: 11 },
      { busName: 'b', region: 'us-east-1', maxBatchEntries: 0 },
      { busName: 'b', region: 'us-east-1', maxBatchBytes: 255 },
      { busName: 'b', region: 'us-east-1', maxBatchBytes: 1024 * 1024 + 1 },
      { busName: 'b', region: 'us-east-1', eventTypes: ['task.nope' as never] },
      { busName: 'b', region: 'us-east-1', dropPolicy: 'drop-all' as never },
      { busName: 'b', region: 'us-east-1', retry: { maxAttempts: 0 } },
      // setTimeout fires at once past 2^31-1 ms: every request would be aborted after 1 ms.
      { busName: 'b', region: 'us-east-1', requestTimeoutMs: 2 ** 31 },
      { busName: 'b', region: 'us-east-1', flushTimeoutMs: 2 ** 31 },
      { busName: 'b', region: 'us-east-1', lingerMs: 2 ** 31 },
      { busName: 'b', region: 'us-east-1', retry: { maxDelayMs: 2 ** 31 } },
      { busName: 'b', region: 'us-east-1', retry: { baseDelayMs: 2 ** 31 } },
      { busName: 'b', region: 'us-east-1', eventTypes: 5 as never },
      { busName: 'b', region: 'us-east-1', eventTypes: {} as never },
      { busName: 'b', region: 'us-east-1', logger: { info() {}, debug() {} } as never },
      { busName: 'b', region: 'us-east-1', onError: 'x' as never },
      { busName: 'b', region: '' },
      { busName: 'b', region: 5 as never },
      { busName: 'b', clientConfig: { region: '' } },
      { busName: 'b', clientConfig: { region: 5 as never } },
      // `client: config.client ?? null`: a TypeError (reading 'send' of null) instead of INVALID_ARGUMENT.
      { busName: 'b', region: 'us-east-1', client: null as never },
    ];
    for (const options of bad) {
      let error: unknown;
      try {
        new EventBridgeNotifier(options as EventBridgeNotifierOptions);
      } catch (err) {
        error = err;
      }
      expect(isProgressError(error, 'INVALID_ARGUMENT'), JSON.stringify(options)).toBe(true);
      expect((error as Error).message).toMatch(/^\[@progress\/notifier-eventbridge\] /);
    }
    // The bounds themselves are taken: AWS's limit was raised to 1 MB in 2026.
    for (const maxBatchBytes of [256, 1024 * 1024]) expect(() => new EventBridgeNotifier({ busName: 'b', region: 'us-east-1', maxBatchBytes }), String(maxBatchBytes)).not.toThrow();
  });

  it('refuses an option name it does not know, also inside retry, naming the one meant, and makes no client', () => {
    // A misspelt option was left out without a word: maxBatchByte gave 256 KB batches, retry.maxAttempt 8 attempts.
    const cases: Array<[Record<string, unknown>, string, string | undefined]> = [
      [{ maxBatchByte: 1024 }, 'maxBatchByte', 'maxBatchBytes'],
      [{ lingerms: 50 }, 'lingerms', 'lingerMs'],
      [{ regoin: 'eu-west-1' }, 'regoin', 'region'],
      [{ onerror: () => {} }, 'onerror', 'onError'],
      [{ eventType: ['upgrade.started'] }, 'eventType', 'eventTypes'],
      [{ flushTimeout: 100 }, 'flushTimeout', 'flushTimeoutMs'],
      // The SDK's name of the bus (EventBusName), beside busName or in its place.
      [{ eventBusname: 'other' }, 'eventBusname', 'busName'],
      [{ retry: { maxAttempt: 1 } }, 'retry.maxAttempt', 'retry.maxAttempts'],
      [{ retry: { baseDelay: 1 } }, 'retry.baseDelay', 'retry.baseDelayMs'],
      [{ retry: { jitter: false } }, 'retry.jitter', undefined],
      [{ batching: { size: 5 } }, 'batching', undefined],
    ];
    for (const [extra, name, meant] of cases) {
      // A getter of the SDK's own config: read only when the client is made (the config is spread into it).
      let clientMade = false;
      const clientConfig = {
        region: 'eu-west-1',
        get maxAttempts() {
          clientMade = true;
          return 1;
        },
      };
      let error: unknown;
      try {
        new EventBridgeNotifier({ busName: 'b', clientConfig, ...extra } as EventBridgeNotifierOptions);
      } catch (err) {
        error = err;
      }
      expect(isProgressError(error, 'INVALID_ARGUMENT'), name).toBe(true);
      const message = (error as Error).message;
      expect(message).toMatch(/^\[@progress\/notifier-eventbridge\] unknown option /);
      expect(message).toContain(JSON.stringify(name));
      if (meant) expect(message, name).toContain(`did you mean ${JSON.stringify(meant)}?`);
      else expect(message, name).toContain('(known: ');
      expect((error as ProgressError).context.option).toBe(name);
      expect(clientMade, name).toBe(false);
    }
    // Without busName too: the name meant is what the user needs to hear.
    expect(() => new EventBridgeNotifier({ eventBusName: 'b', region: 'eu-west-1' } as unknown as EventBridgeNotifierOptions)).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('unknown option "eventBusName" (did you mean "busName"?)') }),
    );
    // An object without prototype is checked too; a retry that is not an object is refused (null, like undefined, is none).
    const bare = Object.assign(Object.create(null) as object, { busName: 'b', region: 'eu-west-1', maxBatchByte: 1024 });
    expect(() => new EventBridgeNotifier(bare as EventBridgeNotifierOptions)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('"maxBatchByte"') }));
    for (const retry of [3, 'fast', ['maxAttempts']]) {
      expect(() => new EventBridgeNotifier({ busName: 'b', region: 'eu-west-1', retry: retry as never }), String(retry)).toThrow(
        expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('retry must be an object') }),
      );
    }
  });

  it('takes every documented option at once, leaves the SDK config and client unchecked, and reads a settings class by its option names', async () => {
    const endpoint = await endpointWith();
    const client = localClient(endpoint.url);
    cleanups.push(async () => client.destroy());
    const failures: DeliveryFailure[] = [];
    const every = {
      busName: 'bus',
      source: 'my-agent',
      client,
      region: 'eu-west-1',
      // The SDK's own options, any of them (not ours to check).
      clientConfig: { maxAttempts: 2, useFipsEndpoint: false, customUserAgent: 'x' },
      eventTypes: ['upgrade.started', 'task.completed'],
      maxBatchEntries: 5,
      maxBatchBytes: 100_000,
      lingerMs: 1,
      maxConcurrentRequests: 2,
      maxQueue: 100,
      dropPolicy: 'drop-newest',
      retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5, retryableEntryCodes: ['ThrottlingException'] },
      requestTimeoutMs: 5000,
      flushTimeoutMs: 5000,
      logger: silentLogger,
      onError: (f: DeliveryFailure) => failures.push(f),
    } satisfies Required<EventBridgeNotifierOptions>;
    const notifier = new EventBridgeNotifier(every);
    cleanups.push(() => notifier.close());
    notifier.handle(fakeEvent(1, 'task.started'), fakeState); // not in eventTypes
    notifier.handle(fakeEvent(2, 'upgrade.started'), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.entries.map((e) => [e.Source, e.detail!.seq])).toEqual([['my-agent', 2]]);
    expect(failures).toEqual([]);
    // The client made from clientConfig, with an SDK option the notifier does not know of.
    const own = new EventBridgeNotifier({ busName: 'b', region: 'eu-west-1', clientConfig: { ...localClientConfig(endpoint.url), customUserAgent: 'progress-test' } });
    cleanups.push(() => own.close());
    own.handle(fakeEvent(2), fakeState);
    expect(await own.drain(5000)).toEqual({ complete: true, undelivered: [] });
    // A class instance keeps its state in its own fields, which are not options (as core's rule).
    class Settings {
      readonly env: Record<string, string>;
      constructor(env: Record<string, string>) {
        this.env = env;
      }
      get busName(): string {
        return this.env.BUS!;
      }
      get client(): EventBridgeClient {
        return client;
      }
    }
    const fromClass = new EventBridgeNotifier(new Settings({ BUS: 'bus' }));
    cleanups.push(() => fromClass.close());
    fromClass.handle(fakeEvent(3), fakeState);
    expect(await fromClass.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.entries).toHaveLength(3);
  });

  it('takes the region of the client it creates from the environment when none is given (AWS_REGION, else AWS_DEFAULT_REGION)', async () => {
    const endpoint = await endpointWith();
    // The client the notifier creates, pointed at the endpoint; the region is the SigV4 scope it signs with.
    const { credentials } = localClientConfig(endpoint.url);
    const signedRegion = async (options: Partial<EventBridgeNotifierOptions> = {}): Promise<string | undefined> => {
      const notifier = new EventBridgeNotifier({ busName: 'b', clientConfig: { endpoint: endpoint.url, credentials }, retry: { maxAttempts: 1 }, ...options });
      notifier.handle(fakeEvent(1), fakeState);
      expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
      expect(notifier.stats()).toMatchObject({ sent: 1 });
      await notifier.close();
      return /Credential=[^/]+\/\d{8}\/([^/]+)\/events\/aws4_request/.exec(String(endpoint.requests.at(-1)!.headers.authorization))?.[1];
    };
    const saved = { AWS_REGION: process.env.AWS_REGION, AWS_DEFAULT_REGION: process.env.AWS_DEFAULT_REGION };
    const restore = () => {
      for (const [key, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    };
    try {
      delete process.env.AWS_REGION;
      delete process.env.AWS_DEFAULT_REGION;
      // With none there either, the SDK's own search (the AWS profile, the EC2 instance metadata):
      // region.test.ts.
      process.env.AWS_DEFAULT_REGION = 'eu-central-1';
      const fromDefault = new EventBridgeNotifier({ busName: 'b' });
      await fromDefault.close();
      expect(await signedRegion()).toBe('eu-central-1');
      process.env.AWS_REGION = 'eu-west-1';
      const fromRegion = new EventBridgeNotifier({ busName: 'b' });
      await fromRegion.close();
      expect(await signedRegion()).toBe('eu-west-1');
      // The SDK's clientConfig.region may also be a provider function.
      const fromProvider = new EventBridgeNotifier({ busName: 'b', clientConfig: { region: async () => 'ap-south-1' } });
      await fromProvider.close();
      expect(await signedRegion({ clientConfig: { endpoint: endpoint.url, credentials, region: async () => 'ap-south-1' } })).toBe('ap-south-1');
      // The region option wins over the environment.
      expect(await signedRegion({ region: 'sa-east-1' })).toBe('sa-east-1');
    } finally {
      restore();
    }
    expect(endpoint.requests).toHaveLength(4);
  });

  it('refuses a region the SDK cannot sign for (a stray space from an env file) with INVALID_ARGUMENT, from the option, clientConfig or the environment', async () => {
    // The SDK takes such a region when the client is made, then fails every request before sending it
    // with a plain Error (no HTTP status, no code): the notifier retried it as a network error, paused
    // all sending, and gave every event up as retries_exhausted with the error code "Error".
    const endpoint = await endpointWith();
    const { credentials } = localClientConfig(endpoint.url);
    const sdkClient = new EventBridgeClient({ endpoint: endpoint.url, credentials, region: 'eu-west-1 ', maxAttempts: 1 });
    cleanups.push(async () => sdkClient.destroy());
    expect(String(await errorOf(sdkClient))).toMatch(/Region not accepted/);
    expect(endpoint.requests).toHaveLength(0);

    const refused = (options: Partial<EventBridgeNotifierOptions>): unknown => {
      try {
        const notifier = new EventBridgeNotifier({ busName: 'b', ...options });
        cleanups.push(() => notifier.close());
      } catch (err) {
        return err;
      }
      return undefined;
    };
    const saved = process.env.AWS_REGION;
    try {
      for (const options of [{ region: 'eu-west-1 ' }, { region: 'eu west 1' }, { region: '-eu-west-1' }, { clientConfig: { region: 'us-east-1\n' } }]) {
        const error = refused(options);
        expect(isProgressError(error, 'INVALID_ARGUMENT'), JSON.stringify(options)).toBe(true);
        expect((error as ProgressError).message).toMatch(/^\[@progress\/notifier-eventbridge\] .*region/);
      }
      process.env.AWS_REGION = ' us-east-1';
      expect(isProgressError(refused({}), 'INVALID_ARGUMENT')).toBe(true);
      // An explicit region wins over the environment, so a bad AWS_REGION beside it does not matter.
      expect(refused({ region: 'us-east-1', clientConfig: { endpoint: endpoint.url } })).toBeUndefined();
      // The regions the SDK takes are taken (FIPS spellings included).
      for (const region of ['us-gov-west-1', 'fips-us-east-1', 'us-east-1-fips', 'cn-north-1']) expect(refused({ region }), region).toBeUndefined();
    } finally {
      if (saved === undefined) delete process.env.AWS_REGION;
      else process.env.AWS_REGION = saved;
    }
  });

  it('makes its own client with maxAttempts 1 (its retries are the only ones), also for a clientConfig whose maxAttempts is left undefined', async () => {
    // `clientConfig: { endpoint, maxAttempts: cfg.sdkAttempts }` with no sdkAttempts: the spread
    // undefined replaced the default 1, and the SDK retried every failed request itself (3 attempts).
    for (const [label, clientConfig] of [['no maxAttempts', {}], ['maxAttempts: undefined', { maxAttempts: undefined }]] as const) {
      const endpoint = await endpointWith({ failRequest: ({ index }) => (index === 0 ? { status: 500, errorType: 'InternalException' } : undefined) });
      const notifier = new EventBridgeNotifier({ busName: 'b', clientConfig: { ...localClientConfig(endpoint.url), ...clientConfig }, retry: { baseDelayMs: 1, maxDelayMs: 5 } });
      cleanups.push(() => notifier.close());
      notifier.handle(fakeEvent(1), fakeState);
      expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
      // One HTTP request per request of the notifier: the failed one was retried by the notifier.
      expect(notifier.stats(), label).toMatchObject({ sent: 1, retried: 1, requests: 2 });
      expect(endpoint.requests.map((r) => r.status), label).toEqual([500, 200]);
    }
  });

  it('drops the events handed in once close() is called, also while it still waits for delivery', async () => {
    const { endpoint, notifier, failures } = await setup({}, { hold: () => true });
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(1); // seq 1 is in flight, held: the close waits for it
    const closing = notifier.shutdown(500);
    notifier.handle(fakeEvent(2), fakeState);
    expect(failures.map((f) => [f.reason, f.errorMessage, f.events.map((e) => e.seq)])).toEqual([['dropped', 'the notifier is closed', [2]]]);
    const report = await closing;
    expect(report.undelivered.map((u) => u.seq)).toEqual([1]);
    expect(report.stats).toMatchObject({ dropped: 1, queued: 0 });
  });

  it('drain(Infinity) waits for delivery instead of giving up at once', async () => {
    const { endpoint, notifier } = await setup({}, { latencyMs: 30 });
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(Infinity)).toEqual({ complete: true, undelivered: [] });
    expect(notifier.stats()).toMatchObject({ sent: 1, queued: 0, inFlight: 0 });
    expect(endpoint.entries.map((e) => e.detail!.seq)).toEqual([1]);
  });

  it('destroys the client it created, not one it was given', async () => {
    const given = await setup();
    const destroyGiven = vi.spyOn(given.client, 'destroy');
    given.notifier.handle(fakeEvent(1), fakeState);
    await given.notifier.close();
    expect(destroyGiven).not.toHaveBeenCalled();
    // The given client still works.
    expect(await errorOf(given.client)).toBeUndefined();
    expect(given.endpoint.entries).toHaveLength(2);

    const endpoint = await endpointWith();
    const own = new EventBridgeNotifier({ busName: 'b', region: 'eu-west-1', clientConfig: { endpoint: endpoint.url, credentials: localClientConfig(endpoint.url).credentials } });
    cleanups.push(() => own.close());
    own.handle(fakeEvent(1), fakeState);
    expect(await own.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.connections).toBeGreaterThan(0); // the SDK keeps its connection alive
    const destroyOwn = vi.spyOn(EventBridgeClient.prototype, 'destroy');
    try {
      await own.close();
      expect(destroyOwn).toHaveBeenCalledTimes(1);
    } finally {
      destroyOwn.mockRestore();
    }
    // Destroying the client closed its connection (the server alone would keep it for 5 s: Node's keepAliveTimeout).
    await vi.waitFor(() => expect(endpoint.connections).toBe(0), { timeout: 2000 });
  });

  it('holds a partial batch while a request is in flight, sends a full one at once, and everything on flush', async () => {
    // The endpoint holds the first request (seq 1) until released: it stays in flight meanwhile.
    const { endpoint, notifier } = await setup({ lingerMs: 60_000 }, { hold: ({ index }) => index === 0 });
    notifier.handle(fakeEvent(1), fakeState);
    await turn();
    expect(notifier.stats()).toMatchObject({ requests: 1, inFlight: 1, queued: 0 }); // alone, at once
    await endpoint.waitForRequests(1);
    expect(endpoint.requests.map((r) => r.entries.length)).toEqual([1]);
    for (let seq = 2; seq <= 4; seq++) notifier.handle(fakeEvent(seq), fakeState);
    await turn();
    expect(notifier.stats()).toMatchObject({ requests: 1, inFlight: 1, queued: 3 }); // 3 entries wait for more (lingerMs) while seq 1 is in flight
    for (let seq = 5; seq <= 14; seq++) notifier.handle(fakeEvent(seq), fakeState);
    await turn();
    expect(notifier.stats()).toMatchObject({ requests: 2, inFlight: 11, queued: 3 }); // a full batch does not wait
    await endpoint.waitForEntries(10);
    await vi.waitFor(() => expect(notifier.stats()).toMatchObject({ queued: 3, inFlight: 1, sent: 10 }), { timeout: 5000 });
    // The answer of the full batch did not send the 3 either: seq 1 is still in flight.
    expect(notifier.stats()).toMatchObject({ requests: 2 });
    expect(endpoint.requests.map((r) => r.entries.length)).toEqual([1, 10]);
    expect(endpoint.held).toBe(1);
    const flushed = notifier.drain(5000);
    expect(endpoint.release()).toBe(1);
    expect(await flushed).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests.map((r) => r.entries.length)).toEqual([1, 10, 3]);
    expect(endpoint.requests.flatMap(idsIn)).toEqual(Array.from({ length: 14 }, (_, i) => fakeEvent(i + 1).eventId));
    expect(notifier.stats()).toMatchObject({ sent: 14, requests: 3, queued: 0, inFlight: 0 });
  });

  it('sends a lingering partial batch at once when a flush is called, rather than after lingerMs', async () => {
    const { endpoint, notifier } = await setup({ lingerMs: 60_000 });
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForEntries(1);
    await vi.waitFor(() => expect(notifier.stats()).toMatchObject({ sent: 1, inFlight: 0 }));
    // Right after a request: seq 2 waits lingerMs (a minute) for more entries.
    notifier.handle(fakeEvent(2), fakeState);
    await turn();
    expect(notifier.stats()).toMatchObject({ requests: 1, queued: 1 });
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests.map(idsIn)).toEqual([idsOfSeqs(1), idsOfSeqs(2)]);
  });

  it('a drain() that times out reports its events still in flight or queued, not those handed in after it', async () => {
    const { endpoint, notifier } = await setup({ maxConcurrentRequests: 1, flushTimeoutMs: 0 }, { hold: () => true });
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(1); // seq 1 in flight, held: the only slot is taken
    notifier.handle(fakeEvent(2), fakeState); // queued behind it
    const drained = notifier.drain(100);
    notifier.handle(fakeEvent(3), fakeState); // handed in after the call: not its business
    expect(await drained).toEqual({ complete: false, undelivered: [1, 2].map((seq) => expect.objectContaining({ seq })) });
    expect(notifier.stats()).toMatchObject({ inFlight: 1, queued: 2 }); // they stay queued
  });

  it('a drain() waiting beside shutdown() reports only its own events of those shutdown() abandoned', async () => {
    const { endpoint, notifier } = await setup({ flushTimeoutMs: 0 }, { hold: () => true });
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(1); // held: in flight until the close aborts it
    const drained = notifier.drain(30_000);
    notifier.handle(fakeEvent(2), fakeState); // handed in after the drain's call
    const closed = await notifier.shutdown(0);
    expect(closed.undelivered.map((u) => u.seq)).toEqual([1, 2]);
    expect(await drained).toEqual({ complete: false, undelivered: [expect.objectContaining({ seq: 1 })] });
  });

  it('sends a batch of exactly maxBatchEntries at once while a request is in flight', async () => {
    const { endpoint, notifier } = await setup({ lingerMs: 60_000, flushTimeoutMs: 0 }, { hold: ({ index }) => index === 0 });
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(1); // held: in flight
    for (let seq = 2; seq <= 11; seq++) notifier.handle(fakeEvent(seq), fakeState);
    await endpoint.waitForEntries(10, 5000); // without waiting lingerMs (a minute)
    expect(endpoint.requests.map(idsIn)).toEqual([idsOfSeqs(1), idsOfSeqs(2, 3, 4, 5, 6, 7, 8, 9, 10, 11)]);
  });

  it('sends one event at once when nothing is in flight', async () => {
    const { endpoint, notifier } = await setup({ lingerMs: 60_000 });
    notifier.handle(fakeEvent(1), fakeState);
    await turn();
    expect(notifier.stats()).toMatchObject({ requests: 1, inFlight: 1, queued: 0 });
    // It arrives without a flush (lingerMs would hold it for a minute).
    await endpoint.waitForEntries(1);
    expect(endpoint.requests.map(idsIn)).toEqual([idsOfSeqs(1)]);
  });
});
