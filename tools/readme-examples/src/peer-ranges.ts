import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * Raises the lower bound of every `@progress/*` peer range (`>=0.1.0 <1.0.0`) of the packages under
 * `<root>/packages` to the version that package now has, keeping the upper bound. Run after
 * `changeset version` (see `npm run version-packages`): changesets raises dependency ranges but leaves
 * a peer range alone while the new version is inside it, so an adapter that imports what core gained
 * in this release would still say it works with the core before it, and npm would keep that one.
 *
 * @returns One line per range changed.
 * @throws When a range is not of the `>=X.Y.Z <A.B.C` form (rather than publish it unchecked).
 */
export function syncPeerRanges(root: string): string[] {
  const dir = path.join(root, 'packages');
  const files = readdirSync(dir).map((name) => path.join(dir, name, 'package.json'));
  const manifests = files.map((file) => ({ file, text: readFileSync(file, 'utf8') }));
  const versions = new Map<string, string>();
  for (const { text } of manifests) {
    const { name, version } = JSON.parse(text) as { name: string; version: string };
    versions.set(name, version);
  }
  const changed: string[] = [];
  for (const { file, text } of manifests) {
    const manifest = JSON.parse(text) as { name: string; peerDependencies?: Record<string, string> };
    let updated = false;
    for (const [dep, range] of Object.entries(manifest.peerDependencies ?? {})) {
      const version = versions.get(dep);
      if (version === undefined) continue;
      const match = /^>=(\d+\.\d+\.\d+) (<\d+\.\d+\.\d+)$/.exec(range);
      if (!match) throw new Error(`${manifest.name}: peer range "${range}" of ${dep} is not ">=X.Y.Z <A.B.C"`);
      if (match[1] === version) continue;
      manifest.peerDependencies![dep] = `>=${version} ${match[2]}`;
      changed.push(`${manifest.name}: ${dep} "${range}" -> "${manifest.peerDependencies![dep]}"`);
      updated = true;
    }
    if (updated) writeFileSync(file, `${JSON.stringify(manifest, null, 2)}\n`);
  }
  return changed;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const root = process.argv[2] ?? process.cwd();
  for (const line of syncPeerRanges(root)) console.log(line);
}
