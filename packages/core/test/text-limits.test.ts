import { describe, expect, it } from 'vitest';
import { ProgressTracker } from '../src/index.js';
import { expectCode } from './helpers.js';

// The README's "Text limits" and id rule, at the edge: the longest allowed text is taken, one
// character more is INVALID_ARGUMENT.

const open = (extra: Partial<Parameters<typeof ProgressTracker.open>[0]> = {}) => ProgressTracker.open({ upgradeId: 'u1', planId: 'p1', clusterName: 'c1', ...extra });

describe('text limits', () => {
  it('takes each text at its longest and refuses one character more', async () => {
    const x = (n: number) => 'x'.repeat(n);
    await (await open({ clusterName: x(256), upgradeId: x(128), planId: x(128) })).close();
    await expectCode(() => open({ clusterName: x(257) }), 'INVALID_ARGUMENT');
    // The message shows a long value's start, not the whole of it (a command's output can be megabytes).
    await expect(open({ clusterName: x(257) })).rejects.toThrow(`clusterName must be a string of 1 to 256 characters, got "${x(60)}..."`);
    await expectCode(() => open({ upgradeId: x(129) }), 'INVALID_ARGUMENT');
    await expectCode(() => open({ planId: x(129) }), 'INVALID_ARGUMENT');

    const t = await open();
    await expectCode(() => t.startUpgrade(x(257)), 'INVALID_ARGUMENT');
    await t.startUpgrade(x(256));
    await expectCode(() => t.setCurrentPhase(x(257)), 'INVALID_ARGUMENT');
    await t.setCurrentPhase(x(256));
    await expectCode(() => t.addTask('a', x(257)), 'INVALID_ARGUMENT');
    await expectCode(() => t.addTask('a', 'A', x(129)), 'INVALID_ARGUMENT');
    await expectCode(() => t.addTask(x(129), 'A'), 'INVALID_ARGUMENT');
    await t.addTask(x(128), x(256), x(128), { totalSteps: 5 });
    await expectCode(() => t.advanceTask(x(128), { currentStep: x(257) }), 'INVALID_ARGUMENT');
    await expectCode(() => t.advanceTask(x(128), { message: x(4097) }), 'INVALID_ARGUMENT');
    await t.advanceTask(x(128), { currentStep: x(256), message: x(4096) });
    await expectCode(() => t.updateTaskProgress(x(128), 50, x(4097)), 'INVALID_ARGUMENT');
    await t.updateTaskProgress(x(128), 50, x(4096));
    await expectCode(() => t.pauseUpgrade(x(4097)), 'INVALID_ARGUMENT');
    await t.pauseUpgrade(x(4096));
    await expectCode(() => t.resumeUpgrade(x(4097)), 'INVALID_ARGUMENT');
    await t.resumeUpgrade(x(4096));
    await expectCode(() => t.completeTask(x(128), x(4097)), 'INVALID_ARGUMENT');
    await t.completeTask(x(128), x(4096));
    await t.addTasks([
      { taskId: 's', taskName: 'S' },
      { taskId: 'c', taskName: 'C' },
    ]);
    await expectCode(() => t.skipTask('s', x(4097)), 'INVALID_ARGUMENT');
    await t.skipTask('s', x(4096));
    await expectCode(() => t.cancelTask('c', x(4097)), 'INVALID_ARGUMENT');
    await t.cancelTask('c', x(4096));
    await expectCode(() => t.completeUpgrade(x(4097)), 'INVALID_ARGUMENT');
    await t.completeUpgrade(x(4096));
    expect(t.progress.status).toBe('completed');
    await t.close();
  });
});
