// The clock logic on its own: a Redis Cluster whose masters' clocks differ cannot be made on one
// machine (test/cluster.integration.test.ts fakes it with proxies that rewrite TIME). Here the
// masters are objects answering TIME, with a skew and a delay each.
import { describe, expect, it } from 'vitest';
import { ServerClock, localNow } from '../src/server-clock.js';

interface FakeMaster {
  skewMs: number;
  delayMs: number;
}

function fakeCluster(masters: FakeMaster[]): ConstructorParameters<typeof ServerClock>[0] {
  const time = async (m: FakeMaster): Promise<[string, string]> => {
    const t = localNow() + m.skewMs;
    if (m.delayMs) await new Promise((r) => setTimeout(r, m.delayMs).unref());
    return [String(Math.floor(t / 1000)), String(Math.floor((t % 1000) * 1000))];
  };
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
});
