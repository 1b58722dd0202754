// The meta package: createProgressTracker(), and the public API of every @progress package, so that
// one import is enough.
export { createProgressTracker, ComposedProgressTracker } from './create-progress-tracker.js';
export type { ComposedSystemInfo, WebSocketAddress } from './create-progress-tracker.js';
export { resolveOptions } from './options.js';
export type { CreateProgressTrackerOptions, StorageOption, EventBridgeOption } from './options.js';
export { renderProgress, renderEventLine, bar } from './render.js';
export type { RenderOptions } from './render.js';

// @progress/core
export {
  ProgressTracker,
  MemoryStore,
  ProgressError,
  ErrorCode,
  isProgressError,
  ProgressStatus,
  TaskType,
  EventType,
  PROGRESS_STATUSES,
  EVENT_TYPES,
  RECENT_EVENTS_LIMIT,
  silentLogger,
  applyEvent,
  applyEventInPlace,
  cloneState,
  replayEvents,
  summarize,
  estimateCompletion,
  findCurrentTask,
  toSummaryRow,
  filterRows,
  isTerminal,
  isValidId,
} from '@progress/core';
export type {
  ProgressEvent,
  TaskProgress,
  UpgradeProgress,
  ProgressSummary,
  UpgradeSummaryRow,
  ListFilter,
  StoreInfo,
  ProgressStore,
  ProgressSink,
  Logger,
  ProgressTrackerOptions,
  AddTaskOptions,
  TaskSpec,
  AdvanceTaskOptions,
  ProgressListener,
  TrackerSystemInfo,
} from '@progress/core';

// the adapters
export { JsonFileStore } from '@progress/storage-json';
export type { JsonFileStoreOptions } from '@progress/storage-json';
export { RedisStore } from '@progress/storage-redis';
export type { RedisStoreOptions, RetentionOptions } from '@progress/storage-redis';
export { EventBridgeNotifier, formatTimedelta } from '@progress/notifier-eventbridge';
export type { EventBridgeNotifierOptions, NotifierStats } from '@progress/notifier-eventbridge';
export { CallbackManager } from '@progress/callbacks';
export type { CallbackManagerOptions, EventCallback, StatusCallback, UpgradeStatusCallback } from '@progress/callbacks';
export { ProgressWebSocketServer, createReadToken, verifyReadToken, readTokenAuth } from '@progress/ws-server';
export type { ProgressWebSocketServerOptions, ServerAddress } from '@progress/ws-server';
