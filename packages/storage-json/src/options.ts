import { MAX_TIMER_MS, assertKnownOptions, describeValue, isLogger, redactUrl, safeLogger, silentLogger, type Logger } from '@progress/core';
import { storeError } from './errors.js';

/** How durable an acknowledged append is. */
export type Durability = 'fsync' | 'none';

/** Options of {@link JsonFileStore}. */
export interface JsonFileStoreOptions {
  /** The root folder: upgrades go to `<directory>/upgrades/<id>/`, legacy files are read from `<directory>/progress/`. Created (0700) when missing. */
  directory: string;
  /**
   * `'fsync'`: an append resolves once its lines are written and `fdatasync`ed (it survives a power
   * loss). `'none'`: once written to the OS (it survives a crash of the process, not of the machine).
   * @default 'fsync'
   */
  durability?: Durability;
  /** Write `snapshot.json` every this many events, so that opening replays at most this many. @default 1000 */
  snapshotEvery?: number;
  /**
   * The writer lock's lease (ms). The holder stamps the lock file's mtime every third of it; a lock
   * whose pid cannot be checked from here (another PID namespace of this boot: a restarted container
   * of the same pod) is taken over once it goes this long without a stamp, and a holder that could
   * not stamp it for half of it checks the file before it writes again. From 1000 to `MAX_TIMER_MS`.
   * @default 30000
   */
  lockLeaseMs?: number;
  /** A pino-compatible logger. @default silent */
  logger?: Logger;
}

/**
 * The shortest lease: below a second, ordinary pauses of a busy process (a GC, a slow fsync, a
 * loaded 2-core node) would lapse a live holder's lease often, making it read the lock file before
 * its writes, or make it look dead to a taker with a clock-rounded mtime.
 */
export const MIN_LOCK_LEASE_MS = 1000;

/** The options with their defaults, checked. */
export interface ResolvedOptions {
  directory: string;
  durability: Durability;
  snapshotEvery: number;
  lockLeaseMs: number;
  logger: Logger;
}

// An object checked against the interface, so that a new option cannot be left out of this list.
const OPTION_NAMES = Object.keys({
  directory: 0,
  durability: 0,
  snapshotEvery: 0,
  lockLeaseMs: 0,
  logger: 0,
} satisfies Record<keyof JsonFileStoreOptions, 0>);

/**
 * Another store's name for an option here, for an unknown name no known one is near: `fsync: false`
 * (SQLite, LevelDB) is `durability: 'none'`; `dir`, `path` are `directory`.
 */
const otherStoresName = (key: string): string | undefined => (/sync/i.test(key) ? 'durability' : /^(dir|path|folder|root)/i.test(key) ? 'directory' : undefined);

/** A URL (`redis://...`, `file:///...`), not a folder path: a scheme of two letters or more, then `://` (`C://data` is a folder). */
const URL_LIKE = /^[a-z][a-z\d+.-]+:\/\//i;

/** A path a shell would expand (`~`, `~/data`, `~bob/data`), which Node takes as a folder named `~...`. */
const HOME_LIKE = /^~[^\\/]*(?:[\\/]|$)/;

/** Checks the options and fills in the defaults; throws `INVALID_ARGUMENT`. */
export function resolveOptions(options: JsonFileStoreOptions): ResolvedOptions {
  if (!options || typeof options !== 'object') throw storeError('INVALID_ARGUMENT', 'JsonFileStore needs an options object with a directory');
  // A misspelt `durabilty: 'none'` or `snapshotevery` was left out without a word: the store ran on
  // the default the user meant to change.
  assertKnownOptions(options, OPTION_NAMES, { source: '@progress/storage-json', hint: otherStoresName });
  const { directory, durability = 'fsync', snapshotEvery = 1000, lockLeaseMs = 30_000, logger = silentLogger } = options;
  if (typeof directory !== 'string' || directory.length === 0) throw storeError('INVALID_ARGUMENT', 'directory must be a non-empty string');
  if (URL_LIKE.test(directory)) {
    // `directory: process.env.REDIS_URL` made a folder ./redis:/:password@host:6379 and kept the events there.
    const shown = JSON.stringify(redactUrl(directory));
    const hint = /^rediss?:/i.test(directory) ? ': for Redis, use RedisStore from @progress/storage-redis' : /^file:/i.test(directory) ? ": give the folder's path (url.fileURLToPath() makes it from a file:// URL)" : '';
    throw storeError('INVALID_ARGUMENT', `directory is a folder path, got the URL ${shown}${hint}`);
  }
  if (HOME_LIKE.test(directory)) {
    // `directory: '~/progress-data'` (from a config or .env file, which no shell expands) made a
    // folder named "~" in the current folder and kept the events there, where no one would look.
    const tilde = /^~[^\\/]*/.exec(directory)![0];
    throw storeError(
      'INVALID_ARGUMENT',
      `directory ${JSON.stringify(directory)} starts with "${tilde}", which only a shell expands: it would be a folder named "${tilde}" in the current folder. Give the home folder's path (path.join(os.homedir(), ...)), or "./${directory}" for a folder of that name`,
    );
  }
  if (durability !== 'fsync' && durability !== 'none') throw storeError('INVALID_ARGUMENT', `durability must be 'fsync' or 'none', got ${describeValue(durability)}`);
  if (!Number.isSafeInteger(snapshotEvery) || snapshotEvery < 1) throw storeError('INVALID_ARGUMENT', `snapshotEvery must be a whole number >= 1, got ${describeValue(snapshotEvery)}`);
  if (!Number.isSafeInteger(lockLeaseMs) || lockLeaseMs < MIN_LOCK_LEASE_MS || lockLeaseMs > MAX_TIMER_MS) {
    throw storeError('INVALID_ARGUMENT', `lockLeaseMs must be a whole number of ms from ${MIN_LOCK_LEASE_MS} to ${MAX_TIMER_MS}, got ${describeValue(lockLeaseMs)}`);
  }
  if (!isLogger(logger)) throw storeError('INVALID_ARGUMENT', 'logger must be pino-compatible (debug, info, warn, error)');
  // Wrapped: a logger that throws (a closed transport) must not fail an append, a lock release or a close.
  return { directory, durability, snapshotEvery, lockLeaseMs, logger: logger === silentLogger ? logger : safeLogger(logger) };
}
