import type { Cluster, Redis } from 'ioredis';
import { againOnConnectionLoss } from './connection.js';
import { withTimeout } from './errors.js';

/**
 * Local time in ms for deadlines: the wall clock at process start plus a monotonic clock since. An
 * NTP step or a resumed VM moves `Date.now()`, and a deadline computed from it (with an offset read
 * before the step) would let Redis run an append after the caller was told it failed.
 */
export const localNow = (): number => performance.timeOrigin + performance.now();

/** How old a measured offset may get, while in use, before it is measured again (in the background). */
export const CLOCK_REFRESH_MS = 1000;

/**
 * Knows the Redis server's clock relative to ours, so that an append can carry a deadline on the
 * server's clock: the script refuses to run after it, so a command that sat in a queue during an
 * outage never lands after the caller was told `STORE_UNAVAILABLE`.
 *
 * On a Cluster, every master's clock is read and the lowest offset kept (see `#measure`).
 *
 * The offset is measured on first use, after every reconnect and after a refused late append, and
 * again in the background once it is older than {@link CLOCK_REFRESH_MS} while appends use it: the
 * Redis host's clock may be stepped (NTP). When it went back, `onStepBack` hears by how much, so
 * that appends sent with the old offset wait that much longer before they are given up on (their
 * deadline on the server's clock is that much further away now).
 */
export class ServerClock {
  readonly #redis: Redis | Cluster;
  readonly #timeoutMs: number;
  readonly #onStepBack: (ms: number) => void;
  #offset: number | undefined;
  #measuredAt = 0;
  #rtt = 0;
  #measuring: Promise<number> | undefined;
  /** A Cluster's masters (host:port) and the last reading of each, for a master that does not answer in time. */
  #masters = new Map<string, { offset: number; rtt: number }>();

  /** Aborts when the store closes: a reading lost with its connection is not sent again after that. */
  readonly #stop: AbortSignal | undefined;
  /** Ends a reading's wait (CLOSED, its timer cleared): see `withTimeout`. */
  readonly #ended: AbortSignal | undefined;

  constructor(redis: Redis | Cluster, timeoutMs: number, onStepBack: (ms: number) => void = () => {}, stop?: AbortSignal, ended?: AbortSignal) {
    this.#redis = redis;
    this.#timeoutMs = timeoutMs;
    this.#onStepBack = onStepBack;
    this.#stop = stop;
    this.#ended = ended;
  }

  /** The uncertainty of the offset, ms (half the round trip of the measurement, plus slack). */
  get errorMs(): number {
    return Math.ceil(this.#rtt / 2) + 50;
  }

  /** The offset when known (no await on the hot path); one older than {@link CLOCK_REFRESH_MS} is still given, and measured again meanwhile. */
  get known(): number | undefined {
    if (this.#offset !== undefined && this.#measuring === undefined && localNow() - this.#measuredAt > CLOCK_REFRESH_MS) {
      // A failure keeps the offset: Redis is unreachable then, and the appends' own deadlines bound them.
      void this.#start().catch(() => {});
    }
    return this.#offset;
  }

  /** Server ms minus local ms ({@link localNow}); measured on first use, after every reconnect, and after a refused late append. */
  offset(): Promise<number> {
    if (this.#offset !== undefined) return Promise.resolve(this.#offset);
    return this.#start();
  }

  /**
   * The offset, measured again first when older than {@link CLOCK_REFRESH_MS}: for a command sent
   * now and then (a delete), which does not keep the offset fresh as a stream of appends does; an
   * offset read long ago would miss a step of the server's clock since.
   */
  fresh(): Promise<number> {
    if (this.#offset !== undefined && localNow() - this.#measuredAt <= CLOCK_REFRESH_MS) return Promise.resolve(this.#offset);
    return this.#start();
  }

  /** Forget the offset (the connection was re-established, possibly to another server). */
  invalidate(): void {
    this.#offset = undefined;
  }

  #start(): Promise<number> {
    this.#measuring ??= this.#measure().finally(() => {
      this.#measuring = undefined;
    });
    return this.#measuring;
  }

  async #measure(): Promise<number> {
    const previous = this.#offset;
    const previousError = this.errorMs;
    let { offset, rtt, at } = await this.#read(this.#redis);
    // A Cluster runs each upgrade's script on the master of its slot, on that master's clock, and
    // TIME above went to any one node. The masters' clocks may differ: the offset must be one no
    // master's clock is behind, or a master whose clock runs behind the one measured would run an
    // append after its caller was told it failed. So every master is read, and the lowest offset
    // kept: a deadline on it comes no later on any master (on a master ahead, earlier: an append
    // refused as late, never one run late).
    // A master that does not answer soon counts with its last reading (a busy master is slow to
    // answer, and it is the one whose appends queue): one master down or slow must neither stop nor
    // hold up the appends to the others, nor raise the offset past its clock. One never read yet is
    // left out until it answers (the next reading, a second later while appends go on).
    const cluster = this.#redis as Cluster;
    if (cluster.isCluster) {
      const soon = Math.min(Math.ceil(this.#timeoutMs / 4), 1000);
      const masters = cluster.nodes('master');
      const readings = await Promise.allSettled(masters.map((node) => this.#read(node, soon)));
      const known = new Map<string, { offset: number; rtt: number }>();
      for (const [i, node] of masters.entries()) {
        const key = `${node.options?.host}:${node.options?.port}`;
        const settled = readings[i]!;
        const read = settled.status === 'fulfilled' ? settled.value : this.#masters.get(key);
        if (!read) continue;
        known.set(key, { offset: read.offset, rtt: read.rtt });
        if (read.offset - Math.ceil(read.rtt / 2) < offset - Math.ceil(rtt / 2)) ({ offset, rtt } = read);
        if (settled.status === 'fulfilled') at = Math.max(at, settled.value.at);
      }
      this.#masters = known;
    }
    this.#rtt = rtt;
    this.#offset = offset;
    this.#measuredAt = at;
    // Beyond what the two measurements' uncertainty explains: the server's clock went back.
    if (previous !== undefined && previous - this.#offset > previousError + this.errorMs) this.#onStepBack(previous - this.#offset);
    return this.#offset;
  }

  /**
   * One reading of `redis`' clock: its offset from ours, the round trip it took, and when it ended.
   * A TIME that lost its connection is sent again within `timeoutMs` (see againOnConnectionLoss): the
   * offset is read after every reconnect, when connections are most likely to be lost again, and an
   * append that waits for it failed at once, long before commandTimeoutMs, although Redis was back.
   * The round trip is the answered TIME's own.
   */
  #read(redis: Redis | Cluster, timeoutMs = this.#timeoutMs): Promise<{ offset: number; rtt: number; at: number }> {
    const reading = againOnConnectionLoss(
      redis,
      async () => {
        const before = localNow();
        const [sec, usec] = await redis.time();
        const after = localNow();
        const server = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
        return { offset: server - Math.round((before + after) / 2), rtt: after - before, at: after };
      },
      timeoutMs,
      this.#stop,
      // A client passed in may time TIME out with its own `commandTimeout`: an append waits for this
      // reading (its first, its first after a reconnect), which then failed at that timeout, not at
      // commandTimeoutMs (appends themselves are exempt, see AppendCommand). TIME changes nothing.
      true,
    );
    return withTimeout(reading, timeoutMs, 'could not read the server clock', {}, this.#ended);
  }
}
