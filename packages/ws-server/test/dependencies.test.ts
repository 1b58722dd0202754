// The fragment limit (maxFragments, 1008 on a flood: see security.test.ts) exists from ws 8.21.0, and
// counts empty fragments from 8.21.1 (8.21.0 also fixed CVE-2026-48779, a memory-exhaustion DoS). The
// cap on the pongs ws answers a peer's pings with on its own (maxPendingAutoPongs, 60 by default), which
// our slow-client check does not see, is in 8.23.0 and not in 8.21.1 or 8.22.0: without it a peer that
// pings and never reads makes the server hold its pongs without limit. An older ws ignores the options
// silently: the declared ranges must not allow one. Found by reviews on 2026-11-29: they allowed 8.18.3,
// then 8.21.1.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const MIN = [8, 23, 0];
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
  it.each(['ws-server', 'tracker'])('@progress/%s declares a range whose lowest version has the fragment and auto-pong limits', async (pkg) => {
    const manifest = JSON.parse(await readFile(new URL(`../../${pkg}/package.json`, import.meta.url), 'utf8')) as { dependencies: Record<string, string> };
    expect(older(lowest(manifest.dependencies.ws!))).toBe(false);
  });

  it('the installed ws has both limits', async () => {
    const require = createRequire(import.meta.url);
    const { version } = require('ws/package.json') as { version: string };
    expect(older(version.split('.').map(Number))).toBe(false);
    // (ws exports no lib/ path: the file is found next to its package.json.)
    const source = await readFile(new URL('lib/websocket.js', pathToFileURL(require.resolve('ws/package.json'))), 'utf8');
    expect(source).toContain('maxPendingAutoPongs');
    expect(source).toContain('maxFragments');
  });
});
