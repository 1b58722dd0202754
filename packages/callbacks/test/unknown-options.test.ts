import { describe, expect, it } from 'vitest';
import { isProgressError } from '@progress/core';
import { CallbackManager, type CallbackManagerOptions } from '../src/index.js';
import { thrown } from '../../../tools/test-utils/src/thrown.js';
import { openTracker } from './helpers.js';

const logger = { debug() {}, info() {}, warn() {}, error() {} };

describe('CallbackManager options: a name it does not know is refused', () => {
  it('takes every documented option at once, and uses them', async () => {
    const errors: string[] = [];
    const all: Required<CallbackManagerOptions> = {
      timeoutMs: 1000,
      maxQueueSize: 10,
      dropPolicy: 'newest',
      logger,
      onError: (err) => void errors.push((err as Error).message),
    };
    const manager = new CallbackManager(all);
    manager.addEventCallback(() => {
      throw new Error('boom');
    });
    const tracker = await openTracker(manager);
    await tracker.close();
    // onError was taken: it heard of the failure (upgrade.created).
    expect(errors.length).toBeGreaterThan(0);
    await manager.close();
  });

  it('refuses a misspelt option with INVALID_ARGUMENT naming the one meant', () => {
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ onErorr: () => {} }, 'onErorr', 'onError'],
      [{ timeout: 10_000 }, 'timeout', 'timeoutMs'],
      [{ timeoutMS: 10_000 }, 'timeoutMS', 'timeoutMs'],
      [{ maxQueueSise: 5 }, 'maxQueueSise', 'maxQueueSize'],
      [{ drop_policy: 'newest' }, 'drop_policy', 'dropPolicy'],
      [{ log: logger }, 'log', 'logger'],
    ];
    for (const [options, key, meant] of cases) {
      const err = thrown(() => new CallbackManager(options as CallbackManagerOptions));
      expect(isProgressError(err, 'INVALID_ARGUMENT'), String(err)).toBe(true);
      expect(err.message).toContain(`unknown option ${JSON.stringify(key)} (did you mean ${JSON.stringify(meant)}?)`);
    }
    // Nothing near it: the known names are listed; an object without prototype is checked too.
    const bare = Object.assign(Object.create(null) as object, { signal: undefined });
    expect(thrown(() => new CallbackManager(bare as CallbackManagerOptions)).message).toMatch(/unknown option "signal" \(known: timeoutMs, maxQueueSize, dropPolicy, logger, onError\)/);
  });

  it('refuses options whose reading throws (a getter, a Proxy trap) with INVALID_ARGUMENT', () => {
    class Settings {
      get timeoutMs(): number {
        throw new Error('no such setting');
      }
    }
    const trap = new Proxy({}, { get: () => { throw new Error('trap'); } });
    for (const options of [new Settings(), trap]) {
      const err = thrown(() => new CallbackManager(options as CallbackManagerOptions));
      expect(isProgressError(err, 'INVALID_ARGUMENT'), String(err)).toBe(true);
      expect(err.message).toMatch(/^\[@progress\/callbacks\] .*could not be read/);
      expect(err.cause).toBeInstanceOf(Error);
    }
  });

  it('reads a settings class by the option names alone', () => {
    class Settings {
      // Its own state, not an option.
      readonly source = 'env';
      get timeoutMs(): number {
        return 0;
      }
    }
    // Its timeoutMs getter is read (and refused as out of range): its own field is not an option.
    expect(thrown(() => new CallbackManager(new Settings() as CallbackManagerOptions)).message).toMatch(/timeoutMs must be/);
  });
});
