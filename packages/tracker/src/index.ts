// The meta package: createProgressTracker(), the CLI's renderer, and the whole public API of every
// @progress package, so that one import is enough.
export { createProgressTracker, ComposedProgressTracker } from './create-progress-tracker.js';
export type { ComposedSystemInfo, WebSocketAddress } from './create-progress-tracker.js';
export { resolveOptions } from './options.js';
export type { CreateProgressTrackerOptions, ResolvedOptions, StorageOption, EventBridgeOption, CallbacksOption } from './options.js';
export { renderProgress, renderEventLine, bar } from './render.js';
export type { RenderOptions } from './render.js';

// @progress/core
export {
  ProgressError,
  ErrorCode,
  isProgressError,
  ProgressStatus,
  TaskType,
  EventType,
  PROGRESS_STATUSES,
  EVENT_TYPES,
  RECENT_EVENTS_LIMIT,
  DEFAULT_SINK_FLUSH_TIMEOUT_MS,
  DEFAULT_STORE_TIMEOUT_MS,
  silentLogger,
  MAX_TIMER_MS,
  assertKnownOptions,
  nearestName,
  unknownOption,
  assertHandleArgs,
  isLogger,
  safeLogger,
  redactUrl,
  applyEvent,
  applyEventInPlace,
  cloneState,
  replayEvents,
  eventToJson,
  eventsToJson,
  summarize,
  estimateCompletion,
  findCurrentTask,
  toSummaryRow,
  appendInputError,
  assertAppend,
  assertAppendState,
  assertListFilter,
  assertReadEvents,
  filterRows,
  TERMINAL_UPGRADE_STATUSES,
  TERMINAL_TASK_STATUSES,
  isTerminal,
  assertValidId,
  describeValue,
  isValidId,
  MemoryStore,
  ProgressTracker,
} from '@progress/core';
export type {
  ProgressErrorContext,
  ProgressEvent,
  TaskProgress,
  UpgradeProgress,
  ProgressSummary,
  CurrentTaskSummary,
  UpgradeSummaryRow,
  ListFilter,
  StoreInfo,
  ProgressStore,
  ProgressSink,
  Logger,
  KnownOptionsCheck,
  MemoryStoreOptions,
  ProgressTrackerOptions,
  AddTaskOptions,
  TaskSpec,
  AdvanceTaskOptions,
  ProgressListener,
  TrackerSystemInfo,
} from '@progress/core';

// @progress/storage-json
export {
  JsonFileStore,
  parsePythonDatetime,
  parsePythonTimedelta,
  importLegacyUpgrade,
} from '@progress/storage-json';
export type {
  JsonFileStoreOptions,
  Durability,
} from '@progress/storage-json';

// @progress/storage-redis
export {
  RedisStore,
  KeyLayout,
} from '@progress/storage-redis';
export type {
  RedisStoreOptions,
  ReplicasOptions,
  RetentionOptions,
  UpgradeKeys,
} from '@progress/storage-redis';

// @progress/notifier-eventbridge
export {
  EventBridgeNotifier,
  DEFAULT_EVENT_TYPES,
  LEGACY_DETAIL_KEYS,
  buildDetail,
  trimDetail,
  fitDetail,
  CUT_MARK,
  keptKeys,
  formatTimedelta,
  entrySize,
  DEFAULT_RETRY,
  backoffDelay,
  classifyRequestError,
} from '@progress/notifier-eventbridge';
export type {
  NotifierStats,
  FlushReport,
  CloseReport,
  EventBridgeNotifierOptions,
  DropPolicy,
  UndeliveredEvent,
  DeliveryFailure,
  DeliveryFailureReason,
  EventDetail,
  RetryOptions,
  ResolvedRetryOptions,
  RequestErrorInfo,
} from '@progress/notifier-eventbridge';

// @progress/callbacks
export {
  CallbackManager,
  CallbackError,
} from '@progress/callbacks';
export type {
  AnyCallback,
  CallbackCounts,
  CallbackErrorInfo,
  CallbackFailureReason,
  CallbackManagerOptions,
  CallbackResult,
  CallbackStats,
  EventCallback,
  EventTypeFilter,
  StatusCallback,
  Unsubscribe,
  UpgradeStatusCallback,
} from '@progress/callbacks';

// @progress/ws-server
export {
  ProgressWebSocketServer,
  PROTOCOL_VERSION,
  clientMessageSchema,
  parseClientMessage,
  createReadToken,
  verifyReadToken,
  readTokenAuth,
  tokenFromRequest,
  TOKEN_SUBPROTOCOL_PREFIX,
  PROGRESS_SUBPROTOCOL,
  createDashboardHandler,
  DASHBOARD_CSP,
  dashboardHtml,
  DASHBOARD_SCRIPT,
  DASHBOARD_STYLE,
} from '@progress/ws-server';
export type {
  ServerAddress,
  ProgressWebSocketServerOptions,
  RateLimitOptions,
  ClientMessage,
  ServerMessage,
  ResyncReason,
  WireErrorCode,
  ParseResult,
  ReadTokenOptions,
  ReadTokenAuthOptions,
  ReadTokenClaims,
  DashboardOptions,
  ServerStats,
} from '@progress/ws-server';
