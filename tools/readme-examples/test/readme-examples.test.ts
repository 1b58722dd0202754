import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkReadmes, extractBlocks, findReadmes, formatProblem, readReadmes, type CheckResult } from '../src/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const FIXTURE = 'tools/readme-examples/test/fixtures/examples.md';

// One TypeScript program for every README and the fixture: building it is what costs (seconds).
let readmes: string[];
let result: CheckResult;
beforeAll(() => {
  readmes = findReadmes(root);
  result = checkReadmes(root, readReadmes(root, [...readmes, FIXTURE]));
}, 120_000);

describe('README examples', () => {
  it('every ts/js code block of every README compiles against the packages', () => {
    const problems = result.problems.filter((p) => p.readme !== FIXTURE).map(formatProblem);
    expect(
      problems,
      'README examples that do not compile: fix the example (or, for a block deliberately not compilable, put <!-- not-checked: reason --> on the line before it)',
    ).toEqual([]);
  });

  it('finds the READMEs and their examples', () => {
    // Guards the check against passing because it found nothing.
    expect(readmes).toContain('README.md');
    for (const pkg of ['core', 'storage-json', 'storage-redis', 'notifier-eventbridge', 'callbacks', 'ws-server', 'tracker']) {
      expect(readmes).toContain(`packages/${pkg}/README.md`);
    }
    const checked = result.blocks.filter((b) => b.readme !== FIXTURE && b.notChecked === undefined);
    expect(checked.length).toBeGreaterThan(0);
  });
});

describe('the checker', () => {
  it('names the README, line and column of each error, and the block it is in', () => {
    expect(result.problems.filter((p) => p.readme === FIXTURE).map(formatProblem)).toEqual([
      `${FIXTURE}:17:77: error TS2561: Object literal may only specify known properties, but 'clusterNam' does not exist in type 'ProgressTrackerOptions'. Did you mean to write 'clusterName'? (in the code block opened at line 14)`,
      `${FIXTURE}:18:15: error TS2339: Property 'beginUpgrade' does not exist on type 'ProgressTracker'. (in the code block opened at line 14)`,
      `${FIXTURE}:24:29: error TS2307: Cannot find module '@progress/core/memory' or its corresponding type declarations. (in the code block opened at line 23)`,
      `${FIXTURE}:25:10: error TS2305: Module '"@progress/storage-json"' has no exported member 'JsonStore'. (in the code block opened at line 23)`,
      `${FIXTURE}:40:33: error TS2322: Type 'number' is not assignable to type 'string'. (in the code block opened at line 37)`,
    ]);
  });

  it('takes ts, typescript and js blocks (also indented in a list), skips other languages and marked blocks', () => {
    const blocks = result.blocks.filter((b) => b.readme === FIXTURE);
    expect(blocks.map((b) => [b.fenceLine, b.lang, b.indent, b.notChecked])).toEqual([
      [5, 'ts', 0, undefined],
      [14, 'ts', 0, undefined],
      [23, 'ts', 0, undefined],
      [29, 'ts', 0, 'shows only the shape of the options'],
      [37, 'js', 3, undefined],
    ]);
  });

  it('takes a block opened on a list item\'s first line, and refuses one it cannot read (in a blockquote) rather than skip it', () => {
    const md = [
      '1. Install:', // 1
      '', // 2
      '2. ```ts', // 3: the list item starts with the block
      '   const a: number = 1;', // 4
      '   ```', // 5
      '- ~~~js', // 6
      '  const b = 2;', // 7
      '  ~~~', // 8
      '', // 9
      '> ```ts', // 10: in a blockquote
      '> const c = 3;', // 11
      '> ```', // 12
      '', // 13
      '> ```sh', // 14: not a ts/js block: left alone
      '> ls', // 15
      '> ```', // 16
    ].join('\r\n');
    const { blocks, problems } = extractBlocks('x.md', md);
    expect(blocks.map((b) => [b.fenceLine, b.lang, b.indent, b.code])).toEqual([
      [3, 'ts', 3, 'const a: number = 1;'],
      [6, 'js', 2, 'const b = 2;'],
    ]);
    expect(problems).toEqual([
      { readme: 'x.md', line: 10, message: 'a ts code block in a blockquote is not checked: move it out of the quote' },
    ]);
  });

  it('refuses a not-checked marker without a reason, or not right before a ts/js block', () => {
    const md = [
      '<!-- not-checked -->', // 1: no reason
      '```ts',
      'x',
      '```',
      '<!-- not-checked: before prose -->', // 5
      'Some prose.',
      '<!-- not-checked: before a shell block -->', // 7
      '```sh',
      'ls',
      '```',
      '<!--not-checked because -->', // 11: malformed
      '~~~ts title="a.ts"',
      'y',
      '~~~',
      '```ts',
      'unclosed', // 15: never closed
    ].join('\n');
    const { blocks, problems } = extractBlocks('x.md', md);
    expect(problems).toEqual([
      { readme: 'x.md', line: 1, message: 'a not-checked marker must say why: <!-- not-checked: reason -->' },
      { readme: 'x.md', line: 5, message: 'a not-checked marker must come right before a ts or js code block (found it before line 6)' },
      { readme: 'x.md', line: 7, message: 'a not-checked marker must come right before a ts or js code block (found it before line 8)' },
      { readme: 'x.md', line: 11, message: 'malformed not-checked marker: write <!-- not-checked: reason --> alone on its line' },
      { readme: 'x.md', line: 15, message: 'the code block opened here is never closed' },
    ]);
    expect(blocks.map((b) => [b.fenceLine, b.code, b.notChecked])).toEqual([
      [2, 'x', ''],
      [12, 'y', undefined],
      [15, 'unclosed', undefined],
    ]);
  });
});
