import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DASHBOARD_CSP, createDashboardHandler } from '../src/index.js';
import { rawExchange } from './raw.js';

let http: Server;
let port: number;

beforeAll(async () => {
  http = createServer(createDashboardHandler({ wsPath: '/progress/ws' }));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  port = (http.address() as AddressInfo).port;
});

afterAll(async () => {
  http.closeAllConnections();
  await new Promise<void>((resolve) => http.close(() => resolve()));
});

/** The headers (lower-cased names) of the answer to one request. */
async function headersOf(method: string, path: string): Promise<Map<string, string>> {
  const { response } = await rawExchange(port, `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`, 5000);
  const lines = response.slice(0, response.indexOf('\r\n\r\n')).split('\r\n').slice(1);
  return new Map(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
}

describe('the dashboard handler', () => {
  it('serves every answer under the policy the README states: its own script and style only, no inline code, no framing', async () => {
    // The policy is what keeps a hostile upgrade name from running as script should the page ever write
    // HTML: 'unsafe-inline', a CDN or a missing directive would let it. Each directive, as the README lists it.
    const policy = new Map([
      ['default-src', "'none'"],
      ['script-src', "'self'"],
      ['style-src', "'self'"],
      ['connect-src', "'self'"],
      ['img-src', "'self'"],
      ['base-uri', "'none'"],
      ['form-action', "'none'"],
      ['frame-ancestors', "'none'"],
    ]);
    for (const [method, path] of [['GET', '/'], ['GET', '/dashboard.js'], ['GET', '/nope'], ['GET', '/favicon.ico'], ['POST', '/']] as const) {
      const csp = (await headersOf(method, path)).get('content-security-policy');
      const served = new Map(
        (csp ?? '')
          .split(';')
          .map((d) => d.trim().split(/\s+/))
          .map(([name, ...sources]) => [name!, sources.join(' ')]),
      );
      expect(served, `${method} ${path}`).toEqual(policy);
      expect(csp, `${method} ${path}`).toBe(DASHBOARD_CSP);
    }
  });
});
