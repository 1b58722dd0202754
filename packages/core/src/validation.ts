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

/** What {@link toDetails} refuses inside details: JSON keeps none of their entries. */
const COLLECTIONS = [Map, Set, WeakMap, WeakSet] as const;

/** The collection `value` is (see {@link COLLECTIONS}), or `undefined`. */
function collectionOf(value: object): string | undefined {
  return value instanceof Map || value instanceof WeakMap ? (value instanceof Map ? 'Map' : 'WeakMap') : value instanceof Set ? 'Set' : value instanceof WeakSet ? 'WeakSet' : undefined;
}

/** Thrown by the replacer of {@link toDetails} at a Map or a Set inside the details (the path is found afterwards). */
class CollectionFound {
  constructor(readonly collection: string) {}
}

/**
 * Where the first Map or Set inside `value` is, as `details.a[0].b`; found only when one was (the
 * replacer knows its key, not its path). Walks what JSON walks: own enumerable keys, after toJSON.
 */
function collectionPath(value: unknown, path: string, seen = new Set<unknown>()): string | undefined {
  if (typeof value !== 'object' || value === null || seen.has(value)) return undefined;
  seen.add(value);
  if (COLLECTIONS.some((c) => value instanceof c)) return path;
  const json = (value as { toJSON?: unknown }).toJSON;
  if (typeof json === 'function') return undefined;
  const fields = value instanceof Error ? errorFields(value, new Set()) : value;
  if (Array.isArray(fields)) {
    for (let i = 0; i < fields.length; i++) {
      const found = collectionPath(fields[i], `${path}[${i}]`, seen);
      if (found) return found;
    }
    return undefined;
  }
  for (const key of Object.keys(fields)) {
    const found = collectionPath((fields as Record<string, unknown>)[key], /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`, seen);
    if (found) return found;
  }
  return undefined;
}

/**
 * What an Error is recorded as, in details and metadata: JSON keeps none of its `name`, `message`
 * and `cause` (they are not enumerable), so `{ error: err }` was stored as `{ error: {} }`. Its name
 * and message, its own enumerable fields (a `code`, a `status`), an AggregateError's `errors`, and its
 * `cause` (whose Error the replacer records the same way). Not its stack: a trace of this machine's
 * paths, for every dashboard and event bus the event reaches, and kilobytes per event; put
 * `err.stack` in the details to keep it. An Error met again (a cause that loops back) is recorded by
 * its name and message alone, which ends the loop.
 */
function errorFields(err: Error, seen: Set<Error>): Record<string, unknown> {
  const out: Record<string, unknown> = { name: err.name, message: err.message };
  if (seen.has(err)) return out;
  seen.add(err);
  for (const key of Object.keys(err)) out[key] = (err as unknown as Record<string, unknown>)[key];
  if (err instanceof AggregateError && !('errors' in out)) out.errors = err.errors;
  if (!('cause' in out) && 'cause' in err && err.cause !== undefined) out.cause = err.cause;
  return out;
}

/**
 * The replacer of the JSON copy of details: an Error becomes {@link errorFields}; a Map or a Set
 * (whose entries JSON drops) stops the copy. One per copy (it holds the Errors met).
 */
function detailsReplacer(): (key: string, value: unknown) => unknown {
  let seen: Set<Error> | undefined;
  return (_key, value) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
    if (value instanceof Error) return errorFields(value, (seen ??= new Set()));
    const collection = collectionOf(value);
    if (collection !== undefined) throw new CollectionFound(collection);
    return value;
  };
}

/**
 * Checks that `value` is a plain, JSON-serializable object and returns a deep copy made from its
 * JSON, so that the caller mutating it later, at any depth, does not change a recorded event, and
 * the event holds what a store that keeps JSON gives back. A value that throws while it is read (a
 * getter, a Proxy trap, a toJSON) is refused like any other bad input, as is one that nests deeper than
 * {@link MAX_DETAILS_DEPTH} levels, or holds a Map or a Set (JSON keeps none of their entries: they
 * were stored as `{}`). An Error, at any depth, is recorded as its name, message, own fields and
 * cause (see {@link errorFields}).
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
      collection = plain ? undefined : collectionOf(value as object);
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
        json = JSON.stringify(value, detailsReplacer()) as string | undefined;
        // A toJSON of its own can turn the object into anything (or nothing): the stored event would
        // then lack its details, or hold something that is not an object.
        if (typeof json === 'string' && json.charCodeAt(0) === 0x7b) copy = JSON.parse(json) as Record<string, unknown>;
      }
    }
  } catch (cause) {
    if (cause instanceof CollectionFound) {
      let path: string | undefined;
      try {
        path = collectionPath(value, what);
      } catch {
        // A getter that throws the second time round: the message names no path.
      }
      throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] ${path ?? `a value inside ${what}`} is a ${cause.collection}: JSON keeps none of its entries (pass Object.fromEntries(map) or an array)`);
    }
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
 * The details of a failure given as an Error (see failTask): its name, own fields and cause as
 * {@link toDetails} records an Error, without the message (the failure's `errorMessage` holds it,
 * cut when it is long). Never throws: fields that cannot be serialized (a cycle, a BigInt, a getter
 * that throws) are left out, the name kept, so that the failure is recorded all the same.
 */
export function errorDetails(err: Error): Record<string, unknown> {
  try {
    const fields = toDetails(err);
    delete fields.message;
    return fields;
  } catch {
    let name = 'Error';
    try {
      if (typeof err.name === 'string' && err.name !== '') name = err.name;
    } catch {
      // A name that cannot be read: 'Error'.
    }
    return { name };
  }
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
  if (typeof value === 'string') return quote(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value);
  if (value instanceof Error) return describeError(value);
  // A tracker, a store or a client not awaited.
  if (value instanceof Promise) return 'a Promise';
  return Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

const quote = (text: string): string => JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}...` : text);

/** An Error by its name and message, `a TypeError ("x is not a function")`: a catch block's error passed where a string goes. */
function describeError(err: Error): string {
  try {
    const name = typeof err.name === 'string' && /^[A-Za-z_$][\w$]{0,59}$/.test(err.name) ? err.name : 'Error';
    const message = typeof err.message === 'string' && err.message !== '' ? ` (${quote(err.message)})` : '';
    return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}${message}`;
  } catch {
    return 'an Error';
  }
}
