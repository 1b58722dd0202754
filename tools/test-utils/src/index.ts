export { deleteKeys, deleteKeysWith, ensureRedis } from './redis.js';
export type { TestRedis } from './redis.js';
export { startEventBridgeEndpoint, localClientConfig } from './eventbridge-endpoint.js';
export type { EventBridgeEndpoint, EventBridgeEndpointOptions, AcceptedEntry, RecordedRequest } from './eventbridge-endpoint.js';
export { freePort } from './net.js';
export { spawnScript } from './spawn.js';
export type { Child } from './spawn.js';
export { startRedisCluster } from './redis-cluster.js';
export type { TestRedisCluster } from './redis-cluster.js';
