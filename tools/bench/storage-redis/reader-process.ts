// The reader process of the latency rows (latency-reader.ts), started and paced from the bench.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** What a reader process measured after its first 100 events: its CPU per event and its garbage collector's pauses. */
export interface ReaderStats {
  cpuPerEventUs: number;
  gc: { minor: number; major: number; totalMs: number; maxMs: number };
}

/** Starts a reader process (config: see latency-reader.ts); `ready` once it listens, `result` its latencies (ms), `stats` its costs. */
export function startReader(config: object): { ready: Promise<void>; result: Promise<number[]>; stats: Promise<ReaderStats> } {
  const script = fileURLToPath(new URL('./latency-reader.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@progress/source', script], {
    env: { ...process.env, BENCH_READER: JSON.stringify(config) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let buffer = '';
  const lines: string[] = [];
  const waiters: Array<(line: string) => void> = [];
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    let at: number;
    while ((at = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      const w = waiters.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  const next = (): Promise<string> => (lines.length ? Promise.resolve(lines.shift()!) : new Promise((r) => waiters.push(r)));
  const ready = next().then(() => undefined);
  const result = ready.then(next).then((l) => JSON.parse(l) as number[]);
  return { ready, result, stats: result.then(next).then((l) => JSON.parse(l) as ReaderStats) };
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

