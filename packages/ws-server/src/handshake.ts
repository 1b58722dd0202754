import type { IncomingMessage } from 'node:http';
import { isIPv4 } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ResolvedOptions } from './options.js';

/** What to do with an HTTP upgrade request. */
export type HandshakeVerdict =
  /** Not our path, and the server is attached: leave it to the other upgrade handlers. */
  | { kind: 'ignore' }
  /** Refuse with this HTTP status before any frame. */
  | { kind: 'refuse'; status: number }
  /** Accept, with the principal `authenticate` returned (`true` without a hook). */
  | { kind: 'accept'; principal: unknown };

const TIMED_OUT = Symbol('timed out');

/**
 * Checks an upgrade request in order: path (404, or ignored when attached), origin allow-list (403;
 * a request without Origin passes), `authenticate` (401 when it returns nothing or throws, 503 when
 * it has not answered within `handshakeTimeoutMs`). Synchronous unless an `authenticate` hook runs.
 */
export function judgeHandshake(req: IncomingMessage, o: ResolvedOptions): HandshakeVerdict | Promise<HandshakeVerdict> {
  if (requestPath(req) !== o.path) return o.server ? { kind: 'ignore' } : { kind: 'refuse', status: 404 };
  const origin = req.headers.origin;
  if (origin !== undefined && !originAllowed(origin, req, o)) {
    o.logger.info({ origin, host: req.headers.host }, 'refused a WebSocket from an origin that is not allowed');
    return { kind: 'refuse', status: 403 };
  }
  if (!o.authenticate) return { kind: 'accept', principal: true };
  return authenticate(req, o, o.authenticate);
}

/** The path of a request's URL, without its query; '' when the URL does not parse (it matches no endpoint path). */
export function requestPath(req: IncomingMessage): string {
  const url = req.url ?? '/';
  try {
    // A path (origin-form) is read as one: against a base, `//ws` would be a host named `ws`.
    return (url.startsWith('/') ? new URL(`http://localhost${url}`) : new URL(url)).pathname;
  } catch {
    return '';
  }
}

/** Runs the `authenticate` hook, within `handshakeTimeoutMs`. */
async function authenticate(req: IncomingMessage, o: ResolvedOptions, hook: (req: IncomingMessage) => unknown): Promise<HandshakeVerdict> {
  let principal: unknown;
  let timer: NodeJS.Timeout | undefined;
  try {
    // A hook that never settles would otherwise hold the socket (and stop()) for ever.
    // Unref'd: after stop() has answered the socket, a hook still hanging must not keep the process alive.
    const timeout = new Promise<typeof TIMED_OUT>((resolve) => (timer = setTimeout(resolve, o.handshakeTimeoutMs, TIMED_OUT).unref()));
    principal = await Promise.race([hook(req), timeout]);
  } catch (err) {
    o.logger.warn({ err }, 'authenticate threw; refusing the connection');
    return { kind: 'refuse', status: 401 };
  } finally {
    clearTimeout(timer);
  }
  if (principal === TIMED_OUT) {
    o.logger.warn({ timeoutMs: o.handshakeTimeoutMs }, 'authenticate did not answer in time; refusing the connection');
    return { kind: 'refuse', status: 503 };
  }
  if (principal === undefined || principal === null || principal === false) return { kind: 'refuse', status: 401 };
  return { kind: 'accept', principal };
}

/** True for an IPv4 address in 127.0.0.0/8. */
function isLoopbackV4(address: string): boolean {
  return isIPv4(address) && address.startsWith('127.');
}

/** True for an address of the loopback interface: 127.0.0.0/8, `::1`, or 127.x mapped into IPv6 (`::ffff:127.0.0.1`). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.toLowerCase();
  if (a.startsWith('::ffff:')) return isLoopbackV4(a.slice(7));
  return a === '::1' || isLoopbackV4(a);
}

/** True for a loopback host name, as a Host header names it (without the port): `localhost`, 127.x.x.x, `[::1]`. */
function isLoopbackHostname(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || isLoopbackV4(hostname);
}

/** The hostname of a Host header value (`host[:port]`, `[v6]:port`), lower-cased. */
function hostnameOf(host: string): string {
  const h = host.toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.lastIndexOf(':');
  return colon >= 0 ? h.slice(0, colon) : h;
}

/**
 * The origin check. With an allow-list, exact matches only; with `'*'`, any. By default the page
 * must come from the server itself (the Origin's host:port is the request's Host, and its scheme
 * https when the connection is TLS), and a request
 * that arrived on a loopback address (whatever the server listens on, standalone or attached) must
 * name a loopback Host, so a page on another site, or one reaching 127.0.0.1 through a rebound DNS
 * name, cannot connect.
 */
function originAllowed(origin: string, req: IncomingMessage, o: ResolvedOptions): boolean {
  if (o.allowedOrigins === '*') return true;
  if (o.allowedOrigins !== 'same-origin') return o.allowedOrigins.has(origin.toLowerCase());
  const host = req.headers.host;
  if (!host) return false;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.host.toLowerCase() !== host.toLowerCase()) return false;
  // Over TLS (attached to an https.Server) the page must be an https one: an http page of the same
  // name (its port 80 and the request's 443 both left out) is another origin, one a network attacker can write.
  if ((req.socket as Partial<TLSSocket>).encrypted === true && url.protocol !== 'https:') return false;
  // Decided by the connection, not by the options: a server on 0.0.0.0 or attached to an http.Server is reached on 127.0.0.1 too.
  if (isLoopbackAddress(req.socket.localAddress)) return isLoopbackHostname(hostnameOf(host));
  return true;
}
