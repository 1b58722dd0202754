import { EVENT_TYPES, PROGRESS_STATUSES, ProgressError, type EventType, type ProgressEvent, type ProgressStatus, type TaskProgress } from '@progress/core';

/** The task events that move a task into the status they carry. */
const TASK_STATUS_EVENTS: ReadonlySet<EventType> = new Set<EventType>([
  'task.started',
  'task.completed',
  'task.failed',
  'task.retried',
  'task.skipped',
  'task.cancelled',
]);

/** The upgrade events that move the upgrade into the status they carry. */
const UPGRADE_STATUS_EVENTS: ReadonlySet<EventType> = new Set<EventType>([
  'upgrade.started',
  'upgrade.paused',
  'upgrade.resumed',
  'upgrade.completed',
  'upgrade.failed',
  'upgrade.cancelled',
]);

const EVENT_TYPE_SET: ReadonlySet<string> = new Set(EVENT_TYPES);
const STATUS_SET: ReadonlySet<string> = new Set(PROGRESS_STATUSES);

/**
 * The task (`taskAt(id)` gives the tasks right after `event`) when `event` moves it into a new status, else
 * `undefined`. Status-changing events count always; a `task.progress` counts only when it starts a
 * task that was not started (the engine starts a task on its first progress update without a
 * separate `task.started`); `task.added` never does.
 *
 * @internal
 */
export function taskEnteringStatus<T extends Readonly<TaskProgress>>(event: ProgressEvent, taskAt: (taskId: string) => T | undefined): T | undefined {
  if (event.taskId === undefined) return undefined;
  const isChange = TASK_STATUS_EVENTS.has(event.type);
  if (!isChange && event.type !== 'task.progress') return undefined;
  const task = taskAt(event.taskId);
  if (!task) return undefined;
  if (isChange) return task;
  const recent = task.recentEvents;
  if (recent[recent.length - 1]?.eventId !== event.eventId) return undefined;
  const previous = recent[recent.length - 2];
  return previous !== undefined && previous.status !== event.status ? task : undefined;
}

/** True when `event` moves the upgrade into the status it carries. @internal */
export function isUpgradeStatusChange(event: ProgressEvent): boolean {
  return UPGRADE_STATUS_EVENTS.has(event.type);
}

/** @internal */
export function assertCallback(value: unknown, method: string): void {
  if (typeof value !== 'function') {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/callbacks] ${method}: the callback must be a function, got ${describe(value)}`);
  }
}

/** @internal */
export function assertStatus(value: unknown, method: string, allowed: ReadonlySet<string> = STATUS_SET): asserts value is ProgressStatus {
  if (typeof value !== 'string' || !allowed.has(value)) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/callbacks] ${method}: status ${describe(value)} is not one of ${[...allowed].join(', ')}`, {
      context: { status: value },
    });
  }
}

/** The statuses an upgrade can be in (every status but `skipped`). @internal */
export const UPGRADE_STATUS_SET: ReadonlySet<string> = new Set(PROGRESS_STATUSES.filter((s) => s !== 'skipped'));

/** @internal */
export function assertEventType(value: unknown, method: string): asserts value is EventType | '*' {
  if (value !== '*' && (typeof value !== 'string' || !EVENT_TYPE_SET.has(value))) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/callbacks] ${method}: event type ${describe(value)} is not '*' or one of ${EVENT_TYPES.join(', ')}`, {
      context: { type: value },
    });
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}...` : value);
  if (typeof value === 'function') return 'a function';
  return value === null ? 'null' : typeof value;
}
