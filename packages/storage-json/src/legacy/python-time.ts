const DATETIME = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}(?::?\d{2})?(?::?\d{2}(?:\.\d+)?)?)?$/;

/**
 * Parses a Python `str(datetime)` (`2025-10-20 05:25:01.056236+00:00`) or `isoformat()` value into
 * an ISO 8601 UTC string with milliseconds (microseconds are truncated, as Python's
 * `isoformat(timespec='milliseconds')` does). A naive value (no offset) is taken as UTC, which is
 * what the old module wrote (`datetime.now(timezone.utc)`). Returns `undefined` when it is not one.
 */
export function parsePythonDatetime(value: string): string | undefined {
  const m = DATETIME.exec(value.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac = '', zone = 'Z'] = m;
  const ms = Number(frac.padEnd(3, '0').slice(0, 3));
  let offsetMinutes = 0;
  if (zone !== 'Z') {
    const z = /^([+-])(\d{2}):?(\d{2})?/.exec(zone)!;
    offsetMinutes = (z[1] === '-' ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3] ?? 0));
  }
  const utc = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms) - offsetMinutes * 60_000;
  if (!Number.isFinite(utc) || Number(mo) < 1 || Number(mo) > 12 || Number(d) > 31 || Number(h) > 23 || Number(mi) > 59 || Number(s) > 60) return undefined;
  return new Date(utc).toISOString();
}

const TIMEDELTA = /^(?:(-?\d+) days?, )?(-?\d+):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/;

/**
 * Parses a Python `str(timedelta)` into milliseconds (fractions of a ms kept):
 * `0:00:00.000780` is 0.78, `-1 day, 23:59:59.947690` is -52.31, `2 days, 1:00:00` is 176400000.
 * Returns `undefined` when it is not one.
 */
export function parsePythonTimedelta(value: string): number | undefined {
  const m = TIMEDELTA.exec(value.trim());
  if (!m) return undefined;
  const [, days = '0', h, mi, s, frac = ''] = m;
  const micros = Number(frac.padEnd(6, '0'));
  const seconds = Number(days) * 86_400 + Number(h) * 3600 + Number(mi) * 60 + Number(s);
  // Whole microseconds first, so -1 day + 23:59:59.947690 comes out exact.
  return (seconds * 1_000_000 + micros) / 1000;
}
