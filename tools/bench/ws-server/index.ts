// Fan-out bench of @progress/ws-server beside raw `ws` (each message sent to each client) and
// socket.io's broadcast, with the clients in another process. Run from the repo root:
//   npx tsx --conditions=@progress/source tools/bench/ws-server/index.ts
// Rows: delivered messages/s (deliveries / time from the first send to the last delivery), the
// last-delivery time, and the latency of single events sent one at a time (light traffic).
import { fork, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { ProgressTracker, type ProgressEvent } from '@progress/core';
import { Server as IoServer } from 'socket.io';
import { WebSocketServer, WebSocket } from 'ws';
import { ProgressWebSocketServer } from '../../../packages/ws-server/src/index.js';

const BURST = 8; // messages produced per tick, by every implementation alike
const SINGLES = 25; // single events for the light-traffic latency
const plan = (process.env.BENCH_CLIENTS ? [{ clients: Number(process.env.BENCH_CLIENTS), messages: 500 }] : [
  { clients: 200, messages: 1500 },
  { clients: 1000, messages: 500 },
]);

interface Result {
  impl: string;
  clients: number;
  messages: number;
  deliveredPerSec: number;
  lastDeliveryMs: number;
  singleP50Ms: number;
}

const clientScript = fileURLToPath(new URL('./client.ts', import.meta.url));
const tick = () => new Promise<void>((r) => setImmediate(r));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function startClients(impl: string, url: string, clients: number, messages: number): { child: ChildProcess; ready: Promise<void>; done: Map<number, number> } {
  const child = fork(clientScript, [impl, url, String(clients), String(messages + SINGLES + 8)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  // index of a message -> when it had reached every client (ms since the epoch, clock of the client process)
  const done = new Map<number, number>();
  const ready = new Promise<void>((resolve) => {
    child.on('message', (msg: { ready?: boolean; done?: [number, number] }) => {
      if (msg.ready) resolve();
      if (msg.done) done.set(msg.done[0], msg.done[1]);
    });
  });
  return { child, ready, done };
}

async function waitFor(done: Map<number, number>, count: number, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (done.size < count) {
    if (Date.now() > deadline) throw new Error(`only ${done.size}/${count} messages reached every client`);
    await sleep(5);
  }
}

/** Makes the event strings every implementation sends: the real progress_event frames. */
async function makeFrames(count: number): Promise<string[]> {
  const frames: string[] = [];
  const capture = { name: 'capture', handle: (ev: ProgressEvent) => void frames.push(JSON.stringify({ type: 'progress_event', upgradeId: ev.upgradeId, data: ev })) };
  const t = await ProgressTracker.open({ upgradeId: 'bench', planId: 'plan-1', clusterName: 'bench-cluster', sinks: [capture] });
  await t.startUpgrade();
  await t.addTask('nodes', 'Roll nodes');
  while (frames.length < count + 3) await t.updateTaskProgress('nodes', (frames.length % 99) + 1, `node ${frames.length}`);
  await t.close();
  return frames;
}

type Send = (index: number) => void;

/** Runs a throughput phase then a single-event phase against one implementation. */
async function measure(impl: string, url: string, clients: number, messages: number, send: Send, firstIndex: number): Promise<Result> {
  const c = startClients(impl, url, clients, firstIndex + messages + SINGLES);
  await c.ready;
  const t0 = Date.now();
  for (let i = 0; i < messages; i += BURST) {
    for (let k = i; k < Math.min(messages, i + BURST); k++) send(firstIndex + k);
    await tick();
  }
  await waitFor(c.done, messages);
  let last = 0;
  for (const t of c.done.values()) last = Math.max(last, t);
  const elapsed = Math.max(1, last - t0);
  const latencies: number[] = [];
  for (let s = 0; s < SINGLES; s++) {
    const index = firstIndex + messages + s;
    await sleep(20);
    const sentAt = Date.now();
    send(index);
    await waitFor(c.done, messages + s + 1);
    latencies.push(c.done.get(index)! - sentAt);
  }
  latencies.sort((a, b) => a - b);
  c.child.send({ stop: true });
  await new Promise((r) => c.child.once('exit', r));
  return { impl, clients, messages, deliveredPerSec: Math.round((clients * messages) / (elapsed / 1000)), lastDeliveryMs: elapsed, singleP50Ms: latencies[Math.floor(latencies.length / 2)]! };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as { port: number }).port;
}

async function benchProgress(clients: number, messages: number): Promise<Result> {
  const server = new ProgressWebSocketServer({ port: 0, heartbeatMs: 0, maxBufferedBytes: 64 * 1024 * 1024 });
  const { url } = await server.start();
  const tracker = await ProgressTracker.open({ upgradeId: 'bench', planId: 'plan-1', clusterName: 'bench-cluster' });
  server.track(tracker);
  await tracker.startUpgrade();
  await tracker.addTask('nodes', 'Roll nodes');
  // The real path: each send is a tracker command; the events reach the server as its sink.
  let n = 0;
  const send: Send = () => void tracker.updateTaskProgress('nodes', (n++ % 99) + 1, `node ${n}`);
  const r = await measure('progress', url, clients, messages, send, 4);
  await server.stop();
  await tracker.close();
  return { ...r, impl: '@progress/ws-server (tracker -> sink)' };
}

async function benchWs(clients: number, messages: number, frames: string[]): Promise<Result> {
  const http = createServer();
  const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
  const port = await listen(http);
  const send: Send = (i) => {
    for (const ws of wss.clients) if (ws.readyState === WebSocket.OPEN) ws.send(frames[i - 1]!);
  };
  const r = await measure('ws', `ws://127.0.0.1:${port}`, clients, messages, send, 4);
  for (const ws of wss.clients) ws.terminate();
  wss.close();
  await new Promise((r2) => http.close(r2));
  return { ...r, impl: 'ws, each message to each client' };
}

async function benchSocketIo(clients: number, messages: number, frames: string[]): Promise<Result> {
  const http = createServer();
  const ioServer = new IoServer(http, { transports: ['websocket'], perMessageDeflate: false, serveClient: false });
  const port = await listen(http);
  const send: Send = (i) => void ioServer.emit('m', frames[i - 1]!);
  const r = await measure('socketio', `http://127.0.0.1:${port}`, clients, messages, send, 4);
  ioServer.disconnectSockets(true);
  await new Promise((r2) => ioServer.close(() => r2(undefined)));
  return { ...r, impl: 'socket.io broadcast (io.emit)' };
}

const results: Result[] = [];
const maxMessages = Math.max(...plan.map((p) => p.messages)) + SINGLES + 16;
const frames = await makeFrames(maxMessages);
const avgBytes = Math.round(frames.reduce((s, f) => s + Buffer.byteLength(f), 0) / frames.length);
console.log(`ws-server fan-out bench: ~${avgBytes}-byte progress_event messages, ${BURST} per tick, clients in a second process\n`);
for (const { clients, messages } of plan) {
  results.push(await benchProgress(clients, messages));
  results.push(await benchWs(clients, messages, frames));
  results.push(await benchSocketIo(clients, messages, frames));
}

const TARGET = 3; // delivered messages/s of @progress/ws-server, as a multiple of socket.io's
let missed = false;
const header = ['clients', 'implementation', 'messages', 'delivered msg/s', 'last delivery ms', 'single event p50 ms', 'vs socket.io', 'target'];
const rows = results.map((r) => {
  const io = results.find((x) => x.clients === r.clients && x.impl.startsWith('socket.io'))!;
  const ratio = r.deliveredPerSec / io.deliveredPerSec;
  let target = '';
  if (r.impl.startsWith('@progress')) {
    const pass = ratio >= TARGET;
    missed ||= !pass;
    target = `>= ${TARGET}x ${pass ? 'PASS' : 'FAIL'}`;
  }
  return [String(r.clients), r.impl, String(r.messages), r.deliveredPerSec.toLocaleString('en-US'), String(r.lastDeliveryMs), String(r.singleP50Ms), `${ratio.toFixed(2)}x`, target];
});
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => (i === 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
console.log(line(header));
console.log(widths.map((w) => '-'.repeat(w)).join('  '));
for (const row of rows) console.log(line(row));
process.exit(missed ? 1 : 0);
