// An agent fails a task with the error it caught, often a command's whole output: longer than the
// 4096 characters a message may hold. Refusing it (INVALID_ARGUMENT) left the task and the upgrade
// running, the failure recorded nowhere, in the very path that reports it; the old Python module
// took any length. The start of the message is kept instead, cut at 4096 characters.
import { describe, expect, it } from 'vitest';
import { ProgressTracker } from '../src/index.js';

const CUT_MARK = '…[truncated]';

async function open(upgradeId: string): Promise<ProgressTracker> {
  return ProgressTracker.open({ upgradeId, planId: 'p', clusterName: 'c' });
}

describe('an error message longer than 4096 characters', () => {
  it('failTask() records the failure with the message cut to 4096 characters', async () => {
    const t = await open('long-task-error');
    await t.startUpgrade();
    await t.addTask('drain', 'Drain nodes');
    await t.startTask('drain');
    const output = `kubectl drain failed:\n${'x'.repeat(10_000)}`;
    const event = await t.failTask('drain', output);
    const task = t.progress.tasks.drain!;
    expect(task.status).toBe('failed');
    expect(task.errorMessage).toHaveLength(4096);
    expect(task.errorMessage!.startsWith('kubectl drain failed:\nxxx')).toBe(true);
    expect(task.errorMessage!.endsWith(CUT_MARK)).toBe(true);
    expect(event.message).toBe(`Task failed: ${task.errorMessage}`);
    expect(event.details).toMatchObject({ errorMessage: task.errorMessage, errorMessageLength: output.length });
    // The stored history holds the same (what a reopen, a sink or a ws client sees).
    const stored = [];
    for await (const e of t.readEvents(0)) stored.push(e);
    expect(stored.at(-1)).toEqual(event);
    await t.close();
  });

  it('failUpgrade() records the failure with the message cut to 4096 characters', async () => {
    const t = await open('long-upgrade-error');
    await t.startUpgrade();
    const event = await t.failUpgrade('e'.repeat(5000));
    expect(t.progress.status).toBe('failed');
    expect(t.progress.errorMessage).toHaveLength(4096);
    expect(t.progress.errorMessage!.endsWith(CUT_MARK)).toBe(true);
    expect(event.details).toMatchObject({ errorMessageLength: 5000 });
    await t.close();
  });

  it('never splits a character of two UTF-16 code units', async () => {
    const t = await open('long-emoji-error');
    await t.addTask('a', 'A');
    // 6001 code units; the one ahead puts a pair across the cut (4096 - the mark's 12 is even: with
    // pairs alone the cut falls between two of them whatever the code does).
    await t.failTask('a', `x${'😀'.repeat(3000)}`);
    const message = t.progress.tasks.a!.errorMessage!;
    expect(message.length).toBeLessThanOrEqual(4096);
    expect(message.endsWith(CUT_MARK)).toBe(true);
    expect(message.slice(0, -CUT_MARK.length)).toBe(`x${'😀'.repeat((message.length - CUT_MARK.length - 1) / 2)}`);
    // Pairs alone: the cut falls after a whole pair (its second unit last), which is kept, and no
    // more is taken off (one unit more would leave the first half of that pair alone).
    await t.addTask('b', 'B');
    await t.failTask('b', '😀'.repeat(3000));
    const pairs = t.progress.tasks.b!.errorMessage!;
    expect(pairs).toHaveLength(4096);
    expect(pairs).toBe(`${'😀'.repeat((4096 - CUT_MARK.length) / 2)}${CUT_MARK}`);
    await t.close();
  });

  it('keeps a message of at most 4096 characters whole, without errorMessageLength', async () => {
    const t = await open('exact-error');
    await t.addTask('a', 'A');
    const event = await t.failTask('a', 'y'.repeat(4096));
    expect(t.progress.tasks.a!.errorMessage).toBe('y'.repeat(4096));
    expect(event.details).toEqual({ errorMessage: 'y'.repeat(4096) });
    await t.close();
  });

  it('still refuses an empty or non-string error message, changing nothing', async () => {
    const t = await open('bad-error');
    await t.addTask('a', 'A');
    await expect(t.failTask('a', '')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(t.failTask('a', 42 as unknown as string)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(t.failUpgrade('')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(t.progress.tasks.a!.status).toBe('not_started');
    expect(t.progress.status).toBe('not_started');
    await t.close();
  });
});
