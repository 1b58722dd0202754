import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_TIMER_MS } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { JsonFileStore, type JsonFileStoreOptions } from '../src/index.js';
import { parseStartTime } from '../src/writer-lock.js';
import { kill, spawnChild, waitForLine } from './child/spawn.js';
import { procIdentity, recordingLogger, removeTempDirs, tempDir } from './helpers.js';
import { LIBFAKETIME, missingFaketime } from '../../../tools/test-utils/src/faketime.js';

afterAll(removeTempDirs);

const lockPath = (dir: string, id = 'u1') => join(dir, 'upgrades', id, 'writer.lock');
const hasProc = existsSync('/proc/self/stat');
// A new PID namespace needs root or user namespaces; --kill-child takes the node child down with unshare.
const UNSHARE = ['unshare', '--pid', '--fork', '--kill-child'];
const canUnshare = spawnSync(UNSHARE[0]!, [...UNSHARE.slice(1), 'true']).status === 0;
const NO_UNSHARE = '`unshare --pid --fork --kill-child` cannot run here (it needs root or user namespaces, and util-linux)';

/** The pid of a process that has exited and been reaped. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

/** Writes a lock file; `ageMs` sets its mtime that long ago (the holder's last stamp of its lease). */
async function writeLock(dir: string, id: string, owner: object, ageMs = 0): Promise<string> {
  await mkdir(join(dir, 'upgrades', id), { recursive: true });
  const text = `${JSON.stringify(owner)}\n`;
  // Renamed into place, as a taker does: a new file, not ours rewritten.
  await writeFile(`${lockPath(dir, id)}.test.tmp`, text);
  const at = new Date(Date.now() - ageMs);
  await utimes(`${lockPath(dir, id)}.test.tmp`, at, at);
  await rename(`${lockPath(dir, id)}.test.tmp`, lockPath(dir, id));
  return text;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Blocks the event loop, as a long GC pause or a stuck synchronous call would: no timer runs meanwhile. */
const stall = (ms: number) => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Polls `attempt` until it resolves, or throws its last error after `timeoutMs`. */
async function eventually<T>(attempt: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(100);
    }
  }
}

describe('the writer lock across PID namespaces, boots and pid reuse', () => {
  it.runIf(hasProc)('records the boot id, PID namespace and start time of its writer', async () => {
    const dir = await tempDir('lock-fields');
    const store = new JsonFileStore({ directory: dir });
    await store.acquire('u1');
    const owner = JSON.parse(await readFile(lockPath(dir), 'utf8'));
    expect(owner).toMatchObject({ pid: process.pid, hostname: hostname(), ...(await procIdentity()) });
    expect(owner.pidNs).toMatch(/^pid:\[\d+\]$/);
    expect(Number.isSafeInteger(owner.startTime)).toBe(true);
    await store.close();
  });

  it.runIf(hasProc)('never takes over a fresh lock from another PID namespace, or one without those fields, even when its pid looks dead or is ours', async () => {
    const dir = await tempDir('lock-foreign');
    const me = await procIdentity();
    const dead = await deadPid();
    const base = { hostname: hostname(), createdAt: 'then', ...me };
    const owners: Record<string, object> = {
      // Another container with the same hostname: its pids are not ours, a dead-looking one included.
      'other-ns-dead-pid': { ...base, pid: dead, token: 'a', pidNs: 'pid:[1]' },
      // Its writer is pid 1 there, or has the pid this process has here.
      'other-ns-our-pid': { ...base, pid: process.pid, token: 'b', pidNs: 'pid:[1]' },
      // An older writer, or a foreign one: no boot id, namespace or start time to go by.
      'no-fields': { pid: dead, hostname: hostname(), token: 'd', createdAt: 'then' },
      'no-start-time': { ...base, pid: dead, token: 'e', startTime: undefined },
    };
    const store = new JsonFileStore({ directory: dir });
    for (const [id, owner] of Object.entries(owners)) {
      const text = await writeLock(dir, id, owner);
      const pid = (owner as { pid: number }).pid;
      const message = expect.stringMatching(new RegExp(`pid ${pid} on host "${hostname()}".*cannot be checked from here.*if that writer is really gone, delete ${lockPath(dir, id)}`));
      await expect(store.acquire(id), id).rejects.toMatchObject({ code: 'CONFLICT', message });
      await expect(store.delete(id), id).rejects.toMatchObject({ code: 'CONFLICT' });
      expect(await readFile(lockPath(dir, id), 'utf8'), id).toBe(text);
    }
    await store.close();
  });

  it.runIf(hasProc)('takes over a dead pid of this boot and PID namespace, and a pid that an unrelated process got since (its start time differs)', async () => {
    const dir = await tempDir('lock-reuse');
    const me = await procIdentity();
    // A live process whose command name holds spaces and parentheses, as field 2 of /proc/<pid>/stat may.
    const sleep = join(dir, 'a) b (c');
    await copyFile('/bin/sleep', sleep);
    await chmod(sleep, 0o755);
    const other = spawn(sleep, ['30']);
    try {
      await new Promise((r) => other.once('spawn', r));
      const real = await procIdentity(other.pid!);
      expect(real.startTime).toBeGreaterThan(0);
      const store = new JsonFileStore({ directory: dir });
      const base = { hostname: hostname(), createdAt: 'then', ...me };
      // Alive, started when the lock says: its writer.
      await writeLock(dir, 'alive', { ...base, pid: other.pid, token: 'a', startTime: real.startTime });
      await expect(store.acquire('alive')).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining(`pid ${other.pid} on host`) });
      // The same pid, but the writer that took the lock started at another time: the pid was reused.
      await writeLock(dir, 'reused', { ...base, pid: other.pid, token: 'b', startTime: real.startTime! - 1 });
      await store.acquire('reused');
      expect(JSON.parse(await readFile(lockPath(dir, 'reused'), 'utf8'))).toMatchObject({ pid: process.pid, ...me });
      // Gone: no such pid.
      await writeLock(dir, 'dead', { ...base, pid: await deadPid(), token: 'c' });
      await store.acquire('dead');
      expect(JSON.parse(await readFile(lockPath(dir, 'dead'), 'utf8'))).toMatchObject({ pid: process.pid, ...me });
      await store.close();
    } finally {
      other.kill('SIGKILL');
    }
  });

  it.runIf(hasProc)('is not taken over by a worker thread of the same process (same pid, a copy of the module that does not know its token)', async () => {
    const dir = await tempDir('lock-thread');
    const child = spawnChild('thread-lock.ts', [dir]);
    try {
      // Both lines may come in one chunk: the whole output, once the child is done.
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      await new Promise((resolve) => child.once('exit', resolve));
      expect(out.trim().split('\n')).toEqual(['worker: refused CONFLICT', 'main: appended']);
    } finally {
      kill(child);
    }
  });

  it.runIf(hasProc)('takes over a lock of this very process that no one stamps any more (a worker thread that ended), once its lease ran out', async () => {
    const dir = await tempDir('lock-orphan');
    const me = await procIdentity();
    const owner = { pid: process.pid, hostname: hostname(), token: 'a-thread-that-ended', createdAt: 'then', ...me, leaseMs: 1000 };
    const store = new JsonFileStore({ directory: dir, lockLeaseMs: 1000 });
    // Stamped just now: its holder (another thread) lives.
    await writeLock(dir, 'fresh', owner);
    await expect(store.acquire('fresh')).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('held in this very process') });
    // Not stamped for longer than its lease: its holder is gone.
    await writeLock(dir, 'stale', owner, 5_000);
    await store.acquire('stale');
    expect(JSON.parse(await readFile(lockPath(dir, 'stale'), 'utf8'))).toMatchObject({ pid: process.pid, ...me });
    await store.close();
  });

  it.runIf(hasProc)('never lets another store of this process take a lock a store here holds, however old its last stamp looks', async () => {
    const dir = await tempDir('lock-held-here');
    const holder = new JsonFileStore({ directory: dir });
    const other = new JsonFileStore({ directory: dir });
    try {
      await holder.acquire('u1');
      const text = await readFile(lockPath(dir), 'utf8');
      // Its mtime put a minute back (a stamp the file system lost, a clock put right): the token is
      // one this process holds, so the lock is live whatever its lease says.
      const old = new Date(Date.now() - 60_000);
      await utimes(lockPath(dir), old, old);
      await expect(other.acquire('u1')).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining(`held for writing by another store of this process (pid ${process.pid})`) });
      await expect(other.delete('u1')).rejects.toMatchObject({ code: 'CONFLICT' });
      expect(await readFile(lockPath(dir), 'utf8')).toBe(text);
    } finally {
      await other.close();
      await holder.close();
    }
  });

  it.runIf(hasProc)('gives CONFLICT naming the takeover mutex and its holder when a live taker holds it, and leaves the dead lock alone', async () => {
    const dir = await tempDir('takeover-held');
    const store = new JsonFileStore({ directory: dir });
    // A dead writer's lock (its pid is gone), and the takeover mutex of a taker on another host.
    const text = await writeLock(dir, 'u1', { hostname: hostname(), createdAt: 'then', ...(await procIdentity()), pid: await deadPid(), token: 'dead' });
    await writeFile(`${lockPath(dir)}.takeover`, `${JSON.stringify({ pid: 4242, hostname: 'another-host', token: 'taking', createdAt: 'then' })}\n`);
    const message = expect.stringMatching(new RegExp(`held for writing by pid 4242 on host "another-host".*written on another host.*delete ${lockPath(dir)}\\.takeover$`));
    await expect(store.acquire('u1')).rejects.toMatchObject({ code: 'CONFLICT', message });
    expect(await readFile(lockPath(dir), 'utf8')).toBe(text);
    await store.close();
  });

  it('reads the start time after the last parenthesis of /proc/<pid>/stat', () => {
    const tail = 'S 1 2 3 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 98765 3133440 381';
    expect(parseStartTime(`123 (node) ${tail}`)).toBe(98765);
    expect(parseStartTime(`123 (a) b (c) d) ${tail}`)).toBe(98765);
    expect(parseStartTime(`123 ( ) ${tail}\n`)).toBe(98765);
    expect(parseStartTime('123 (node) S 1 2')).toBeUndefined();
    expect(parseStartTime('garbage')).toBeUndefined();
  });

  it('gives CONFLICT to a writer in another PID namespace while this process holds the lock (pidns2)', async (ctx) => {
    ctx.skip(!canUnshare, NO_UNSHARE);
    const dir = await tempDir('lock-pidns');
    const store = new JsonFileStore({ directory: dir });
    await store.acquire('u1');
    // In its own namespace our pid does not exist (kill gives ESRCH) or is another process.
    const child = spawnChild('lock-try.ts', [dir, 'u1'], UNSHARE);
    try {
      const line = await waitForLine(child, /^(locked|refused) /);
      expect(line).toMatch(new RegExp(`^refused CONFLICT .*pid ${process.pid} on host .*another PID namespace.*delete ${lockPath(dir)}`));
      expect(JSON.parse(await readFile(lockPath(dir), 'utf8')).pid).toBe(process.pid);
    } finally {
      await kill(child);
    }
    await store.close();
  });

  it('gives CONFLICT to a second container-like writer when both are pid 1 of their own PID namespace (pidns)', async (ctx) => {
    ctx.skip(!canUnshare, NO_UNSHARE);
    const dir = await tempDir('lock-pidns1');
    const a = spawnChild('lock-try.ts', [dir, 'u1'], UNSHARE);
    try {
      expect(await waitForLine(a, /^(locked|refused) /)).toBe('locked 1');
      const b = spawnChild('lock-try.ts', [dir, 'u1'], UNSHARE);
      try {
        // pid 1 is B's own pid there, with a token B does not hold: it used to read as B's earlier life.
        expect(await waitForLine(b, /^(locked|refused) /)).toMatch(/^refused CONFLICT .*pid 1 on host .*another PID namespace/);
      } finally {
        await kill(b);
      }
      // And from this namespace too, where pid 1 is an unrelated, live init.
      const store = new JsonFileStore({ directory: dir });
      await expect(store.acquire('u1')).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('another PID namespace') });
      await store.close();
    } finally {
      await kill(a);
    }
  });
});

describe('a lock left by a reboot, or by a container whose lease ran out', () => {
  // A wall clock set back after the holder's last stamp (an NTP step, a VM's clock an hour ahead
  // put right) leaves that stamp in the future. The taker runs under libfaketime an hour behind the
  // clock that stamped the lock (file times left as they are: NO_FAKE_STAT), its monotonic clock real.
  it.runIf(hasProc)('takes over a dead lock of this boot stamped by a clock since set back an hour, once it went a lease and a second unstamped (not an hour later)', async (ctx) => {
    ctx.skip(missingFaketime() !== undefined, missingFaketime());
    const dir = await tempDir('lock-clock-back');
    const dead = await deadPid();
    // A container of this pod that died (another PID namespace, its pid meaningless here), its last stamp just made.
    await writeLock(dir, 'u1', { hostname: hostname(), createdAt: 'then', ...(await procIdentity()), pid: dead, token: 'gone', pidNs: 'pid:[1]', leaseMs: 1000 });
    const clockBack = ['env', `LD_PRELOAD=${LIBFAKETIME}`, 'FAKETIME=-1h', 'FAKETIME_DONT_FAKE_MONOTONIC=1', 'NO_FAKE_STAT=1'];
    const child = spawnChild('lock-retry.ts', [dir, 'u1', '1000'], clockBack);
    try {
      // Before, the stamp's age came out an hour below zero ("refreshed 0 ms ago"), and the lock of
      // the dead writer was refused for an hour and a lease.
      expect(await waitForLine(child, /^(locked|gave up) /, 30_000)).toMatch(/^locked \d+$/);
    } finally {
      await kill(child);
    }
  }, 40_000);

  // A live holder stamps every third of its lease, rounded up to the second, and counts its lease
  // renewed while a stamp lands within half a lease of the last (a busy process is late): one mtime
  // can then stand for a second and half a lease, as here (stamps 480 ms apart from just after a
  // whole second: three carry the same second). Seen unchanged for a lease alone, a live lock of a
  // 1 s lease (the least allowed) was taken over.
  it.runIf(hasProc)('never takes over a live lock of this boot stamped as its holder may, judged by a 1 s lease', async () => {
    const dir = await tempDir('lock-live-lease');
    const dead = await deadPid();
    const stampNow = () => new Date(Math.ceil(Date.now() / 1000) * 1000);
    await sleep(1010 - (Date.now() % 1000));
    // A container of this pod (another PID namespace, its pid meaningless here) that goes on stamping.
    await writeLock(dir, 'u1', { hostname: hostname(), createdAt: 'then', ...(await procIdentity()), pid: dead, token: 'alive', pidNs: 'pid:[1]', leaseMs: 1000 });
    await utimes(lockPath(dir), stampNow(), stampNow());
    const stamper = setInterval(() => void utimes(lockPath(dir), stampNow(), stampNow()).catch(() => {}), 480);
    const store = new JsonFileStore({ directory: dir, lockLeaseMs: 1000 });
    try {
      const until = performance.now() + 3000;
      while (performance.now() < until) {
        await expect(store.acquire('u1')).rejects.toMatchObject({ code: 'CONFLICT' });
        await sleep(20);
      }
    } finally {
      clearInterval(stamper);
      await store.close();
    }
  }, 20_000);

  it.runIf(hasProc)('takes over a lock from another boot (another boot id) once its lease ran out, even when its pid is alive here, and logs a warning', async () => {
    const dir = await tempDir('lock-reboot');
    const me = await procIdentity();
    const logger = recordingLogger();
    const store = new JsonFileStore({ directory: dir, logger });
    const otherBoot = '00000000-0000-4000-8000-000000000000';
    const beforeReboot = { pid: process.pid, hostname: hostname(), token: 'before-reboot', createdAt: 'then', ...me, bootId: otherBoot };
    // Stamped a moment ago: another machine with this hostname may be writing (its pid means nothing here).
    const fresh = await writeLock(dir, 'u1', beforeReboot, 1_000);
    await expect(store.acquire('u1')).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('another boot id') });
    expect(await readFile(lockPath(dir), 'utf8')).toBe(fresh);
    // Not stamped for longer than a lease (what a reboot leaves), by a pid that is alive here (ours): taken over.
    await writeLock(dir, 'u1', beforeReboot, 31_000);
    await store.acquire('u1');
    expect(JSON.parse(await readFile(lockPath(dir), 'utf8'))).toMatchObject({ pid: process.pid, ...me });
    const warning = logger.lines.find((l) => l.level === 'warn' && /took over the writer lock/.test(l.msg ?? ''));
    expect(warning?.obj).toMatchObject({ upgradeId: 'u1', lock: lockPath(dir), previousOwner: { token: 'before-reboot' }, reason: expect.stringContaining('rebooted') });
    // Retention too deletes such an upgrade instead of skipping it as held.
    await writeLock(dir, 'u2', { pid: process.pid, hostname: hostname(), token: 'before-reboot-2', createdAt: 'then', ...me, bootId: otherBoot }, 31_000);
    await writeFile(join(dir, 'upgrades', 'u2', 'events.jsonl'), '');
    await expect(store.delete('u2')).resolves.toBe(false);
    // Another host keeps its lock, whatever its boot id: hostnames tell machines apart, boot ids only boots.
    const text = await writeLock(dir, 'u3', { pid: process.pid, hostname: 'some-other-host', token: 'x', createdAt: 'then', ...me, bootId: otherBoot });
    await expect(store.acquire('u3')).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('another host') });
    expect(await readFile(lockPath(dir, 'u3'), 'utf8')).toBe(text);
    await store.close();
  });

  it.runIf(hasProc)('takes over a lock of this boot that cannot be checked by pid once its lease ran out, and refuses it while the lease runs', async () => {
    const dir = await tempDir('lock-lease');
    const me = await procIdentity();
    const dead = await deadPid();
    const base = { hostname: hostname(), createdAt: 'then', ...me };
    const logger = recordingLogger();
    const store = new JsonFileStore({ directory: dir, logger });
    const expired: Record<string, object> = {
      // A restarted container of the same pod: same boot, a new PID namespace; its pid means nothing here.
      'other-ns': { ...base, pid: process.pid, token: 'a', pidNs: 'pid:[1]' },
      'other-ns-dead-pid': { ...base, pid: dead, token: 'b', pidNs: 'pid:[1]', leaseMs: 30_000 },
      'no-pid-ns': { ...base, pid: dead, token: 'c', pidNs: undefined },
      'no-start-time': { ...base, pid: process.pid, token: 'd', startTime: undefined },
    };
    for (const [id, owner] of Object.entries(expired)) {
      // Fresh: refused, saying when it would be taken over.
      const text = await writeLock(dir, id, owner, 2_000);
      const message = expect.stringMatching(/cannot be checked from here: .*its lease was refreshed \d+ ms ago, and it is taken over once it goes 30000 ms without/);
      await expect(store.acquire(id), id).rejects.toMatchObject({ code: 'CONFLICT', message });
      await expect(store.delete(id), id).rejects.toMatchObject({ code: 'CONFLICT' });
      expect(await readFile(lockPath(dir, id), 'utf8'), id).toBe(text);
      // Not stamped for longer than the lease: its holder is gone.
      await writeLock(dir, id, owner, 31_000);
      await store.acquire(id);
      expect(JSON.parse(await readFile(lockPath(dir, id), 'utf8')), id).toMatchObject({ pid: process.pid, leaseMs: 30_000, ...me });
      const warning = logger.lines.find((l) => l.level === 'warn' && (l.obj.previousOwner as { token?: string } | undefined)?.token === (owner as { token: string }).token);
      expect(warning?.obj.reason, id).toMatch(/its lease ran out: not refreshed for \d+ ms, more than its lease of 30000 ms/);
    }
    const kept: Record<string, [object, number, JsonFileStore?]> = {
      // The holder's own lease is longer than ours: it stamps only every third of it.
      'longer-holder-lease': [{ ...base, pid: dead, token: 'e', pidNs: 'pid:[1]', leaseMs: 120_000 }, 60_000],
      // Ours is longer than the holder's: we wait for ours.
      'longer-own-lease': [{ ...base, pid: dead, token: 'f', pidNs: 'pid:[1]', leaseMs: 1_000 }, 45_000, new JsonFileStore({ directory: dir, lockLeaseMs: 60_000 })],
      // No boot id: an older or foreign writer, which never stamps a lease, however old its mtime.
      'no-boot-id': [{ pid: dead, hostname: hostname(), token: 'g', createdAt: 'then' }, 3_600_000],
    };
    for (const [id, [owner, age, taker = store]] of Object.entries(kept)) {
      const text = await writeLock(dir, id, owner, age);
      // When it would be taken over: after the longer of the two leases.
      const message = id === 'no-boot-id' ? expect.any(String) : expect.stringContaining(`taken over once it goes ${id === 'longer-holder-lease' ? 120_000 : 60_000} ms without`);
      await expect(taker.acquire(id), id).rejects.toMatchObject({ code: 'CONFLICT', message });
      expect(await readFile(lockPath(dir, id), 'utf8'), id).toBe(text);
      if (taker !== store) await taker.close();
    }
    await store.close();
  });

  it.runIf(hasProc)('goes by its own lease for a lock whose recorded lease no writer could have (above MAX_TIMER_MS, not a whole number): taken over once that lease ran out', async () => {
    const dir = await tempDir('lock-odd-lease');
    const me = await procIdentity();
    const dead = await deadPid();
    const store = new JsonFileStore({ directory: dir });
    try {
      // A hand-edited or garbled lease: kept to, the lock of a dead container would be refused for ever.
      for (const [id, leaseMs] of [['too-long', MAX_TIMER_MS + 1], ['fraction', 90_000.5]] as const) {
        await writeLock(dir, id, { hostname: hostname(), createdAt: 'then', ...me, pid: dead, token: id, pidNs: 'pid:[1]', leaseMs }, 31_000);
        await store.acquire(id);
        expect(JSON.parse(await readFile(lockPath(dir, id), 'utf8')), id).toMatchObject({ pid: process.pid, leaseMs: 30_000 });
      }
    } finally {
      await store.close();
    }
  });

  it('keeps its lock while it lives in another PID namespace, stamping its lease, and loses it to us once it is killed and the lease has run out (pidns)', async (ctx) => {
    ctx.skip(!canUnshare, NO_UNSHARE);
    const dir = await tempDir('lock-lease-pidns');
    const child = spawnChild('lock-try.ts', [dir, 'u1', '1000'], UNSHARE);
    const logger = recordingLogger();
    const store = new JsonFileStore({ directory: dir, lockLeaseMs: 1000, logger });
    try {
      expect(await waitForLine(child, /^(locked|refused) /)).toBe('locked 1');
      // Alive: refused for more than two leases in a row (a lock it did not stamp would go stale
      // within two, its mtime being rounded up to the second), as it keeps stamping it.
      const until = Date.now() + 2_500;
      while (Date.now() < until) {
        await expect(store.acquire('u1')).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('another PID namespace') });
        await sleep(200);
      }
      expect(JSON.parse(await readFile(lockPath(dir), 'utf8'))).toMatchObject({ pid: 1, leaseMs: 1000 });
      await kill(child);
      await eventually(() => store.acquire('u1'));
      expect(JSON.parse(await readFile(lockPath(dir), 'utf8')).pid).toBe(process.pid);
      expect(logger.lines.find((l) => l.level === 'warn')?.obj).toMatchObject({ previousOwner: { pid: 1 }, reason: expect.stringContaining('its lease ran out') });
    } finally {
      await kill(child);
      await store.close();
    }
  });
});

describe('a holder whose lease lapsed', () => {
  const LEASE = 1000;

  /** A store in a new folder (`label`) holding the lock of `u1`, whose events 1-2 it appended; `log` is their file. */
  async function holding(label: string, options: Partial<JsonFileStoreOptions> = {}): Promise<{ dir: string; store: JsonFileStore; f: EventFactory; log: string }> {
    const dir = await tempDir(label);
    const store = new JsonFileStore({ directory: dir, lockLeaseMs: LEASE, ...options });
    const f = new EventFactory('u1');
    await store.append('u1', f.batch(2), 0, f.state!);
    return { dir, store, f, log: join(dir, 'upgrades', 'u1', 'events.jsonl') };
  }
  /** The takeover mutex of a taker of another host, stuck: never judged dead from here. */
  const stuckMutex = (dir: string): Promise<void> => writeFile(`${lockPath(dir)}.takeover`, `${JSON.stringify({ pid: 1, hostname: 'another-host', token: 'stuck', createdAt: 'then' })}\n`);

  it('gets CONFLICT and writes nothing when its lock was taken over meanwhile, and writes no more to that upgrade', async () => {
    const logger = recordingLogger();
    const { dir, store, f, log } = await holding('lease-lost', { logger, snapshotEvery: 1 });
    const before = await readFile(log);
    // Written after the append, in the background.
    const snapshot = await eventually(() => readFile(join(dir, 'upgrades', 'u1', 'snapshot.json')));
    // Taken over by a writer in another container, as one may once our stamps stopped for a whole
    // lease; the stall below is only as long as it takes for this holder to see its lease lapsed.
    const taker = { pid: 1, hostname: hostname(), token: 'taker', createdAt: 'now', ...(await procIdentity()), pidNs: 'pid:[1]', leaseMs: LEASE };
    const text = await writeLock(dir, 'u1', taker);
    const next = f.batch(1);
    const state = f.snapshot();
    stall(LEASE / 2 + 100);
    const message = expect.stringMatching(/the writer lock was taken over .*now held by pid 1 on host/);
    await expect(store.append('u1', next, 2, state)).rejects.toMatchObject({ code: 'CONFLICT', message });
    // For good: not only until the next stamp of the timer.
    await sleep(LEASE / 2);
    await expect(store.append('u1', next, 2, state)).rejects.toMatchObject({ code: 'CONFLICT', message });
    expect(await readFile(log)).toEqual(before);
    expect(await readFile(join(dir, 'upgrades', 'u1', 'snapshot.json'))).toEqual(snapshot);
    expect(logger.lines.some((l) => l.level === 'error' && /taken over/.test(l.msg ?? ''))).toBe(true);
    await expect(store.acquire('u1')).rejects.toMatchObject({ code: 'CONFLICT', message });
    // Its release leaves the taker's lock alone, and says so.
    await store.release('u1');
    expect(await readFile(lockPath(dir), 'utf8')).toBe(text);
    expect(logger.lines.find((l) => l.level === 'warn' && /no longer ours/.test(l.msg ?? ''))?.obj).toMatchObject({ upgradeId: 'u1', lock: lockPath(dir), owner: { token: 'taker' } });
    await store.close();
  });

  it('gets CONFLICT saying its lock file is gone when it was deleted by hand while held', async () => {
    const { dir, store, f } = await holding('lease-deleted');
    await unlink(lockPath(dir));
    const message = expect.stringContaining(`was deleted or replaced while this writer held it: ${lockPath(dir)} is gone`);
    await expect(store.append('u1', f.batch(1), 2, f.state!)).rejects.toMatchObject({ code: 'CONFLICT', message });
    await store.close();
  });

  it('keeps its lease fresh while idle, stamping every third of it: an append after a pause past half a lease needs no look at the lock', async () => {
    // Long enough that the first stamp (at 2 s) may come up to 1 s late, on a loaded machine, and
    // still renew the lease (a stamp later than half a lease after the last renews nothing).
    const lease = 6000;
    const { dir, store, f } = await holding('lease-idle', { lockLeaseMs: lease });
    // A look at the lock would wait for this mutex and fail.
    await stuckMutex(dir);
    // Idle, timers running: stamps at a third and two thirds of the lease renew it.
    await sleep(lease * 0.75);
    await store.append('u1', f.batch(1), 2, f.state!);
    await store.close();
    const reader = new JsonFileStore({ directory: dir });
    expect((await reader.load('u1'))?.lastSeq).toBe(3);
    await reader.close();
  }, 20_000);

  it('gives up its check with STORE_UNAVAILABLE after a lease when a takeover mutex stays held (a taker of another host, stuck), and writes nothing', async () => {
    const { dir, store, f, log } = await holding('lease-mutex-stuck');
    const before = await readFile(log);
    await stuckMutex(dir);
    stall(LEASE / 2 + 100);
    await expect(store.append('u1', f.batch(1), 2, f.state!)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', message: expect.stringContaining('cannot check the writer lock') });
    expect(await readFile(log)).toEqual(before);
    await store.close();
  });

  it.runIf(hasProc)('forgets the token of a lock it released: that lock file put back (a restore from backup) goes stale with its lease, as any lock of this process that it does not hold', async () => {
    const dir = await tempDir('released-token');
    const store = new JsonFileStore({ directory: dir, lockLeaseMs: LEASE });
    await store.acquire('u1');
    const text = await readFile(lockPath(dir), 'utf8');
    await store.release('u1');
    expect(existsSync(lockPath(dir))).toBe(false);
    await writeLock(dir, 'u1', JSON.parse(text) as object, 60_000);
    // Ours by pid and start time, but held by no store here now: judged by its lease, which ran out.
    await store.acquire('u1');
    expect(await readFile(lockPath(dir), 'utf8')).not.toBe(text);
    await store.close();
  });

  it('gets CONFLICT and writes nothing when its lock file was replaced by a copy of itself (a backup of it restored over it)', async () => {
    const { dir, store, f, log } = await holding('lease-replaced');
    const before = await readFile(log);
    // Same bytes, our token included, but another file: our stamps land on the old one, which no
    // taker sees, so a taker may find this one stale and take it while we write.
    const text = await readFile(lockPath(dir), 'utf8');
    await writeFile(`${lockPath(dir)}.copy`, text);
    await rename(`${lockPath(dir)}.copy`, lockPath(dir));
    const next = f.batch(1);
    const state = f.snapshot();
    const message = expect.stringContaining('was deleted or replaced while this writer held it');
    await expect(store.append('u1', next, 2, state)).rejects.toMatchObject({ code: 'CONFLICT', message });
    // For good, with the lease still fresh by the clock.
    await expect(store.append('u1', next, 2, state)).rejects.toMatchObject({ code: 'CONFLICT', message });
    expect(await readFile(log)).toEqual(before);
    await store.close();
  });

  it('goes on writing, and stamps its lock again, when the lock is still its own', async () => {
    const { dir, store, f } = await holding('lease-kept');
    // Stale on disk too, as a stalled holder's lock is: the check stamps it again.
    const old = new Date(Date.now() - 60_000);
    await utimes(lockPath(dir), old, old);
    stall(LEASE / 2 + 100);
    await store.append('u1', f.batch(1), 2, f.state!);
    expect((await stat(lockPath(dir))).mtimeMs).toBeGreaterThan(old.getTime() + 30_000);
    await store.close();
    const reader = new JsonFileStore({ directory: dir });
    expect((await reader.load('u1'))?.lastSeq).toBe(3);
    await reader.close();
  });
});
