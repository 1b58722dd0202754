import type { IncomingMessage } from 'node:http';
import type { ResolvedOptions } from './options.js';

/** What to do with an HTTP upgrade request. */
export type HandshakeVerdict =
  /** Not our path, and the server is attached: leave it to the other upgrade handlers. */
  | { kind: 'ignore' }
  /** Refuse with this HTTP status before any frame. */
  | { kind: 'refuse'; status: number }
  /** Accept, with the principal `authenticate` returned (`true` without a hook). */
  | { kind: 'accept'; principal: unknown };

/**
 * Checks an upgrade request in order: path (404, or ignored when attached), origin allow-list (403;
 * a request without Origin passes), `authenticate` (401 when it returns nothing or throws).
 */
export async function judgeHandshake(req: IncomingMessage, o: ResolvedOptions): Promise<HandshakeVerdict> {
  let pathname: string;
  try {
    pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
  } catch {
    pathname = '';
  }
  if (pathname !== o.path) return o.server ? { kind: 'ignore' } : { kind: 'refuse', status: 404 };
  const origin = req.headers.origin;
  if (o.allowedOrigins && origin !== undefined && !o.allowedOrigins.has(origin.toLowerCase())) {
    o.logger.info({ origin }, 'refused a WebSocket from an origin that is not allowed');
    return { kind: 'refuse', status: 403 };
  }
  if (!o.authenticate) return { kind: 'accept', principal: true };
  let principal: unknown;
  try {
    principal = await o.authenticate(req);
  } catch (err) {
    o.logger.warn({ err }, 'authenticate threw; refusing the connection');
    return { kind: 'refuse', status: 401 };
  }
  if (principal === undefined || principal === null || principal === false) return { kind: 'refuse', status: 401 };
  return { kind: 'accept', principal };
}
