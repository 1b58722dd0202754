import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** One entry of a PutEvents request, as the SDK put it on the wire (AWS JSON 1.1). */
export interface WireEntry {
  Source?: string;
  DetailType?: string;
  Detail?: string;
  EventBusName?: string;
  Resources?: string[];
  /** Epoch seconds (the JSON 1.1 timestamp format). */
  Time?: number;
  [key: string]: unknown;
}

/** What the endpoint recorded of one HTTP request. */
export interface RecordedRequest {
  /** 0, 1, 2 ... in order of arrival. */
  index: number;
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** The `X-Amz-Target` header, e.g. `AWSEvents.PutEvents`. */
  target: string | undefined;
  /** The parsed JSON body (undefined when it was not JSON). */
  body: unknown;
  /** The entries of a PutEvents body. */
  entries: WireEntry[];
  /** The HTTP status answered (0 while unanswered, or when the connection was hung up instead). */
  status: number;
  /** True when the request was held (see `hold`) before being processed. */
  held?: boolean;
  /** True when the connection was destroyed instead of answered (see {@link RequestFailure.hangUp}). */
  hungUp?: boolean;
  receivedAt: number;
  /** When the answer was sent (or the connection hung up). */
  answeredAt?: number;
}

/** An entry the endpoint accepted (answered with an EventId). */
export interface AcceptedEntry extends WireEntry {
  EventId: string;
  /** `JSON.parse(Detail)`, or undefined. */
  detail: Record<string, unknown> | undefined;
  requestIndex: number;
}

/** An entry the endpoint failed (answered with an ErrorCode). */
export interface FailedWireEntry extends WireEntry {
  ErrorCode: string;
  ErrorMessage: string;
  requestIndex: number;
}

/** The context handed to the decision knobs. */
export interface RequestContext {
  /** 0-based index of this request among every request received. */
  index: number;
  target: string | undefined;
  body: unknown;
  headers: IncomingHttpHeaders;
}

/** Answer a whole request with an error instead of processing its entries. */
export interface RequestFailure {
  /** HTTP status. @default 500 */
  status?: number;
  /** The AWS error type (`__type`), e.g. `ThrottlingException`. @default InternalException / ThrottlingException for 400 */
  errorType?: string;
  message?: string;
  /**
   * Destroy the connection instead of answering: the client sees a network error (`ECONNRESET`,
   * "socket hang up") with no HTTP status. `status`, `errorType` and `message` are then ignored.
   */
  hangUp?: boolean;
}

/** Fail one entry with this code (e.g. `ThrottlingException`, `InternalFailure`, `MalformedDetail`). */
export interface EntryFailure {
  errorCode: string;
  errorMessage?: string;
}

/** Knobs of {@link startEventBridgeEndpoint}. All of them may be changed later with `set()`. */
export interface EventBridgeEndpointOptions {
  /** Delay before every answer, in ms (or per request). @default 0 */
  latencyMs?: number | ((ctx: RequestContext) => number);
  /**
   * Decide per request to hold it (after `latencyMs`) until `release()` is called: a request that
   * stays in flight for as long as the test wants, without a timer. Held requests are then
   * answered as any other (`failRequest`, `failEntry`).
   */
  hold?: (ctx: RequestContext) => boolean | undefined;
  /** Decide per request to answer an error (return undefined to process it normally). */
  failRequest?: (ctx: RequestContext) => RequestFailure | number | undefined | false;
  /**
   * Decide per entry to fail it. `entryIndex` counts every entry received in processed requests
   * (0-based, retries included).
   */
  failEntry?: (entry: WireEntry, info: { entryIndex: number; requestIndex: number; positionInRequest: number }) => EntryFailure | string | undefined | false;
  /** @default '127.0.0.1' */
  host?: string;
  /** @default 0 (a free port) */
  port?: number;
}

/** A running local EventBridge endpoint. */
export interface EventBridgeEndpoint {
  /** `http://127.0.0.1:<port>`: pass it as `endpoint` to `EventBridgeClient`. */
  url: string;
  port: number;
  /** Every request received, in order. */
  requests: RecordedRequest[];
  /** Every entry accepted, in order. */
  entries: AcceptedEntry[];
  /** Every entry answered with an ErrorCode, in order. */
  failedEntries: FailedWireEntry[];
  /** Requests received whose answer has not been sent yet. */
  readonly pending: number;
  /** Requests held now (see `hold`). */
  readonly held: number;
  /** TCP connections open now (a keep-alive client keeps one open between requests). */
  readonly connections: number;
  /** Changes knobs (merged into the current ones). */
  set(options: Omit<EventBridgeEndpointOptions, 'host' | 'port'>): void;
  /** Forgets what was recorded (counters included). */
  reset(): void;
  /** Processes every request held now (see `hold`); returns how many there were. */
  release(): number;
  /** Resolves when `count` entries have been accepted (rejects after `timeoutMs`). */
  waitForEntries(count: number, timeoutMs?: number): Promise<void>;
  /** Resolves when `count` requests have been received (answered or not; rejects after `timeoutMs`). */
  waitForRequests(count: number, timeoutMs?: number): Promise<void>;
  /** Stops listening and drops every open connection. */
  close(): Promise<void>;
}

/** Options the SDK client needs to talk to a local endpoint. */
export function localClientConfig(url: string): { endpoint: string; region: string; credentials: { accessKeyId: string; secretAccessKey: string } } {
  return { endpoint: url, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts a local HTTP server that speaks the AWS JSON 1.1 protocol of EventBridge's PutEvents
 * (`X-Amz-Target: AWSEvents.PutEvents`, `application/x-amz-json-1.1`). It accepts any SigV4
 * signature, records every request and entry, and can be slowed down or made to fail per request
 * or per entry. A real `EventBridgeClient({ endpoint: url, region, credentials })` talks to it.
 *
 * @example
 * const endpoint = await startEventBridgeEndpoint({ latencyMs: 50, failEntry: (_, { entryIndex }) => entryIndex % 7 === 6 && 'ThrottlingException' });
 * const client = new EventBridgeClient(localClientConfig(endpoint.url));
 */
export async function startEventBridgeEndpoint(options: EventBridgeEndpointOptions = {}): Promise<EventBridgeEndpoint> {
  const knobs: Omit<EventBridgeEndpointOptions, 'host' | 'port'> = { ...options };
  let requestCount = 0;
  let entryCount = 0;
  let pending = 0;
  let closing = false;
  const requests: RecordedRequest[] = [];
  const entries: AcceptedEntry[] = [];
  const failedEntries: FailedWireEntry[] = [];
  const heldRequests: Array<() => void> = [];
  const sockets = new Set<Socket>();
  let waiters: Array<{ reached: () => boolean; resolve: () => void }> = [];

  const notify = (): void => {
    const still: typeof waiters = [];
    for (const w of waiters) {
      if (w.reached()) w.resolve();
      else still.push(w);
    }
    waiters = still;
  };

  const waitUntil = (reached: () => boolean, timeoutMs: number, describe: () => string): Promise<void> => {
    if (reached()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters = waiters.filter((w) => w.resolve !== done);
        reject(new Error(`[test-utils] eventbridge endpoint: ${describe()} after ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      waiters.push({ reached, resolve: done });
    });
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      pending += 1;
      void (async () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = raw.length > 0 ? JSON.parse(raw) : undefined;
        } catch {
          body = undefined;
        }
        const target = typeof req.headers['x-amz-target'] === 'string' ? req.headers['x-amz-target'] : undefined;
        const wireEntries = Array.isArray((body as { Entries?: unknown } | undefined)?.Entries) ? ((body as { Entries: WireEntry[] }).Entries) : [];
        const record: RecordedRequest = {
          index: requestCount++,
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          target,
          body,
          entries: wireEntries,
          status: 0,
          receivedAt: Date.now(),
        };
        requests.push(record);
        notify();
        const ctx: RequestContext = { index: record.index, target, body, headers: req.headers };
        const latency = typeof knobs.latencyMs === 'function' ? knobs.latencyMs(ctx) : (knobs.latencyMs ?? 0);
        if (latency > 0) await sleep(latency);
        if (knobs.hold?.(ctx) && !closing) {
          record.held = true;
          await new Promise<void>((resolve) => heldRequests.push(resolve));
          if (closing) {
            // Released by close(): never answered nor processed.
            pending -= 1;
            return;
          }
        }
        const answer = (status: number, payload: unknown, errorType?: string): void => {
          record.status = status;
          record.answeredAt = Date.now();
          pending -= 1;
          const headers: Record<string, string> = { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() };
          if (errorType) headers['x-amzn-errortype'] = errorType;
          if (res.destroyed || closing) return;
          res.writeHead(status, headers);
          res.end(JSON.stringify(payload));
        };
        const failure = knobs.failRequest?.(ctx);
        if (failure !== undefined && failure !== false) {
          const f: RequestFailure = typeof failure === 'number' ? { status: failure } : failure;
          if (f.hangUp) {
            record.hungUp = true;
            record.answeredAt = Date.now();
            pending -= 1;
            res.destroy();
            return;
          }
          const status = f.status ?? 500;
          const errorType = f.errorType ?? (status === 400 ? 'ThrottlingException' : 'InternalException');
          answer(status, { __type: errorType, message: f.message ?? `injected failure of request ${record.index}` }, errorType);
          return;
        }
        if (target !== 'AWSEvents.PutEvents' || body === undefined) {
          const errorType = target === undefined ? 'MissingAction' : 'UnknownOperationException';
          answer(400, { __type: errorType, message: `this endpoint only speaks AWSEvents.PutEvents, not ${String(target)}` }, errorType);
          return;
        }
        const results: Array<{ EventId: string } | { ErrorCode: string; ErrorMessage: string }> = [];
        let failed = 0;
        wireEntries.forEach((entry, positionInRequest) => {
          const decision = knobs.failEntry?.(entry, { entryIndex: entryCount++, requestIndex: record.index, positionInRequest });
          if (decision !== undefined && decision !== false) {
            const f: EntryFailure = typeof decision === 'string' ? { errorCode: decision } : decision;
            const ErrorMessage = f.errorMessage ?? `injected ${f.errorCode}`;
            failed += 1;
            results.push({ ErrorCode: f.errorCode, ErrorMessage });
            failedEntries.push({ ...entry, ErrorCode: f.errorCode, ErrorMessage, requestIndex: record.index });
            return;
          }
          const EventId = randomUUID();
          let detail: Record<string, unknown> | undefined;
          try {
            detail = typeof entry.Detail === 'string' ? (JSON.parse(entry.Detail) as Record<string, unknown>) : undefined;
          } catch {
            detail = undefined;
          }
          results.push({ EventId });
          entries.push({ ...entry, EventId, detail, requestIndex: record.index });
        });
        answer(200, { FailedEntryCount: failed, Entries: results });
        notify();
      })();
    });
  });

  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port, address } = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;

  return {
    url: `http://${address}:${port}`,
    port,
    requests,
    entries,
    failedEntries,
    get pending() {
      return pending;
    },
    get held() {
      return heldRequests.length;
    },
    get connections() {
      return sockets.size;
    },
    set(next) {
      Object.assign(knobs, next);
    },
    reset() {
      requests.length = 0;
      entries.length = 0;
      failedEntries.length = 0;
      requestCount = 0;
      entryCount = 0;
    },
    release() {
      const held = heldRequests.splice(0);
      for (const resolve of held) resolve();
      return held.length;
    },
    waitForEntries(count, timeoutMs = 10_000) {
      return waitUntil(() => entries.length >= count, timeoutMs, () => `${entries.length} of ${count} entries`);
    },
    waitForRequests(count, timeoutMs = 10_000) {
      return waitUntil(() => requests.length >= count, timeoutMs, () => `${requests.length} of ${count} requests`);
    },
    close() {
      closing = true;
      // Held requests end without an answer nor processing (their connections are dropped below).
      for (const resolve of heldRequests.splice(0)) resolve();
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
