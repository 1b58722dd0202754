import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { JsonFileStore, createProgressTracker, isProgressError, type CreateProgressTrackerOptions } from '../src/index.js';
import { resolveOptions } from '../src/options.js';

// The options of createProgressTracker() itself read as those of eventBridge and webSocket are: by
// name (a settings class's getter counts), and only the names the object holds (a strict settings
// object throws for any other).

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('createProgressTracker: its own options read by name', () => {
  it("takes storage from a settings class's getter: the events go to the folder, not to memory", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'progress-options-'));
    dirs.push(dir);
    class AgentSettings {
      readonly upgradeId = 'getter-storage';
      readonly planId = 'p';
      readonly clusterName = 'c';
      get storage(): { json: string } {
        return { json: dir };
      }
    }
    const t = await createProgressTracker(new AgentSettings() as CreateProgressTrackerOptions);
    try {
      // Before: the options were spread, which lost the getter: a MemoryStore, gone with the process.
      expect(t.storage).toBeInstanceOf(JsonFileStore);
      await t.startUpgrade();
    } finally {
      await t.close();
    }
    const reopened = new JsonFileStore({ directory: dir });
    try {
      expect((await reopened.load('getter-storage'))?.status).toBe('in_progress');
    } finally {
      await reopened.close();
    }
  });

  it('takes a strict settings object holding only the options it gives, and refuses a bad one with INVALID_ARGUMENT', () => {
    const strict = <T extends object>(target: T): T =>
      new Proxy(target, {
        get(t, key) {
          if (typeof key === 'string' && !(key in t)) throw new Error(`no setting "${key}"`);
          return (t as Record<PropertyKey, unknown>)[key];
        },
      });
    // Before: the old snake_case names were read from it ("no setting upgrade_id", a plain Error).
    expect(resolveOptions(strict({ upgradeId: 'u1', planId: 'p', clusterName: 'c', storagePath: '/data' }))).toMatchObject({ upgradeId: 'u1', storage: { json: '/data' } });
    let refused: unknown;
    try {
      resolveOptions(strict({ upgradeId: 'u1', planId: 'p', clusterName: 'c', storagePath: '' }));
    } catch (err) {
      refused = err;
    }
    expect(isProgressError(refused, 'INVALID_ARGUMENT'), String(refused)).toBe(true);
  });
});
