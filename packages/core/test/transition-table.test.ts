import { describe, expect, it } from 'vitest';
import { ProgressTracker, TERMINAL_TASK_STATUSES, TERMINAL_UPGRADE_STATUSES, isProgressError, isTerminal, type ProgressStatus } from '../src/index.js';

// The whole transition table of the README ("Transitions are checked"), command by status: each
// allowed command succeeds, and each other one is INVALID_TRANSITION, recording nothing.

const open = () => ProgressTracker.open({ upgradeId: 'u1', planId: 'p1', clusterName: 'c1' });

type Upgrade = 'not_started' | 'in_progress' | 'paused' | 'completed' | 'failed' | 'cancelled';

/** Brings a new tracker's upgrade to `status`. */
async function upgradeIn(status: Upgrade): Promise<ProgressTracker> {
  const t = await open();
  if (status === 'not_started') return t;
  if (status === 'failed') return void (await t.failUpgrade('boom')), t;
  if (status === 'cancelled') return void (await t.cancelUpgrade()), t;
  await t.startUpgrade();
  if (status === 'paused') await t.pauseUpgrade();
  if (status === 'completed') await t.completeUpgrade();
  return t;
}

const upgradeCommands: Record<string, [(t: ProgressTracker) => Promise<unknown>, readonly Upgrade[]]> = {
  startUpgrade: [(t) => t.startUpgrade(), ['not_started']],
  setCurrentPhase: [(t) => t.setCurrentPhase('Nodes'), ['not_started', 'in_progress', 'paused']],
  pauseUpgrade: [(t) => t.pauseUpgrade(), ['in_progress']],
  resumeUpgrade: [(t) => t.resumeUpgrade(), ['paused']],
  completeUpgrade: [(t) => t.completeUpgrade(), ['in_progress']],
  failUpgrade: [(t) => t.failUpgrade('boom'), ['not_started', 'in_progress', 'paused']],
  cancelUpgrade: [(t) => t.cancelUpgrade(), ['not_started', 'in_progress', 'paused']],
  addTask: [(t) => t.addTask('b', 'B'), ['not_started', 'in_progress', 'paused']],
};

type Task = 'not_started' | 'in_progress' | 'completed' | 'failed' | 'skipped' | 'cancelled';

/** A tracker whose upgrade is in progress and whose task `a` is in `status`. */
async function taskIn(status: Task): Promise<ProgressTracker> {
  const t = await open();
  await t.startUpgrade();
  await t.addTask('a', 'A');
  if (status === 'in_progress') await t.startTask('a');
  if (status === 'completed') await t.completeTask('a');
  if (status === 'failed') await t.failTask('a', 'boom');
  if (status === 'skipped') await t.skipTask('a');
  if (status === 'cancelled') await t.cancelTask('a');
  return t;
}

const taskCommands: Record<string, [(t: ProgressTracker) => Promise<unknown>, readonly Task[]]> = {
  startTask: [(t) => t.startTask('a'), ['not_started']],
  updateTaskProgress: [(t) => t.updateTaskProgress('a', 40), ['not_started', 'in_progress']],
  advanceTask: [(t) => t.advanceTask('a'), ['not_started', 'in_progress']],
  completeTask: [(t) => t.completeTask('a'), ['not_started', 'in_progress']],
  failTask: [(t) => t.failTask('a', 'boom'), ['not_started', 'in_progress']],
  retryTask: [(t) => t.retryTask('a'), ['failed']],
  skipTask: [(t) => t.skipTask('a'), ['not_started']],
  cancelTask: [(t) => t.cancelTask('a'), ['not_started', 'in_progress']],
};

/** What `command` did: 'ok', or the code it was refused with; and whether the seq moved accordingly. */
async function attempt(t: ProgressTracker, command: (t: ProgressTracker) => Promise<unknown>): Promise<string> {
  const before = t.progress.lastSeq;
  try {
    await command(t);
  } catch (err) {
    expect(t.progress.lastSeq, 'a refused command records nothing').toBe(before);
    return isProgressError(err) ? err.code : String(err);
  }
  expect(t.progress.lastSeq).toBeGreaterThan(before);
  return 'ok';
}

describe('the transition table', () => {
  it('takes each upgrade command in the statuses the README lists, and refuses it in every other one', async () => {
    const statuses: Upgrade[] = ['not_started', 'in_progress', 'paused', 'completed', 'failed', 'cancelled'];
    for (const [name, [command, from]] of Object.entries(upgradeCommands)) {
      for (const status of statuses) {
        const t = await upgradeIn(status);
        expect(t.progress.status).toBe(status);
        expect(`${name} from ${status}: ${await attempt(t, command)}`).toBe(`${name} from ${status}: ${from.includes(status) ? 'ok' : 'INVALID_TRANSITION'}`);
        await t.close();
      }
    }
  });

  it('takes each task command in the task statuses the README lists, and refuses it in every other one', async () => {
    const statuses: Task[] = ['not_started', 'in_progress', 'completed', 'failed', 'skipped', 'cancelled'];
    for (const [name, [command, from]] of Object.entries(taskCommands)) {
      for (const status of statuses) {
        const t = await taskIn(status);
        expect(t.progress.tasks.a!.status).toBe(status as ProgressStatus);
        expect(`${name} from ${status}: ${await attempt(t, command)}`).toBe(`${name} from ${status}: ${from.includes(status) ? 'ok' : 'INVALID_TRANSITION'}`);
        await t.close();
      }
    }
  });

  it('takes task commands while the upgrade is not started or paused, and none once it has ended', async () => {
    for (const status of ['not_started', 'paused', 'completed', 'failed', 'cancelled'] as const) {
      const t = await open();
      await t.addTasks([
        { taskId: 'a', taskName: 'A' },
        { taskId: 'f', taskName: 'F' },
      ]);
      await t.failTask('f', 'boom');
      if (status === 'paused' || status === 'completed') await t.startUpgrade();
      if (status === 'paused') await t.pauseUpgrade();
      if (status === 'completed') await t.completeUpgrade();
      if (status === 'failed') await t.failUpgrade('boom');
      if (status === 'cancelled') await t.cancelUpgrade();
      const want = status === 'not_started' || status === 'paused' ? 'ok' : 'INVALID_TRANSITION';
      for (const [name, command] of Object.entries({
        startTask: (x: ProgressTracker) => x.startTask('a'),
        retryTask: (x: ProgressTracker) => x.retryTask('f'),
        updateTaskProgress: (x: ProgressTracker) => x.updateTaskProgress('a', 50),
        cancelTask: (x: ProgressTracker) => x.cancelTask('a'),
      })) {
        expect(`${name} while ${status}: ${await attempt(t, command)}`).toBe(`${name} while ${status}: ${want}`);
      }
      await t.close();
    }
  });

  it('exports as terminal the statuses from which the table allows no command (a failed task can still be retried)', () => {
    const none = <S extends string>(statuses: S[], table: Record<string, [unknown, readonly S[]]>) => statuses.filter((s) => Object.values(table).every(([, from]) => !from.includes(s)));
    const upgradeEnded = none(['not_started', 'in_progress', 'paused', 'completed', 'failed', 'cancelled'], upgradeCommands);
    expect(upgradeEnded).toEqual(['completed', 'failed', 'cancelled']);
    expect([...TERMINAL_UPGRADE_STATUSES].sort()).toEqual([...upgradeEnded].sort());
    expect(upgradeEnded.every(isTerminal) && !isTerminal('paused')).toBe(true);
    expect([...TERMINAL_TASK_STATUSES].sort()).toEqual(none(['not_started', 'in_progress', 'completed', 'failed', 'skipped', 'cancelled'], taskCommands).sort());
  });
});
