import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { localClientConfig } from '../../../tools/test-utils/src/eventbridge-endpoint.js';

/** A real SDK client pointed at the local endpoint, without SDK retries (the notifier retries). */
export function localClient(url: string, maxAttempts = 1): EventBridgeClient {
  return new EventBridgeClient({ ...localClientConfig(url), maxAttempts });
}

/** A controllable clock for the tracker's `now` option. */
export function clock(start = Date.parse('2026-01-01T00:00:00.000Z')): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

/** The JSON answer of a PutEvents request, as it goes over the wire. */
export interface WireAnswer {
  FailedEntryCount?: number;
  Entries?: Array<Record<string, unknown>>;
}

/** What {@link startRewritingProxy} changes in the endpoint's answers. */
export interface Rewrites {
  /** Rewrites the JSON body of a 200 answer to the request of this index (0, 1, ...). */
  body?: (answer: WireAnswer, index: number) => WireAnswer;
  /** The `Date` header of every answer (the server's clock, which the SDK corrects its skew by). */
  date?: () => string;
}

/**
 * A local HTTP proxy in front of the endpoint that rewrites its answers, for answers the endpoint
 * never gives (a short `Entries` array, an entry with no result, a server clock far from ours):
 * the real client then reads them as it would read AWS's.
 */
export async function startRewritingProxy(target: string, rewrites: Rewrites): Promise<{ url: string; close: () => Promise<void> }> {
  let count = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const index = count++;
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'connection') headers[k] = v;
      fetch(target + (req.url ?? '/'), { method: req.method, headers, body: Buffer.concat(chunks) })
        .then(async (answer) => {
          let text = await answer.text();
          if (answer.status === 200 && rewrites.body) text = JSON.stringify(rewrites.body(JSON.parse(text) as WireAnswer, index));
          const out: Record<string, string> = { 'content-type': answer.headers.get('content-type') ?? 'application/x-amz-json-1.1' };
          for (const name of ['x-amzn-requestid', 'x-amzn-errortype']) {
            const value = answer.headers.get(name);
            if (value !== null) out[name] = value;
          }
          if (rewrites.date) out.date = rewrites.date();
          res.writeHead(answer.status, out);
          res.end(text);
        })
        .catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A pino-compatible logger that records its calls. */
export function recordingLogger(): { logger: Record<'debug' | 'info' | 'warn' | 'error', (obj: object, msg?: string) => void>; calls: Array<{ level: string; obj: Record<string, unknown>; msg: string | undefined }> } {
  const calls: Array<{ level: string; obj: Record<string, unknown>; msg: string | undefined }> = [];
  const method = (level: string) => (obj: object, msg?: string) => void calls.push({ level, obj: obj as Record<string, unknown>, msg });
  return { logger: { debug: method('debug'), info: method('info'), warn: method('warn'), error: method('error') }, calls };
}
