import { isProgressError } from '@progress/core';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startEventBridgeEndpoint, type EventBridgeEndpoint } from '../../../tools/test-utils/src/eventbridge-endpoint.js';
import { EventBridgeNotifier, type DeliveryFailure } from '../src/index.js';
import { fakeEvent, fakeState } from './fixtures.js';
import { localClient } from './helpers.js';

// The region of the client the notifier makes, when neither an option nor the environment gives one:
// the SDK's own search (the profile of the shared config files, then the EC2 instance metadata), as
// the AWS CLI and boto3 (the old Python module) find it. Each case runs the real SDK client against
// real local endpoints: the EventBridge endpoint, and an instance metadata endpoint over HTTP.

const AWS_VARIABLES = ['AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_EC2_METADATA_DISABLED', 'AWS_EC2_METADATA_SERVICE_ENDPOINT'];
const savedEnvironment = Object.fromEntries(AWS_VARIABLES.map((name) => [name, process.env[name]]));
const folder = mkdtempSync(join(tmpdir(), 'progress-region-'));
let fileNo = 0;
const cleanups: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
  for (const [name, value] of Object.entries(savedEnvironment)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});
afterAll(() => rmSync(folder, { recursive: true, force: true }));

/**
 * An environment with no region in it: no region variable, shared config files of the content given
 * (none: paths that do not exist; a new path each time, as the SDK keeps a file it has read), and the
 * instance metadata at `metadata` (none: switched off).
 */
function awsEnvironment({ config, credentials, profile, metadata }: { config?: string; credentials?: string; profile?: string; metadata?: string } = {}): void {
  for (const name of AWS_VARIABLES) delete process.env[name];
  const file = (content: string | undefined): string => {
    const path = join(folder, `file-${++fileNo}`);
    if (content !== undefined) writeFileSync(path, content);
    return path;
  };
  process.env.AWS_CONFIG_FILE = file(config);
  process.env.AWS_SHARED_CREDENTIALS_FILE = file(credentials);
  if (profile !== undefined) process.env.AWS_PROFILE = profile;
  if (metadata === undefined) process.env.AWS_EC2_METADATA_DISABLED = 'true';
  else process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = metadata;
}

async function eventBridge(): Promise<EventBridgeEndpoint> {
  const endpoint = await startEventBridgeEndpoint();
  cleanups.push(() => endpoint.close());
  return endpoint;
}

/** An EC2 instance metadata endpoint (IMDSv2: a token, then the region with it) that answers `region`. */
async function instanceMetadata(region: string): Promise<{ url: string; requests: Array<{ method?: string; url?: string; headers: IncomingHttpHeaders }> }> {
  const requests: Array<{ method?: string; url?: string; headers: IncomingHttpHeaders }> = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method, url: req.url, headers: req.headers });
    if (req.method === 'PUT' && req.url === '/latest/api/token') res.end('token-1');
    else if (req.method === 'GET' && req.url === '/latest/meta-data/placement/region' && req.headers['x-aws-ec2-metadata-token'] === 'token-1') res.end(region);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

/** A notifier whose client the notifier makes, pointed at `endpoint`, with no region of its own. */
function notifierFor(endpoint: EventBridgeEndpoint, failures: DeliveryFailure[] = []): EventBridgeNotifier {
  const notifier = new EventBridgeNotifier({
    busName: 'bus',
    clientConfig: { endpoint: endpoint.url, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } },
    retry: { maxAttempts: 1 },
    onError: (failure) => failures.push(failure),
  });
  cleanups.push(() => notifier.close());
  return notifier;
}

/** The region the last request to `endpoint` was signed for (its SigV4 scope). */
const signedRegion = (endpoint: EventBridgeEndpoint): string | undefined =>
  /Credential=[^/]+\/\d{8}\/([^/]+)\/events\/aws4_request/.exec(String(endpoint.requests.at(-1)?.headers.authorization))?.[1];

async function deliveredWith(notifier: EventBridgeNotifier, endpoint: EventBridgeEndpoint): Promise<string | undefined> {
  await notifier.ready();
  notifier.handle(fakeEvent(1), fakeState);
  expect(await notifier.drain(5000)).toEqual({ complete: true, undelivered: [] });
  expect(notifier.stats()).toMatchObject({ sent: 1, failed: 0 });
  return signedRegion(endpoint);
}

describe('the region of the client the notifier makes, with none given nor in the environment', () => {
  it("takes the region of the AWS profile in the shared config files (AWS_PROFILE, else default), as `aws configure` writes it", async () => {
    const endpoint = await eventBridge();
    const config = '[default]\nregion = eu-west-3\n\n[profile agents]\nregion = eu-north-1\n';
    awsEnvironment({ config, profile: 'agents' });
    expect(await deliveredWith(notifierFor(endpoint), endpoint)).toBe('eu-north-1');
    awsEnvironment({ config });
    expect(await deliveredWith(notifierFor(endpoint), endpoint)).toBe('eu-west-3');
    // The credentials file's profile counts too (its section is the profile's bare name).
    awsEnvironment({ credentials: '[default]\nregion = ca-central-1\n' });
    expect(await deliveredWith(notifierFor(endpoint), endpoint)).toBe('ca-central-1');
  });

  it("takes the EC2 instance metadata's region when no profile has one (an agent on an EC2 node)", async () => {
    const endpoint = await eventBridge();
    const metadata = await instanceMetadata('ap-northeast-2');
    awsEnvironment({ metadata: metadata.url });
    expect(await deliveredWith(notifierFor(endpoint), endpoint)).toBe('ap-northeast-2');
    expect(metadata.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['PUT /latest/api/token', 'GET /latest/meta-data/placement/region']);
  });

  it('with no region anywhere: ready() rejects INVALID_ARGUMENT saying where to put one, and every event is given up at once as rejected (RegionMissing), none sent', async () => {
    const endpoint = await eventBridge();
    awsEnvironment({ config: '[default]\noutput = json\n', profile: 'default' });
    const failures: DeliveryFailure[] = [];
    const notifier = notifierFor(endpoint, failures);
    // Events handed in before the search ends wait for it, and are given up with it.
    notifier.handle(fakeEvent(1), fakeState);
    notifier.handle(fakeEvent(2), fakeState);
    const error: unknown = await notifier.ready().then(() => undefined, (err: unknown) => err);
    expect(isProgressError(error, 'INVALID_ARGUMENT')).toBe(true);
    expect((error as Error).message).toMatch(/^\[@progress\/notifier-eventbridge\] no AWS region for the client the notifier makes: give the `region` option \(or a client\), or set AWS_REGION, or a region in the profile "default" of .*file-\d+ or .*file-\d+; .*Region is missing/);
    expect(await notifier.drain(1000)).toEqual({ complete: true, undelivered: [] });
    // And the ones after it, at once: no request is ever made, so none is retried.
    notifier.handle(fakeEvent(3), fakeState);
    expect(await notifier.drain(1000)).toEqual({ complete: true, undelivered: [] });
    expect(failures.map((f) => [f.reason, f.errorCode, f.events.map((e) => e.seq)])).toEqual([
      ['rejected', 'RegionMissing', [1, 2]],
      ['rejected', 'RegionMissing', [3]],
    ]);
    expect(failures[0]!.errorMessage).toBe((error as Error).message.replace('[@progress/notifier-eventbridge] ', ''));
    expect(notifier.stats()).toMatchObject({ sent: 0, failed: 3, retried: 0, requests: 0, queued: 0, inFlight: 0 });
    expect(endpoint.requests).toHaveLength(0);
    // ready() says it again to whoever asks later.
    await expect(notifier.ready()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it("a profile's region that is not a region name (a stray space in the file) is refused the same way, with the SDK's words", async () => {
    const endpoint = await eventBridge();
    awsEnvironment({ config: '[default]\nregion = eu west 1\n' });
    const failures: DeliveryFailure[] = [];
    const notifier = notifierFor(endpoint, failures);
    await expect(notifier.ready()).rejects.toThrow(/the AWS region of the client the notifier makes is not usable .*: Region not accepted: region="eu west 1"/);
    notifier.handle(fakeEvent(1), fakeState);
    expect(await notifier.drain(1000)).toEqual({ complete: true, undelivered: [] });
    expect(failures.map((f) => [f.reason, f.errorCode])).toEqual([['rejected', 'RegionMissing']]);
    expect(endpoint.requests).toHaveLength(0);
  });

  it('a region provider of yours that never settles is given up on after requestTimeoutMs, as a request is; close() ends the wait too', async () => {
    const endpoint = await eventBridge();
    awsEnvironment();
    const failures: DeliveryFailure[] = [];
    const hanging = new EventBridgeNotifier({
      busName: 'bus',
      clientConfig: { endpoint: endpoint.url, region: () => new Promise<string>(() => {}), credentials: { accessKeyId: 'test', secretAccessKey: 'test' } },
      requestTimeoutMs: 200,
      onError: (failure) => failures.push(failure),
    });
    cleanups.push(() => hanging.close());
    hanging.handle(fakeEvent(1), fakeState);
    await expect(hanging.ready()).rejects.toThrow(/is not usable .*: no region within requestTimeoutMs \(200 ms\)/);
    expect(await hanging.drain(1000)).toEqual({ complete: true, undelivered: [] });
    expect(failures.map((f) => [f.reason, f.errorCode, f.events.map((e) => e.seq)])).toEqual([['rejected', 'RegionMissing', [1]]]);
    // Closed while it waits (the default requestTimeoutMs, 10 s): close() does not wait for the
    // region, and what it holds is reported closed, as any event close() abandons.
    const closing = new EventBridgeNotifier({
      busName: 'bus',
      clientConfig: { endpoint: endpoint.url, region: () => new Promise<string>(() => {}) },
      onError: (failure) => failures.push(failure),
    });
    closing.handle(fakeEvent(2), fakeState);
    const report = await closing.shutdown(0);
    expect(report.undelivered.map((e) => e.seq)).toEqual([2]);
    await expect(closing.ready()).rejects.toThrow(/closed before the region was known/);
    expect(failures.at(-1)).toMatchObject({ reason: 'closed', events: [{ seq: 2 }] });
    expect(endpoint.requests).toHaveLength(0);
  });

  it('a region given (the option, AWS_REGION) or a client of yours is taken as it is, the profile not looked at', async () => {
    const endpoint = await eventBridge();
    // A profile whose region would be refused: not looked at when a region is given.
    awsEnvironment({ config: '[default]\nregion = eu west 1\n' });
    const given = new EventBridgeNotifier({ busName: 'bus', region: 'us-west-2', clientConfig: { endpoint: endpoint.url, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } } });
    cleanups.push(() => given.close());
    expect(await deliveredWith(given, endpoint)).toBe('us-west-2');
    process.env.AWS_REGION = 'eu-south-1';
    expect(await deliveredWith(notifierFor(endpoint), endpoint)).toBe('eu-south-1');
    delete process.env.AWS_REGION;
    const client = localClient(endpoint.url);
    cleanups.push(async () => client.destroy());
    const yours = new EventBridgeNotifier({ busName: 'bus', client });
    cleanups.push(() => yours.close());
    expect(await deliveredWith(yours, endpoint)).toBe('us-east-1');
  });
});
