import { badArgument } from './arguments.js';

/**
 * Formats a duration in milliseconds exactly as Python's `str(timedelta)` does, which is how the old
 * module sent durations: `0:01:02.345000`, `1 day, 2:03:04.000005`, `-1 day, 23:59:59.947690`;
 * the microseconds appear only when they are not zero (`0:00:01`). The duration is rounded to whole
 * microseconds (as `timedelta(milliseconds=x)` does).
 *
 * @example
 * formatTimedelta(62_345); // '0:01:02.345000'
 * formatTimedelta(-52.31); // '-1 day, 23:59:59.947690'
 */
export function formatTimedelta(ms: number): string {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) throw badArgument('formatTimedelta', 'a finite number of ms', ms);
  // Whole microseconds; Python rounds half to even, which Math.round only differs from on exact halves.
  const total = roundHalfEven(ms * 1000);
  const perDay = 86_400_000_000;
  const days = Math.floor(total / perDay);
  let rest = total - days * perDay; // 0 <= rest < perDay: Python normalizes the same way
  const micros = rest % 1_000_000;
  rest = (rest - micros) / 1_000_000;
  const seconds = rest % 60;
  const minutes = Math.floor(rest / 60) % 60;
  const hours = Math.floor(rest / 3600);
  let out = `${hours}:${pad(minutes, 2)}:${pad(seconds, 2)}`;
  if (micros !== 0) out += `.${pad(micros, 6)}`;
  if (days !== 0) out = `${days} day${Math.abs(days) === 1 ? '' : 's'}, ${out}`;
  return out;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}
