// Where `progress watch` looks for a ws-server's WebSocket endpoint: a ws:// URL without the server's
// path (its address as a user copies it), and a dashboard mounted under a path prefix, each against a
// real ws-server.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressWebSocketServer, createProgressTracker } from '../src/index.js';
import { cleanupTempDirs, runCli as run } from './helpers.js';

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
      expect(bare.err).toContain(`HTTP 404 Not Found (no WebSocket endpoint at ws://127.0.0.1:${port}/ nor at ws://127.0.0.1:${port}/ws; the ws-server listens on /ws unless its \`path\` option says otherwise`);
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
