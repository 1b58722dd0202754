import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of a Redis, for tests of connection loss: it can hold the bytes a client
 * sends (a network stall), and cut connections right after a command reached Redis but before its
 * reply reaches the client (a lost reply).
 */
export interface RedisProxy {
  /** `redis://127.0.0.1:<port>` of the proxy. */
  url: string;
  /** Buffer what clients send instead of forwarding it, until `release()`. */
  hold(): void;
  /** Forward what was held, and everything from now on. */
  release(): void;
  /** Deliver the next reply from Redis, then {@link hold} (a link that stalls right after a reply). */
  holdAfterNextReply(): void;
  /**
   * The next reply from Redis is not delivered: the connection is cut instead (once). With
   * `thenDown`, new connections are refused from that moment until {@link up} (see {@link down}):
   * the client's re-send of the command waits for `up()`.
   */
  dropNextReply(options?: { thenDown?: boolean }): void;
  /**
   * The next data from Redis is delivered only up to the end of its first line (one simple reply,
   * such as `:1`), then the connection is cut (once): a pipeline answered in part. With
   * `connection` (1 for the first client connection accepted, 2 for the second...), only on that one.
   */
  cutAfterFirstLine(connection?: number): void;
  /**
   * The next client connection is answered with `reply` (a RESP error line) and closed, without
   * reaching Redis: what Redis does to a connection past `maxclients`.
   */
  refuseNextConnection(reply?: string): void;
  /**
   * An outage of one client: cuts client connection `connection` (1 for the first accepted...) and
   * closes every new one at once until {@link up}; the other connections open now stay up.
   */
  down(connection: number): void;
  /** Ends the outage of {@link down}: new connections reach Redis again. */
  up(): void;
  /**
   * A failover: every connection open now is cut, and new ones reach `target` (a redis:// URL,
   * another Redis: the replica promoted in place of the master).
   */
  failOver(target: string): void;
  /** How many client connections were accepted so far. */
  readonly connections: number;
  /** How many bytes of replies reached the clients so far (all connections). */
  readonly bytesToClients: number;
  close(): Promise<void>;
}

/** Starts a proxy on a free port in front of `target` (a redis:// URL). */
export async function startRedisProxy(target: string): Promise<RedisProxy> {
  let { hostname, port } = new URL(target);
  const pairs = new Set<[Socket, Socket]>();
  let holding = false;
  let dropReply = false;
  let downAfterDrop = false;
  let cutAfterLine: number | boolean = false;
  let holdAfterReply = false;
  let connections = 0;
  let bytesToClients = 0;
  let refuseWith: string | undefined;
  let refusing = false;
  const byIndex = new Map<number, () => void>();
  const held: Array<() => void> = [];
  const server: Server = createServer((client) => {
    const index = ++connections;
    if (refusing) {
      client.on('error', () => {});
      client.destroy();
      return;
    }
    if (refuseWith !== undefined) {
      const reply = refuseWith;
      refuseWith = undefined;
      client.on('error', () => {});
      // Answered once the client has written (its first command gets the error), then closed.
      client.once('data', () => client.write(reply, () => client.destroy()));
      return;
    }
    const upstream = connect({ host: hostname, port: Number(port) || 6379 });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const cut = () => {
      pairs.delete(pair);
      byIndex.delete(index);
      client.destroy();
      upstream.destroy();
    };
    byIndex.set(index, cut);
    client.on('data', (chunk) => {
      if (holding) held.push(() => upstream.write(chunk));
      else upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (dropReply) {
        dropReply = false;
        if (downAfterDrop) refusing = true;
        downAfterDrop = false;
        cut();
        return;
      }
      if (cutAfterLine === true || cutAfterLine === index) {
        cutAfterLine = false;
        client.write(chunk.subarray(0, chunk.indexOf('\r\n') + 2), cut);
        return;
      }
      bytesToClients += chunk.length;
      client.write(chunk);
      if (holdAfterReply) {
        holdAfterReply = false;
        holding = true;
      }
    });
    client.on('error', cut).on('close', cut);
    upstream.on('error', cut).on('close', cut);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const proxyPort = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `redis://127.0.0.1:${proxyPort}`,
    refuseNextConnection: (reply = '-ERR max number of clients reached\r\n') => {
      refuseWith = reply;
    },
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      for (const send of held.splice(0)) send();
    },
    holdAfterNextReply: () => {
      holdAfterReply = true;
    },
    dropNextReply: (options) => {
      dropReply = true;
      downAfterDrop = options?.thenDown === true;
    },
    down: (connection: number) => {
      refusing = true;
      byIndex.get(connection)?.();
    },
    up: () => {
      refusing = false;
    },
    failOver: (to: string) => {
      ({ hostname, port } = new URL(to));
      for (const cut of [...byIndex.values()]) cut();
    },
    cutAfterFirstLine: (connection?: number) => {
      cutAfterLine = connection ?? true;
    },
    get connections() {
      return connections;
    },
    get bytesToClients() {
      return bytesToClients;
    },
    close: async () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
