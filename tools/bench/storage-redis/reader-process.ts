// The reader process of the latency rows (latency-reader.ts), started and paced from the bench.
import { spawnScript } from '../../test-utils/src/spawn.js';

/** What a reader process measured after its first 100 events: its CPU per event and its garbage collector's pauses. */
export interface ReaderStats {
  cpuPerEventUs: number;
  gc: { minor: number; major: number; totalMs: number; maxMs: number };
}

/** Starts a reader process (config: see latency-reader.ts); `ready` once it listens, `result` its latencies (ms), `stats` its costs. */
export function startReader(config: object): { ready: Promise<void>; result: Promise<number[]>; stats: Promise<ReaderStats> } {
  const child = spawnScript(new URL('./latency-reader.ts', import.meta.url), config);
  const ready = child.line().then(() => undefined);
  const result = ready.then(() => child.next<number[]>());
  return { ready, result, stats: result.then(() => child.next<ReaderStats>()) };
}

const now = (): number => performance.timeOrigin + performance.now();

/** Calls `send(t)` about `perSecond` times a second, `count` times in all, `t` the wall clock in ms (what the reader takes its latency from). */
export async function paced(count: number, perSecond: number, send: (t: number) => Promise<unknown>): Promise<void> {
  const start = performance.now();
  const pending: Array<Promise<unknown>> = [];
  for (let i = 0; i < count; i++) {
    const due = start + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(send(now()));
  }
  await Promise.all(pending);
}

