import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// "One import is enough" holds for types too: every exported type of a composed package (an options
// interface, a report, a resolved-options type a function returns) is exported by @progress/tracker.
// exports.test.ts compares the runtime exports; types leave nothing at runtime, so the compiler lists them.
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const PACKAGES = ['core', 'storage-json', 'storage-redis', 'notifier-eventbridge', 'callbacks', 'ws-server'];

describe('@progress/tracker re-exports the types', () => {
  const config = ts.readConfigFile(path.join(root, 'tsconfig.base.json'), (file) => ts.sys.readFile(file));
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  const index = (pkg: string): string => path.join(root, 'packages', pkg, 'src/index.ts');
  const program = ts.createProgram([index('tracker'), ...PACKAGES.map(index)], { ...options, noEmit: true });
  const checker = program.getTypeChecker();
  const exported = (pkg: string): string[] => {
    const file = program.getSourceFile(index(pkg));
    const symbol = file && checker.getSymbolAtLocation(file);
    if (!symbol) throw new Error(`no module symbol for ${pkg}`);
    return checker.getExportsOfModule(symbol).map((s) => s.name);
  };
  const tracker = new Set(exported('tracker'));

  it.each(PACKAGES)('every export of @progress/%s, types included', (pkg) => {
    const names = exported(pkg);
    expect(names.length).toBeGreaterThan(0);
    expect(names.filter((name) => !tracker.has(name))).toEqual([]);
  });
});
