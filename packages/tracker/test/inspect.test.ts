import { ProgressTracker, type UpgradeProgress, type UpgradeSummaryRow } from '@progress/core';
import { describe, expect, it } from 'vitest';
import { formatRows, formatUpgrade } from '../src/cli/inspect.js';

// What `progress ls` and `progress show` print as text: tables a user reads by their columns.

const row: UpgradeSummaryRow = {
  upgradeId: 'u1',
  planId: 'p',
  clusterName: 'prod',
  status: 'in_progress',
  overallPercentage: 42.5,
  currentPhase: null,
  createdAt: '2026-11-29T08:00:00.000Z',
  updatedAt: '2026-11-29T08:05:00.000Z',
  startedAt: '2026-11-29T08:00:00.000Z',
  completedAt: null,
  totalTasks: 7,
  lastSeq: 9,
};

describe('progress ls', () => {
  it('says so when there are no upgrades, rather than printing a bare header', () => {
    expect(formatRows([])).toBe('no upgrades');
  });

  it('prints a row per upgrade in the columns of the header: a phase not set as "-", a cell too long cut to its width ending in "…"', () => {
    const [header, first, second] = formatRows([row, { ...row, upgradeId: 'u'.repeat(40), currentPhase: 'Nodes' }]).split('\n');
    expect(header).toBe(`${'UPGRADE'.padEnd(28)} ${'CLUSTER'.padEnd(20)} ${'STATUS'.padEnd(12)}    DONE ${'PHASE'.padEnd(20)} TASKS UPDATED`);
    expect(first).toBe(`${'u1'.padEnd(28)} ${'prod'.padEnd(20)} ${'in_progress'.padEnd(12)}   42.5% ${'-'.padEnd(20)} 7     2026-11-29T08:05:00.000Z`);
    expect(second).toBe(`${'u'.repeat(27)}… ${'prod'.padEnd(20)} ${'in_progress'.padEnd(12)}   42.5% ${'Nodes'.padEnd(20)} 7     2026-11-29T08:05:00.000Z`);
  });
});

describe('progress show', () => {
  it('prints the bars, the last ten events, then a table of the tasks with their retries and durations', async () => {
    const tracker = await ProgressTracker.open({ upgradeId: 'u2', planId: 'p', clusterName: 'c' });
    await tracker.startUpgrade();
    await tracker.addTasks([
      { taskId: 'a', taskName: 'A' },
      { taskId: 'b', taskName: 'B' },
    ]);
    await tracker.startTask('a');
    await tracker.completeTask('a');
    await tracker.startTask('b');
    for (const percentage of [10, 20, 30]) await tracker.updateTaskProgress('b', percentage);
    const state = structuredClone(tracker.progress) as UpgradeProgress;
    await tracker.close();
    state.tasks.a!.durationMs = 1234;
    const lines = formatUpgrade(state).split('\n');
    // 8 task events, all of them shown (up to 10).
    expect(lines.filter((line) => /^ {2}#\d+ /.test(line))).toHaveLength(8);
    expect(lines.slice(lines.indexOf('') + 1)).toEqual([
      `${'TASK'.padEnd(24)} ${'NAME'.padEnd(30)} ${'TYPE'.padEnd(14)} ${'STATUS'.padEnd(12)}    DONE RETRIES DURATION`,
      `${'a'.padEnd(24)} ${'A'.padEnd(30)} ${'upgrade_step'.padEnd(14)} ${'completed'.padEnd(12)}  100.0% 0       1.234s`,
      `${'b'.padEnd(24)} ${'B'.padEnd(30)} ${'upgrade_step'.padEnd(14)} ${'in_progress'.padEnd(12)}   30.0% 0       -`,
    ]);
  });
});
