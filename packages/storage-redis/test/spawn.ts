import { expect } from 'vitest';
import { spawnScript, type Child } from '../../../tools/test-utils/src/spawn.js';

export type { Child };

/** Runs `test/fixtures/<name>.ts` in its own process with `config` (see spawnScript). */
export function spawnFixture(name: string, config: object): Child {
  return spawnScript(new URL(`./fixtures/${name}.ts`, import.meta.url), config);
}

/**
 * Runs a closing fixture (`test/fixtures/closing*.ts`), which reports `process.getActiveResourcesInfo()`
 * right after its store's close() resolved, then what it still sees alive every 50 ms until it
 * exits. Returns that report, every later line's resources, and the exit code. Killed after 30 s,
 * only so that a failure does not hang.
 */
export async function closingReport<T>(name: string, config: object): Promise<{ closed: T; later: string[]; code: number | null }> {
  const child = spawnFixture(name, config);
  const kill = setTimeout(() => child.process.kill('SIGKILL'), 30_000);
  try {
    const closed = await child.next<T>();
    const code = await child.exited;
    const later: string[] = [];
    for (;;) {
      const line = await child.line().catch(() => undefined);
      if (line === undefined) break;
      later.push(...(JSON.parse(line) as { later: string[] }).later);
    }
    return { closed, later, code };
  } finally {
    clearTimeout(kill);
  }
}

/** What would keep a process alive: timers and sockets. */
export const kept = (resources: string[]): string[] => resources.filter((r) => /Timeout|TCP|Connect|Shutdown|Write/i.test(r));

/** What every closing case demands: no timer or socket right after close() nor later, and an exit of the process by itself (code 0). */
export function expectNothingLeft(report: { closed: { resources: string[] }; later: string[]; code: number | null }): void {
  expect(kept(report.closed.resources)).toEqual([]);
  expect(kept(report.later)).toEqual([]);
  expect(report.code).toBe(0);
}
