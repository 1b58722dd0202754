import type { ProgressSummary, TaskProgress, UpgradeProgress, UpgradeSummaryRow } from './model.js';
import { assertStateArg, assertTaskArg, taskCount } from './reducer.js';
import { ProgressError } from './errors.js';
import { MAX_DATE_MS, describe } from './validation.js';

/**
 * Refuses a `now` that is not a time in ms since the epoch: `null` gave an estimate in 1970, a date
 * string or NaN no estimate without a word, a Symbol a TypeError.
 */
function assertNowArg(now: unknown, fn: string): asserts now is number {
  if (typeof now !== 'number' || !Number.isFinite(now) || Math.abs(now) > MAX_DATE_MS) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] ${fn}() needs now as a time in ms since the epoch (a finite number), got ${describe(now)}`);
  }
}

/**
 * The first in_progress task, or `undefined`.
 *
 * @throws ProgressError `INVALID_ARGUMENT` for what is not a state (as every function here).
 */
export function findCurrentTask(state: Readonly<UpgradeProgress>): TaskProgress | undefined {
  assertStateArg(state, 'findCurrentTask');
  for (const [id, task] of Object.entries(state.tasks)) {
    assertTaskArg(task, id, 'findCurrentTask');
    if (task.status === 'in_progress') return task;
  }
  return undefined;
}

/**
 * When the upgrade should be done, extrapolated from the time since it started and its overall
 * percentage; `undefined` unless it is in progress with 0 < percentage < 100.
 *
 * @param now The current time (ms since the epoch). @default Date.now()
 */
export function estimateCompletion(state: Readonly<UpgradeProgress>, now = Date.now()): string | undefined {
  assertStateArg(state, 'estimateCompletion');
  assertNowArg(now, 'estimateCompletion');
  const pct = state.overallPercentage;
  if (state.status !== 'in_progress' || state.startedAt === null || pct <= 0 || pct >= 100) return undefined;
  const started = Date.parse(state.startedAt);
  const spent = Math.max(0, now - started);
  const end = now + (spent * (100 - pct)) / pct;
  // Past what a Date holds (+-8.64e15 ms: an upgrade started at a placeholder such as year 1, at
  // little progress), or no number at all: no estimate, rather than a RangeError from a query.
  if (!Number.isFinite(end) || Math.abs(end) > MAX_DATE_MS) return undefined;
  return new Date(end).toISOString();
}

/** The summary of DESIGN section 4, JSON-serializable. */
export function summarize(state: Readonly<UpgradeProgress>, now = Date.now()): ProgressSummary {
  assertStateArg(state, 'summarize');
  assertNowArg(now, 'summarize');
  const entries = Object.entries(state.tasks);
  for (const [id, task] of entries) assertTaskArg(task, id, 'summarize');
  const tasks = entries.map(([, task]) => task);
  const active = tasks.filter((t) => t.status === 'in_progress');
  const failed = tasks.filter((t) => t.status === 'failed');
  const current = active[0] ?? failed[failed.length - 1];
  return {
    upgradeId: state.upgradeId,
    planId: state.planId,
    clusterName: state.clusterName,
    status: state.status,
    overallPercentage: state.overallPercentage,
    progressPercentage: state.overallPercentage,
    currentPhase: state.currentPhase,
    currentTask: current ? { taskId: current.taskId, taskName: current.taskName, status: current.status, percentage: current.percentage } : null,
    startedAt: state.startedAt,
    completedAt: state.completedAt,
    durationMs: state.durationMs,
    totalTasks: tasks.length,
    activeTasks: active.length,
    completedTasks: tasks.filter((t) => t.status === 'completed').length,
    failedTasks: failed.length,
    activeTaskNames: active.map((t) => t.taskName),
    failedTaskNames: failed.map((t) => t.taskName),
    estimatedCompletionAt: estimateCompletion(state, now) ?? null,
    lastSeq: state.lastSeq,
  };
}

/** The `list()` row of a state: what every store returns for it. */
export function toSummaryRow(state: Readonly<UpgradeProgress>): UpgradeSummaryRow {
  assertStateArg(state, 'toSummaryRow');
  return {
    upgradeId: state.upgradeId,
    planId: state.planId,
    clusterName: state.clusterName,
    status: state.status,
    overallPercentage: state.overallPercentage,
    currentPhase: state.currentPhase,
    createdAt: state.createdAt,
    updatedAt: state.updatedAt,
    startedAt: state.startedAt,
    completedAt: state.completedAt,
    totalTasks: taskCount(state.tasks),
    lastSeq: state.lastSeq,
  };
}
