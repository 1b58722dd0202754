export { ProgressError, ErrorCode, isProgressError } from './errors.js';
export type { ProgressErrorContext } from './errors.js';
export { ProgressStatus, TaskType, EventType, PROGRESS_STATUSES, EVENT_TYPES, RECENT_EVENTS_LIMIT } from './model.js';
export type {
  ProgressEvent,
  TaskProgress,
  UpgradeProgress,
  ProgressSummary,
  CurrentTaskSummary,
  UpgradeSummaryRow,
  ListFilter,
  StoreInfo,
} from './model.js';
export { assertHandleArgs, isLogger, safeLogger, silentLogger } from './interfaces.js';
export type { ProgressStore, ProgressSink, Logger } from './interfaces.js';
export { applyEvent, applyEventInPlace, cloneState, replayEvents } from './reducer.js';
export { eventToJson, eventsToJson } from './event-json.js';
export { summarize, estimateCompletion, findCurrentTask, toSummaryRow } from './summary.js';
export { appendInputError, assertAppend, assertAppendState, assertListFilter, assertReadEvents, filterRows } from './store-helpers.js';
export { TERMINAL_UPGRADE_STATUSES, TERMINAL_TASK_STATUSES, isTerminal } from './transitions.js';
export { MAX_TIMER_MS, assertKnownOptions, assertValidId, describe as describeValue, isValidId, nearestName, unknownOption, type KnownOptionsCheck } from './validation.js';
export { redactUrl } from './redact-url.js';
export { MemoryStore } from './memory-store.js';
export type { MemoryStoreOptions } from './memory-store.js';
export { DEFAULT_SINK_FLUSH_TIMEOUT_MS, DEFAULT_STORE_TIMEOUT_MS, ProgressTracker } from './tracker.js';
export type {
  ProgressTrackerOptions,
  AddTaskOptions,
  TaskSpec,
  AdvanceTaskOptions,
  ProgressListener,
  TrackerSystemInfo,
} from './tracker.js';
