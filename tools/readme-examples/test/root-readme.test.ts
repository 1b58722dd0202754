import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const require = createRequire(path.join(root, 'package.json'));

/** `[major, minor]` of a version written `20.19` or `20.19.0`. */
const parse = (version: string): [number, number] => {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return [major, minor];
};

/**
 * The lowest Node 20 release an `engines.node` range takes (`^20.19.0 || >=22.12.0` -> 20.19,
 * `>=18` -> 20.0), or `undefined` when it takes none.
 */
function lowest20(range: string): [number, number] | undefined {
  const found: [number, number][] = [];
  for (const clause of range.split('||').map((c) => c.trim())) {
    const m = /^(\^|>=)\s*(\d+)(?:\.(\d+))?/.exec(clause);
    if (!m) continue;
    const [major, minor] = [Number(m[2]), Number(m[3] ?? 0)];
    if (major === 20) found.push([20, minor]);
    else if (m[1] === '>=' && major < 20) found.push([20, 0]);
  }
  return found.sort((a, b) => a[1] - b[1])[0];
}

describe('the root README', () => {
  it("names a Node.js version for the quick start that every dev dependency's engines take", () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    const named = /fresh machine with Node\.js (\d+(?:\.\d+)?)\+/.exec(readme)?.[1];
    expect(named, 'the quick start names its Node.js version as "Node.js 20.x+" (or "20+")').toBeDefined();
    const [, minor] = parse(named!);
    const manifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    // Vite comes with vitest, which `npm test` runs: its engines count too.
    const tools = new Set([...Object.keys(manifest.devDependencies), 'vite']);
    const tooOld: string[] = [];
    for (const name of tools) {
      let engines: string | undefined;
      try {
        engines = (JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as { engines?: { node?: string } }).engines?.node;
      } catch {
        continue; // a package that does not export its package.json: nothing to read
      }
      const needs = engines === undefined ? undefined : lowest20(engines);
      if (needs && needs[1] > minor) tooOld.push(`${name} needs ${engines}`);
    }
    expect(tooOld, `Node.js ${named} is too old for`).toEqual([]);
    // The repository's own engines say the same: npm warns a contributor whose Node is older.
    const own = (manifest as { engines?: { node?: string } }).engines?.node;
    expect(own === undefined ? undefined : lowest20(own), `the root package.json's engines (${own})`).toEqual([20, minor]);
  });
});
