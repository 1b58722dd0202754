import type { Cluster, Redis } from 'ioredis';
import { withTimeout } from './errors.js';

/**
 * Local time in ms for deadlines: the wall clock at process start plus a monotonic clock since. An
 * NTP step or a resumed VM moves `Date.now()`, and a deadline computed from it (with an offset read
 * before the step) would let Redis run an append after the caller was told it failed.
 */
export const localNow = (): number => performance.timeOrigin + performance.now();

/**
 * Knows the Redis server's clock relative to ours, so that an append can carry a deadline on the
 * server's clock: the script refuses to run after it, so a command that sat in a queue during an
 * outage never lands after the caller was told `STORE_UNAVAILABLE`.
 */
export class ServerClock {
  readonly #redis: Redis | Cluster;
  readonly #timeoutMs: number;
  #offset: number | undefined;
  #rtt = 0;
  #measuring: Promise<number> | undefined;

  constructor(redis: Redis | Cluster, timeoutMs: number) {
    this.#redis = redis;
    this.#timeoutMs = timeoutMs;
  }

  /** The uncertainty of the offset, ms (half the round trip of the measurement, plus slack). */
  get errorMs(): number {
    return Math.ceil(this.#rtt / 2) + 50;
  }

  /** The offset when known (no await on the hot path). */
  get known(): number | undefined {
    return this.#offset;
  }

  /** Server ms minus local ms ({@link localNow}); measured on first use, after every reconnect, and after a refused late append. */
  offset(): Promise<number> {
    if (this.#offset !== undefined) return Promise.resolve(this.#offset);
    this.#measuring ??= this.#measure().finally(() => {
      this.#measuring = undefined;
    });
    return this.#measuring;
  }

  /** Forget the offset (the connection was re-established, possibly to another server). */
  invalidate(): void {
    this.#offset = undefined;
  }

  async #measure(): Promise<number> {
    const before = localNow();
    const [sec, usec] = await withTimeout(this.#redis.time(), this.#timeoutMs, 'could not read the server clock');
    const after = localNow();
    const server = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    this.#rtt = after - before;
    this.#offset = server - Math.round((before + after) / 2);
    return this.#offset;
  }
}
