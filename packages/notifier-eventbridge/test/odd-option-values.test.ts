import { describe, expect, it } from 'vitest';
import { EventBridgeNotifier, type EventBridgeNotifierOptions } from '../src/index.js';

// Values that a bare String() or JSON.stringify() cannot render: building the refusal's message threw
// a TypeError of its own ("Do not know how to serialize a BigInt", "Cannot convert object to
// primitive value") instead of the INVALID_ARGUMENT it was writing.
const unrenderable: [string, unknown][] = [
  ['a bigint', 10n],
  ['an object without prototype', Object.create(null)],
  ['an object whose toJSON throws', { toJSON() { throw new Error('toJSON'); } }],
];

describe('an option value no message can print is refused with INVALID_ARGUMENT all the same', () => {
  for (const [option, make] of [
    ['region', (v: unknown) => ({ busName: 'b', region: v })],
    ['clientConfig.region', (v: unknown) => ({ busName: 'b', clientConfig: { region: v } })],
    ['dropPolicy', (v: unknown) => ({ busName: 'b', region: 'eu-west-1', dropPolicy: v })],
    ['eventTypes', (v: unknown) => ({ busName: 'b', region: 'eu-west-1', eventTypes: [v] })],
  ] as const) {
    it(option, () => {
      for (const [what, value] of unrenderable) {
        expect(() => new EventBridgeNotifier(make(value) as EventBridgeNotifierOptions), what).toThrow(
          expect.objectContaining({ name: 'ProgressError', code: 'INVALID_ARGUMENT', message: expect.stringContaining(option.replace('clientConfig.', '')) }),
        );
      }
    });
  }
});

describe('a clientConfig that is not an object', () => {
  // It was spread into the SDK client's settings: a string's characters, a number's nothing, so the
  // settings the user meant (an endpoint, credentials) were left out without a word.
  it.each([null, 42, 'https://events.local', ['eu-west-1'], () => ({}), true])('%s is refused with INVALID_ARGUMENT naming clientConfig', (value) => {
    expect(() => new EventBridgeNotifier({ busName: 'b', region: 'eu-west-1', clientConfig: value } as unknown as EventBridgeNotifierOptions)).toThrow(
      expect.objectContaining({ name: 'ProgressError', code: 'INVALID_ARGUMENT', message: expect.stringContaining('clientConfig must be an object') }),
    );
  });
});

describe('a nested option that cannot be read', () => {
  // The options object itself was refused as unreadable; eventTypes, retry or clientConfig threw
  // what their getter or Proxy trap threw.
  const trap = (): never => {
    throw new Error('trap');
  };
  const cases: Array<[string, Record<string, unknown>]> = [
    ['eventTypes', { eventTypes: new Proxy([], { get: trap }) }],
    ['retry', { retry: new Proxy({}, { get: trap, ownKeys: trap, getPrototypeOf: trap }) }],
    ['clientConfig', { clientConfig: Object.defineProperty({}, 'endpoint', { get: trap, enumerable: true }) }],
  ];
  it.each(cases)('%s is refused with INVALID_ARGUMENT', (_, extra) => {
    expect(() => new EventBridgeNotifier({ busName: 'b', region: 'eu-west-1', ...extra } as unknown as EventBridgeNotifierOptions)).toThrow(
      expect.objectContaining({ name: 'ProgressError', code: 'INVALID_ARGUMENT', message: expect.stringContaining('could not be read') }),
    );
  });
});
