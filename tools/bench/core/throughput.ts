import { drive, gc, median, openRig, spread } from './harness.js';
import { int, type Row } from './table.js';

/** The target of DESIGN / issue 2: task.progress events per second on MemoryStore. */
export const TARGET_EVENTS_PER_SECOND = 300_000;

export interface ThroughputOptions {
  /** Commands per iteration. */
  events: number;
  iterations: number;
  /** Top-level tasks in the upgrade. */
  tasks: number;
  /** Whether the events/s target applies (it is set for the 10-task upgrade). @default true */
  targeted?: boolean;
}

/** One sample, in its own function so that nothing of it stays reachable once it returns. */
async function eventsPerSecond(burst: number, options: ThroughputOptions): Promise<{ wall: number; cpu: number }> {
  const rig = await openRig(options.tasks);
  gc();
  const { ms, cpuMs } = await drive(rig, options.events, burst);
  await rig.tracker.close();
  return { wall: (options.events / ms) * 1000, cpu: (options.events / cpuMs) * 1000 };
}

/**
 * Events per second through `ProgressTracker.updateTaskProgress` on a fresh MemoryStore per
 * iteration, with one counting sink: awaited one by one (burst 1) or `burst` at a time.
 */
export async function measureThroughput(burst: number, options: ThroughputOptions): Promise<Row> {
  await eventsPerSecond(burst, options); // warm-up with this task count and burst size
  const rates: number[] = [];
  const cpuRates: number[] = [];
  for (let i = 0; i < options.iterations; i++) {
    const { wall, cpu } = await eventsPerSecond(burst, options);
    rates.push(wall);
    cpuRates.push(cpu);
  }
  const rate = median(rates);
  const mode = burst <= 1 ? 'sequential (each awaited)' : `bursts of ${int(burst)}`;
  const targeted = options.targeted ?? true;
  return {
    name: `events/s, ${mode}, ${options.tasks} tasks`,
    value: int(rate),
    spread: spread(rates, int),
    cpu: int(median(cpuRates)),
    target: targeted ? `>= ${int(TARGET_EVENTS_PER_SECOND)}` : '-',
    result: !targeted ? 'info' : rate >= TARGET_EVENTS_PER_SECOND ? 'PASS' : 'FAIL',
  };
}
