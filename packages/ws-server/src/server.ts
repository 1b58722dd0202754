import { randomBytes, randomUUID } from 'node:crypto';
import { STATUS_CODES, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { Server as TlsServer } from 'node:tls';
import {
  MAX_TIMER_MS,
  ProgressError,
  describeValue,
  assertHandleArgs,
  filterRows,
  isValidId,
  isProgressError,
  isTerminal,
  summarize,
  toSummaryRow,
  type ProgressEvent,
  type ProgressSink,
  type ProgressTracker,
  type UpgradeProgress,
  type UpgradeSummaryRow,
} from '@progress/core';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { ClientConnection } from './client.js';
import { SECURITY_HEADERS, createDashboardHandler } from './dashboard/handler.js';
import { isLoopbackAddress, judgeHandshake, requestPath } from './handshake.js';
import { rejectUpgrade } from './http-reject.js';
import { resolveOptions, type ProgressWebSocketServerOptions, type ResolvedOptions } from './options.js';
import { PROTOCOL_VERSION, parseClientMessage, type ClientMessage, type ParseResult, type ServerMessage, type WireErrorCode } from './protocol.js';
import { PROGRESS_SUBPROTOCOL } from './read-token.js';
import { emptyStats, type ServerStats } from './stats.js';
import { Subscription, WildcardSubscription } from './subscription.js';
import { Topic, type TopicHost } from './topic.js';

const MAX_FRAGMENTS = 1024;

/** The 'upgrade' listener of every server of this module, with its path: several may share one app server. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- what listeners() returns
const UPGRADE_PATHS = new WeakMap<Function, string>();
/** While `*` subscribers are fed by watchAll: how often the server checks what it holds for them alone with the store (see #sweep). */
const SWEEP_MS = 60_000;

/** A server's topic of an upgrade, for {@link heldForStore} (set by the class, which alone reads its private fields). */
let topicOf: (server: ProgressWebSocketServer, upgradeId: string) => Topic | undefined;

/** What {@link ProgressWebSocketServer.start} resolves. */
export interface ServerAddress {
  /** The port listened on (the one picked when `port` was 0). */
  port: number;
  /** The address of the endpoint, e.g. `ws://127.0.0.1:8765/ws`; `wss://` when `server` is an `https.Server`. */
  url: string;
}

/**
 * Streams the progress of any number of upgrades to WebSocket clients (protocol v1, DESIGN section 8)
 * and serves the dashboard at `/`. It is a {@link ProgressSink} (`name: 'websocket'`): `track(tracker)`
 * serves a tracker of this process; a `store` with `watch()` (Redis) serves every upgrade it holds.
 *
 * @example
 * const server = new ProgressWebSocketServer({ port: 0 });
 * const { url } = await server.start();
 * server.track(tracker);
 * // ... later
 * await server.stop();
 */
export class ProgressWebSocketServer implements ProgressSink {
  /** The sink's name. */
  readonly name = 'websocket';
  /** Sent in `welcome`: tells clients which instance they are talking to. */
  readonly serverId: string = randomUUID();
  /**
   * Serves the dashboard (`/`, `dashboard.js`, `dashboard.css`): mount it on your own server when
   * this one is attached to it with `server`.
   */
  readonly dashboardHandler: (req: IncomingMessage, res: ServerResponse) => void;
  readonly #o: ResolvedOptions;
  readonly #wss: WebSocketServer;
  readonly #clients = new Set<ClientConnection>();
  /** Sockets whose handshake is being judged (an async `authenticate` runs). */
  readonly #handshaking = new Set<Duplex>();
  readonly #topics = new Map<string, Topic>();
  /** The topics kept only for later subscribers (see {@link #retain}). */
  readonly #retained = new Map<string, Topic>();
  readonly #trackers = new Map<ProgressTracker, () => void>();
  /** Tracked trackers that are closing: untracked once their close is done (see flush). */
  readonly #untrackOnClose = new Set<ProgressTracker>();
  readonly #wildcards = new Set<WildcardSubscription>();
  readonly #stats: ServerStats = emptyStats();
  readonly #host: TopicHost;
  #http: Server | undefined;
  #address: ServerAddress | undefined;
  #starting: Promise<ServerAddress> | undefined;
  /** The stop in progress, or the last one (never rejects): a start waits for it. */
  #stopping: Promise<void> = Promise.resolve();
  /** How many times stop() was called: a start overtaken by a stop sees it change. */
  #stops = 0;
  /** Ends a start() waiting for an attached server to listen. */
  #cancelStart: (() => void) | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #watchAll: AbortController | undefined;
  #watchAllRetry: NodeJS.Timeout | undefined;
  /** Runs #sweep while watchAll is wanted. */
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweeping = false;
  #nextClientId = 1;

  constructor(options: ProgressWebSocketServerOptions = {}) {
    this.#o = resolveOptions(options);
    UPGRADE_PATHS.set(this.#onUpgrade, this.#o.path);
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.#o.maxPayload,
      // Protocol messages are small: no honest client splits one into more than a few frames.
      // closeTimeout: a close the peer starts is cut off as one the server starts is (ws waited 30 s
      // for a peer that never ends its side, holding its subscriptions and the bytes queued for it).
      ...({ maxFragments: MAX_FRAGMENTS, closeTimeout: this.#o.closeTimeoutMs } as object),
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: (protocols) => (protocols.has(PROGRESS_SUBPROTOCOL) ? PROGRESS_SUBPROTOCOL : false),
    });
    const dashboard = createDashboardHandler({ wsPath: this.#o.path });
    // A plain request to the endpoint's path (not an upgrade) is answered as its handshake would be:
    // 401, 403 or 503 when it would be refused, else 426. The dashboard asks it when its WebSocket was
    // refused, which a page cannot read: "disconnected" alone did not tell a missing read token from
    // a server that is down.
    this.dashboardHandler = (req, res) => {
      if (requestPath(req) !== this.#o.path) return dashboard(req, res);
      void this.#answerPlainRequest(req, res);
    };
    this.#host = {
      store: this.#o.store,
      logger: this.#o.logger,
      stats: this.#stats,
      maxBufferedBytes: this.#o.maxBufferedBytes,
      attachWildcards: (topic) => this.#attachWildcards(topic),
      loadFailed: (topic, err) => this.#loadFailed(topic, err),
      gone: (topic) => this.#gone(topic),
    };
  }

  /** The address once started, else undefined. */
  get address(): ServerAddress | undefined {
    return this.#address;
  }

  /**
   * Listens (or attaches to `server`) and starts the heartbeat. Idempotent. With `server`, resolves
   * once that server listens. Called while a `stop()` runs, it starts once that stop is done; a
   * `stop()` called before it listens makes it reject with `CLOSED`.
   */
  start(): Promise<ServerAddress> {
    if (this.#starting) return this.#starting;
    // After the stop in progress, if any (a start during a stop would listen while that stop closes
    // the clients, and the stop would then close this start's server instead of its own). A stop
    // called meanwhile overtakes this start: it rejects with CLOSED, and nothing of it stays open.
    const stops = this.#stops;
    const starting: Promise<ServerAddress> = this.#stopping
      .then(() => {
        if (this.#stops !== stops) throw stoppedError();
        return this.#start();
      })
      .then((address) => {
        if (this.#stops !== stops) throw stoppedError();
        return address;
      })
      .catch((err: unknown) => {
        if (this.#starting === starting) this.#starting = undefined;
        throw err;
      });
    this.#starting = starting;
    return starting;
  }

  async #start(): Promise<ServerAddress> {
    const attached = this.#o.server;
    const server = attached ?? createServer(this.dashboardHandler);
    server.on('upgrade', this.#onUpgrade);
    if (!attached) {
      this.#http = server;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.#o.port, this.#o.host, () => {
          server.off('error', reject);
          resolve();
        });
      }).catch((err: unknown) => {
        server.off('upgrade', this.#onUpgrade);
        this.#http = undefined;
        // A port another process holds is a conflict over it, not bad input (a CLI exits 4, not 2 for
        // bad usage); a host that is not this machine's, or a port it may not take, is bad input.
        const taken = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
        throw new ProgressError(taken ? 'CONFLICT' : 'INVALID_ARGUMENT', `[@progress/ws-server] cannot listen on ${this.#o.host}:${this.#o.port}: ${(err as Error).message}`, { cause: err });
      });
    } else if (!attached.listening) {
      // Until the app's server listens; its listen error, or stop(), ends the wait (a start() that
      // never settled held stop() for ever).
      await new Promise<void>((resolve, reject) => {
        const done = (err?: unknown): void => {
          attached.off('listening', done);
          attached.off('error', done);
          this.#cancelStart = undefined;
          if (err === undefined) resolve();
          else reject(err);
        };
        attached.once('listening', done);
        attached.once('error', done);
        this.#cancelStart = () => done(new ProgressError('CLOSED', '[@progress/ws-server] stopped before the attached server listened'));
      }).catch((err: unknown) => {
        attached.off('upgrade', this.#onUpgrade);
        if (isProgressError(err)) throw err;
        // As for a server of its own: a port another process holds is a conflict, anything else bad input.
        const taken = (err as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE';
        throw new ProgressError(taken ? 'CONFLICT' : 'INVALID_ARGUMENT', `[@progress/ws-server] the attached server failed to listen: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      });
    }
    try {
      this.#address = this.#addressOf(server, attached !== undefined);
    } catch (err) {
      // Undo what this start did: nothing may stay listening or attached after a rejected start().
      server.off('upgrade', this.#onUpgrade);
      if (this.#http) {
        const http = this.#http;
        this.#http = undefined;
        http.close();
        http.closeAllConnections();
      }
      throw err;
    }
    if (this.#o.heartbeatMs > 0) this.#heartbeat = setInterval(() => this.#beat(), this.#o.heartbeatMs);
    this.#o.logger.info({ url: this.#address.url }, 'progress WebSocket server listening');
    // Open to the network with no `authenticate`: every upgrade is served to whoever reaches the port.
    // Said once per start, as a warning: a host behind a firewall, or a proxy that authenticates,
    // may mean it.
    const bound = server.address();
    if (this.#o.authenticate === undefined && bound !== null && typeof bound === 'object' && !isLoopbackAddress(bound.address)) {
      this.#o.logger.warn(
        { url: this.#address.url, address: bound.address },
        'progress WebSocket server reachable from other machines without authenticate: anyone who reaches it reads every upgrade (give authenticate, e.g. readTokenAuth, or listen on 127.0.0.1)',
      );
    }
    return this.#address;
  }

  /** The address `server` listens on: a TCP port, or a unix socket or Windows pipe (port 0, a ws+unix: URL); wss for an https.Server. */
  #addressOf(server: Server, attached: boolean): ServerAddress {
    const addr = server.address() as AddressInfo | string | null;
    if (addr === null) throw new ProgressError('INVALID_ARGUMENT', '[@progress/ws-server] the server does not listen');
    // An https.Server (a tls.Server) is reached with wss://: a ws:// URL to it is not answered.
    const scheme = server instanceof TlsServer ? 'wss' : 'ws';
    if (typeof addr === 'string') return { port: 0, url: `${scheme}+unix://${addr}:${this.#o.path}` };
    // A wildcard is told by the address bound, not by how `host` spells it ('0', '::0' are wildcards
    // too; so is 0.0.0.0 mapped into IPv6, '::ffff:0.0.0.0', which takes IPv4 on every interface).
    const wildcard = addr.address === '0.0.0.0' || addr.address === '::' || addr.address === '::ffff:0.0.0.0';
    const host = attached ? addr.address : this.#o.host;
    const shown = wildcard ? 'localhost' : host.includes(':') ? `[${host}]` : host;
    return { port: addr.port, url: `${scheme}://${shown}:${addr.port}${this.#o.path}` };
  }

  /**
   * Closes every connection (1001), stops watching the store and releases every timer; closes the
   * HTTP server it created (an attached one is left running). Trackers stay tracked, so `start()`
   * may be called again. Stops run one after the other, each closing what a start before it opened.
   */
  stop(): Promise<void> {
    const starting = this.#starting;
    this.#starting = undefined;
    this.#stops++;
    this.#cancelStart?.();
    // One after the other: a stop called during another closes what a start in between opened.
    const stopping = this.#stopping.then(() => this.#stop(starting));
    this.#stopping = stopping.catch(() => {});
    return stopping;
  }

  async #stop(starting: Promise<ServerAddress> | undefined): Promise<void> {
    if (starting) await starting.catch(() => undefined);
    // From here on a handshake that completes (an async authenticate) is refused, not let in behind
    // the list of clients being closed below (it would stay open and hold http.close() forever).
    this.#address = undefined;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    this.#stopWatchAll();
    // Their authenticate may still be running: answered now, they hold neither the HTTP server's close nor a socket.
    for (const socket of this.#handshaking) this.#refuse(socket, 503);
    this.#handshaking.clear();
    const closing = [...this.#clients].map(
      (client) =>
        new Promise<void>((resolve) => {
          if (client.ws.readyState === client.ws.CLOSED) return resolve();
          client.ws.once('close', () => resolve());
          client.close(1001, 'server stopping');
        }),
    );
    await Promise.all(closing);
    for (const topic of [...this.#topics.values()]) {
      topic.close();
      if (!topic.tracker) this.#topics.delete(topic.upgradeId);
    }
    this.#retained.clear();
    const server = this.#o.server ?? this.#http;
    server?.off('upgrade', this.#onUpgrade);
    if (this.#http) {
      const http = this.#http;
      this.#http = undefined;
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
    }
    this.#address = undefined;
  }

  /**
   * Serves a tracker of this process: the server becomes one of its sinks, and replays come from
   * `tracker.readEvents`. Returns the function that untracks it.
   */
  track(tracker: ProgressTracker): () => void {
    if (!this.#trackers.has(tracker)) {
      // Checked before anything is taken of it: a tracker not awaited (a Promise), or an object with
      // an addSink but no valid upgradeId, made the server its sink and a topic for "undefined".
      if (!isTracker(tracker)) {
        throw new ProgressError('INVALID_ARGUMENT', `[@progress/ws-server] track() needs a ProgressTracker (with addSink, readEvents, durableProgress and a valid upgradeId), got ${describeValue(tracker)}`);
      }
      const removeSink = tracker.addSink(this);
      this.#trackers.set(tracker, removeSink);
      const topic = this.#topic(tracker.upgradeId);
      this.#retained.delete(topic.upgradeId);
      topic.useTracker(tracker);
      this.#attachWildcards(topic);
    }
    return () => this.untrack(tracker);
  }

  /** Stops serving a tracker (its subscribers keep their subscription and see no more events, unless the store serves it). */
  untrack(tracker: ProgressTracker): void {
    const removeSink = this.#trackers.get(tracker);
    if (!removeSink) return;
    removeSink();
    this.#trackers.delete(tracker);
    const topic = this.#topics.get(tracker.upgradeId);
    if (topic?.tracker === tracker) {
      topic.dropTracker();
      this.#maybeRelease(topic);
    }
  }

  /** The sink side: a durable event of a tracker that has this server as a sink. */
  handle(event: ProgressEvent, state: Readonly<UpgradeProgress>): void {
    assertHandleArgs('@progress/ws-server', event, state);
    const topic = this.#topic(event.upgradeId);
    topic.fromSink(event, state);
    // A tracker that lists this server in its sinks never says when it is gone.
    if (this.#idle(topic)) this.#retain(topic);
  }

  /**
   * Resolves once the frames of the current tick are handed to the sockets. A tracked tracker that
   * is closing is untracked once its close is done (its close flushes its sinks, this server among
   * them): the README's `server.track(tracker)` then `tracker.close()` made the server hold every
   * tracker it ever served, and a topic for each, for the life of the process.
   */
  async flush(): Promise<void> {
    for (const tracker of this.#trackers.keys()) {
      if (!tracker.closed || this.#untrackOnClose.has(tracker)) continue;
      this.#untrackOnClose.add(tracker);
      // Once the close is done, not now: it may still hand this server the events it makes durable
      // (this flush may be another tracker's). close() is idempotent: it returns the close in progress.
      const untrack = (): void => {
        this.#untrackOnClose.delete(tracker);
        this.untrack(tracker);
      };
      tracker.close().then(untrack, untrack);
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /** Stops the server and untracks every tracker. */
  async close(): Promise<void> {
    for (const tracker of [...this.#trackers.keys()]) this.untrack(tracker);
    await this.stop();
  }

  /** Counters, for diagnostics and tests. */
  getStats(): ServerStats {
    return { ...this.#stats, clients: this.#clients.size, topics: this.#topics.size, watchedUpgrades: this.#watchedUpgrades() };
  }

  /** The upgrades followed from the store with a store `watch()` now (see `maxWatchedUpgrades`). */
  #watchedUpgrades(): number {
    let n = 0;
    for (const topic of this.#topics.values()) if (topic.watching) n++;
    return n;
  }

  // ---------------------------------------------------------------- handshake

  readonly #onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    void this.#upgrade(req, socket, head);
  };

  async #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const onError = (err: Error) => this.#o.logger.debug({ err }, 'handshake socket error');
    socket.on('error', onError);
    let verdict = judgeHandshake(req, this.#o);
    if (verdict instanceof Promise) {
      // An authenticate hook runs: stop() answers this socket meanwhile instead of waiting for it.
      this.#handshaking.add(socket);
      verdict = await verdict.finally(() => this.#handshaking.delete(socket));
    }
    if (verdict.kind === 'ignore') {
      socket.off('error', onError);
      // Another path of an attached server: the app's own 'upgrade' listener answers. With none
      // (Node then leaves the socket to the listeners), answer 404 as a server of our own would,
      // rather than hold it: once, by the first progress server attached, and only when no other
      // progress server attached there serves that path.
      if (!socket.destroyed && this.#answersStrayUpgrade(req)) this.#refuse(socket, 404);
      return;
    }
    // Gone, or already answered by stop().
    if (socket.destroyed || socket.writableEnded) return;
    if (verdict.kind === 'refuse') return this.#refuse(socket, verdict.status);
    if (!this.#address) return void socket.destroy();
    const principal = verdict.principal;
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#onConnection(ws, principal));
  }

  async #answerPlainRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...SECURITY_HEADERS, Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('Method Not Allowed\n');
      return;
    }
    const verdict = await judgeHandshake(req, this.#o);
    const status = verdict.kind === 'refuse' ? verdict.status : 426;
    if (res.writableEnded || res.destroyed) return;
    res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': 'text/plain; charset=utf-8', ...(status === 426 ? { Upgrade: 'websocket', Connection: 'Upgrade' } : {}) });
    res.end(`${STATUS_CODES[status] ?? 'Error'}\n`);
  }

  #answersStrayUpgrade(req: IncomingMessage): boolean {
    const listeners = this.#o.server?.listeners('upgrade') ?? [];
    if (listeners.some((l) => !UPGRADE_PATHS.has(l))) return false;
    const pathname = requestPath(req);
    if (listeners.some((l) => UPGRADE_PATHS.get(l) === pathname)) return false;
    return listeners[0] === this.#onUpgrade;
  }

  #refuse(socket: Duplex, status: number): void {
    this.#stats.handshakesRefused++;
    rejectUpgrade(socket, status);
  }

  // ---------------------------------------------------------------- connections

  #onConnection(ws: WebSocket, principal: unknown): void {
    const client = new ClientConnection(this.#nextClientId++, ws, principal, this.#o, this.#stats);
    this.#clients.add(client);
    ws.on('message', (data, isBinary) => this.#onMessage(client, data, isBinary));
    // Only the answer to the last ping counts: pongs a peer sends unasked (it may read nothing at
    // all) would keep a dead reader connected, with what it is owed piling up.
    ws.on('pong', (data) => {
      if (client.ping !== undefined && data.equals(client.ping)) client.alive = true;
    });
    ws.on('error', (err) => this.#o.logger.debug({ err, client: client.id }, 'client connection error'));
    ws.once('close', () => this.#onClose(client));
    this.#closeOnExpiry(client, principal);
    client.send({ type: 'welcome', protocol: PROTOCOL_VERSION, serverId: this.serverId, serverTime: new Date().toISOString() });
  }

  /**
   * A principal that carries a numeric `exp` (seconds since the epoch, as read tokens and JWT claims
   * do) is good until then: the connection is closed with 1008 when it passes, so that a
   * subscription never outlives the credentials that opened it. An `exp` further away than a timer
   * can wait (about 24.8 days) is waited for in steps.
   */
  #closeOnExpiry(client: ClientConnection, principal: unknown): void {
    const exp = principal && typeof principal === 'object' ? (principal as { exp?: unknown }).exp : undefined;
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return;
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      const delay = exp * 1000 - Date.now();
      // setTimeout fires at once past MAX_TIMER_MS: wait the longest it can, then look again.
      if (delay > MAX_TIMER_MS) return void (timer = setTimeout(arm, MAX_TIMER_MS));
      timer = setTimeout(() => {
        this.#o.logger.info({ client: client.id }, 'closing a connection whose credentials expired');
        client.close(1008, 'credentials expired');
      }, Math.max(0, delay));
    };
    arm();
    client.ws.once('close', () => clearTimeout(timer));
  }

  #onClose(client: ClientConnection): void {
    this.#clients.delete(client);
    for (const sub of client.subs.values()) this.#dropSub(sub);
    client.subs.clear();
    if (client.wildcard) this.#dropWildcard(client.wildcard);
    client.wildcard = undefined;
  }

  /**
   * A beat judges the peers after the input that came meanwhile is read (`setImmediate`: after the
   * event loop's poll for I/O), not in the timer's own turn: when this process was busy past a beat
   * (a big snapshot serialized in a message handler, a long collection), the beat due meanwhile ran
   * before the pongs that had arrived in time were read, and terminated peers that had answered.
   */
  #beat(): void {
    setImmediate(() => {
      // Stopped meanwhile: its clients are closed, not judged.
      if (this.#heartbeat) this.#judgePeers();
    });
  }

  #judgePeers(): void {
    for (const client of this.#clients) {
      const reading = client.reading();
      if (!client.alive) {
        // Still taking what was queued before the ping: its pong comes once it has read that. No
        // new ping meanwhile (the pong of the one sent is the one awaited).
        if (reading) continue;
        this.#o.logger.info({ client: client.id }, 'terminating a peer that missed a heartbeat');
        client.terminate();
        continue;
      }
      client.alive = false;
      try {
        client.ping = randomBytes(8);
        client.ws.ping(client.ping);
      } catch {
        client.terminate();
      }
    }
  }

  #onMessage(client: ClientConnection, data: RawData, isBinary: boolean): void {
    if (!client.open) return;
    if (!client.takeToken()) {
      // In the order of the messages, as every answer (the refusals are counted, and the connection
      // closed past maxViolations, at once).
      client.queue = client.queue.then(() => void client.send({ type: 'error', code: 'RATE_LIMITED', message: 'too many messages; slow down' }));
      return;
    }
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
    const parsed: ParseResult = isBinary ? { ok: false, message: 'binary frames are not part of the protocol; send JSON text' } : parseClientMessage(text);
    // Answers go out in the order the messages came, errors included.
    client.queue = client.queue
      .then(() => {
        if (!parsed.ok) return void client.send({ type: 'error', code: 'INVALID_MESSAGE', message: parsed.message });
        return this.#handleMessage(client, parsed.message);
      })
      .catch((err: unknown) => {
        this.#o.logger.warn({ err, client: client.id }, 'a client message failed');
        client.send(storeFailure(err, 'the store could not serve the request'));
      });
  }

  async #handleMessage(client: ClientConnection, message: ClientMessage): Promise<void> {
    if (!client.open) return;
    switch (message.type) {
      case 'ping':
        client.send({ type: 'pong' });
        return;
      case 'subscribe':
        if (message.upgradeId === '*') return this.#subscribeAll(client);
        return this.#subscribe(client, message.upgradeId, message.sinceSeq, message.createdAt);
      case 'unsubscribe':
        if (message.upgradeId === '*') {
          if (client.wildcard) this.#dropWildcard(client.wildcard);
          client.wildcard = undefined;
        } else {
          const sub = client.subs.get(message.upgradeId);
          client.subs.delete(message.upgradeId);
          if (sub) this.#dropSub(sub);
        }
        return;
      case 'get_summary':
        return this.#summary(client, message.upgradeId);
      case 'list_upgrades':
        client.send({ type: 'upgrades', data: await this.#list(client) });
        return;
    }
  }

  #authorized(client: ClientConnection, upgradeId: string): boolean {
    if (!this.#o.authorize) return true;
    let verdict: unknown;
    try {
      verdict = this.#o.authorize(client.principal, upgradeId);
    } catch (err) {
      this.#o.logger.warn({ err, upgradeId }, 'authorize threw; refusing');
      return false;
    }
    if (verdict === true) return true;
    // authorize answers synchronously. A promise is no answer: refused, and its rejection caught (left
    // unhandled, a client's subscribe would end the process). A thenable whose then() throws is refused too.
    try {
      if (verdict !== null && (typeof verdict === 'object' || typeof verdict === 'function') && typeof (verdict as PromiseLike<unknown>).then === 'function') {
        (verdict as PromiseLike<unknown>).then(undefined, () => {});
        this.#o.logger.warn({ upgradeId }, 'authorize returned a promise; it must return true or false synchronously; refusing');
      }
    } catch (err) {
      this.#o.logger.warn({ err, upgradeId }, 'authorize returned a thenable whose then() threw; refusing');
    }
    return false;
  }

  #refuseWatch(client: ClientConnection, upgradeId: string): void {
    const max = this.#o.maxWatchedUpgrades;
    client.send({ type: 'error', code: 'RATE_LIMITED', message: `the server follows at most ${max} upgrades from its store at once; subscribe to "${upgradeId}" again later`, upgradeId });
  }

  #forbidden(client: ClientConnection, upgradeId: string): void {
    client.send({ type: 'error', code: 'FORBIDDEN', message: `not allowed to read upgrade "${upgradeId}"` });
  }

  async #subscribe(client: ClientConnection, upgradeId: string, sinceSeq: number | undefined, createdAt?: string): Promise<void> {
    if (!this.#authorized(client, upgradeId)) return this.#forbidden(client, upgradeId);
    // Subscribes one after the other to big upgrades (their snapshots) wait for the socket to drain
    // above half of maxBufferedBytes, as a replay does, rather than have the client closed as slow.
    if (client.bufferedAmount > this.#o.maxBufferedBytes / 2) await client.drained();
    if (!client.open) return;
    const previous = client.subs.get(upgradeId);
    // Messages of a client run one at a time, so no other subscribe of it is between here and subs.set.
    if (!previous && client.subs.size >= this.#o.maxSubscriptionsPerClient) {
      this.#o.logger.debug({ client: client.id, upgradeId }, 'refused a subscribe past maxSubscriptionsPerClient');
      const max = this.#o.maxSubscriptionsPerClient;
      client.send({ type: 'error', code: 'RATE_LIMITED', message: `at most ${max} subscriptions per connection; unsubscribe from one before subscribing to "${upgradeId}"`, upgradeId });
      return;
    }
    // An upgrade nobody follows yet would need one more store watch: refused before its load when the
    // server follows as many as it may (a page that retries would otherwise load it each time).
    if (!previous && !this.#topics.has(upgradeId) && this.#o.store?.watch && this.#watchedUpgrades() >= this.#o.maxWatchedUpgrades) {
      this.#o.logger.debug({ client: client.id, upgradeId }, 'refused a subscribe past maxWatchedUpgrades');
      return this.#refuseWatch(client, upgradeId);
    }
    if (previous) {
      client.subs.delete(upgradeId);
      this.#dropSub(previous);
    }
    let topic: Topic;
    try {
      // A topic loaded before may hold a run the store holds no more (see Topic.confirmRun): asked
      // before the answer, which must be the store's. (A fresh load just read it.)
      const known = this.#topics.get(upgradeId);
      // A load in flight was sent before this request: joined, it is checked once it is done.
      let joining = known !== undefined && known.loadInFlight;
      if (known?.loaded) await this.#confirmRun(known);
      for (;;) {
        // The topic in the map when this resumes, synchronously up to the subscriber's adding below:
        // one released between #loadedTopic's look and here (another client's confirmRun found the
        // upgrade gone) would get a subscriber, and a store watch, that nothing ends.
        do topic = await this.#loadedTopic(upgradeId, () => client.open);
        while (client.open && this.#topics.get(upgradeId) !== topic);
        if (!joining || topic !== known || !client.open) break;
        joining = false;
        await this.#confirmRun(topic);
        if (this.#topics.get(upgradeId) === topic) break;
      }
    } catch (err) {
      // The store could not say whether the upgrade exists: an error, never `exists: false`, and no
      // subscription (nor anything of the failed load) is kept, so a later subscribe asks the store again.
      client.send(storeFailure(err, `could not read upgrade "${upgradeId}" from the store`, upgradeId));
      return;
    }
    if (!client.open) return this.#maybeRelease(topic);
    // Checked here, with no await before the watch starts below, so that concurrent subscribes of
    // several clients cannot together pass the bound.
    if (topic.wouldWatch && this.#watchedUpgrades() >= this.#o.maxWatchedUpgrades) {
      this.#o.logger.warn({ client: client.id, upgradeId, maxWatchedUpgrades: this.#o.maxWatchedUpgrades }, 'refused a subscribe past maxWatchedUpgrades');
      this.#refuseWatch(client, upgradeId);
      return this.#maybeRelease(topic);
    }
    const sub = new Subscription(client, upgradeId, false);
    client.subs.set(upgradeId, sub);
    client.send({ type: 'subscribed', upgradeId, exists: topic.exists });
    this.#retained.delete(upgradeId);
    topic.subs.add(sub);
    if (sinceSeq === undefined) topic.sendSnapshot(sub);
    else void topic.catchUp(sub, sinceSeq, true, createdAt);
    topic.syncWatch();
  }

  async #subscribeAll(client: ClientConnection): Promise<void> {
    if (client.wildcard) this.#dropWildcard(client.wildcard);
    const w = new WildcardSubscription(client);
    client.wildcard = w;
    // In the set before the listing, so that watchAll runs from before it (see the README); it is
    // given nothing until `subscribed` went out (see WildcardSubscription.ready).
    this.#wildcards.add(w);
    this.#syncWatchAll();
    const ids = new Set<string>();
    /** The run the store listed for each id (its createdAt and lastSeq). */
    const listed = new Map<string, { createdAt: string; lastSeq: number }>();
    const store = this.#o.store;
    // Also over a store that cannot watchAll (JsonFileStore): its upgrades get their snapshot, as a
    // subscribe by name does, though no live event of the store follows (see the README).
    if (store) {
      try {
        for (const row of await store.list()) {
          ids.add(row.upgradeId);
          listed.set(row.upgradeId, { createdAt: row.createdAt, lastSeq: row.lastSeq });
        }
      } catch (err) {
        // Not "the store holds nothing": the client is told, and holds no `*` subscription (it may
        // subscribe again), rather than get the upgrades of this process alone as if they were all.
        this.#o.logger.warn({ err }, 'could not list the store for a "*" subscription');
        if (client.wildcard === w) client.wildcard = undefined;
        this.#dropWildcard(w);
        client.send(storeFailure(err, 'could not list the upgrades of the store', '*'));
        return;
      }
    }
    if (w.closed) return;
    client.send({ type: 'subscribed', upgradeId: '*', exists: true });
    w.ready = true;
    // After the listing: the topics that became readable meanwhile are among them.
    for (const topic of this.#topics.values()) if (topic.exists) ids.add(topic.upgradeId);
    const half = this.#o.maxBufferedBytes / 2;
    for (const id of ids) {
      if (w.closed) return;
      if (!this.#authorized(client, id)) continue;
      // A snapshot per upgrade, each written at once (the loads below answer within microtasks when
      // the topics are loaded): without a turn for the socket to drain, a healthy client would be closed
      // as slow once they passed maxBufferedBytes together. As a replay does, it waits above half of it.
      if (client.bufferedAmount > half) await client.drained();
      if (w.closed) return;
      let topic: Topic;
      try {
        const known = this.#topics.get(id);
        // A topic the store did not list as the same run (deleted, expired or created again since the
        // topic loaded it) is asked about first, as for a subscribe by name.
        // So is one the store lists further on when the store cannot watch: nothing brings the topic
        // those events, and the snapshot must be what the store holds (see Topic.confirmRun).
        const row = listed.get(id);
        if (known?.loaded && known.storeBacked && store && (listsOtherRun(row, known.state) || (!store.watch && row!.lastSeq > (known.state?.lastSeq ?? 0)))) {
          await this.#confirmRun(known);
        }
        topic = await this.#loadedTopic(id, () => !w.closed);
      } catch (err) {
        // Told to the `*` subscribers and loaded again later (see #loadFailed); the others go on.
        if (store?.watchAll) this.#wildcardLoadFailed(id, err);
        // A store that cannot watchAll: the topic was not kept (nothing would bring this upgrade to `*`
        // later), so this client is told, once; subscribing to `*` again asks the store again.
        else if (!w.closed && !w.unreadable.has(id)) {
          w.unreadable.add(id);
          client.send(storeFailure(err, `could not read upgrade "${id}" from the store (subscribe to "*" again for it)`, id));
        }
        continue;
      }
      // Gone by now (the check above released it, and this load found nothing): not kept.
      if (!topic.exists) this.#maybeRelease(topic);
      else {
        this.#attachWildcard(w, topic);
        this.#settle(topic);
      }
    }
  }

  #attachWildcards(topic: Topic): void {
    // A topic released while it loaded (its successor in the map is the one watchAll feeds): a `*`
    // subscriber attached to it would never get another event of that upgrade.
    if (this.#topics.get(topic.upgradeId) !== topic) return;
    for (const w of this.#wildcards) this.#attachWildcard(w, topic);
  }

  /**
   * Retains a topic that became idle (within `maxRetainedUpgrades`), unless it was released meanwhile:
   * one of an upgrade that ended, which `*` subscribers alone no longer hold (see #idle).
   */
  #settle(topic: Topic): void {
    if (this.#topics.get(topic.upgradeId) === topic && !this.#retained.has(topic.upgradeId) && this.#idle(topic)) this.#retain(topic);
  }

  #attachWildcard(w: WildcardSubscription, topic: Topic): void {
    const id = topic.upgradeId;
    // (Not to a topic released since it was loaded: the upgrade was found gone; watchAll brings it back.)
    if (w.closed || !w.ready || w.children.has(id) || !topic.exists || this.#topics.get(id) !== topic) return;
    w.unreadable.delete(id);
    if (!this.#authorized(w.client, id)) {
      w.children.set(id, deniedSub(w, id));
      return;
    }
    const sub = new Subscription(w.client, id, true);
    w.children.set(id, sub);
    topic.sendSnapshot(sub);
    // An idle topic stays among the retained (see #idle): a `*` subscriber does not hold it.
    topic.subs.add(sub);
  }

  async #summary(client: ClientConnection, upgradeId: string): Promise<void> {
    if (!this.#authorized(client, upgradeId)) return this.#forbidden(client, upgradeId);
    let state: Readonly<UpgradeProgress> | undefined;
    // A topic's load logs its own failure; a load of the store here is logged here.
    let logged = true;
    try {
      let topic = this.#topics.get(upgradeId);
      // The topic in the map when the answer is made: one released meanwhile (its last `*` subscriber
      // left) holds a state nothing updates, and its check was dropped with it.
      for (let tries = 0; topic && tries < 3; tries++) {
        // Loaded, or a load in flight (sent before this request) to join: either is checked after.
        const loaded = topic.loaded || topic.loadInFlight;
        await topic.ensureLoaded();
        // The store's word, not what the topic holds: it may be deleted, expired or another run there.
        // (A load this request made read it.) A store that cannot be read leaves a state held
        // standing (the store's last word); with none held, the request gets the store's error: not
        // an answer that says the upgrade does not exist.
        // (Over a store that cannot watch, the store is read below instead.)
        if (loaded && this.#o.store?.watch) {
          logged = false;
          await this.#confirmRun(topic, true);
          logged = true;
        }
        const now = this.#topics.get(upgradeId);
        if (now === topic) break;
        topic = now;
      }
      if (topic && this.#topics.get(upgradeId) !== topic) topic = undefined;
      state = topic?.state;
      // A store that cannot watch: nothing keeps a topic's state current, the store's is the answer.
      const stale = topic?.storeBacked === true && !this.#o.store?.watch;
      if ((!state || stale) && this.#o.store && (!topic?.storeBacked || stale)) {
        logged = false;
        state = await this.#o.store.load(upgradeId);
      }
    } catch (err) {
      if (!logged) this.#o.logger.warn({ err, client: client.id, upgradeId }, 'could not summarize an upgrade');
      client.send(storeFailure(err, `could not read upgrade "${upgradeId}" from the store`, upgradeId));
      return;
    }
    if (!state) {
      client.send({ type: 'error', code: 'NOT_FOUND', message: `no upgrade "${upgradeId}"` });
      return;
    }
    client.send({ type: 'progress_summary', upgradeId, data: summarize(state) });
  }

  async #list(client: ClientConnection): Promise<UpgradeSummaryRow[]> {
    const rows = new Map<string, UpgradeSummaryRow>();
    if (this.#o.store) {
      for (const row of await this.#o.store.list()) rows.set(row.upgradeId, row);
    }
    // A topic that follows the store, of an upgrade the store did not list or lists as another run:
    // deleted, expired or created again there (which a `*` subscription's watchAll does not report,
    // and a store watch only later), or created while the store listed. The store is asked again for
    // those (few) upgrades, and the topic starts over when it holds another run or none.
    // (A row behind the state held, of the same createdAt, is another run of the same millisecond.)
    // So is a topic that holds none (deleted, or not there yet when it loaded) of an upgrade the store
    // lists, when the store cannot watch: nothing else brings its subscribers to the run stored since.
    const unsure = [...this.#topics.values()].filter(
      (topic) => this.#o.store && (topic.state || (!this.#o.store.watch && rows.has(topic.upgradeId))) && topic.storeBacked && listsOtherRun(rows.get(topic.upgradeId), topic.state),
    );
    await Promise.all(unsure.map((topic) => this.#confirmRun(topic)));
    for (const topic of this.#topics.values()) {
      const state = topic.state;
      if (!state) continue;
      const row = rows.get(topic.upgradeId);
      // Another run than the store lists, still (the store could not be asked): the store's row stands.
      if (row && topic.storeBacked && listsOtherRun(row, state)) continue;
      if (topic.tracker || !row || row.lastSeq < state.lastSeq) rows.set(topic.upgradeId, toSummaryRow(state));
    }
    return filterRows([...rows.values()].filter((row) => this.#authorized(client, row.upgradeId)));
  }

  // ---------------------------------------------------------------- topics

  #topic(upgradeId: string): Topic {
    let topic = this.#topics.get(upgradeId);
    if (!topic) {
      topic = new Topic(upgradeId, this.#host);
      this.#topics.set(upgradeId, topic);
    }
    return topic;
  }

  /**
   * The topic of an upgrade, loaded. A topic may be released while its load is pending (a `*`
   * client left and watchAll stopped): then the one now in the map is used, so that a subscriber
   * never ends up on a topic the server no longer knows (whose store watch nobody would stop).
   */
  async #loadedTopic(upgradeId: string, wanted: () => boolean): Promise<Topic> {
    for (;;) {
      const topic = this.#topic(upgradeId);
      try {
        await topic.ensureLoaded();
      } catch (err) {
        // Unless a tracker of this process (or one that has the server as a sink) took the upgrade over
        // while the store failed: it is the source now.
        if (!topic.loaded) {
          // Nothing of the failed load is kept: the topic goes unless something else holds it (another
          // waiter on the same load may have released it already, and another topic taken its place).
          if (this.#topics.get(upgradeId) === topic) this.#maybeRelease(topic);
          throw err;
        }
      }
      if (this.#topics.get(upgradeId) === topic || !wanted()) return topic;
    }
  }

  /**
   * The store holds `topic`'s upgrade no more (see {@link TopicHost.gone}). Its `*` subscribers (told
   * by the topic's resync) let go of it, so that a server with a dashboard open does not keep every
   * upgrade that ever expired; watchAll brings it back to them if it is created again.
   */
  #gone(topic: Topic): void {
    if (this.#topics.get(topic.upgradeId) !== topic) return;
    for (const w of this.#wildcards) {
      const sub = w.children.get(topic.upgradeId);
      if (!sub) continue;
      w.children.delete(topic.upgradeId);
      this.#dropSub(sub);
    }
    this.#maybeRelease(topic);
  }

  /**
   * {@link Topic.confirmRun}, where a store that cannot be read leaves the topic's state standing: it
   * is the store's last word, which the topic's watch keeps following (and a resume past it is still
   * resynced as 'unavailable'). With `needsState`, a topic that holds none rejects with the store's
   * error instead: there is nothing to answer from (`get_summary` must not say the upgrade does not exist).
   */
  #confirmRun(topic: Topic, needsState = false): Promise<void> {
    return topic.confirmRun().catch((err: unknown) => {
      if (needsState && !topic.state) throw err;
      this.#o.logger.warn({ err, upgradeId: topic.upgradeId }, 'could not ask the store whether it still holds an upgrade; answering from the state held');
    });
  }

  /** A load of upgrade `upgradeId` made for the `*` subscribers failed (see {@link #loadFailed}). */
  #wildcardLoadFailed(upgradeId: string, err: unknown): void {
    const topic = this.#topics.get(upgradeId);
    if (topic) this.#loadFailed(topic, err);
  }

  /**
   * A store load made for the `*` subscribers failed (a load for a subscriber by name is answered to
   * that subscriber alone). A `*` subscriber is owed every upgrade of the store, and no one asks for
   * this one by name: it is told (once, until the upgrade is given to it) with an `error` naming the
   * upgrade, and the topic loads again later, until `*` subscribers have it. A topic no longer in the
   * map (released while it loaded) is left alone: its successor is the one that counts.
   */
  #loadFailed(topic: Topic, err: unknown): void {
    const upgradeId = topic.upgradeId;
    if (this.#topics.get(upgradeId) !== topic || topic.loaded || this.#wildcards.size === 0 || !this.#o.store?.watchAll) return;
    topic.reloadLater();
    for (const w of this.#wildcards) {
      if (w.closed || !w.ready || w.children.has(upgradeId) || w.unreadable.has(upgradeId) || !this.#authorized(w.client, upgradeId)) continue;
      w.unreadable.add(upgradeId);
      w.client.send(storeFailure(err, `could not read upgrade "${upgradeId}" from the store (it is sent once it can be read)`, upgradeId));
    }
  }

  #dropSub(sub: Subscription): void {
    sub.closed = true;
    // What it held counts against the client no more.
    sub.take();
    const topic = this.#topics.get(sub.upgradeId);
    if (!topic) return;
    topic.subs.delete(sub);
    topic.syncWatch();
    this.#maybeRelease(topic);
  }

  #dropWildcard(w: WildcardSubscription): void {
    w.closed = true;
    this.#wildcards.delete(w);
    for (const sub of w.children.values()) this.#dropSub(sub);
    w.children.clear();
    this.#syncWatchAll();
  }

  /**
   * Forgets a topic nobody needs: no tracker, no subscriber, and no `*` subscriber fed by watchAll
   * (whose next event of it would otherwise load its state again, and which is told of an upgrade
   * whose load failed once it can be read). One the store was read and found not to hold goes even
   * then: a client subscribing to made-up ids and leaving them would make the server keep a topic for
   * each; watchAll makes it again if the upgrade appears.
   */
  #maybeRelease(topic: Topic): void {
    if (topic.tracker) return;
    // `*` subscribers alone do not hold an idle topic: it is retained within the bound (see #idle).
    if (topic.subs.size > 0 && (this.#topics.get(topic.upgradeId) !== topic || !this.#idle(topic))) return;
    // One released while it loaded, whose successor is in the map now (its subscriber left before the
    // load answered): it closes, and the successor, which others may follow, stays.
    if (this.#topics.get(topic.upgradeId) !== topic) return topic.close();
    if (this.#idle(topic)) return this.#retain(topic);
    if (this.#watchAll && topic.storeBacked && (topic.exists || !topic.loaded)) return;
    topic.close();
    this.#topics.delete(topic.upgradeId);
  }

  /**
   * An upgrade known only from what it was sent as a sink (or its tracker's last state), that nobody
   * follows by name. `*` subscribers do not count: a dashboard left open for weeks would otherwise make
   * the server keep every upgrade it was ever sent; one forgotten is let go of by them (see #retain).
   */
  #idle(topic: Topic): boolean {
    if (topic.tracker || !topic.exists) return false;
    // One followed from the store only once it ended (no more events of its run; a new run under its
    // id comes back through watchAll) and no store watch of it runs: a dashboard open for weeks on a
    // Redis would otherwise make the server keep every upgrade the store ever held.
    if (topic.storeBacked && (!topic.loaded || topic.watching || !isTerminal(topic.state!.status))) return false;
    for (const sub of topic.subs) if (!sub.wildcard) return false;
    return true;
  }

  /**
   * Keeps an idle topic's state for later subscribers, within `maxRetainedUpgrades`: without a
   * bound, a long-running server would hold the last state of every upgrade it was ever sent. The
   * least recently updated beyond it are forgotten (a sink-fed one comes back whole with its next event).
   */
  #retain(topic: Topic): void {
    this.#retained.set(topic.upgradeId, topic);
    while (this.#retained.size > this.#o.maxRetainedUpgrades) {
      // The least recently updated goes (by its state's updatedAt; among equals the one kept longest),
      // not the one retained longest: an upgrade a subscriber just left may have ended long ago, while
      // one fed as a sink now is running.
      let oldest: Topic | undefined;
      for (const kept of this.#retained.values()) if (!oldest || (kept.state?.updatedAt ?? '') < (oldest.state?.updatedAt ?? '')) oldest = kept;
      this.#retained.delete(oldest!.upgradeId);
      if (this.#topics.get(oldest!.upgradeId) !== oldest || !this.#idle(oldest!)) continue;
      // Its `*` subscribers let go of it (if it is sent again, it is given to them again).
      for (const w of this.#wildcards) {
        const sub = w.children.get(oldest!.upgradeId);
        if (!sub) continue;
        w.children.delete(oldest!.upgradeId);
        sub.closed = true;
        sub.take();
      }
      oldest!.close();
      this.#topics.delete(oldest!.upgradeId);
    }
  }

  #syncWatchAll(): void {
    const store = this.#o.store;
    if (this.#wildcards.size === 0 || !store?.watchAll || !this.#address) return this.#stopWatchAll();
    if (this.#watchAll) return;
    const ac = new AbortController();
    this.#watchAll = ac;
    // Not a handle that keeps the process alive: stop() clears it anyway.
    this.#sweepTimer ??= setInterval(() => void this.#sweep(), SWEEP_MS).unref();
    void (async () => {
      try {
        for await (const event of store.watchAll!({ signal: ac.signal })) {
          if (ac.signal.aborted) break;
          const topic = this.#topic(event.upgradeId);
          if (!topic.storeBacked) continue;
          topic.ingest(event);
          // The upgrade ended: once its last events went out (after the load they may wait for),
          // `*` subscribers alone no longer hold it.
          if (isTerminal(event.status) && event.type.startsWith('upgrade.')) void topic.ensureLoaded().then(() => this.#settle(topic), () => {});
        }
      } catch (err) {
        if (!ac.signal.aborted) this.#o.logger.warn({ err }, 'store watchAll failed; retrying');
      }
      if (ac.signal.aborted || this.#watchAll !== ac) return;
      this.#watchAll = undefined;
      this.#watchAllRetry = setTimeout(() => {
        this.#watchAllRetry = undefined;
        this.#syncWatchAll();
        if (this.#watchAll) void this.#catchUpAfterWatchAll();
      }, 1000);
    })();
  }

  /**
   * The new watchAll starts from now: what came between the failure and now is read from the store
   * (after the new start point was taken, so nothing falls between): the later events of every
   * upgrade served, and the upgrades that appeared meanwhile, which `*` subscribers then get as for
   * a new upgrade.
   */
  async #catchUpAfterWatchAll(): Promise<void> {
    for (const topic of this.#topics.values()) if (topic.storeBacked) topic.refill();
    let ids: string[];
    try {
      ids = (await this.#o.store!.list()).map((row) => row.upgradeId);
    } catch (err) {
      this.#o.logger.warn({ err }, 'could not list the store after watchAll came back');
      return;
    }
    for (const id of ids) {
      if (this.#wildcards.size === 0) return;
      if (this.#topics.has(id)) continue;
      let topic: Topic;
      try {
        topic = await this.#loadedTopic(id, () => this.#wildcards.size > 0);
      } catch (err) {
        // Told to the `*` subscribers and loaded again later (see #loadFailed).
        this.#wildcardLoadFailed(id, err);
        continue;
      }
      this.#attachWildcards(topic);
      this.#settle(topic);
    }
  }

  /**
   * watchAll reports no deletion nor expiry, and `*` subscribers alone do not hold an upgrade: one
   * deleted or expired before the server saw it end (a writer that crashed, whose upgrade retention
   * removed; one deleted before its last events were read) was held, with each `*` subscriber's
   * subscription to it, for as long as a `*` subscriber stayed, unless a client asked for
   * `list_upgrades` (which checks them: the dashboard does, a relay of `*` may never). Every
   * SWEEP_MS, what the server holds only for `*` subscribers is checked as `list_upgrades` does: a
   * topic of an upgrade the store does not list as the same run is asked about (it starts over from
   * what the store holds, and goes when that is nothing), and one found not to exist goes.
   */
  async #sweep(): Promise<void> {
    const store = this.#o.store;
    if (this.#sweeping || !this.#watchAll || !store) return;
    this.#sweeping = true;
    try {
      const rows = new Map<string, UpgradeSummaryRow>();
      for (const row of await store.list()) rows.set(row.upgradeId, row);
      if (!this.#watchAll) return;
      const unsure: Topic[] = [];
      // (A topic with a store watch, which reports a deletion itself, or with a load in flight, is left alone.)
      for (const topic of [...this.#topics.values()]) {
        if (!topic.storeBacked || !topic.loaded || topic.watching) continue;
        if (!topic.exists) this.#maybeRelease(topic);
        else if (listsOtherRun(rows.get(topic.upgradeId), topic.state)) unsure.push(topic);
      }
      await Promise.all(unsure.map((topic) => this.#confirmRun(topic)));
    } catch (err) {
      this.#o.logger.warn({ err }, 'could not list the store to check the upgrades held for "*" subscribers');
    } finally {
      this.#sweeping = false;
    }
  }

  #stopWatchAll(): void {
    this.#watchAll?.abort();
    this.#watchAll = undefined;
    if (this.#watchAllRetry) clearTimeout(this.#watchAllRetry);
    this.#watchAllRetry = undefined;
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    for (const topic of [...this.#topics.values()]) this.#maybeRelease(topic);
  }

  static {
    topicOf = (server, upgradeId) => server.#topics.get(upgradeId);
  }
}

/**
 * The store events a server holds now for an upgrade while it waits for the store (see `Topic.held`):
 * for this package's tests, which assert that they stay bounded. Not exported by the package.
 */
export function heldForStore(server: ProgressWebSocketServer, upgradeId: string): { events: number; bytes: number } | undefined {
  return topicOf(server, upgradeId)?.held;
}

/** The protocol's own codes: they name this server's refusal of a request, not a store's failure. */
const PROTOCOL_CODES: ReadonlySet<string> = new Set(['INVALID_MESSAGE', 'FORBIDDEN', 'RATE_LIMITED']);

/**
 * The `error` answering a request the store failed to serve: the store's ProgressError code
 * (STORE_UNAVAILABLE, DATA_CORRUPTED, ...), else STORE_UNAVAILABLE, and the upgrade the request named,
 * if one. Never "no such upgrade": the client may try again later. The store's own message stays in
 * the log: it may name hosts and keys.
 */
function storeFailure(err: unknown, what: string, upgradeId?: string): ServerMessage {
  const code: WireErrorCode = isProgressError(err) && !PROTOCOL_CODES.has(err.code) ? err.code : 'STORE_UNAVAILABLE';
  return { type: 'error', code, message: `${what}; try again later`, ...(upgradeId === undefined ? {} : { upgradeId }) };
}

/** A closed placeholder, so that an upgrade a `*` client may not read is not asked about again. */
function deniedSub(w: WildcardSubscription, upgradeId: string): Subscription {
  const sub = new Subscription(w.client, upgradeId, true);
  sub.closed = true;
  return sub;
}

/** A start() overtaken by a stop(). */
function stoppedError(): ProgressError {
  return new ProgressError('CLOSED', '[@progress/ws-server] stopped before it was listening');
}

/**
 * Whether a store's list row is not of the run `state` is of: none, created at another time, or
 * behind it (another run created in the same millisecond: a run never goes back).
 */
function listsOtherRun(row: { createdAt: string; lastSeq: number } | undefined, state: Readonly<UpgradeProgress> | undefined): boolean {
  return row === undefined || row.createdAt !== state?.createdAt || row.lastSeq < (state?.lastSeq ?? 0);
}

/** Whether `value` has what `track()` uses of a tracker; one whose members cannot be read has not. */
function isTracker(value: unknown): value is ProgressTracker {
  if (value === null || typeof value !== 'object') return false;
  const t = value as Record<string, unknown>;
  try {
    return typeof t.addSink === 'function' && typeof t.readEvents === 'function' && isValidId(t.upgradeId) && typeof t.durableProgress === 'object' && t.durableProgress !== null;
  } catch {
    return false;
  }
}
