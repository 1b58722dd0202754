import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  applyEvent,
  applyEventInPlace,
  assertAppendState,
  assertHandleArgs,
  assertKnownOptions,
  cloneState,
  estimateCompletion,
  eventsToJson,
  filterRows,
  findCurrentTask,
  isProgressError,
  replayEvents,
  summarize,
  toSummaryRow,
  type ProgressEvent,
  type UpgradeProgress,
} from '../src/index.js';
import { thrown } from '../../../tools/test-utils/src/thrown.js';

// The pure building blocks are exported for stores, sinks and users folding events of their own:
// from JavaScript (or a state parsed from JSON) they can be handed anything. What is not a state, an
// event or a list is refused as INVALID_ARGUMENT naming the function, not as a TypeError from
// somewhere inside it.

const created: ProgressEvent = {
  eventId: 'e1',
  upgradeId: 'u1',
  seq: 1,
  type: 'upgrade.created',
  timestamp: '2026-03-01T10:00:00.000Z',
  status: 'not_started',
  message: 'Upgrade created',
  details: { planId: 'p1', clusterName: 'c1', metadata: {} },
};
const added: ProgressEvent = {
  eventId: 'e2',
  upgradeId: 'u1',
  seq: 2,
  type: 'task.added',
  timestamp: '2026-03-01T10:00:01.000Z',
  status: 'not_started',
  message: 'Task added',
  taskId: 'a',
  details: { taskName: 'A' },
};
const state = (): UpgradeProgress => replayEvents([created, added])!;

const notStates: Array<[string, unknown]> = [
  ['null', null],
  ['a number', 42],
  ['a string', 'u1'],
  ['an array', []],
  ['an array with a tasks field', Object.assign([], { tasks: {} })],
  ['an object without tasks', { upgradeId: 'u1' }],
  ['an object whose tasks is null', { upgradeId: 'u1', tasks: null }],
  ['an object whose tasks is an array', { upgradeId: 'u1', tasks: [] }],
];

function refused(fn: () => unknown, name: string): void {
  const caught = thrown(fn);
  expect(isProgressError(caught, 'INVALID_ARGUMENT'), `${name}: ${String(caught)}`).toBe(true);
  expect(caught.message).toContain(`${name}()`);
}

describe('the building blocks given what is not a state', () => {
  const byState: Array<[string, (s: unknown) => unknown]> = [
    ['applyEvent', (s) => applyEvent(s as UpgradeProgress, { ...added, seq: 3, taskId: 'b' })],
    ['applyEventInPlace', (s) => applyEventInPlace(s as UpgradeProgress, { ...added, seq: 3, taskId: 'b' })],
    ['cloneState', (s) => cloneState(s as UpgradeProgress)],
    ['replayEvents', (s) => replayEvents([], s as UpgradeProgress)],
    ['summarize', (s) => summarize(s as UpgradeProgress)],
    ['estimateCompletion', (s) => estimateCompletion(s as UpgradeProgress)],
    ['findCurrentTask', (s) => findCurrentTask(s as UpgradeProgress)],
    ['toSummaryRow', (s) => toSummaryRow(s as UpgradeProgress)],
  ];
  for (const [name, call] of byState) {
    it.each(notStates)(`${name}() refuses %s as INVALID_ARGUMENT`, (_, value) => refused(() => call(value), name));
    it(`${name}() still takes a state`, () => {
      expect(() => call(state())).not.toThrow();
    });
  }

  it('a task that is not an object is refused by the functions that read every task', () => {
    const broken = { ...state(), tasks: { a: null } } as unknown as UpgradeProgress;
    refused(() => summarize(broken), 'summarize');
    refused(() => findCurrentTask(broken), 'findCurrentTask');
    refused(() => cloneState(broken), 'cloneState');
    refused(() => applyEvent(broken, { ...added, seq: 3, taskId: 'b' }), 'applyEvent');
  });
});

describe('applyEventInPlace() given a frozen state (as callbacks and sinks are handed)', () => {
  it.each([
    ['the state', (s: UpgradeProgress) => Object.freeze(s)],
    ['its tasks', (s: UpgradeProgress) => (Object.freeze(s.tasks), s)],
  ])('refuses it as INVALID_ARGUMENT when %s is frozen, and changes nothing; applyEvent() folds a copy', (_, freeze) => {
    const s = freeze(state());
    const before = JSON.stringify(s);
    const next = { ...added, seq: 3, taskId: 'b', details: { taskName: 'B' } };
    refused(() => applyEventInPlace(s, next), 'applyEventInPlace');
    expect(JSON.stringify(s)).toBe(before);
    expect(applyEvent(s, next).tasks.b).toMatchObject({ taskName: 'B' });
  });
});

describe('the building blocks given what is not an event or a list', () => {
  it.each([
    ['null', null],
    ['a string', 'task.added'],
    ['undefined', undefined],
  ])('applyEvent() and applyEventInPlace() refuse %s as the event, and change nothing', (_, value) => {
    const s = state();
    const before = JSON.stringify(s);
    refused(() => applyEvent(s, value as unknown as ProgressEvent), 'applyEvent');
    refused(() => applyEventInPlace(s, value as unknown as ProgressEvent), 'applyEventInPlace');
    refused(() => applyEventInPlace(undefined, value as unknown as ProgressEvent), 'applyEventInPlace');
    expect(JSON.stringify(s)).toBe(before);
  });

  it.each([
    ['null', null],
    ['a number', 3],
    ['a string (whose characters would be folded as events)', 'abc'],
    ['an object', {}],
  ])('replayEvents() refuses %s as the events', (_, value) => {
    refused(() => replayEvents(value as unknown as ProgressEvent[]), 'replayEvents');
  });

  it('replayEvents() still reports a stored event that is not one as DATA_CORRUPTED', () => {
    const caught = thrown(() => replayEvents([created, null as unknown as ProgressEvent]));
    expect(isProgressError(caught, 'DATA_CORRUPTED'), String(caught)).toBe(true);
  });

  it.each([
    ['null', null],
    ['undefined', undefined],
    ['an object', {}],
  ])('eventsToJson() and filterRows() refuse %s as the list', (_, value) => {
    refused(() => eventsToJson(value as unknown as ProgressEvent[]), 'eventsToJson');
    refused(() => filterRows(value as unknown as []), 'filterRows');
  });

  it('filterRows() refuses a row that is not an object', () => {
    refused(() => filterRows([null as never]), 'filterRows');
    refused(() => filterRows([42 as never]), 'filterRows');
    refused(() => filterRows([toSummaryRow(state()), 'u1' as never]), 'filterRows');
  });

  it.each([
    ['null', null],
    ['a string', 'x'],
  ])('assertKnownOptions() refuses %s as its check, naming itself', (_, check) => {
    refused(() => assertKnownOptions({}, ['a'], check as never), 'assertKnownOptions');
  });
});

describe('assertAppendState() given the last seq of the batch', () => {
  // A store that takes its list() row from the state passes the batch's last seq: a state from
  // before the events (or one ahead of them) would list what load() contradicts.
  it('refuses a state at another seq with INVALID_ARGUMENT, and takes the one at that seq', () => {
    const after = state();
    expect(() => assertAppendState('S', 'u1', after, 2)).not.toThrow();
    for (const lastSeq of [1, 3]) {
      const caught = thrown(() => assertAppendState('S', 'u1', after, lastSeq));
      expect(isProgressError(caught, 'INVALID_ARGUMENT'), String(caught)).toBe(true);
      expect(caught.message).toContain(`whose last seq is ${lastSeq}, got a state at seq 2`);
    }
    // Without it, the seq is not compared (a store that takes its row from the events).
    expect(() => assertAppendState('S', 'u1', after)).not.toThrow();
  });
});

describe('summarize() and estimateCompletion() given a now that is not a time', () => {
  // An upgrade half done, started an hour before `now`: the estimate is an hour after it.
  const running = (): UpgradeProgress => ({ ...state(), status: 'in_progress', startedAt: '2026-03-01T10:00:00.000Z', overallPercentage: 50 });
  const now = Date.parse('2026-03-01T11:00:00.000Z');

  it.each([
    ['null (an estimate in 1970)', null],
    ['a date string (no estimate, without a word)', '2026-03-01T11:00:00.000Z'],
    ['NaN', Number.NaN],
    ['Infinity', Infinity],
    ['a Symbol (a TypeError)', Symbol('now')],
    ['a Date', new Date(now)],
    ['a number past what a Date holds (no estimate, without a word)', 8.64e15 + 1],
  ])('refuses %s as INVALID_ARGUMENT', (_, value) => {
    refused(() => estimateCompletion(running(), value as never), 'estimateCompletion');
    refused(() => summarize(running(), value as never), 'summarize');
  });

  it('still estimates from a number, and from the clock when now is left out', () => {
    expect(estimateCompletion(running(), now)).toBe('2026-03-01T12:00:00.000Z');
    expect(summarize(running(), now).estimatedCompletionAt).toBe('2026-03-01T12:00:00.000Z');
    expect(estimateCompletion(running(), undefined)).toEqual(expect.any(String));
  });
});

describe('assertHandleArgs(), the check of a sink\'s handle() arguments', () => {
  const ok = state();
  it.each([
    ['a null event', null, ok],
    ['an event without a valid upgradeId', { ...added, upgradeId: 'u 1' }, ok],
    ['an event of an unknown type', { ...added, type: 'task.exploded' }, ok],
    ['an event with seq 0', { ...added, seq: 0 }, ok],
    ['an event with seq 1.5', { ...added, seq: 1.5 }, ok],
    ['a null state', added, null],
    ['an array as the state', added, []],
    ['the state of another upgrade', added, { ...ok, upgradeId: 'u2' }],
    ['an event whose reads throw', new Proxy({}, { get: () => { throw new Error('trap'); } }), ok],
  ])('refuses %s as INVALID_ARGUMENT naming the source and the function', (_, event, s) => {
    expect(() => assertHandleArgs('@progress/x', event, s)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^\[@progress\/x\] handle\(\)/) }));
    expect(() => assertHandleArgs('@progress/x', event, s, 'buildDetail')).toThrow(/^\[@progress\/x\] buildDetail\(\)/);
  });
  it('takes an event and the state of its upgrade', () => {
    expect(() => assertHandleArgs('@progress/x', added, ok)).not.toThrow();
  });
});

describe('applyEvent() given a state whose tasks name each other as parents', () => {
  it('folds the event rather than walking the parents for ever (damaged data, as a store may load it)', async () => {
    // In a process of its own (test/child/parent-cycle.ts): a fold that looped would block this one for good.
    const here = dirname(fileURLToPath(import.meta.url));
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', '--conditions=@progress/source', join(here, 'child', 'parent-cycle.ts')], { cwd: join(here, '..'), timeout: 25_000 }, (err, out, errOut) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout: out, stderr: errOut });
      });
    });
    expect(stderr).toBe('');
    expect(stdout.trim()).toBe('folded in_progress');
    expect(code).toBe(0);
  }, 40_000);
});
