import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { isProgressError } from '@progress/core';
import { createReadToken, dashboardHtml, readTokenAuth, tokenFromRequest } from '../src/index.js';
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
