export { ensureRedis } from './redis.js';
export type { TestRedis } from './redis.js';
