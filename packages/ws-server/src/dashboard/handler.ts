import type { IncomingMessage, ServerResponse } from 'node:http';
import { ProgressError } from '@progress/core';
import { checkEndpointPath, refuseUnknownOptions } from '../options.js';
import { dashboardHtml } from './page.js';
import { DASHBOARD_SCRIPT } from './script.js';
import { DASHBOARD_STYLE } from './style.js';

/**
 * The Content-Security-Policy of the dashboard: only its own script and stylesheet, WebSocket to
 * its own origin, no inline code, no framing.
 */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export const SECURITY_HEADERS = {
  'Content-Security-Policy': DASHBOARD_CSP,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cache-Control': 'no-store',
};

/** Options of {@link createDashboardHandler}. */
export interface DashboardOptions {
  /** The WebSocket endpoint's path, as the page should connect to it. @default '/ws' */
  wsPath?: string;
}

const DASHBOARD_NAMES = Object.keys({ wsPath: 0 } satisfies Record<keyof DashboardOptions, 0>);

/**
 * An HTTP handler serving the dashboard: `dashboard.js` and `dashboard.css` by their last path
 * segment, 204 (no icon) for `favicon.ico`, the page for a path ending in `/` or `/index.html` (so it
 * can be mounted under a prefix), 404 for anything else, 405 for other methods.
 */
export function createDashboardHandler(options: DashboardOptions = {}): (req: IncomingMessage, res: ServerResponse) => void {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new ProgressError('INVALID_ARGUMENT', '[@progress/ws-server] createDashboardHandler() options must be an object');
  }
  // A misspelt `wspath` would serve a page that connects to '/ws', which is not the endpoint.
  refuseUnknownOptions(options, DASHBOARD_NAMES, 'createDashboardHandler() options');
  const wsPath = options.wsPath === undefined ? '/ws' : options.wsPath;
  // The server's own rule for its `path`: any other value names no endpoint the page could reach.
  checkEndpointPath(wsPath, 'createDashboardHandler() wsPath');
  const html = dashboardHtml(wsPath);
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...SECURITY_HEADERS, Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('Method Not Allowed\n');
      return;
    }
    let pathname = '/';
    try {
      pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    } catch {
      // keep '/'
    }
    // Browsers ask for it on every page load: a 404 would be logged in the console each time.
    if (pathname.endsWith('/favicon.ico')) {
      res.writeHead(204, SECURITY_HEADERS).end();
      return;
    }
    const [type, body] = pathname.endsWith('/dashboard.js')
      ? ['text/javascript; charset=utf-8', DASHBOARD_SCRIPT]
      : pathname.endsWith('/dashboard.css')
        ? ['text/css; charset=utf-8', DASHBOARD_STYLE]
        : pathname.endsWith('/') || pathname.endsWith('/index.html')
          ? ['text/html; charset=utf-8', html]
          : [undefined, undefined];
    if (!type) {
      res.writeHead(404, { ...SECURITY_HEADERS, 'Content-Type': 'text/plain; charset=utf-8' }).end('Not Found\n');
      return;
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body!) });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
}
