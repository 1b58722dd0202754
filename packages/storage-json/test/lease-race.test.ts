// A holder that wakes from a stall while a taker is between its last "still the same, still stale"
// read and its rename must not go on writing: both would then hold the upgrade. The taker is held at
// that point by a gate on `rename` (the one step of a takeover that puts its lock in place), or before
// its second look at the lock by a gate on the `link` of its takeover mutex.
import { readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as FsPromises from 'node:fs/promises';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { EventFactory } from '@progress/core/testing';

let gate: { reached: () => void; open: Promise<void> } | undefined;
/** Held once at a taker's link of its takeover mutex into place (before its second look at the lock). */
let mutexGate: { reached: () => void; open: Promise<void> } | undefined;
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof FsPromises>();
  return {
    ...fs,
    link: async (from: string, to: string) => {
      if (mutexGate && to.endsWith('writer.lock.takeover')) {
        const g = mutexGate;
        mutexGate = undefined;
        g.reached();
        await g.open;
      }
      return fs.link(from, to);
    },
    rename: async (from: string, to: string) => {
      if (gate && from.endsWith('.tmp') && to.endsWith('writer.lock')) {
        const g = gate;
        gate = undefined;
        g.reached();
        await g.open;
      }
      return fs.rename(from, to);
    },
  };
});

const { JsonFileStore } = await import('../src/index.js');
const { fileHandlePrototype, procIdentity, removeTempDirs, tempDir } = await import('./helpers.js');
const { hostname } = await import('node:os');
const { mkdir } = await import('node:fs/promises');
const { existsSync } = await import('node:fs');

/** A gate: `reached` resolves when the code under test gets to it, which then waits for `open()`. */
function makeGate(): { gate: { reached: () => void; open: Promise<void> }; reached: Promise<void>; open: () => void } {
  let reached!: () => void;
  let open!: () => void;
  const at = new Promise<void>((resolve) => (reached = resolve));
  return { gate: { reached, open: new Promise<void>((resolve) => (open = resolve)) }, reached: at, open };
}

afterAll(removeTempDirs);

/**
 * Makes the lock at `lock` look like one of another PID namespace whose lease ran out (a taker may
 * judge it stale), then waits past half of a 1000 ms lease, so that its holder's next write checks
 * its lock. Returns the lock's record as it was.
 */
async function lookStale(lock: string): Promise<Record<string, unknown>> {
  const owner = JSON.parse(await readFile(lock, 'utf8')) as Record<string, unknown>;
  await writeFile(lock, `${JSON.stringify({ ...owner, pidNs: 'pid:[1]' })}\n`);
  const old = new Date(Date.now() - 60_000);
  await utimes(lock, old, old);
  await new Promise((resolve) => setTimeout(resolve, 700));
  return owner;
}

describe('the writer lock: a takeover against a holder waking from a stall', () => {
  it('lets only one of them write: the holder checks its lock under the takeover mutex and finds it taken', async () => {
    // The holder's heartbeat never fires: a holder whose event loop stalled.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const dir = await tempDir('lease-race');
    const lock = join(dir, 'upgrades', 'u1', 'writer.lock');
    const holder = new JsonFileStore({ directory: dir, lockLeaseMs: 1000, durability: 'none' });
    const f = new EventFactory('u1');
    await holder.append('u1', f.batch(3), 0, f.state!);
    const owner = await lookStale(lock);
    let reached!: () => void;
    let open!: () => void;
    const atRename = new Promise<void>((resolve) => (reached = resolve));
    gate = { reached, open: new Promise<void>((resolve) => (open = resolve)) };
    const taker = new JsonFileStore({ directory: dir, lockLeaseMs: 1000, durability: 'none' });
    const taking = taker.acquire('u1');
    // (Should the taker give up instead, this fails at once rather than waiting for the gate.)
    await Promise.race([atRename, taking.then(() => Promise.reject(new Error('the taker took the lock without renaming')))]);
    // The holder wakes now, while the taker holds the mutex between its read and its rename.
    const next = f.batch(1);
    const holderAppend = holder.append('u1', next, 3, f.state!).then(
      () => 'appended',
      (err: { code?: string }) => err.code,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    open();
    await taking;
    expect(await holderAppend).toBe('CONFLICT');
    expect((JSON.parse(await readFile(lock, 'utf8')) as { token: string }).token).not.toBe(owner.token);
    // Only the taker writes: seq 4 is its own.
    const mine = { ...next[0]!, eventId: 'taker-4', message: 'written by the taker' };
    await taker.append('u1', [mine], 3, f.state!);
    const reader = new JsonFileStore({ directory: dir });
    const events = [];
    for await (const e of reader.readEvents('u1', 0)) events.push(e);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(events[3]!.eventId).toBe('taker-4');
    await Promise.all([reader.close(), taker.close(), holder.close()]);
    vi.useRealTimers();
  });

  it('lets only one of them write when the holder\'s heartbeat lands late, while the taker is between its read and its rename: a late stamp renews nothing', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const dir = await tempDir('lease-late-beat');
    const lock = join(dir, 'upgrades', 'u1', 'writer.lock');
    const holder = new JsonFileStore({ directory: dir, lockLeaseMs: 1000, durability: 'none' });
    const f = new EventFactory('u1');
    await holder.append('u1', f.batch(3), 0, f.state!);
    await lookStale(lock);
    const g = makeGate();
    gate = g.gate;
    const taker = new JsonFileStore({ directory: dir, lockLeaseMs: 1000, durability: 'none' });
    const taking = taker.acquire('u1');
    await Promise.race([g.reached, taking.then(() => Promise.reject(new Error('the taker took the lock without renaming')))]);
    // The holder's heartbeat fires now, late (its last counted stamp was more than half a lease ago):
    // the taker may have judged the lock stale before this stamp, so it must not count as a renewal.
    vi.advanceTimersByTime(400);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const next = f.batch(1);
    const holderAppend = holder.append('u1', next, 3, f.state!).then(
      () => 'appended',
      (err: { code?: string }) => err.code,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    g.open();
    await taking;
    expect(await holderAppend).toBe('CONFLICT');
    const mine = { ...next[0]!, eventId: 'taker-4', message: 'written by the taker' };
    await taker.append('u1', [mine], 3, f.state!);
    const reader = new JsonFileStore({ directory: dir });
    const events = [];
    for await (const e of reader.readEvents('u1', 0)) events.push(e);
    expect(events.map((e) => e.eventId).slice(3)).toEqual(['taker-4']);
    await Promise.all([reader.close(), taker.close(), holder.close()]);
    vi.useRealTimers();
  });
});

describe('the writer lock: a stale lock stamped again while a taker takes it over', () => {
  it('is not taken: the taker looks at it again under the takeover mutex, sees the fresh stamp, and gets CONFLICT', async () => {
    const dir = await tempDir('lease-restamped');
    await mkdir(join(dir, 'upgrades', 'u1'), { recursive: true });
    const lock = join(dir, 'upgrades', 'u1', 'writer.lock');
    // A holder in another container of this machine, whose stamps stopped for more than a lease (its
    // event loop stalled): stale by its lease.
    const text = `${JSON.stringify({ pid: 1, hostname: hostname(), token: 'holder', createdAt: 'then', ...(await procIdentity()), pidNs: 'pid:[1]', leaseMs: 1000 })}\n`;
    await writeFile(lock, text);
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    const g = makeGate();
    mutexGate = g.gate;
    const taker = new JsonFileStore({ directory: dir, lockLeaseMs: 1000, durability: 'none' });
    const taking = taker.acquire('u1').then(
      () => 'taken',
      (err: { code?: string }) => err.code,
    );
    await g.reached;
    // The holder wakes and stamps its lock, between the taker's first look and its look under the mutex.
    const now = new Date();
    await utimes(lock, now, now);
    g.open();
    expect(await taking).toBe('CONFLICT');
    expect(await readFile(lock, 'utf8')).toBe(text);
    await taker.close();
  });
});

describe('a holder whose lock was taken over before its writer opened', () => {
  /** `holder` holds u1 by acquire(), no writer open yet; its lock is then taken over by another store, which it returns. */
  async function takenOver(dir: string, holder: InstanceType<typeof JsonFileStore>): Promise<InstanceType<typeof JsonFileStore>> {
    const lock = join(dir, 'upgrades', 'u1', 'writer.lock');
    await holder.acquire('u1');
    await lookStale(lock);
    const taker = new JsonFileStore({ directory: dir, lockLeaseMs: 1000, durability: 'none' });
    await taker.acquire('u1');
    return taker;
  }

  it('leaves the torn tail of the log alone (the new holder\'s to cut) and gets CONFLICT', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const dir = await tempDir('lease-lost-torn');
    const f = new EventFactory('u1');
    const seeding = new JsonFileStore({ directory: dir, durability: 'none' });
    await seeding.append('u1', f.batch(3), 0, f.state!);
    await seeding.close();
    const log = join(dir, 'upgrades', 'u1', 'events.jsonl');
    await writeFile(log, Buffer.concat([await readFile(log), Buffer.from('{"c":"0000')]));
    const before = await readFile(log);
    const holder = new JsonFileStore({ directory: dir, lockLeaseMs: 1000, durability: 'none' });
    const taker = await takenOver(dir, holder);
    await expect(holder.append('u1', f.batch(1), 3, f.state!)).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(await readFile(log)).toEqual(before);
    await Promise.all([taker.close(), holder.close()]);
    vi.useRealTimers();
  });

  it('does not import the legacy file into the new holder\'s folder, and gets CONFLICT', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const dir = await tempDir('lease-lost-legacy');
    await mkdir(join(dir, 'progress'));
    await writeFile(join(dir, 'progress', 'upgrade_u1.json'), JSON.stringify({ upgrade_id: 'u1', plan_id: 'p', cluster_name: 'c', status: 'in_progress', tasks: {} }));
    const holder = new JsonFileStore({ directory: dir, lockLeaseMs: 1000, durability: 'none' });
    const taker = await takenOver(dir, holder);
    const state = (await holder.load('u1'))!;
    const f = new EventFactory('u1');
    const event = { ...f.batch(1)[0]!, seq: state.lastSeq + 1 };
    await expect(holder.append('u1', [event], state.lastSeq, { ...state, lastSeq: event.seq })).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(existsSync(join(dir, 'upgrades', 'u1', 'events.jsonl'))).toBe(false);
    await Promise.all([taker.close(), holder.close()]);
    vi.useRealTimers();
  });

});

describe('a holder whose lock was taken over while a snapshot of it waited', () => {
  it('writes that snapshot no more: the folder is the new holder\'s', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const dir = await tempDir('lease-lost-snapshot');
    const lock = join(dir, 'upgrades', 'u1', 'writer.lock');
    const snapshot = join(dir, 'upgrades', 'u1', 'snapshot.json');
    // The first snapshot's write waits at a gate: the next one queues behind it.
    const proto = await fileHandlePrototype(dir);
    const { writeFile: original } = proto;
    const g = makeGate();
    proto.writeFile = async function (this: unknown, ...args: unknown[]) {
      if (typeof args[0] === 'string' && args[0].startsWith('{"v":1,"lastSeq":2,')) {
        g.gate.reached();
        await g.gate.open;
      }
      return original.apply(this, args);
    };
    try {
      const holder = new JsonFileStore({ directory: dir, lockLeaseMs: 1000, durability: 'none', snapshotEvery: 2 });
      const f = new EventFactory('u1');
      await holder.append('u1', f.batch(2), 0, f.state!);
      await g.reached;
      await holder.append('u1', f.batch(2), 2, f.state!);
      // Taken over now (the holder's lock as a stale one of another container), before the queued snapshot is written.
      const owner = JSON.parse(await readFile(lock, 'utf8')) as Record<string, unknown>;
      await writeFile(lock, `${JSON.stringify({ ...owner, pidNs: 'pid:[1]' })}\n`);
      const old = new Date(Date.now() - 60_000);
      await utimes(lock, old, old);
      const taker = new JsonFileStore({ directory: dir, lockLeaseMs: 1000, durability: 'none' });
      await taker.acquire('u1');
      g.open();
      await holder.close();
      expect((JSON.parse(await readFile(snapshot, 'utf8')) as { lastSeq: number }).lastSeq).toBe(2);
      await taker.close();
    } finally {
      proto.writeFile = original;
      vi.useRealTimers();
    }
  });
});
