import { execSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// Every adapter takes @progress/core as a peer, `>=<min> <1.0.0`. `changeset version` raises the
// tracker's dependencies and the adapters' devDependency on core, but leaves a peer range alone while
// the new core is inside it: after a release where core gained exports the adapters now import
// (redactUrl, assertKnownOptions, isLogger, ...), @progress/storage-redis@0.2.0 still said it works
// with @progress/core@0.1.0. npm then keeps a user's installed core 0.1.0 when they upgrade the
// adapter, and the adapter fails at import (`does not provide an export named 'redactUrl'`).
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(root, 'node_modules', '.bin');

type Manifest = { name: string; version: string; peerDependencies?: Record<string, string>; scripts?: Record<string, string> };
const read = (file: string): Manifest => JSON.parse(readFileSync(file, 'utf8')) as Manifest;

/** The `@progress/*` peer ranges whose lower bound is below that package's version in `dir`. */
function stalePeerRanges(dir: string): string[] {
  const manifests = readdirSync(path.join(dir, 'packages')).map((p) => read(path.join(dir, 'packages', p, 'package.json')));
  const versions = new Map(manifests.map((m) => [m.name, m.version]));
  const stale: string[] = [];
  for (const m of manifests) {
    for (const [dep, range] of Object.entries(m.peerDependencies ?? {})) {
      const version = versions.get(dep);
      if (version === undefined) continue;
      const min = /^>=(\d+\.\d+\.\d+) <\d+\.\d+\.\d+$/.exec(range)?.[1];
      if (min !== version) stale.push(`${m.name}@${m.version} peers on ${dep} "${range}", built with ${dep}@${version}`);
    }
  }
  return stale;
}

describe('the @progress/* peer ranges', () => {
  it('start at the version of the package they peer on, in the repository as it is', () => {
    expect(stalePeerRanges(root)).toEqual([]);
  });

  it('start at the new version after `npm run version-packages` of a release where core gains an export', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'progress-version-'));
    try {
      // What `changeset version` reads and writes: the workspace manifests, the config and one changeset.
      cpSync(path.join(root, 'package.json'), path.join(dir, 'package.json'));
      mkdirSync(path.join(dir, '.changeset'));
      cpSync(path.join(root, '.changeset', 'config.json'), path.join(dir, '.changeset', 'config.json'));
      writeFileSync(
        path.join(dir, '.changeset', 'core-new-export.md'),
        "---\n'@progress/core': minor\n'@progress/storage-redis': patch\n---\n\nNew in core: a helper, which RedisStore now imports.\n",
      );
      cpSync(path.join(root, 'tools', 'readme-examples', 'src'), path.join(dir, 'tools', 'readme-examples', 'src'), { recursive: true });
      for (const group of ['packages', 'tools']) {
        for (const name of readdirSync(path.join(root, group))) {
          mkdirSync(path.join(dir, group, name), { recursive: true });
          cpSync(path.join(root, group, name, 'package.json'), path.join(dir, group, name, 'package.json'));
        }
      }
      const script = read(path.join(root, 'package.json')).scripts?.['version-packages'];
      expect(script).toBeDefined();
      execSync(script!, { cwd: dir, stdio: 'pipe', env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` } });
      const before = read(path.join(root, 'packages', 'core', 'package.json')).version;
      expect(read(path.join(dir, 'packages', 'core', 'package.json')).version, 'the changeset bumps core').not.toBe(before);
      expect(stalePeerRanges(dir)).toEqual([]);
      // The upper bound is kept.
      expect(read(path.join(dir, 'packages', 'storage-redis', 'package.json')).peerDependencies?.['@progress/core']).toMatch(/ <1\.0\.0$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
