import { ensureRedis, type TestRedis } from './redis.js';

let redis: TestRedis | undefined;

/**
 * Vitest global setup: makes sure a Redis answers and publishes its address as REDIS_URL for the
 * test workers (which are started after this and inherit the environment).
 */
export async function setup(): Promise<void> {
  redis = await ensureRedis();
  process.env.REDIS_URL = redis.url;
  if (redis.started) process.stdout.write(`[test-utils] started redis-server at ${redis.url}\n`);
}

export async function teardown(): Promise<void> {
  await redis?.stop();
}
