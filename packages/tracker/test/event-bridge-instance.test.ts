import { describe, expect, it } from 'vitest';
import { EventBridgeNotifier, createProgressTracker, isProgressError, resolveOptions } from '../src/index.js';
import { uniqueId } from './helpers.js';

const base = () => ({ upgradeId: uniqueId('ebi'), planId: 'p', clusterName: 'c' });

describe('eventBridge given a ready EventBridgeNotifier', () => {
  it('is refused saying that eventBridge takes options and a notifier goes in sinks, not as an unknown option "name" the caller never wrote', async () => {
    const notifier = new EventBridgeNotifier({ busName: 'upgrades', region: 'eu-west-1' });
    try {
      let caught: unknown;
      try {
        resolveOptions({ ...base(), eventBridge: notifier as never });
      } catch (err) {
        caught = err;
      }
      expect(isProgressError(caught, 'INVALID_ARGUMENT'), String(caught)).toBe(true);
      expect((caught as Error).message).not.toMatch(/unknown option/);
      expect((caught as Error).message).toMatch(/sinks: \[notifier\]/);
      await expect(createProgressTracker({ ...base(), eventBridge: notifier as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: (caught as Error).message });
      // The way it says: the notifier as a sink of the tracker, left open for its owner.
      const t = await createProgressTracker({ ...base(), sinks: [notifier] });
      expect(t.getSystemInfo().sinks).toContain(notifier.name);
      await t.close();
      expect(notifier.stats()).toBeDefined();
    } finally {
      await notifier.close();
    }
  });
});
