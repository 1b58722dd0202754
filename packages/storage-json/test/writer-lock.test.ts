import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { JsonFileStore } from '../src/index.js';
import { parseStartTime } from '../src/writer-lock.js';
import { kill, spawnChild, waitForLine } from './child/spawn.js';
import { procIdentity, removeTempDirs, tempDir } from './helpers.js';

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

async function writeLock(dir: string, id: string, owner: object): Promise<string> {
  await mkdir(join(dir, 'upgrades', id), { recursive: true });
  const text = `${JSON.stringify(owner)}\n`;
  await writeFile(lockPath(dir, id), text);
  return text;
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

  it.runIf(hasProc)('never takes over a lock from another PID namespace or boot, or one without those fields, even when its pid looks dead or is ours', async () => {
    const dir = await tempDir('lock-foreign');
    const me = await procIdentity();
    const dead = await deadPid();
    const base = { hostname: hostname(), createdAt: 'then', ...me };
    const owners: Record<string, object> = {
      // Another container with the same hostname: its pids are not ours, a dead-looking one included.
      'other-ns-dead-pid': { ...base, pid: dead, token: 'a', pidNs: 'pid:[1]' },
      // Its writer is pid 1 there, or has the pid this process has here.
      'other-ns-our-pid': { ...base, pid: process.pid, token: 'b', pidNs: 'pid:[1]' },
      // Another machine that shares the disk and the hostname, or an earlier boot.
      'other-boot': { ...base, pid: dead, token: 'c', bootId: '00000000-0000-4000-8000-000000000000' },
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
