import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { MemoryStore, ProgressTracker, type ProgressSink } from '@progress/core';

/** A sink that only counts what it is handed: the cheapest sink possible, so the engine is what is measured. */
export class CountingSink implements ProgressSink {
  readonly name = 'counting';
  count = 0;
  handle(): void {
    this.count++;
  }
}

/** `global.gc`, exposed even when node was started without `--expose-gc` (benchmark use only). */
export const gc: () => void = (() => {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

export interface Rig {
  tracker: ProgressTracker;
  store: MemoryStore;
  sink: CountingSink;
  taskIds: string[];
}

let rigs = 0;

/**
 * A started upgrade with `tasks` started top-level tasks, on a MemoryStore (given, or new), with one
 * counting sink. Reopens the upgrade when the store already holds it.
 */
export async function openRig(tasks: number, store = new MemoryStore(), upgradeId = `bench-${++rigs}`): Promise<Rig> {
  const sink = new CountingSink();
  const tracker = await ProgressTracker.open({ upgradeId, planId: 'plan-1', clusterName: 'bench', store, sinks: [sink] });
  const taskIds = Array.from({ length: tasks }, (_, i) => `task-${i}`);
  if (tracker.progress.status === 'not_started') {
    await tracker.startUpgrade('Bench');
    await tracker.addTasks(taskIds.map((taskId) => ({ taskId, taskName: `Task ${taskId}` })));
    await Promise.all(taskIds.map((id) => tracker.startTask(id)));
  }
  return { tracker, store, sink, taskIds };
}

/** How long a run took: wall-clock and CPU (user + system, every thread of the process) milliseconds. */
export interface Elapsed {
  ms: number;
  cpuMs: number;
}

/**
 * Sends `count` task.progress commands round-robin over the rig's tasks: each awaited (`burst` 1) or
 * `burst` at a time, then all awaited. Checks that the sink saw every event.
 */
export async function drive(rig: Rig, count: number, burst: number, offset = 0): Promise<Elapsed> {
  const { tracker, taskIds, sink } = rig;
  const before = sink.count;
  const n = taskIds.length;
  const cpu = process.cpuUsage();
  const start = performance.now();
  if (burst <= 1) {
    for (let i = offset; i < offset + count; i++) await tracker.updateTaskProgress(taskIds[i % n]!, i % 100);
  } else {
    const pending: Promise<unknown>[] = new Array(burst);
    for (let done = 0; done < count; done += burst) {
      const size = Math.min(burst, count - done);
      pending.length = size;
      for (let j = 0; j < size; j++) {
        const i = offset + done + j;
        pending[j] = tracker.updateTaskProgress(taskIds[i % n]!, i % 100);
      }
      await Promise.all(pending);
    }
  }
  const ms = performance.now() - start;
  const used = process.cpuUsage(cpu);
  if (sink.count - before !== count) throw new Error(`the sink saw ${sink.count - before} events, not ${count}`);
  return { ms, cpuMs: (used.user + used.system) / 1000 };
}

/** The median of the samples. */
export function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** `min..max` of the samples, for the spread column. */
export function spread(samples: readonly number[], format: (n: number) => string): string {
  return `${format(Math.min(...samples))}..${format(Math.max(...samples))}`;
}
