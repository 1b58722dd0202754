export { RedisStore } from './redis-store.js';
export type { RedisStoreOptions, ReplicasOptions, RetentionOptions } from './options.js';
export { KeyLayout } from './keys.js';
export type { UpgradeKeys } from './keys.js';
