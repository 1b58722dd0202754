import type { Cluster, Redis } from 'ioredis';

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
 */
export function endConnection(conn: Redis | Cluster): Promise<void> {
  if ((conn as { isCluster?: boolean }).isCluster) {
    const cluster = conn as Cluster;
    if (cluster.status === 'reconnecting') {
      // Every node lost (the pool empty), only the timer of the next attempt left: disconnect() clears
      // that timer but ends the Cluster only when its pool drains, which an empty pool never does: it
      // stayed `disconnecting`, its queued commands unanswered, and close() waited out the bound
      // below. Ended the way ioredis ends a Cluster that has not connected yet (status `wait`).
      cluster.status = 'wait';
    }
    if (cluster.status !== 'end') cluster.disconnect();
    return ended(cluster);
  }
  const redis = conn as Redis;
  endRedis(redis);
  return ended(redis);
}

function endRedis(conn: Redis): void {
  if (conn.status === 'end') return;
  // ioredis itself calls disconnect() again later on a connection closed during its handshake (the
  // ready check, failing with "Connection is closed.", "recovers" with disconnect(true)): on a client
  // that has ended, that arms the disconnect timer for a socket that closed already. Nothing is left
  // to disconnect then.
  const disconnect = conn.disconnect.bind(conn);
  conn.disconnect = (reconnect?: boolean): void => {
    if (conn.status !== 'end') disconnect(reconnect);
  };
  if (conn.status === 'reconnecting') {
    // No socket (the last one closed) and no connect in flight, only the timer of the next attempt:
    // end it the way ioredis ends a client that has not connected yet (status `wait`), which clears
    // that timer, emits `close` and `end`, and rejects the queued commands, without touching the
    // closed socket (which would arm the disconnect timer).
    conn.status = 'wait';
    conn.disconnect();
    return;
  }
  const stream = conn.stream as (typeof conn.stream & { destroyed?: boolean; destroy?: () => void }) | undefined;
  conn.disconnect();
  // A socket connecting or open: closed now rather than after a FIN the server may never send. Its
  // `close` event clears the disconnect timer, and ioredis ends the client on it (a manual close).
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
