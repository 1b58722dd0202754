// The check #restoreLost makes before it writes lost events again reads the store's event at the seq
// the store is at. A store with a bug may hand back something that is not an event there (null,
// undefined): the check must take it for "not our event" and leave the CONFLICT, as the check for a
// write of unknown outcome does (#findStored), not throw out of the write loop. Thrown, it left the
// loop marked as writing for ever (every later command, flush() and close() waited for ever) and
// was an unhandled rejection.
import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker, replayEvents, type ProgressEvent } from '../src/index.js';
import { expectCode } from './helpers.js';

const UPGRADE = 'u-lost-tail-bug';

/** A MemoryStore that can lose its last events, and whose readEvents can hand back a bad value. */
class BuggyLossyStore extends MemoryStore {
  badRead: unknown = 'none';

  async loseAfter(seq: number): Promise<void> {
    const kept: ProgressEvent[] = [];
    for await (const e of super.readEvents(UPGRADE, 0)) if (e.seq <= seq) kept.push(e);
    await this.delete(UPGRADE);
    if (kept.length > 0) await super.append(UPGRADE, kept, 0, replayEvents(kept)!);
  }

  override readEvents(upgradeId: string, afterSeq: number, limit?: number): AsyncIterable<ProgressEvent> {
    if (this.badRead === 'none') return super.readEvents(upgradeId, afterSeq, limit);
    const bad = this.badRead;
    return (async function* () {
      yield bad as ProgressEvent;
    })();
  }
}

describe('a store behind the durable seq whose readEvents hands back no event', () => {
  for (const bad of [null, undefined]) {
    it(`leaves the CONFLICT (read gives ${String(bad)}), and the tracker goes on`, async () => {
      const store = new BuggyLossyStore();
      const t = await ProgressTracker.open({ upgradeId: UPGRADE, planId: 'p', clusterName: 'c', store });
      await t.startUpgrade();
      await t.addTask('a', 'A');
      await t.startTask('a');
      await t.updateTaskProgress('a', 10);
      await store.loseAfter(3);
      store.badRead = bad;
      await expectCode(() => t.updateTaskProgress('a', 20), 'CONFLICT');
      // The write loop is free: a read that works again restores, and the command resolves.
      store.badRead = 'none';
      expect((await t.updateTaskProgress('a', 30)).seq).toBe(6);
      await t.close();
    }, 10_000);
  }
});
