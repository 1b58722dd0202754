import { describe, expect, it } from 'vitest';
import { RedisStore } from '../src/index.js';

describe('RedisStore.info()', () => {
  it('never shows credentials, not even those ioredis takes from the query string', async () => {
    const store = new RedisStore({ url: 'redis://user:secret1@127.0.0.1:1/2?password=secret2&username=admin', commandTimeoutMs: 100 });
    const text = JSON.stringify(store.info());
    expect(text).not.toContain('secret1');
    expect(text).not.toContain('secret2');
    expect(store.info().url).toBe('redis://127.0.0.1:1/2');
    await store.close();
  });
});
