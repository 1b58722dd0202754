/**
 * The @progress/core benchmark (issue 2, acceptance point 5). From the repository root:
 *
 *   npx tsx --conditions=@progress/source tools/bench/core/index.ts
 *
 * Prints one row per measurement with its target and PASS/FAIL; exits with code 1 when a target is
 * missed. See tools/bench/README.md.
 */
import { cpus, loadavg } from 'node:os';
import { drive, openRig } from './harness.js';
import { measureHistory } from './history.js';
import { measureMemory } from './memory.js';
import { measureReducer } from './reducer.js';
import { measureThroughput } from './throughput.js';
import { printTable, type Row } from './table.js';

const started = performance.now();
const rows: Row[] = [];
const step = async (what: string, run: () => Promise<Row | Row[]>): Promise<void> => {
  const t = performance.now();
  const out = await run();
  rows.push(...(Array.isArray(out) ? out : [out]));
  console.log(`  (${what}: ${((performance.now() - t) / 1000).toFixed(1)} s)`);
};

const load = (): string => loadavg().map((n) => n.toFixed(2)).join(' ');
// Other work on the machine skews every figure: the load average is printed before and after.
console.log(`@progress/core bench: node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, load average ${load()}`);

// Warm-up: every path the measurements take, until the JIT has settled (the sequential path needs
// about 150,000 commands before its rate stops climbing).
const warmUp = async (burst: number): Promise<void> => {
  const rig = await openRig(10);
  await drive(rig, 150_000, burst);
  await rig.tracker.close();
};
await step('warm-up', async () => {
  for (const burst of [1, 100, 1000]) await warmUp(burst);
  return [];
});

const throughput = { events: 50_000, iterations: 7, tasks: 10 };
await step('throughput, sequential', () => measureThroughput(1, throughput));
await step('throughput, bursts of 100', () => measureThroughput(100, throughput));
await step('throughput, bursts of 1000', () => measureThroughput(1000, throughput));
await step('throughput, sequential, 200 tasks', () => measureThroughput(1, { ...throughput, tasks: 200, targeted: false }));

const history = { small: 1_000, large: 100_000, measured: 20_000, iterations: 5, burst: 1 };
const byTasks: Record<number, number> = {};
for (const tasks of [10, 200]) {
  await step(`history, ${tasks} tasks`, async () => {
    const result = await measureHistory(tasks, history);
    byTasks[tasks] = result.large;
    return result.rows;
  });
}
rows.push({
  name: 'us/event 200 tasks / 10 tasks (100,000 stored)',
  value: `${(byTasks[200]! / byTasks[10]!).toFixed(2)}x`,
  spread: '',
  target: '-',
  result: 'info',
});

await step('reducer', async () => [await measureReducer(10, { events: 200_000, iterations: 5 }), await measureReducer(200, { events: 200_000, iterations: 5 })]);
await step('memory', () => measureMemory({ events: 100_000, iterations: 3, tasks: 10 }));

console.log();
printTable(rows);
const failed = rows.filter((r) => r.result === 'FAIL').length;
console.log(`\n${failed === 0 ? 'all targets met' : `${failed} target(s) missed`}; total ${((performance.now() - started) / 1000).toFixed(1)} s; load average ${load()}`);
process.exitCode = failed === 0 ? 0 : 1;
