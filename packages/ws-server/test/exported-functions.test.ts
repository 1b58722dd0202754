import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { isProgressError } from '@progress/core';
import { ProgressWebSocketServer, createDashboardHandler, createReadToken, dashboardHtml, readTokenAuth, tokenFromRequest, verifyReadToken } from '../src/index.js';
import { thrown } from '../../../tools/test-utils/src/thrown.js';
import { rawExchange } from './raw.js';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';

/** The request a real node:http server receives for `request` (raw bytes), answered 204. */
async function receive(request: string): Promise<IncomingMessage> {
  let received: IncomingMessage | undefined;
  const http = createServer((req, res) => {
    received = req;
    res.writeHead(204).end();
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  try {
    await rawExchange((http.address() as AddressInfo).port, request, 2000);
  } finally {
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  }
  if (!received) throw new Error('the server received no request');
  return received;
}

describe('tokenFromRequest', () => {
  it('finds no query token in a URL that does not parse, and still reads the subprotocol: a client cannot make it throw', async () => {
    const token = createReadToken({ secret: SECRET, upgradeIds: ['u1'] });
    // node:http takes `//` as a request target; `new URL('//', base)` throws on it.
    const bare = await receive('GET // HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    expect(bare.url).toBe('//');
    expect(tokenFromRequest(bare)).toBeUndefined();
    expect(readTokenAuth({ secret: SECRET }).authenticate(bare)).toBeUndefined();
    const withProtocol = await receive(`GET //?token=x HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-WebSocket-Protocol: progress.v1, progress-token.${token}\r\nConnection: close\r\n\r\n`);
    expect(tokenFromRequest(withProtocol)).toBe(token);
    expect(readTokenAuth({ secret: SECRET }).authenticate(withProtocol)).toMatchObject({ upgradeIds: ['u1'] });
  });

  it('reads a token only from the query parameter token, or a subprotocol that begins with the prefix; an empty ?token= is no token', () => {
    const token = createReadToken({ secret: SECRET, upgradeIds: ['u1'] });
    const req = (url: string, protocols?: string) => ({ url, headers: protocols === undefined ? {} : { 'sec-websocket-protocol': protocols } }) as unknown as IncomingMessage;
    // A subprotocol that only contains the prefix is another one (offered by something else).
    expect(tokenFromRequest(req('/ws', `progress.v1, x-progress-token.${token}`))).toBeUndefined();
    expect(tokenFromRequest(req('/ws', `progress.v1, progress-token.${token}`))).toBe(token);
    // `?token=` left empty (a page whose token was not filled in) does not hide the subprotocol's.
    expect(tokenFromRequest(req('/ws?token=', `progress-token.${token}`))).toBe(token);
    expect(tokenFromRequest(req('/ws?access_token=' + token))).toBeUndefined();
    expect(tokenFromRequest(req('/ws?token=' + token))).toBe(token);
    // Both given: the query's, as the README says ("its token query parameter, else the subprotocol").
    expect(tokenFromRequest(req('/ws?token=' + token, 'progress.v1, progress-token.other'))).toBe(token);
  });

  it('refuses what is not a request with INVALID_ARGUMENT', () => {
    for (const req of [undefined, null, '/ws?token=x', { url: '/ws' }, { url: '/ws', headers: null }, { url: 42, headers: {} }]) {
      const err = thrown(() => tokenFromRequest(req as never));
      expect(isProgressError(err, 'INVALID_ARGUMENT'), `${JSON.stringify(req)}: ${String(err)}`).toBe(true);
      expect(isProgressError(thrown(() => readTokenAuth({ secret: SECRET }).authenticate(req as never)), 'INVALID_ARGUMENT')).toBe(true);
    }
  });
});

describe('dashboardHtml', () => {
  it("refuses a wsPath that names no endpoint the page could reach with INVALID_ARGUMENT, as createDashboardHandler's wsPath", () => {
    for (const wsPath of [undefined, null, 42, 'ws', '/ws?x=1', '/ws#x', '/w s']) {
      const err = thrown(() => dashboardHtml(wsPath as never));
      expect(isProgressError(err, 'INVALID_ARGUMENT') && /wsPath must start with "\/"/.test(err.message), `${String(wsPath)}: ${String(err)}`).toBe(true);
    }
    expect(dashboardHtml('/progress/ws')).toContain('<meta name="progress-ws-path" content="/progress/ws">');
  });
});

describe('read tokens: the clock and the lifetime', () => {
  const made = 1_000_000_000_000;
  const expired = () => createReadToken({ secret: SECRET, upgradeIds: ['u1'], ttlSeconds: 60, now: () => made });

  it('refuses a `now` that is not a function with INVALID_ARGUMENT, in each of them', () => {
    const token = expired();
    for (const fn of [
      () => createReadToken({ secret: SECRET, upgradeIds: ['u1'], now: 'x' as never }),
      () => verifyReadToken(token, SECRET, 1_000 as never),
      () => readTokenAuth({ secret: SECRET, now: Date.now() as never }),
    ]) {
      const err = thrown(fn);
      expect(isProgressError(err, 'INVALID_ARGUMENT'), String(err)).toBe(true);
    }
  });

  it('refuses to make a token that could never verify: a clock that gives no time (a Date, undefined) or a lifetime past any date', () => {
    for (const options of [
      { now: () => new Date() as never },
      { now: () => undefined as never },
      { now: () => Number.NaN },
      { ttlSeconds: 1e308 },
    ]) {
      const err = thrown(() => createReadToken({ secret: SECRET, upgradeIds: ['u1'], ...options }));
      expect(isProgressError(err, 'INVALID_ARGUMENT'), `${JSON.stringify(options)}: ${String(err)}`).toBe(true);
    }
  });

  it('refuses a ttlSeconds that is not a whole number > 0, and upgradeIds that are not non-empty strings', () => {
    // A token of ttlSeconds 0 would be dead when made; an empty id names no upgrade the scope could mean.
    for (const options of [{ ttlSeconds: 0 }, { ttlSeconds: -1 }, { ttlSeconds: 1.5 }, { upgradeIds: [''] }, { upgradeIds: ['u1', 7] }, { upgradeIds: 'u1' }]) {
      const err = thrown(() => createReadToken({ secret: SECRET, upgradeIds: ['u1'], ...options } as never));
      expect(isProgressError(err, 'INVALID_ARGUMENT'), `${JSON.stringify(options)}: ${String(err)}`).toBe(true);
    }
  });

  it('says what a too short secret lacks: a string is counted in characters (the README\'s rule), a Buffer in bytes', () => {
    // 15 characters, 30 bytes of UTF-8: refused as too short, by its characters. The message said
    // "at least 16 bytes", which this string has.
    const shortText = thrown(() => createReadToken({ secret: '\u00e9'.repeat(15), upgradeIds: ['u1'] }));
    expect(isProgressError(shortText, 'INVALID_ARGUMENT') && /string of at least 16 characters/.test(shortText.message), String(shortText)).toBe(true);
    const shortBuffer = thrown(() => verifyReadToken('x.y', Buffer.alloc(15)));
    expect(isProgressError(shortBuffer, 'INVALID_ARGUMENT') && /Buffer of at least 16 bytes/.test(shortBuffer.message), String(shortBuffer)).toBe(true);
    expect(verifyReadToken(createReadToken({ secret: '\u00e9'.repeat(16), upgradeIds: ['u1'] }), '\u00e9'.repeat(16))).toMatchObject({ upgradeIds: ['u1'] });
  });

  it('takes no expired token when the clock gives no time: it fails closed', () => {
    const token = expired();
    const later = made + 120_000;
    expect(verifyReadToken(token, SECRET, () => later)).toBeUndefined();
    for (const broken of [() => undefined, () => Number.NaN, () => 'soon']) {
      // Compared with NaN, `exp * 1000 <= now()` was false: the token never expired.
      const err = thrown(() => verifyReadToken(token, SECRET, broken as never));
      expect(isProgressError(err, 'INVALID_ARGUMENT'), String(err)).toBe(true);
      const auth = readTokenAuth({ secret: SECRET, now: broken as never });
      expect(() => auth.authenticate({ url: `/ws?token=${token}`, headers: {} } as never)).toThrow(/now/);
      expect(() => auth.authorize({ upgradeIds: ['u1'], exp: made / 1000 + 60 }, 'u1')).toThrow(/now/);
    }
  });

  it('takes a token up to the millisecond before its exp, not at it, and an authorize of its claims alike', () => {
    const token = expired();
    const exp = made / 1000 + 60;
    expect(verifyReadToken(token, SECRET, () => exp * 1000 - 1)).toEqual({ upgradeIds: ['u1'], exp });
    expect(verifyReadToken(token, SECRET, () => exp * 1000)).toBeUndefined();
    expect(readTokenAuth({ secret: SECRET, now: () => exp * 1000 - 1 }).authorize({ upgradeIds: ['u1'], exp }, 'u1')).toBe(true);
    expect(readTokenAuth({ secret: SECRET, now: () => exp * 1000 }).authorize({ upgradeIds: ['u1'], exp }, 'u1')).toBe(false);
  });
});

describe("readTokenAuth's authorize: a token's scope", () => {
  it("lets a token of upgradeIds ['*'] read every upgrade, and one of named ids those alone", () => {
    const auth = readTokenAuth({ secret: SECRET });
    const all = verifyReadToken(createReadToken({ secret: SECRET, upgradeIds: ['*'] }), SECRET);
    const some = verifyReadToken(createReadToken({ secret: SECRET, upgradeIds: ['u1', 'u2'] }), SECRET);
    for (const id of ['u1', 'u2', 'anything']) expect(auth.authorize(all, id), id).toBe(true);
    expect(auth.authorize(some, 'u2')).toBe(true);
    expect(auth.authorize(some, 'u3')).toBe(false);
    // An id is matched whole: a token for u1 does not read u10 (nor the id's prefix u).
    expect(auth.authorize(some, 'u10')).toBe(false);
    expect(auth.authorize(some, 'u')).toBe(false);
  });
});

describe('verifyReadToken: what it refuses although the signature is good', () => {
  /** A token signed with SECRET over any claims, as createReadToken signs (it makes only good claims itself). */
  const signed = (claims: unknown): string => {
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `${payload}.${createHmac('sha256', SECRET).update(payload).digest('base64url')}`;
  };
  const exp = Math.ceil(Date.now() / 1000) + 600;

  it('refuses claims whose upgradeIds are not all strings, or whose exp is not a number', () => {
    expect(verifyReadToken(signed({ upgradeIds: ['u1'], exp }), SECRET)).toEqual({ upgradeIds: ['u1'], exp });
    expect(verifyReadToken(signed({ upgradeIds: ['u1', 7], exp }), SECRET)).toBeUndefined();
    expect(verifyReadToken(signed({ upgradeIds: [null], exp }), SECRET)).toBeUndefined();
    expect(verifyReadToken(signed({ upgradeIds: 'u1', exp }), SECRET)).toBeUndefined();
    expect(verifyReadToken(signed({ upgradeIds: ['u1'], exp: String(exp) }), SECRET)).toBeUndefined();
  });

  it('refuses a token longer than 8192 characters, as the README says, even one it issued', () => {
    const ids = (n: number) => Array.from({ length: n }, (_, i) => `upgrade-${String(i).padStart(4, '0')}`);
    // Each id adds 17 characters of JSON, 4/3 of that in base64url: find the longest token within the bound.
    let n = 1;
    while (createReadToken({ secret: SECRET, upgradeIds: ids(n + 1) }).length <= 8192) n++;
    const within = createReadToken({ secret: SECRET, upgradeIds: ids(n) });
    const over = createReadToken({ secret: SECRET, upgradeIds: ids(n + 1) });
    expect(within.length).toBeLessThanOrEqual(8192);
    expect(over.length).toBeGreaterThan(8192);
    expect(verifyReadToken(within, SECRET)?.upgradeIds).toHaveLength(n);
    expect(verifyReadToken(over, SECRET)).toBeUndefined();
  });
});

describe('a null path', () => {
  it('is refused with INVALID_ARGUMENT, as a null port or host is, rather than taken as the default', () => {
    for (const fn of [() => new ProgressWebSocketServer({ path: null as never }), () => createDashboardHandler({ wsPath: null as never })]) {
      const err = thrown(fn);
      expect(isProgressError(err, 'INVALID_ARGUMENT') && /path must start with "\/"/i.test(err.message), String(err)).toBe(true);
    }
    expect(isProgressError(thrown(() => new ProgressWebSocketServer({ host: null as never })), 'INVALID_ARGUMENT')).toBe(true);
  });
});

describe('createDashboardHandler', () => {
  it('answers every status it serves, 405 included, with the security headers the README lists', async () => {
    const server = new ProgressWebSocketServer({ port: 0 });
    const { port } = await server.start();
    try {
      for (const request of ['GET / HTTP/1.1', 'GET /nope HTTP/1.1', 'GET /favicon.ico HTTP/1.1', 'POST / HTTP/1.1', 'DELETE /dashboard.js HTTP/1.1']) {
        const { response } = await rawExchange(port, `${request}\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`, 2000);
        const head = response.split('\r\n\r\n')[0]!.toLowerCase();
        for (const header of ["content-security-policy: default-src 'none'", 'x-content-type-options: nosniff', 'x-frame-options: deny', 'cache-control: no-store']) {
          expect(head, `${request}: ${header}`).toContain(header);
        }
      }
    } finally {
      await server.stop();
    }
  });
});
