import { ProgressError } from './errors.js';
import type { EventType, ProgressStatus, TaskProgress, UpgradeProgress } from './model.js';

type From = readonly ProgressStatus[];

/** From which task statuses each task event may be recorded (DESIGN section 3). */
const TASK_FROM: Partial<Record<EventType, From>> = {
  'task.started': ['not_started'],
  'task.progress': ['not_started', 'in_progress'],
  'task.completed': ['not_started', 'in_progress'],
  'task.failed': ['not_started', 'in_progress'],
  'task.retried': ['failed'],
  'task.skipped': ['not_started'],
  'task.cancelled': ['not_started', 'in_progress'],
};

/** From which upgrade statuses each upgrade event may be recorded. */
const UPGRADE_FROM: Partial<Record<EventType, From>> = {
  'upgrade.started': ['not_started'],
  'upgrade.phase_changed': ['not_started', 'in_progress', 'paused'],
  'upgrade.paused': ['in_progress'],
  'upgrade.resumed': ['paused'],
  'upgrade.completed': ['in_progress'],
  'upgrade.failed': ['not_started', 'in_progress', 'paused'],
  'upgrade.cancelled': ['not_started', 'in_progress', 'paused'],
};

/** Statuses after which an upgrade takes no more events. */
export const TERMINAL_UPGRADE_STATUSES: readonly ProgressStatus[] = ['completed', 'failed', 'cancelled'];

/** Statuses after which a task takes no more events (failed tasks can still be retried). */
export const TERMINAL_TASK_STATUSES: readonly ProgressStatus[] = ['completed', 'skipped', 'cancelled'];

/** True when the upgrade's status is terminal. */
export const isTerminal = (status: ProgressStatus): boolean => TERMINAL_UPGRADE_STATUSES.includes(status);

/** Throws `INVALID_TRANSITION` unless the upgrade takes `type` now. */
export function assertUpgradeTransition(state: Readonly<UpgradeProgress>, type: EventType): void {
  const from = UPGRADE_FROM[type];
  if (isTerminal(state.status) || (from && !from.includes(state.status))) {
    throw new ProgressError(
      'INVALID_TRANSITION',
      `[@progress/core] upgrade "${state.upgradeId}" is ${state.status}: ${type} is not allowed${isTerminal(state.status) ? ' (the upgrade has ended)' : ''}`,
      { context: { upgradeId: state.upgradeId, status: state.status, event: type } },
    );
  }
}

/** Throws `INVALID_TRANSITION` unless `task` takes `type` now. */
export function assertTaskTransition(state: Readonly<UpgradeProgress>, task: Readonly<TaskProgress>, type: EventType): void {
  assertUpgradeTransition(state, type);
  const from = TASK_FROM[type];
  if (from && !from.includes(task.status)) {
    throw new ProgressError('INVALID_TRANSITION', `[@progress/core] task "${task.taskId}" is ${task.status}: ${type} is not allowed`, {
      context: { upgradeId: state.upgradeId, taskId: task.taskId, status: task.status, event: type },
    });
  }
}
