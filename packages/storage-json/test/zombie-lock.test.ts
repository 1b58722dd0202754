// Found on 2026-11-29: a writer killed with SIGKILL whose parent does not reap it (a zombie: e.g. a
// container whose pid 1 is a shell script or `sleep`, not an init) is provably dead, but kept its lock
// for ever: kill(pid, 0) succeeds for a zombie, and its start time is still the writer's. The same
// held for a takeover mutex left by a taker that died so. A zombie is now dead, unless it is only a
// process's main thread that exited while its other threads run on.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { JsonFileStore } from '../src/index.js';
import { parseState } from '../src/writer-lock.js';
import { procIdentity, recordingLogger, removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

const hasProc = existsSync('/proc/self/stat');
const hasPython = spawnSync('python3', ['-c', 'import ctypes, threading']).status === 0;
const lockPath = (dir: string, id = 'u1') => join(dir, 'upgrades', id, 'writer.lock');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const stateOf = async (pid: number) => parseState(await readFile(`/proc/${pid}/stat`, 'utf8'));

/** Polls until `/proc/<pid>/stat` shows `state` (a SIGKILL lands asynchronously). */
async function until(pid: number, state: string): Promise<void> {
  for (let i = 0; (await stateOf(pid).catch(() => undefined)) !== state; i++) {
    if (i > 200) throw new Error(`pid ${pid} never reached state ${state}`);
    await sleep(50);
  }
}

/**
 * Polls until `pid` is a zombie whose threads have all exited. A process killed with SIGKILL shows `Z`
 * for its pid while its other threads still exit, for a while on a loaded machine, and until then
 * it is not provably dead (see exitedWhole in writer-lock.ts): a take-over then is CONFLICT.
 */
async function untilExitedWhole(pid: number): Promise<void> {
  await until(pid, 'Z');
  for (let i = 0; !/^Threads:\s*1\s*$/m.test(await readFile(`/proc/${pid}/status`, 'utf8')); i++) {
    if (i > 200) throw new Error(`pid ${pid} kept more than one thread as a zombie`);
    await sleep(50);
  }
}

/** The first stdout line of a child. */
const firstLine = (child: ChildProcess) =>
  new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\n')) resolve(buf.split('\n')[0]!);
    });
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before printing a line`)));
  });

/**
 * Runs `command` in the background of a shell that then turns into `sleep`, which never reaps it, and
 * returns the background process's pid (printed by `command` itself, or by the shell) and the shell.
 */
async function unreaped(command: string): Promise<{ pid: number; parent: ChildProcess }> {
  const parent = spawn('sh', ['-c', `${command} & exec sleep 60`], { cwd: join(import.meta.dirname, '..'), stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await firstLine(parent);
  return { pid: Number(/(\d+)/.exec(line)![1]), parent };
}

/** What a lock written by `pid` of our namespace records: our boot id and namespace, its start time (a zombie keeps it). */
async function identityOf(pid: number): Promise<object> {
  const { bootId, pidNs } = await procIdentity();
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  return { bootId, pidNs, startTime: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]) };
}

/** A process killed with SIGKILL that stays a zombie. */
async function zombie(): Promise<{ pid: number; parent: ChildProcess }> {
  const { pid, parent } = await unreaped("sh -c 'echo $$; exec sleep 60'");
  process.kill(pid, 'SIGKILL');
  await until(pid, 'Z');
  return { pid, parent };
}

/** The pid of a process that has exited and been reaped. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

async function writeLock(path: string, owner: object): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(`${path}.test.tmp`, `${JSON.stringify(owner)}\n`);
  await rename(`${path}.test.tmp`, path);
}

describe.runIf(hasProc)('a writer that exited but was not reaped (a zombie)', () => {
  it('loses its lock: a JsonFileStore writer killed with SIGKILL under a parent that never reaps', async () => {
    const dir = await tempDir('zombie');
    const node = `${process.execPath} --import tsx --conditions=@progress/source test/child/lock-holder.ts ${dir} u1`;
    const { pid, parent } = await unreaped(node);
    try {
      process.kill(pid, 'SIGKILL');
      await untilExitedWhole(pid);
      const logger = recordingLogger();
      const store = new JsonFileStore({ directory: dir, logger });
      await expect(store.acquire('u1')).resolves.toBeUndefined();
      expect(JSON.parse(await readFile(lockPath(dir), 'utf8'))).toMatchObject({ pid: process.pid });
      expect(logger.lines.find((l) => l.level === 'warn')?.msg).toMatch(/took over the writer lock of a dead writer: its process has exited \(a zombie/);
      await store.close();
    } finally {
      parent.kill('SIGKILL');
    }
  }, 30_000);

  it('loses a takeover mutex it left behind', async () => {
    const dir = await tempDir('zombie-mutex');
    const { pid, parent } = await zombie();
    try {
      const base = { hostname: hostname(), createdAt: 'then', leaseMs: 30_000 };
      // A lock whose writer is gone (reaped), and the mutex of a taker that died over it, unreaped.
      await writeLock(lockPath(dir), { ...base, ...(await procIdentity()), pid: await deadPid(), token: 'writer' });
      await writeLock(`${lockPath(dir)}.takeover`, { ...base, ...(await identityOf(pid)), pid, token: 'taker' });
      const store = new JsonFileStore({ directory: dir });
      await expect(store.acquire('u1')).resolves.toBeUndefined();
      expect(JSON.parse(await readFile(lockPath(dir), 'utf8'))).toMatchObject({ pid: process.pid });
      expect(existsSync(`${lockPath(dir)}.takeover`)).toBe(false);
      await store.close();
    } finally {
      parent.kill('SIGKILL');
    }
  }, 30_000);

  it.runIf(hasPython)('keeps the lock of a process whose main thread exited while another thread runs (its pid shows Z too)', async () => {
    const dir = await tempDir('zombie-thread');
    // The main thread ends with pthread_exit(); the other one lives on (blocked: it never gets the GIL).
    const script = 'import ctypes, os, threading, time; threading.Thread(target=time.sleep, args=(60,)).start(); print(os.getpid(), flush=True); ctypes.CDLL(None).pthread_exit(None)';
    const child = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const pid = Number(await firstLine(child));
      await until(pid, 'Z');
      await writeLock(lockPath(dir), { hostname: hostname(), createdAt: 'then', leaseMs: 30_000, ...(await identityOf(pid)), pid, token: 'threads' });
      const store = new JsonFileStore({ directory: dir });
      // Seen alive (not merely unsure): the message gives no reason it could not be checked.
      const err = await store.acquire('u1').catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'CONFLICT', message: expect.stringContaining(`pid ${pid} on host`) });
      expect((err as Error).message).not.toContain('cannot be checked');
      await store.close();
    } finally {
      child.kill('SIGKILL');
    }
  }, 30_000);
});

it('reads the state after the last parenthesis of /proc/<pid>/stat', () => {
  expect(parseState('123 (a) Z (b) S 1 2 3')).toBe('S');
  expect(parseState('123 (node) Z 1 2 3')).toBe('Z');
  expect(parseState('garbled')).toBeUndefined();
});
