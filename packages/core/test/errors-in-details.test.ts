import { describe, expect, it } from 'vitest';
import { MemoryStore, ProgressTracker, describeValue } from '../src/index.js';
import { expectCode } from './helpers.js';

// An Error's name, message and cause are not enumerable: JSON makes `{ error: err }` into
// `{ error: {} }`, and a failure passed to failTask() as the Error a catch block holds was refused,
// so that the failure was recorded nowhere. A Map or a Set inside details was stored as `{}`.

const open = (store = new MemoryStore()) => ProgressTracker.open({ upgradeId: 'u1', planId: 'p1', clusterName: 'c1', store });

class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

describe('an Error inside details or metadata', () => {
  it('is recorded with its name, message, own fields and cause, at any depth (not its stack)', async () => {
    const store = new MemoryStore();
    const t = await open(store);
    await t.addTask('a', 'A');
    const root = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED', port: 443 });
    const err = new HttpError('upstream failed', 502);
    (err as { cause?: unknown }).cause = root;
    const event = await t.updateTaskProgress('a', 10, 'm', { attempt: 2, error: err, list: [new TypeError('bad')] });
    const expected = {
      attempt: 2,
      error: { name: 'HttpError', message: 'upstream failed', status: 502, cause: { name: 'Error', message: 'connect ECONNREFUSED', code: 'ECONNREFUSED', port: 443 } },
      list: [{ name: 'TypeError', message: 'bad' }],
    };
    expect(event.details).toEqual(expected);
    expect(JSON.stringify(event.details)).not.toContain('stack');
    const stored: unknown[] = [];
    for await (const e of store.readEvents('u1', 0)) stored.push(e);
    expect(stored.at(-1)).toMatchObject({ details: expected });
    await t.close();
  });

  it('given as the details themselves, or as metadata, is recorded the same way', async () => {
    const t = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p1', clusterName: 'c1', metadata: { lastError: new RangeError('too far') } });
    expect(t.progress.metadata).toEqual({ lastError: { name: 'RangeError', message: 'too far' } });
    await t.addTask('a', 'A');
    const event = await t.updateTaskProgress('a', 10, 'm', new Error('as details') as unknown as Record<string, unknown>);
    expect(event.details).toEqual({ name: 'Error', message: 'as details' });
    await t.close();
  });

  it('ends a cause that loops back (recorded once more, without its fields), and an AggregateError keeps its errors', async () => {
    const t = await open();
    await t.addTask('a', 'A');
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    const event = await t.updateTaskProgress('a', 10, 'm', { a, all: new AggregateError([new Error('x')], 'two failed') });
    expect(event.details).toEqual({
      a: { name: 'Error', message: 'a', cause: { name: 'Error', message: 'b', cause: { name: 'Error', message: 'a' } } },
      all: { name: 'AggregateError', message: 'two failed', errors: [{ name: 'Error', message: 'x' }] },
    });
    await t.close();
  });

  it('a Map or a Set at any depth is refused, naming its key, and nothing is recorded', async () => {
    const t = await open();
    await t.addTask('a', 'A');
    await expect(t.updateTaskProgress('a', 10, 'm', { nodes: new Map([['n1', 'ready']]) })).rejects.toThrow(/details\.nodes is a Map: JSON keeps none of its entries/);
    await expect(t.updateTaskProgress('a', 10, 'm', { deep: [{ seen: new Set(['x']) }] })).rejects.toThrow(/details\.deep\[0\]\.seen is a Set/);
    await expectCode(() => ProgressTracker.open({ upgradeId: 'u2', planId: 'p1', clusterName: 'c1', metadata: { m: new WeakMap() } }), 'INVALID_ARGUMENT');
    expect(t.progress.tasks.a!.percentage).toBe(0);
    expect(t.progress.lastSeq).toBe(2);
    await t.close();
  });
});

describe('failTask() and failUpgrade() given an Error', () => {
  it('record its message as the error message, and its name, own fields and cause as details.error', async () => {
    const store = new MemoryStore();
    const t = await open(store);
    await t.addTask('a', 'A');
    await t.startTask('a');
    const err = Object.assign(new Error('node group did not drain', { cause: new Error('timeout') }), { code: 'DRAIN_TIMEOUT' });
    const event = await t.failTask('a', err);
    expect(event.message).toBe('Task failed: node group did not drain');
    expect(event.details).toEqual({ errorMessage: 'node group did not drain', error: { name: 'Error', code: 'DRAIN_TIMEOUT', cause: { name: 'Error', message: 'timeout' } } });
    expect(t.progress.tasks.a!.errorMessage).toBe('node group did not drain');
    const up = await t.failUpgrade(new TypeError('x is not a function'));
    expect(up.message).toBe('Upgrade failed: x is not a function');
    expect(up.details).toEqual({ errorMessage: 'x is not a function', error: { name: 'TypeError' } });
    expect(t.progress.errorMessage).toBe('x is not a function');
    await t.close();
  });

  it('an Error without a message is recorded by its name; a long message is cut as a string is; fields that cannot be serialized are left out, the failure kept', async () => {
    const t = await open();
    await t.addTasks([
      { taskId: 'a', taskName: 'A' },
      { taskId: 'b', taskName: 'B' },
      { taskId: 'c', taskName: 'C' },
    ]);
    expect((await t.failTask('a', new RangeError())).details).toEqual({ errorMessage: 'RangeError', error: { name: 'RangeError' } });
    const long = await t.failTask('b', new Error('x'.repeat(5000)));
    expect(long.details).toMatchObject({ errorMessageLength: 5000, error: { name: 'Error' } });
    expect((long.details.errorMessage as string).endsWith('…[truncated]')).toBe(true);
    const circular = Object.assign(new Error('loop'), { self: {} as Record<string, unknown>, big: 10n });
    circular.self.me = circular.self;
    const kept = await t.failTask('c', circular);
    expect(kept.details).toEqual({ errorMessage: 'loop', error: { name: 'Error' } });
    // Neither a message nor a name to show: 'Error'.
    const odd = Object.assign(new Error(), { name: 42 });
    expect((await t.failUpgrade(odd)).details).toEqual({ errorMessage: 'Error', error: { name: 42 } });
    await t.close();
  });

  it('anything else that is not a non-empty string is still refused, and describeValue names an Error', async () => {
    const t = await open();
    await t.addTask('a', 'A');
    await expect(t.failTask('a', { message: 'x' } as never)).rejects.toThrow(/errorMessage must be a non-empty string or an Error, got an object/);
    expect(describeValue(new TypeError('boom'))).toBe('a TypeError ("boom")');
    expect(describeValue(new HttpError('x'.repeat(80), 500))).toBe(`a HttpError ("${'x'.repeat(60)}...")`);
    expect(describeValue(new AggregateError([], ''))).toBe('an AggregateError');
    expect(describeValue(Promise.resolve())).toBe('a Promise');
    expect(describeValue({})).toBe('an object');
    expect(t.progress.tasks.a!.status).toBe('not_started');
    await t.close();
  });
});
