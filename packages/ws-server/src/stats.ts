/** Counters of a {@link ProgressWebSocketServer}, from `server.getStats()`. */
export interface ServerStats {
  /** Clients connected now. */
  clients: number;
  /** Upgrades with a live source or a subscriber now. */
  topics: number;
  /** Upgrades followed from the store with a store `watch()` now (at most `maxWatchedUpgrades`). */
  watchedUpgrades: number;
  /** Live events serialized and framed (once each, whatever the number of clients). */
  eventsFramed: number;
  /** Frames written to clients. */
  framesSent: number;
  /** Clients closed with 1013 because their send buffer passed `maxBufferedBytes`. */
  slowClientsClosed: number;
  /** Messages refused by the rate limit. */
  rateLimited: number;
  /** Handshakes the server refused: 401, 403 or 404, and 503 while stopping or when `authenticate` timed out (a malformed handshake, which the `ws` library answers 400 itself, is not counted). */
  handshakesRefused: number;
}

/** A zeroed {@link ServerStats}. */
export function emptyStats(): ServerStats {
  return { clients: 0, topics: 0, watchedUpgrades: 0, eventsFramed: 0, framesSent: 0, slowClientsClosed: 0, rateLimited: 0, handshakesRefused: 0 };
}
