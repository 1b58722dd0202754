import { describe, expect, it } from 'vitest';
import { isProgressError, type EventType } from '@progress/core';
import { DEFAULT_EVENT_TYPES, LEGACY_DETAIL_KEYS, backoffDelay, buildDetail, classifyRequestError, entrySize, fitDetail, formatTimedelta, keptKeys, trimDetail } from '../src/index.js';
import { fakeEvent, fakeState } from './fixtures.js';
import { thrown } from '../../../tools/test-utils/src/thrown.js';

// The functions the notifier is made of are exported "for tools and tests" (README). From
// JavaScript they can be handed anything: what does not fit is refused with INVALID_ARGUMENT naming
// the function, not a TypeError, a RangeError or Node's ERR_INVALID_ARG_TYPE from inside it.

const detail = buildDetail(fakeEvent(2), fakeState);
const cases: Array<[string, () => unknown]> = [
  ['formatTimedelta(NaN)', () => formatTimedelta(Number.NaN)],
  ['formatTimedelta("5")', () => formatTimedelta('5' as never)],
  ['formatTimedelta(Infinity)', () => formatTimedelta(Infinity)],
  ['formatTimedelta(Symbol)', () => formatTimedelta(Symbol('x') as never)],
  ['keptKeys(undefined)', () => keptKeys(undefined as never)],
  ['keptKeys(42)', () => keptKeys(42 as never)],
  ['trimDetail(42, detail)', () => trimDetail(42 as never, detail)],
  ['trimDetail(type, null)', () => trimDetail('task.started', null as never)],
  ['trimDetail(type, "x")', () => trimDetail('task.started', 'x' as never)],
  ['trimDetail(type, [])', () => trimDetail('task.started', [] as never)],
  ['fitDetail(type, undefined, 100)', () => fitDetail('task.started', undefined as never, 100)],
  ['fitDetail(type, detail, NaN)', () => fitDetail('task.started', detail, Number.NaN)],
  ['fitDetail(type, detail, "100")', () => fitDetail('task.started', detail, '100' as never)],
  ['fitDetail(type, detail, -1)', () => fitDetail('task.started', detail, -1)],
  ['buildDetail(null, state)', () => buildDetail(null as never, fakeState)],
  ['buildDetail({}, state)', () => buildDetail({} as never, fakeState)],
  ['buildDetail(event, undefined)', () => buildDetail(fakeEvent(2), undefined as never)],
  ['buildDetail(event without details, state)', () => buildDetail({ ...fakeEvent(2), details: undefined } as never, fakeState)],
  ['buildDetail(task event, state without tasks)', () => buildDetail(fakeEvent(2), { ...fakeState, tasks: undefined } as never)],
  ['entrySize(undefined)', () => entrySize(undefined as never)],
  ['entrySize({ Detail: 42 })', () => entrySize({ Detail: 42 } as never)],
  ['entrySize({ DetailType: 42 })', () => entrySize({ DetailType: 42 } as never)],
  ['entrySize({ Resources: "arn" })', () => entrySize({ Resources: 'arn' } as never)],
  ['entrySize({ Resources: [42] })', () => entrySize({ Resources: [42] } as never)],
  ['backoffDelay(1, undefined)', () => backoffDelay(1, undefined as never)],
  ['backoffDelay("1", retry)', () => backoffDelay('1' as never, { baseDelayMs: 10, maxDelayMs: 100 })],
  ['backoffDelay(1, { baseDelayMs: "10" })', () => backoffDelay(1, { baseDelayMs: '10', maxDelayMs: 100 } as never)],
  ['backoffDelay(1, retry, 42)', () => backoffDelay(1, { baseDelayMs: 10, maxDelayMs: 100 }, 42 as never)],
  ['classifyRequestError(err, "5")', () => classifyRequestError(new Error('x'), '5' as never)],
  ['classifyRequestError(err, Symbol)', () => classifyRequestError(new Error('x'), Symbol('x') as never)],
];

describe('the exported functions of the notifier with arguments that do not fit', () => {
  it.each(cases)('%s is refused with INVALID_ARGUMENT naming the function', (name, run) => {
    const err = thrown(run);
    expect(isProgressError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`^\\[@progress/notifier-eventbridge\\] ${name.slice(0, name.indexOf('('))}\\(\\)`));
  });

  it('still gives the same answers to what fits', () => {
    expect(formatTimedelta(62_345)).toBe('0:01:02.345000');
    expect(keptKeys('task.started')).toContain('task_id');
    expect(trimDetail('task.started', detail)).toMatchObject({ upgrade_id: 'u1', truncated: true });
    expect(fitDetail('task.started', detail, 10_000)).toBe(JSON.stringify(detail));
    expect(fitDetail('task.started', detail, Infinity)).toBe(JSON.stringify(detail));
    expect(entrySize({ Source: 'ab', DetailType: 'c', Detail: '{}', Resources: ['r'] })).toBe(6);
    expect(entrySize({ Source: 'é€' })).toBe(5); // a Source is counted in UTF-8 bytes too
    expect(entrySize({ DetailType: 'é€', Resources: ['é', '€'] })).toBe(10); // and so are a DetailType and the Resources
    expect(backoffDelay(3, { baseDelayMs: 10, maxDelayMs: 100 }, () => 0.5)).toBe(20);
    expect(classifyRequestError(new Error('x')).retryable).toBe(true);
  });
});

describe('the retry policy and trimming, exported', () => {
  it('classifyRequestError goes by the SDK\'s clockSkewCorrected flag when no clock correction is known, else by the correction alone', () => {
    const refusal = (clockSkewCorrected: boolean) =>
      Object.assign(new Error('Signature expired'), { name: 'InvalidSignatureException', $metadata: { httpStatusCode: 400, clockSkewCorrected } });
    // A client without a clock offset: the flag decides.
    expect(classifyRequestError(refusal(true))).toMatchObject({ retryable: true, code: 'InvalidSignatureException', status: 400 });
    expect(classifyRequestError(refusal(false))).toMatchObject({ retryable: false, code: 'InvalidSignatureException', status: 400 });
    // A known correction: of minutes (either way) retried, flagged or not; none, given up although flagged.
    expect(classifyRequestError(refusal(false), -300_000).retryable).toBe(true);
    expect(classifyRequestError(refusal(true), 0).retryable).toBe(false);
  });

  it('classifyRequestError retries the server-side failures of EventBridge\'s JSON under any status', () => {
    for (const name of ['InternalFailure', 'InternalException', 'ServiceUnavailable', 'ServiceUnavailableException']) {
      expect(classifyRequestError(Object.assign(new Error('x'), { name, $metadata: { httpStatusCode: 400 } })), name).toMatchObject({ retryable: true, code: name });
    }
  });

  it('backoffDelay doubles with every failed attempt up to maxDelayMs, however many attempts', () => {
    const wide = { baseDelayMs: 1, maxDelayMs: 2_000_000 };
    expect(backoffDelay(21, wide, () => 0.5)).toBe(2 ** 19); // half of 2^20
    expect(backoffDelay(22, wide, () => 0.5)).toBe(1_000_000); // half of the cap
  });

  it('trimDetail keeps the kept keys the detail has, and adds none it lacks', () => {
    expect(trimDetail('task.started', detail)).toStrictEqual({ upgrade_id: 'u1', cluster_name: 'prod', task_id: 't1', task_name: 'Task one', event_id: fakeEvent(2).eventId, seq: 2, truncated: true });
  });
});

describe('buildDetail with details that are not text', () => {
  it('sends a reason, phase or error message that is not a string as the state has it (reason: null), never the raw value', () => {
    const state = { ...fakeState, currentPhase: 'Init', errorMessage: 'from the state' } as typeof fakeState;
    expect(buildDetail(fakeEvent(1, 'upgrade.paused', { reason: 42 }), state)).toMatchObject({ reason: null });
    expect(buildDetail(fakeEvent(2, 'task.skipped', { reason: { why: 'x' } }), state)).toMatchObject({ reason: null });
    expect(buildDetail(fakeEvent(3, 'upgrade.started', { phase: 7 }), state)).toMatchObject({ phase: 'Init' });
    expect(buildDetail(fakeEvent(4, 'upgrade.failed', { errorMessage: ['x'] }), state)).toMatchObject({ error_message: 'from the state' });
  });
});

describe('the exported constants', () => {
  it('cannot be changed at run time: not DEFAULT_EVENT_TYPES, nor the key lists of LEGACY_DETAIL_KEYS', () => {
    expect(() => (DEFAULT_EVENT_TYPES as EventType[]).push('task.progress')).toThrow(TypeError);
    expect(() => (LEGACY_DETAIL_KEYS['upgrade.completed'] as string[]).pop()).toThrow(TypeError);
    expect(() => ((LEGACY_DETAIL_KEYS as Record<string, unknown>)['task.retried'] = ['upgrade_id'])).toThrow(TypeError);
    expect(DEFAULT_EVENT_TYPES).not.toContain('task.progress');
    expect(keptKeys('upgrade.completed')).toEqual(['upgrade_id', 'cluster_name', 'duration', 'event_id', 'seq', 'duration_ms']);
    expect(keptKeys('task.retried')).toEqual(['upgrade_id', 'cluster_name', 'task_id', 'task_name', 'event_id', 'seq', 'duration_ms']);
  });
});
