import { TLSSocket } from 'node:tls';
import { Command, Redis, type Cluster } from 'ioredis';
import { isClientTimeout, isConnectionLoss } from './errors.js';

/** A Redis command: its name and arguments. */
export type RedisCommand = [name: string, ...args: Array<string | number>];

/**
 * Sends `commands` on one Redis connection in one socket write (the socket corked around them while
 * connected; otherwise ioredis queues them, in order, until it connects): their replies' promises.
 *
 * Used instead of an ioredis Pipeline where a process runs one per read. Its constructor defines an
 * accessor on each instance (`length`) and copies every defined script onto it, so V8 gives each
 * pipeline a hidden class of its own, which it keeps in the old generation until a full collection:
 * ~0.6-1.2 KB of old space per pipeline. At a thousand reads a second, a watcher's young-generation
 * collections promoted ~3 MB a second and paused it 10-30 ms each, the tail of its latency.
 *
 * Not for MULTI and EXEC (see {@link readTogether}).
 */
export function sendTogether(conn: Redis, commands: RedisCommand[]): Array<Promise<unknown>> {
  // Commands made here and handed to sendCommand, not sent by name (`conn.call`): a client passed in
  // with `enableAutoPipelining` holds those until the next tick, when it writes them with the
  // client's own commands of that tick, and each such batch is an ioredis Pipeline (see above).
  const keyPrefix = (conn.options as { keyPrefix?: string }).keyPrefix;
  const options = keyPrefix ? { keyPrefix, replyEncoding: 'utf8' as const } : { replyEncoding: 'utf8' as const };
  const socket = conn.status === 'ready' ? (conn.stream as Socket | undefined) : undefined;
  socket?.cork();
  try {
    return commands.map(([name, ...args]) => {
      const command = new Command(name, args, options);
      conn.sendCommand(command);
      return command.promise as Promise<unknown>;
    });
  } finally {
    socket?.uncork();
  }
}

/** Whether `conn` is an ioredis Cluster (a client passed in may be either; Redis' own `isCluster` is false). */
export function isClusterClient(conn: unknown): conn is Cluster {
  return (conn as { isCluster?: boolean }).isCluster === true;
}

/**
 * Why the connection of `conn` is down, `err` being the error it met: its message and, for a plain
 * connection (redis://) that the server reset before a byte of answer, the likeliest cause: a server
 * that speaks only TLS resets the connection on a plain command, without a word. A reply that is not
 * Redis' protocol at all is said as such, with the address asked about.
 */
export function connectionErrorOf(err: unknown, conn: Redis): string {
  const message = (err as Error)?.message ?? String(err);
  // ioredis' parser on a reply that is not RESP: a server of another protocol on the port (an HTTP
  // server's `<!DOCTYPE ...` or `HTTP/1.1 400`). Its "Please report this." sent users to ioredis.
  const foreign = NOT_RESP.exec(message);
  if (foreign) return `the server does not speak Redis' protocol (its reply began with ${foreign[1]}); is ${conn.options.host}:${conn.options.port} a Redis port?`;
  if ((err as { code?: unknown } | null)?.code !== 'ECONNRESET' || conn.options.tls || conn.stream?.bytesRead !== 0) return message;
  return `${message}; the server closed the connection without answering; does it want TLS? the URL says redis://`;
}

/** The message of redis-parser's error for a reply whose first byte is not one of RESP's types. */
const NOT_RESP = /^Protocol error, got (.+) as reply type byte\. Please report this\.$/;

/** The message of the error ioredis ends a try to connect with after its connectTimeout (10 s). */
export const CONNECT_TIMEOUT = 'connect ETIMEDOUT';

/**
 * Why the connection of `conn` (rediss://) is not up, when the server took the connection but has not
 * answered the TLS handshake: no error says so (ioredis gives up on it after its connectTimeout of
 * 10 s), and a plain Redis never answers a ClientHello (it waits for the end of an inline command).
 * Undefined otherwise.
 */
export function unansweredHandshake(conn: Redis | Cluster): string | undefined {
  if (isClusterClient(conn) || !conn.options.tls || conn.status !== 'connecting') return undefined;
  const stream: unknown = conn.stream;
  if (!(stream instanceof TLSSocket) || stream.connecting || stream.destroyed) return undefined;
  return 'the server took the connection but did not answer the TLS handshake; does it speak TLS? the URL says rediss://';
}

/**
 * `commands` written to Redis together, so that they run one after the other: their replies in
 * order, or the first error among them. On one Redis with {@link sendTogether}; on a Cluster as a
 * pipeline (all keys of such a read carry one hash tag: one node).
 *
 * Never a MULTI ... EXEC on a connection others share: ioredis re-sends the commands a lost
 * connection left unanswered, and when the new connection is lost again while it writes them, it
 * queues the rest behind the commands issued meanwhile. A transaction cut in two that way opened
 * on the connection ahead of another read's commands, whose own MULTI Redis refused (nested), and
 * whose EXEC ran them with the first one's: that read got another upgrade's replies as its own.
 * Reads that must agree with each other read the meta before and after instead.
 */
export function readTogether(conn: Redis | Cluster, commands: RedisCommand[]): Promise<unknown[]> {
  if (!isClusterClient(conn)) return Promise.all(sendTogether(conn as Redis, commands));
  return (conn as Cluster)
    .pipeline(commands)
    .exec()
    .then((results) => {
      for (const [err] of results ?? []) if (err) throw err;
      return (results ?? []).map(([, reply]) => reply);
    });
}

/** The first wait before {@link againOnConnectionLoss} sends a command again, and the longest (it doubles in between). */
const AGAIN_FIRST_MS = 10;
const AGAIN_MAX_MS = 250;

/**
 * `send()`, and again (after 10 ms, doubling up to 250 ms) while it fails because its connection
 * was lost, for up to `withinMs` from this call: for commands that may run twice (the clock's TIME,
 * the read-only load script, the delete script, which a re-run answers as its first run did).
 *
 * ioredis re-sends a lone command a lost connection left unanswered, but not always: a command of
 * a pipeline answered in part (auto-pipelining, `enableAutoPipelining`, makes one of whatever a
 * tick sends to one node) fails with an AbortError; a Cluster fails the unanswered commands of such
 * a pipeline with "Connection is closed." too when one of its answered commands is not a read by
 * its name (EVALSHA is not, nor the SET or ZADD of another caller), as it does any command while
 * not `ready` or with `retryDelayOnFailover: 0`. Those failed at once, long before the caller's
 * bound, although Redis was back a few ms later.
 *
 * On a Cluster, a MOVED reply too: the command did not run. A Cluster does not reconnect a node
 * connection that closed (unless given a `clusterNodeRetryStrategy`): it drops it from its pool until
 * its next slots refresh, and meanwhile sends the commands for that master's slots to another node at
 * random, which answers MOVED. It follows a MOVED itself for a lone command, and for a pipeline only
 * when all its commands got the same answer: the commands of an auto-pipeline for several slots of
 * that master (several upgrades) each failed with its own MOVED, and nothing refreshed the slots, so
 * a command sent again the same way met the same fate. The slots are refreshed before it is sent again.
 *
 * Any other failure (another Redis error reply, the client's own `commandTimeout` unless
 * `resendOnClientTimeout`: for a command that changes nothing, such as TIME) is the caller's,
 * as is a connection loss (or MOVED) once `withinMs` has passed, the client has ended (closed:
 * nothing will answer), or `stop` aborts (the store closes: the wait ends at once, and no timer of
 * it is left). The caller bounds the wait itself ({@link withTimeout}): this only stops sending once
 * that bound has passed.
 */
export async function againOnConnectionLoss<T>(client: Redis | Cluster, send: () => Promise<T>, withinMs: number, stop?: AbortSignal, resendOnClientTimeout = false): Promise<T> {
  const end = performance.now() + withinMs;
  const over = (): boolean => client.status === 'end' || stop?.aborted === true;
  const isCluster = isClusterClient(client);
  for (let wait = AGAIN_FIRST_MS; ; wait = Math.min(2 * wait, AGAIN_MAX_MS)) {
    try {
      return await send();
    } catch (err) {
      const left = end - performance.now();
      const moved = isCluster && isMoved(err);
      if (!(moved || isConnectionLoss(err) || (resendOnClientTimeout && isClientTimeout(err))) || left <= 0 || over()) throw err;
      if (moved) (client as Cluster).refreshSlotsCache();
      await pause(Math.min(wait, left), stop);
      if (over()) throw err;
    }
  }
}

/** A Cluster node's answer for a key of a slot it does not serve (the command did not run). */
const isMoved = (err: unknown): boolean => err instanceof Error && err.message.startsWith('MOVED ');

/** Resolves after `ms`, or at once when `signal` aborts (the timer cleared then). */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Ends a connection the store owns (the client it created from `url`, or a watcher's) at once: no
 * socket and no timer of it is left once this returns, and the commands still queued on it are
 * rejected (`Connection is closed.`) instead of left pending. Calling it again does nothing.
 *
 * ioredis' `disconnect()` alone does not do that in every state. It ends the socket and arms a
 * timer (`disconnectTimeout`, 2 s) that destroys it should it not close, a timer only the socket's
 * `close` event clears:
 * - waiting to reconnect (`reconnecting`), the socket has closed already: the timer runs its 2 s,
 *   keeping the process alive, and the client never reaches `end`, so the commands queued on it
 *   are never answered (ioredis issues #1247, #2169);
 * - connecting, or connected to a server that does not answer the handshake, `end()` waits for a
 *   connect or a close that may not come before the timer;
 * - on a client that has ended already, it arms the timer again for a socket that has closed; ioredis
 *   does that itself when the connection was closed during its handshake.
 *
 * A Cluster's `disconnect()` calls `disconnect()` on each of its node connections, with the same
 * effect on one waiting to reconnect (a `clusterNodeRetryStrategy`): its timer ran, and its queued
 * commands (the Cluster's, for that node) were never answered. Each node connection is ended here as
 * above. A Cluster that lost all its node connections and waits to reconnect (its own retry timer,
 * `reconnecting`) never ended at all: `disconnect()` cleared that timer and left it `disconnecting`
 * for good (only the last node connection closing ends a Cluster, and none was left), its offline
 * queue never answered.
 */
export function endConnection(conn: Redis | Cluster): Promise<void> {
  if (isClusterClient(conn)) return endCluster(conn as Cluster);
  const redis = conn as Redis;
  const detector = endRedis(redis);
  return Promise.all([ended(redis), ...detector.map(ended)]).then(() => {});
}

/**
 * For a Cluster the store creates (a watcher's), from its creation on: no disconnect() does anything
 * on a connection of it that has ended (see noDisconnectAfterEnd), neither on a node connection
 * (closed during its handshake by a node going down, ioredis "recovers" it with disconnect(true) once
 * its ready check failed) nor on the connections its slots refreshes open on a node (one CLUSTER
 * SLOTS each, on a duplicate() of the node's connection), which ioredis disconnects once answered,
 * also when the node refused them. Each of those armed the disconnect timer (2 s) for a socket that
 * had closed, which kept a process alive for up to 2 s after its store closed while the Cluster was
 * trying to reconnect to nodes that are down.
 */
export function guardCluster(cluster: Cluster): void {
  const opened = new Set<Redis>();
  REFRESHERS.set(cluster, opened);
  // The periodic slots refresh (`slotsRefreshInterval`) arms its next round when a refresh answers,
  // whatever the Cluster's state: one in flight when the Cluster ended armed it again, and from then
  // on every round (an empty pool: answered at once) armed the next, a timer that kept the process
  // alive for good. Once endCluster began, a refresh's answer goes to no one.
  const refresh = cluster.refreshSlotsCache;
  if (typeof refresh === 'function') {
    cluster.refreshSlotsCache = (callback?: Parameters<Cluster['refreshSlotsCache']>[0]): void => {
      refresh.call(cluster, callback && ((...args: Parameters<NonNullable<typeof callback>>) => ENDING.has(cluster) || callback(...args)));
    };
  }
  cluster.on('+node', (node: Redis) => {
    noDisconnectAfterEnd(node);
    const duplicate = node.duplicate.bind(node);
    node.duplicate = (...args: Parameters<Redis['duplicate']>): Redis => {
      const conn = duplicate(...args);
      noDisconnectAfterEnd(conn);
      // Until it has ended: one still waiting for its answer when the Cluster ends is ended with it.
      opened.add(conn);
      conn.once('end', () => opened.delete(conn));
      return conn;
    };
  });
}

/**
 * The connections the slots refreshes of a guarded Cluster (see guardCluster) opened and that have
 * not ended. The Cluster's disconnect() does not end them: one waiting for its CLUSTER SLOTS (a
 * node slow to answer) kept its socket and the refresh's timeout (`slotsRefreshTimeout`) after the
 * store closed, and then the disconnect timer.
 */
const REFRESHERS = new WeakMap<Cluster, Set<Redis>>();
/** The guarded Clusters that endCluster has begun to end. */
const ENDING = new WeakSet<Cluster>();

/**
 * Makes `disconnect()` do nothing on `conn` once it has ended. ioredis itself calls disconnect()
 * again later on a connection closed during its handshake (the ready check, failing with
 * "Connection is closed.", "recovers" with disconnect(true)): on a client that has ended, that arms
 * the disconnect timer for a socket that closed already. Nothing is left to disconnect then.
 */
function noDisconnectAfterEnd(conn: Redis): void {
  const disconnect = conn.disconnect.bind(conn);
  conn.disconnect = (reconnect?: boolean): void => {
    if (conn.status !== 'end') disconnect(reconnect);
  };
}

function endCluster(cluster: Cluster): Promise<void> {
  ENDING.add(cluster);
  if (cluster.status === 'end') return Promise.resolve();
  // Taken before disconnect() empties the pool, calling disconnect() on each of them: ready for it
  // as endRedis makes a connection. Then the Cluster is closing already (not `ready`) when their
  // queued commands are rejected, which it fails at once (`Connection is closed.`) rather than
  // trying them again later (after `retryDelayOnFailover`, a timer).
  const nodes = cluster.nodes('all').map((node) => ({ node, stream: readyToEnd(node) }));
  if (cluster.status === 'reconnecting') {
    // No node connection left, only the timer of the next attempt: end it the way ioredis ends a
    // Cluster that has not connected yet (status `wait`), which clears that timer, emits `close`
    // and `end`, and rejects its offline queue.
    cluster.status = 'wait';
  }
  cluster.disconnect();
  for (const { node, stream } of nodes) {
    node.disconnect(); // left in the pool by a Cluster that had not connected (nothing once ended)
    closeSocket(stream);
  }
  // After the Cluster's disconnect(): the refresh they answer then stops (the Cluster is closing).
  const refreshers = [...(REFRESHERS.get(cluster) ?? [])];
  for (const conn of refreshers) endRedis(conn);
  return Promise.all([ended(cluster), ...nodes.map(({ node }) => ended(node)), ...refreshers.map(ended)]).then(() => {});
}

/** Ends `conn` (see endConnection); returns the connections ended with it (its failover detector's, see readyToEnd). */
function endRedis(conn: Redis): Redis[] {
  if (conn.status === 'end') return [];
  const detector = conn.status === 'reconnecting' ? failoverDetectorOf(conn) : [];
  const stream = readyToEnd(conn);
  conn.disconnect();
  closeSocket(stream);
  // After its client's: a failover it reports now would make that client connect again.
  for (const sentinel of detector) endRedis(sentinel);
  return detector;
}

/**
 * The connections to the sentinels of a client made with `sentinels` and `failoverDetector: true`
 * (each subscribed to `+switch-master`, kept open while the client waits to reconnect: they tell it
 * of the failover). ioredis closes them in its connector's disconnect(), which a client ended as
 * readyToEnd ends one waiting to reconnect never calls: they stayed open for good, each a socket that
 * kept the process alive, and reconnected to the sentinel whenever it restarted.
 */
function failoverDetectorOf(conn: Redis): Redis[] {
  const detector = (conn as unknown as { connector?: { failoverDetector?: { sentinels?: Array<{ client?: unknown }> } | null } }).connector?.failoverDetector;
  return (detector?.sentinels ?? []).flatMap(({ client }) => (client instanceof Redis ? [client] : []));
}

type Socket = NonNullable<Redis['stream']> & { destroyed?: boolean; destroy?: () => void };

/**
 * Makes `conn` end on its next disconnect() without leaving a timer; returns its socket, to close
 * after that disconnect() (see closeSocket).
 */
function readyToEnd(conn: Redis): Socket | undefined {
  if (conn.status === 'end') return undefined;
  noDisconnectAfterEnd(conn);
  if (conn.status === 'reconnecting') {
    // No socket (the last one closed) and no connect in flight, only the timer of the next attempt:
    // end it the way ioredis ends a client that has not connected yet (status `wait`), which clears
    // that timer, emits `close` and `end`, and rejects the queued commands, without touching the
    // closed socket (which would arm the disconnect timer).
    conn.status = 'wait';
    return undefined;
  }
  return conn.stream as Socket | undefined;
}

/**
 * A socket connecting or open, once its client's disconnect() ended it: closed now rather than after
 * a FIN the server may never send. Its `close` event clears the disconnect timer, and ioredis ends
 * the client on it (a manual close).
 */
function closeSocket(stream: Socket | undefined): void {
  if (stream && stream.destroyed === false) stream.destroy?.();
}

/**
 * Settles once `conn` has ended (its socket closed: `end` comes after the socket's `close`), so that
 * a closed store leaves nothing behind. Bounded: a connection that does not end within a second is
 * not waited for (the timer does not keep the process alive).
 */
function ended(conn: Redis | Cluster): Promise<void> {
  if (conn.status === 'end') return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      conn.off('end', done);
      resolve();
    };
    const timer = setTimeout(done, 1000).unref();
    conn.on('end', done);
  });
}
