import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { isProgressError } from '@progress/core';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EventBridgeNotifier, backoffDelay, classifyRequestError, entrySize, type DeliveryFailure, type EventBridgeNotifierOptions } from '../src/index.js';
import { throwingLogger } from '../../../tools/test-utils/src/logger.js';
import { fakeEvent, fakeState, idsOf } from './fixtures.js';

const open: EventBridgeNotifier[] = [];
afterEach(async () => {
  for (const n of open.splice(0)) await n.close();
});

function setup(options: Partial<EventBridgeNotifierOptions> = {}) {
  const client = new EventBridgeClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
  const mock = mockClient(client);
  const failures: DeliveryFailure[] = [];
  const notifier = new EventBridgeNotifier({ busName: 'bus', client, retry: { baseDelayMs: 1, maxDelayMs: 5 }, onError: (f) => failures.push(f), ...options });
  open.push(notifier);
  const calls = () => mock.commandCalls(PutEventsCommand).map((c) => c.args[0].input);
  return { client, mock, notifier, failures, calls };
}

const ok = (input: { Entries?: unknown[] }) => ({ FailedEntryCount: 0, Entries: (input.Entries ?? []).map((_, i) => ({ EventId: `e${i}` })) });
const awsError = (name: string, status: number) => Object.assign(new Error(`${name} happened`), { name, $metadata: { httpStatusCode: status }, $fault: status >= 500 ? 'server' : 'client' });

describe('retry decisions', () => {
  it('retries only the throttled and internal-failure entries; reports the others and never resends a delivered one', async () => {
    const { mock, notifier, failures, calls } = setup();
    mock.on(PutEventsCommand).callsFakeOnce(() => ({
      FailedEntryCount: 3,
      Entries: [{ ErrorCode: 'ThrottlingException', ErrorMessage: 'slow down' }, { ErrorCode: 'InternalFailure' }, { ErrorCode: 'MalformedDetail', ErrorMessage: 'bad' }, { EventId: 'ok' }],
    })).callsFake(ok);
    for (let seq = 1; seq <= 4; seq++) notifier.handle(fakeEvent(seq), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    const [first, second, ...rest] = calls();
    expect(rest).toEqual([]);
    expect(idsOf(first!)).toEqual([1, 2, 3, 4].map((s) => fakeEvent(s).eventId));
    expect(idsOf(second!)).toEqual([1, 2].map((s) => fakeEvent(s).eventId));
    expect(failures).toEqual([{ reason: 'rejected', errorCode: 'MalformedDetail', errorMessage: 'bad', events: [{ eventId: fakeEvent(3).eventId, upgradeId: 'u1', seq: 3, type: 'task.started' }] }]);
    expect(notifier.stats()).toMatchObject({ sent: 3, failed: 1, retried: 2, requests: 2, queued: 0, inFlight: 0 });
  });

  it('gives an entry up after retry.maxAttempts attempts', async () => {
    const { mock, notifier, failures, calls } = setup({ retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 } });
    mock.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'ThrottlingException', ErrorMessage: 'x' }] });
    notifier.handle(fakeEvent(1), fakeState);
    await notifier.drain(5000);
    expect(calls()).toHaveLength(3);
    expect(failures.map((f) => [f.reason, f.errorCode])).toEqual([['retries_exhausted', 'ThrottlingException']]);
    expect(notifier.stats()).toMatchObject({ sent: 0, failed: 1, retried: 2 });
  });

  it('retries whole requests on 5xx, throttling and network errors, not on other 4xx', async () => {
    const { mock, notifier, failures, calls } = setup();
    mock
      .on(PutEventsCommand)
      .rejectsOnce(awsError('InternalException', 500))
      .rejectsOnce(awsError('ThrottlingException', 400))
      .rejectsOnce(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))
      .callsFakeOnce(ok)
      .rejectsOnce(awsError('AccessDeniedException', 400));
    notifier.handle(fakeEvent(1), fakeState);
    await notifier.drain(5000);
    expect(calls()).toHaveLength(4);
    expect(notifier.stats()).toMatchObject({ sent: 1, retried: 3, failed: 0 });
    notifier.handle(fakeEvent(2), fakeState);
    await notifier.drain(5000);
    expect(calls()).toHaveLength(5);
    expect(failures.map((f) => [f.reason, f.errorCode, f.events.map((e) => e.seq)])).toEqual([['rejected', 'AccessDeniedException', [2]]]);
  });

  it('classifies errors and spreads the backoff with full jitter', () => {
    expect(classifyRequestError(awsError('ResourceNotFoundException', 400))).toMatchObject({ retryable: false, status: 400 });
    expect(classifyRequestError(awsError('ServiceUnavailable', 503)).retryable).toBe(true);
    expect(classifyRequestError(awsError('TooManyRequestsException', 429)).retryable).toBe(true);
    expect(classifyRequestError(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toMatchObject({ retryable: true, code: 'ECONNRESET' });
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

  it('splits batches by bytes as well as by count', async () => {
    const { mock, notifier, calls } = setup({ maxBatchBytes: 1000 });
    mock.on(PutEventsCommand).callsFake(ok);
    const state = fakeState;
    for (let seq = 1; seq <= 5; seq++) notifier.handle(fakeEvent(seq, 'task.progress', { pad: 'x'.repeat(200) }), state);
    notifier.handle(fakeEvent(6), state); // not sent: task.progress is off by default, task.started on
    await notifier.drain(5000);
    // task.progress is off by default: only the task.started event goes.
    expect(calls().map((c) => c.Entries!.length)).toEqual([1]);

    const wide = setup({ maxBatchBytes: 1000, eventTypes: ['task.progress'] });
    wide.mock.on(PutEventsCommand).callsFake(ok);
    for (let seq = 1; seq <= 5; seq++) wide.notifier.handle(fakeEvent(seq, 'task.progress', { pad: 'x'.repeat(200) }), state);
    await wide.notifier.drain(5000);
    const sizes = wide.calls().map((c) => c.Entries!.reduce((n, e) => n + entrySize(e), 0));
    expect(wide.calls().map((c) => c.Entries!.length)).toEqual([2, 2, 1]);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(1000);
  });

  it('trims an entry over maxBatchBytes and gives up on one that cannot fit even trimmed', async () => {
    const { mock, notifier, failures, calls } = setup({ maxBatchBytes: 400, eventTypes: ['task.progress'] });
    mock.on(PutEventsCommand).callsFake(ok);
    notifier.handle(fakeEvent(1, 'task.progress', { pad: 'x'.repeat(500) }), fakeState);
    await notifier.drain(5000);
    expect(JSON.parse(calls()[0]!.Entries![0]!.Detail!)).toStrictEqual({
      upgrade_id: 'u1',
      cluster_name: 'prod',
      task_id: 't1',
      task_name: 'Task one',
      event_id: fakeEvent(1).eventId,
      seq: 1,
      truncated: true,
    });
    const tiny = setup({ maxBatchBytes: 256, eventTypes: ['task.progress'] });
    const longName = { ...fakeState, clusterName: 'c'.repeat(300) };
    tiny.notifier.handle(fakeEvent(1, 'task.progress'), longName);
    expect(tiny.failures.map((f) => [f.reason, f.errorCode])).toEqual([['too_large', 'EntryTooLarge']]);
    expect(tiny.notifier.stats()).toMatchObject({ failed: 1, trimmed: 1, queued: 0 });
    expect(failures).toEqual([]);
  });
});

describe('the bounded queue', () => {
  const hang = () => new Promise(() => {});
  it.each([
    ['drop-oldest', [1, 7, 8, 9, 10]],
    ['drop-newest', [1, 2, 3, 4, 5]],
  ] as const)('%s keeps the right events and counts the drops', async (dropPolicy, kept) => {
    const { mock, notifier, failures } = setup({ maxQueue: 4, maxConcurrentRequests: 1, maxBatchEntries: 1, dropPolicy, flushTimeoutMs: 0 });
    mock.on(PutEventsCommand).callsFake(hang);
    notifier.handle(fakeEvent(1), fakeState);
    await new Promise((r) => setImmediate(r)); // seq 1 goes out and hangs
    for (let seq = 2; seq <= 10; seq++) notifier.handle(fakeEvent(seq), fakeState);
    expect(notifier.stats()).toMatchObject({ queued: 4, inFlight: 1, dropped: 5 });
    expect(failures.filter((f) => f.reason === 'dropped')).toHaveLength(5);
    const closed = await notifier.shutdown();
    expect(closed.undelivered.map((u) => u.seq)).toEqual(kept);
  });
});

describe('a logger that throws (a closed transport)', () => {
  it('loses no retry, count or report, and fails neither handle() nor close()', async () => {
    const { logger } = throwingLogger();
    const { mock, notifier, failures, calls } = setup({ logger, retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 } });
    mock.on(PutEventsCommand).callsFake(() => {
      throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    });
    notifier.handle(fakeEvent(1), fakeState);
    notifier.handle(fakeEvent(2), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    // Every attempt was made (each event three times: the retries' jitter may split them over
    // requests), and the events given up on are counted and reported.
    const attempts = calls().flatMap((input) => idsOf(input));
    expect(attempts.filter((id) => id === fakeEvent(1).eventId)).toHaveLength(3);
    expect(attempts.filter((id) => id === fakeEvent(2).eventId)).toHaveLength(3);
    expect(notifier.stats()).toMatchObject({ sent: 0, failed: 2, queued: 0, inFlight: 0 });
    expect(failures.flatMap((f) => f.events.map((e) => [f.reason, e.seq]))).toEqual([
      ['retries_exhausted', 1],
      ['retries_exhausted', 2],
    ]);
    await notifier.close();
    expect(() => notifier.handle(fakeEvent(3), fakeState)).not.toThrow();
    expect(notifier.stats()).toMatchObject({ dropped: 1 });
  });
});

describe('options and lifecycle', () => {
  it('refuses bad options with INVALID_ARGUMENT', () => {
    const bad: Array<Partial<EventBridgeNotifierOptions>> = [
      { busName: '' },
      { busName: 'b' },
      { busName: 'b', region: 'us-east-1', maxBatchEntries: 11 },
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
  });

  it('takes the region of the client it creates from the environment when none is given (AWS_REGION, else AWS_DEFAULT_REGION)', async () => {
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
      expect(() => new EventBridgeNotifier({ busName: 'b' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
      process.env.AWS_DEFAULT_REGION = 'eu-central-1';
      const fromDefault = new EventBridgeNotifier({ busName: 'b' });
      await fromDefault.close();
      process.env.AWS_REGION = 'eu-west-1';
      const fromRegion = new EventBridgeNotifier({ busName: 'b' });
      await fromRegion.close();
      // The SDK's clientConfig.region may also be a provider function.
      const fromProvider = new EventBridgeNotifier({ busName: 'b', clientConfig: { region: async () => 'eu-west-1' } });
      await fromProvider.close();
    } finally {
      restore();
    }
  });

  it('drain(Infinity) waits for delivery instead of giving up at once', async () => {
    const { mock, notifier } = setup();
    mock.on(PutEventsCommand).callsFake((input: { Entries?: unknown[] }) => new Promise((resolve) => setTimeout(() => resolve(ok(input)), 30)));
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(Infinity)).toEqual({ complete: true, undelivered: [] });
    expect(notifier.stats()).toMatchObject({ sent: 1, queued: 0, inFlight: 0 });
  });

  it('destroys the client it created, not one it was given', async () => {
    const given = setup();
    const destroyGiven = vi.spyOn(given.client, 'destroy');
    await given.notifier.close();
    expect(destroyGiven).not.toHaveBeenCalled();
    const own = new EventBridgeNotifier({ busName: 'b', region: 'eu-west-1' });
    const destroyOwn = vi.spyOn(EventBridgeClient.prototype, 'destroy');
    await own.close();
    expect(destroyOwn).toHaveBeenCalledTimes(1);
    destroyOwn.mockRestore();
  });

  it('holds a partial batch while a request is in flight, sends a full one at once, and everything on flush', async () => {
    const { mock, notifier, calls } = setup({ lingerMs: 60_000 });
    let release: (() => void) | undefined;
    mock
      .on(PutEventsCommand)
      .callsFakeOnce((input: { Entries?: unknown[] }) => new Promise((resolve) => (release = () => resolve(ok(input)))))
      .callsFake(ok);
    const turn = () => new Promise((r) => setImmediate(r));
    notifier.handle(fakeEvent(1), fakeState);
    await turn();
    expect(calls().map((c) => c.Entries!.length)).toEqual([1]); // alone, at once
    for (let seq = 2; seq <= 4; seq++) notifier.handle(fakeEvent(seq), fakeState);
    await turn();
    expect(calls()).toHaveLength(1); // 3 entries wait for more (lingerMs) while seq 1 is in flight
    for (let seq = 5; seq <= 14; seq++) notifier.handle(fakeEvent(seq), fakeState);
    await turn();
    expect(calls().map((c) => c.Entries!.length)).toEqual([1, 10]); // a full batch does not wait
    expect(notifier.stats()).toMatchObject({ queued: 3, inFlight: 1, sent: 10 });
    const flushed = notifier.drain(5000);
    release!();
    expect(await flushed).toEqual({ complete: true, undelivered: [] });
    expect(calls().map((c) => c.Entries!.length)).toEqual([1, 10, 3]);
    expect(calls().flatMap((c) => idsOf(c))).toEqual(Array.from({ length: 14 }, (_, i) => fakeEvent(i + 1).eventId));
  });

  it('sends one event at once when nothing is in flight', async () => {
    const { mock, notifier, calls } = setup({ lingerMs: 60_000 });
    mock.on(PutEventsCommand).callsFake(ok);
    notifier.handle(fakeEvent(1), fakeState);
    await new Promise((r) => setImmediate(r));
    expect(calls()).toHaveLength(1);
  });
});
