import type { ProgressEvent, UpgradeProgress } from '@progress/core';
import { cellsOf, renderEventLine, renderProgress, safeText } from '../render.js';

/** Where and how a live view prints. */
export interface LiveViewOptions {
  out?: NodeJS.WriteStream;
  /** Redraw bars in place (a terminal) or print a line per event. @default out.isTTY */
  tty?: boolean;
  /** @default tty and NO_COLOR unset */
  color?: boolean;
  /** Minimum time between redraws, ms. @default 100 */
  intervalMs?: number;
}

/**
 * Live progress in a terminal: on a TTY, bars redrawn in place (at most every `intervalMs`); else a
 * plain line per event, for logs and pipes. Respects NO_COLOR.
 */
export class LiveView {
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  readonly #color: boolean;
  readonly #interval: number;
  #lines = 0;
  /**
   * When it last drew (`performance.now()`, monotonic): with Date.now(), a wall clock set back an
   * hour (an NTP step) made the time since the last drawing an hour below zero, and the next
   * drawing waited on a timer of an hour, the bars standing still meanwhile.
   */
  #last = -Infinity;
  #timer: NodeJS.Timeout | undefined;
  #state: Readonly<UpgradeProgress> | undefined;

  constructor(options: LiveViewOptions = {}) {
    this.#out = options.out ?? process.stdout;
    this.#tty = options.tty ?? this.#out.isTTY === true;
    this.#color = options.color ?? (this.#tty && !('NO_COLOR' in process.env && process.env.NO_COLOR !== ''));
    this.#interval = options.intervalMs ?? 100;
  }

  get tty(): boolean {
    return this.#tty;
  }

  /**
   * The clock the ETA is reckoned by (ms since the epoch): this machine's, unless the source tells
   * its own (a ws-server's `serverTime`): a server's clock is kept right, as the writer's that stamped
   * the upgrade's start is; a laptop's may be minutes off.
   */
  now: () => number = Date.now;

  /** Prints a line above the live area. Control characters become spaces: a line may quote a server or a store. */
  say(text: string): void {
    this.#clear();
    this.#out.write(`${safeText(text)}\n`);
    this.#lines = 0;
    if (this.#state && this.#tty) this.#draw();
  }

  /** Shows `state` (after `event`, when there is one). */
  update(state: Readonly<UpgradeProgress>, event?: ProgressEvent): void {
    this.#state = state;
    if (!this.#tty) {
      // A state without an event (the first snapshot, or one after a resync) gets a line too: an idle
      // upgrade would otherwise show nothing at all until its next event.
      this.#out.write(`${event ? renderEventLine(event, state) : renderStateLine(state)}\n`);
      return;
    }
    const now = performance.now();
    if (now - this.#last >= this.#interval) this.#draw();
    else this.#timer ??= setTimeout(() => this.#draw(), this.#interval - (now - this.#last));
  }

  /**
   * The upgrade shown is gone (deleted, or replaced by a new run not read yet): its bars leave the
   * screen, and neither a later line nor {@link finish} draws them again as if it were still there.
   */
  forget(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#clear();
    this.#lines = 0;
    this.#state = undefined;
  }

  /** Draws the last state once more and stops redrawing. */
  finish(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    // The last drawing is not redrawn: every line of it, however many rows the terminal has.
    if (this.#tty && this.#state) this.#draw(true);
    else if (this.#state) this.#out.write(`${renderProgress(this.#state, { color: false, recentEvents: 0, now: this.now() }).join('\n')}\n`);
    this.#lines = 0;
  }

  #clear(): void {
    if (this.#tty && this.#lines > 0) this.#out.write(`\x1b[${this.#lines}A\x1b[0J`);
  }

  #draw(whole = false): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!this.#state) return;
    this.#last = performance.now();
    const columns = this.#out.columns || 100;
    const width = Math.max(40, columns);
    // Laid out for 40 columns at least, but cut to the terminal's: a line that wraps takes a row the
    // next redraw's cursor-up does not go back over (a split pane narrower than 40 columns).
    let lines = renderProgress(this.#state, { color: this.#color, barWidth: Math.min(30, Math.floor(width / 4)), now: this.now() }).map((l) => truncate(l, columns - 1));
    // The cursor goes up no further than the top of the screen: with more lines than the terminal has
    // rows, the next redraw could not go back over those that scrolled off, and each one left a copy.
    const rows = this.#out.rows;
    if (!whole && rows && lines.length > rows - 1) {
      const keep = Math.max(0, rows - 2);
      lines = [...lines.slice(0, keep), truncate(`… ${lines.length - keep} more lines (a taller terminal shows them)`, columns - 1)];
    }
    this.#clear();
    this.#out.write(`${lines.join('\n')}\n`);
    this.#lines = lines.length;
  }
}

/** One plain line for a state shown without an event: where the upgrade is, as the events that follow it are. */
function renderStateLine(state: Readonly<UpgradeProgress>): string {
  const tasks = Object.values(state.tasks);
  const done = tasks.filter((t) => t.status === 'completed' || t.status === 'skipped').length;
  const phase = state.currentPhase ? ` phase=${safeText(state.currentPhase)}` : '';
  return `${safeText(state.updatedAt)} ${safeText(state.upgradeId)} state ${safeText(state.status)} at seq ${state.lastSeq} overall=${safeText(state.overallPercentage)}%${phase} tasks=${done}/${tasks.length}`;
}

// Cuts a line to `width` visible cells, keeping ANSI colour codes out of the count. Counted in cells
// by code point: a CJK character or an emoji takes two, and a line cut by UTF-16 unit was wider than
// the terminal (it wrapped, and the next redraw's cursor-up left rows of the old one on the screen),
// or ended in half a surrogate pair (printed as U+FFFD).
function truncate(line: string, width: number): string {
  let visible = 0;
  let full = false;
  let out = '';
  for (let i = 0; i < line.length; ) {
    if (line[i] === '\x1b') {
      const end = line.indexOf('m', i);
      if (end > 0) {
        out += line.slice(i, end + 1);
        i = end + 1;
        continue;
      }
    }
    const ch = String.fromCodePoint(line.codePointAt(i)!);
    i += ch.length;
    if (full) continue;
    const cells = cellsOf(ch);
    if (visible + cells > width) {
      full = true;
      continue;
    }
    out += ch;
    visible += cells;
  }
  return out;
}
