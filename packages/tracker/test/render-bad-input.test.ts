import { ProgressTracker } from '@progress/core';
import { describe, expect, it } from 'vitest';
import { bar, renderEventLine, renderProgress } from '../src/render.js';

const refused = expect.objectContaining({ name: 'ProgressError', code: 'INVALID_ARGUMENT' });

describe('the renderer refuses a bad width with INVALID_ARGUMENT', () => {
  it('bar(): a width that is not a whole number of cells from 0 to 1000 (a negative or infinite one threw a RangeError)', () => {
    for (const width of [-1, 1.5, Infinity, Number.NaN, 2 ** 53, 1001, '30', 10n]) {
      expect(() => bar(50, width as number), String(width)).toThrow(refused);
    }
    expect(bar(50, 4)).toBe('██░░');
    expect(bar(50, 0)).toBe('');
    expect(bar(120)).toBe('█'.repeat(30));
    expect(bar(-20, 4)).toBe('░░░░');
    expect(bar(62.5, 4)).toBe('███░'); // 2.5 cells, rounded
  });

  it('renderProgress(): an option no message can print (an object without prototype) is refused all the same', async () => {
    const tracker = await ProgressTracker.open({ upgradeId: 'render-bad', planId: 'p', clusterName: 'c' });
    const state = tracker.progress;
    // String() of it threw "Cannot convert object to primitive value" while the message was built.
    for (const option of ['barWidth', 'recentEvents']) {
      expect(() => renderProgress(state, { [option]: Object.create(null) }), option).toThrow(refused);
    }
    await tracker.close();
  });

  it('renderProgress(): a misspelt option, options that are not an object, a color that is not a boolean or a now that is not a finite number', async () => {
    const tracker = await ProgressTracker.open({ upgradeId: 'render-opts', planId: 'p', clusterName: 'c' });
    const state = tracker.progress;
    // `colour: true` and `barwidth: 10` were left out without a word; `now: NaN` dropped the ETA
    // without one, and `now: 10n` threw a bare TypeError.
    for (const options of [{ colour: true }, { barwidth: 10 }, { color: 'yes' }, { now: Number.NaN }, { now: '2026-01-01' }, { now: 10n }, 5, 'x', [], () => {}]) {
      expect(() => renderProgress(state, options as never), String(JSON.stringify(options, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)))).toThrow(refused);
    }
    expect(() => renderProgress(state, { colour: true } as never)).toThrow(/did you mean "color"/);
    // No options, or null for none, as everywhere else.
    expect(renderProgress(state, null as never)).toEqual(renderProgress(state));
    expect(renderProgress(state, { color: undefined, now: Date.now() })[0]).toContain('render-opts');
    await tracker.close();
  });
});

describe('renderEventLine() refuses what is not an event with INVALID_ARGUMENT', () => {
  it('an event or a state that is not an object (null threw a TypeError; 42 printed "undefined #undefined ...")', async () => {
    const tracker = await ProgressTracker.open({ upgradeId: 'render-line', planId: 'p', clusterName: 'c' });
    const event = await tracker.startUpgrade();
    const state = tracker.progress;
    for (const bad of [null, undefined, 42, 'upgrade.started', [], () => {}]) {
      expect(() => renderEventLine(bad as never, state), String(bad)).toThrow(refused);
    }
    for (const bad of [42, 'state', [], () => {}]) {
      expect(() => renderEventLine(event, bad as never), String(bad)).toThrow(refused);
    }
    // Its fields may come from a server: odd ones are printed safely, as before.
    expect(renderEventLine({ ...event, message: '\u001b[31mred' }, state)).toContain('render-line upgrade.started');
    expect(renderEventLine(event)).not.toContain('overall=');
    expect(renderEventLine(event, null as never)).toBe(renderEventLine(event));
    await tracker.close();
  });
});
