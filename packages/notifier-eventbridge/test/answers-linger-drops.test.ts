// Paths a review on 2026-11-29 found without a test: an answer without a result for some entries,
// the linger while a request is in flight, the drop-oldest order and what a drop reports, and the
// retry decision on the SDK's `$retryable` flag and throttling errors. Every case runs the real SDK
// client over HTTP against the local endpoint (behind a rewriting proxy for the answers the endpoint
// never gives); none asserts a timing.
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { createHook } from 'node:async_hooks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { localClientConfig, startEventBridgeEndpoint, type EventBridgeEndpoint, type EventBridgeEndpointOptions, type RecordedRequest } from '../../../tools/test-utils/src/eventbridge-endpoint.js';
import { DEFAULT_RETRY, EventBridgeNotifier, type DeliveryFailure, type EventBridgeNotifierOptions, type FlushReport } from '../src/index.js';
import { fakeEvent, fakeState } from './fixtures.js';
import { localClient, recordingLogger, startRewritingProxy, type Rewrites } from './helpers.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function setup(options: Partial<EventBridgeNotifierOptions> = {}, endpointOptions: EventBridgeEndpointOptions = {}, rewrites?: Rewrites) {
  const endpoint: EventBridgeEndpoint = await startEventBridgeEndpoint(endpointOptions);
  cleanups.push(() => endpoint.close());
  let url = endpoint.url;
  if (rewrites) {
    const proxy = await startRewritingProxy(endpoint.url, rewrites);
    cleanups.push(() => proxy.close());
    url = proxy.url;
  }
  const client = localClient(url);
  cleanups.push(async () => client.destroy());
  const failures: DeliveryFailure[] = [];
  const { logger, calls } = recordingLogger();
  const notifier = new EventBridgeNotifier({ busName: 'bus', client, logger, retry: { baseDelayMs: 1, maxDelayMs: 5 }, onError: (f) => failures.push(f), ...options });
  cleanups.push(() => notifier.close(0));
  return { endpoint, client, notifier, failures, logs: calls };
}

const seqsIn = (r: RecordedRequest): number[] => r.entries.map((e) => JSON.parse(e.Detail!).seq as number);
const firstSeq = (body: unknown): number => JSON.parse((body as { Entries: Array<{ Detail: string }> }).Entries[0]!.Detail).seq as number;
const turn = () => new Promise((r) => setImmediate(r));
/**
 * Counts the timers created from now on that are still pending (neither fired nor cleared), by
 * async_hooks (process.getActiveResourcesInfo() miscounts when timers of one duration share a list).
 */
function trackTimers(): { pending: () => number; settled: () => Promise<number> } {
  const live = new Set<number>();
  const hook = createHook({
    init: (id, type) => void (type === 'Timeout' && live.add(id)),
    destroy: (id) => void live.delete(id),
  }).enable();
  cleanups.push(async () => void hook.disable());
  return {
    pending: () => live.size,
    // Polled on setImmediate, which makes no timer; a destroy is reported a few turns after the clear.
    settled: async () => {
      for (let i = 0; i < 10_000 && live.size > 0; i++) await new Promise((r) => setImmediate(r));
      return live.size;
    },
  };
}

describe('an answer without a result for some entries', () => {
  it('does not count them as sent, even with FailedEntryCount 0: they are sent again, and a warning says so', async () => {
    // Request 0 gets a result for its first entry only; request 1 an empty result ({}) for its first.
    const body = (answer: { FailedEntryCount?: number; Entries?: Array<Record<string, unknown>> }, index: number) =>
      index === 0 ? { FailedEntryCount: 0, Entries: answer.Entries!.slice(0, 1) } : index === 1 ? { FailedEntryCount: 0, Entries: [{}, ...answer.Entries!.slice(1)] } : answer;
    const { endpoint, notifier, failures, logs } = await setup({}, {}, { body });
    for (let seq = 1; seq <= 3; seq++) notifier.handle(fakeEvent(seq), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests.map(seqsIn)).toEqual([[1, 2, 3], [2, 3], [2]]);
    expect(notifier.stats()).toMatchObject({ sent: 3, retried: 3, failed: 0, queued: 0, inFlight: 0 });
    expect(failures).toEqual([]);
    expect(logs.filter((c) => c.level === 'warn' && /without a result/.test(c.msg ?? '')).map((c) => c.obj.unanswered)).toEqual([2, 1]);
  });

  it('reports them (MissingResult) when no answer ever has a result for them, instead of losing them without a word', async () => {
    const { endpoint, notifier, failures, logs } = await setup({ retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 } }, {}, { body: () => ({ FailedEntryCount: 0, Entries: [] }) });
    notifier.handle(fakeEvent(1), fakeState);
    notifier.handle(fakeEvent(2), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests.map(seqsIn)).toEqual([
      [1, 2],
      [1, 2],
    ]);
    expect(failures.map((f) => [f.reason, f.errorCode, f.events.map((e) => e.seq)])).toEqual([
      ['retries_exhausted', 'MissingResult', [1]],
      ['retries_exhausted', 'MissingResult', [2]],
    ]);
    expect(notifier.stats()).toMatchObject({ sent: 0, failed: 2, retried: 2, queued: 0, inFlight: 0 });
    // The first answer's entries are retried, the second's given up: the warnings say which.
    const warned = logs.filter((c) => c.level === 'warn' && /without a result/.test(c.msg ?? ''));
    expect(warned.map((c) => [c.obj.retried, c.obj.givenUp, c.msg])).toEqual([
      [2, 0, 'PutEvents answer without a result for some entries; retrying them'],
      [0, 2, 'PutEvents answer without a result for some entries; out of attempts, given up'],
    ]);
  });
});

describe('linger while a request is in flight', () => {
  it('batches the events that arrive meanwhile into the next request, in order, without a flush; nothing is lost', async () => {
    const { endpoint, notifier, failures } = await setup({ lingerMs: 500 }, { hold: ({ index }) => index === 0 });
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(1); // seq 1 is in flight, held
    // Three events in three turns of the event loop, each one alone would go at once if idle.
    notifier.handle(fakeEvent(2), fakeState);
    await turn();
    notifier.handle(fakeEvent(3), fakeState);
    await turn();
    notifier.handle(fakeEvent(4), fakeState);
    await turn();
    expect(notifier.stats()).toMatchObject({ requests: 1, inFlight: 1, queued: 3 });
    // The linger ends while seq 1 is still in flight: 2, 3 and 4 go together, in order.
    await endpoint.waitForRequests(2);
    expect(endpoint.held).toBe(1);
    expect(endpoint.requests.map(seqsIn)).toEqual([[1], [2, 3, 4]]);
    await endpoint.waitForEntries(3);
    notifier.handle(fakeEvent(5), fakeState); // arrives while seq 1 is still in flight
    const drained = notifier.drain(5000);
    expect(endpoint.release()).toBe(1);
    expect(await drained).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests.map(seqsIn)).toEqual([[1], [2, 3, 4], [5]]);
    expect(endpoint.entries.map((e) => e.detail!.seq as number).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);
    expect(notifier.stats()).toMatchObject({ sent: 5, requests: 3, queued: 0, inFlight: 0, dropped: 0, failed: 0 });
    expect(failures).toEqual([]);
  });

  it('sends a retry while another request is still in flight, rather than holding it behind that request', async () => {
    const { endpoint, notifier, failures } = await setup(
      { maxConcurrentRequests: 2 },
      { hold: ({ index }) => index === 0, failRequest: ({ index }) => (index === 1 ? { status: 500, errorType: 'InternalException' } : undefined) },
    );
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(1); // seq 1 is in flight, held
    notifier.handle(fakeEvent(2), fakeState); // goes in the other slot, and fails
    // Its retry goes while seq 1 is still held: a batch of ready retries does not linger for more.
    await endpoint.waitForRequests(3, 10_000);
    expect(endpoint.held).toBe(1);
    expect(endpoint.requests.map(seqsIn)).toEqual([[1], [2], [2]]);
    const drained = notifier.drain(5000);
    endpoint.release();
    expect(await drained).toEqual({ complete: true, undelivered: [] });
    expect(failures).toEqual([]);
  });

  it('leaves no timer behind when closed while a partial batch lingers behind a request in flight and drops wait to be logged', async () => {
    const { endpoint, notifier, failures, logs } = await setup({ lingerMs: 60_000, requestTimeoutMs: 60_000, maxQueue: 1 }, { hold: () => true });
    const timers = trackTimers();
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(1);
    for (let seq = 2; seq <= 4; seq++) notifier.handle(fakeEvent(seq), fakeState); // drops 2 and 3
    await turn();
    expect(notifier.stats()).toMatchObject({ requests: 1, inFlight: 1, queued: 1, dropped: 2 });
    expect(timers.pending()).toBeGreaterThanOrEqual(3); // the linger, the request timeout, the next drop log
    const report = await notifier.shutdown(0);
    expect(report.undelivered.map((u) => u.seq)).toEqual([1, 4]);
    expect(report.stats).toMatchObject({ queued: 0, inFlight: 0, failed: 2, dropped: 2 });
    expect(failures.map((f) => [f.reason, f.events.map((e) => e.seq)])).toEqual([
      ['dropped', [2]],
      ['dropped', [3]],
      ['closed', [1, 4]],
    ]);
    expect(logs.filter((c) => c.msg === 'eventbridge notifier dropped events').map((c) => c.obj.dropped)).toEqual([1, 1]);
    expect(await timers.settled()).toBe(0);
  });

  it('leaves no timer behind when closed while a request is stuck loading its credentials (which the abort does not end)', async () => {
    // An STS or metadata endpoint that never answers: the SDK's abort ends the HTTP exchange only, so
    // the request never settles, and only close() can clear its requestTimeoutMs timer.
    const endpoint = await startEventBridgeEndpoint();
    cleanups.push(() => endpoint.close());
    const client = new EventBridgeClient({ ...localClientConfig(endpoint.url), credentials: () => new Promise<never>(() => {}), maxAttempts: 1 });
    cleanups.push(async () => client.destroy());
    const failures: DeliveryFailure[] = [];
    const notifier = new EventBridgeNotifier({ busName: 'bus', client, requestTimeoutMs: 60_000, onError: (f) => failures.push(f) });
    cleanups.push(() => notifier.close(0));
    const timers = trackTimers();
    notifier.handle(fakeEvent(1), fakeState);
    for (let i = 0; i < 100 && notifier.stats().inFlight === 0; i++) await turn();
    expect(notifier.stats()).toMatchObject({ requests: 1, inFlight: 1, queued: 0 });
    expect(timers.pending()).toBeGreaterThanOrEqual(1); // the request timeout
    const report = await notifier.shutdown(0);
    expect(report.undelivered.map((u) => u.seq)).toEqual([1]);
    expect(failures.map((f) => [f.reason, f.events.map((e) => e.seq)])).toEqual([['closed', [1]]]);
    expect(endpoint.requests).toEqual([]);
    expect(await timers.settled()).toBe(0);
  });

  it('arms no timer for the events handed in after close (dropped, reported, logged at most every 10 s)', async () => {
    const { notifier, failures, logs } = await setup();
    await notifier.close(0);
    const timers = trackTimers();
    for (let seq = 1; seq <= 3; seq++) notifier.handle(fakeEvent(seq), fakeState);
    expect(failures.map((f) => [f.reason, f.errorMessage, f.events.map((e) => e.seq)])).toEqual([1, 2, 3].map((seq) => ['dropped', 'the notifier is closed', [seq]]));
    expect(logs.filter((c) => c.msg === 'eventbridge notifier dropped events').map((c) => c.obj.dropped)).toEqual([1]);
    expect(notifier.stats()).toMatchObject({ dropped: 3, queued: 0, inFlight: 0 });
    expect(await timers.settled()).toBe(0);
  });
});

describe('drop-oldest', () => {
  it('drops the oldest waiting events, reports each, and sends the newest, in order', async () => {
    const { endpoint, notifier, failures, logs } = await setup({ maxQueue: 3, maxConcurrentRequests: 1 }, { hold: ({ index }) => index === 0 });
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(1); // seq 1 in flight: the only slot is taken
    for (let seq = 2; seq <= 8; seq++) notifier.handle(fakeEvent(seq), fakeState);
    expect(notifier.stats()).toMatchObject({ queued: 3, inFlight: 1, dropped: 4 });
    expect(failures.map((f) => [f.reason, f.errorMessage, f.events.map((e) => e.seq)])).toEqual([2, 3, 4, 5].map((seq) => ['dropped', 'queue full', [seq]]));
    const drained = notifier.drain(5000);
    endpoint.release();
    expect(await drained).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests.map(seqsIn)).toEqual([[1], [6, 7, 8]]);
    expect(notifier.stats()).toMatchObject({ sent: 4, dropped: 4, failed: 0, queued: 0, inFlight: 0 });
    // The logger hears of every drop by close at the latest (at most a warning every 10 s).
    await notifier.close();
    const warned = logs.filter((c) => c.msg === 'eventbridge notifier dropped events');
    expect(warned.reduce((n, c) => n + (c.obj.dropped as number), 0)).toBe(4);
    expect(warned.at(-1)!.obj).toMatchObject({ totalDropped: 4, policy: 'drop-oldest', why: 'queue full' });
  });

  // The request of [1, 2] is held (whichever of the two arrives first) and answered after [3, 4]'s:
  // failed whole (500), or with every entry throttled.
  it.each([
    ['retry', 'request failed', { failRequest: ({ index }: { index: number }) => (index < 2 ? { status: 500, errorType: 'InternalException' } : undefined) }],
    ['throttled entry', 'answer came', { failEntry: (_e: unknown, { requestIndex }: { requestIndex: number }) => (requestIndex < 2 ? 'ThrottlingException' : undefined) }],
  ] as const)('drops the oldest %s first, in the order handle() took them, whichever %s first', async (_what, _first, failure) => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999); // long backoffs: the retries stay queued
    const { endpoint, notifier, failures } = await setup(
      { maxQueue: 4, maxBatchEntries: 2, maxConcurrentRequests: 2, lingerMs: 0, retry: { baseDelayMs: 60_000, maxDelayMs: 60_000 } },
      { hold: ({ index, body }) => index < 2 && firstSeq(body) === 1, ...failure },
    );
    for (let seq = 1; seq <= 4; seq++) notifier.handle(fakeEvent(seq), fakeState);
    await endpoint.waitForRequests(2); // [1, 2] held, [3, 4] answered at once
    await vi.waitFor(() => expect(notifier.stats()).toMatchObject({ retried: 2, inFlight: 2 }));
    expect(endpoint.release()).toBe(1); // [1, 2] is answered after [3, 4]
    await vi.waitFor(() => expect(notifier.stats()).toMatchObject({ retried: 4, inFlight: 0, queued: 4 }));
    notifier.handle(fakeEvent(5), fakeState);
    notifier.handle(fakeEvent(6), fakeState);
    expect(failures.map((f) => [f.reason, f.events.map((e) => e.seq)])).toEqual([
      ['dropped', [1]],
      ['dropped', [2]],
    ]);
    const report = await notifier.shutdown(0);
    expect(report.undelivered.map((u) => u.seq)).toEqual([3, 4, 5, 6]);
  });

  it('settles a flush at once when the events it waits for are dropped for newer ones', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999); // a long pause after the failed request: seq 1 stays queued
    const { endpoint, notifier, failures } = await setup(
      { maxQueue: 1, maxConcurrentRequests: 1, retry: { baseDelayMs: 60_000, maxDelayMs: 60_000 } },
      { failRequest: ({ index }) => (index === 0 ? { status: 500, errorType: 'InternalException' } : undefined) },
    );
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(1);
    await vi.waitFor(() => expect(notifier.stats()).toMatchObject({ retried: 1, inFlight: 0, queued: 1 }));
    const drained = notifier.drain(5000); // waits for seq 1
    notifier.handle(fakeEvent(2), fakeState); // the queue is full: seq 1 is dropped for it
    expect(failures.map((f) => [f.reason, f.events.map((e) => e.seq)])).toEqual([['dropped', [1]]]);
    // Given up on: nothing is left of what the flush waits for (it waited out the pause, and reported itself incomplete).
    expect(await drained).toEqual({ complete: true, undelivered: [] });
  });

  it('logs the count of a burst of drops when its 10 s are up, even if no other drop comes', async () => {
    const { endpoint, notifier, logs } = await setup({ maxQueue: 1, maxConcurrentRequests: 1, requestTimeoutMs: 3_600_000 }, { hold: () => true });
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(1);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    for (let seq = 2; seq <= 6; seq++) notifier.handle(fakeEvent(seq), fakeState); // drops 2, 3, 4, 5
    const dropLogs = () => logs.filter((c) => c.msg === 'eventbridge notifier dropped events').map((c) => c.obj.dropped);
    expect(dropLogs()).toEqual([1]); // the first at once, the rest wait for the interval
    vi.advanceTimersByTime(10_000);
    expect(dropLogs()).toEqual([1, 3]);
    vi.useRealTimers();
    expect(notifier.stats()).toMatchObject({ dropped: 4 });
  });
});

describe('the drop warning', () => {
  it('logs the drops that follow a warning when its 10 s are up, not 10 s after the first of them', async () => {
    const { endpoint, notifier, logs } = await setup({ maxQueue: 1, maxConcurrentRequests: 1, requestTimeoutMs: 3_600_000 }, { hold: () => true });
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(1);
    // performance too: the notifier's deadlines are on the monotonic clock.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
    const dropLogs = () => logs.filter((c) => c.msg === 'eventbridge notifier dropped events').map((c) => c.obj.dropped);
    notifier.handle(fakeEvent(2), fakeState); // queued: the queue is full
    notifier.handle(fakeEvent(3), fakeState); // drops 2: warned at once
    expect(dropLogs()).toEqual([1]);
    vi.advanceTimersByTime(6_000);
    notifier.handle(fakeEvent(4), fakeState); // drops 3, within the 10 s of the warning
    vi.advanceTimersByTime(3_999);
    expect(dropLogs()).toEqual([1]);
    vi.advanceTimersByTime(1); // the 10 s since the warning are up
    expect(dropLogs()).toEqual([1, 1]);
    vi.useRealTimers();
  });
});


describe('the retry decision on SDK errors', () => {
  /** Marks the errors of this name `$retryable`, as the SDK does for an error modeled @retryable. */
  const markRetryable = (client: EventBridgeClient, name: string, trait: object) =>
    client.middlewareStack.add(
      (next) => async (args) => {
        try {
          return await next(args);
        } catch (err) {
          if ((err as Error).name === name) Object.assign(err as object, { $retryable: trait });
          throw err;
        }
      },
      { step: 'initialize', name: 'markRetryable' },
    );

  it.each([
    ['a modeled retryable error', {}],
    ['a modeled retryable throttling error', { throttling: true }],
  ])('retries %s ($retryable) whatever its status; gives up the same error unmarked', async (_label, trait) => {
    const answers = [{ status: 400, errorType: 'ConcurrentModificationException' }, undefined, { status: 400, errorType: 'OtherException' }];
    const { endpoint, client, notifier, failures } = await setup({}, { failRequest: ({ index }) => answers[index] });
    markRetryable(client, 'ConcurrentModificationException', trait);
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests.map(seqsIn)).toEqual([[1], [1]]);
    expect(failures).toEqual([]);
    notifier.handle(fakeEvent(2), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests.map(seqsIn)).toEqual([[1], [1], [2]]);
    expect(failures.map((f) => [f.reason, f.errorCode, f.events.map((e) => e.seq)])).toEqual([['rejected', 'OtherException', [2]]]);
    expect(notifier.stats()).toMatchObject({ sent: 1, retried: 1, failed: 1, queued: 0, inFlight: 0 });
  });

  it.each(['LimitExceededException', 'BandwidthLimitExceeded', 'PriorRequestNotComplete', 'TransactionInProgressException', 'RequestTimeoutException', 'RequestTimeout'])(
    'retries %s, which the SDK retries as throttling or transient, under a 400',
    async (errorType) => {
      const { endpoint, notifier, failures } = await setup({}, { failRequest: ({ index }) => (index === 0 ? { status: 400, errorType } : undefined) });
      notifier.handle(fakeEvent(1), fakeState);
      expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
      expect(failures).toEqual([]);
      expect(endpoint.requests.map(seqsIn)).toEqual([[1], [1]]);
      expect(notifier.stats()).toMatchObject({ sent: 1, retried: 1, failed: 0 });
    },
  );

  it('retries a request the SDK failed for clock skew once it has corrected its clock', async () => {
    // The server's clock is 30 min ahead of ours: the first request is refused (Signature expired),
    // the SDK corrects its offset from the Date header and says so; the next request is signed right.
    const { endpoint, notifier, failures } = await setup(
      {},
      { failRequest: ({ index }) => (index === 0 ? { status: 400, errorType: 'InvalidSignatureException', message: 'Signature expired: the request is more than 5 minutes old' } : undefined) },
      { date: () => new Date(Date.now() + 30 * 60_000).toUTCString() },
    );
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(failures).toEqual([]);
    expect(endpoint.requests.map(seqsIn)).toEqual([[1], [1]]);
    expect(endpoint.entries.map((e) => e.detail!.seq)).toEqual([1]);
  });

  it('gives up at once a permanent refusal on a host whose clock the SDK has corrected by minutes (the SDK flags every such error clockSkewCorrected)', async () => {
    // The server's clock is 30 min ahead: the first answer corrects the client's offset. The SDK then
    // re-measures the offset from every error's Date header (to the second) and flags each error whose
    // offset moved by a millisecond: an unknown bus must still be rejected, not retried maxAttempts times.
    const { endpoint, client, notifier, failures } = await setup(
      {},
      { failRequest: ({ index }) => (index >= 1 ? { status: 400, errorType: 'ResourceNotFoundException', message: 'Event bus bus does not exist.' } : undefined) },
      { date: () => new Date(Date.now() + 30 * 60_000).toUTCString() },
    );
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(client.config.systemClockOffset).toBeGreaterThan(29 * 60_000);
    notifier.handle(fakeEvent(2), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests.map(seqsIn)).toEqual([[1], [2]]);
    expect(failures.map((f) => [f.reason, f.errorCode, f.events.map((e) => e.seq)])).toEqual([['rejected', 'ResourceNotFoundException', [2]]]);
    expect(notifier.stats()).toMatchObject({ sent: 1, failed: 1, retried: 0 });
  });

  it('retries every request signed before the clock correction, the concurrent ones too', async () => {
    // Two requests in flight, both signed with the skewed clock: the first refusal corrects the
    // offset, the second is refused for the same skew and must be retried as well.
    const { endpoint, notifier, failures } = await setup(
      { maxBatchEntries: 1, maxConcurrentRequests: 2, lingerMs: 0 },
      {
        hold: ({ index }) => index < 2,
        failRequest: ({ index }) => (index < 2 ? { status: 400, errorType: 'InvalidSignatureException', message: 'Signature expired: the request is more than 5 minutes old' } : undefined),
      },
      { date: () => new Date(Date.now() + 30 * 60_000).toUTCString() },
    );
    notifier.handle(fakeEvent(1), fakeState);
    notifier.handle(fakeEvent(2), fakeState);
    await endpoint.waitForRequests(2);
    const drained = notifier.drain(5000);
    expect(endpoint.release()).toBe(2);
    expect(await drained).toEqual({ complete: true, undelivered: [] });
    expect(failures).toEqual([]);
    expect(endpoint.entries.map((e) => e.detail!.seq as number).sort((a, b) => a - b)).toEqual([1, 2]);
    expect(notifier.stats()).toMatchObject({ sent: 2, retried: 2, failed: 0 });
  });
});

// The defaults the README's option table gives, which no case used to pin: a notifier made with a
// different one passed every test.
describe('the documented defaults', () => {
  it('sends at most 4 requests at once (maxConcurrentRequests)', async () => {
    const { endpoint, notifier } = await setup({ requestTimeoutMs: 3_600_000 }, { hold: () => true });
    for (let seq = 1; seq <= 50; seq++) notifier.handle(fakeEvent(seq), fakeState); // 5 full batches
    await endpoint.waitForRequests(4);
    await turn();
    expect(notifier.stats()).toMatchObject({ requests: 4, inFlight: 40, queued: 10 });
  });

  it('holds a partial batch 5 ms while a request is in flight (lingerMs)', async () => {
    const { endpoint, notifier } = await setup({ requestTimeoutMs: 3_600_000 }, { hold: ({ index }) => index === 0 });
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(1); // held: in flight
    // performance too: the linger's deadline is on the monotonic clock.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    notifier.handle(fakeEvent(2), fakeState);
    await turn();
    expect(notifier.stats()).toMatchObject({ requests: 1, queued: 1 });
    vi.advanceTimersByTime(4);
    expect(notifier.stats()).toMatchObject({ requests: 1, queued: 1 });
    vi.advanceTimersByTime(1);
    expect(notifier.stats()).toMatchObject({ requests: 2, queued: 0 });
  });

  it('aborts a request without an answer after 10 s, and sends its entries again (requestTimeoutMs)', async () => {
    const { endpoint, notifier } = await setup({}, { hold: ({ index }) => index === 0 });
    // Before the send: the request's timer is made when it goes.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(1); // held: no answer
    await vi.advanceTimersByTimeAsync(9_999);
    expect(notifier.stats()).toMatchObject({ requests: 1, inFlight: 1, retried: 0 });
    await vi.advanceTimersByTimeAsync(1);
    // The abort ends the request over the socket: its rejection comes in from the event loop.
    for (let i = 0; i < 10_000 && notifier.stats().retried === 0; i++) await turn();
    expect(notifier.stats()).toMatchObject({ retried: 1 });
  });

  it('waits 10 s in drain() and shutdown() given no timeout (flushTimeoutMs)', async () => {
    const { endpoint, notifier } = await setup({ requestTimeoutMs: 3_600_000 }, { hold: () => true });
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(1); // held: in flight for good
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let drained: FlushReport | undefined;
    void notifier.drain().then((report) => (drained = report));
    await vi.advanceTimersByTimeAsync(9_999);
    expect(drained).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(drained).toEqual({ complete: false, undelivered: [expect.objectContaining({ seq: 1 })] });
    let closed = false;
    void notifier.shutdown().then(() => (closed = true));
    await vi.advanceTimersByTimeAsync(9_999);
    expect(closed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(closed).toBe(true);
  });

  it('gives an entry up after 8 attempts (retry.maxAttempts)', async () => {
    // setup() sets short backoffs, not the number of attempts.
    const { endpoint, notifier, failures } = await setup({}, { failEntry: () => 'ThrottlingException' });
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(30_000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests).toHaveLength(8);
    expect(failures).toEqual([expect.objectContaining({ reason: 'retries_exhausted', errorCode: 'ThrottlingException' })]);
  });

  it('backs off from 100 ms up to 20 s, and retries ThrottlingException and InternalFailure entries (DEFAULT_RETRY)', () => {
    expect(DEFAULT_RETRY).toEqual({ maxAttempts: 8, baseDelayMs: 100, maxDelayMs: 20_000, retryableEntryCodes: ['ThrottlingException', 'InternalFailure'] });
  });
});
