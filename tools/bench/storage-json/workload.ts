import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyEventInPlace, cloneState, type ProgressEvent, type UpgradeProgress } from '@progress/core';

export const TASKS = 10;

/** A temp folder on the same disk as the machine's tmp dir; removed by the returned function. */
export async function scratch(label: string): Promise<{ dir: string; done: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `bench-storage-json-${label}-`));
  return { dir, done: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Builds the events of one upgrade the way a tracker would: created, started, `TASKS` tasks, then
 * progress events cycling over the tasks. Calls `flush` with every `batch` events and the state
 * after them.
 */
export async function buildHistory(
  upgradeId: string,
  count: number,
  batch: number,
  flush: (events: ProgressEvent[], expectedSeq: number, state: UpgradeProgress) => Promise<void>,
): Promise<UpgradeProgress> {
  let state: UpgradeProgress | undefined;
  let pending: ProgressEvent[] = [];
  let from = 0;
  const t0 = Date.parse('2026-11-01T00:00:00Z');
  for (let seq = 1; seq <= count; seq++) {
    const base = { eventId: randomUUID(), seq, upgradeId, timestamp: new Date(t0 + seq).toISOString(), message: 'bench' };
    let ev: ProgressEvent;
    if (seq === 1) ev = { ...base, type: 'upgrade.created', status: 'not_started', details: { planId: 'plan', clusterName: 'bench', metadata: {} } };
    else if (seq === 2) ev = { ...base, type: 'upgrade.started', status: 'in_progress', details: { phase: 'Bench' } };
    else if (seq <= 2 + TASKS) {
      const taskId = `t${seq - 2}`;
      ev = { ...base, type: 'task.added', taskId, taskType: 'upgrade_step', status: 'not_started', details: { taskName: taskId, parentTaskId: null, totalSteps: null, weight: 1 } };
    } else {
      const taskId = `t${1 + (seq % TASKS)}`;
      ev = { ...base, type: 'task.progress', taskId, taskType: 'upgrade_step', status: 'in_progress', percentage: seq % 100, details: { n: seq } };
    }
    state = applyEventInPlace(state, ev);
    pending.push(ev);
    if (pending.length === batch || seq === count) {
      await flush(pending, from, cloneState(state));
      from = seq;
      pending = [];
    }
  }
  return state!;
}

/** One old-module style event (snake_case, as its file held them). */
export function legacyEvent(n: number): Record<string, unknown> {
  return {
    event_id: randomUUID(),
    timestamp: new Date().toISOString(),
    task_id: `t${1 + (n % TASKS)}`,
    task_type: 'upgrade_step',
    status: 'in_progress',
    message: 'bench',
    details: { n },
    percentage: n % 100,
  };
}

/** Runs `step` (which does some events and returns how many) until `maxEvents` or `maxMs`; events per second. */
export async function rate(maxEvents: number, maxMs: number, step: () => Promise<number>): Promise<number> {
  const start = process.hrtime.bigint();
  let done = 0;
  let elapsed = 0;
  while (done < maxEvents) {
    done += await step();
    elapsed = Number(process.hrtime.bigint() - start) / 1e6;
    if (elapsed > maxMs) break;
  }
  return (done * 1000) / elapsed;
}
