import { EventFactory } from '../src/testing/index.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { eventToJson, eventsToJson } from '../src/event-json.js';

// eventsToJson and eventToJson must equal JSON.stringify byte for byte, whatever they are given.

const plain = fc.oneof(fc.constantFrom('step', 'Task started', 'Progress: 50%', "it's 100 %", 'a/b <c> & d', ''), fc.stringMatching(/^[ -!#-[\]-~]{0,12}$/));
const text = fc.oneof(
  { weight: 12, arbitrary: plain },
  { weight: 2, arbitrary: fc.string() },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme' }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary' }) },
  { weight: 1, arbitrary: fc.constantFrom('"', '\\', '\n', '\u0000', '\u001f', '\u007f', '\u2028', '\ud800', '\udfff', '😀', 'é', '') },
);
const number = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(-0, 1e21, 5e-324, Number.NaN, Number.POSITIVE_INFINITY));
const value = fc.oneof(text, number, fc.constant(undefined), fc.constant(null), fc.boolean(), fc.constant(new Date(0)), fc.constant(() => 1), fc.object({ maxDepth: 2 }));
const details = fc.oneof(
  { weight: 4, arbitrary: fc.constant({}) },
  { weight: 3, arbitrary: fc.object({ maxDepth: 2 }) },
  { weight: 1, arbitrary: fc.constantFrom(null, undefined, [], [1, 'a'], new Date(0), Object.create(null) as object, { toJSON: () => 'x' }) },
  // toJSON on the details: returning undefined, depending on its key, or not enumerable.
  { weight: 1, arbitrary: fc.constantFrom({ toJSON: () => undefined }, { toJSON: (key: string) => key }, Object.defineProperty({}, 'toJSON', { value: () => 'x' }) as object) },
);
const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 3 });
/** Mostly undefined: a perturbation applied to about one event in eight. */
const sometimes = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 7, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });

const event = fc
  .record({
    eventId: fc.oneof({ weight: 4, arbitrary: fc.uuid() }, { weight: 1, arbitrary: text }),
    seq: fc.oneof({ weight: 5, arbitrary: fc.nat() }, { weight: 1, arbitrary: number }),
    upgradeId: fc.oneof({ weight: 4, arbitrary: fc.constantFrom('u1', 'a.b:c-d_e') }, { weight: 1, arbitrary: text }),
    type: fc.constantFrom('task.progress', 'upgrade.started', 'task.added'),
    timestamp: fc.oneof({ weight: 4, arbitrary: fc.constant('2026-11-28T14:00:00.000Z') }, { weight: 1, arbitrary: text }),
    status: fc.constantFrom('in_progress', 'completed'),
    message: text,
    details,
    taskId: optional(fc.oneof({ weight: 4, arbitrary: fc.constantFrom('t1', 'drain') }, { weight: 1, arbitrary: text })),
    taskType: optional(text),
    percentage: optional(number),
  })
  .chain((base) =>
    fc.record({
      base: fc.constant(base),
      // Keys present with the value undefined, dropped, reordered or added; odd values; a prototype.
      keepUndefined: fc.boolean(),
      drop: sometimes(fc.constantFrom(...Object.keys(base))),
      swap: sometimes(fc.tuple(fc.nat(10), fc.nat(10))),
      extra: sometimes(fc.tuple(fc.constantFrom('extra', 'toJSON', '0', 'seq2'), value)),
      odd: sometimes(fc.tuple(fc.constantFrom(...Object.keys(base)), value)),
      proto: fc.oneof({ weight: 12, arbitrary: fc.constant('plain') }, { weight: 1, arbitrary: fc.constantFrom('null', 'class') }),
      // A key made non-enumerable (JSON.stringify leaves it out).
      hidden: sometimes(fc.constantFrom('taskId', 'taskType', 'percentage', 'message', 'details')),
    }),
  )
  .map(({ base, keepUndefined, drop, swap, extra, odd, proto, hidden }) => {
    let entries = Object.entries(base).filter(([k, v]) => k !== drop && (keepUndefined || v !== undefined));
    if (swap && entries.length > 1) {
      const [i, j] = [swap[0] % entries.length, swap[1] % entries.length];
      [entries[i], entries[j]] = [entries[j]!, entries[i]!];
    }
    if (odd) entries = entries.map(([k, v]) => (k === odd[0] ? [k, odd[1]] : [k, v]));
    if (extra) entries.push([extra[0], extra[0] === 'toJSON' ? () => 'replaced' : extra[1]]);
    const target = proto === 'null' ? (Object.create(null) as Record<string, unknown>) : proto === 'class' ? (new (class Event {})() as Record<string, unknown>) : {};
    for (const [k, v] of entries) target[k] = v;
    if (hidden && Object.hasOwn(target, hidden)) Object.defineProperty(target, hidden, { enumerable: false });
    return target;
  });

const stringify = (events: unknown[]): { json?: string; error?: string } => {
  try {
    return { json: JSON.stringify(events) };
  } catch (err) {
    return { error: (err as Error).name };
  }
};
const ours = (events: unknown[]): { json?: string; error?: string } => {
  try {
    return { json: eventsToJson(events as never) };
  } catch (err) {
    return { error: (err as Error).name };
  }
};
const oneByOne = (events: unknown[]): { json?: string; error?: string } => {
  try {
    return { json: `[${events.map((e) => eventToJson(e as never)).join(',')}]` };
  } catch (err) {
    return { error: (err as Error).name };
  }
};

describe('eventsToJson and eventToJson', () => {
  it('equals JSON.stringify for the events a tracker makes', () => {
    const f = new EventFactory('json-1');
    const events = f.batch(200);
    expect(eventsToJson(events)).toBe(JSON.stringify(events));
    for (const e of events) expect([eventsToJson([e]), eventToJson(e)]).toEqual([JSON.stringify([e]), JSON.stringify(e)]);
  });

  it('equals JSON.stringify (or throws the same error) for any array of event-like values', () => {
    fc.assert(
      fc.property(fc.oneof({ weight: 4, arbitrary: event.map((e) => [e]) }, { weight: 1, arbitrary: fc.array(event, { minLength: 2, maxLength: 4 }) }), (events) => {
        const expected = stringify(events);
        expect(ours(events)).toEqual(expected);
        // One by one: the same, where JSON.stringify would write every event (it writes undefined or a function in an array as null).
        if (events.every((e) => e !== undefined && typeof e !== 'function')) expect(oneByOne(events)).toEqual(expected);
      }),
      { numRuns: 4000 },
    );
  });

  it('equals JSON.stringify while Object.prototype has an enumerable key', () => {
    const f = new EventFactory('json-2');
    const events = f.batch(5).map((e) => ({ ...e }));
    delete (events[4] as { percentage?: number }).percentage;
    const proto = Object.prototype as Record<string, unknown>;
    proto.percentage = 7;
    try {
      expect(eventsToJson(events)).toBe(JSON.stringify(events));
      expect(eventToJson(events[4]!)).toBe(JSON.stringify(events[4]));
    } finally {
      delete proto.percentage;
    }
  });

  it('equals JSON.stringify for an event whose prototype (not Object.prototype) has an enumerable key (JSON leaves inherited keys out)', () => {
    const f = new EventFactory('json-4');
    const events = f.batch(3).map((e) => {
      const { percentage: _, ...own } = e;
      return Object.assign(Object.create({ percentage: 7 }) as object, own) as typeof e;
    });
    expect(eventsToJson(events)).toBe(JSON.stringify(events));
    for (const e of events) expect(eventToJson(e)).toBe(JSON.stringify(e));
  });

  it('equals JSON.stringify for an event whose own toJSON is not enumerable (for...in does not list it)', () => {
    const f = new EventFactory('json-3');
    const events = f.batch(3).map((e) => ({ ...e }));
    Object.defineProperty(events[1], 'toJSON', { value: () => ({ replaced: true }) });
    expect(eventToJson(events[1]!)).toBe('{"replaced":true}');
    expect(eventsToJson(events)).toBe(JSON.stringify(events));
  });

  it('refuses a value that has no JSON text, one by one (JSON.stringify would give undefined)', () => {
    for (const value of [undefined, () => 1, Symbol('s'), { toJSON: () => undefined }]) {
      expect(() => eventToJson(value as never)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
    expect(eventToJson(null as never)).toBe('null');
  });

  it('takes the generic path for values that are not objects', () => {
    for (const events of [[null], [undefined], [1], ['x'], [[1, 2]]]) expect(eventsToJson(events as never)).toBe(JSON.stringify(events));
  });
});
