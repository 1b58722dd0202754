// Retry decisions, timeouts, backoff and the limits of a request of retries, over the real SDK client
// and the local endpoint. Found by a review on 2026-11-29 (breaking the notifier's src in each of
// these ways, every other test of the package still passed): a 502/504 or a 429 under another name
// not retried, requestTimeoutMs not applied, no backoff or pause, more than 10 entries or
// maxBatchBytes in a request of retries, a batch full by bytes waiting lingerMs. The backoff cases
// check that a wait happened (a lower bound the timers enforce), not how fast anything was.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { localClientConfig, startEventBridgeEndpoint, type EventBridgeEndpoint, type EventBridgeEndpointOptions, type RecordedRequest } from '../../../tools/test-utils/src/eventbridge-endpoint.js';
import { EventBridgeNotifier, entrySize, type DeliveryFailure, type EventBridgeNotifierOptions } from '../src/index.js';
import { fakeEvent, fakeState } from './fixtures.js';
import { localClient, recordingLogger } from './helpers.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function setup(options: Partial<EventBridgeNotifierOptions> = {}, endpointOptions: EventBridgeEndpointOptions = {}) {
  const endpoint: EventBridgeEndpoint = await startEventBridgeEndpoint(endpointOptions);
  cleanups.push(() => endpoint.close());
  const client = localClient(endpoint.url);
  cleanups.push(async () => client.destroy());
  const failures: DeliveryFailure[] = [];
  const notifier = new EventBridgeNotifier({ busName: 'bus', client, retry: { baseDelayMs: 1, maxDelayMs: 5 }, onError: (f) => failures.push(f), ...options });
  cleanups.push(() => notifier.close(0));
  return { endpoint, notifier, failures };
}
const seqsIn = (r: RecordedRequest): number[] => r.entries.map((e) => JSON.parse(e.Detail!).seq as number);

describe('whole-request errors', () => {
  it.each([
    ['a 502 whose error type is not a known throttling name', { status: 502, errorType: 'BadGateway' }],
    ['a 504 without an AWS error type of its own', { status: 504, errorType: 'GatewayTimeout' }],
    ['a 429 under another name', { status: 429, errorType: 'RateExceeded' }],
    ['a 500 whose error type is not a known server-failure name', { status: 500, errorType: 'BackendError' }],
  ])('retries %s', async (_label, failure) => {
    const { endpoint, notifier, failures } = await setup({}, { failRequest: ({ index }) => (index === 0 ? failure : undefined) });
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(failures).toEqual([]);
    expect(endpoint.requests.map(seqsIn)).toEqual([[1], [1]]);
    expect(notifier.stats()).toMatchObject({ sent: 1, retried: 1, failed: 0 });
  });
});

describe('the entries of a failed request', () => {
  it.each([
    ['a 500', { status: 500, errorType: 'InternalFailure' }],
    ['a throttled request', { status: 400, errorType: 'ThrottlingException' }],
  ])('after %s, go again together, in their order, ahead of newer events', async (_label, failure) => {
    // Each entry drew its own jittered delay: the 10 entries of one throttled request came back as
    // up to 10 requests (more load on an endpoint that asked for less), in a random order, after
    // events handled later (an upgrade.completed before the task.completed it follows). Each draw
    // of the jitter gives another value here, so that entries drawing their own would spread.
    let draw = 0;
    vi.spyOn(Math, 'random').mockImplementation(() => (draw = draw < 0.9 ? draw + 0.09 : 0.01));
    const late: { notifier?: EventBridgeNotifier } = {};
    const { endpoint, failures, notifier } = await setup(
      // The default backoff (the setup's is of a few ms, which hid the spread).
      { maxConcurrentRequests: 1, retry: { baseDelayMs: 100, maxDelayMs: 20_000 } },
      {
        failRequest: ({ index }) => {
          if (index !== 0) return undefined;
          // Newer events, handled while the first request is in flight.
          for (let seq = 11; seq <= 15; seq++) late.notifier!.handle(fakeEvent(seq), fakeState);
          return failure;
        },
      },
    );
    late.notifier = notifier;
    for (let seq = 1; seq <= 10; seq++) notifier.handle(fakeEvent(seq), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    // The newer events too (handled after the first drain was called, which does not wait for them).
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(failures).toEqual([]);
    const first = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(endpoint.requests.map(seqsIn)).toEqual([first, first, [11, 12, 13, 14, 15]]);
  });
});

describe('the throttled entries of one answer', () => {
  it('go again together, in their order', async () => {
    let draw = 0;
    vi.spyOn(Math, 'random').mockImplementation(() => (draw = draw < 0.9 ? draw + 0.09 : 0.01));
    const { endpoint, notifier, failures } = await setup(
      { maxConcurrentRequests: 1, retry: { baseDelayMs: 100, maxDelayMs: 20_000 } },
      { failEntry: (_e, { requestIndex, positionInRequest }) => (requestIndex === 0 && positionInRequest % 3 === 2 ? 'ThrottlingException' : undefined) },
    );
    for (let seq = 1; seq <= 10; seq++) notifier.handle(fakeEvent(seq), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(failures).toEqual([]);
    expect(endpoint.requests.map(seqsIn)).toEqual([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [3, 6, 9]]);
  });
});

describe('requestTimeoutMs', () => {
  it('aborts a request that gets no answer, and sends its entries again', async () => {
    const { endpoint, notifier, failures } = await setup({ requestTimeoutMs: 200 }, { hold: ({ index }) => index === 0 });
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(10_000)).toEqual({ complete: true, undelivered: [] });
    expect(failures).toEqual([]);
    // The first request the endpoint got was held, then aborted; the entry went again and was delivered.
    // (On a loaded machine an attempt may be aborted before it reaches the endpoint: the notifier counts
    // its attempts, the endpoint only those it received.)
    expect(endpoint.requests[0]).toMatchObject({ held: true });
    expect(endpoint.requests.map(seqsIn).every((seqs) => seqs.length === 1 && seqs[0] === 1)).toBe(true);
    expect(endpoint.requests.at(-1)).toMatchObject({ status: 200 });
    expect(notifier.stats().requests).toBeGreaterThanOrEqual(endpoint.requests.length);
    expect(endpoint.requests.length).toBeGreaterThanOrEqual(2);
    expect(endpoint.entries.map((e) => e.detail!.seq)).toEqual([1]);
  });

  it('names the timeout when it gives an entry up after requests that got no answer, rather than the abort it caused', async () => {
    // Reported as errorCode "AbortError", "Request aborted" (in onError and in the retry warnings):
    // nothing said the requests had timed out, nor which setting to look at.
    const { logger, calls } = recordingLogger();
    const { endpoint, notifier, failures } = await setup({ requestTimeoutMs: 100, retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 }, logger }, { hold: () => true });
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    // Two attempts (the endpoint may not have received the first when the machine is loaded: it is aborted after 100 ms).
    expect(notifier.stats().requests).toBe(2);
    expect(endpoint.requests.length).toBeLessThanOrEqual(2);
    expect(failures).toEqual([{ reason: 'retries_exhausted', errorCode: 'RequestTimeout', errorMessage: expect.stringMatching(/requestTimeoutMs \(100 ms\)/), events: [expect.objectContaining({ seq: 1 })] }]);
    const retrying = calls.filter((c) => c.msg === 'PutEvents request failed; retrying');
    expect(retrying.map((c) => c.obj.code)).toEqual(['RequestTimeout', 'RequestTimeout']);
    // The abort itself is still in the log line, for whoever wants the SDK's error.
    expect((retrying[0]!.obj.err as Error).name).toBe('AbortError');
  });

  it('names only what its abort ended a timeout: an error the request got on its own after requestTimeoutMs keeps its own code', async () => {
    // The client's credentials provider fails after the notifier's timer fired (its own timer is set
    // later, for longer: Node fires it after). Nothing was sent, so the abort ended nothing; the error
    // was reported as RequestTimeout, "the request was aborted", hiding that credentials could not be
    // loaded (and pointing at requestTimeoutMs, which would not help).
    const endpoint = await startEventBridgeEndpoint();
    cleanups.push(() => endpoint.close());
    const credentials = (): Promise<never> =>
      new Promise((_resolve, reject) => setTimeout(() => reject(Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' })), 100));
    const client = new EventBridgeClient({ ...localClientConfig(endpoint.url), credentials, maxAttempts: 1 });
    cleanups.push(async () => client.destroy());
    const failures: DeliveryFailure[] = [];
    const notifier = new EventBridgeNotifier({ busName: 'bus', client, requestTimeoutMs: 50, retry: { maxAttempts: 1 }, onError: (f) => failures.push(f) });
    cleanups.push(() => notifier.close(0));
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests).toHaveLength(0);
    expect(failures).toEqual([{ reason: 'retries_exhausted', errorCode: 'CredentialsProviderError', errorMessage: 'Could not load credentials from any providers', events: [expect.objectContaining({ seq: 1 })] }]);

    // What the abort did end is still named so: an answer whose body stalled until requestTimeoutMs.
    const stalled = await startCutOffEndpoint('hang');
    const stalledClient = localClient(stalled.url);
    cleanups.push(async () => stalledClient.destroy());
    const stalledFailures: DeliveryFailure[] = [];
    const second = new EventBridgeNotifier({ busName: 'bus', client: stalledClient, requestTimeoutMs: 100, retry: { maxAttempts: 1 }, onError: (f) => stalledFailures.push(f) });
    cleanups.push(() => second.close(0));
    second.handle(fakeEvent(1), fakeState);
    expect(await second.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(stalledFailures.map((f) => f.errorCode)).toEqual(['RequestTimeout']);
  });
});

describe('credentials loaded by the SDK (its default chain)', () => {
  /** Sets environment variables (undefined: unset) until the end of the test. */
  const setEnvironment = (values: Record<string, string | undefined>): void => {
    const saved = Object.fromEntries(Object.keys(values).map((key) => [key, process.env[key]]));
    const set = (entries: Record<string, string | undefined>): void => {
      for (const [key, value] of Object.entries(entries)) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    };
    set(values);
    cleanups.push(async () => set(saved));
  };
  /** An environment in which the SDK's default chain finds no credentials (no metadata endpoint either); returns a scratch directory. */
  const credentialsFreeEnvironment = async (): Promise<string> => {
    const dir = await mkdtemp(join(tmpdir(), 'progress-eb-credentials-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    setEnvironment({
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: join(dir, 'config'),
      AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'),
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
      AWS_SESSION_TOKEN: undefined,
      AWS_PROFILE: undefined,
      AWS_WEB_IDENTITY_TOKEN_FILE: undefined,
      AWS_ROLE_ARN: undefined,
      AWS_CONTAINER_CREDENTIALS_FULL_URI: undefined,
      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: undefined,
    });
    return dir;
  };

  it('a request that does not end when aborted is given up on as a timeout: the SDK aborts only the HTTP exchange, not credentials still loading (IRSA with an STS that never answers)', async () => {
    // The SDK's default credentials chain, as on EKS with IAM roles for service accounts: a web
    // identity token exchanged at STS, here a local STS that takes the request and never answers (the
    // SDK's own STS client sets no timeout). The abort of requestTimeoutMs ends nothing while the
    // credentials load: the request stayed in flight for good, its entry neither retried nor
    // reported, its request slot taken, every flush waiting out its timeout (and with every slot so
    // taken, nothing sent again until close).
    const sts = createServer((req) => req.resume());
    await new Promise<void>((resolve) => sts.listen(0, '127.0.0.1', resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          sts.closeAllConnections();
          sts.close(() => resolve());
        }),
    );
    const dir = await credentialsFreeEnvironment();
    await writeFile(join(dir, 'token'), 'web-identity-token');
    setEnvironment({
      AWS_WEB_IDENTITY_TOKEN_FILE: join(dir, 'token'),
      AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/upgrade-agent',
      AWS_ENDPOINT_URL_STS: `http://127.0.0.1:${(sts.address() as AddressInfo).port}`,
    });
    const endpoint = await startEventBridgeEndpoint();
    cleanups.push(() => endpoint.close());
    const failures: DeliveryFailure[] = [];
    const notifier = new EventBridgeNotifier({
      busName: 'bus',
      region: 'us-east-1',
      clientConfig: { endpoint: endpoint.url },
      requestTimeoutMs: 100,
      retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 },
      onError: (f) => failures.push(f),
    });
    cleanups.push(() => notifier.close(0));
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(15_000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests).toHaveLength(0);
    // Given up on as long as requestTimeoutMs after the abort, but at least 1 s.
    expect(failures).toEqual([{ reason: 'retries_exhausted', errorCode: 'RequestTimeout', errorMessage: expect.stringMatching(/requestTimeoutMs \(100 ms\).*given up on 1000 ms later/), events: [expect.objectContaining({ seq: 1 })] }]);
    expect(notifier.stats()).toMatchObject({ requests: 2, retried: 1, failed: 1, inFlight: 0, queued: 0 });
  });

  it('with no credentials at all, retries as a network error and reports the SDK\'s CredentialsProviderError, as the README says', async () => {
    await credentialsFreeEnvironment();
    const endpoint = await startEventBridgeEndpoint();
    cleanups.push(() => endpoint.close());
    const failures: DeliveryFailure[] = [];
    const notifier = new EventBridgeNotifier({ busName: 'bus', region: 'us-east-1', clientConfig: { endpoint: endpoint.url }, retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 }, onError: (f) => failures.push(f) });
    cleanups.push(() => notifier.close(0));
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(10_000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests).toHaveLength(0);
    expect(failures).toEqual([{ reason: 'retries_exhausted', errorCode: 'CredentialsProviderError', errorMessage: expect.stringMatching(/Could not load credentials/), events: [expect.objectContaining({ seq: 1 })] }]);
    expect(notifier.stats()).toMatchObject({ requests: 2, retried: 1, failed: 1 });
  });
});

/**
 * A PutEvents endpoint whose first answer is cut off: a 200 with its headers and the start of its
 * body, then nothing more (`hang`) or a dropped connection (`reset`). The later requests get a normal
 * answer (one EventId per entry). What a proxy, a load balancer or a stalled network does to an answer.
 */
async function startCutOffEndpoint(mode: 'hang' | 'reset'): Promise<{ url: string; requests: string[][] }> {
  const requests: string[][] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const entries = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { Entries: Array<{ Detail: string }> }).Entries;
      requests.push(entries.map((e) => (JSON.parse(e.Detail) as { event_id: string }).event_id));
      const body = JSON.stringify({ FailedEntryCount: 0, Entries: entries.map((_e, i) => ({ EventId: `id-${requests.length}-${i}` })) });
      if (requests.length > 1) {
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(body);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1', 'content-length': String(body.length) });
      res.write(body.slice(0, 10));
      if (mode === 'reset') setTimeout(() => res.socket?.destroy(), 20);
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

describe('an answer cut off after its headers (200)', () => {
  it.each([
    ['stalls until requestTimeoutMs', 'hang'],
    ['loses its connection', 'reset'],
  ] as const)('that %s is retried, not given up as rejected', async (_label, mode) => {
    const endpoint = await startCutOffEndpoint(mode);
    const client = localClient(endpoint.url);
    cleanups.push(async () => client.destroy());
    const failures: DeliveryFailure[] = [];
    const notifier = new EventBridgeNotifier({ busName: 'bus', client, requestTimeoutMs: 300, retry: { baseDelayMs: 1, maxDelayMs: 5 }, onError: (f) => failures.push(f) });
    cleanups.push(() => notifier.close(0));
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(failures).toEqual([]);
    expect(endpoint.requests).toEqual([[fakeEvent(1).eventId], [fakeEvent(1).eventId]]);
    expect(notifier.stats()).toMatchObject({ sent: 1, retried: 1, failed: 0 });
  });

  it('that loses its connection is reported with the network error code (ECONNRESET) when given up, not as a plain "Error"', async () => {
    const endpoint = await startCutOffEndpoint('reset');
    const client = localClient(endpoint.url);
    cleanups.push(async () => client.destroy());
    const failures: DeliveryFailure[] = [];
    const notifier = new EventBridgeNotifier({ busName: 'bus', client, retry: { maxAttempts: 1 }, onError: (f) => failures.push(f) });
    cleanups.push(() => notifier.close(0));
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(failures).toEqual([{ reason: 'retries_exhausted', errorCode: 'ECONNRESET', errorMessage: expect.any(String), events: [expect.objectContaining({ seq: 1 })] }]);
  });
});

describe('backoff', () => {
  it('waits its backoff before sending a throttled entry again', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    const { endpoint, notifier } = await setup({ retry: { baseDelayMs: 300, maxDelayMs: 300 } }, { failEntry: (_e, { requestIndex }) => (requestIndex === 0 ? 'ThrottlingException' : undefined) });
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    const [first, second] = endpoint.requests;
    expect(second!.receivedAt - first!.answeredAt!).toBeGreaterThanOrEqual(250);
  });

  it('keeps a throttled entry back for its backoff when other events go meanwhile, and sends them after lingerMs, not after that backoff', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999); // a backoff of about a minute for seq 1
    const { endpoint, notifier } = await setup(
      { lingerMs: 50, retry: { baseDelayMs: 60_000, maxDelayMs: 60_000 } },
      { hold: ({ index }) => index === 1, failEntry: (_e, { requestIndex }) => (requestIndex === 0 ? 'ThrottlingException' : undefined) },
    );
    notifier.handle(fakeEvent(1), fakeState);
    await vi.waitFor(() => expect(notifier.stats()).toMatchObject({ retried: 1, inFlight: 0 }));
    notifier.handle(fakeEvent(2), fakeState);
    await endpoint.waitForRequests(2, 5000); // held: in flight
    notifier.handle(fakeEvent(3), fakeState); // lingers (lingerMs) behind the request in flight
    await endpoint.waitForRequests(3, 5000);
    expect(endpoint.requests.map(seqsIn)).toEqual([[1], [2], [3]]);
    expect(notifier.stats()).toMatchObject({ queued: 1, retried: 1 }); // seq 1, waiting out its backoff
  });

  it('grows the backoff of a throttled entry with the attempts it has made', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    // Throttled three times: waits of up to 200, 400 and 800 ms (baseDelayMs x 2^(n-1)).
    const { endpoint, notifier } = await setup({ retry: { baseDelayMs: 200, maxDelayMs: 10_000 } }, { failEntry: (_e, { requestIndex }) => (requestIndex < 3 ? 'ThrottlingException' : undefined) });
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(10_000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests.map(seqsIn)).toEqual([[1], [1], [1], [1]]);
    const [, , third, fourth] = endpoint.requests;
    // A lower bound the timers enforce: after the third attempt, 800 ms (200 had it not grown).
    expect(fourth!.receivedAt - third!.answeredAt!).toBeGreaterThanOrEqual(700);
  });

  it('grows the backoff of the throttled entries of one answer with the attempts of the most tried of them', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    // Seq 1, throttled once, waits its backoff; seq 2, handled meanwhile, lingers (lingerMs) and goes
    // with it. Both throttled again: seq 1 has made two attempts, seq 2 one. They share the backoff
    // of the most tried, 600 ms (300 by seq 2's single attempt).
    const { endpoint, notifier } = await setup({ lingerMs: 10_000, retry: { baseDelayMs: 300, maxDelayMs: 10_000 } }, { failEntry: (_e, { requestIndex }) => (requestIndex < 2 ? 'ThrottlingException' : undefined) });
    notifier.handle(fakeEvent(1), fakeState);
    await vi.waitFor(() => expect(notifier.stats()).toMatchObject({ retried: 1, inFlight: 0 }));
    notifier.handle(fakeEvent(2), fakeState);
    await endpoint.waitForRequests(3, 5000);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests.map(seqsIn)).toEqual([[1], [1, 2], [1, 2]]);
    const [, second, third] = endpoint.requests;
    // A lower bound the timers enforce.
    expect(third!.receivedAt - second!.answeredAt!).toBeGreaterThanOrEqual(500);
  });

  it('grows the pause with consecutive failed requests only: an answer in between starts the count again', async () => {
    const { logger, calls } = recordingLogger();
    const { notifier, failures } = await setup({ logger, maxConcurrentRequests: 1 }, { failRequest: ({ index }) => (index === 0 || index === 2 ? { status: 500, errorType: 'InternalException' } : undefined) });
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    notifier.handle(fakeEvent(2), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(failures).toEqual([]);
    const failed = calls.filter((c) => c.msg === 'PutEvents request failed; retrying');
    expect(failed.map((c) => c.obj.failures)).toEqual([1, 1]);
  });

  it("grows the pause of a failed request with its entries' attempts when other requests succeeded meanwhile", async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    // Seq 1 fails twice; between its failures seq 2 is delivered, which ends the run of failed requests.
    const { endpoint, notifier } = await setup(
      { maxConcurrentRequests: 2, retry: { baseDelayMs: 300, maxDelayMs: 10_000 } },
      { hold: ({ index }) => index === 1, failRequest: ({ index }) => (index < 2 ? { status: 500, errorType: 'InternalException' } : undefined) },
    );
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(2); // its second attempt is held
    notifier.handle(fakeEvent(2), fakeState);
    await endpoint.waitForEntries(1);
    endpoint.release();
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests.map(seqsIn)).toEqual([[1], [1], [2], [1]]);
    const [, second, , last] = endpoint.requests;
    // A lower bound the timers enforce: seq 1 had made two attempts, 600 ms (300 as a first failure).
    expect(last!.receivedAt - second!.answeredAt!).toBeGreaterThanOrEqual(500);
  });

  it('keeps the longer pause when a request fails with a shorter backoff during it', async () => {
    let draws = 0;
    vi.spyOn(Math, 'random').mockImplementation(() => (draws++ === 0 ? 0.999 : 0.001));
    // Seq 2 fails first (a pause of about 2 s), then seq 1, whose backoff draws about 0 ms.
    const { endpoint, notifier } = await setup(
      { maxConcurrentRequests: 2, retry: { baseDelayMs: 2000, maxDelayMs: 10_000 } },
      { hold: ({ index }) => index === 0, failRequest: ({ index }) => (index < 2 ? { status: 500, errorType: 'InternalException' } : undefined) },
    );
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(1); // seq 1 is in flight, held
    notifier.handle(fakeEvent(2), fakeState);
    await vi.waitFor(() => expect(notifier.stats()).toMatchObject({ retried: 1, inFlight: 1 }));
    endpoint.release();
    expect(await notifier.drain(10_000)).toEqual({ complete: true, undelivered: [] });
    // Both wait out the first pause and go again together: the second failure does not cut it short.
    expect(endpoint.requests.map(seqsIn)).toEqual([[1], [2], [1, 2]]);
  });

  it('pauses every send, fresh events included, after a failed request', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    const { endpoint, notifier } = await setup({ lingerMs: 0, retry: { baseDelayMs: 300, maxDelayMs: 300 } }, { failRequest: ({ index }) => (index === 0 ? { status: 500, errorType: 'InternalException' } : undefined) });
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(1);
    await vi.waitFor(() => expect(notifier.stats()).toMatchObject({ retried: 1, inFlight: 0 }));
    notifier.handle(fakeEvent(2), fakeState); // during the pause
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.requests.map(seqsIn)).toEqual([[1], [1, 2]]);
  });
});

describe('a wall clock set back (NTP step, a VM restored from a snapshot)', () => {
  it('does not hold the pause and the backoff of a failed request for as long as the clock went back', async () => {
    // Date.now() goes back an hour right after the failure is handled (when the warning is logged):
    // with deadlines on the wall clock, nothing was sent for an hour.
    const realNow = Date.now.bind(Date);
    let back = 0;
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() - back);
    const logger = { debug() {}, info() {}, error() {}, warn: (_obj: object, msg?: string) => void (msg === 'PutEvents request failed; retrying' && (back = 3_600_000)) };
    const { endpoint, notifier, failures } = await setup({ logger, lingerMs: 0 }, { failRequest: ({ index }) => (index === 0 ? { status: 500, errorType: 'InternalException' } : undefined) });
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(back).toBe(3_600_000);
    expect(failures).toEqual([]);
    expect(endpoint.requests.map(seqsIn)).toEqual([[1], [1]]);
  });
});

describe('retried entries are batched within the limits', () => {
  it('never sends more than maxBatchEntries entries, nor more than maxBatchBytes, in a request of retries', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    // Two requests of 10 in flight at once, held, then both fail (500): their 20 entries wait out the
    // same pause and are all ready together.
    const { endpoint, notifier } = await setup(
      { lingerMs: 0, maxConcurrentRequests: 2, retry: { baseDelayMs: 200, maxDelayMs: 200 } },
      { hold: ({ index }) => index < 2, failRequest: ({ index }) => (index < 2 ? { status: 500, errorType: 'InternalException' } : undefined) },
    );
    for (let seq = 1; seq <= 20; seq++) notifier.handle(fakeEvent(seq), fakeState);
    await endpoint.waitForRequests(2);
    expect(endpoint.release()).toBe(2);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    expect(endpoint.entries).toHaveLength(20);
    expect(Math.max(...endpoint.requests.map((r) => r.entries.length))).toBeLessThanOrEqual(10);
  });

  it('keeps a request of retries within maxBatchBytes', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    const pad = { pad: 'x'.repeat(300) };
    const { endpoint, notifier } = await setup(
      { lingerMs: 0, maxConcurrentRequests: 2, maxBatchBytes: 1000, eventTypes: ['task.progress'], retry: { baseDelayMs: 200, maxDelayMs: 200 } },
      { hold: ({ index }) => index < 2, failRequest: ({ index }) => (index < 2 ? { status: 500, errorType: 'InternalException' } : undefined) },
    );
    for (let seq = 1; seq <= 4; seq++) notifier.handle(fakeEvent(seq, 'task.progress', pad), fakeState);
    await endpoint.waitForRequests(2);
    expect(endpoint.release()).toBe(2);
    expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
    const size = (r: RecordedRequest) => r.entries.reduce((n, e) => n + entrySize({ Source: e.Source, DetailType: e.DetailType, Detail: e.Detail, Resources: e.Resources, Time: new Date(0) }), 0);
    expect(Math.max(...endpoint.requests.map(size))).toBeLessThanOrEqual(1000);
    expect(endpoint.entries).toHaveLength(4);
  });
});

describe('a batch full by bytes', () => {
  it('goes at once while a request is in flight, without waiting lingerMs', async () => {
    const { endpoint, notifier } = await setup({ lingerMs: 60_000, maxBatchBytes: 1000, eventTypes: ['task.started', 'task.progress'] }, { hold: ({ index }) => index === 0 });
    notifier.handle(fakeEvent(1), fakeState);
    await endpoint.waitForRequests(1);
    for (let seq = 2; seq <= 6; seq++) notifier.handle(fakeEvent(seq, 'task.progress', { pad: 'x'.repeat(300) }), fakeState);
    await endpoint.waitForRequests(2, 2000);
    expect(endpoint.requests.length).toBeGreaterThanOrEqual(2);
    endpoint.release();
  });
});
