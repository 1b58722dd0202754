import { drive, gc, median, openRig, spread } from './harness.js';
import { int, type Row } from './table.js';

export interface MemoryOptions {
  events: number;
  iterations: number;
  tasks: number;
}

/** What the current sample stored, kept reachable until its heap has been read. */
const retained: unknown[] = [];

/**
 * One sample, in its own function: nothing of an earlier sample is reachable here, and what this one
 * stored is kept reachable (in `retained`) until after the second heap reading.
 */
async function bytesPerEvent(options: MemoryOptions): Promise<number> {
  retained.length = 0;
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  const rig = await openRig(options.tasks);
  await drive(rig, options.events, 1000);
  await rig.tracker.close();
  retained.push(rig);
  gc();
  gc();
  const after = process.memoryUsage().heapUsed;
  const stored = Number(rig.store.info().events);
  retained.length = 0;
  return (after - before) / stored;
}

/**
 * Bytes of heap held per stored event by MemoryStore (with its snapshots and the tracker's state):
 * heapUsed after a full GC, before and after writing `events` task.progress events, divided by the
 * events stored.
 */
export async function measureMemory(options: MemoryOptions): Promise<Row> {
  const samples: number[] = [];
  for (let i = 0; i < options.iterations; i++) samples.push(await bytesPerEvent(options));
  const bytes = (n: number): string => `${int(n)} B`;
  return {
    name: `heap per stored event, MemoryStore, ${int(options.events)} events`,
    value: bytes(median(samples)),
    spread: spread(samples, bytes),
    target: '-',
    result: 'info',
  };
}
