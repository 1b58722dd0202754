import { ProgressTracker } from '@progress/core';
import { describe, expect, it } from 'vitest';
import { LiveView } from '../src/cli/terminal.js';
import { Capture } from './helpers.js';

/** The cells a line takes in a terminal, counted independently of the code under test: CJK ideographs and emoji take two. */
const cells = (line: string): number => [...line.replace(/\x1b\[[\d;]*[A-Za-z]/g, '')].reduce((n, ch) => n + (/[\u4e00-\u9fff]|\p{Emoji_Presentation}/u.test(ch) ? 2 : 1), 0); // eslint-disable-line no-control-regex

describe('LiveView on a terminal', () => {
  it('cuts each line to the terminal width in cells, so that none wraps and the redraw moves up over all of them', async () => {
    const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: '東京本番クラスタ東京本番クラスタ東京本番クラスタ' });
    await tracker.startUpgrade();
    await tracker.addTask('t', '🎉'.repeat(30));
    await tracker.advanceTask('t', { completedSteps: 1, currentStep: 'ノードグループ更新中'.repeat(10) });
    const out = new Capture();
    out.isTTY = true;
    out.columns = 60;
    const view = new LiveView({ out: out as unknown as NodeJS.WriteStream, color: false, intervalMs: 0 });
    view.update(tracker.progress);
    // An emoji across the cut: the line was cut between the halves of its surrogate pair.
    view.update({ ...tracker.progress, clusterName: '🎉'.repeat(40) });
    view.finish();
    await tracker.close();
    // A line wider than the terminal wraps onto a row the `\x1b[<n>A` of the next redraw does not
    // go back over: each redraw left a stale copy of the live area on the screen.
    const lines = out.text.split('\n').filter((line) => line !== '');
    expect(lines.length).toBeGreaterThan(2);
    for (const line of lines) expect(cells(line), line).toBeLessThanOrEqual(59);
    // Half a surrogate pair is printed as U+FFFD.
    expect(out.text).not.toContain('\ufffd');
    expect(out.text).toContain('東京');
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
    const out = new Capture();
    out.isTTY = true;
    out.columns = 30;
    const view = new LiveView({ out: out as unknown as NodeJS.WriteStream, color: false, intervalMs: 0 });
    view.update(tracker.progress);
    view.finish();
    await tracker.close();
    const lines = out.text.split('\n').filter((line) => line !== '');
    expect(lines.length).toBeGreaterThan(2);
    for (const line of lines) expect(cells(line), line).toBeLessThanOrEqual(29);
  });
});
