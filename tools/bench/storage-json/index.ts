// Durable appends per second of @progress/storage-json through the whole ProgressTracker, beside the
// old Python module's way (rewrite the whole file per event), lowdb v7, and the raw disk limits.
// Run from the repo root: npx tsx --conditions=@progress/source tools/bench/storage-json/index.ts
import { ours } from './ours.js';
import { lowdb, oldModule } from './peers.js';
import { rawDsync, rawPerBatch, rawPerEvent } from './raw.js';
import { resumeRead } from './resume.js';

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pad = (cells: string[], widths: number[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');

function table(title: string, head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  console.log(`\n${title}`);
  console.log(pad(head, widths));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(pad(r, widths));
}

const started = Date.now();
console.log(`@progress/storage-json bench: node ${process.version}, ${process.platform}/${process.arch}; events/s, higher is better.`);
console.log('Disk timings drift (the disk is shared), so each figure is a median of 3 runs, and each run of ours is compared with');
console.log('the raw limit measured right before and right after it; the targets use the median of those ratios.');

const sizes = [1000, 10_000];
const RUNS = 3;
const rawEvent: number[] = [];
const rawBatch: number[] = [];
const seq: Record<number, number[]> = { 1000: [], 10_000: [] };
const bursts: Record<number, number[]> = { 1000: [], 10_000: [] };
/** ours / raw, each run's figure against the raw limit measured right before and after it. */
const seqRatio: Record<number, number[]> = { 1000: [], 10_000: [] };
const burstRatio: Record<number, number[]> = { 1000: [], 10_000: [] };
for (let run = 0; run < RUNS; run++) {
  for (const s of sizes) {
    const before = await rawPerEvent(700);
    const r = await ours(s, 1, 'fsync', 100_000, 1000);
    const after = await rawPerEvent(700);
    rawEvent.push(before, after);
    seq[s]!.push(r);
    seqRatio[s]!.push(r / ((before + after) / 2));
  }
  for (const s of sizes) {
    const before = await rawPerBatch(700);
    const r = await ours(s, 100, 'fsync', 1_000_000, 1000);
    const after = await rawPerBatch(700);
    rawBatch.push(before, after);
    bursts[s]!.push(r);
    burstRatio[s]!.push(r / ((before + after) / 2));
  }
}
const rawE = median(rawEvent);
const rawB = median(rawBatch);
const seqM = Object.fromEntries(sizes.map((s) => [s, median(seq[s]!)]));
const burstM = Object.fromEntries(sizes.map((s) => [s, median(bursts[s]!)]));

const rows: string[][] = [
  ['JsonFileStore + tracker, fsync, sequential', ...sizes.map((s) => int(seqM[s]!))],
  ['JsonFileStore + tracker, fsync, bursts of 100', ...sizes.map((s) => int(burstM[s]!))],
];
const peers: Array<[string, (e: number, b: number) => Promise<number>]> = [
  ['old module (rewrite whole file per event, no fsync)', oldModule],
  ['lowdb 7 (push + write, temp file + rename, no fsync)', lowdb],
];
for (const [name, fn] of peers) {
  for (const burst of [1, 100]) {
    const cells = [];
    for (const existing of sizes) cells.push(int(await fn(existing, burst)));
    rows.push([`${name}, ${burst === 1 ? 'sequential' : 'bursts of 100'}`, ...cells]);
  }
}
rows.push(['raw limit: append 1 line + fdatasync per event', int(rawE), int(rawE)]);
rows.push(['raw limit: 100 lines per write + 1 fdatasync', int(rawB), int(rawB)]);
const dsync1 = await rawDsync(1, 1000);
const dsync100 = await rawDsync(100, 1000);
rows.push(['raw, for reference: 1 line per O_DSYNC write', int(dsync1), int(dsync1)]);
rows.push(['raw, for reference: 100 lines per O_DSYNC write', int(dsync100), int(dsync100)]);
table('Durable appends per second, by events already stored', ['workload', '1,000 events', '10,000 events'], rows);

// Per-event cost against history: fsync sequential (what a caller waits) and CPU only (durability none, bursts).
const histories = [1000, 10_000, 100_000];
const costSeq: number[] = [];
const costCpu: number[] = [];
for (const h of histories) {
  costSeq.push(1e6 / median([await ours(h, 1, 'fsync', 100_000, 700), await ours(h, 1, 'fsync', 100_000, 700), await ours(h, 1, 'fsync', 100_000, 700)]));
  costCpu.push(1e6 / median([await ours(h, 100, 'none', 100_000, 700), await ours(h, 100, 'none', 100_000, 700), await ours(h, 100, 'none', 100_000, 700)]));
}
const us = (n: number): string => `${n.toFixed(1)} us`;
table(
  'Per-event cost of JsonFileStore + tracker, by events already stored (median of 3)',
  ['mode', ...histories.map((h) => `${int(h)} events`), '10k / 1k', '100k / 1k'],
  [
    ['fsync, sequential (latency per event)', ...costSeq.map(us), `${(costSeq[1]! / costSeq[0]!).toFixed(2)}x`, `${(costSeq[2]! / costSeq[0]!).toFixed(2)}x`],
    ['durability none, bursts of 100 (CPU)', ...costCpu.map(us), `${(costCpu[1]! / costCpu[0]!).toFixed(2)}x`, `${(costCpu[2]! / costCpu[0]!).toFixed(2)}x`],
  ],
);

// A reader resuming below the snapshot (a ws-server client a few hundred events behind): readEvents
// seeks near the sought seq; before, it read the log from its start. Reported only, not a target.
const resume = await resumeRead(100_000, 500, 9);
table(
  `readEvents of the last 500 events below the snapshot, 100,000 events (${resume.logMB.toFixed(1)} MB log, snapshot every 1,000), median of 9`,
  ['read', 'ms'],
  [
    [`before: from the log's start (the scan readEvents made before), after seq ${int(resume.afterSeq)}`, resume.before.toFixed(2)],
    [`readEvents (a seek near seq ${int(resume.afterSeq)}), after seq ${int(resume.afterSeq)}`, resume.after.toFixed(2)],
    ['before / after', `${(resume.before / resume.after).toFixed(1)}x`],
  ],
);

const checks: Array<[string, boolean, string]> = [];
for (const s of sizes) {
  const b = median(burstRatio[s]!);
  const q = median(seqRatio[s]!);
  checks.push([`bursts at ${int(s)}: >= 50% of raw per-batch`, b >= 0.5, `${(100 * b).toFixed(0)}% (runs: ${burstRatio[s]!.map((x) => `${(100 * x).toFixed(0)}%`).join(', ')})`]);
  checks.push([`sequential at ${int(s)}: >= 80% of raw per-event`, q >= 0.8, `${(100 * q).toFixed(0)}% (runs: ${seqRatio[s]!.map((x) => `${(100 * x).toFixed(0)}%`).join(', ')})`]);
}
checks.push(['per-event cost at 10k within 1.5x of 1k (fsync)', costSeq[1]! <= 1.5 * costSeq[0]!, `${(costSeq[1]! / costSeq[0]!).toFixed(2)}x`]);
checks.push(['per-event cost at 100k within 1.5x of 1k (fsync)', costSeq[2]! <= 1.5 * costSeq[0]!, `${(costSeq[2]! / costSeq[0]!).toFixed(2)}x`]);
checks.push(['per-event CPU at 100k within 1.5x of 1k', costCpu[2]! <= 1.5 * costCpu[0]!, `${(costCpu[2]! / costCpu[0]!).toFixed(2)}x`]);
table('Targets (issue 3, acceptance 5)', ['target', 'measured', 'result'], checks.map(([n, ok, m]) => [n, m, ok ? 'PASS' : 'FAIL']));
console.log(`\nraw samples: per event ${rawEvent.map(int).join(' / ')}; per batch ${rawBatch.map(int).join(' / ')}`);
console.log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
