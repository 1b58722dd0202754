export { EventBridgeNotifier } from './eventbridge-notifier.js';
export type { NotifierStats, FlushReport, CloseReport } from './eventbridge-notifier.js';
export type { EventBridgeNotifierOptions, DropPolicy, UndeliveredEvent, DeliveryFailure, DeliveryFailureReason } from './options.js';
export { CUT_MARK, DEFAULT_EVENT_TYPES, LEGACY_DETAIL_KEYS, buildDetail, fitDetail, trimDetail, keptKeys } from './event-mapping.js';
export type { EventDetail } from './event-mapping.js';
export { formatTimedelta } from './timedelta.js';
export { entrySize } from './entry-size.js';
export { DEFAULT_RETRY, backoffDelay, classifyRequestError } from './retry-policy.js';
export type { RetryOptions, ResolvedRetryOptions, RequestErrorInfo } from './retry-policy.js';
