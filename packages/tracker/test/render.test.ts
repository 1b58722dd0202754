import { ProgressTracker, type ProgressEvent, type UpgradeProgress } from '@progress/core';
import { describe, expect, it } from 'vitest';
import { renderEventLine, renderProgress } from '../src/render.js';

// What a server or a store sends is printed to a terminal: none of its fields may carry control
// characters there (a hostile server could clear the screen, retitle the terminal or forge lines).
const ESC = '\u001b]0;PWNED\u0007\u001b[2J';

/** The state of an upgrade whose task `t` is at 10% (a copy, the tracker closed), and the event that moved it there. */
async function taskAt10(upgradeId: string): Promise<{ state: UpgradeProgress; event: ProgressEvent }> {
  const tracker = await ProgressTracker.open({ upgradeId, planId: 'p', clusterName: 'c' });
  await tracker.startUpgrade();
  await tracker.addTask('t', 'T');
  const event = await tracker.updateTaskProgress('t', 10);
  const state = structuredClone(tracker.progress) as UpgradeProgress;
  await tracker.close();
  return { state, event };
}

/** `text` holds ESC's text, none of its control characters. */
function expectNoControls(text: string): void {
  expect(text).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/); // eslint-disable-line no-control-regex
  expect(text).toContain('PWNED');
}

describe('renderProgress and renderEventLine', () => {
  it('print every field of a state and of an event without its control characters', async () => {
    const { state } = await taskAt10('u1');
    (state as { status: string }).status = `in_progress${ESC}`;
    const recent = state.tasks.t!.recentEvents;
    recent[recent.length - 1] = { ...recent[recent.length - 1]!, type: `task.progress${ESC}` as ProgressEvent['type'], timestamp: `2026-11-29T08:00:00.000Z${ESC}` };
    const text = renderProgress(state, { recentEvents: 5 }).join('\n') + renderEventLine(recent[recent.length - 1]!, state);
    expectNoControls(text);
  });

  it('prints an event line without the control characters of a seq or percentage that is not a number', async () => {
    const { state, event } = await taskAt10('u5');
    // Numbers of a server's frame are what it sent: the line printed them as they came.
    const line = renderEventLine({ ...event, seq: ESC as unknown as number, percentage: ESC as unknown as number }, { ...state, overallPercentage: ESC as unknown as number });
    expectNoControls(line);
  });

  it("prints a task's steps and retries and a recent event's seq without their control characters", async () => {
    const { state } = await taskAt10('u6');
    // What a server's snapshot holds in these fields is what it sent: they were printed as they came.
    const t = state.tasks.t! as unknown as Record<string, unknown> & { recentEvents: Array<Record<string, unknown>> };
    Object.assign(t, { totalSteps: ESC, completedSteps: ESC, retryCount: 1, recentEvents: t.recentEvents.map((e) => ({ ...e, seq: ESC })) });
    const text = renderProgress(state, { recentEvents: 5 }).join('\n');
    expectNoControls(text);
  });

  it('prints names without bidi override and isolate controls, which would show a line in another order than it holds', async () => {
    const tracker = await ProgressTracker.open({ upgradeId: 'u4', planId: 'p', clusterName: 'c' });
    await tracker.startUpgrade();
    // Holds "ko", drawn "ok" by a terminal or viewer that applies bidi (Trojan Source).
    await tracker.addTask('t', 'Rollback \u202eko\u202c \u2067x\u2069 \u200fy');
    const text = renderProgress(tracker.progress).join('\n');
    await tracker.close();
    expect(text).not.toMatch(/[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/);
    expect(text).toContain('Rollback  ko ');
  });

  it('prints the ETA with its date when it is not today, so an ETA days away does not read as later today', async () => {
    const state = { ...(await taskAt10('u3')).state, startedAt: '2026-11-28T12:00:00.000Z' };
    // 10% in one day: nine more days. It printed "eta 12:00:00Z", as if at noon today.
    const overall = (now: string) => renderProgress(state, { now: Date.parse(now) })[1]!;
    expect(overall('2026-11-29T12:00:00.000Z')).toMatch(/ eta 2026-12-08 12:00:00Z$/);
    // 10% in 10 minutes: 90 more, the same day: the time alone.
    expect(renderProgress({ ...state, startedAt: '2026-11-29T10:00:00.000Z' }, { now: Date.parse('2026-11-29T10:10:00.000Z') })[1]).toMatch(/ eta 11:40:00Z$/);
  });

  it('refuses a bar width or a count of recent events that is not a whole number in range', async () => {
    const tracker = await ProgressTracker.open({ upgradeId: 'u2', planId: 'p', clusterName: 'c' });
    await tracker.startUpgrade();
    const state = tracker.progress;
    for (const options of [{ barWidth: -1 }, { barWidth: 0 }, { barWidth: 2.5 }, { barWidth: Number.NaN }, { barWidth: 1001 }, { recentEvents: 0.5 }, { recentEvents: -1 }, { recentEvents: Infinity }, { recentEvents: 1001 }]) {
      expect(() => renderProgress(state, options), JSON.stringify(options)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
    // (bar() refuses a width over 1000 too, but in its own name: the option is named to the caller.)
    expect(() => renderProgress(state, { barWidth: 1001 })).toThrow('renderProgress: barWidth must be a whole number from 1 to 1000');
    expect(renderProgress(state, { barWidth: 1, recentEvents: 0 }).join('\n')).not.toContain('recent:');
    expect(renderProgress(state, { barWidth: 1000, recentEvents: 1000 }).join('\n')).toContain('░'.repeat(1000));
    // The README's defaults: 30 cells, the last 5 events.
    for (let i = 0; i < 7; i++) await tracker.addTask(`t${i}`, `T${i}`);
    const later = tracker.progress;
    expect(renderProgress(later)).toEqual(renderProgress(later, { barWidth: 30, recentEvents: 5 }));
    expect(renderProgress(later)).not.toEqual(renderProgress(later, { recentEvents: 6 }));
    expect(renderProgress(later)).not.toEqual(renderProgress(later, { barWidth: 31 }));
    await tracker.close();
  });

  it("draws the phase, each task under its parent, a task's retries, step and error, the recent events by seq and the upgrade's error", async () => {
    const tracker = await ProgressTracker.open({ upgradeId: 'u7', planId: 'p', clusterName: 'c' });
    await tracker.startUpgrade('Nodes');
    await tracker.addTasks([
      { taskId: 'a', taskName: 'A' },
      { taskId: 'b', taskName: 'B' },
      { taskId: 'a1', taskName: 'A one', parentTaskId: 'a' }, // added after B, drawn under A
      { taskId: 'a1x', taskName: 'd', parentTaskId: 'a1' },
    ]);
    // The events of b and a1x interleave: the recent ones are listed by seq, not task by task.
    await tracker.startTask('b');
    await tracker.startTask('a1x');
    await tracker.failTask('a1x', 'boom');
    await tracker.retryTask('a1x');
    await tracker.advanceTask('a1x', { currentStep: 'draining' });
    await tracker.failTask('b', 'disk full');
    await tracker.failUpgrade('gave up');
    const lines = renderProgress(tracker.progress, { recentEvents: 5 });
    await tracker.close();
    expect(lines[0]).toBe('u7  cluster c  plan p  FAILED  phase: Nodes');
    const tasks = lines.slice(2, 6);
    // Names take 8 cells at least, a level of nesting two more.
    expect(tasks.map((line) => line.slice(0, line.indexOf('░')))).toEqual(['· A        ', '·   A one  ', '▶     d    ', '✗ B        ']);
    expect(tasks.map((line) => line.slice(line.lastIndexOf('░') + 1))).toEqual(['   0.0%', '   0.0%', '   0.0% (retry 1)  draining', '   0.0%  disk full']);
    expect(lines[6]).toBe('recent:');
    expect(lines.slice(7, 12).map((line) => Number(/#(\d+)/.exec(line)?.[1]))).toEqual([8, 9, 10, 11, 12]);
    expect(lines.slice(12)).toEqual(['error: gave up']);
  });

  it('lines up the task bars when a name holds a flag (two regional indicators, drawn in two cells)', async () => {
    const tracker = await ProgressTracker.open({ upgradeId: 'u3', planId: 'p', clusterName: 'c' });
    await tracker.startUpgrade();
    await tracker.addTasks([
      { taskId: 'a', taskName: '\u{1f1ef}\u{1f1f5} Tokyo' },
      { taskId: 'b', taskName: 'Osaka nodes' },
    ]);
    const lines = renderProgress(tracker.progress, { recentEvents: 0 }).filter((line) => line.includes('░') && !line.startsWith('overall'));
    await tracker.close();
    // Cells before the bar, counted as a terminal draws them: a flag (a pair of regional indicators) takes two.
    const at = (line: string) => [...line.slice(0, line.indexOf('░'))].length;
    // Each indicator was counted as a wide emoji: the flag's name took four cells, its bar started two before the others'.
    expect(lines.map(at)).toEqual([at(lines[1]!), at(lines[1]!)]);
  });

  it('lists no recent events with recentEvents: 0, and five by default', async () => {
    const { state } = await taskAt10('u8');
    // `slice(-0)` is the whole list: 0 printed every event the state holds, as if no limit were set.
    expect(renderProgress(state, { recentEvents: 0 })).not.toContain('recent:');
    const tracker = await ProgressTracker.open({ upgradeId: 'u9', planId: 'p', clusterName: 'c' });
    await tracker.startUpgrade();
    await tracker.addTask('t', 'T');
    for (const p of [10, 20, 30, 40, 50, 60]) await tracker.updateTaskProgress('t', p);
    const lines = renderProgress(tracker.progress);
    const last = tracker.progress.lastSeq;
    await tracker.close();
    expect(lines.slice(lines.indexOf('recent:') + 1).map((line) => Number(/#(\d+)/.exec(line)?.[1]))).toEqual([last - 4, last - 3, last - 2, last - 1, last]);
  });
});
