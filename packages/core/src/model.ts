/**
 * Status of an upgrade or a task. The string values are the old Python module's, so its files and
 * clients keep working. `skipped` applies to tasks only.
 */
export const ProgressStatus = {
  NOT_STARTED: 'not_started',
  IN_PROGRESS: 'in_progress',
  COMPLETED: 'completed',
  FAILED: 'failed',
  PAUSED: 'paused',
  CANCELLED: 'cancelled',
  SKIPPED: 'skipped',
} as const;

/** One of the values of {@link ProgressStatus}. */
export type ProgressStatus = (typeof ProgressStatus)[keyof typeof ProgressStatus];

/** Every status, in declaration order. */
export const PROGRESS_STATUSES: readonly ProgressStatus[] = Object.values(ProgressStatus);

/** The old module's task types. Any other string is accepted too. */
export const TaskType = {
  UPGRADE_PLAN: 'upgrade_plan',
  UPGRADE_STEP: 'upgrade_step',
  VALIDATION: 'validation',
  ROLLBACK: 'rollback',
  CLEANUP: 'cleanup',
} as const;

/** A known task type, or any other string (`(string & {})` keeps editor completion). */
export type TaskType = (typeof TaskType)[keyof typeof TaskType] | (string & {});

/** Every event type the engine records. */
export const EventType = {
  UPGRADE_CREATED: 'upgrade.created',
  UPGRADE_STARTED: 'upgrade.started',
  UPGRADE_PHASE_CHANGED: 'upgrade.phase_changed',
  UPGRADE_PAUSED: 'upgrade.paused',
  UPGRADE_RESUMED: 'upgrade.resumed',
  UPGRADE_COMPLETED: 'upgrade.completed',
  UPGRADE_FAILED: 'upgrade.failed',
  UPGRADE_CANCELLED: 'upgrade.cancelled',
  TASK_ADDED: 'task.added',
  TASK_STARTED: 'task.started',
  TASK_PROGRESS: 'task.progress',
  TASK_COMPLETED: 'task.completed',
  TASK_FAILED: 'task.failed',
  TASK_RETRIED: 'task.retried',
  TASK_SKIPPED: 'task.skipped',
  TASK_CANCELLED: 'task.cancelled',
} as const;

/** One of the values of {@link EventType}. */
export type EventType = (typeof EventType)[keyof typeof EventType];

/** Every event type, in declaration order. */
export const EVENT_TYPES: readonly EventType[] = Object.values(EventType);

/** The known event types and statuses, for checks on the hot paths (not exported by the package). */
export const KNOWN_EVENT_TYPES: ReadonlySet<string> = new Set(EVENT_TYPES);
export const KNOWN_STATUSES: ReadonlySet<string> = new Set(Object.values(ProgressStatus));

/**
 * One recorded fact about an upgrade. Events are immutable; the state of an upgrade is the fold of
 * its events (see {@link applyEvent}).
 */
export interface ProgressEvent {
  /** A random UUID, for deduplication by consumers. */
  readonly eventId: string;
  /** 1, 2, 3 ... per upgrade, without gaps: the resume point for every reader. */
  readonly seq: number;
  readonly upgradeId: string;
  readonly type: EventType;
  /** ISO 8601 UTC. */
  readonly timestamp: string;
  readonly taskId?: string;
  readonly taskType?: TaskType;
  /** The status of the task (task.*) or of the upgrade (upgrade.*) after the event. */
  readonly status: ProgressStatus;
  readonly message: string;
  /** 0..100, on task events that set a percentage. */
  readonly percentage?: number;
  /**
   * Free-form data. The engine's own keys, by type: `upgrade.created` `{ planId, clusterName,
   * metadata }`; `upgrade.started`/`upgrade.phase_changed` `{ phase }`; `upgrade.failed` and
   * `task.failed` `{ errorMessage }`; `task.added` `{ taskName, parentTaskId, totalSteps, weight }`;
   * `task.progress` may carry `completedSteps` and `currentStep`.
   */
  readonly details: Readonly<Record<string, unknown>>;
}

/** The state of one task, as folded from its events. Absent values are `null` (JSON-stable). */
export interface TaskProgress {
  taskId: string;
  taskName: string;
  taskType: TaskType;
  parentTaskId: string | null;
  status: ProgressStatus;
  /** When the current attempt started: a retry starts the task again, as the old module's start_task() did. */
  startedAt: string | null;
  completedAt: string | null;
  /** From `startedAt` (the current attempt) to `completedAt`. */
  durationMs: number | null;
  /** 0..100: see DESIGN section 3 for how it is derived. */
  percentage: number;
  currentStep: string | null;
  totalSteps: number | null;
  completedSteps: number;
  errorMessage: string | null;
  retryCount: number;
  /** Weight in its parent's (or the upgrade's) weighted mean. Default 1. */
  weight: number;
  /** The last {@link RECENT_EVENTS_LIMIT} events of this task (the full history is in the store). */
  recentEvents: ProgressEvent[];
}

/** The state of one upgrade (one tracked operation), as folded from its events. */
export interface UpgradeProgress {
  upgradeId: string;
  planId: string;
  clusterName: string;
  status: ProgressStatus;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  completedAt: string | null;
  durationMs: number | null;
  /** Weighted mean of the top-level tasks, 0..100, rounded to 2 decimals; 100 once completed. */
  overallPercentage: number;
  currentPhase: string | null;
  errorMessage: string | null;
  /** Tasks by id, in the order they were added; ids that look like integers ("1", "10") first, in numeric order (JavaScript's key order). */
  tasks: Record<string, TaskProgress>;
  metadata: Record<string, unknown>;
  /** The seq of the last event folded into this state. */
  lastSeq: number;
}

/** How many events a task keeps in `recentEvents`. */
export const RECENT_EVENTS_LIMIT = 20;

/** The task counted as current in a summary. */
export interface CurrentTaskSummary {
  taskId: string;
  taskName: string;
  status: ProgressStatus;
  percentage: number;
}

/** What `tracker.getProgressSummary()` returns: JSON-serializable. */
export interface ProgressSummary {
  upgradeId: string;
  planId: string;
  clusterName: string;
  status: ProgressStatus;
  overallPercentage: number;
  /** Alias of `overallPercentage`, the old module's name. */
  progressPercentage: number;
  currentPhase: string | null;
  /** First in_progress task, else the last failed one, else null. */
  currentTask: CurrentTaskSummary | null;
  startedAt: string | null;
  completedAt: string | null;
  durationMs: number | null;
  totalTasks: number;
  activeTasks: number;
  completedTasks: number;
  failedTasks: number;
  activeTaskNames: string[];
  failedTaskNames: string[];
  estimatedCompletionAt: string | null;
  lastSeq: number;
}

/** One row of `store.list()`: enough to show a list without loading every upgrade. */
export interface UpgradeSummaryRow {
  upgradeId: string;
  planId: string;
  clusterName: string;
  status: ProgressStatus;
  overallPercentage: number;
  currentPhase: string | null;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  completedAt: string | null;
  totalTasks: number;
  lastSeq: number;
}

/** Which upgrades `store.list()` returns. Every field narrows; none given lists them all. */
export interface ListFilter {
  /** Only these statuses. */
  status?: ProgressStatus | readonly ProgressStatus[];
  /** Only this cluster. */
  clusterName?: string;
  /** At most this many rows, the most recently updated first. */
  limit?: number;
}

/** What a store says of itself, for diagnostics (`tracker.getSystemInfo()`). */
export interface StoreInfo {
  /** The store's class or kind, e.g. `MemoryStore`, `JsonFileStore`, `RedisStore`. */
  name: string;
  /** True when an acknowledged append survives a crash of this process. */
  durable: boolean;
  /** Anything else: directory, URL (without credentials), counts, sizes. */
  [key: string]: unknown;
}
