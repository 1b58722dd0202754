import { applyEventInPlace, cloneState, type ProgressEvent, type UpgradeProgress } from '@progress/core';
import { gc, median, openRig, spread } from './harness.js';
import { micros, type Row } from './table.js';

/** task.progress events shaped as the tracker makes them (same keys in the same order), following `state`. */
function progressEvents(state: UpgradeProgress, count: number): ProgressEvent[] {
  const ids = Object.keys(state.tasks);
  const timestamp = new Date().toISOString();
  const events: ProgressEvent[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const percentage = i % 100;
    const taskId = ids[i % ids.length]!;
    const ev = { eventId: crypto.randomUUID(), seq: state.lastSeq + i + 1, upgradeId: state.upgradeId, type: 'task.progress', timestamp, status: 'in_progress', message: `Progress: ${percentage}%`, details: {} } as {
      -readonly [K in keyof ProgressEvent]: ProgressEvent[K];
    };
    ev.taskId = taskId;
    ev.taskType = state.tasks[taskId]!.taskType;
    ev.percentage = percentage;
    events[i] = ev;
  }
  return events;
}

/**
 * The raw reducer: microseconds per `applyEventInPlace` of a task.progress event on a state with
 * `tasks` started top-level tasks (events made beforehand; no store, no promises).
 */
export async function measureReducer(tasks: number, options: { events: number; iterations: number }): Promise<Row> {
  const rig = await openRig(tasks);
  const initial = cloneState(rig.tracker.progress);
  await rig.tracker.close();
  const events = progressEvents(initial, options.events);
  const samples: number[] = [];
  for (let i = -2; i < options.iterations; i++) {
    const state = cloneState(initial);
    gc();
    const start = performance.now();
    for (const ev of events) applyEventInPlace(state, ev);
    const ms = performance.now() - start;
    if (state.lastSeq !== initial.lastSeq + options.events) throw new Error('the reducer skipped events');
    if (i >= 0) samples.push((ms * 1000) / options.events); // the first two runs warm up
  }
  return { name: `us/event, reducer only (applyEventInPlace), ${tasks} tasks`, value: micros(median(samples)), spread: spread(samples, micros), target: '-', result: 'info' };
}
