import { describe, expect, it } from 'vitest';
import { ProgressTracker } from '../src/index.js';
import { expectCode } from './helpers.js';

// Bad input is refused by the command's own checks, before anything is recorded: with its own
// message, and alone. Left to the store (which refuses a state or an event it cannot take), it
// would be refused with the store's message, and take down every valid command of the same tick,
// which go out in the same write.

const open = (extra: Partial<Parameters<typeof ProgressTracker.open>[0]> = {}) => ProgressTracker.open({ upgradeId: 'u1', planId: 'p1', clusterName: 'c1', ...extra });

describe('a command refused for bad input', () => {
  it('is refused alone, with a message naming what is wrong: the valid commands of the same tick are stored', async () => {
    const t = await open();
    await t.addTasks([
      { taskId: 'a', taskName: 'A' },
      { taskId: 'b', taskName: 'B' },
    ]);
    const cases: Array<[string, () => Promise<unknown>, RegExp]> = [
      ['NaN', () => t.updateTaskProgress('a', Number.NaN), /percentage must be a number from 0 to 100, got NaN/],
      ['details whose toJSON gives an array', () => t.updateTaskProgress('a', 10, 'm', { toJSON: () => [1] }), /details must serialize to a JSON object/],
      ['details whose toJSON gives a string', () => t.updateTaskProgress('a', 10, 'm', { toJSON: () => 'x' }), /details must serialize to a JSON object/],
      ['details given as an array', () => t.updateTaskProgress('a', 10, 'm', [1] as never), /details must be a plain object, got an array/],
    ];
    let percentage = 0;
    for (const [what, bad, message] of cases) {
      percentage += 10;
      const refused = bad();
      const good = t.updateTaskProgress('b', percentage);
      await expect(refused, what).rejects.toThrow(message);
      await expect(good, what).resolves.toMatchObject({ type: 'task.progress', percentage });
    }
    expect(t.durableProgress.tasks.a!.percentage).toBe(0);
    expect(t.durableProgress.tasks.b!.percentage).toBe(40);
    await t.close();
  });

  it('refuses metadata whose toJSON gives what is not an object at open()', async () => {
    for (const toJSON of [() => [1], () => 'x', () => 3]) {
      await expectCode(() => open({ metadata: { toJSON } }), 'INVALID_ARGUMENT');
    }
    const t = await open({ metadata: { toJSON: () => ({ k: 'v' }) } });
    expect(t.progress.metadata).toEqual({ k: 'v' });
    await t.close();
  });
});
