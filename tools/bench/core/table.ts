/** One measured figure, printed as a row of the result table. */
export interface Row {
  /** What was measured. */
  name: string;
  /** The median, formatted. */
  value: string;
  /** min..max over the iterations, formatted; empty when there is one sample. */
  spread: string;
  /** The median computed from CPU time instead of wall-clock time, formatted; empty when not measured. */
  cpu?: string;
  /** The target, in words; `-` for a figure kept for reference. */
  target: string;
  /** `PASS`, `FAIL`, or `info` for a reference figure. */
  result: 'PASS' | 'FAIL' | 'info';
}

const HEADERS = ['measurement', 'median', 'min..max', 'by CPU time', 'target', 'result'] as const;

/** Prints the rows as an aligned plain-text table. */
export function printTable(rows: readonly Row[]): void {
  const cells = rows.map((r) => [r.name, r.value, r.spread, r.cpu ?? '', r.target, r.result]);
  const widths = HEADERS.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: readonly string[]): string =>
    c.map((v, i) => (i >= 1 && i <= 3 ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join('  ').trimEnd();
  console.log(line(HEADERS));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) console.log(line(c));
}

/** 1234567 -> "1,234,567". */
export const int = (n: number): string => Math.round(n).toLocaleString('en-US');

/** Microseconds with two decimals. */
export const micros = (n: number): string => `${n.toFixed(2)} us`;
