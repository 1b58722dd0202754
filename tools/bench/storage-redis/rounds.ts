// What the storage-redis benches share: alternating rounds, the tracker's rounds, the printed table.
import type { ProgressTracker } from '@progress/core';

/** Rounds per comparison: short rounds, many of them, alternating (see {@link alternate}). */
export const ROUNDS = 20;

export interface Row {
  name: string;
  value: string;
  target: string;
  result: 'PASS' | 'FAIL' | 'info';
}

export const rate = (n: number, ms: number): number => (n / ms) * 1000;
export const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
export const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

/**
 * Runs the contenders in turn, ROUNDS times, the order reversed every other round (so that the
 * background load weighs on all alike: the 2-core machine's load drifts within seconds, and a
 * contender that ran through a slow patch alone would decide the comparison; 5 runs of 4,000 moved
 * the sequential ratio by +-7%). Each contender's rate is its events over its time in all rounds
 * (the harmonic mean of its rounds' rates, each round having the same count).
 */
export async function alternate(contenders: Record<string, () => Promise<number>>): Promise<Record<string, number>> {
  const rates: Record<string, number[]> = {};
  const labels = Object.keys(contenders);
  for (let i = 0; i < ROUNDS; i++) {
    for (const label of i % 2 ? [...labels].reverse() : labels) (rates[label] ??= []).push(await contenders[label]!());
  }
  const out: Record<string, number> = {};
  for (const [label, list] of Object.entries(rates)) {
    out[label] = list.length / list.reduce((sum, r) => sum + 1 / r, 0);
    const sorted = [...list].sort((a, b) => a - b);
    process.stderr.write(`  ${label}: ${fmt(out[label])} events/s over ${ROUNDS} rounds (rounds: min ${fmt(sorted[0]!)}, median ${fmt(median(list))}, max ${fmt(sorted.at(-1)!)})\n`);
  }
  // The first two contenders' ratio within each round (they ran back to back): how far the machine's
  // noise moves the comparison. Information only; the targets use the rates above.
  const [a, b] = labels;
  if (a !== undefined && b !== undefined) {
    const ratios = rates[a]!.map((r, i) => r / rates[b]![i]!).sort((x, y) => x - y);
    const q = (p: number): string => ratios[Math.min(ratios.length - 1, Math.floor(p * ratios.length))]!.toFixed(2);
    process.stderr.write(`  ${a} / ${b}, per round: median ${q(0.5)}x, middle half ${q(0.25)}x-${q(0.75)}x, all ${q(0)}x-${q(1)}x\n`);
  }
  return out;
}

/** One round of `n` tracker commands, each awaited before the next, on a tracker `open` makes (closed after); events/s. */
export async function sequentialRound(open: () => Promise<ProgressTracker>, n: number): Promise<number> {
  const tracker = await open();
  const start = performance.now();
  for (let i = 0; i < n; i++) await tracker.updateTaskProgress(`t${i % 10}`, i % 100, 'step');
  const ms = performance.now() - start;
  await tracker.close();
  return rate(n, ms);
}

/** One round of `bursts` bursts of 100 tracker commands issued at once, then awaited; events/s. */
export async function burstRound(open: () => Promise<ProgressTracker>, bursts: number): Promise<number> {
  const tracker = await open();
  const start = performance.now();
  for (let b = 0; b < bursts; b++) {
    const burst: Array<Promise<unknown>> = [];
    for (let i = 0; i < 100; i++) burst.push(tracker.updateTaskProgress(`t${i % 10}`, i, 'step'));
    await Promise.all(burst);
  }
  const ms = performance.now() - start;
  await tracker.close();
  return rate(bursts * 100, ms);
}

/** Prints the rows as a table on stdout, and sets exit code 1 when one missed its target. */
export function printRows(rows: readonly Row[]): void {
  const widths = [Math.max(...rows.map((r) => r.name.length)), Math.max(...rows.map((r) => r.value.length)), Math.max(...rows.map((r) => r.target.length))];
  console.log(`${'measurement'.padEnd(widths[0]!)}  ${'value'.padStart(widths[1]!)}  ${'target'.padEnd(widths[2]!)}  result`);
  for (const r of rows) console.log(`${r.name.padEnd(widths[0]!)}  ${r.value.padStart(widths[1]!)}  ${r.target.padEnd(widths[2]!)}  ${r.result}`);
  process.exitCode = rows.some((r) => r.result === 'FAIL') ? 1 : 0;
}
