import { execFile } from 'node:child_process';
import { MessageChannel } from 'node:worker_threads';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore, ProgressTracker, cloneState, type ProgressEvent, type ProgressStore, type UpgradeProgress } from '../src/index.js';
import { delegatingStore } from './delegating-store.js';
import { expectCode } from './helpers.js';

const UPGRADE = 'u-hung';

/**
 * An append the store has not answered yet: `land()` makes it reach the store now, `fail()` rejects
 * it without, `answer()` resolves it without (the store holds it already: a driver that retried).
 */
interface HungAppend {
  events: readonly ProgressEvent[];
  expectedSeq: number;
  state: UpgradeProgress;
  land(): Promise<void>;
  fail(err: unknown): void;
  answer(): void;
}

/**
 * A MemoryStore whose append never settles on the calls listed in `hang` (a hung network
 * filesystem, a driver without a timeout) until the test lands or fails it; `delayMs` makes every
 * other append take that long (fake timers), and `hangAcquire` / `hangLoad` / `hangRelease` make
 * those never settle (the acquire's `landAcquire()` lets it take the lock late).
 */
function hangingStore(options: { hang?: number[]; delayMs?: number; hangAcquire?: boolean; hangLoad?: boolean; hangRelease?: boolean } = {}) {
  const inner = new MemoryStore();
  let calls = 0;
  const hung: HungAppend[] = [];
  let landAcquire: (() => Promise<void>) | undefined;
  const store: ProgressStore & { inner: MemoryStore; hung: HungAppend[]; landAcquire: () => Promise<void> } = Object.assign(
    delegatingStore(inner, {
      acquire: (id) => {
        if (!options.hangAcquire) return inner.acquire(id);
        return new Promise<void>((resolve, reject) => {
          landAcquire = () => inner.acquire(id).then(resolve, reject);
        });
      },
      release: (id) => (options.hangRelease ? new Promise<void>(() => {}) : inner.release(id)),
      load: (id) => (options.hangLoad ? new Promise<undefined>(() => {}) : inner.load(id)),
      append(id, events, expectedSeq, state) {
        calls++;
        // Copied at the call, as the store contract says: the tracker's state moves on.
        const copy: UpgradeProgress = cloneState(state);
        if (options.hang?.includes(calls)) {
          return new Promise<void>((resolve, reject) => {
            hung.push({ events, expectedSeq, state: copy, land: () => inner.append(id, events, expectedSeq, copy).then(resolve, reject), fail: reject, answer: () => resolve() });
          });
        }
        if (options.delayMs) return new Promise<void>((resolve) => setTimeout(resolve, options.delayMs)).then(() => inner.append(id, events, expectedSeq, copy));
        return inner.append(id, events, expectedSeq, copy);
      },
    }),
    { inner, hung, landAcquire: () => landAcquire!() },
  );
  return store;
}

/** Follows a promise without awaiting it: what it settled with, if it has. */
function watch<T>(promise: Promise<T>) {
  const w: { settled: boolean; value?: T; error?: unknown } = { settled: false };
  promise.then(
    (value) => Object.assign(w, { settled: true, value }),
    (error: unknown) => Object.assign(w, { settled: true, error }),
  );
  return w;
}

async function stored(store: ProgressStore): Promise<string[]> {
  const out: string[] = [];
  for await (const e of store.readEvents(UPGRADE, 0)) out.push(`${e.seq}:${e.type}`);
  return out;
}

const open = (store: ProgressStore, extra: Partial<Parameters<typeof ProgressTracker.open>[0]> = {}) =>
  ProgressTracker.open({ upgradeId: UPGRADE, planId: 'p', clusterName: 'c', store, ...extra });

afterEach(() => {
  vi.useRealTimers();
});

describe('a store whose append never settles', () => {
  it('refuses that write and the commands queued behind it with STORE_UNAVAILABLE after the default bound, settles flush(), and the next command writes', async () => {
    vi.useFakeTimers();
    // Append calls: 1 = upgrade.created (open), 2 = startUpgrade, 3 = addTask (never answered).
    const store = hangingStore({ hang: [3] });
    const t = await open(store);
    await t.startUpgrade();
    const hung = watch(t.addTask('a', 'A'));
    await vi.advanceTimersByTimeAsync(0);
    expect(store.hung).toHaveLength(1);
    // Queued behind the write in flight (group commit), and a flush() waiting for both.
    const behind = watch(t.addTask('b', 'B'));
    const flushed = watch(t.flush());
    // The bound, and the next turn of the loop: the timer gives up only after the I/O of its turn (a
    // fake setImmediate set from a timer runs 1 ms on): see 'the store timer after the event loop was blocked'.
    await vi.advanceTimersByTimeAsync(60_001);
    expect(hung.settled && behind.settled && flushed.settled).toBe(true);
    expect(hung.error).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { upgradeId: UPGRADE, reason: 'timeout', timeoutMs: 60_000, fromSeq: 3, toSeq: 3 } });
    expect((hung.error as Error).message).toMatch(/within 60000 ms \(storeTimeoutMs\)/);
    // Queued behind it, refused for the same reason (a caller may look at it to decide on a retry).
    expect(behind.error).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { upgradeId: UPGRADE, reason: 'timeout', timeoutMs: 60_000, fromSeq: 3, toSeq: 3 } });
    expect(t.progress.lastSeq).toBe(2);
    expect(t.progress.tasks.a).toBeUndefined();
    // The tracker goes on from the durable seq: the store answers this one.
    const task = await t.addTask('a', 'A');
    expect(task.status).toBe('not_started');
    expect(t.durableProgress.lastSeq).toBe(3);
    expect(await stored(store)).toEqual(['1:upgrade.created', '2:upgrade.started', '3:task.added']);
    await t.close();
    // No timer of the tracker outlives the close.
    expect(vi.getTimerCount()).toBe(0);
  });

  it('lets close() end while the append hangs, and with it every command it waits for', async () => {
    vi.useFakeTimers();
    const store = hangingStore({ hang: [2] });
    const seen: string[] = [];
    const t = await open(store, { storeTimeoutMs: 5000, sinks: [{ name: 'rec', handle: (e) => void seen.push(`${e.seq}:${e.type}`) }] });
    const started = watch(t.startUpgrade());
    await vi.advanceTimersByTimeAsync(0);
    const closed = watch(t.close());
    await vi.advanceTimersByTimeAsync(5001);
    expect(started.error).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'timeout', timeoutMs: 5000 } });
    // close() also checked the store for the write (the adoption check): it is not there.
    await vi.advanceTimersByTimeAsync(0);
    expect(closed.settled).toBe(true);
    expect(closed.error).toBeUndefined();
    expect(seen).toEqual(['1:upgrade.created']);
    expect(vi.getTimerCount()).toBe(0);
    // The lock was released: another tracker can open the upgrade.
    const u = await open(store.inner);
    expect(u.progress.lastSeq).toBe(1);
    await u.close();
  });

  it('adopts the write given up on (two commands, one write) at once when it lands later while the tracker is idle', async () => {
    vi.useFakeTimers();
    const store = hangingStore({ hang: [3] });
    const seen: string[] = [];
    const t = await open(store, { storeTimeoutMs: 1000, sinks: [{ name: 'rec', handle: (e, s) => void seen.push(`${e.seq}:${e.type}:${s.lastSeq}`) }] });
    await t.startUpgrade();
    // Issued in one tick: one append of seq 3..4.
    const hung = [watch(t.addTask('a', 'A')), watch(t.addTask('b', 'B'))];
    await vi.advanceTimersByTimeAsync(1001);
    for (const h of hung) expect(h.error).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'timeout', fromSeq: 3, toSeq: 4 } });
    expect(store.hung[0]!.events.map((e) => e.seq)).toEqual([3, 4]);
    expect(t.durableProgress.lastSeq).toBe(2);
    // The store completes it now, after the tracker gave up, with nothing written since: the store
    // acknowledged it, so it is adopted at once (the sinks get it; no read of the store needed).
    const reads = vi.spyOn(store, 'readEvents');
    await store.hung[0]!.land();
    await vi.advanceTimersByTimeAsync(0);
    expect(reads).not.toHaveBeenCalled();
    expect(t.durableProgress.lastSeq).toBe(4);
    expect(t.progress.lastSeq).toBe(4);
    expect(t.progress.tasks.a?.status).toBe('not_started');
    expect(seen).toEqual(['1:upgrade.created:1', '2:upgrade.started:2', '3:task.added:3', '4:task.added:4']);
    // The next command is not refused for it: it is written right after.
    expect((await t.startTask('a')).seq).toBe(5);
    expect(seen).toEqual(['1:upgrade.created:1', '2:upgrade.started:2', '3:task.added:3', '4:task.added:4', '5:task.started:5']);
    expect(await stored(store)).toEqual(['1:upgrade.created', '2:upgrade.started', '3:task.added', '4:task.added', '5:task.started']);
    await t.close();
  });

  it('leaves the write given up on to the write in flight when it lands while that one waits: adopted there, that one refused', async () => {
    vi.useFakeTimers();
    // Append 3 hangs and is given up on; append 4 (the next command) hangs too, until the test lets it go.
    const store = hangingStore({ hang: [3, 4] });
    const seen: number[] = [];
    const t = await open(store, { storeTimeoutMs: 1000, sinks: [{ name: 'rec', handle: (e) => void seen.push(e.seq) }] });
    await t.startUpgrade();
    const first = watch(t.addTask('a', 'A'));
    await vi.advanceTimersByTimeAsync(1001);
    expect(first.error).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'timeout', fromSeq: 3, toSeq: 3 } });
    const next = watch(t.setCurrentPhase('Drain'));
    await vi.advanceTimersByTimeAsync(0);
    expect(store.hung).toHaveLength(2);
    // The first lands while the second is in flight: not idle, so not adopted on the spot.
    await store.hung[0]!.land();
    await vi.advanceTimersByTimeAsync(0);
    expect(t.durableProgress.lastSeq).toBe(2);
    // The second reaches the store: CONFLICT (the first holds seq 3), which finds the first and adopts it.
    await store.hung[1]!.land().catch(() => {});
    await vi.advanceTimersByTimeAsync(0);
    expect(next.error).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'adopted', adoptedFromSeq: 3, adoptedToSeq: 3 } });
    expect(t.durableProgress.lastSeq).toBe(3);
    expect(seen).toEqual([1, 2, 3]);
    expect((await t.setCurrentPhase('Drain')).seq).toBe(4);
    expect(await stored(store)).toEqual(['1:upgrade.created', '2:upgrade.started', '3:task.added', '4:upgrade.phase_changed']);
    await t.close();
  });

  it('writes right after them a command that a sink issues on an event adopted at once, and settles a flush() called meanwhile', async () => {
    vi.useFakeTimers();
    // Append 3 (seq 3..4) is given up on; append 4 (the sink's command) hangs too, until the test lets it go.
    const store = hangingStore({ hang: [3, 4] });
    const seen: number[] = [];
    let flushed: ReturnType<typeof watch<void>> | undefined;
    let started: ReturnType<typeof watch<ProgressEvent>> | undefined;
    const t: ProgressTracker = await open(store, {
      storeTimeoutMs: 1000,
      sinks: [
        {
          name: 'rec',
          handle: (e) => {
            seen.push(e.seq);
            // On seq 3, seq 4 is adopted but not yet durable: this flush() waits for it.
            if (e.seq === 3) flushed = watch(t.flush());
            // Outside the write loop: the command is recorded on top of the adopted events and written next.
            if (e.seq === 4) started = watch(t.startTask('a'));
          },
        },
      ],
    });
    await t.startUpgrade();
    const hung = [watch(t.addTask('a', 'A')), watch(t.addTask('b', 'B'))];
    await vi.advanceTimersByTimeAsync(1001);
    for (const h of hung) expect(h.error).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'timeout' } });
    await store.hung[0]!.land();
    await vi.advanceTimersByTimeAsync(0);
    // Settled by the adoption itself, while the sink's command is still in flight.
    expect(flushed!.settled).toBe(true);
    expect(store.hung).toHaveLength(2);
    expect(store.hung[1]!.expectedSeq).toBe(4);
    expect(store.hung[1]!.events.map((e) => `${e.seq}:${e.type}`)).toEqual(['5:task.started']);
    await store.hung[1]!.land();
    await vi.advanceTimersByTimeAsync(0);
    expect(started!.value).toMatchObject({ seq: 5, type: 'task.started' });
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    expect(await stored(store)).toEqual(['1:upgrade.created', '2:upgrade.started', '3:task.added', '4:task.added', '5:task.started']);
    await t.close();
  });

  it('adopts at once the one of two appends given up on (both at one seq) that the store took; the other is refused by the store and changes nothing', async () => {
    vi.useFakeTimers();
    const store = hangingStore({ hang: [3, 4] });
    const seen: number[] = [];
    const t = await open(store, { storeTimeoutMs: 1000, sinks: [{ name: 'rec', handle: (e) => void seen.push(e.seq) }] });
    await t.startUpgrade();
    watch(t.addTask('a', 'A'));
    await vi.advanceTimersByTimeAsync(1001);
    watch(t.addTask('b', 'B'));
    await vi.advanceTimersByTimeAsync(1001);
    expect(store.hung.map((h) => h.expectedSeq)).toEqual([2, 2]);
    // The second reaches the store first: adopted at once (the tracker is idle).
    await store.hung[1]!.land();
    await vi.advanceTimersByTimeAsync(0);
    expect(t.durableProgress.lastSeq).toBe(3);
    // The first: its expected seq is stale, so the store refuses it.
    await store.hung[0]!.land().catch(() => {});
    await vi.advanceTimersByTimeAsync(0);
    expect(t.durableProgress.lastSeq).toBe(3);
    expect(Object.keys(t.progress.tasks)).toEqual(['b']);
    expect(seen).toEqual([1, 2, 3]);
    expect((await t.setCurrentPhase('Drain')).seq).toBe(4);
    expect(await stored(store)).toEqual(['1:upgrade.created', '2:upgrade.started', '3:task.added', '4:upgrade.phase_changed']);
    await t.close();
  });

  it('says that a late success found stored and adopted by a later write was adopted already, not that the next write adopts it', async () => {
    vi.useFakeTimers();
    const store = hangingStore({ hang: [3] });
    const logged: { level: string; msg: string }[] = [];
    const log = (level: string) => (_o: object, msg?: string) => void logged.push({ level, msg: msg ?? '' });
    const t = await open(store, { storeTimeoutMs: 1000, logger: { debug() {}, info: log('info'), warn: log('warn'), error() {} } });
    await t.startUpgrade();
    watch(t.addTask('a', 'A'));
    await vi.advanceTimersByTimeAsync(1001);
    // The store kept it, but its answer is still on the way: the next write finds it (CONFLICT) and adopts it.
    const hung = store.hung[0]!;
    await store.inner.append(UPGRADE, hung.events, hung.expectedSeq, hung.state);
    await expect(t.setCurrentPhase('Drain')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'adopted' } });
    expect(t.durableProgress.lastSeq).toBe(3);
    // Then the answer comes: nothing left to adopt, and the log says so.
    logged.length = 0;
    hung.answer();
    await vi.advanceTimersByTimeAsync(0);
    expect(t.durableProgress.lastSeq).toBe(3);
    expect(logged).toHaveLength(1);
    expect(logged[0]!.msg).toMatch(/adopted already/);
    expect(logged[0]!.msg).not.toMatch(/adopted by the next write/);
    await t.close();
  });

  it('warns when the write given up on lands once close() has begun: stored, but not adopted, and the sinks do not get it', async () => {
    vi.useFakeTimers();
    const store = hangingStore({ hang: [3] });
    const seen: number[] = [];
    const logged: { level: string; msg: string }[] = [];
    const log = (level: string) => (_o: object, msg?: string) => void logged.push({ level, msg: msg ?? '' });
    let flushed!: () => void;
    const sink = { name: 'rec', handle: (e: ProgressEvent) => void seen.push(e.seq), flush: () => new Promise<void>((resolve) => (flushed = resolve)) };
    const t = await open(store, { storeTimeoutMs: 1000, sinks: [sink], logger: { debug() {}, info: log('info'), warn: log('warn'), error() {} } });
    await t.startUpgrade();
    watch(t.addTask('a', 'A'));
    await vi.advanceTimersByTimeAsync(1001);
    // close() checks the store (nothing there yet), then waits for the sink's flush.
    const closed = watch(t.close());
    await vi.advanceTimersByTimeAsync(0);
    logged.length = 0;
    await store.hung[0]!.land();
    await vi.advanceTimersByTimeAsync(0);
    flushed();
    await vi.advanceTimersByTimeAsync(0);
    expect(closed.settled).toBe(true);
    // Not adopted (the sinks are being flushed): the store holds it, and the log says what that means.
    expect(seen).toEqual([1, 2]);
    expect(await stored(store.inner)).toEqual(['1:upgrade.created', '2:upgrade.started', '3:task.added']);
    expect(logged).toHaveLength(1);
    expect(logged[0]!.level).toBe('warn');
    expect(logged[0]!.msg).toMatch(/close\(\)/);
    expect(logged[0]!.msg).not.toMatch(/adopted by the next write/);
  });

  it('adopts a write given up on that the 10,000-event bound let go, when its late success comes while another write is out', async () => {
    vi.useFakeTimers();
    // Appends 3..16 hang: 3 fails (unknown outcome), 4 is given up on, 5..15 (1,000 events each) fail,
    // 16 is the write out when 4 lands.
    const store = hangingStore({ hang: Array.from({ length: 14 }, (_, i) => i + 3) });
    const t = await open(store, { storeTimeoutMs: 1000 });
    await t.startUpgrade();
    const failNext = async (command: Promise<unknown>) => {
      const w = watch(command);
      await vi.advanceTimersByTimeAsync(0);
      store.hung.at(-1)!.fail(new Error('connection reset'));
      await vi.advanceTimersByTimeAsync(0);
      expect(w.error).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    };
    await failNext(t.addTask('w1', 'W1'));
    const givenUp = watch(t.addTask('a', 'A'));
    await vi.advanceTimersByTimeAsync(1001);
    expect(givenUp.error).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'timeout', fromSeq: 3, toSeq: 3 } });
    const late = store.hung.at(-1)!;
    // A long outage after it: 11,000 events of unknown outcome, past the bound; the writes in between
    // the first and the latest are let go first, the one given up on among them.
    const tasks = Array.from({ length: 1000 }, (_, i) => ({ taskId: `t${i}`, taskName: `T${i}` }));
    for (let i = 0; i < 11; i++) await failNext(t.addTasks(tasks));
    // The store is back: a write goes out, and the one given up on lands and is answered meanwhile.
    const next = watch(t.setCurrentPhase('Drain'));
    await vi.advanceTimersByTimeAsync(0);
    await late.land();
    await vi.advanceTimersByTimeAsync(0);
    expect(t.durableProgress.lastSeq).toBe(2);
    // The write out finds it (CONFLICT) and adopts it: it was remembered again on its late success.
    await store.hung.at(-1)!.land().catch(() => {});
    await vi.advanceTimersByTimeAsync(0);
    expect(next.error).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'adopted', adoptedFromSeq: 3, adoptedToSeq: 3 } });
    expect(t.progress.tasks.a?.status).toBe('not_started');
    expect((await t.setCurrentPhase('Drain')).seq).toBe(4);
    expect(await stored(store)).toEqual(['1:upgrade.created', '2:upgrade.started', '3:task.added', '4:upgrade.phase_changed']);
    await t.close();
  });

  it('ignores the write given up on when it lands after the next write (the store refuses it: CONFLICT)', async () => {
    vi.useFakeTimers();
    const store = hangingStore({ hang: [3] });
    const seen: number[] = [];
    const logged: object[] = [];
    const logger = { debug() {}, info: (o: object) => void logged.push(o), warn: (o: object) => void logged.push(o), error() {} };
    const t = await open(store, { storeTimeoutMs: 1000, logger, sinks: [{ name: 'rec', handle: (e) => void seen.push(e.seq) }] });
    await t.startUpgrade();
    const hung = watch(t.addTask('a', 'A'));
    await vi.advanceTimersByTimeAsync(1001);
    expect(hung.error).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'timeout' } });
    // The next write lands first, at the seq of the one given up on.
    const phase = await t.setCurrentPhase('Drain');
    expect(phase.seq).toBe(3);
    // Then the store gets to the old one: stale expected seq, so the store refuses it.
    await store.hung[0]!.land();
    await vi.advanceTimersByTimeAsync(0);
    expect(logged.some((o) => (o as { err?: { code?: string } }).err?.code === 'CONFLICT')).toBe(true);
    expect(t.durableProgress.lastSeq).toBe(3);
    expect(t.progress.tasks.a).toBeUndefined();
    expect((await t.addTask('a', 'A')).status).toBe('not_started');
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(await stored(store)).toEqual(['1:upgrade.created', '2:upgrade.started', '3:upgrade.phase_changed', '4:task.added']);
    await t.close();
  });

  it('takes a late failure of the write given up on quietly: no unhandled rejection, no change', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      vi.useFakeTimers();
      const store = hangingStore({ hang: [2] });
      const t = await open(store, { storeTimeoutMs: 1000 });
      const hung = watch(t.startUpgrade());
      await vi.advanceTimersByTimeAsync(1001);
      expect(hung.error).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'timeout' } });
      vi.useRealTimers();
      store.hung[0]!.fail(new Error('EIO: the late answer'));
      // Long enough for an unhandled rejection to be reported (after the microtasks of the tick).
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(unhandled).toEqual([]);
      expect(t.durableProgress.lastSeq).toBe(1);
      expect((await t.startUpgrade()).seq).toBe(2);
      await t.close();
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('waits for a slow store within the bound, however many writes follow one another', async () => {
    vi.useFakeTimers();
    // Each append takes 40 s, under a 60 s bound: three in a row take 120 s, and none is given up on.
    const store = hangingStore({ delayMs: 40_000 });
    const opening = watch(open(store));
    await vi.advanceTimersByTimeAsync(40_000);
    const t = opening.value!;
    const results = [watch(t.startUpgrade())];
    await vi.advanceTimersByTimeAsync(40_000);
    results.push(watch(t.setCurrentPhase('A')));
    await vi.advanceTimersByTimeAsync(40_000);
    results.push(watch(t.setCurrentPhase('B')));
    await vi.advanceTimersByTimeAsync(40_000);
    expect(results.map((r) => r.error)).toEqual([undefined, undefined, undefined]);
    expect(results.map((r) => (r.value as ProgressEvent | undefined)?.seq)).toEqual([2, 3, 4]);
    const closed = watch(t.close());
    await vi.advanceTimersByTimeAsync(0);
    expect(closed.settled).toBe(true);
  });

  it('waits for ever with storeTimeoutMs: Infinity (no timer)', async () => {
    vi.useFakeTimers();
    const store = hangingStore({ hang: [2] });
    const t = await open(store, { storeTimeoutMs: Infinity });
    const hung = watch(t.startUpgrade());
    await vi.advanceTimersByTimeAsync(0);
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(10 * 24 * 3600_000);
    expect(hung.settled).toBe(false);
    await store.hung[0]!.land();
    await vi.advanceTimersByTimeAsync(0);
    expect(hung.value).toMatchObject({ seq: 2 });
    await t.close();
  });
});

/** A store that answers each append through I/O (a message, as a socket or the file system would); `sent()` counts the appends. */
function answeredThroughIo(): { store: ProgressStore; sent: () => number } {
  const inner = new MemoryStore();
  let sent = 0;
  const store = delegatingStore(inner, {
    append: (id, events, expectedSeq, state) => {
      const copy = cloneState(state);
      return new Promise<void>((resolve, reject) => {
        const { port1, port2 } = new MessageChannel();
        port1.once('message', () => {
          port1.close();
          inner.append(id, events, expectedSeq, copy).then(resolve, reject);
        });
        port2.postMessage('stored');
        sent++;
      });
    },
  });
  return { store, sent: () => sent };
}

describe('the store timer after the event loop was blocked', () => {
  it('takes an answer that came in while the loop was blocked past the bound, rather than give the write up', async () => {
    // Real timers. The store answers through I/O (a message, as a socket or the file system would),
    // and right after the append goes out the process blocks for longer than storeTimeoutMs (an
    // execSync of kubectl, a big JSON.parse). When the loop runs again, Node runs the due timers
    // before it reads the I/O that came in meanwhile: the answer is there, and must count.
    const { store, sent } = answeredThroughIo();
    const t = await open(store, { storeTimeoutMs: 50 });
    const started = watch(t.startUpgrade());
    // The write loop starts one microtask after the command: the append is out, its answer on the way.
    await Promise.resolve();
    expect(sent()).toBe(2);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
    // Polled, not a fixed wait: on a loaded machine the answer's message may take more than a few ms.
    await vi.waitFor(() => expect(started.settled).toBe(true), { timeout: 2000, interval: 5 });
    expect(started.error).toBeUndefined();
    expect(started.value).toMatchObject({ seq: 2 });
    expect(t.durableProgress.lastSeq).toBe(2);
    expect((await t.setCurrentPhase('next')).seq).toBe(3);
    await t.close();
  });

  it('leaves the next write alone once that answer is taken: its command resolves, nothing is given up', async () => {
    // As above, with a second command queued behind the first: once the first append's answer is
    // read, the write loop sends the second at once, before the check the timer deferred runs. That
    // check must see that the append it was armed for is answered, not give up on the one in flight.
    const { store, sent } = answeredThroughIo();
    const infos: string[] = [];
    const logger = { debug() {}, info: (_: unknown, msg?: string) => void infos.push(msg ?? ''), warn() {}, error() {} };
    const t = await open(store, { storeTimeoutMs: 50, logger });
    const started = watch(t.startUpgrade());
    await Promise.resolve();
    expect(sent()).toBe(2);
    // Queued while the first append is out: written next, in an append of its own.
    const phase = watch(t.setCurrentPhase('next'));
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
    await vi.waitFor(() => expect(phase.settled).toBe(true), { timeout: 2000, interval: 5 });
    expect(started.value).toMatchObject({ seq: 2 });
    expect(phase.error).toBeUndefined();
    expect(phase.value).toMatchObject({ seq: 3 });
    expect(sent()).toBe(3);
    expect(t.durableProgress.lastSeq).toBe(3);
    // No append was given up on, so none was answered "late".
    expect(infos.filter((m) => m.includes('answered late'))).toEqual([]);
    expect(await stored(store)).toEqual(['1:upgrade.created', '2:upgrade.started', '3:upgrade.phase_changed']);
    await t.close();
  });
});

describe('open() after the event loop was blocked', () => {
  it('takes a load answered while the loop was blocked past the bound, rather than refuse open()', async () => {
    // As above, for open()'s own bounded calls: the load's answer comes through I/O, and the process
    // blocks right after the call went out (the timer armed) for longer than storeTimeoutMs.
    const inner = new MemoryStore();
    let blocked = false;
    const store = delegatingStore(inner, {
      load: (id) =>
        new Promise<UpgradeProgress | undefined>((resolve, reject) => {
          const { port1, port2 } = new MessageChannel();
          port1.once('message', () => {
            port1.close();
            inner.load(id).then(resolve, reject);
          });
          port2.postMessage('loaded');
          // Once the caller armed its timer (the rest of its synchronous part): blocked past the bound.
          queueMicrotask(() => {
            blocked = true;
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
          });
        }),
    });
    const t = await open(store, { storeTimeoutMs: 50 });
    expect(blocked).toBe(true);
    expect(t.progress.lastSeq).toBe(1);
    expect((await t.startUpgrade()).seq).toBe(2);
    await t.close();
  });
});

/** Runs test/child/hung-append.ts in a node process of its own: its exit code and output. */
function runChild(mode: 'hang' | 'hang-after-idle' | 'idle'): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const here = dirname(fileURLToPath(import.meta.url));
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', '--conditions=@progress/source', join(here, 'child', 'hung-append.ts'), mode], { cwd: join(here, '..'), timeout: 25_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

describe('the store timer in a process of its own', () => {
  it('keeps the process alive while a write hangs, so that the command is refused rather than left unsettled at exit', async () => {
    // A hang that holds no socket or file: were the timer not to hold the process, node would exit
    // (code 13, a top-level await never settled) without the command ever being answered.
    const { code, stdout, stderr } = await runChild('hang');
    expect(stderr).toBe('');
    expect(stdout.split('\n').filter(Boolean)).toEqual(['refused STORE_UNAVAILABLE timeout', 'next stored']);
    expect(code).toBe(0);
  });

  it('keeps the process alive while a write hangs after the tracker was idle: the timer that let go of the process holds it again', async () => {
    const { code, stdout, stderr } = await runChild('hang-after-idle');
    expect(stderr).toBe('');
    expect(stdout.split('\n').filter(Boolean)).toEqual(['first stored', 'refused STORE_UNAVAILABLE timeout', 'next stored']);
    expect(code).toBe(0);
  });

  it('does not hold the process once idle: a tracker left open does not delay the exit by the bound', async () => {
    // The default bound is 60 s; the child is killed (and this fails) after 25 s.
    const { code, stdout } = await runChild('idle');
    expect(stdout.split('\n').filter(Boolean)).toEqual(['stored', 'next stored']);
    expect(code).toBe(0);
  });
});

describe('a store that does not answer open() or close()', () => {
  it('refuses open() with STORE_UNAVAILABLE when acquire hangs, and lets go of a lock it takes late', async () => {
    vi.useFakeTimers();
    const store = hangingStore({ hangAcquire: true });
    const opening = watch(open(store, { storeTimeoutMs: 2000 }));
    await vi.advanceTimersByTimeAsync(2001); // the bound, then the turn of the loop that gives up
    expect(opening.error).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { upgradeId: UPGRADE, reason: 'timeout', timeoutMs: 2000 } });
    expect((opening.error as Error).message).toMatch(/acquire/);
    // The store takes the lock after all: given back, so that the upgrade can be opened again.
    await store.landAcquire();
    await vi.advanceTimersByTimeAsync(0);
    const t = await open(store.inner);
    await t.close();
  });

  it('refuses open() with STORE_UNAVAILABLE when load hangs, and releases the lock', async () => {
    vi.useFakeTimers();
    const store = hangingStore({ hangLoad: true });
    const opening = watch(open(store, { storeTimeoutMs: 2000 }));
    await vi.advanceTimersByTimeAsync(2001); // the bound, then the turn of the loop that gives up
    expect(opening.error).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'timeout' } });
    expect((opening.error as Error).message).toMatch(/load/);
    const t = await open(store.inner);
    await t.close();
  });

  it('refuses open() with STORE_UNAVAILABLE when the first append (upgrade.created) hangs, and releases the lock', async () => {
    vi.useFakeTimers();
    const store = hangingStore({ hang: [1] });
    const opening = watch(open(store, { storeTimeoutMs: 2000 }));
    await vi.advanceTimersByTimeAsync(2001); // the bound, then the turn of the loop that gives up
    expect(opening.error).toMatchObject({ code: 'STORE_UNAVAILABLE', context: { reason: 'timeout' } });
    // The created event lands late: the next open() loads it rather than create the upgrade again.
    await store.hung[0]!.land();
    const t = await open(store.inner);
    expect(await stored(store.inner)).toEqual(['1:upgrade.created']);
    await t.close();
  });

  it('ends close() when release hangs, and says so', async () => {
    vi.useFakeTimers();
    const store = hangingStore({ hangRelease: true });
    const warned: string[] = [];
    const t = await open(store, { storeTimeoutMs: 2000, logger: { debug() {}, info() {}, warn: (_o, msg) => void warned.push(msg ?? ''), error() {} } });
    await t.startUpgrade();
    const closed = watch(t.close());
    await vi.advanceTimersByTimeAsync(2001); // the bound, then the turn of the loop that gives up
    expect(closed.settled).toBe(true);
    expect(closed.error).toBeUndefined();
    expect(warned.some((m) => /release/.test(m))).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('the storeTimeoutMs option', () => {
  it('takes a whole number of ms from 1 to 2^31 - 1, or Infinity; refuses anything else with INVALID_ARGUMENT before it takes the lock', async () => {
    const store = new MemoryStore();
    for (const storeTimeoutMs of [0, -1, 1.5, 2 ** 31, Number.NaN, -Infinity, '60000' as never, null as never]) {
      await expectCode(() => open(store, { storeTimeoutMs }), 'INVALID_ARGUMENT');
    }
    expect(await store.load(UPGRADE)).toBeUndefined();
    for (const storeTimeoutMs of [1, 2 ** 31 - 1, Infinity]) {
      const t = await open(store, { storeTimeoutMs });
      await t.setCurrentPhase(`phase ${storeTimeoutMs}`);
      await t.close();
    }
  });
});
