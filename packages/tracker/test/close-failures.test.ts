import { afterAll, describe, expect, it } from 'vitest';
import { createProgressTracker } from '../src/index.js';
import { accepts, cleanupTempDirs, tempDir, uniqueId } from './helpers.js';

const base = () => ({ upgradeId: uniqueId('close'), planId: 'plan-1', clusterName: 'cluster-1' });

afterAll(() => cleanupTempDirs());

describe('close() when closing one component fails', () => {
  it('still stops the WebSocket server and closes the store after it, and logs which component failed', async () => {
    const warnings: Array<{ obj: Record<string, unknown>; msg: string | undefined }> = [];
    const logger = { debug() {}, info() {}, error() {}, warn: (obj: object, msg?: string) => void warnings.push({ obj: obj as Record<string, unknown>, msg }) };
    const t = await createProgressTracker({ ...base(), storage: { json: tempDir('close') }, webSocket: { port: 0, host: '127.0.0.1' }, logger });
    const { port } = await t.startWebSocketServer();
    await t.startUpgrade();
    const failure = new Error('callbacks cannot close');
    t.callbacks.close = () => Promise.reject(failure);
    let storeClosed = false;
    const closeStore = t.storage.close.bind(t.storage);
    t.storage.close = async () => {
      storeClosed = true;
      return closeStore();
    };
    await t.close();
    // The failure of the first part did not leave the later ones open: the port is free, the store closed.
    expect(await accepts(port)).toBe(false);
    expect(storeClosed).toBe(true);
    expect(warnings).toContainEqual({ obj: { err: failure, upgradeId: t.upgradeId, component: 'callbacks' }, msg: 'closing a component failed' });
  });
});
