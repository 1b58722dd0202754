import type { Socket } from 'node:net';
import type { Logger } from '@progress/core';
import { WebSocket } from 'ws';
import { textFrame } from './frame.js';
import type { ResolvedOptions } from './options.js';
import type { ServerMessage } from './protocol.js';
import type { ServerStats } from './stats.js';
import type { Subscription, WildcardSubscription } from './subscription.js';

/**
 * One connected client: its subscriptions, its rate limit, and the one way bytes reach it.
 *
 * Frames are written straight to the TCP socket, pre-framed and shared between clients; the socket
 * is corked on the first frame of a tick and uncorked on the next tick, so that the frames a client
 * is owed in one tick leave in one write, and a lone frame still leaves at once.
 */
export class ClientConnection {
  readonly subs = new Map<string, Subscription>();
  wildcard: WildcardSubscription | undefined;
  /** Set by the pong that answers the last ping, cleared by each heartbeat. */
  alive = true;
  /** The payload of the last ping, which its pong echoes. */
  ping: Buffer | undefined;
  /** The bytes the socket had queued for the kernel at the last heartbeat (see {@link reading}). */
  #queuedAtBeat = 0;
  /** Bytes of live frames held for this client's subscriptions while they replay, all of them together. */
  #heldBytes = 0;
  /**
   * The last frame held that is larger than half of `maxBufferedBytes` (see {@link #excused}), and how
   * many holds of it are not released yet: a live event's frame, one buffer shared with every client
   * it is sent to, held by each subscription of this client that replays.
   */
  #bigHeld: Buffer | undefined;
  #bigHolds = 0;
  /** Bytes written to the socket by {@link sendFrame}, all told: where each frame ends in the stream. */
  #written = 0;
  /**
   * The last frame written that is larger than half of `maxBufferedBytes` (see {@link #excused}), and
   * where each copy of it written since ends in the stream: one buffer sent to several subscriptions
   * at once (a resync of an upgrade followed by name and through `*`) is one buffer in memory.
   */
  #big: Buffer | undefined;
  #bigEnds: number[] = [];
  /** The wait for the socket to drain that every waiter of {@link drained} shares, while one runs. */
  #drainWait: Promise<void> | undefined;
  /** The chain that runs this client's messages in order. */
  queue: Promise<void> = Promise.resolve();
  readonly #socket: Socket | undefined;
  readonly #options: ResolvedOptions;
  readonly #stats: ServerStats;
  readonly #logger: Logger;
  #corked = false;
  /** Bytes written to the corked socket since it was last handed to the kernel (see {@link sendFrame}). */
  #corkedBytes = 0;
  #closing = false;
  #killTimer: NodeJS.Timeout | undefined;
  #tokens: number;
  // A monotonic clock: Date.now() set back (NTP, a VM restored) took the tokens of that span away,
  // and the connection was refused every message until the wall clock caught up.
  #refilledAt = performance.now();
  #violations = 0;

  constructor(
    readonly id: number,
    readonly ws: WebSocket,
    readonly principal: unknown,
    options: ResolvedOptions,
    stats: ServerStats,
  ) {
    this.#options = options;
    this.#stats = stats;
    this.#logger = options.logger;
    this.#tokens = options.rateLimit.burst;
    // ws keeps its TCP socket in `_socket`; writing complete frames to it is what ws's Sender does.
    this.#socket = (ws as unknown as { _socket?: Socket })._socket;
    ws.once('close', () => {
      this.#closing = true;
      if (this.#killTimer) clearTimeout(this.#killTimer);
      this.#killTimer = undefined;
    });
  }

  /** True while frames may be sent. */
  get open(): boolean {
    return !this.#closing && this.ws.readyState === WebSocket.OPEN;
  }

  /** Bytes accepted but not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  /** Sends a pre-built frame (see {@link textFrame}). Returns false when the client is gone. */
  sendFrame(frame: Buffer): boolean {
    if (!this.open) return false;
    const socket = this.#socket;
    if (!socket) {
      // No raw socket (should not happen with ws 8): let ws frame it again.
      this.ws.send(frame.subarray(frame.length - payloadLength(frame)));
    } else {
      if (!this.#corked) {
        this.#corked = true;
        socket.cork();
        scheduleUncork(this);
      }
      socket.write(frame);
      // Handed to the kernel once they fill a write, not held corked for the rest of the tick: a burst
      // of events in one tick (a tracker's batch, a page of store events, a producer whose awaits never
      // leave the microtask queue) would otherwise pile up here, unsent whatever the client reads, and
      // pass maxBufferedBytes for every client, which were then all closed as slow.
      this.#corkedBytes += frame.length;
      if (this.#corkedBytes >= socket.writableHighWaterMark) {
        this.#corkedBytes = 0;
        socket.uncork();
        socket.cork();
      }
    }
    this.#written += frame.length;
    if (frame.length > this.#options.maxBufferedBytes / 2) {
      if (frame !== this.#big) {
        this.#big = frame;
        this.#bigEnds = [];
      }
      this.#bigEnds.push(this.#written);
    }
    this.#stats.framesSent++;
    this.#checkBacklog();
    return true;
  }

  /**
   * Counts a frame held for one of this client's subscriptions: what one client makes the server
   * keep, held frames of every subscription and its socket's buffer together, stays within
   * `maxBufferedBytes` (past it, the client is closed as slow), but for the last large frame held
   * (see {@link #checkBacklog}).
   */
  hold(frame: Buffer): void {
    this.#heldBytes += frame.length;
    if (frame.length > this.#options.maxBufferedBytes / 2) {
      if (frame !== this.#bigHeld) {
        this.#bigHeld = frame;
        this.#bigHolds = 0;
      }
      this.#bigHolds++;
    }
    this.#checkBacklog();
  }

  /**
   * Closes the client as slow when what it was not sent yet, held frames included, passes
   * `maxBufferedBytes`, not counting the unsent part of the last frame larger than half the limit
   * written (a snapshot of a big upgrade, or a big event; each copy of that one buffer written since)
   * nor the last one held during a replay (a big live event; each hold of that one buffer): a snapshot
   * larger than the limit could otherwise never be sent, a client reading one at a normal speed would
   * be closed by the next event, and reconnect to be closed again; and a big live event that comes
   * during a replay would close a client that would have read it a moment later, when it is sent. What
   * comes beside them counts: a client that does not read is closed once that passes the limit, so one
   * client holds the server to at most the limit and those two frames (a snapshot's or a live event's
   * bytes are shared with every client sent the same one).
   */
  #checkBacklog(): void {
    if (this.ws.bufferedAmount + this.#heldBytes - this.#excused() > this.#options.maxBufferedBytes) this.closeSlow();
  }

  /**
   * The bytes of the copies of the last large frame written (see {@link #big}) still in the socket's
   * buffer, and of the holds of the last large frame held (see {@link #bigHeld}). The buffer is sent in
   * order: what left it is what was written before its unsent bytes. (ws's own frames, a pong or a
   * close, are not in #written: they make this a few bytes too large at most.)
   */
  #excused(): number {
    const held = this.#bigHeld === undefined ? 0 : this.#bigHolds * this.#bigHeld.length;
    const big = this.#big;
    if (big === undefined) return held;
    const sent = this.#written - this.ws.bufferedAmount;
    // Copies sent whole are done with.
    while (this.#bigEnds.length > 0 && this.#bigEnds[0]! <= sent) this.#bigEnds.shift();
    let unsent = 0;
    for (const end of this.#bigEnds) unsent += Math.min(big.length, end - sent);
    return unsent + held;
  }

  /** A held frame that was sent or dropped. */
  release(frame: Buffer): void {
    this.#heldBytes -= frame.length;
    // A hold from before this frame became the last large one held again was not counted in #bigHolds:
    // that may make the count too small (the frame counted in full), never too large.
    if (frame === this.#bigHeld && --this.#bigHolds <= 0) {
      this.#bigHeld = undefined;
      this.#bigHolds = 0;
    }
  }

  /** Hands the frames written this tick to the kernel (called once per tick by {@link scheduleUncork}). */
  uncork(): void {
    this.#corked = false;
    this.#corkedBytes = 0;
    this.#socket?.uncork();
  }

  /** Serializes and sends one message to this client only. */
  send(message: ServerMessage): boolean {
    return this.sendFrame(textFrame(JSON.stringify(message)));
  }

  /** Sends an already serialized message. */
  sendText(text: string): boolean {
    return this.sendFrame(textFrame(text));
  }

  /**
   * Resolves once the socket has drained its buffer (or closed). Node emits 'drain' only after a
   * write passed the socket's high-water mark; below it (a small `maxBufferedBytes`), waiting for
   * the next turn of the event loop (after the uncork) is enough.
   */
  drained(): Promise<void> {
    const socket = this.#socket;
    if (!socket || !this.open || this.bufferedAmount === 0) return Promise.resolve();
    if (!socket.writableNeedDrain) return new Promise((resolve) => setImmediate(resolve));
    // One wait, and one listener of each event, for every replay and subscribe of this client waiting
    // at once (a client resuming many upgrades): a listener per waiter passed Node's limit of 10, and
    // Node printed a MaxListenersExceededWarning ("possible memory leak") each time they piled up.
    this.#drainWait ??= new Promise<void>((resolve) => {
      const done = () => {
        socket.off('drain', done);
        this.ws.off('close', done);
        this.#drainWait = undefined;
        resolve();
      };
      socket.on('drain', done);
      this.ws.on('close', done);
    });
    return this.#drainWait;
  }

  /**
   * Called once per heartbeat: whether bytes left for the peer since the last one, while some were
   * queued then. A ping is written behind what was queued before it, so a peer reading a backlog (a
   * snapshot larger than the socket buffers, over a slow link) cannot answer it yet, though it is not
   * dead: the queue moves only as the peer takes the bytes. A dead peer, or one that stopped reading,
   * takes nothing, and the queue stands still (what is written meanwhile waits behind it). Node
   * suppresses a socket's idle timeout by the same sign: its handle's write queue changed.
   */
  reading(): boolean {
    const queued = (this.#socket as { _handle?: { writeQueueSize?: unknown } } | undefined)?._handle?.writeQueueSize;
    const now = typeof queued === 'number' ? queued : 0;
    const before = this.#queuedAtBeat;
    this.#queuedAtBeat = now;
    return before > 0 && now !== before;
  }

  /** Takes one message from the rate limit; false when the client is over it. */
  takeToken(): boolean {
    const now = performance.now();
    const { messagesPerSecond, burst } = this.#options.rateLimit;
    this.#tokens = Math.min(burst, this.#tokens + ((now - this.#refilledAt) / 1000) * messagesPerSecond);
    this.#refilledAt = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return true;
    }
    this.#violations++;
    this.#stats.rateLimited++;
    if (this.#violations >= this.#options.rateLimit.maxViolations) this.close(1008, 'rate limit exceeded');
    return false;
  }

  /** Closes a client that does not read fast enough (1013). */
  closeSlow(): void {
    if (this.#closing) return;
    this.#stats.slowClientsClosed++;
    this.#logger.warn({ client: this.id, bufferedAmount: this.bufferedAmount }, 'closing a client whose send buffer passed maxBufferedBytes');
    this.close(1013, 'client too slow');
  }

  /** Sends a close frame; cuts the connection off when it was not answered within `closeTimeoutMs`. */
  close(code: number, reason: string): void {
    if (this.#closing) return;
    this.#closing = true;
    for (const sub of this.subs.values()) sub.closed = true;
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
      return;
    }
    this.#killTimer = setTimeout(() => this.ws.terminate(), this.#options.closeTimeoutMs);
  }

  /** Cuts the connection off now. */
  terminate(): void {
    this.#closing = true;
    this.ws.terminate();
  }
}

// Every client corked during this tick, uncorked together on the next tick: one callback per tick,
// not one per client.
let corked: ClientConnection[] = [];

function scheduleUncork(client: ClientConnection): void {
  if (corked.length === 0) process.nextTick(uncorkAll);
  corked.push(client);
}

function uncorkAll(): void {
  const clients = corked;
  corked = [];
  for (const client of clients) client.uncork();
}

function payloadLength(frame: Buffer): number {
  const len = frame[1]! & 0x7f;
  if (len === 126) return frame.readUInt16BE(2);
  if (len === 127) return Number(frame.readBigUInt64BE(2));
  return len;
}
