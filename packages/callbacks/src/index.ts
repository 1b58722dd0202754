export { CallbackManager } from './callback-manager.js';
export { CallbackError } from './callback-error.js';
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
} from './types.js';
