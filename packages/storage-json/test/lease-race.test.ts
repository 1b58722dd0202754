// A holder that wakes from a stall while a taker is between its last "still the same, still stale"
// read and its rename must not go on writing: both would then hold the upgrade. The taker is held at
// that point by a gate on `rename` (the one step of a takeover that puts its lock in place).
import { readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as FsPromises from 'node:fs/promises';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { EventFactory } from '@progress/core/testing';

let gate: { reached: () => void; open: Promise<void> } | undefined;
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof FsPromises>();
  return {
    ...fs,
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
const { removeTempDirs, tempDir } = await import('./helpers.js');

afterAll(removeTempDirs);

describe('the writer lock: a takeover against a holder waking from a stall', () => {
  it('lets only one of them write: the holder checks its lock under the takeover mutex and finds it taken', async () => {
    // The holder's heartbeat never fires: a holder whose event loop stalled.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const dir = await tempDir('lease-race');
    const lock = join(dir, 'upgrades', 'u1', 'writer.lock');
    const holder = new JsonFileStore({ directory: dir, lockLeaseMs: 1000, durability: 'none' });
    const f = new EventFactory('u1');
    await holder.append('u1', f.batch(3), 0, f.state!);
    // The holder's lock as one of another PID namespace whose lease ran out: a taker may judge it stale.
    const owner = JSON.parse(await readFile(lock, 'utf8')) as Record<string, unknown>;
    await writeFile(lock, `${JSON.stringify({ ...owner, pidNs: 'pid:[1]' })}\n`);
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    // Past half a lease since the holder's last counted stamp: its next write checks its lock.
    await new Promise((resolve) => setTimeout(resolve, 700));
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
});
