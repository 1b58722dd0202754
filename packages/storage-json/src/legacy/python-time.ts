const DATETIME = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}(?::?\d{2})?(?::?\d{2}(?:\.\d+)?)?)?$/;

/**
 * Parses a Python `str(datetime)` (`2025-10-20 05:25:01.056236+00:00`) or `isoformat()` value into
 * an ISO 8601 UTC string with milliseconds (microseconds are truncated, as Python's
 * `isoformat(timespec='milliseconds')` does). A naive value (no offset) is taken as UTC, which is
 * what the old module wrote (`datetime.now(timezone.utc)`). Returns `undefined` when it is not one (a
 * value that is not a string included).
 */
export function parsePythonDatetime(value: string): string | undefined {
  return parse(value)?.iso;
}

/**
 * As `parsePythonDatetime`, with the microseconds kept after the milliseconds
 * (`2025-10-20T05:25:01.056236Z`): values of one shape, which order as strings in time order,
 * within a millisecond too. The legacy import orders by them; its events keep milliseconds.
 */
export function parsePythonDatetimeMicros(value: string): string | undefined {
  const parsed = parse(value);
  return parsed && `${parsed.iso.slice(0, -1)}${parsed.micros}Z`;
}

/** The time in ISO 8601 UTC with milliseconds, and the three digits of microseconds after them. */
function parse(value: string): { iso: string; micros: string } | undefined {
  // A field of a file read by a tool may be anything: what is not a string is not one either.
  if (typeof value !== 'string') return undefined;
  const m = DATETIME.exec(value.trim());
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const frac = m[7] ?? '';
  const zone = m[8] ?? 'Z';
  const ms = Number(frac.padEnd(3, '0').slice(0, 3));
  let offsetMs = 0;
  if (zone !== 'Z') {
    const z = /^([+-])(\d{2}):?(\d{2})?:?(\d{2}(?:\.\d+)?)?$/.exec(zone);
    if (!z) return undefined;
    const [oh, om, os] = [Number(z[2]), Number(z[3] ?? 0), Number(z[4] ?? 0)];
    // Python allows offsets strictly inside ±24 h, with minutes and seconds below 60.
    if (om > 59 || os >= 60) return undefined;
    offsetMs = (z[1] === '-' ? -1 : 1) * Math.floor((oh * 3600 + om * 60 + os) * 1000);
    if (Math.abs(offsetMs) >= 86_400_000) return undefined;
  }
  // Date.UTC rolls impossible fields over (Feb 31 is Mar 3, second 60 the next minute, day 0 the
  // last of the month before): a value is good only if every field reads back unchanged. The year is
  // set on its own because Date.UTC takes 0..99 as 1900..1999.
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, s, ms);
  const fields = [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds()];
  if (y < 1 || fields.some((f, i) => f !== [y, mo, d, h, mi, s][i])) return undefined;
  const utc = date.getTime() - offsetMs;
  if (!Number.isFinite(utc) || Math.abs(utc) > 8.64e15) return undefined;
  return { iso: new Date(utc).toISOString(), micros: frac.padEnd(6, '0').slice(3, 6) };
}

const TIMEDELTA = /^(?:(-?\d+) days?, )?(-?\d+):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/;

/**
 * Parses a Python `str(timedelta)` into milliseconds (fractions of a ms kept):
 * `0:00:00.000780` is 0.78, `-1 day, 23:59:59.947690` is -52.31, `2 days, 1:00:00` is 176400000.
 * Returns `undefined` when it is not one (a value that is not a string included).
 */
export function parsePythonTimedelta(value: string): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = TIMEDELTA.exec(value.trim());
  if (!m) return undefined;
  const [, days = '0', h, mi, s, frac = ''] = m;
  // str(timedelta) writes minutes and seconds as 0..59: anything else is not one it wrote.
  if (Number(mi) > 59 || Number(s) > 59) return undefined;
  const micros = Number(frac.padEnd(6, '0'));
  const seconds = Number(days) * 86_400 + Number(h) * 3600 + Number(mi) * 60 + Number(s);
  // Whole microseconds first, so -1 day + 23:59:59.947690 comes out exact.
  return (seconds * 1_000_000 + micros) / 1000;
}
