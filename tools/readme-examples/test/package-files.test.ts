import { execFileSync, execSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// What a user gets from npm: the tarball `npm pack` makes of each published package. `--dry-run`
// lists it without building (dist/ is listed only when built, so it is not checked here).
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const PACKAGES = ['core', 'storage-json', 'storage-redis', 'notifier-eventbridge', 'callbacks', 'ws-server', 'tracker'];

function packedFiles(pkg: string): string[] {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: path.join(root, 'packages', pkg),
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const [report] = JSON.parse(out) as [{ files: { path: string }[] }];
  return report.files.map((f) => f.path);
}

/** Relative link targets of a Markdown text (`[text](target)`), without #fragments. */
function relativeLinks(markdown: string): string[] {
  const links = [...markdown.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!);
  return links.filter((l) => !/^[a-z][a-z0-9+.-]*:/i.test(l) && !l.startsWith('#')).map((l) => l.replace(/#.*$/, ''));
}

describe.each(PACKAGES)('the @progress/%s tarball', (pkg) => {
  const files = packedFiles(pkg);

  it('carries the license text, the README and no tests', () => {
    // MIT asks that the notice go with every copy; package.json's "license" field alone is not it.
    expect(files).toContain('LICENSE');
    expect(readFileSync(path.join(root, 'packages', pkg, 'LICENSE'), 'utf8')).toBe(readFileSync(path.join(root, 'LICENSE'), 'utf8'));
    expect(files).toContain('README.md');
    expect(files.filter((f) => /\.test\.ts$|(^|\/)test\//.test(f))).toEqual([]);
  });

  it("links from its README only to files the tarball holds (npm's page has nothing else)", () => {
    const readme = readFileSync(path.join(root, 'packages', pkg, 'README.md'), 'utf8');
    const missing = relativeLinks(readme).filter((l) => !files.includes(path.posix.normalize(l)));
    expect(missing, 'a relative link that leaves the package is broken on npmjs.com: link https://www.npmjs.com/package/@progress/<name> instead').toEqual([]);
  });
});

// `files` ships all of dist/, and tsc only adds to it: a module whose source was deleted or renamed
// stayed in dist/ (its source map pointing at a src/ file the tarball no longer holds) and went out
// with the next `npm publish` from a working copy that had built it before. The build starts from an
// empty dist/. Checked by running the build script with a stand-in `tsc` that notes what it finds.
describe.each(PACKAGES)('the build script of @progress/%s', (pkg) => {
  it('empties dist/ before it compiles, so no file of a deleted source is published', () => {
    const manifest = JSON.parse(readFileSync(path.join(root, 'packages', pkg, 'package.json'), 'utf8')) as { scripts: { build: string } };
    const dir = mkdtempSync(path.join(tmpdir(), `progress-build-${pkg}-`));
    try {
      const bin = path.join(dir, 'bin');
      mkdirSync(bin);
      mkdirSync(path.join(dir, 'dist', 'old'), { recursive: true });
      writeFileSync(path.join(dir, 'dist', 'renamed-module.js'), 'export const stale = 1;\n');
      writeFileSync(path.join(dir, 'dist', 'old', 'gone.d.ts'), 'export {};\n');
      const tsc = path.join(bin, 'tsc');
      writeFileSync(tsc, '#!/bin/sh\nmkdir -p dist && ls -R dist > seen.txt && echo "$@" > args.txt && echo "export {};" > dist/index.js\n');
      chmodSync(tsc, 0o755);
      execSync(manifest.scripts.build, { cwd: dir, stdio: 'pipe', env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` } });
      expect(readFileSync(path.join(dir, 'args.txt'), 'utf8').trim()).toBe('-p tsconfig.build.json');
      expect(readFileSync(path.join(dir, 'seen.txt'), 'utf8')).not.toMatch(/renamed-module|gone\.d\.ts|old/);
      expect(existsSync(path.join(dir, 'dist', 'renamed-module.js'))).toBe(false);
      expect(existsSync(path.join(dir, 'dist', 'index.js'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// The tests import each package's src/ through the `@progress/source` condition, so a user's install
// (dist/, what tsc makes of src/ by tsconfig.build.json) is exercised by nothing in the suite: an
// export, `main`, `types` or bin pointing at a file the build does not make, a bin without its
// shebang, or a module importing what the package does not depend on (a devDependency, there in this
// repository, missing from a user's install) all passed every test. Checked from the source, without
// a build: each path must be the build's output of a source file, and every import a dependency.
interface Manifest {
  name: string;
  exports: Record<string, string | Record<string, string>>;
  main?: string;
  types?: string;
  bin?: Record<string, string>;
  files: string[];
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

/** The source file tsc (rootDir src, outDir dist) builds `target` from: `./dist/a/b.d.ts` and `./dist/a/b.js` from `src/a/b.ts`. */
function sourceOf(target: string): string | undefined {
  const m = /^(?:\.\/)?dist\/(.+?)(?:\.d\.ts|\.js)$/.exec(target);
  return m ? `src/${m[1]}.ts` : undefined;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

describe.each(PACKAGES)('the entry points of @progress/%s', (pkg) => {
  const dir = path.join(root, 'packages', pkg);
  const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Manifest;

  it('are what the build makes of a source file: every export, main, types and bin', () => {
    expect(manifest.files).toContain('dist');
    const wrong: string[] = [];
    const expectBuiltFrom = (where: string, target: string | undefined, source: string, ext: '.js' | '.d.ts'): void => {
      const wanted = `./dist/${source.slice('src/'.length, -'.ts'.length)}${ext}`;
      if (target === undefined || path.posix.normalize(target) !== path.posix.normalize(wanted)) wrong.push(`${where} is ${target}, not ${wanted} (built from ${source})`);
    };
    for (const [subpath, entry] of Object.entries(manifest.exports)) {
      if (subpath === './package.json') continue;
      const conditions = typeof entry === 'string' ? { default: entry } : entry;
      const source = conditions['@progress/source']?.replace(/^\.\//, '');
      if (source === undefined || !existsSync(path.join(dir, source))) {
        wrong.push(`exports["${subpath}"]["@progress/source"] is ${source}, which does not exist`);
        continue;
      }
      expectBuiltFrom(`exports["${subpath}"].types`, conditions.types, source, '.d.ts');
      expectBuiltFrom(`exports["${subpath}"].default`, conditions.default, source, '.js');
      if (subpath === '.') {
        expectBuiltFrom('main', manifest.main, source, '.js');
        expectBuiltFrom('types', manifest.types, source, '.d.ts');
      }
    }
    for (const [name, target] of Object.entries(manifest.bin ?? {})) {
      const source = sourceOf(target);
      if (source === undefined || !target.endsWith('.js') || !existsSync(path.join(dir, source))) wrong.push(`bin "${name}" is ${target}, which the build does not make`);
      // tsc keeps a first line `#!...`; without it, the bin npm links is run by the shell, not by node.
      else if (!readFileSync(path.join(dir, source), 'utf8').startsWith('#!/usr/bin/env node\n')) wrong.push(`bin "${name}": ${source} does not start with #!/usr/bin/env node`);
    }
    expect(wrong).toEqual([]);
  });

  it('import nothing the package does not depend on (a devDependency is not in a user\'s install)', () => {
    const allowed = new Set([manifest.name, ...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.peerDependencies ?? {})]);
    const stray: string[] = [];
    for (const file of sourceFiles(path.join(dir, 'src'))) {
      // `import type` counts too: the .d.ts keeps it, and a user's compiler resolves it.
      for (const { fileName: spec } of ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles) {
        if (spec.startsWith('.') || spec.startsWith('node:')) continue;
        const name = spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');
        if (!allowed.has(name)) stray.push(`${path.relative(dir, file)} imports ${spec}`);
      }
    }
    expect(stray).toEqual([]);
  });
});

// The top README's "Packages" table tells a user what each package pulls in ("Install only what you
// use"): its "depends on" column must name every runtime dependency the package's package.json
// declares (besides @progress/core, the peer every adapter shares), and nothing it does not.
describe("the top README's table of packages", () => {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const rows = new Map<string, string>();
  for (const m of readme.matchAll(/^\| \[`@progress\/([a-z-]+)`\]\([^)]*\) \|.*\| ([^|]+) \|$/gm)) rows.set(m[1]!, m[2]!.trim());

  it('has a row for every published package', () => {
    expect([...rows.keys()].sort()).toEqual([...PACKAGES].sort());
  });

  it.each(PACKAGES)('names the runtime dependencies of @progress/%s', (pkg) => {
    const manifest = JSON.parse(readFileSync(path.join(root, 'packages', pkg, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    const declared = Object.keys(manifest.dependencies ?? {}).filter((d) => !d.startsWith('@progress/'));
    const cell = rows.get(pkg) ?? '';
    if (cell === 'all of the above') {
      // The meta package: its own third-party dependencies are those of the packages it composes.
      const others = new Set([...rows].filter(([p]) => p !== pkg).flatMap(([, c]) => c.split(/,\s*/)));
      expect(declared.filter((d) => !others.has(d))).toEqual([]);
      return;
    }
    // `nothing` and Node's own modules (`node:fs`) are no npm dependency.
    const named = cell === 'nothing' ? [] : cell.split(/,\s*/).filter((d) => !d.startsWith('node:'));
    expect(named.sort()).toEqual(declared.sort());
  });
});

// notifier-eventbridge's README gives Node 20 users the `overrides` that hold the AWS SDK's own
// dependencies at the versions tested here: they must be the lock file's, every one of them, or the
// advice pins what CI never ran (or leaves out one that a fresh install moves to Node 22's).
describe("notifier-eventbridge's README overrides for Node 20", () => {
  it("are the lock file's versions of the AWS SDK client's dependencies, and its pin the package's", () => {
    const readme = readFileSync(path.join(root, 'packages/notifier-eventbridge/README.md'), 'utf8');
    const block = /Staying on Node 20[\s\S]*?```json\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block, 'the README has the json block of overrides').toBeDefined();
    const { overrides } = JSON.parse(block!) as { overrides: Record<string, string> };
    const lock = (JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version?: string }> }).packages;
    const locked: Record<string, string> = {};
    for (const [key, entry] of Object.entries(lock)) {
      const name = /^node_modules\/(@(?:aws-sdk|smithy)\/[^/]+)$/.exec(key)?.[1];
      if (name && name !== '@aws-sdk/client-eventbridge' && entry.version) locked[name] = entry.version;
    }
    expect(overrides).toEqual(locked);
    const manifest = JSON.parse(readFileSync(path.join(root, 'packages/notifier-eventbridge/package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(manifest.dependencies['@aws-sdk/client-eventbridge']).toBe(lock['node_modules/@aws-sdk/client-eventbridge']?.version);
  });
});
