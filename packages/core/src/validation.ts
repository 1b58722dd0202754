import { ProgressError } from './errors.js';

const ID_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;

/** The longest delay `setTimeout` keeps, 2^31 - 1 ms; a longer one fires at once (after 1 ms). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The farthest time from the epoch a `Date` holds, in ms either way (a later one is an Invalid Date, and toISOString() throws). */
export const MAX_DATE_MS = 8.64e15;

/**
 * Checks an upgrade, plan or task id: 1..128 characters of `[A-Za-z0-9_.:-]`, not `.` or `..`, so
 * that an id is safe as a file name, a Redis key part and a URL segment.
 *
 * @throws ProgressError `INVALID_ARGUMENT` naming `what` and the value.
 */
export function assertValidId(value: unknown, what = 'id'): asserts value is string {
  if (!isValidId(value)) {
    throw new ProgressError(
      'INVALID_ARGUMENT',
      `[@progress/core] ${what} ${describe(value)} is not valid: use 1 to 128 characters of A-Z a-z 0-9 _ . : - (not "." or "..")`,
      { context: { [what]: value } },
    );
  }
}

/** True when `value` is a valid id (see {@link assertValidId}). */
export function isValidId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value) && value !== '.' && value !== '..';
}

/** Checks a free-text name: a string of `min`..`max` characters. */
export function assertText(value: unknown, what: string, min: number, max: number): asserts value is string {
  if (typeof value !== 'string' || value.length < min || value.length > max) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] ${what} must be a string of ${min} to ${max} characters, got ${describe(value)}`, {
      context: { [what]: value },
    });
  }
}

/** Checks a percentage: a finite number in 0..100. */
export function assertPercentage(value: unknown, what = 'percentage'): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 100) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] ${what} must be a number from 0 to 100, got ${describe(value)}`, {
      context: { [what]: value },
    });
  }
}

/** Checks a non-negative integer (or, with `positive`, one of at least 1). */
export function assertCount(value: unknown, what: string, positive = false): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < (positive ? 1 : 0)) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] ${what} must be a whole number ${positive ? '>= 1' : '>= 0'}, got ${describe(value)}`, {
      context: { [what]: value },
    });
  }
}

/**
 * Checks a timeout option: a whole number of ms from 1 to {@link MAX_TIMER_MS}, or, with
 * `unbounded`, `Infinity` (no timeout).
 */
export function assertTimeout(value: unknown, name: string, unbounded = false): asserts value is number {
  if (unbounded && value === Infinity) return;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > MAX_TIMER_MS) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] ${name} must be a whole number of ms from 1 to ${MAX_TIMER_MS}${unbounded ? ', or Infinity (no bound)' : ''}, got ${describe(value)}`);
  }
}

/** Checks a weight: a finite number > 0. */
export function assertWeight(value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] weight must be a finite number > 0, got ${describe(value)}`, { context: { weight: value } });
  }
}

/**
 * How many levels of objects and arrays `details` and `metadata` may nest (the object itself is
 * the first): far more than progress data needs, and far within what every copy and serialization
 * of an event or a state can take.
 */
export const MAX_DETAILS_DEPTH = 100;

/**
 * True when `value` (parsed JSON) nests objects and arrays more than `levels` levels deep. It runs on
 * every command's details: indexes and for...in, not an Object.values() array per object, which made
 * the walk cost a third of the JSON copy's time on large details (a tenth with them).
 */
function nestsDeeper(value: unknown, levels: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (levels === 0) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (nestsDeeper(value[i], levels - 1)) return true;
    return false;
  }
  // Parsed JSON: plain objects, whose keys are all their own.
  for (const key in value) if (nestsDeeper((value as Record<string, unknown>)[key], levels - 1)) return true;
  return false;
}

/**
 * Checks that `value` is a plain, JSON-serializable object and returns a deep copy made from its
 * JSON, so that the caller mutating it later, at any depth, does not change a recorded event, and
 * the event holds what a store that keeps JSON gives back. A value that throws while it is read (a
 * getter, a Proxy trap, a toJSON) is refused like any other bad input, as is one that nests deeper than
 * {@link MAX_DETAILS_DEPTH} levels.
 */
export function toDetails(value: unknown, what = 'details'): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  let notAnObject = false;
  let json: string | undefined;
  let copy: Record<string, unknown> | undefined;
  let collection: string | undefined;
  try {
    notAnObject = typeof value !== 'object' || Array.isArray(value);
    if (!notAnObject) {
      const proto = Object.getPrototypeOf(value) as unknown;
      const plain = proto === Object.prototype || proto === null;
      // JSON keeps none of a Map's or a Set's entries: they were recorded as {}, the data gone.
      collection = plain ? undefined : value instanceof Map || value instanceof WeakMap ? 'Map' : value instanceof Set || value instanceof WeakSet ? 'Set' : undefined;
      if (collection === undefined) {
        // The fast path: a plain object without keys has nothing to copy (for...in allocates
        // nothing). Not for any other object: a Date has no keys of its own, and its JSON is a string.
        let empty = plain;
        if (plain) {
          for (const _ in value) {
            empty = false;
            break;
          }
        }
        if (empty) return {};
        json = JSON.stringify(value) as string | undefined;
        // A toJSON of its own can turn the object into anything (or nothing): the stored event would
        // then lack its details, or hold something that is not an object.
        if (typeof json === 'string' && json.charCodeAt(0) === 0x7b) copy = JSON.parse(json) as Record<string, unknown>;
      }
    }
  } catch (cause) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] ${what} must be JSON-serializable`, { cause });
  }
  if (copy !== undefined) {
    // JSON takes ~4,000 levels, structuredClone (the state copies of the tracker and of the
    // callbacks) ~2,000: metadata in between was stored, then failed every open() of its upgrade.
    // (Each level takes two characters of the JSON at least: shorter details need no walk.)
    if (json!.length > 2 * MAX_DETAILS_DEPTH && nestsDeeper(copy, MAX_DETAILS_DEPTH)) {
      throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] ${what} must not nest objects and arrays more than ${MAX_DETAILS_DEPTH} levels deep`);
    }
    return copy;
  }
  if (collection !== undefined) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] ${what} must be a plain object, got a ${collection} (JSON keeps none of its entries: pass Object.fromEntries(map) or an array inside an object)`);
  }
  if (notAnObject) throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] ${what} must be a plain object, got ${describe(value)}`);
  throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] ${what} must serialize to a JSON object (its toJSON returned ${json === undefined ? 'undefined' : json.slice(0, 40)})`);
}

/**
 * The first own key of an options object that is not in `known`, or `undefined`. Only a plain
 * object's keys are checked (a literal, or one without prototype, where a misspelling is made): an
 * instance of a settings class keeps its own state in its own fields, which are not options. With
 * `everyObject`, any object's own keys are.
 */
export function unknownOption(value: object, known: readonly string[] | ReadonlySet<string>, everyObject = false): string | undefined {
  if (value === null || value === undefined) throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] unknownOption() needs the options object, got ${describe(value)}`);
  if (!Array.isArray(known) && typeof (known as Partial<ReadonlySet<string>> | null)?.has !== 'function') throw knownNamesError('unknownOption', known);
  const proto = Object.getPrototypeOf(value) as unknown;
  if (!everyObject && proto !== Object.prototype && proto !== null) return undefined;
  for (const key of Object.keys(value)) {
    if (!(Array.isArray(known) ? known.includes(key) : (known as ReadonlySet<string>).has(key))) return key;
  }
  return undefined;
}

/** How {@link assertKnownOptions} words its refusal. */
export interface KnownOptionsCheck {
  /** The package the message names, e.g. `'@progress/ws-server'`: `[@progress/ws-server] ...`. */
  source: string;
  /** Names the argument, e.g. `'ProgressWebSocketServer options'`: `... ProgressWebSocketServer options: unknown option ...`. */
  what?: string;
  /** Put before the key in the message and in `context.option`, for a nested object: `'retry.'`. */
  where?: string;
  /** A name to suggest when no known name is near, e.g. another library's name for the option. */
  hint?: (key: string) => string | undefined;
  /** Check every object's own keys, not only a plain object's (see {@link unknownOption}). */
  everyObject?: boolean;
  /** List the known names when none is near (default `true`). */
  listKnown?: boolean;
}

/**
 * Refuses an own key of an options object that is not in `known` (see {@link unknownOption} for
 * which objects' keys are checked), naming the nearest known one: a misspelt option would otherwise
 * be left out without a word, and the default the user meant to change applied instead
 * (`keyprefix` wrote beside another tenant's keys, `allowedOrigin` left a server open to every
 * origin). The message reads `[<source>] <what>: unknown option "retry.maxAttempt" (did you mean
 * "retry.maxAttempts"?)`, or lists the known names when none is near; `context.option` holds the
 * name. A Proxy trap that throws is refused as an options object that could not be read.
 *
 * @throws ProgressError `INVALID_ARGUMENT`
 */
export function assertKnownOptions(value: object, known: readonly string[] | ReadonlySet<string>, check: KnownOptionsCheck): void {
  if (typeof check !== 'object' || check === null) throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] assertKnownOptions() needs a check ({ source, what }), got ${describe(check)}`);
  const { source, what, where = '', hint, everyObject = false, listKnown = true } = check;
  let key: string | undefined;
  try {
    key = unknownOption(value, known, everyObject);
  } catch (cause) {
    throw new ProgressError('INVALID_ARGUMENT', `[${source}] ${what ?? 'the options'}${where ? ` (${where.replace(/\.$/, '')})` : ''} could not be read`, { cause });
  }
  if (key === undefined) return;
  const guess = nearestName(key, known) ?? hint?.(key);
  const tail = guess !== undefined ? ` (did you mean ${JSON.stringify(where + guess)}?)` : listKnown ? ` (known: ${[...known].join(', ')})` : '';
  throw new ProgressError('INVALID_ARGUMENT', `[${source}] ${what ? `${what}: ` : ''}unknown option ${JSON.stringify(where + key)}${tail}`, {
    context: { option: where + key },
  });
}

/**
 * The known name nearest to a misspelt one, for a "did you mean" in its error: the one at most two
 * edits away ignoring case (`regoin`, `keyprefix`, `commandTimeout` for `commandTimeoutMs`), else
 * one that `name` (3 characters or more) begins (`ttl` for `ttlSeconds`); `undefined` when none is.
 */
export function nearestName(name: string, known: Iterable<string>): string | undefined {
  if (typeof name !== 'string') throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] nearestName() needs a name, got ${describe(name)}`);
  if (known === null || typeof known !== 'object' || typeof (known as Partial<Iterable<string>>)[Symbol.iterator] !== 'function') throw knownNamesError('nearestName', known);
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of known) {
    const d = editDistance(lower, k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  if (best !== undefined || lower.length < 3) return best;
  for (const k of known) if (k.toLowerCase().startsWith(lower)) return k;
  return undefined;
}

/** The refusal of a list of known names that is not one (an array or a Set of them). */
function knownNamesError(fn: string, known: unknown): ProgressError {
  return new ProgressError('INVALID_ARGUMENT', `[@progress/core] ${fn}() needs the known names as an array or a Set, got ${describe(known)}`);
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

/**
 * Reads an options argument once: `undefined` or `null` (no options) gives `{}`; anything else must
 * be an object (not an array or a function); a plain one (a literal, or without prototype) must have
 * no own key that is not in `known`, while a class instance is read by the known names alone (its
 * own fields are its state, not options). Returns a copy holding each known option
 * it has (its own or inherited, a getter too) that is not `undefined`, read once, so that what is
 * checked is what is used. A misspelt option (`sink` for `sinks`, `parentId` for `parentTaskId`)
 * would otherwise be left out without a word: a tracker without its sinks, a task at the top level.
 * A getter or Proxy trap that throws is refused like any other bad input.
 *
 * @param what Names the argument in the message, e.g. `ProgressTracker.open() options`.
 * @throws ProgressError `INVALID_ARGUMENT`
 */
export function readOptions<T extends object>(value: unknown, known: readonly (keyof T & string)[], what: string): Partial<T> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] ${what} must be an object, got ${describe(value)}`);
  }
  const out: Record<string, unknown> = {};
  try {
    // Only a plain object's own keys are all options: an instance of a class that gives its options
    // by getters (`constructor(private env)`) is read by the known names alone.
    assertKnownOptions(value, known, { source: '@progress/core', what });
    for (const key of known) {
      if (!(key in value)) continue;
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = v;
    }
  } catch (cause) {
    if (cause instanceof ProgressError) throw cause;
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] ${what} could not be read`, { cause });
  }
  return out as Partial<T>;
}

/**
 * A short, safe rendering of a value for an error message: a string quoted (so that `"8765"` from an
 * environment variable does not read as the number it looks like), a number as it is, anything else
 * by its kind. Exported from the package as `describeValue`.
 */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value);
  return Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
