import { afterAll, describe, expect, it } from 'vitest';
import { createProgressTracker, isProgressError } from '../src/index.js';
import { cleanupTempDirs, uniqueId } from './helpers.js';

afterAll(() => cleanupTempDirs());

const sockets = (): number => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;

describe('failures half-way', () => {
  it('createProgressTracker releases the store it made when a later component cannot be built', async () => {
    const before = sockets();
    const made = createProgressTracker({
      upgradeId: uniqueId('leak'),
      planId: 'p',
      clusterName: 'c',
      storage: { redis: process.env.REDIS_URL! },
      webSocket: { maxPayload: -1 },
    });
    await expect(made).rejects.toSatisfy((e) => isProgressError(e, 'INVALID_ARGUMENT'));
    await new Promise((r) => setTimeout(r, 200));
    expect(sockets()).toBe(before);
  });
});
