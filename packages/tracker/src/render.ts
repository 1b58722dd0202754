import type { ProgressEvent, ProgressStatus, TaskProgress, UpgradeProgress } from '@progress/core';
import { ProgressError, assertKnownOptions, describeValue, estimateCompletion } from '@progress/core';

/** How {@link renderProgress} draws. */
export interface RenderOptions {
  /** ANSI colours. @default false */
  color?: boolean;
  /** Width of the bars, in cells. @default 30 */
  barWidth?: number;
  /** How many recent events to list under the tasks. @default 5 */
  recentEvents?: number;
  /** The clock, for the ETA. @default Date.now() */
  now?: number;
}

// An object checked against the interface, so that a new option cannot be left out of this list.
const RENDER_OPTION_NAMES = Object.keys({ color: 0, barWidth: 0, recentEvents: 0, now: 0 } satisfies Record<keyof RenderOptions, 0>);

const COLORS: Record<ProgressStatus, string> = {
  not_started: '\x1b[90m',
  in_progress: '\x1b[36m',
  completed: '\x1b[32m',
  failed: '\x1b[31m',
  paused: '\x1b[33m',
  cancelled: '\x1b[35m',
  skipped: '\x1b[90m',
};
const RESET = '\x1b[0m';
const ICONS: Record<ProgressStatus, string> = {
  not_started: '·',
  in_progress: '▶',
  completed: '✓',
  failed: '✗',
  paused: '‖',
  cancelled: '⊘',
  skipped: '↷',
};

/**
 * A bar of `width` cells for 0..100, e.g. `██████░░░░`.
 *
 * @param width A whole number of cells from 0 to 1000; anything else is `INVALID_ARGUMENT`.
 */
export function bar(percentage: number, width = 30): string {
  if (!Number.isSafeInteger(width) || width < 0 || width > 1000) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/tracker] bar: width must be a whole number from 0 to 1000, got ${describeValue(width)}`);
  }
  const clamped = Math.max(0, Math.min(100, Number.isFinite(percentage) ? percentage : 0));
  const full = Math.round((clamped / 100) * width);
  return '█'.repeat(full) + '░'.repeat(width - full);
}

/**
 * Strips control characters, so that names from elsewhere cannot move the terminal's cursor, and the
 * bidi marks, overrides and isolates, so that they cannot show a line in another order than it holds
 * (a terminal or viewer that applies bidi drew `Rollback \u202eko\u202c` as "Rollback ok"). Each
 * becomes a space. Takes any value (a field a server sent may not be the string it should be).
 */
export function safeText(text: unknown): string {
  // eslint-disable-next-line no-control-regex
  return String(text).replace(/[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, ' ');
}

/**
 * Code points a terminal draws two cells wide (East Asian Wide and Fullwidth: Hangul, CJK, kana,
 * fullwidth forms; emoji shown as emoji by default), and ones it draws in none (combining marks,
 * format characters such as a zero-width joiner).
 */
const WIDE = /[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\ua960-\ua97f\uac00-\ud7a3\uf900-\ufaff\ufe10-\ufe19\ufe30-\ufe6f\uff00-\uff60\uffe0-\uffe6\u{20000}-\u{3fffd}]|\p{Emoji_Presentation}/u;
const ZERO_WIDTH = /[\p{Mn}\p{Me}\p{Cf}]/u;
/**
 * Regional indicators are Emoji_Presentation, but come in pairs that a terminal draws as one flag in
 * two cells (or as two letters, one cell each): one each, or a flag counted four pushed columns out of line.
 */
const REGIONAL_INDICATOR = /\p{Regional_Indicator}/u;

/** The cells one code point `ch` takes in a terminal: 0, 1 or 2. */
export function cellsOf(ch: string): number {
  return ZERO_WIDTH.test(ch) ? 0 : REGIONAL_INDICATOR.test(ch) ? 1 : WIDE.test(ch) ? 2 : 1;
}

/** The cells `text` takes in a terminal. */
export function textCells(text: string): number {
  let cells = 0;
  for (const ch of text) cells += cellsOf(ch);
  return cells;
}

/**
 * `text` in exactly `cells` cells: cut between code points (never inside a surrogate pair, which
 * printed U+FFFD), ending in `ellipsis` when cut, and padded with spaces. Counted in cells, not
 * UTF-16 units: a CJK name padded by `.length` pushed the columns after it out of line.
 */
export function fitCells(text: string, cells: number, ellipsis = ''): string {
  let used = textCells(text);
  if (used > cells) {
    const mark = textCells(ellipsis);
    let out = '';
    used = 0;
    for (const ch of text) {
      const n = cellsOf(ch);
      if (used + n > cells - mark) break;
      out += ch;
      used += n;
    }
    text = `${out}${ellipsis}`;
    used += mark;
  }
  return text + ' '.repeat(Math.max(0, cells - used));
}

function paint(status: ProgressStatus, text: string, color: boolean): string {
  return color ? `${COLORS[status]}${text}${RESET}` : text;
}

const pct = (n: number): string => `${n.toFixed(1).padStart(5)}%`;

function depthOf(task: TaskProgress, tasks: Record<string, TaskProgress>): number {
  let depth = 0;
  let parent = task.parentTaskId;
  while (parent !== null && depth < 10) {
    depth++;
    parent = tasks[parent]?.parentTaskId ?? null;
  }
  return depth;
}

/** Tasks in tree order: each parent followed by its children. */
function treeOrder(tasks: Record<string, TaskProgress>): TaskProgress[] {
  const all = Object.values(tasks);
  const children = new Map<string | null, TaskProgress[]>();
  for (const t of all) {
    const key = t.parentTaskId !== null && tasks[t.parentTaskId] ? t.parentTaskId : null;
    const siblings = children.get(key);
    if (siblings) siblings.push(t);
    else children.set(key, [t]);
  }
  const out: TaskProgress[] = [];
  const walk = (key: string | null) => {
    for (const t of children.get(key) ?? []) {
      out.push(t);
      if (out.length <= all.length) walk(t.taskId);
    }
  };
  walk(null);
  return out;
}

/**
 * The progress of an upgrade as terminal lines: a header, the overall bar, a bar per task (nested
 * under its parent) and the last events. Pure: the CLI's `demo` and `watch` print it.
 */
export function renderProgress(state: Readonly<UpgradeProgress>, given: RenderOptions | null = {}): string[] {
  // null is no options, as everywhere else; a misspelt `colour` or `barwidth` was left out without a word.
  const options: RenderOptions = given ?? {};
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/tracker] renderProgress: options must be an object, got ${describeValue(options)}`);
  }
  assertKnownOptions(options, RENDER_OPTION_NAMES, { source: '@progress/tracker', what: 'renderProgress() options' });
  if (options.color !== undefined && typeof options.color !== 'boolean') {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/tracker] renderProgress: color must be true or false, got ${describeValue(options.color)}`);
  }
  // NaN left the ETA out without a word; a BigInt threw a bare TypeError.
  if (options.now !== undefined && (typeof options.now !== 'number' || !Number.isFinite(options.now))) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/tracker] renderProgress: now must be a finite number of ms since the epoch, got ${describeValue(options.now)}`);
  }
  const whole = (value: unknown, name: string, min: number, max: number): void => {
    if (value !== undefined && !(Number.isSafeInteger(value) && (value as number) >= min && (value as number) <= max)) {
      throw new ProgressError('INVALID_ARGUMENT', `[@progress/tracker] renderProgress: ${name} must be a whole number from ${min} to ${max}, got ${describeValue(value)}`);
    }
  };
  whole(options.barWidth, 'barWidth', 1, 1000);
  whole(options.recentEvents, 'recentEvents', 0, 1000);
  const color = options.color ?? false;
  const width = options.barWidth ?? 30;
  const lines: string[] = [];
  const now = options.now ?? Date.now();
  const eta = estimateCompletion(state, now);
  lines.push(
    `${safeText(state.upgradeId)}  cluster ${safeText(state.clusterName)}  plan ${safeText(state.planId)}  ` +
      paint(state.status, safeText(state.status).toUpperCase(), color) +
      (state.currentPhase ? `  phase: ${safeText(state.currentPhase)}` : ''),
  );
  lines.push(`overall ${bar(state.overallPercentage, width)} ${pct(state.overallPercentage)}${eta ? `  eta ${etaText(eta, now)}` : ''}`);
  const tasks = treeOrder(state.tasks);
  const depths = tasks.map((t) => depthOf(t, state.tasks));
  const nameWidth = Math.min(36, Math.max(8, ...tasks.map((t, i) => textCells(safeText(t.taskName)) + 2 * depths[i]!)));
  for (const [i, task] of tasks.entries()) {
    const indent = '  '.repeat(depths[i]!);
    const name = fitCells(safeText(`${indent}${task.taskName}`), nameWidth);
    // Numbers too may come from a server's snapshot as anything: no field reaches the terminal as it came.
    const steps = task.totalSteps !== null ? ` ${safeText(task.completedSteps)}/${safeText(task.totalSteps)}` : '';
    const extra = task.status === 'failed' && task.errorMessage ? `  ${safeText(task.errorMessage)}` : task.currentStep ? `  ${safeText(task.currentStep)}` : '';
    const retry = task.retryCount > 0 ? ` (retry ${safeText(task.retryCount)})` : '';
    lines.push(paint(task.status, `${ICONS[task.status]} ${name} ${bar(task.percentage, Math.round(width * 0.66))} ${pct(task.percentage)}${steps}${retry}${extra}`, color));
  }
  const recent = (options.recentEvents ?? 5) > 0 ? lastEvents(state, options.recentEvents ?? 5) : [];
  if (recent.length) {
    lines.push('recent:');
    for (const e of recent) lines.push(`  #${safeText(e.seq)} ${safeText(e.timestamp).slice(11, 19)} ${safeText(e.type).padEnd(16)} ${safeText(e.message)}`);
  }
  if (state.status === 'failed' && state.errorMessage) lines.push(paint('failed', `error: ${safeText(state.errorMessage)}`, color));
  return lines;
}

/**
 * The ETA as its UTC time of day (`14:05:09Z`), with its date in front when that is not today's
 * (`2026-12-03 14:05:09Z`): a time alone for an ETA days away read as later today.
 */
function etaText(eta: string, now: number): string {
  const t = eta.indexOf('T');
  const today = new Date(now).toISOString();
  const time = `${eta.slice(t + 1, t + 9)}Z`;
  return eta.slice(0, t) === today.slice(0, today.indexOf('T')) ? time : `${eta.slice(0, t)} ${time}`;
}

/** The last `n` task events held in the state's task windows, by seq. */
export function lastEvents(state: Readonly<UpgradeProgress>, n: number): ProgressEvent[] {
  const all: ProgressEvent[] = [];
  for (const task of Object.values(state.tasks)) all.push(...task.recentEvents);
  all.sort((a, b) => a.seq - b.seq);
  return all.slice(-n);
}

/** One plain line for an event: what `watch` prints when stdout is not a terminal. */
export function renderEventLine(event: ProgressEvent, state?: Readonly<UpgradeProgress>): string {
  // Its fields are printed whatever they hold (safely); what is not an object at all is not an event.
  if (event === null || typeof event !== 'object' || Array.isArray(event)) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/tracker] renderEventLine: event must be an object, got ${describeValue(event)}`);
  }
  if (state !== undefined && state !== null && (typeof state !== 'object' || Array.isArray(state))) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/tracker] renderEventLine: state must be an upgrade state, got ${describeValue(state)}`);
  }
  const task = event.taskId ? ` ${safeText(event.taskId)}` : '';
  const p = event.percentage !== undefined ? ` ${safeText(event.percentage)}%` : '';
  const overall = state ? ` overall=${safeText(state.overallPercentage)}%` : '';
  // Every field may come from a server or a store: none may reach the terminal with its control characters.
  return `${safeText(event.timestamp)} #${safeText(event.seq)} ${safeText(event.upgradeId)} ${safeText(event.type)}${task} ${safeText(event.status)}${p} ${safeText(event.message)}${overall}`;
}
