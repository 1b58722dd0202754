// Where `progress watch` looks for a ws-server's WebSocket endpoint: a ws:// URL without the server's
// path (its address as a user copies it), and a dashboard mounted under a path prefix, each against a
// real ws-server.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressWebSocketServer, createProgressTracker, dashboardHtml } from '../src/index.js';
import { parseSource } from '../src/cli/sources.js';
import { cleanupTempDirs, recordRequests, refuseUpgrade, runCli as run } from './helpers.js';

afterAll(() => cleanupTempDirs());

/** A ws-server holding upgrade `id`, completed. */
async function serving(server: ProgressWebSocketServer, id: string) {
  const t = await createProgressTracker({ upgradeId: id, planId: 'p', clusterName: 'c', webSocket: server });
  await t.startUpgrade();
  await t.completeUpgrade();
  return t;
}

/** An app's own HTTP server, `handle` its requests, with a ws-server attached on `path`. */
async function attached(path: string, handle: (ws: ProgressWebSocketServer) => Parameters<typeof createServer>[1]) {
  const http: Server = createServer((req, res) => handle(ws)!(req, res));
  const ws = new ProgressWebSocketServer({ server: http, path });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  await ws.start();
  return {
    ws,
    port: (http.address() as AddressInfo).port,
    close: async () => {
      await ws.stop();
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
    },
  };
}

describe('progress watch ws://host:port, without the server\'s path', () => {
  it('tries the default path /ws after the root answers 404, and says which URL it used', async () => {
    const server = new ProgressWebSocketServer({ port: 0 });
    const { port } = await server.start();
    const t = await serving(server, 'no-path');
    try {
      for (const url of [`ws://127.0.0.1:${port}`, `ws://127.0.0.1:${port}/#no-path`]) {
        const result = await run('watch', url, 'no-path');
        expect(result, url).toMatchObject({ code: 0, err: '' });
        expect(result.out).toContain(`no WebSocket endpoint at ws://127.0.0.1:${port}/ (HTTP 404); trying ws://127.0.0.1:${port}/ws`);
        expect(result.out).toMatch(/no-path .*COMPLETED/);
      }
    } finally {
      await t.close();
      await server.stop();
    }
  });

  it('ends with exit code 3 naming each URL tried, and says where the endpoint usually is', async () => {
    const server = new ProgressWebSocketServer({ port: 0, path: '/elsewhere' });
    const { port } = await server.start();
    const t = await serving(server, 'u1');
    try {
      const bare = await run('watch', `ws://127.0.0.1:${port}`, 'u1');
      expect(bare.code).toBe(3);
      expect(bare.err).toContain(`HTTP 404 Not Found (no WebSocket endpoint at ws://127.0.0.1:${port}/ nor at ws://127.0.0.1:${port}/ws; the ws-server listens on /ws unless its \`path\` option says otherwise: give the path it was given (a dashboard page names it in its progress-ws-path meta tag))`);
      // A wrong path is not replaced (the user named one), but the default is suggested.
      const wrong = await run('watch', `ws://127.0.0.1:${port}/wss`, 'u1');
      expect(wrong.code).toBe(3);
      expect(wrong.out).not.toContain('trying');
      expect(wrong.err).toContain(`no WebSocket endpoint at ws://127.0.0.1:${port}/wss; the ws-server listens on /ws unless its \`path\` option says otherwise: try ws://127.0.0.1:${port}/ws`);
      // The path it was given works.
      expect(await run('watch', `ws://127.0.0.1:${port}/elsewhere`, 'u1')).toMatchObject({ code: 0, err: '' });
    } finally {
      await t.close();
      await server.stop();
    }
  });
});

describe('progress watch <dashboard URL> of a dashboard mounted under a path prefix', () => {
  it('connects to the endpoint the page names (the README\'s /progress/ and /progress/ws)', async () => {
    const app = await attached('/progress/ws', (ws) => (req, res) => (req.url?.startsWith('/progress/') ? ws.dashboardHandler(req, res) : res.writeHead(404).end()));
    const t = await serving(app.ws, 'prefixed');
    try {
      const result = await run('watch', `http://127.0.0.1:${app.port}/progress/?token=x#prefixed`);
      expect(result).toMatchObject({ code: 0, err: '' });
      expect(result.out).toMatch(/prefixed .*COMPLETED/);
      expect(result.out).not.toContain('no WebSocket endpoint');
    } finally {
      await t.close();
      await app.close();
    }
  });

  it('reads the path from the page when it is not beside it', async () => {
    const app = await attached('/live/socket', (ws) => (req, res) => (req.url?.startsWith('/ops/dash/') ? ws.dashboardHandler(req, res) : res.writeHead(404).end()));
    const t = await serving(app.ws, 'named');
    try {
      const result = await run('watch', `http://127.0.0.1:${app.port}/ops/dash/index.html#named`);
      expect(result).toMatchObject({ code: 0, err: '' });
      expect(result.out).toMatch(/named .*COMPLETED/);
    } finally {
      await t.close();
      await app.close();
    }
  });

  it('once connected to the endpoint the page names, ends on its 404 rather than trying the guesses it no longer needs', async () => {
    // The endpoint the page names (/live/socket) serves, then goes (its server stopped; the app
    // answers every upgrade left to it 404). The guesses beside the page were never the endpoint:
    // a reconnect is to the one URL used, and its 404 is final.
    const upgrades: string[] = [];
    let gone = false;
    const http: Server = createServer((req, res) => (req.url?.startsWith('/ops/dash/') ? live.dashboardHandler(req, res) : res.writeHead(404).end()));
    http.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
      upgrades.push(req.url ?? '');
      if (gone || req.url !== '/live/socket') refuseUpgrade(socket);
    });
    const live = new ProgressWebSocketServer({ server: http, path: '/live/socket' });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const port = (http.address() as AddressInfo).port;
    await live.start();
    const t = await createProgressTracker({ upgradeId: 'gone', planId: 'p', clusterName: 'c', webSocket: live });
    try {
      await t.startUpgrade();
      const watching = run('watch', `http://127.0.0.1:${port}/ops/dash/#gone`);
      for (let i = 0; i < 400 && live.getStats().clients === 0; i++) await new Promise((r) => setTimeout(r, 25));
      expect(live.getStats().clients).toBe(1);
      gone = true;
      await live.stop();
      const result = await watching;
      expect(result.code, result.out + result.err).toBe(3);
      expect(result.err).toContain(`no WebSocket endpoint at ws://127.0.0.1:${port}/live/socket)`);
      expect(upgrades.filter((url) => url !== '/live/socket')).toEqual([]);
      expect(upgrades.length).toBeGreaterThanOrEqual(2);
    } finally {
      await t.close();
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
    }
  });

  it('tries the endpoint beside the page when the page cannot be read (a proxy serving only the socket)', async () => {
    const app = await attached('/progress/ws', () => (_req, res) => res.writeHead(403).end());
    const t = await serving(app.ws, 'guessed');
    try {
      for (const page of ['/progress/', '/progress']) {
        const result = await run('watch', `http://127.0.0.1:${app.port}${page}#guessed`);
        expect(result, page).toMatchObject({ code: 0, err: '' });
        expect(result.out).toMatch(/guessed .*COMPLETED/);
      }
    } finally {
      await t.close();
      await app.close();
    }
  });
});

describe('progress watch <dashboard URL>: what the page read may do', () => {
  /** A server answering HTTP requests with `page`, recording every request (HTTP and WebSocket upgrade); upgrades are answered 404. */
  const recording = (page: (req: IncomingMessage, res: ServerResponse) => void) => recordRequests(createServer(page));

  it('does not take the token to another host a redirect of the page leads to', async () => {
    // The page the user named redirects to a page on another host (`localhost` is another origin
    // than `127.0.0.1`), which names an endpoint of its own: neither `--token` nor `?token=` may go there.
    const other = await recording((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(dashboardHtml('/elsewhere')));
    const named = await recording((_req, res) => res.writeHead(302, { location: `http://localhost:${other.port}/page/` }).end());
    try {
      const result = await run('watch', `http://127.0.0.1:${named.port}/?token=query-secret`, 'u1', '--token', 'flag-secret', '--connect-timeout', '5');
      expect(result.code).toBe(3);
      expect(other.seen.filter((r) => r.kind === 'upgrade')).toEqual([]);
      expect(JSON.stringify(other.seen)).not.toMatch(/secret/);
      // The endpoint beside the page, on the host named, is the one tried.
      expect(named.seen.filter((r) => r.kind === 'upgrade').map((r) => r.url)).toEqual(['/ws?token=query-secret']);
    } finally {
      await named.close();
      await other.close();
    }
  });

  it('reads no more of the page than its head: a page that never ends is not read to the timeout', async () => {
    // The meta tag comes first, then the body never ends: the endpoint it names is used (the read
    // stops once it has the tag) rather than the guess beside the page after the read times out.
    let written = 0;
    const page = await recording((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.write(dashboardHtml('/named'));
      const filler = Buffer.alloc(64 * 1024, 'x');
      // Every chunk handed to the socket is counted, the one that fills its buffer too (the first
      // write of 64 KiB already does: counting only writes that returned true counted none).
      const pump = (): void => {
        let room = true;
        while (!res.destroyed && room) {
          written += filler.length;
          room = res.write(filler);
        }
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    });
    try {
      const result = await run('watch', `http://127.0.0.1:${page.port}/`, 'u1', '--connect-timeout', '30');
      expect(result.code).toBe(3);
      expect(page.seen.filter((r) => r.kind === 'upgrade').map((r) => r.url)).toEqual(['/named', '/ws']);
      // Not read on: the server could write no more than its socket buffers hold.
      expect(written).toBeLessThan(32 * 1024 * 1024);
    } finally {
      await page.close();
    }
  });

  it('reads 64 KiB of a page at most, as the README says: a meta tag past them is not looked for', async () => {
    // A page that names its endpoint only after 64 KiB: what is read of it names none, so the one
    // beside the page is tried (a limit dropped or raised would find '/named' and try it first).
    const page = await recording((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<!doctype html><html><head><!-- ${'x'.repeat(64 * 1024)} -->${dashboardHtml('/named')}`);
    });
    try {
      const result = await run('watch', `http://127.0.0.1:${page.port}/`, 'u1', '--connect-timeout', '30');
      expect(result.code).toBe(3);
      expect(page.seen.filter((r) => r.kind === 'upgrade').map((r) => r.url)).toEqual(['/ws']);
    } finally {
      await page.close();
    }
  });

  it('reads the page with the token (--token as a bearer header, user:password@ as basic), as the WebSocket request sends it', async () => {
    // A page behind the same authentication as its endpoint: read without the credentials, it names
    // nothing, and the endpoint it names (not beside it) is never tried.
    const page = await recording((req, res) => {
      const allowed = req.headers.authorization === 'Bearer flag-secret' || req.headers.authorization === `Basic ${Buffer.from('alice:pw').toString('base64')}`;
      if (allowed) res.writeHead(200, { 'content-type': 'text/html' }).end(dashboardHtml('/named'));
      else res.writeHead(401).end();
    });
    try {
      expect((await run('watch', `http://127.0.0.1:${page.port}/`, 'u1', '--token', 'flag-secret', '--connect-timeout', '5')).code).toBe(3);
      expect((await run('watch', `http://alice:pw@127.0.0.1:${page.port}/`, 'u1', '--connect-timeout', '5')).code).toBe(3);
      expect(page.seen.filter((r) => r.kind === 'http').map((r) => r.authorization)).toEqual(['Bearer flag-secret', `Basic ${Buffer.from('alice:pw').toString('base64')}`]);
      expect(page.seen.filter((r) => r.kind === 'upgrade').map((r) => r.url)).toEqual(['/named', '/ws', '/named', '/ws']);
    } finally {
      await page.close();
    }
  });

  it('stops reading the page at its meta tag: a page that then sends nothing more, without ending, is not waited for to the timeout', async () => {
    const page = await recording((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      // The head, then nothing: the connection held open (a server that stalls, a proxy that buffers).
      res.write(dashboardHtml('/named').split('</head>')[0]!);
    });
    try {
      const result = await run('watch', `http://127.0.0.1:${page.port}/`, 'u1', '--connect-timeout', '30');
      expect(result.code).toBe(3);
      // The endpoint the page names, then the guess beside it: not only the guess, after the page's read timed out.
      expect(page.seen.filter((r) => r.kind === 'upgrade').map((r) => r.url)).toEqual(['/named', '/ws']);
    } finally {
      await page.close();
    }
  });

  it('ignores a meta tag that names no path the ws-server could have (a URL, a query): the guess beside the page is tried', async () => {
    for (const content of ['ws://elsewhere.example/ws', '/named?x=1', 'named']) {
      const page = await recording((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><html><head><meta name="progress-ws-path" content="${content}"></head><body></body></html>`));
      try {
        expect((await run('watch', `http://127.0.0.1:${page.port}/`, 'u1', '--connect-timeout', '5')).code, content).toBe(3);
        expect(page.seen.filter((r) => r.kind === 'upgrade').map((r) => r.url), content).toEqual(['/ws']);
      } finally {
        await page.close();
      }
    }
  });

  it('tries /ws after a 404 at the endpoint beside a page that cannot be read, as the README says', async () => {
    // A dashboard mounted under /progress/ by an app whose ws-server keeps its default path /ws.
    const app = await attached('/ws', () => (_req, res) => res.writeHead(403).end());
    const t = await serving(app.ws, 'rooted');
    try {
      const result = await run('watch', `http://127.0.0.1:${app.port}/progress/#rooted`);
      expect(result).toMatchObject({ code: 0, err: '' });
      expect(result.out).toContain(`no WebSocket endpoint at ws://127.0.0.1:${app.port}/progress/ws (HTTP 404); trying ws://127.0.0.1:${app.port}/ws`);
      expect(result.out).toMatch(/rooted .*COMPLETED/);
    } finally {
      await t.close();
      await app.close();
    }
  });
});

describe('progress watch <dashboard URL of its index.html>', () => {
  it('guesses the endpoint beside the page, in its folder, not under the file', async () => {
    expect(await parseSource('http://127.0.0.1:8765/progress/index.html#u1', true)).toEqual({
      kind: 'ws',
      url: 'ws://127.0.0.1:8765/progress/ws',
      page: 'http://127.0.0.1:8765/progress/index.html',
      alternatives: ['ws://127.0.0.1:8765/ws'],
      fragment: 'u1',
    });
  });
});
