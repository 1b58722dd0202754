// The clock logic on its own: a Redis Cluster whose masters' clocks differ cannot be made on one
// machine (test/cluster.integration.test.ts fakes it with proxies that rewrite TIME). Here the
// masters are objects answering TIME, with a skew and a delay each.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CLOCK_REFRESH_MS, ServerClock, localNow } from '../src/server-clock.js';

interface FakeMaster {
  skewMs: number;
  delayMs: number;
}

/** TIME as `m` answers it. */
async function time(m: FakeMaster): Promise<[string, string]> {
  const t = localNow() + m.skewMs;
  if (m.delayMs) await new Promise((r) => setTimeout(r, m.delayMs).unref());
  return [String(Math.floor(t / 1000)), String(Math.floor((t % 1000) * 1000))];
}

function fakeCluster(masters: FakeMaster[]): ConstructorParameters<typeof ServerClock>[0] {
  const nodes = masters.map((m, i) => ({ options: { host: '127.0.0.1', port: 7000 + i }, time: () => time(m) }));
  return { isCluster: true, time: () => time(masters[0]!), nodes: () => nodes } as never;
}

describe('ServerClock on a Cluster', () => {
  it("keeps the lowest master's offset, and a master slow to answer counts with its last reading instead of raising it", async () => {
    const a: FakeMaster = { skewMs: 0, delayMs: 0 };
    const b: FakeMaster = { skewMs: -5000, delayMs: 0 }; // its clock 5 s behind
    const clock = new ServerClock(fakeCluster([a, b]), 2000);
    expect(await clock.offset()).toBeLessThan(-4900);
    // B is busy: it answers later than the reading waits (a quarter of the timeout), within the timeout.
    b.delayMs = 700;
    clock.invalidate();
    expect(await clock.offset()).toBeLessThan(-4900);
  });

  it('leaves out a master that never answered, so that one master down does not stop the appends', async () => {
    const clock = new ServerClock(fakeCluster([{ skewMs: 0, delayMs: 0 }, { skewMs: -5000, delayMs: 60_000 }]), 2000);
    expect(Math.abs(await clock.offset())).toBeLessThan(100);
  });

  it('waits for a slow master no more than a second, however long the timeout (it holds up the appends to every master)', async () => {
    const a: FakeMaster = { skewMs: 0, delayMs: 0 };
    const b: FakeMaster = { skewMs: -5000, delayMs: 0 };
    const clock = new ServerClock(fakeCluster([a, b]), 120_000);
    await clock.offset();
    // B now answers after a minute: the reading goes on without it (with its last reading), long before.
    b.delayMs = 60_000;
    clock.invalidate();
    expect(await clock.offset()).toBeLessThan(-4900);
  });
});

/** A single Redis whose clock is `m.skewMs` off ours, and how many times its TIME was read. */
function fakeRedis(m: FakeMaster): { redis: ConstructorParameters<typeof ServerClock>[0]; reads: () => number } {
  let reads = 0;
  const redis = {
    time: () => {
      reads++;
      return time(m);
    },
  };
  return { redis: redis as never, reads: () => reads };
}

// Our clock (performance.now(), which localNow() reads) moves only when a test moves it.
describe('ServerClock on one Redis', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('measures the offset to the millisecond, within the uncertainty it gives (errorMs)', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    // The server's clock 5 s ahead, in the middle of a second: the milliseconds of TIME count.
    const m: FakeMaster = { skewMs: 5500 - (localNow() % 1000), delayMs: 0 };
    const clock = new ServerClock(fakeRedis(m).redis, 2000);
    expect(Math.abs((await clock.offset()) - m.skewMs)).toBeLessThanOrEqual(clock.errorMs);
  });

  it('offset() keeps the offset until invalidate(); fresh() measures again one older than CLOCK_REFRESH_MS', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const { redis, reads } = fakeRedis({ skewMs: 0, delayMs: 0 });
    const clock = new ServerClock(redis, 2000);
    await clock.offset();
    await clock.fresh();
    expect(reads()).toBe(1);
    vi.advanceTimersByTime(CLOCK_REFRESH_MS + 1);
    await clock.offset();
    expect(reads()).toBe(1);
    await clock.fresh();
    expect(reads()).toBe(2);
    clock.invalidate();
    await Promise.all([clock.offset(), clock.offset()]);
    expect(reads()).toBe(3);
  });

  it('known gives the offset in use, and measures it again in the background once older than CLOCK_REFRESH_MS', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const m: FakeMaster = { skewMs: 0, delayMs: 0 };
    const { redis, reads } = fakeRedis(m);
    const clock = new ServerClock(redis, 2000);
    expect(clock.known).toBeUndefined();
    const first = await clock.offset();
    expect(clock.known).toBe(first);
    expect(reads()).toBe(1);
    m.skewMs = 3000;
    vi.advanceTimersByTime(CLOCK_REFRESH_MS + 1);
    // Still the old one (no wait on the hot path), while the new reading is under way.
    expect(clock.known).toBe(first);
    expect(reads()).toBe(2);
    // fresh() waits for that reading rather than send another.
    expect(await clock.fresh()).toBeGreaterThan(first + 2900);
    expect(reads()).toBe(2);
  });

  it('tells onStepBack how far the server clock went back, but not of a move its uncertainty explains', async () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const m: FakeMaster = { skewMs: 0, delayMs: 0 };
    const steps: number[] = [];
    const clock = new ServerClock(fakeRedis(m).redis, 2000, (ms) => steps.push(ms));
    const measureAfter = async (skewMs: number): Promise<void> => {
      m.skewMs = skewMs;
      vi.advanceTimersByTime(CLOCK_REFRESH_MS + 1);
      await clock.fresh();
    };
    await clock.offset();
    await measureAfter(-30);
    await measureAfter(5000);
    expect(steps).toEqual([]);
    await measureAfter(0);
    expect(steps).toHaveLength(1);
    expect(Math.abs(steps[0]! - 5000)).toBeLessThanOrEqual(2);
  });
});
