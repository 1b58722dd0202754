import type { ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { createProgressTracker } from '../src/index.js';
import { cleanupTempDirs, spawnCli, tempDir } from './helpers.js';

// The text output prints stored names with control and bidi characters as spaces; `--json` printed
// what JSON.stringify leaves as it is: C1 controls (U+009B is CSI to a terminal that reads them, as
// ESC [ is), DEL, and the bidi overrides and isolates that show `Rollback \u202eko\u202c` as
// "Rollback ok". Escaped as \uXXXX, the JSON says the same and the terminal gets none of them.

const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  cleanupTempDirs();
});

async function cli(args: string[]): Promise<{ code: number | null; stdout: string }> {
  const run = spawnCli(args);
  children.push(run.child);
  const code = await run.exited;
  return { code, stdout: run.stdout() };
}

describe('progress ls / show --json: text a writer stored', () => {
  it('is printed with its C1 controls, DEL and bidi controls escaped, and parses back to what was stored', async () => {
    const dir = tempDir('json-escapes');
    const cluster = 'prod\u009b2J\u007f';
    const name = 'Rollback \u202eko\u202c \u2067x\u2069 \u200f\u061c\u0085';
    const t = await createProgressTracker({ upgradeId: 'u1', planId: 'p', clusterName: cluster, storage: { json: dir } });
    await t.startUpgrade();
    await t.addTask('a', name);
    await t.close();
    const ls = await cli(['ls', dir, '--json']);
    const show = await cli(['show', dir, 'u1', '--json']);
    for (const out of [ls, show]) {
      expect(out.code).toBe(0);
      expect(out.stdout).not.toMatch(/[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/);
    }
    expect((JSON.parse(ls.stdout) as Array<{ clusterName: string }>)[0]!.clusterName).toBe(cluster);
    const state = JSON.parse(show.stdout) as { clusterName: string; tasks: Record<string, { taskName: string }> };
    expect([state.clusterName, state.tasks.a!.taskName]).toEqual([cluster, name]);
  }, 20_000);
});
