import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DASHBOARD_CSP, DASHBOARD_SCRIPT, DASHBOARD_STYLE, createDashboardHandler } from '../src/index.js';
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

/** The status line, headers (lower-cased names) and body of the answer to one request. */
async function answerTo(method: string, path: string, to = port): Promise<{ status: number; headers: Map<string, string>; body: string }> {
  const { response } = await rawExchange(to, `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`, 5000);
  const end = response.indexOf('\r\n\r\n');
  const [statusLine, ...lines] = response.slice(0, end).split('\r\n');
  const headers = new Map(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
  return { status: Number(statusLine!.split(' ')[1]), headers, body: response.slice(end + 4) };
}

describe('what the dashboard handler answers', () => {
  it('serves the page, script and style by the paths the README lists (under a prefix too), 204 for the icon, 404 for anything else', async () => {
    // A page answered 200 for any path, or the script served as text/plain (which nosniff makes the
    // browser refuse), would go unnoticed by a test that only reads the headers of a few paths.
    const html = 'text/html; charset=utf-8';
    const cases: Array<[string, number, string | undefined, string | undefined]> = [
      ['/', 200, html, undefined],
      ['/progress/', 200, html, undefined],
      ['/index.html', 200, html, undefined],
      ['/progress/index.html', 200, html, undefined],
      ['/dashboard.js', 200, 'text/javascript; charset=utf-8', DASHBOARD_SCRIPT],
      ['/progress/dashboard.js?v=2', 200, 'text/javascript; charset=utf-8', DASHBOARD_SCRIPT],
      ['/dashboard.css', 200, 'text/css; charset=utf-8', DASHBOARD_STYLE],
      ['/progress/dashboard.css', 200, 'text/css; charset=utf-8', DASHBOARD_STYLE],
      ['/favicon.ico', 204, undefined, ''],
      ['/progress/favicon.ico', 204, undefined, ''],
      ['/nope', 404, 'text/plain; charset=utf-8', 'Not Found\n'],
      ['/mydashboard.js', 404, 'text/plain; charset=utf-8', 'Not Found\n'],
      ['/dashboard.jsx', 404, 'text/plain; charset=utf-8', 'Not Found\n'],
      ['/index.htm', 404, 'text/plain; charset=utf-8', 'Not Found\n'],
    ];
    for (const [path, status, type, body] of cases) {
      const answer = await answerTo('GET', path);
      expect(answer.status, path).toBe(status);
      expect(answer.headers.get('content-type'), path).toBe(type);
      // (The plain-text answers come chunked, hence toContain.)
      if (body !== undefined) expect(answer.body, path)[body === '' ? 'toBe' : 'toContain'](body);
      if (type === html) expect(answer.body, path).toContain('<meta name="progress-ws-path" content="/progress/ws">');
      // The page is served from its own origin only: no Referer leaks its address (a ?token=) to another.
      expect(answer.headers.get('referrer-policy'), path).toBe('no-referrer');
      expect(answer.headers.get('x-content-type-options'), path).toBe('nosniff');
    }
  });

  it('answers HEAD as GET without the body, and any other method 405 with Allow: GET, HEAD', async () => {
    for (const path of ['/', '/dashboard.js', '/dashboard.css']) {
      const get = await answerTo('GET', path);
      const head = await answerTo('HEAD', path);
      expect(head.status, path).toBe(200);
      expect(head.headers.get('content-type'), path).toBe(get.headers.get('content-type'));
      expect(head.headers.get('content-length'), path).toBe(String(Buffer.byteLength(get.body)));
      expect(head.body, path).toBe('');
    }
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const answer = await answerTo(method, '/');
      expect(answer.status, method).toBe(405);
      expect(answer.headers.get('allow'), method).toBe('GET, HEAD');
      expect(answer.body, method).toContain('Method Not Allowed\n');
    }
  });

  it('writes a wsPath holding quotes and markup into the page as the text of its meta tag, not as markup', async () => {
    // checkEndpointPath lets '"', '<' and '&' through (a path may hold them): unescaped, such a path
    // would end the attribute, and the page would connect to a cut-off path (and hold foreign markup).
    const wsPath = '/ws"><script>alert(1)</script>&amp;';
    const hostile = createServer(createDashboardHandler({ wsPath }));
    await new Promise<void>((resolve) => hostile.listen(0, '127.0.0.1', resolve));
    try {
      const { body } = await answerTo('GET', '/', (hostile.address() as AddressInfo).port);
      expect(body).not.toContain('<script>alert');
      const metas = [...body.matchAll(/<meta name="progress-ws-path" content="([^"]*)">/g)];
      expect(metas).toHaveLength(1);
      // Read as a browser reads it: a character reference of any form is the character it names.
      const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
      const decoded = metas[0]![1]!.replace(/&(#\d+|amp|lt|gt|quot|apos);/g, (_m, ref: string) => (ref.startsWith('#') ? String.fromCharCode(Number(ref.slice(1))) : named[ref]!));
      expect(decoded).toBe(wsPath);
    } finally {
      hostile.closeAllConnections();
      await new Promise<void>((resolve) => hostile.close(() => resolve()));
    }
  });
});
