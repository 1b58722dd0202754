import { MemoryStore } from '@progress/core';
import { drive, gc, median, openRig, spread } from './harness.js';
import { micros, type Row } from './table.js';

/** The target of issue 2: the cost per event at 100,000 stored events within 1.5x of the cost at 1,000. */
export const MAX_HISTORY_RATIO = 1.5;

export interface HistoryOptions {
  /** Stored events before the measurement: the small and the large history. */
  small: number;
  large: number;
  /** task.progress commands timed after the history. */
  measured: number;
  iterations: number;
  /** Awaited one by one (1) or in bursts. */
  burst: number;
}

/**
 * Microseconds per task.progress event once the store already holds `history` events of the upgrade:
 * the history is written through a tracker, the tracker closed, the upgrade reopened from the store
 * (snapshot + tail), and the next `measured` events timed.
 */
async function costAt(tasks: number, history: number, options: HistoryOptions): Promise<{ wall: number; cpu: number }> {
  const store = new MemoryStore();
  const writer = await openRig(tasks, store);
  const upgradeId = writer.tracker.upgradeId;
  const missing = history - writer.tracker.progress.lastSeq;
  if (missing < 0) throw new Error(`${tasks} tasks take ${writer.tracker.progress.lastSeq} events to set up, more than ${history}`);
  await drive(writer, missing, 1000);
  await writer.tracker.close();

  const rig = await openRig(tasks, store, upgradeId);
  if (rig.tracker.progress.lastSeq !== history) throw new Error(`reopened at seq ${rig.tracker.progress.lastSeq}, not ${history}`);
  gc();
  const { ms, cpuMs } = await drive(rig, options.measured, options.burst, history);
  await rig.tracker.close();
  return { wall: (ms * 1000) / options.measured, cpu: (cpuMs * 1000) / options.measured };
}

/**
 * The cost per event at a small and a large stored history, with `tasks` top-level tasks. The two
 * sizes are measured alternately, so that JIT warm-up and heap growth weigh on both alike.
 */
export async function measureHistory(tasks: number, options: HistoryOptions): Promise<{ rows: Row[]; small: number; large: number }> {
  await costAt(tasks, options.small, options); // warm-up
  const small: number[] = [];
  const large: number[] = [];
  const smallCpu: number[] = [];
  const largeCpu: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < options.iterations; i++) {
    const a = await costAt(tasks, options.small, options);
    const b = await costAt(tasks, options.large, options);
    small.push(a.wall);
    large.push(b.wall);
    smallCpu.push(a.cpu);
    largeCpu.push(b.cpu);
    ratios.push(b.wall / a.wall);
  }
  const s = median(small);
  const l = median(large);
  const ratio = l / s;
  const mode = options.burst <= 1 ? 'sequential' : `bursts of ${options.burst}`;
  const at = (n: number): string => `${n.toLocaleString('en-US')} stored`;
  const ratioText = (r: number): string => `${r.toFixed(2)}x`;
  return {
    small: s,
    large: l,
    rows: [
      { name: `us/event at ${at(options.small)}, ${tasks} tasks, ${mode}`, value: micros(s), spread: spread(small, micros), cpu: micros(median(smallCpu)), target: '-', result: 'info' },
      { name: `us/event at ${at(options.large)}, ${tasks} tasks, ${mode}`, value: micros(l), spread: spread(large, micros), cpu: micros(median(largeCpu)), target: '-', result: 'info' },
      {
        name: `ratio ${at(options.large)} / ${at(options.small)}, ${tasks} tasks`,
        value: ratioText(ratio),
        spread: spread(ratios, ratioText),
        cpu: ratioText(median(largeCpu) / median(smallCpu)),
        target: `<= ${MAX_HISTORY_RATIO}x`,
        result: ratio <= MAX_HISTORY_RATIO ? 'PASS' : 'FAIL',
      },
    ],
  };
}
