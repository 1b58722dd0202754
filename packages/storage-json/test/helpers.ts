import { mkdtemp, open, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import type { Logger } from '@progress/core';
import { join } from 'node:path';

const made: string[] = [];

/** A fresh temp folder, removed by {@link removeTempDirs}. */
export async function tempDir(label = 'json-store'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `progress-${label}-`));
  made.push(dir);
  return dir;
}

/** Removes every folder made by {@link tempDir} (call in afterAll). */
export async function removeTempDirs(): Promise<void> {
  await Promise.all(made.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

/**
 * What a lock written by process `pid` records about it on Linux (boot id, PID namespace, start
 * time), read here from /proc on its own; empty where there is no /proc.
 */
export async function procIdentity(pid: number | 'self' = 'self'): Promise<{ bootId?: string; pidNs?: string; startTime?: number }> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return {
      bootId: (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim(),
      pidNs: await readlink(`/proc/${pid}/ns/pid`),
      // Field 22; the command name in parentheses (field 2) may hold spaces and parentheses.
      startTime: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]),
    };
  } catch {
    return {};
  }
}

/** A logger that keeps what it is given, for tests that check a warning or an error. */
export function recordingLogger(): Logger & { lines: Array<{ level: string; obj: Record<string, unknown>; msg: string | undefined }> } {
  const lines: Array<{ level: string; obj: Record<string, unknown>; msg: string | undefined }> = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, obj: obj as Record<string, unknown>, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** The methods of node's FileHandle that tests replace (every file write of the store goes through them). */
export interface FileHandleMethods {
  write: (...args: unknown[]) => Promise<unknown>;
  writeFile: (...args: unknown[]) => Promise<unknown>;
  truncate: (...args: unknown[]) => Promise<unknown>;
}

/**
 * FileHandle's prototype, for tests that make the store's writes fail or wait (a full disk, a disk
 * failing under a write, a write in flight): they replace a method and put it back after.
 */
export async function fileHandlePrototype(dir: string): Promise<FileHandleMethods> {
  const probe = await open(join(dir, 'probe'), 'w');
  await probe.close();
  return Object.getPrototypeOf(probe) as FileHandleMethods;
}
