import { ProgressTracker } from '@progress/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LiveView } from '../src/cli/terminal.js';
import { Capture } from './helpers.js';

/** The cells a line takes in a terminal, counted independently of the code under test: CJK ideographs and emoji take two. */
const cells = (line: string): number => [...line.replace(/\x1b\[[\d;]*[A-Za-z]/g, '')].reduce((n, ch) => n + (/[\u4e00-\u9fff]|\p{Emoji_Presentation}/u.test(ch) ? 2 : 1), 0); // eslint-disable-line no-control-regex

type State = Parameters<LiveView['update']>[0];

/**
 * What a LiveView prints of `states` (an update each) on a terminal of `columns` columns, or to a
 * pipe (`tty: false`); in colour as `color` says, else as the environment says.
 */
function printed(states: State | State[], { tty = true, columns, color }: { tty?: boolean; columns?: number; color?: boolean } = {}): string {
  const out = new Capture();
  out.isTTY = tty;
  if (columns !== undefined) out.columns = columns;
  const view = new LiveView({ out: out as unknown as NodeJS.WriteStream, ...(color === undefined ? {} : { color }), intervalMs: 0 });
  for (const state of [states].flat()) view.update(state);
  view.finish();
  return out.text;
}

describe('LiveView on a terminal', () => {
  it('cuts each line to the terminal width in cells, so that none wraps and the redraw moves up over all of them', async () => {
    const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: '東京本番クラスタ東京本番クラスタ東京本番クラスタ' });
    await tracker.startUpgrade();
    await tracker.addTask('t', '🎉'.repeat(30));
    await tracker.advanceTask('t', { completedSteps: 1, currentStep: 'ノードグループ更新中'.repeat(10) });
    // The second: an emoji across the cut (the line was cut between the halves of its surrogate pair).
    const text = printed([tracker.progress, { ...tracker.progress, clusterName: '🎉'.repeat(40) }], { columns: 60, color: false });
    await tracker.close();
    // A line wider than the terminal wraps onto a row the `\x1b[<n>A` of the next redraw does not
    // go back over: each redraw left a stale copy of the live area on the screen.
    const lines = text.split('\n').filter((line) => line !== '');
    expect(lines.length).toBeGreaterThan(2);
    for (const line of lines) expect(cells(line), line).toBeLessThanOrEqual(59);
    // Half a surrogate pair is printed as U+FFFD.
    expect(text).not.toContain('\ufffd');
    expect(text).toContain('東京');
  });

  it('draws no more lines than the terminal has rows, so that each redraw goes back over all of them', async () => {
    const tracker = await ProgressTracker.open({ upgradeId: 'u2', planId: 'p', clusterName: 'c' });
    await tracker.startUpgrade();
    await tracker.addTasks(Array.from({ length: 30 }, (_, i) => ({ taskId: `t${i}`, taskName: `Task ${i}` })));
    const out = new Capture();
    out.isTTY = true;
    (out as unknown as { rows: number }).rows = 12;
    const view = new LiveView({ out: out as unknown as NodeJS.WriteStream, color: false, intervalMs: 0 });
    view.update(tracker.progress);
    await tracker.startTask('t29');
    view.update(tracker.progress);
    view.finish();
    await tracker.close();
    // The cursor cannot go up past the top of the screen: with more lines than rows, each redraw
    // left the lines that had scrolled off on the screen, a copy of the live area per redraw.
    const draws = out.text.split(/\x1b\[\d+A\x1b\[0J/); // eslint-disable-line no-control-regex
    expect(draws).toHaveLength(3);
    // The last drawing, left on the screen as it ends, is whole.
    expect(draws.pop()).toContain('Task 29');
    for (const draw of draws) {
      expect(draw.split('\n').filter((line) => line !== '').length, draw).toBeLessThanOrEqual(11);
      expect(draw).toContain('u2  cluster c');
    }
    expect(draws[1]).toMatch(/more lines/);
  });

  it('cuts its lines to a terminal narrower than 40 columns too (a split pane), where they wrapped', async () => {
    const tracker = await ProgressTracker.open({ upgradeId: 'u3', planId: 'p', clusterName: 'c' });
    await tracker.startUpgrade();
    await tracker.addTask('t', 'Upgrade the control plane');
    const text = printed(tracker.progress, { columns: 30, color: false });
    await tracker.close();
    const lines = text.split('\n').filter((line) => line !== '');
    expect(lines.length).toBeGreaterThan(2);
    for (const line of lines) expect(cells(line), line).toBeLessThanOrEqual(29);
  });

  it('counts no colour code as a cell, and keeps the reset of a line it cuts, so that the colour ends with the line', async () => {
    const tracker = await ProgressTracker.open({ upgradeId: 'u6', planId: 'p', clusterName: 'c' });
    await tracker.startUpgrade();
    await tracker.addTask('t', 'T', 'upgrade_step', { totalSteps: 2 });
    await tracker.advanceTask('t', { completedSteps: 1, currentStep: 'x'.repeat(200) });
    const text = printed(tracker.progress, { columns: 60, color: true });
    await tracker.close();
    const task = text.split('\n').find((line) => line.includes('\x1b[36m▶'))!;
    expect(cells(task)).toBe(59);
    expect(task.endsWith('\x1b[0m')).toBe(true);
  });
});

describe('LiveView without options', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('colours a terminal unless NO_COLOR is set to something, and a pipe never', async () => {
    const tracker = await ProgressTracker.open({ upgradeId: 'u4', planId: 'p', clusterName: 'c' });
    await tracker.startUpgrade();
    const state = tracker.progress;
    await tracker.close();
    const colour = /\x1b\[3\dm/; // eslint-disable-line no-control-regex
    vi.stubEnv('NO_COLOR', undefined);
    expect(printed(state)).toMatch(colour);
    expect(printed(state, { tty: false })).not.toMatch(colour);
    vi.stubEnv('NO_COLOR', '');
    expect(printed(state)).toMatch(colour);
    vi.stubEnv('NO_COLOR', '1');
    expect(printed(state)).not.toMatch(colour);
  });

  it('counts a skipped task as done in the line a pipe gets for a state without an event', async () => {
    const tracker = await ProgressTracker.open({ upgradeId: 'u5', planId: 'p', clusterName: 'c' });
    await tracker.startUpgrade();
    await tracker.addTasks([
      { taskId: 'a', taskName: 'A' },
      { taskId: 'b', taskName: 'B' },
      { taskId: 'c', taskName: 'C' },
    ]);
    await tracker.skipTask('a');
    await tracker.startTask('b');
    await tracker.completeTask('b');
    const state = tracker.progress;
    await tracker.close();
    expect(printed(state, { tty: false }).split('\n')[0]).toMatch(/ u5 state in_progress at seq \d+ overall=[\d.]+% phase=Initialization tasks=2\/3$/);
  });
});
