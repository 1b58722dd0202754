import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
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
