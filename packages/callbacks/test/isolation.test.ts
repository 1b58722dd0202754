import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_MS, isProgressError, type ProgressEvent } from '@progress/core';
import { CallbackError, CallbackManager, type CallbackErrorInfo } from '../src/index.js';
import { deferred, openTracker, recordingLogger } from './helpers.js';

afterEach(() => {
  vi.useRealTimers();
});

/** A manager without timeouts whose event callback runs until the test resolves the gate of its event's seq. */
function gatedManager(): { manager: CallbackManager; gates: Map<number, ReturnType<typeof deferred<void>>> } {
  const manager = new CallbackManager({ timeoutMs: Infinity });
  const gates = new Map<number, ReturnType<typeof deferred<void>>>();
  manager.addEventCallback((e) => {
    const gate = deferred();
    gates.set(e.seq, gate);
    return gate.promise;
  });
  return { manager, gates };
}

/**
 * A manager without timeouts, a queue of `maxQueueSize` and a recording logger, whose event callback
 * holds the calls of the seqs `held` until the test resolves their gates; and how many overflow
 * episodes it logged (`warned`) and how many drains.
 */
function gatedQueue(maxQueueSize: number, held: number[]): { manager: CallbackManager; gates: Map<number, ReturnType<typeof deferred<void>>>; warned(): number; drained(): number } {
  const logger = recordingLogger();
  const manager = new CallbackManager({ timeoutMs: Infinity, maxQueueSize, logger });
  const gates = new Map(held.map((seq) => [seq, deferred()]));
  manager.addEventCallback((e) => gates.get(e.seq)?.promise);
  return {
    manager,
    gates,
    warned: () => logger.lines.filter((l) => l.level === 'warn' && l.obj.reason === 'dropped').length,
    drained: () => logger.lines.filter((l) => l.level === 'info' && l.msg === 'callback queue drained; no longer dropping events').length,
  };
}

/** An event callback on `manager` that records each event's seq and holds the call of seq 1 until `gate` is resolved. */
function holdFirstCall(manager: CallbackManager): { gate: ReturnType<typeof deferred<void>>; seen: number[] } {
  const gate = deferred();
  const seen: number[] = [];
  manager.addEventCallback((e) => {
    seen.push(e.seq);
    return e.seq === 1 ? gate.promise : undefined;
  });
  return { gate, seen };
}

describe('CallbackManager: a hanging callback', () => {
  it('delays no other callback beyond its timeout, and its own queue moves on after it', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const log: string[] = [];
    const errors: Array<[unknown, CallbackErrorInfo]> = [];
    const logger = recordingLogger();
    const manager = new CallbackManager({
      timeoutMs: 1000,
      logger,
      onError: (err, info) => {
        errors.push([err, info]);
        log.push(`timeout:${info.event.seq}`);
      },
    });
    const hangForever = deferred();
    function hung(e: { seq: number; type: string }) {
      log.push(`hung:${e.seq}`);
      return e.type === 'task.started' ? hangForever.promise : undefined;
    }
    manager.addEventCallback(hung);
    manager.addEventCallback((e) => void log.push(`sync:${e.seq}`));
    manager.addEventCallback(async (e) => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      log.push(`async:${e.seq}`);
    });

    const tracker = await openTracker(manager); // 1
    await tracker.startUpgrade(); // 2
    await tracker.addTask('t1', 'Task 1'); // 3
    await tracker.startTask('t1'); // 4: hung() hangs here
    await tracker.updateTaskProgress('t1', 50); // 5
    await tracker.completeTask('t1'); // 6
    await tracker.completeUpgrade(); // 7
    // Every command resolved without time passing: the tracker is not held up.
    let flushed = false;
    const flushing = manager.flush().then(() => {
      flushed = true;
    });

    await vi.advanceTimersByTimeAsync(999);
    const seqs = (who: string) => log.filter((l) => l.startsWith(`${who}:`)).map((l) => Number(l.split(':')[1]));
    expect(seqs('sync')).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(seqs('async')).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(seqs('hung')).toEqual([1, 2, 3, 4]);
    expect(errors).toHaveLength(0);
    expect(flushed).toBe(false);

    await vi.advanceTimersByTimeAsync(1);
    // The others were all done before the hung one's timeout fired; then its queue moved on.
    const fired = log.indexOf('timeout:4');
    expect(fired).toBeGreaterThan(-1);
    expect(log.slice(0, fired).filter((l) => !l.startsWith('hung:'))).toHaveLength(14);
    expect(log.slice(fired + 1)).toEqual(['hung:5', 'hung:6', 'hung:7']);
    await flushing;
    expect(flushed).toBe(true);

    expect(errors).toHaveLength(1);
    const [err, info] = errors[0]!;
    expect(err).toBeInstanceOf(CallbackError);
    expect(err).toMatchObject({ name: 'CallbackError', reason: 'timeout' });
    expect(info).toMatchObject({ callback: hung, reason: 'timeout', event: { seq: 4, type: 'task.started' } });
    expect(logger.lines.filter((l) => l.level === 'warn')).toEqual([
      expect.objectContaining({ obj: expect.objectContaining({ callback: 'hung', seq: 4, reason: 'timeout' }) }),
    ]);
    expect(manager.getStats()).toMatchObject({ timedOut: 1, failed: 0, pending: 0 });

    // Rejecting after its timeout is not reported a second time (only a debug line).
    hangForever.reject(new Error('too late'));
    await vi.advanceTimersByTimeAsync(0);
    expect(errors).toHaveLength(1);
    expect(logger.lines.filter((l) => l.level === 'debug' && l.msg === 'callback rejected after its timeout')).toHaveLength(1);
    await tracker.close();
  });

  it('a promise that resolves after its timeout does not end the call running after it', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const errors: CallbackErrorInfo[] = [];
    const manager = new CallbackManager({ timeoutMs: 1000, onError: (_err, info) => void errors.push(info) });
    const late = deferred();
    const second = deferred();
    const seen: number[] = [];
    manager.addEventCallback((e) => {
      seen.push(e.seq);
      if (e.seq === 1) return late.promise;
      return e.seq === 2 ? second.promise : undefined;
    });
    const tracker = await openTracker(manager); // 1: hangs past its timeout
    await tracker.startUpgrade(); // 2: waiting
    await tracker.addTask('t1', 'Task 1'); // 3: waiting
    await vi.advanceTimersByTimeAsync(1000); // 1 times out; 2 runs
    expect(seen).toEqual([1, 2]);
    late.resolve();
    await vi.advanceTimersByTimeAsync(0);
    // 2 still runs: 3 waits for it, and is still counted.
    expect(seen).toEqual([1, 2]);
    expect(manager.getStats()).toMatchObject({ pending: 2, timedOut: 1 });
    second.resolve();
    await manager.flush();
    expect(seen).toEqual([1, 2, 3]);
    expect(manager.getStats()).toMatchObject({ pending: 0, timedOut: 1 });
    expect(errors.map((info) => [info.reason, info.event.seq])).toEqual([['timeout', 1]]);
    await tracker.close();
  });

  it('with timeoutMs: Infinity, waits for the callback however long it takes', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const manager = new CallbackManager({ timeoutMs: Infinity });
    const { gate, seen } = holdFirstCall(manager);
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(seen).toEqual([1]);
    expect(vi.getTimerCount()).toBe(0);
    gate.resolve();
    await manager.flush();
    expect(seen).toEqual([1, 2]);
    await tracker.close();
  });
});

describe('CallbackManager: failing callbacks', () => {
  it('reports a rejecting callback exactly once, and it keeps getting later events', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const logger = recordingLogger();
    const errors: Array<[unknown, CallbackErrorInfo]> = [];
    const manager = new CallbackManager({ logger, timeoutMs: 1000, onError: (err, info) => void errors.push([err, info]) });
    const flakySeen: string[] = [];
    async function flaky(e: { type: string }) {
      flakySeen.push(e.type);
      if (e.type === 'task.failed') throw new Error('ticket system down');
    }
    manager.addEventCallback(flaky);
    const othersSeen: string[] = [];
    manager.addEventCallback(async (e) => void othersSeen.push(e.type));
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.addTask('t1', 'Task 1');
    await tracker.failTask('t1', 'boom');
    await tracker.retryTask('t1');
    await tracker.flush();
    await vi.advanceTimersByTimeAsync(5000); // well past the timeout: still one report
    expect(errors).toHaveLength(1);
    const [err, info] = errors[0]!;
    expect((err as Error).message).toBe('ticket system down');
    expect(info).toMatchObject({ callback: flaky, reason: 'rejected', event: { type: 'task.failed', taskId: 't1' } });
    expect(logger.lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    expect(logger.lines[0]).toMatchObject({ msg: 'callback rejected', obj: { callback: 'flaky', type: 'task.failed', reason: 'rejected' } });
    const types = ['upgrade.created', 'upgrade.started', 'task.added', 'task.failed', 'task.retried'];
    expect(flakySeen).toEqual(types);
    expect(othersSeen).toEqual(types);
    expect(manager.getStats()).toMatchObject({ failed: 1, timedOut: 0, pending: 0 });
    await tracker.close();
  });

  it('reports a throwing callback once; the callbacks after it still get the event and the command resolves', async () => {
    const errors: CallbackErrorInfo[] = [];
    const manager = new CallbackManager({ onError: (_err, info) => void errors.push(info) });
    manager.on('upgrade.started', () => {
      throw new TypeError('bad handler');
    });
    const after: string[] = [];
    manager.addEventCallback((e) => void after.push(e.type));
    const tracker = await openTracker(manager);
    await expect(tracker.startUpgrade()).resolves.toMatchObject({ type: 'upgrade.started' });
    expect(after).toEqual(['upgrade.created', 'upgrade.started']);
    expect(errors.map((i) => `${i.reason}:${i.event.type}`)).toEqual(['threw:upgrade.started']);
    await tracker.close();
  });

  it('reports a callback whose result is a hostile thenable (then or constructor throws), and goes on with the others', async () => {
    const revoked = (): unknown => {
      const { proxy, revoke } = Proxy.revocable({}, {});
      revoke();
      return proxy; // reading its then throws
    };
    const hostile: Array<[() => unknown, CallbackErrorInfo['reason']]> = [
      [revoked, 'threw'],
      [() => Object.defineProperty(Promise.resolve(), 'then', { value: () => { throw new Error('hostile then'); } }), 'rejected'],
      [() => Object.defineProperty(Promise.resolve(), 'constructor', { get: () => { throw new Error('hostile constructor'); } }), 'rejected'],
    ];
    for (const [result, reason] of hostile) {
      const errors: CallbackErrorInfo[] = [];
      const manager = new CallbackManager({ timeoutMs: Infinity, onError: (_err, info) => void errors.push(info) });
      manager.addEventCallback(() => result() as void);
      const seen: number[] = [];
      manager.addEventCallback((e) => void seen.push(e.seq));
      const tracker = await openTracker(manager); // 1
      await tracker.startUpgrade(); // 2
      await tracker.addTask('t1', 'Task 1'); // 3
      await tracker.flush();
      expect(seen).toEqual([1, 2, 3]);
      expect(errors.map((i) => `${i.reason}:${i.event.seq}`)).toEqual([1, 2, 3].map((seq) => `${reason}:${seq}`));
      expect(manager.getStats()).toMatchObject({ pending: 0 });
      await tracker.close();
    }
  });

  it('awaits a thenable that is a function, as a promise is awaited', async () => {
    // Promises adopt any object or function with a then method: a callable thenable is one too.
    const { promise, resolve } = deferred();
    const thenable = Object.assign(() => {}, { then: (onDone: () => void) => void promise.then(onDone) });
    const manager = new CallbackManager({ timeoutMs: Infinity });
    const seen: number[] = [];
    manager.addEventCallback((e) => {
      seen.push(e.seq);
      return e.seq === 1 ? thenable : undefined;
    });
    const tracker = await openTracker(manager); // 1: busy until the thenable settles
    await tracker.startUpgrade(); // 2: waits in its queue
    expect(seen).toEqual([1]);
    expect(manager.getStats().pending).toBe(2);
    resolve();
    await tracker.flush();
    expect(seen).toEqual([1, 2]);
    await tracker.close();
  });

  it('names the callback in its log lines and errors: its function name, or "anonymous"', async () => {
    const logger = recordingLogger();
    const errors: string[] = [];
    const manager = new CallbackManager({ logger, onError: (err) => void errors.push((err as Error).message) });
    function named(): never {
      throw new Error('named failed');
    }
    manager.on('upgrade.started', named);
    manager.on('upgrade.started', () => {
      throw new Error('inline failed');
    });
    manager.on('task.added', () => new Promise(() => {}));
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.addTask('t1', 'Task 1');
    await manager.close(0); // gives up on the hung call
    expect(logger.lines.filter((l) => l.level === 'warn').map((l) => l.obj.callback)).toEqual(['named', 'anonymous', 'anonymous']);
    expect(errors).toEqual(['named failed', 'inline failed', expect.stringMatching(/^\[@progress\/callbacks\] callback "anonymous" had not settled/)]);
    await tracker.close();
  });

  it('contains an onError hook that throws or rejects, and logs it', async () => {
    const logger = recordingLogger();
    let hookCalls = 0;
    const manager = new CallbackManager({
      logger,
      onError: (_err, info) => {
        hookCalls += 1;
        if (info.event.seq % 2 === 0) throw new Error('hook broke');
        return Promise.reject(new Error('hook rejected'));
      },
    });
    manager.addEventCallback(() => {
      throw new Error('always');
    });
    const seen: number[] = [];
    manager.addEventCallback((e) => void seen.push(e.seq));
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.addTask('t1', 'Task 1');
    await tracker.flush();
    await new Promise((resolve) => setImmediate(resolve));
    expect(hookCalls).toBe(3);
    expect(seen).toEqual([1, 2, 3]);
    const hookErrors = logger.lines.filter((l) => l.level === 'error');
    expect(hookErrors.map((l) => (l.obj.err as Error).message).sort()).toEqual(['hook broke', 'hook rejected', 'hook rejected']);
    expect(hookErrors.every((l) => l.msg === 'the onError hook threw')).toBe(true);
    await tracker.close();
  });
});

describe('CallbackManager: bounded queues', () => {
  async function overflow(dropPolicy: 'oldest' | 'newest') {
    const logger = recordingLogger();
    const dropped: number[] = [];
    const manager = new CallbackManager({ maxQueueSize: 2, dropPolicy, logger, onError: (_e, info) => void dropped.push(info.event.seq) });
    const gate = deferred();
    const seen: number[] = [];
    manager.addEventCallback((e) => {
      seen.push(e.seq);
      return e.seq === 2 ? gate.promise : undefined;
    });
    const fast: number[] = [];
    manager.addEventCallback((e) => void fast.push(e.seq));
    const tracker = await openTracker(manager); // 1
    await tracker.startUpgrade(); // 2: blocks the first callback
    for (let i = 0; i < 5; i++) await tracker.addTask(`t${i}`, `Task ${i}`); // 3..7
    expect(manager.getStats()).toMatchObject({ dropped: 3, pending: 3 });
    gate.resolve();
    await manager.flush();
    // Later episodes log again; this one logged one warn line for three drops.
    expect(logger.lines.filter((l) => l.level === 'warn' && l.obj.reason === 'dropped')).toHaveLength(1);
    expect(fast).toEqual([1, 2, 3, 4, 5, 6, 7]);
    await tracker.close();
    return { seen, dropped };
  }

  it('logs each overflow episode once: again after the queue drained, with a line when it drains', async () => {
    const { manager, gates, warned, drained } = gatedQueue(1, [1, 4]);
    const tracker = await openTracker(manager); // 1: hangs
    await tracker.startUpgrade(); // 2: waiting
    await tracker.addTask('t1', 'Task 1'); // 3: drops 2
    expect([warned(), drained()]).toEqual([1, 0]);
    gates.get(1)!.resolve();
    await manager.flush();
    expect([warned(), drained()]).toEqual([1, 1]);
    await tracker.addTask('t2', 'Task 2'); // 4: hangs
    await tracker.addTask('t3', 'Task 3'); // 5: waiting
    await tracker.addTask('t4', 'Task 4'); // 6: drops 5, a new episode
    expect([warned(), drained()]).toEqual([2, 1]);
    gates.get(4)!.resolve();
    await manager.flush();
    expect([warned(), drained()]).toEqual([2, 2]);
    expect(manager.getStats()).toMatchObject({ dropped: 2, pending: 0 });
    await tracker.close();
  });

  it('an overflow episode lasts until the queue is empty, not until it has room again', async () => {
    const { manager, gates, warned, drained } = gatedQueue(2, [1, 3]);
    const tracker = await openTracker(manager); // 1: hangs
    await tracker.startUpgrade(); // 2: waiting
    await tracker.addTask('t1', 'Task 1'); // 3: waiting
    await tracker.addTask('t2', 'Task 2'); // 4: drops 2
    gates.get(1)!.resolve();
    await new Promise((resolve) => setImmediate(resolve));
    // 3 runs (and hangs), 4 still waits: the queue has room, but is not drained.
    expect([warned(), drained()]).toEqual([1, 0]);
    await tracker.addTask('t3', 'Task 3'); // 5: waiting
    await tracker.addTask('t4', 'Task 4'); // 6: drops 4, the same episode
    expect([warned(), drained()]).toEqual([1, 0]);
    gates.get(3)!.resolve();
    await manager.flush();
    expect([warned(), drained()]).toEqual([1, 1]);
    expect(manager.getStats()).toMatchObject({ dropped: 2, pending: 0 });
    await tracker.close();
  });

  it("drops the oldest waiting event by default, so the latest ones get through", async () => {
    expect(await overflow('oldest')).toEqual({ seen: [1, 2, 6, 7], dropped: [3, 4, 5] });
  });

  it("with dropPolicy 'newest', keeps the events that were first in line", async () => {
    expect(await overflow('newest')).toEqual({ seen: [1, 2, 3, 4], dropped: [5, 6, 7] });
  });
});

describe('CallbackManager: defaults', () => {
  it('gives up on an async call after 5000 ms when no timeoutMs is given', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const errors: CallbackErrorInfo[] = [];
    const manager = new CallbackManager({ onError: (_err, info) => void errors.push(info) });
    const hang = deferred();
    manager.addEventCallback(() => hang.promise);
    const tracker = await openTracker(manager); // 1: hangs
    await vi.advanceTimersByTimeAsync(4999);
    expect(errors).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(errors.map((info) => [info.reason, info.event.seq])).toEqual([['timeout', 1]]);
    expect(vi.getTimerCount()).toBe(0);
    hang.resolve();
    await tracker.close();
  });

  it("drops the oldest waiting event of a full queue when no dropPolicy is given, reporting a CallbackError with reason 'dropped'", async () => {
    const errors: Array<[unknown, CallbackErrorInfo]> = [];
    const manager = new CallbackManager({ maxQueueSize: 1, onError: (err, info) => void errors.push([err, info]) });
    const { gate, seen } = holdFirstCall(manager);
    const tracker = await openTracker(manager); // 1: running
    await tracker.startUpgrade(); // 2: waiting
    await tracker.addTask('t1', 'Task 1'); // 3: the queue is full, 2 is dropped
    gate.resolve();
    await manager.flush();
    expect(seen).toEqual([1, 3]);
    expect(errors).toHaveLength(1);
    const [err, info] = errors[0]!;
    expect(err).toBeInstanceOf(CallbackError);
    expect(err).toMatchObject({ name: 'CallbackError', reason: 'dropped' });
    expect(info).toMatchObject({ reason: 'dropped', event: { seq: 2 } });
    await tracker.close();
  });

  it('queues 10000 calls behind a busy callback before it drops one when no maxQueueSize is given', async () => {
    const dropped: number[] = [];
    const manager = new CallbackManager({ timeoutMs: Infinity, onError: (_err, info) => void dropped.push(info.event.seq) });
    const { gate, seen } = holdFirstCall(manager);
    const tracker = await openTracker(manager); // 1: running
    await tracker.addTask('t1', 'Task 1'); // 2: waiting
    for (let i = 1; i < 10_000; i++) await tracker.updateTaskProgress('t1', i % 100); // 3 .. 10001: 10000 waiting, the queue is full
    expect(manager.getStats()).toMatchObject({ dropped: 0, pending: 10_001 });
    await tracker.updateTaskProgress('t1', 50); // 10002: the oldest waiting one, 2, is dropped
    expect(dropped).toEqual([2]);
    gate.resolve();
    await manager.flush();
    expect(seen).toHaveLength(10_001);
    await tracker.close();
  });
});

describe('CallbackManager: flush and close', () => {
  it('close waits for queued calls, then ignores events and refuses new callbacks', async () => {
    const manager = new CallbackManager();
    const gate = deferred();
    const seen: number[] = [];
    manager.addEventCallback(async (e) => {
      if (e.seq === 1) await gate.promise;
      seen.push(e.seq);
    });
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    let closed = false;
    const closing = manager.close().then(() => {
      closed = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toBe(false);
    gate.resolve();
    await closing;
    expect(seen).toEqual([1, 2]);
    await tracker.addTask('t1', 'Task 1'); // after close: ignored
    await tracker.close();
    expect(seen).toEqual([1, 2]);
    expect(manager.getStats().events).toBe(2);
    let code: string | undefined;
    try {
      manager.addEventCallback(() => {});
    } catch (err) {
      code = isProgressError(err) ? err.code : undefined;
    }
    expect(code).toBe('CLOSED');
    expect(manager.close()).toBe(manager.close());
  });

  it('close started from a callback (without waiting) waits for the calls of that event to the callbacks after it', async () => {
    const manager = new CallbackManager();
    const gate = deferred();
    let closing: Promise<void> | undefined;
    let closed = false;
    manager.onUpgradeStatus('completed', () => {
      closing = manager.close().then(() => {
        closed = true;
      });
    });
    const notified: number[] = [];
    manager.on('upgrade.completed', async (e) => {
      await gate.promise;
      notified.push(e.seq);
    });
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.completeUpgrade(); // 3: the first callback closes the manager, the second is handed 3
    await new Promise((resolve) => setImmediate(resolve));
    expect([closed, manager.getStats().pending]).toEqual([false, 1]);
    gate.resolve();
    await closing;
    expect(notified).toEqual([3]);
    expect(manager.getStats().pending).toBe(0);
    await tracker.close();
  });

  it('flush waits for the calls handed over before it, not for later ones (a busy callback cannot starve it)', async () => {
    const { manager, gates } = gatedManager();
    const tracker = await openTracker(manager); // 1: running
    await tracker.startUpgrade(); // 2: waiting behind 1
    let flushed = false;
    const flushing = manager.flush().then(() => {
      flushed = true;
    });
    await tracker.addTask('t1', 'Task 1'); // 3: handed over after the flush
    gates.get(1)!.resolve();
    await new Promise((resolve) => setImmediate(resolve));
    expect([flushed, [...gates.keys()]]).toEqual([false, [1, 2]]); // 2 runs now
    gates.get(2)!.resolve();
    await new Promise((resolve) => setImmediate(resolve));
    // Every call handed over before the flush is done; 3 is running and need not end first.
    expect([flushed, [...gates.keys()]]).toEqual([true, [1, 2, 3]]);
    await flushing;
    gates.get(3)!.resolve();
    await tracker.close();
  });

  it('flush waits for the last call of a queue that started when the one before it ended', async () => {
    const { manager, gates } = gatedManager();
    const tracker = await openTracker(manager); // 1: running
    await tracker.startUpgrade(); // 2: waiting behind 1, the last call handed over
    gates.get(1)!.resolve();
    await new Promise((resolve) => setImmediate(resolve));
    expect([...gates.keys()]).toEqual([1, 2]); // 2 runs now
    let flushed = false;
    const flushing = manager.flush().then(() => {
      flushed = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(flushed).toBe(false);
    gates.get(2)!.resolve();
    await flushing;
    await tracker.close();
  });

  it('flush waits for a call still running when a full queue drops the ones behind it', async () => {
    const manager = new CallbackManager({ timeoutMs: Infinity, maxQueueSize: 1 });
    const gate = deferred();
    manager.addEventCallback((e) => (e.seq === 1 ? gate.promise : undefined));
    const tracker = await openTracker(manager); // 1: running
    await tracker.startUpgrade(); // 2: waiting
    let flushed = false;
    const flushing = manager.flush().then(() => {
      flushed = true;
    });
    for (let i = 0; i < 3; i++) await tracker.addTask(`t${i}`, `Task ${i}`); // each drops the one waiting
    await new Promise((resolve) => setImmediate(resolve));
    expect(flushed).toBe(false); // 1, handed over before the flush, still runs
    gate.resolve();
    await flushing;
    expect(manager.getStats()).toMatchObject({ dropped: 3, pending: 0 });
    await tracker.close();
  });

  it('the tracker flush waits for asynchronous callbacks (the tracker flushes its sinks)', async () => {
    const manager = new CallbackManager();
    const done: number[] = [];
    manager.addEventCallback(async (e) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      done.push(e.seq);
    });
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    expect(done).toEqual([]);
    await tracker.flush();
    expect(done).toEqual([1, 2]);
    await tracker.close();
  });
});

describe('CallbackManager: a broken logger', () => {
  it('cannot leave a queue stuck or break the other callbacks', async () => {
    const throwing = () => {
      throw new Error('logger down');
    };
    const manager = new CallbackManager({ logger: { debug: throwing, info: throwing, warn: throwing, error: throwing }, onError: throwing });
    const seen: number[] = [];
    manager.addEventCallback(async (e) => {
      seen.push(e.seq);
      throw new Error('fails every time');
    });
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await tracker.addTask('t1', 'Task 1');
    await tracker.flush();
    expect(seen).toEqual([1, 2, 3]);
    expect(manager.getStats()).toMatchObject({ failed: 3, pending: 0 });
    await tracker.close();
  });
});

describe('CallbackManager.close(timeoutMs)', () => {
  it('waits at most timeoutMs: the calls still queued then are dropped (onError hears of each, one log line), the running one is given up on', async () => {
    const errors: CallbackErrorInfo[] = [];
    const logger = recordingLogger();
    const manager = new CallbackManager({ timeoutMs: 60_000, logger, onError: (_err, info) => void errors.push(info) });
    const hang = deferred();
    const seen: number[] = [];
    manager.addEventCallback((e) => {
      seen.push(e.seq);
      return hang.promise;
    });
    const tracker = await openTracker(manager); // 1: hangs
    await tracker.startUpgrade(); // 2
    await tracker.addTask('t1', 'Task 1'); // 3
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    await manager.close(50);
    expect(seen).toEqual([1]);
    expect(errors.map((info) => [info.reason, info.event.seq])).toEqual([
      ['dropped', 2],
      ['dropped', 3],
      ['timeout', 1],
    ]);
    expect(logger.lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([
      'callback timed out; its queue moved on',
      'callbacks closed before these queued calls ran; they were dropped',
    ]);
    expect(manager.getStats()).toMatchObject({ dropped: 2, timedOut: 1, pending: 0 });
    // The running call's own timeout timer (60 s) is cleared: it would keep the process alive.
    expect(timers()).toBeLessThan(before);
    hang.reject(new Error('late'));
    await manager.close();
    await new Promise((r) => setTimeout(r, 10));
    expect(errors).toHaveLength(3); // nothing reported after the close
    expect(seen).toEqual([1]);
    await tracker.close();
  });

  it('with Infinity, waits as close() does: no call is dropped', async () => {
    const manager = new CallbackManager({ timeoutMs: Infinity });
    const { gate, seen } = holdFirstCall(manager);
    const tracker = await openTracker(manager); // 1: running
    await tracker.startUpgrade(); // 2: waiting
    let closed = false;
    const closing = manager.close(Infinity).then(() => {
      closed = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(false);
    gate.resolve();
    await closing;
    expect(seen).toEqual([1, 2]);
    expect(manager.getStats()).toMatchObject({ dropped: 0, timedOut: 0, pending: 0 });
    await tracker.close();
  });

  it('drops the calls of a full queue without a "no longer dropping" line: the queue was emptied by the close, not drained', async () => {
    const logger = recordingLogger();
    const manager = new CallbackManager({ timeoutMs: 60_000, maxQueueSize: 1, logger });
    const hang = deferred();
    manager.addEventCallback(() => hang.promise);
    const tracker = await openTracker(manager); // 1: hangs
    await tracker.startUpgrade(); // 2: waiting
    await tracker.addTask('t1', 'Task 1'); // 3: drops 2
    expect(manager.getStats()).toMatchObject({ dropped: 1 });
    await manager.close(20);
    expect(manager.getStats()).toMatchObject({ dropped: 2, timedOut: 1, pending: 0 });
    expect(logger.lines.filter((l) => l.level === 'info')).toEqual([]);
    hang.resolve();
    await tracker.close();
  });

  it('leaves no timer of its own once the calls finish in time', async () => {
    // Events handed over by hand, so that no tracker timer is counted.
    const events: ProgressEvent[] = [];
    const source = await openTracker(new CallbackManager());
    source.subscribe((event) => void events.push(event));
    await source.startUpgrade();
    await source.close();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const manager = new CallbackManager();
    const seen: number[] = [];
    manager.addEventCallback(async (e) => {
      await Promise.resolve();
      seen.push(e.seq);
    });
    for (const event of events) manager.handle(event, source.durableProgress);
    expect(vi.getTimerCount()).toBeGreaterThan(0); // the running call's timeout
    await manager.close(10_000);
    expect(seen).toEqual(events.map((e) => e.seq));
    expect(vi.getTimerCount()).toBe(0);
  });

  it('with 0, gives up at once: the queued calls are dropped, the running one is given up on', async () => {
    const errors: CallbackErrorInfo[] = [];
    const manager = new CallbackManager({ timeoutMs: 60_000, onError: (_err, info) => void errors.push(info) });
    const hang = deferred();
    const seen: number[] = [];
    manager.addEventCallback((e) => {
      seen.push(e.seq);
      return hang.promise;
    });
    const tracker = await openTracker(manager); // 1: hangs
    await tracker.startUpgrade(); // 2: waiting
    await manager.close(0);
    expect(errors.map((info) => [info.reason, info.event.seq])).toEqual([
      ['dropped', 2],
      ['timeout', 1],
    ]);
    expect(manager.getStats()).toMatchObject({ pending: 0 });
    hang.resolve();
    await tracker.close();
    expect(seen).toEqual([1]);
  });

  it('logs no "dropped" line when only a running call was given up on', async () => {
    const logger = recordingLogger();
    const manager = new CallbackManager({ timeoutMs: 60_000, logger });
    const hang = deferred();
    manager.addEventCallback(() => hang.promise);
    const tracker = await openTracker(manager); // 1: hangs, nothing waits behind it
    await manager.close(10);
    expect(logger.lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual(['callback timed out; its queue moved on']);
    hang.resolve();
    await tracker.close();
  });

  it('resolves as close() does when the calls finish in time, and refuses a bad timeout with INVALID_ARGUMENT', async () => {
    const manager = new CallbackManager();
    const seen: number[] = [];
    manager.addEventCallback(async (e) => {
      await new Promise((r) => setTimeout(r, 5));
      seen.push(e.seq);
    });
    const tracker = await openTracker(manager);
    await tracker.startUpgrade();
    await manager.close(10_000);
    expect(seen).toEqual([1, 2]);
    for (const bad of [-1, Number.NaN, '5' as unknown as number, MAX_TIMER_MS + 1]) {
      const err = await manager.close(bad).catch((e: unknown) => e);
      expect(isProgressError(err, 'INVALID_ARGUMENT')).toBe(true);
    }
    await tracker.close();
  });
});
