import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import { Writable, type Duplex } from 'node:stream';
import { randomUUID } from 'node:crypto';
import WebSocket, { WebSocketServer } from 'ws';
import { main } from '../src/cli/main.js';
import { shellArg } from '../src/cli/sources.js';
import { createProgressTracker, type StorageOption } from '../src/index.js';

export { accepts, freePort } from '../../../tools/test-utils/src/net.js';
export { deleteKeys } from '../../../tools/test-utils/src/redis.js';

/** A fresh temp folder; `cleanup()` removes every one made. */
const made: string[] = [];
export function tempDir(label = 'tracker'): string {
  const dir = mkdtempSync(join(tmpdir(), `progress-${label}-`));
  made.push(dir);
  return dir;
}
export function cleanupTempDirs(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** A folder holding the old module's real file, as the Python module laid it out. */
export function legacyDir(): string {
  const dir = tempDir('legacy');
  mkdirSync(join(dir, 'progress'));
  copyFileSync(new URL('../../storage-json/test/fixtures/upgrade_test-upgrade-123.json', import.meta.url), join(dir, 'progress', 'upgrade_test-upgrade-123.json'));
  return dir;
}

export const uniqueId = (label: string): string => `${label}-${randomUUID().slice(0, 8)}`;

/**
 * Waits until `test()` holds (`ms` at most by the monotonic clock, then fails naming `what` with
 * `text()`, the output so far).
 */
export async function until(what: string, test: () => boolean, text: () => string = () => '', ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!test()) {
    if (performance.now() > deadline) throw new Error(`never ${what}; output:\n${text()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A stream that keeps what is written, for the CLI's output. */
export class Capture extends Writable {
  text = '';
  isTTY = false;
  columns = 120;
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

/** A WebSocket client that keeps every message it gets. */
export async function wsClient(url: string): Promise<{ ws: WebSocket; messages: Array<Record<string, unknown>>; next(type: string, pred?: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> }> {
  const ws = new WebSocket(url);
  const messages: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (raw) => {
    messages.push(JSON.parse(raw.toString()) as Record<string, unknown>);
    for (const w of waiters.splice(0)) w();
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const next = async (type: string, pred: (m: Record<string, unknown>) => boolean = () => true) => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const found = messages.find((m) => m.type === type && pred(m));
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no ${type} message within 10 s; got ${messages.map((m) => m.type).join(', ')}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 100);
      });
    }
  };
  return { ws, messages, next };
}

/** Runs the `progress` command with `argv`, its output captured: the exit code and what it wrote. */
export async function runCli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new Capture();
  const err = new Capture();
  const code = await main(argv, out as unknown as NodeJS.WriteStream, err as unknown as NodeJS.WriteStream);
  return { code, out: out.text, err: err.text };
}

/** Records upgrade `upgradeId` in `storage`, started and completed, and closes its tracker. */
export async function completedUpgrade(upgradeId: string, storage: StorageOption): Promise<void> {
  const t = await createProgressTracker({ upgradeId, planId: 'p', clusterName: 'c', storage });
  await t.startUpgrade();
  await t.completeUpgrade();
  await t.close();
}

const packageDir = fileURLToPath(new URL('..', import.meta.url));

/** Whether util-linux's `script` is there to give {@link spawnCli} a terminal (`options.terminal`). */
export const hasScript = (): boolean => existsSync('/usr/bin/script');

/**
 * `progress <args>` as a user runs it, in a process of its own (from source, through tsx), stdout not
 * a terminal, with its output collected: both streams as printed (`output`), and each on its own.
 * The caller kills it when done (`child`). `options.stdout`, `options.stderr`: a file descriptor the stream goes to instead.
 * `options.env`: variables set (a string) or removed (undefined) in its environment.
 * `options.terminal`: run in a pseudo-terminal (through `script`, see {@link hasScript}), whose
 * output comes on stdout; `child.stdin.write('\x03')` is a Ctrl-C typed there.
 */
export function spawnCli(
  args: string[],
  options: { stdout?: number; stderr?: number; env?: Record<string, string | undefined>; terminal?: boolean } = {},
): { child: ChildProcess; output: () => string; stdout: () => string; stderr: () => string; exited: Promise<number | null> } {
  const argv = ['--import', 'tsx', '--conditions=@progress/source', 'src/cli/bin.ts', ...args];
  const [file, fileArgs] = options.terminal ? ['/usr/bin/script', ['-qfec', [process.execPath, ...argv].map(shellArg).join(' '), '/dev/null']] : [process.execPath, argv];
  const child = spawn(file, fileArgs, {
    cwd: packageDir,
    stdio: [options.terminal ? 'pipe' : 'ignore', options.stdout ?? 'pipe', options.stderr ?? 'pipe'],
    env: Object.fromEntries(Object.entries({ ...process.env, NO_COLOR: '1', ...options.env }).filter(([, value]) => value !== undefined)),
  });
  let text = '';
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => {
    text += d.toString();
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    text += d.toString();
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => text, stdout: () => out, stderr: () => err, exited };
}

/** A message a client sends a ws-server (the fields the tests look at). */
export interface ProtocolRequest {
  type: string;
  upgradeId?: string;
  sinceSeq?: number;
}

/**
 * A `ws` server speaking protocol v1: it welcomes each client and answers each of its messages with
 * what `answer` returns, given the request's number (1 for the first, over all connections) and its
 * connection's; it records every request (type, sinceSeq when sent, connection).
 */
export async function protocolServer(
  answer: (msg: ProtocolRequest, at: { request: number; connection: number }) => object[],
): Promise<{ url: string; requests: Array<{ type: string; sinceSeq?: number; connection: number }>; close(): Promise<void> }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => server.once('listening', resolve));
  const requests: Array<{ type: string; sinceSeq?: number; connection: number }> = [];
  let connections = 0;
  server.on('connection', (ws) => {
    const connection = ++connections;
    ws.send(JSON.stringify({ type: 'welcome', protocol: 1, serverId: 'fake' }));
    ws.on('message', (raw) => {
      const msg = JSON.parse(raw.toString()) as ProtocolRequest;
      requests.push({ type: msg.type, ...(msg.sinceSeq !== undefined ? { sinceSeq: msg.sinceSeq } : {}), connection });
      for (const frame of answer(msg, { request: requests.length, connection })) ws.send(JSON.stringify(frame));
    });
  });
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`,
    requests,
    close: async () => {
      for (const ws of server.clients) ws.terminate();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * A TCP server on 127.0.0.1 that takes connections and never answers a byte (a hung server, a
 * firewall that accepts and drops): `connected` resolves with the time of the first connection.
 */
export async function silentServer(): Promise<{ port: number; connected: Promise<number>; close(): Promise<void> }> {
  let onConnect!: (at: number) => void;
  const connected = new Promise<number>((resolve) => (onConnect = resolve));
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    onConnect(Date.now());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connected,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A request {@link recordRequests} saw: an HTTP request or a WebSocket upgrade, with the credentials it carried. */
export interface SeenRequest {
  kind: 'http' | 'upgrade';
  url: string;
  authorization?: string;
  protocol?: string;
}

/** Answers a WebSocket upgrade request 404, as a server without an endpoint at its path does. */
export const refuseUpgrade = (socket: Duplex): void => void socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');

/**
 * Listens with `server` (node:http or node:https) on 127.0.0.1 and records every request it gets
 * (HTTP and WebSocket upgrade), in order, before its own listeners see it; upgrades are answered
 * 404 unless `answerUpgrades` is false (something else takes them).
 */
export async function recordRequests(server: HttpServer, { answerUpgrades = true } = {}): Promise<{ seen: SeenRequest[]; port: number; close(): Promise<void> }> {
  const seen: SeenRequest[] = [];
  const record = (kind: SeenRequest['kind'], req: IncomingMessage) =>
    void seen.push({ kind, url: req.url ?? '', authorization: req.headers.authorization, protocol: req.headers['sec-websocket-protocol'] });
  server.prependListener('request', (req: IncomingMessage) => record('http', req));
  server.prependListener('upgrade', (req: IncomingMessage) => record('upgrade', req));
  if (answerUpgrades) server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => refuseUpgrade(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    seen,
    port: (server.address() as AddressInfo).port,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
