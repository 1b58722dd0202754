/** The languages whose fenced blocks are checked, by the first word of the fence's info string. */
const LANGUAGES: Readonly<Record<string, 'ts' | 'js'>> = {
  ts: 'ts',
  typescript: 'ts',
  mts: 'ts',
  js: 'js',
  javascript: 'js',
  mjs: 'js',
};

/**
 * The marker that leaves the next code block out of the check. It must be the last non-blank line
 * before the block's opening fence and give a reason: `<!-- not-checked: shows only the options -->`.
 */
export const NOT_CHECKED_MARKER = /^\s*<!--\s*not-checked\s*(?::\s*(.*?))?\s*-->\s*$/;

export interface ExampleBlock {
  /** The README, as given (a path relative to the repository in messages). */
  readme: string;
  /** 1-based line of the opening fence. */
  fenceLine: number;
  /** 1-based line of the block's first line of code. */
  firstLine: number;
  /** How many columns of indentation were removed from each line (the opening fence's). */
  indent: number;
  lang: 'ts' | 'js';
  /** The info string's first word as written (`ts`, `typescript`, ...). */
  info: string;
  code: string;
  /** Set when a `<!-- not-checked: reason -->` marker precedes the block. */
  notChecked?: string;
}

export interface ExtractProblem {
  readme: string;
  line: number;
  message: string;
}

export interface Extracted {
  blocks: ExampleBlock[];
  problems: ExtractProblem[];
}

/** A fence, indented or opening a list item (`- ```ts`, `1. ```ts`): group 1 is all that comes before it. */
const OPENING_FENCE = /^(\s*(?:(?:[-*+]|\d{1,9}[.)])\s+)?)(`{3,}|~{3,})\s*(.*)$/;
/** A fence in a blockquote (`> ```ts`): its lines carry the quote's `>`, which the check does not take apart. */
const QUOTED_FENCE = /^\s*>[\s>]*(?:`{3,}|~{3,})\s*([^\s`]*)/;

/**
 * The TypeScript and JavaScript fenced code blocks of a Markdown text, with their lines. Blocks in
 * other languages (or none) are skipped. A fence may be indented (inside a list item), or open a
 * list item (`1. ```ts`): that many columns are removed from the block's lines. A ts/js block in a
 * blockquote is reported as a problem (its lines are not taken apart from the quote's `>`).
 */
export function extractBlocks(readme: string, markdown: string): Extracted {
  const lines = markdown.split(/\r?\n/);
  const blocks: ExampleBlock[] = [];
  const problems: ExtractProblem[] = [];
  let pendingMarker: { line: number; reason: string } | undefined;

  const settleMarker = (usedBy: 'block' | 'other', line: number): void => {
    if (pendingMarker && usedBy === 'other') {
      problems.push({
        readme,
        line: pendingMarker.line,
        message: `a not-checked marker must come right before a ts or js code block (found it before line ${line})`,
      });
    }
    pendingMarker = undefined;
  };

  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!;
    const lineNo = i + 1;
    const opening = OPENING_FENCE.exec(text);
    if (opening && !(opening[2]!.startsWith('`') && opening[3]!.includes('`'))) {
      const indent = opening[1]!.length;
      const fence = opening[2]!;
      const info = opening[3]!.trim().split(/\s+/)[0] ?? '';
      const closing = new RegExp(`^\\s*${fence[0] === '`' ? '`' : '~'}{${fence.length},}\\s*$`);
      let end = i + 1;
      while (end < lines.length && !closing.test(lines[end]!)) end++;
      if (end >= lines.length) {
        problems.push({ readme, line: lineNo, message: `the code block opened here is never closed` });
      }
      const lang = LANGUAGES[info.toLowerCase()];
      const marker = pendingMarker;
      if (lang) {
        const body = lines.slice(i + 1, end).map((l) => stripIndent(l, indent));
        blocks.push({
          readme,
          fenceLine: lineNo,
          firstLine: lineNo + 1,
          indent,
          lang,
          info,
          code: body.join('\n'),
          ...(marker ? { notChecked: marker.reason } : {}),
        });
        settleMarker('block', lineNo);
      } else {
        settleMarker('other', lineNo);
      }
      i = end;
      continue;
    }
    if (text.trim() === '') continue;
    // Reported rather than skipped: the check must not pass on a block it never read.
    const quoted = QUOTED_FENCE.exec(text);
    const quotedLang = quoted ? LANGUAGES[quoted[1]!.toLowerCase()] : undefined;
    if (quotedLang) {
      problems.push({ readme, line: lineNo, message: `a ${quotedLang} code block in a blockquote is not checked: move it out of the quote` });
    }
    const marker = NOT_CHECKED_MARKER.exec(text);
    if (marker) {
      settleMarker('other', lineNo);
      const reason = marker[1]?.trim() ?? '';
      if (reason === '') {
        problems.push({ readme, line: lineNo, message: 'a not-checked marker must say why: <!-- not-checked: reason -->' });
      }
      pendingMarker = { line: lineNo, reason };
    } else if (/^\s*<!--.*not-checked/.test(text)) {
      problems.push({ readme, line: lineNo, message: 'malformed not-checked marker: write <!-- not-checked: reason --> alone on its line' });
    } else {
      settleMarker('other', lineNo);
    }
  }
  settleMarker('other', lines.length);
  return { blocks, problems };
}

function stripIndent(line: string, indent: number): string {
  let n = 0;
  while (n < indent && n < line.length && (line[n] === ' ' || line[n] === '\t')) n++;
  return line.slice(n);
}
