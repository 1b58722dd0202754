import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker, assertKnownOptions, nearestName, unknownOption, type ProgressEvent } from '../src/index.js';
import { expectCode } from './helpers.js';

const base = { upgradeId: 'opts', planId: 'p', clusterName: 'c' };
const throwing = new Proxy({}, { ownKeys: () => { throw new Error('trap'); }, get: () => { throw new Error('trap'); } });

describe('option objects: a misspelt or unreadable option is refused, never left out without a word', () => {
  it('ProgressTracker.open refuses an unknown option before it touches the store', async () => {
    const store = new MemoryStore();
    const seen: ProgressEvent[] = [];
    // `sink` for `sinks`: the tracker would run with no sink at all. The message names the option meant.
    await expectCode(() => ProgressTracker.open({ ...base, store, sink: [{ name: 's', handle: (e: ProgressEvent) => void seen.push(e) }] } as never), 'INVALID_ARGUMENT');
    await expect(ProgressTracker.open({ ...base, store, sink: [] } as never)).rejects.toThrow('unknown option "sink" (did you mean "sinks"?)');
    // `stores` for `store`: every event would go to a MemoryStore, gone with the process.
    await expectCode(() => ProgressTracker.open({ ...base, stores: store } as never), 'INVALID_ARGUMENT');
    await expectCode(() => ProgressTracker.open(throwing as never), 'INVALID_ARGUMENT');
    expect(await store.load('opts')).toBeUndefined();
    // Not locked either: the same upgrade opens right after.
    const t = await ProgressTracker.open({ ...base, store, logger: undefined, sinkFlushTimeoutMs: undefined });
    expect(t.progress.lastSeq).toBe(1);
    await t.close();
  });

  it('accepts options given by a settings object with getters on its prototype', async () => {
    class Settings {
      get upgradeId() { return 'opts-class'; }
      get planId() { return 'p'; }
      get clusterName() { return 'c'; }
    }
    const t = await ProgressTracker.open(new Settings());
    expect(t.progress.upgradeId).toBe('opts-class');
    await t.close();
  });

  it('accepts a settings class whose getters read its own fields (its state, not options), and still refuses a misspelt literal', async () => {
    class Settings {
      constructor(private readonly env: Record<string, string>) {}
      get upgradeId() { return this.env.UPGRADE_ID!; }
      get planId() { return 'p'; }
      get clusterName() { return this.env.CLUSTER!; }
    }
    const t = await ProgressTracker.open(new Settings({ UPGRADE_ID: 'opts-fields', CLUSTER: 'prod' }));
    expect(t.progress.upgradeId).toBe('opts-fields');
    class Steps {
      constructor(readonly done: number) {}
      get completedSteps() { return this.done; }
    }
    await t.addTask('steps', 'Steps', 'upgrade_step', { totalSteps: 4 });
    await t.advanceTask('steps', new Steps(2));
    expect(t.progress.tasks.steps?.completedSteps).toBe(2);
    await expectCode(() => t.advanceTask('steps', { completedStep: 3 } as never), 'INVALID_ARGUMENT');
    await expectCode(() => t.advanceTask('steps', Object.assign(Object.create(null) as object, { completedStep: 3 }) as never), 'INVALID_ARGUMENT');
    await t.close();
  });

  it('addTask, addTasks and advanceTask refuse an unknown option or options that are not an object, and change nothing', async () => {
    const store = new MemoryStore();
    const t = await ProgressTracker.open({ ...base, store });
    await t.addTask('parent', 'Parent');
    await t.addTask('steps', 'Steps', 'upgrade_step', { totalSteps: 4 });
    const before = JSON.stringify(t.progress);
    // A parent id given where the options go, or under another name, would make a top-level task.
    await expectCode(() => t.addTask('child', 'Child', 'upgrade_step', 'parent' as never), 'INVALID_ARGUMENT');
    await expectCode(() => t.addTask('child', 'Child', 'upgrade_step', { parentId: 'parent' } as never), 'INVALID_ARGUMENT');
    await expectCode(() => t.addTask('child', 'Child', 'upgrade_step', throwing as never), 'INVALID_ARGUMENT');
    await expectCode(() => t.addTasks([{ taskId: 'child', taskName: 'Child', parent: 'parent' } as never]), 'INVALID_ARGUMENT');
    await expectCode(() => t.addTasks([throwing as never]), 'INVALID_ARGUMENT');
    await expectCode(() => t.advanceTask('steps', { steps: 3 } as never), 'INVALID_ARGUMENT');
    await expectCode(() => t.advanceTask('steps', [] as never), 'INVALID_ARGUMENT');
    await expectCode(() => t.advanceTask('steps', throwing as never), 'INVALID_ARGUMENT');
    expect(JSON.stringify(t.progress)).toBe(before);
    expect((await store.load('opts'))?.lastSeq).toBe(t.progress.lastSeq);
    // The known names, and undefined values, still work.
    const child = await t.addTask('child', 'Child', undefined, { parentTaskId: 'parent', weight: undefined });
    expect(child.parentTaskId).toBe('parent');
    await t.advanceTask('steps', { completedSteps: 2, currentStep: undefined });
    expect(t.progress.tasks.steps?.percentage).toBe(50);
    // null is no options, as undefined is.
    expect((await t.addTask('plain', 'Plain', 'upgrade_step', null as never)).parentTaskId).toBeNull();
    await t.advanceTask('steps', null as never);
    expect(t.progress.tasks.steps?.completedSteps).toBe(3);
    // And null details, no details.
    await t.updateTaskProgress('plain', 10, undefined, null as never);
    expect(t.progress.tasks.plain?.percentage).toBe(10);
    await t.close();
  });

  it('MemoryStore refuses unknown or unreadable options', () => {
    for (const options of [{ snapshotevery: 5 }, 5, 'x', throwing]) {
      let caught: unknown;
      try {
        new MemoryStore(options as never);
      } catch (err) {
        caught = err;
      }
      expect(caught).toMatchObject({ name: 'ProgressError', code: 'INVALID_ARGUMENT' });
    }
    expect(new MemoryStore(undefined).info().snapshotEvery).toBe(1000);
    expect(new MemoryStore(null as never).info().snapshotEvery).toBe(1000);
  });
});

describe('unknownOption and nearestName, the check every package runs on its options', () => {
  it('finds the first own key of a plain object that is not an option (a class instance only when asked)', () => {
    expect(unknownOption({ a: 1, b: 2 }, ['a', 'b'])).toBeUndefined();
    expect(unknownOption({ a: 1, sink: 2 }, ['a', 'sinks'])).toBe('sink');
    expect(unknownOption(Object.assign(Object.create(null) as object, { x: 1 }), new Set(['a']))).toBe('x');
    class Settings {
      constructor(readonly env: string) {}
    }
    expect(unknownOption(new Settings('prod'), ['a'])).toBeUndefined();
    expect(unknownOption(new Settings('prod'), ['a'], true)).toBe('env');
  });

  it('names the known name at most two edits away ignoring case, else one the name begins, else none', () => {
    expect(nearestName('regoin', ['region', 'port'])).toBe('region');
    // A changed letter and a missing one: two edits.
    expect(nearestName('sinc', ['sinks', 'store'])).toBe('sinks');
    expect(nearestName('keyprefix', ['keyPrefix', 'url'])).toBe('keyPrefix');
    expect(nearestName('commandTimeout', ['commandTimeoutMs'])).toBe('commandTimeoutMs');
    expect(nearestName('ttl', ['ttlSeconds', 'maxEvents'])).toBe('ttlSeconds');
    expect(nearestName('colour', ['storage', 'sinks'])).toBeUndefined();
    expect(nearestName('ab', ['abcdef'])).toBeUndefined();
  });
});

describe('unknownOption and nearestName given what they cannot read', () => {
  // Exported for other packages' option checks: a wrong argument threw a TypeError from inside
  // ("Cannot convert undefined or null to object", "known.has is not a function").
  const refused = (run: () => unknown, fn: string): void => {
    expect(run).toThrow(expect.objectContaining({ name: 'ProgressError', code: 'INVALID_ARGUMENT', message: expect.stringContaining(`${fn}()`) }));
  };
  it.each([null, undefined])('unknownOption() refuses %s as the options', (value) => refused(() => unknownOption(value as never, ['a']), 'unknownOption'));
  it.each([null, undefined, 42, 'ab', {}, () => {}])('unknownOption() and nearestName() refuse %s as the known names', (known) => {
    refused(() => unknownOption({ a: 1 }, known as never), 'unknownOption');
    if (typeof known !== 'string') refused(() => nearestName('a', known as never), 'nearestName');
  });
  it.each([null, undefined, 42, {}, Symbol('n')])('nearestName() refuses %s as the name', (name) => refused(() => nearestName(name as never, ['a']), 'nearestName'));
});

describe('assertKnownOptions, the refusal every package words with it', () => {
  it('suggests the hint when no known name is near, lists the known names unless told not to, and names a nested option whole', () => {
    const refusal = (fn: () => void): { message: string; context?: Record<string, unknown> } => {
      try {
        fn();
      } catch (err) {
        return err as { message: string; context?: Record<string, unknown> };
      }
      throw new Error('not refused');
    };
    const hinted = refusal(() => assertKnownOptions({ acl: [] }, ['allowedOrigins', 'port'], { source: '@x/y', what: 'server options', hint: (k) => (k === 'acl' ? 'allowedOrigins' : undefined) }));
    expect(hinted.message).toBe('[@x/y] server options: unknown option "acl" (did you mean "allowedOrigins"?)');
    const listed = refusal(() => assertKnownOptions({ colour: 1 }, ['port', 'host'], { source: '@x/y' }));
    expect(listed.message).toBe('[@x/y] unknown option "colour" (known: port, host)');
    const unlisted = refusal(() => assertKnownOptions({ colour: 1 }, ['port', 'host'], { source: '@x/y', listKnown: false }));
    expect(unlisted.message).toBe('[@x/y] unknown option "colour"');
    const nested = refusal(() => assertKnownOptions({ maxAttempt: 3 }, ['maxAttempts'], { source: '@x/y', where: 'retry.' }));
    expect(nested.message).toBe('[@x/y] unknown option "retry.maxAttempt" (did you mean "retry.maxAttempts"?)');
    expect(nested.context).toEqual({ option: 'retry.maxAttempt' });
  });
});
