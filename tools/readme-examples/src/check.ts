import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { extractBlocks, type ExampleBlock } from './extract.js';

export interface Readme {
  /** Path relative to `root`, used in messages (`packages/core/README.md`). */
  path: string;
  text: string;
}

export interface Problem {
  readme: string;
  /** 1-based line in the README; 0 for a problem of the whole check (`readme` is then `(compiler)`). */
  line: number;
  /** 1-based column in the README, when known. */
  column?: number;
  /** The opening fence's line of the block concerned, when there is one. */
  fenceLine?: number;
  message: string;
}

export interface CheckResult {
  /** Every ts/js block found, checked or not. */
  blocks: ExampleBlock[];
  problems: Problem[];
}

/** `packages/core/README.md:34:5: error TS2353: ... (in the ts block opened at line 27)` */
export function formatProblem(p: Problem): string {
  const where = p.line === 0 ? p.readme : `${p.readme}:${p.line}${p.column === undefined ? '' : `:${p.column}`}`;
  const block = p.fenceLine === undefined ? '' : ` (in the code block opened at line ${p.fenceLine})`;
  return `${where}: ${p.message}${block}`;
}

/** Folders that hold no README of ours: installed or built files, and what .gitignore leaves out. */
const SKIPPED_DIRS = new Set(['node_modules', 'dist', 'coverage', 'tmp', 'progress-demo-data']);

/** Every README.md of the repository (any case, not in a dot folder), relative to `root`, sorted. */
export function findReadmes(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = dir === '' ? entry.name : `${dir}/${entry.name}`;
      if (entry.isDirectory()) {
        if (!SKIPPED_DIRS.has(entry.name) && !entry.name.startsWith('.')) walk(rel);
      } else if (entry.isFile() && entry.name.toLowerCase() === 'readme.md') {
        found.push(rel);
      }
    }
  };
  walk('');
  return found.sort();
}

/**
 * The compiler options of the packages' own typecheck (`tsconfig.base.json`: strict, NodeNext,
 * the `@progress/source` condition so that `@progress/*` resolves to the packages' source), plus
 * what checking JavaScript blocks needs.
 */
function compilerOptions(root: string): ts.CompilerOptions {
  const configPath = path.join(root, 'tsconfig.base.json');
  const read = ts.readConfigFile(configPath, ts.sys.readFile);
  if (read.error) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, '\n'));
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, root, undefined, configPath);
  return {
    ...parsed.options,
    noEmit: true,
    allowJs: true,
    checkJs: true,
    declaration: false,
    declarationMap: false,
    sourceMap: false,
    composite: false,
    incremental: false,
  };
}

/**
 * Typechecks the ts/js code blocks of `readmes` in one TypeScript program. Each block is a module
 * of its own, placed (in memory) in a folder at the repository's root, so it imports
 * `@progress/core` and the others through the workspace's node_modules as a user would, resolved
 * to the source by the `@progress/source` condition. Only the blocks' diagnostics are reported (the
 * packages' own typecheck covers their source).
 */
export function checkReadmes(root: string, readmes: readonly Readme[]): CheckResult {
  const blocks: ExampleBlock[] = [];
  const problems: Problem[] = [];
  for (const readme of readmes) {
    const extracted = extractBlocks(readme.path, readme.text);
    blocks.push(...extracted.blocks);
    problems.push(...extracted.problems);
  }

  const virtualDir = path.join(root, '.readme-examples');
  if (existsSync(virtualDir)) throw new Error(`${virtualDir} exists: the check needs that path free for its in-memory files`);
  const virtual = new Map<string, ExampleBlock>();
  for (const block of blocks) {
    if (block.notChecked !== undefined) continue;
    const name = `${block.readme.replace(/[^A-Za-z0-9]+/g, '_')}_L${block.fenceLine}.${block.lang === 'ts' ? 'ts' : 'js'}`;
    // `export {}` makes a block without imports a module too (top-level await, its own scope);
    // it is on the last line, so line numbers are not moved.
    virtual.set(path.join(virtualDir, name), { ...block, code: `${block.code}\nexport {};\n` });
  }

  const options = compilerOptions(root);
  const host = ts.createCompilerHost(options, true);
  const { fileExists, readFile, getSourceFile } = host;
  host.fileExists = (f) => virtual.has(path.resolve(f)) || fileExists.call(host, f);
  host.readFile = (f) => virtual.get(path.resolve(f))?.code ?? readFile.call(host, f);
  host.getSourceFile = (f, languageVersion, onError, shouldCreate) => {
    const block = virtual.get(path.resolve(f));
    if (block) return ts.createSourceFile(f, block.code, languageVersion, true);
    return getSourceFile.call(host, f, languageVersion, onError, shouldCreate);
  };

  const program = ts.createProgram({ rootNames: [...virtual.keys()], options, host });
  for (const d of [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()]) {
    problems.push({ readme: '(compiler)', line: 0, message: diagnosticText(d) });
  }
  // The examples must be checked against the source, not against a build that may be stale.
  const packagesDir = path.join(root, 'packages') + path.sep;
  const outsideSource = new Map<string, string>(); // package folder -> first such file
  for (const sf of program.getSourceFiles()) {
    const [pkg, dir] = path.resolve(sf.fileName).startsWith(packagesDir) ? path.resolve(sf.fileName).slice(packagesDir.length).split(path.sep) : [];
    if (pkg !== undefined && dir !== 'src' && !outsideSource.has(pkg)) outsideSource.set(pkg, path.relative(root, sf.fileName));
  }
  for (const file of outsideSource.values()) {
    problems.push({
      readme: '(compiler)',
      line: 0,
      message: `the examples were checked against ${file}, not the package's src: @progress/* must resolve through the @progress/source condition`,
    });
  }
  for (const [file, block] of virtual) {
    const sourceFile = program.getSourceFile(file);
    if (!sourceFile) throw new Error(`the program lost ${file}`);
    const diagnostics = [...program.getSyntacticDiagnostics(sourceFile), ...program.getSemanticDiagnostics(sourceFile)];
    for (const d of diagnostics) {
      const pos = d.start === undefined ? undefined : sourceFile.getLineAndCharacterOfPosition(d.start);
      problems.push({
        readme: block.readme,
        line: block.firstLine + (pos?.line ?? 0),
        ...(pos ? { column: pos.character + 1 + block.indent } : {}),
        fenceLine: block.fenceLine,
        message: diagnosticText(d),
      });
    }
  }
  problems.sort((a, b) => a.readme.localeCompare(b.readme) || a.line - b.line || (a.column ?? 0) - (b.column ?? 0));
  return { blocks, problems };
}

function diagnosticText(d: ts.Diagnostic): string {
  return `error TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
}

/** Reads `paths` (relative to `root`). */
export function readReadmes(root: string, paths: readonly string[]): Readme[] {
  return paths.map((p) => ({ path: p, text: readFileSync(path.join(root, p), 'utf8') }));
}
