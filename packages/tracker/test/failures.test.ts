import { afterAll, describe, expect, it } from 'vitest';
import { createProgressTracker, isProgressError } from '../src/index.js';
import { runDemo } from '../src/cli/demo.js';
import { LiveView } from '../src/cli/terminal.js';
import { Capture, accepts, cleanupTempDirs, freePort, tempDir, uniqueId } from './helpers.js';

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

  it('runDemo closes its tracker (server, lock) when it fails mid-run', async () => {
    const dir = tempDir('demo-fail');
    const port = await freePort();
    const view = new LiveView({ out: new Capture() as unknown as NodeJS.WriteStream });
    const run = runDemo({
      directory: dir,
      port,
      speed: 1000,
      lingerSeconds: 0,
      view,
      signal: new AbortController().signal,
      print: (line) => {
        if (line.startsWith('Upgrade completed')) throw new Error('stdout is gone');
      },
    });
    await expect(run).rejects.toThrow('stdout is gone');
    expect(await accepts(port)).toBe(false);
    // The JSON lock was released: the same upgrade opens again.
    const again = await createProgressTracker({ upgradeId: 'eks-demo', planId: 'eks-1.31-plan', clusterName: 'x', storagePath: dir });
    expect(again.progress.status).toBe('completed');
    await again.close();
  });
});
