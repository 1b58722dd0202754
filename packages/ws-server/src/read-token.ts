import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ProgressError, describeValue } from '@progress/core';
import { refuseUnknownOptions } from './options.js';

/** Options of {@link createReadToken}. */
export interface ReadTokenOptions {
  /** The HMAC key shared by the issuer and the server: at least 32 bytes of randomness. */
  secret: string | Buffer;
  /** The upgrades the bearer may read; `'*'` means every upgrade. */
  upgradeIds: readonly string[];
  /** How long the token is valid. @default 300 */
  ttlSeconds?: number;
  /** The clock, in ms since the epoch (for tests). @default Date.now */
  now?: () => number;
}

/** Options of {@link readTokenAuth}. */
export interface ReadTokenAuthOptions {
  /** The HMAC key the tokens were signed with (see {@link ReadTokenOptions.secret}). */
  secret: string | Buffer;
  /** The clock, in ms since the epoch (for tests). @default Date.now */
  now?: () => number;
}

/** What a valid read token grants: the principal that {@link readTokenAuth}'s `authenticate` returns. */
export interface ReadTokenClaims {
  /** The upgrades the bearer may read (`'*'`: all). */
  upgradeIds: string[];
  /** When the token expires, in seconds since the epoch. */
  exp: number;
}

/** The subprotocol prefix that carries a token: `progress-token.<token>`. */
export const TOKEN_SUBPROTOCOL_PREFIX = 'progress-token.';
/** The subprotocol the server answers with when a client offers it (browsers need one answered). */
export const PROGRESS_SUBPROTOCOL = 'progress.v1';

function sign(payload: string, secret: string | Buffer): Buffer {
  return createHmac('sha256', secret).update(payload).digest();
}

// Objects checked against the types, so that a new option cannot be left out of these lists.
const READ_TOKEN_NAMES = Object.keys({ secret: 0, upgradeIds: 0, ttlSeconds: 0, now: 0 } satisfies Record<keyof ReadTokenOptions, 0>);
// readTokenAuth() also takes createReadToken()'s `ttlSeconds` (and ignores it), so that one settings
// object can serve both: `{ secret, ttlSeconds }` passed to each is no misspelling. Not `upgradeIds`:
// given to readTokenAuth it would read as "this server serves only these", which it is not (each
// token's own scope decides), so it is refused.
const READ_TOKEN_AUTH_NAMES = [...Object.keys({ secret: 0, now: 0 } satisfies Record<keyof ReadTokenAuthOptions, 0>), 'ttlSeconds'];

/** Refuses options that are not an object, or that have a key that is not an option (a misspelt `ttlSecond` gave 300 s). */
function checkOptions(options: unknown, known: readonly string[], what: string): asserts options is object {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/ws-server] ${what} must be an object`);
  }
  refuseUnknownOptions(options, known, what);
}

function checkNow(now: unknown): asserts now is (() => number) | undefined {
  if (now !== undefined && typeof now !== 'function') throw new ProgressError('INVALID_ARGUMENT', '[@progress/ws-server] now must be a function returning ms since the epoch');
}

/**
 * The time `now()` gives, refused when it is not a finite number: compared with NaN (a clock that
 * returns a Date, or nothing), `exp * 1000 <= now()` was false and an expired token was taken.
 */
function readClock(now: () => number): number {
  const ms: unknown = now();
  if (typeof ms !== 'number' || !Number.isFinite(ms)) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/ws-server] now() must return ms since the epoch, got ${describeValue(ms)}`);
  }
  return ms;
}

function checkSecret(secret: unknown): asserts secret is string | Buffer {
  if (!(typeof secret === 'string' || Buffer.isBuffer(secret)) || secret.length < 16) {
    // A string is counted in characters (as the README says), a Buffer in bytes: a string of 15
    // accented letters has 30 bytes, and "at least 16 bytes" told its owner it was long enough.
    throw new ProgressError('INVALID_ARGUMENT', '[@progress/ws-server] a read token secret must be a string of at least 16 characters or a Buffer of at least 16 bytes');
  }
}

/**
 * Issues a short-lived read token scoped to upgrade ids: `base64url(claims).base64url(HMAC-SHA256)`.
 * Give it to a browser, which passes it as `?token=` or as the subprotocol `progress-token.<token>`.
 *
 * @example
 * const token = createReadToken({ secret, upgradeIds: ['u1'], ttlSeconds: 600 });
 * new WebSocket(`ws://127.0.0.1:8765/ws?token=${token}`);
 */
export function createReadToken(options: ReadTokenOptions): string {
  checkOptions(options, READ_TOKEN_NAMES, 'createReadToken() options');
  checkSecret(options.secret);
  checkNow(options.now);
  const ttl = options.ttlSeconds ?? 300;
  if (!Number.isSafeInteger(ttl) || ttl <= 0) throw new ProgressError('INVALID_ARGUMENT', '[@progress/ws-server] ttlSeconds must be a whole number > 0');
  if (!Array.isArray(options.upgradeIds) || options.upgradeIds.some((id) => typeof id !== 'string' || id.length === 0)) {
    throw new ProgressError('INVALID_ARGUMENT', '[@progress/ws-server] upgradeIds must be an array of non-empty strings');
  }
  // Rounded up to the second: the token lives at least ttlSeconds (rounded down, a 1 s token made
  // late in a second could expire before it reached the server).
  const exp = Math.ceil((readClock(options.now ?? Date.now) + ttl * 1000) / 1000);
  // Past it the expiry is not a number JSON keeps (Infinity is written null), and no token verifies.
  if (!Number.isSafeInteger(exp)) throw new ProgressError('INVALID_ARGUMENT', `[@progress/ws-server] ttlSeconds ${ttl} ends past any date a token can carry`);
  const claims: ReadTokenClaims = { upgradeIds: [...options.upgradeIds], exp };
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  return `${payload}.${sign(payload, options.secret).toString('base64url')}`;
}

/**
 * Checks a token made by {@link createReadToken}: signature (constant-time), shape and expiry.
 * Returns its claims, or `undefined` for any token that is not valid now.
 */
export function verifyReadToken(token: string, secret: string | Buffer, now: () => number = Date.now): ReadTokenClaims | undefined {
  checkSecret(secret);
  checkNow(now);
  if (typeof token !== 'string' || token.length > 8192) return undefined;
  const dot = token.indexOf('.');
  if (dot <= 0 || dot !== token.lastIndexOf('.')) return undefined;
  const payload = token.slice(0, dot);
  // Compared as the text issued, not as decoded bytes: base64url decoding skips characters that are
  // not base64 and ignores the unused low bits of the last one, so a decoded comparison took many
  // spellings of one token (`<sig>=`, `<sig>!`, a flipped last bit) as that token.
  const given = Buffer.from(token.slice(dot + 1));
  const expected = Buffer.from(sign(payload, secret).toString('base64url'));
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (!claims || typeof claims !== 'object') return undefined;
  const { upgradeIds, exp } = claims as Partial<ReadTokenClaims>;
  if (!Array.isArray(upgradeIds) || !upgradeIds.every((id) => typeof id === 'string') || typeof exp !== 'number') return undefined;
  if (exp * 1000 <= readClock(now)) return undefined;
  return { upgradeIds, exp };
}

/**
 * Finds a token in a request: the `token` query parameter, else a `progress-token.<token>` subprotocol.
 * A URL that does not parse (`//`, which node:http takes) holds no query token: the URL is what the
 * client sent, and a throw from a request handler that reads a token would end the process.
 *
 * @throws ProgressError `INVALID_ARGUMENT` when `req` is not a request (no `headers` object, a `url` that is not text)
 */
export function tokenFromRequest(req: IncomingMessage): string | undefined {
  if (!req || typeof req !== 'object' || !req.headers || typeof req.headers !== 'object' || (req.url !== undefined && typeof req.url !== 'string')) {
    throw new ProgressError('INVALID_ARGUMENT', '[@progress/ws-server] tokenFromRequest() needs an http.IncomingMessage');
  }
  let query: string | null = null;
  try {
    query = new URL(req.url ?? '/', 'http://localhost').searchParams.get('token');
  } catch {
    // no query token
  }
  if (query) return query;
  const header = req.headers['sec-websocket-protocol'];
  if (typeof header !== 'string') return undefined;
  for (const part of header.split(',')) {
    const p = part.trim();
    if (p.startsWith(TOKEN_SUBPROTOCOL_PREFIX)) return p.slice(TOKEN_SUBPROTOCOL_PREFIX.length);
  }
  return undefined;
}

/**
 * The `authenticate` and `authorize` hooks of read tokens, ready to spread into the server options.
 *
 * @example
 * new ProgressWebSocketServer({ ...readTokenAuth({ secret }) });
 */
export function readTokenAuth(options: ReadTokenAuthOptions): {
  authenticate: (req: IncomingMessage) => ReadTokenClaims | undefined;
  authorize: (principal: unknown, upgradeId: string) => boolean;
} {
  checkOptions(options, READ_TOKEN_AUTH_NAMES, 'readTokenAuth() options');
  checkSecret(options.secret);
  checkNow(options.now);
  const now = options.now ?? Date.now;
  return {
    authenticate: (req) => {
      const token = tokenFromRequest(req);
      return token === undefined ? undefined : verifyReadToken(token, options.secret, now);
    },
    authorize: (principal, upgradeId) => {
      const claims = principal as ReadTokenClaims | undefined;
      if (!claims || !Array.isArray(claims.upgradeIds) || claims.exp * 1000 <= readClock(now)) return false;
      return claims.upgradeIds.includes('*') || claims.upgradeIds.includes(upgradeId);
    },
  };
}
