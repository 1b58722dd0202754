// The fragment limit (maxFragments, 1008 on a flood: see security.test.ts) exists from ws 8.21.0, and
// counts empty fragments from 8.21.1 (8.21.0 also fixed CVE-2026-48779, a memory-exhaustion DoS).
// An older ws ignores the option silently: the declared ranges must not allow one. Found by a review
// on 2026-11-29: they allowed 8.18.3.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const MIN = [8, 21, 1];
const older = (v: number[]): boolean => {
  for (let i = 0; i < 3; i++) if (v[i] !== MIN[i]) return v[i]! < MIN[i]!;
  return false;
};
const lowest = (range: string): number[] => {
  const m = /^\^(\d+)\.(\d+)\.(\d+)$/.exec(range);
  if (!m) throw new Error(`expected a ^x.y.z range, got ${range}`);
  return m.slice(1).map(Number);
};

describe('the ws dependency', () => {
  it.each(['ws-server', 'tracker'])('@progress/%s declares a range whose lowest version has the fragment limit', async (pkg) => {
    const manifest = JSON.parse(await readFile(new URL(`../../${pkg}/package.json`, import.meta.url), 'utf8')) as { dependencies: Record<string, string> };
    expect(older(lowest(manifest.dependencies.ws!))).toBe(false);
  });

  it('the installed ws has it', () => {
    const { version } = createRequire(import.meta.url)('ws/package.json') as { version: string };
    expect(older(version.split('.').map(Number))).toBe(false);
  });
});
