import type { Socket } from 'node:net';
import { afterEach } from 'vitest';
import { MemoryStore, ProgressTracker, applyEventInPlace, type ProgressEvent, type ProgressStore, type UpgradeProgress } from '@progress/core';
import { WebSocket, type ClientOptions } from 'ws';
import type { ProgressWebSocketServer } from '../src/index.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Msg = Record<string, any>;

/** A protocol client for tests: collects every message, waits for the ones it needs. */
export class TestClient {
  readonly messages: Msg[] = [];
  closeCode: number | undefined;
  readonly closed: Promise<number>;
  #waiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.messages.push(JSON.parse(String(data)) as Msg);
      this.#wake();
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code) => {
        this.closeCode = code;
        this.#wake();
        resolve(code);
      }),
    );
  }

  static connect(url: string, options?: ClientOptions & { protocols?: string[] }): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, options?.protocols ?? [], options);
      const client = new TestClient(ws);
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode })));
    });
  }

  /** The client's TCP socket (to pause or cork it: a slow or dead peer as the server sees it). */
  get socket(): Socket {
    return (this.ws as unknown as { _socket: Socket })._socket;
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** Waits until `predicate` holds over the messages received so far. */
  async until(predicate: (messages: Msg[]) => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.messages)) {
      if (this.closeCode !== undefined) throw new Error(`connection closed (${this.closeCode}) while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${this.messages.length} messages, last: ${JSON.stringify(this.messages.at(-1))?.slice(0, 300)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits for the first message matching `match` after index `from`, and returns it. */
  async next(match: (m: Msg) => boolean, from = 0, timeoutMs = 10_000): Promise<Msg> {
    let found: Msg | undefined;
    await this.until((ms) => (found = ms.slice(from).find(match)) !== undefined, timeoutMs, 'a matching message');
    return found!;
  }

  /**
   * Sends a ping and waits for its pong: the server answers a connection's messages in order, so
   * every message sent before this one has then been answered.
   */
  async answered(): Promise<void> {
    const from = this.messages.length;
    this.send({ type: 'ping' });
    await this.next((m) => m.type === 'pong', from);
  }

  ofType(type: string, upgradeId?: string): Msg[] {
    return this.messages.filter((m) => m.type === type && (upgradeId === undefined || m.upgradeId === upgradeId));
  }

  /** The seqs of the progress_event frames received for `upgradeId`. */
  seqs(upgradeId: string): number[] {
    return this.ofType('progress_event', upgradeId).map((m) => m.data.seq as number);
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close();
    await this.closed;
  }
}

/**
 * Folds what a client received of one upgrade as the protocol says a client must (a snapshot
 * replaces the state, a resync drops it until the next snapshot, an event applies on top of the seq
 * before it), and lists every event that was not the next one: a gap handed out without a resync.
 */
export function foldClient(messages: Msg[], upgradeId: string): { state: UpgradeProgress | undefined; gaps: string[]; resyncs: string[] } {
  let state: UpgradeProgress | undefined;
  let waiting = false;
  const gaps: string[] = [];
  const resyncs: string[] = [];
  for (const m of messages) {
    if (m.upgradeId !== upgradeId) continue;
    if (m.type === 'resync') {
      resyncs.push(m.reason as string);
      state = undefined;
      waiting = true;
    } else if (m.type === 'snapshot') {
      state = structuredClone(m.data as UpgradeProgress);
      waiting = false;
    } else if (m.type === 'progress_event') {
      const event = m.data as ProgressEvent;
      if (waiting || (state?.lastSeq ?? 0) + 1 !== event.seq) gaps.push(`seq ${event.seq} on ${waiting ? 'a resync without its snapshot' : `seq ${state?.lastSeq}`}`);
      else state = applyEventInPlace(state, event);
    }
  }
  return { state, gaps, resyncs };
}

/** What the tests of a file open: see {@link closedAfterEach}. */
export interface Opened {
  /** The test's server, stopped after it. */
  server: ProgressWebSocketServer | undefined;
  /** Trackers, closed after the test. */
  readonly trackers: ProgressTracker[];
  /** Clients, closed after the test. */
  readonly clients: TestClient[];
  /** Connects a client, closed after the test. */
  connect(url: string, options?: Parameters<typeof TestClient.connect>[1]): Promise<TestClient>;
}

/**
 * The server, trackers and clients the tests of a file open, closed after each test: the clients,
 * then the server, then the trackers. Call once, at the top of the file.
 */
export function closedAfterEach(): Opened {
  const opened: Opened = {
    server: undefined,
    trackers: [],
    clients: [],
    async connect(url, options) {
      const c = await TestClient.connect(url, options);
      opened.clients.push(c);
      return c;
    },
  };
  afterEach(async () => {
    await Promise.all(opened.clients.splice(0).map((c) => c.close()));
    await opened.server?.stop();
    opened.server = undefined;
    await Promise.all(opened.trackers.splice(0).map((t) => t.close()));
  });
  return opened;
}

export async function openTracker(upgradeId: string, store?: ProgressStore): Promise<ProgressTracker> {
  return ProgressTracker.open({ upgradeId, planId: 'plan-1', clusterName: 'prod-cluster', ...(store ? { store } : {}) });
}

/**
 * A new MemoryStore holding the events of `upgradeId` up to `upToSeq` read from `events` (a store's
 * or a tracker's readEvents): a copy of a store that lacks the last events, as a tracker reopened
 * from a backup, or on a replica a failover left behind, finds it.
 */
export async function copyOfStore(upgradeId: string, events: AsyncIterable<ProgressEvent>, upToSeq = Infinity): Promise<MemoryStore> {
  let state: UpgradeProgress | undefined;
  const kept: ProgressEvent[] = [];
  for await (const e of events) {
    if (e.seq > upToSeq) break;
    state = applyEventInPlace(state, e);
    kept.push(e);
  }
  const copy = new MemoryStore();
  await copy.append(upgradeId, kept, 0, state!);
  return copy;
}

export function expectConsecutive(seqs: number[], from: number, to: number): void {
  const want = Array.from({ length: to - from + 1 }, (_, i) => from + i);
  if (seqs.length !== want.length || seqs.some((s, i) => s !== want[i])) {
    const firstBad = seqs.findIndex((s, i) => s !== want[i]);
    throw new Error(`expected seqs ${from}..${to} exactly once in order; got ${seqs.length} seqs, first mismatch at ${firstBad}: ${seqs.slice(Math.max(0, firstBad - 3), firstBad + 3).join(',')}`);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A promise and the function that resolves it: a gate a test opens, or a signal that something happened. */
export interface Deferred<T = void> {
  promise: Promise<T>;
  resolve: (value: T) => void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
