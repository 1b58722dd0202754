import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { ProgressTracker } from '@progress/core';
import { ProgressWebSocketServer } from '../src/index.js';
import { openTracker, sleep } from './helpers.js';
import { clientFrame, upgradeRequest } from './raw.js';

// A close the peer starts is completed by the server (its close frame, then the end of its side), and
// the connection is let go once the peer ends its side too. A peer that never does (it keeps the TCP
// connection open, or stops reading before the server's close frame reaches it) held the connection,
// its subscriptions and their store watches, and the bytes queued for it, for ws' own 30 s instead of
// `closeTimeoutMs`. (Found by a review on 2026-11-30; the test failed before the fix.)

let server: ProgressWebSocketServer | undefined;
let tracker: ProgressTracker | undefined;
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await server?.stop();
  await tracker?.close();
  server = undefined;
  tracker = undefined;
});

/** A WebSocket peer (handshake by hand) that keeps its side of the TCP connection open whatever the server does. */
function halfOpenPeer(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    sockets.push(socket);
    let head = '';
    socket.on('error', () => undefined);
    const onData = (d: Buffer): void => {
      head += d.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      if (head.startsWith('HTTP/1.1 101')) resolve(socket);
      else reject(new Error(head));
    };
    socket.on('data', onData);
    socket.on('connect', () => socket.write(upgradeRequest('/ws')));
  });
}

describe('a close the peer starts', () => {
  it('lets the connection and its subscriptions go within closeTimeoutMs when the peer never ends its side', async () => {
    server = new ProgressWebSocketServer({ port: 0, closeTimeoutMs: 100 });
    const { port } = await server.start();
    tracker = await openTracker('u1');
    server.track(tracker);
    const peer = await halfOpenPeer(port);
    peer.write(clientFrame(0x1, Buffer.from(JSON.stringify({ type: 'subscribe', upgradeId: 'u1' })), true));
    for (let i = 0; i < 100 && server.getStats().framesSent < 3; i++) await sleep(10); // welcome, subscribed, snapshot
    expect(server.getStats().clients).toBe(1);
    // A close frame (1000), and nothing more: the peer's side stays open.
    peer.write(clientFrame(0x8, Buffer.from([0x03, 0xe8]), true));
    for (let i = 0; i < 250 && server.getStats().clients > 0; i++) await sleep(20);
    expect(server.getStats().clients).toBe(0);
  }, 20_000);
});
