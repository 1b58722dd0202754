import { STATUS_CODES } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { applyEventInPlace, cloneState, isProgressError, isTerminal, nearestName, redactUrl, replayEvents, type ProgressEvent, type ProgressStore, type UpgradeProgress } from '@progress/core';
import { JsonFileStore } from '@progress/storage-json';
import { PROGRESS_SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX } from '@progress/ws-server';
import WebSocket from 'ws';
import { CliError, ExitCode, isCertificateError, isNotTlsAnswer, notTlsReason, withCertificateHint, withPlainHangUpHint } from './errors.js';
import { DEFAULT_WS_PATH, storeError } from './sources.js';
import type { LiveView } from './terminal.js';

/** What `watch` needs to know. */
export interface WatchOptions {
  view: LiveView;
  signal: AbortSignal;
  /** Keep watching after the upgrade ends. @default false */
  follow?: boolean;
  /** Poll interval for a JSON folder, ms. @default 200 */
  pollMs?: number;
  /** How long to keep trying a ws:// server that was never reached, ms (after a first connection, it retries for ever). @default 10000 */
  firstConnectTimeoutMs?: number;
  /**
   * How often a ws:// connection is pinged, ms: one that has sent nothing (no pong, no frame) by the
   * next ping is dropped and reconnected. 0 never pings. @default 30000 (the ws-server's heartbeatMs)
   */
  heartbeatMs?: number;
}

/** The exit code for an upgrade's final status. */
export function exitCodeFor(state: Readonly<UpgradeProgress> | undefined): number {
  if (!state) return ExitCode.INTERRUPTED;
  return state.status === 'failed' || state.status === 'cancelled' ? ExitCode.UPGRADE_FAILED : ExitCode.OK;
}

/**
 * Folds an event into the state and shows it, when it is not one already seen (a replay after a
 * reconnect or a poll may repeat some). Returns the state to go on with.
 */
function fold(state: UpgradeProgress | undefined, event: ProgressEvent, view: LiveView): UpgradeProgress {
  if (state && event.seq <= state.lastSeq) return state;
  const next = applyEventInPlace(state, event);
  view.update(next, event);
  return next;
}

/** `upgradeId`, else the most recently updated upgrade of `store` (`NOT_FOUND` when it lists none). */
export async function pickUpgrade(store: ProgressStore, upgradeId: string | undefined): Promise<string> {
  if (upgradeId) return upgradeId;
  const rows = await store.list({ limit: 1 }).catch((err: unknown) => {
    throw storeError(err);
  });
  if (!rows[0]) throw new CliError('no upgrades in this source yet; name one to wait for it', ExitCode.NOT_FOUND);
  return rows[0].upgradeId;
}

/** The first stored event of an upgrade: its `upgrade.created`, whose timestamp is the run's `createdAt`. */
async function firstEvent(store: ProgressStore, upgradeId: string): Promise<ProgressEvent | undefined> {
  for await (const event of store.readEvents(upgradeId, 0, 1)) return event;
  return undefined;
}

/**
 * {@link firstEvent}, or `'unreadable'` when that event is damaged (`DATA_CORRUPTED`): a log whose
 * first line rotted below a snapshot still opens, and its events after the snapshot still read, so
 * the run held goes on (a new run's log would start with a sound line). Any other error is thrown.
 */
async function firstEventOrUnreadable(store: ProgressStore, upgradeId: string): Promise<ProgressEvent | undefined | 'unreadable'> {
  try {
    return await firstEvent(store, upgradeId);
  } catch (err) {
    if (isProgressError(err, 'DATA_CORRUPTED')) return 'unreadable';
    throw err;
  }
}

/** The line every source of `watch` prints when the upgrade it is to follow does not exist (yet). */
export const waitingLine = (upgradeId: string): string => `waiting for upgrade "${upgradeId}" to appear...`;

/**
 * ` (did you mean eks-upgrade-1?)`: the id among `listed` nearest to `upgradeId`, which the source
 * does not hold (a typo waited for ever without a word), as a mistyped option is named; `''` when
 * none is near. One id at most, and only one the source listed to this user.
 */
export function didYouMean(upgradeId: string, listed: Iterable<unknown>): string {
  const guess = nearestName(upgradeId, [...listed].filter((id): id is string => typeof id === 'string' && id !== upgradeId));
  return guess === undefined ? '' : ` (did you mean ${guess}?)`;
}

/**
 * {@link didYouMean} over the upgrades `store` lists; `''` when its list fails (a hint is not worth
 * an error: the command goes on, or fails, as it would without it).
 */
export async function didYouMeanIn(store: ProgressStore, upgradeId: string): Promise<string> {
  const rows = await store.list().catch(() => []);
  return didYouMean(upgradeId, rows.map((row) => row.upgradeId));
}

/**
 * The events of an upgrade a JSON folder holds only as a file of the old Python module, with that
 * file's identity, size and mtime when they were read (taken before the read: a rewrite during it
 * changes them, and the next poll reads it again); `undefined` for any other upgrade.
 */
interface LegacyRead {
  events: ProgressEvent[];
  stamp: string;
  /** The stamp was taken too soon after the file's mtime to tell a later rewrite (see {@link isRacy}): read again at the next poll. */
  racy: boolean;
}

async function readLegacy(store: ProgressStore, id: string, options: WatchOptions): Promise<LegacyRead | undefined> {
  if (!(store instanceof JsonFileStore)) return undefined;
  for (;;) {
    const statAt = Date.now();
    const file = await store.legacyFileStat(id);
    if (!file) return undefined;
    try {
      return { events: await readAll(store, id), stamp: stampOf(file), racy: isRacy(file, statAt) };
    } catch (err) {
      // Read while the old module rewrote it (it truncates the file, then writes it): read again once
      // it changed, as each poll does, or while its writer may still be at it. A file that stays as it is fails.
      const now = await store.legacyFileStat(id).catch(() => undefined);
      if (options.signal.aborted || (now && stampOf(now) === stampOf(file) && !mayBeRewriting(now, Date.now()))) throw err;
      await sleep(options.pollMs ?? 200, undefined, { signal: options.signal }).catch(() => {});
    }
  }
}

const stampOf = (file: { ino: number; size: number; mtimeMs: number }): string => `${file.ino}:${file.size}:${file.mtimeMs}`;

/**
 * Whether a legacy file stat'ed at `statAt` may still be rewritten without its stamp changing: a
 * file system stamps mtimes with its own granularity (a second on HFS+, ext3 and many NFS servers,
 * two on FAT, a few ms where the kernel's clock is coarse), so a rewrite of the same size within the
 * tick of the mtime leaves size, mtime and inode as they were. Such a stamp is not trusted, as git
 * does not trust a "racily clean" entry: the file is read again at each poll until its mtime is
 * older than a tick could be (2 s for an mtime in whole seconds, else 100 ms), after which any
 * rewrite changes it.
 */
const isRacy = (file: { mtimeMs: number }, statAt: number): boolean => statAt - file.mtimeMs < tickOf(file);

/** The granularity a file system may have stamped `mtimeMs` with: 2 s for an mtime in whole seconds (FAT keeps two), else 100 ms. */
const tickOf = (file: { mtimeMs: number }): number => (file.mtimeMs % 1000 === 0 ? 2000 : 100);

/**
 * How long a legacy file that does not read may still be the old module's rewrite in progress,
 * after its mtime (and the tick it may be stamped in): it truncates the file, then `json.dump`s it
 * in chunks, and a writer descheduled between two of them (a loaded machine) leaves the file empty
 * or half written, its mtime unchanged, for as long as it stalls. A tick (100 ms) was too short: on
 * a loaded machine `watch` ended at start on such a file, "not valid JSON". Past this a file that
 * stays as it is is damaged.
 */
const REWRITE_STALL_MS = 2000;

/** Whether a legacy file that failed to read, stat'ed at `statAt`, may still be being rewritten (see {@link REWRITE_STALL_MS}). */
const mayBeRewriting = (file: { mtimeMs: number }, statAt: number): boolean => statAt - file.mtimeMs < tickOf(file) + REWRITE_STALL_MS;

async function readAll(store: ProgressStore, id: string): Promise<ProgressEvent[]> {
  const events: ProgressEvent[] = [];
  for await (const event of store.readEvents(id, 0)) events.push(event);
  return events;
}

/**
 * What an event says, without its id and time: the events a legacy file's import derives from the
 * file's fields get ids from their seq and times from the file's earliest time (or its mtime, when
 * it holds none), which a rewrite can change without anything having happened to them.
 */
const said = (event: ProgressEvent): string => JSON.stringify({ ...event, eventId: undefined, timestamp: undefined });

/**
 * Shows an upgrade held only as a legacy file, read whole again after a rewrite (`events`), when
 * `shown` is what was shown of it before: the state is replayed from `events` (the file's current
 * state, as `load()` gives it), and the events from the first that differs from `shown` on are
 * printed, after a line saying so when a rewrite changed (or took away) events already shown (the
 * old module rewrites the file in place: a task that starts, a status, a task added ahead of others'
 * events).
 * Returns the state, or `undefined` for no events.
 */
function showLegacy(id: string, shown: readonly ProgressEvent[], events: readonly ProgressEvent[], view: LiveView): UpgradeProgress | undefined {
  let same = 0;
  while (same < shown.length && same < events.length && said(shown[same]!) === said(events[same]!)) same++;
  if (same < shown.length) view.say(`the legacy file of upgrade "${id}" was rewritten: its events from #${same + 1} on changed`);
  // Folded whole first: a file that does not fold (a read failed) shows nothing, and is read again.
  replayEvents(events);
  let state: UpgradeProgress | undefined;
  let shownEvent = false;
  for (const event of events) {
    state = applyEventInPlace(state, event);
    if (event.seq > same) {
      view.update(state, event);
      shownEvent = true;
    }
  }
  // The state by itself only when no event showed it (plain output gives it a line of its own).
  if (state && !shownEvent) view.update(state);
  return state;
}

/** The line the store sources of `watch` print when the upgrade they follow is gone, until it is created again. */
export const deletedLine = (upgradeId: string): string => `upgrade "${upgradeId}" was deleted; waiting for it to be created again...`;

/** The line both `watch` sources print when the id they follow has been started again (deleted, then created anew). */
export const createdAgainLine = (upgradeId: string): string => `upgrade "${upgradeId}" was created again; following the new run from its start`;

/** Throws a store's error as the CLI's. */
const cliError = (err: unknown): never => {
  throw storeError(err);
};

/**
 * Follows an upgrade in a store: through `watch()` when the store has it (Redis), else by reading
 * the events after the last seen seq every `pollMs` (a JSON folder written by another process).
 * Resolves with the final state (or the last one seen, when interrupted).
 *
 * A folder's upgrade may be deleted and created again under the same id while it is watched: the
 * new run's seqs start again at 1, and its events past the seq held would be folded onto the old
 * run's state. Each poll, after reading the new events, reads the log's first event, which names
 * the run (its timestamp is the run's `createdAt`, its id is the run's own): another run, or none,
 * drops the state, says so, and reads the new run from its first event, as `watch ws://` shows the
 * new run's snapshot after the server's `resync`. A first event that is damaged (below a snapshot,
 * where the store still opens the upgrade) names no run: the run held goes on, as it did before.
 *
 * An upgrade a folder holds only as a file of the old Python module is followed otherwise: its
 * events are derived from the whole file, which the old module may still be rewriting in place, so
 * a rewrite can change events already read and their first event's time (the file's mtime, for a
 * file that holds no time). Each poll looks at the file's size, mtime and inode alone; when they
 * changed (or were too recent to tell, see {@link isRacy}), the file is read whole again and shown
 * as it is now (see {@link showLegacy}); a read that fails is tried again without a word while the
 * file changes or its writer may still be at it (see {@link mayBeRewriting}). Its first event names
 * no run then: the file gone is the upgrade deleted, and a file there again after that is it
 * created again; a rewrite in place says neither. Once a writer imported it into a log, the log is
 * followed as any other.
 */
export async function watchStore(store: ProgressStore, upgradeId: string | undefined, options: WatchOptions): Promise<UpgradeProgress | undefined> {
  const id = await pickUpgrade(store, upgradeId);
  /** The upgrade is held only as a legacy file (or was at the last poll): what was last read of it. */
  let legacy = store.watch ? undefined : await readLegacy(store, id, options).catch(cliError);
  let state = legacy ? replayEvents(legacy.events) : await store.load(id).catch(cliError);
  if (state) options.view.update(state);
  // A mistyped id waits as any other (its agent may not have started yet), with the id it may have meant.
  else options.view.say(`${waitingLine(id)}${await didYouMeanIn(store, id)}`);
  const done = () => state !== undefined && isTerminal(state.status) && !options.follow;
  if (done() || options.signal.aborted) return state;
  if (store.watch) return followWatch(store as ProgressStore & Required<Pick<ProgressStore, 'watch'>>, id, state, options);
  /** The id of the followed run's first event, once read: a run created again within the same millisecond has the same `createdAt`. */
  let runEventId: string | undefined;
  /** The followed run was deleted: the next one to appear is the id created again. */
  let deleted = false;
  const json = store instanceof JsonFileStore ? store : undefined;
  /**
   * The failure of the last poll (its message), said once: a file that stays damaged fails every poll,
   * which printed a line each time. Said again when it changes, or fails again after a poll that read.
   */
  let failing: string | undefined;
  while (!options.signal.aborted && !done()) {
    try {
      const statAt = Date.now();
      const file = await json?.legacyFileStat(id);
      if (file || legacy) {
        // Held only as a legacy file, or was at the last poll: its events are derived from the whole
        // file, which the old module rewrites in place, so the events after the last seq are not
        // what changed. Read whole again when the file changed (or the upgrade left it: imported
        // into a log by a writer, or deleted), and shown as it is now.
        const stamp = file ? stampOf(file) : undefined;
        if (stamp === undefined || stamp !== legacy?.stamp || legacy.racy) {
          const events = await readAll(store, id).catch(async (err: unknown) => {
            // Read while the old module rewrote it (it truncates the file, then writes it): read again
            // at the next poll without a word, also while its writer may still be at it. A file that
            // stays as it is and does not load past that is said.
            const now = await json?.legacyFileStat(id).catch(() => undefined);
            if (stamp !== undefined && now && (stampOf(now) !== stamp || mayBeRewriting(now, Date.now()))) return undefined;
            throw err;
          });
          if (events === undefined) {
            await sleep(options.pollMs ?? 200, undefined, { signal: options.signal }).catch(() => {});
            continue;
          }
          if (events.length === 0) {
            if (state) {
              state = undefined;
              deleted = true;
              // Its bars go with it: the last ones drawn would stay on screen, and end the command, as if current.
              options.view.forget();
              options.view.say(deletedLine(id));
            }
          } else {
            if (deleted) {
              deleted = false;
              options.view.say(createdAgainLine(id));
            }
            state = showLegacy(id, state ? (legacy?.events ?? []) : [], events, options.view);
          }
          // Followed from here by its events after the last seq when it is a log now.
          legacy = stamp === undefined ? undefined : { events, stamp, racy: isRacy(file!, statAt) };
          runEventId = undefined;
        }
      } else {
        const events: ProgressEvent[] = [];
        for await (const event of store.readEvents(id, state?.lastSeq ?? 0)) events.push(event);
        if (state) {
          // Read after the events: when the run there now is still the one held, they are of it (runs
          // only replace each other, an old one never comes back); otherwise they are dropped.
          // (A damaged first event names no run: the run there is taken as the one held.)
          const first = await firstEventOrUnreadable(store, id);
          if (first !== 'unreadable' && (first === undefined || first.timestamp !== state.createdAt || (runEventId !== undefined && first.eventId !== runEventId))) {
            state = undefined;
            runEventId = undefined;
            options.view.forget();
            if (first === undefined) {
              deleted = true;
              options.view.say(deletedLine(id));
            } else {
              // Straight on to the new run's events, without waiting for the next poll.
              options.view.say(createdAgainLine(id));
              continue;
            }
          } else if (first !== 'unreadable') runEventId = first.eventId;
        }
        if (deleted && events.length > 0) {
          deleted = false;
          options.view.say(createdAgainLine(id));
        }
        for (const event of events) state = fold(state, event, options.view);
      }
      if (failing !== undefined) options.view.say(`upgrade "${id}" reads again; following on`);
      failing = undefined;
    } catch (err) {
      const message = (err as Error).message;
      if (message !== failing) options.view.say(`read failed (${message}); retrying every ${(options.pollMs ?? 200) / 1000} s until it reads (said again only if the failure changes)`);
      failing = message;
    }
    if (done()) break;
    await sleep(options.pollMs ?? 200, undefined, { signal: options.signal }).catch(() => {});
  }
  return state;
}

/** The first wait before loading an upgrade again after a load failed during `watch` (Redis down); it doubles up to RELOAD_RETRY_MAX_MS. */
const RELOAD_RETRY_MS = 250;
const RELOAD_RETRY_MAX_MS = 5000;

/**
 * Loads the upgrade for {@link followWatch} after its watch ended: a failure (Redis down, as the watch
 * itself rides out) is said and retried with backoff for as long as the command runs, as a folder's
 * read is. `'aborted'` once the signal aborts.
 */
async function reload(store: ProgressStore, id: string, options: WatchOptions): Promise<UpgradeProgress | undefined | 'aborted'> {
  let wait = RELOAD_RETRY_MS;
  while (!options.signal.aborted) {
    try {
      return await store.load(id);
    } catch (err) {
      if (options.signal.aborted) break;
      options.view.say(`reading upgrade "${id}" failed (${(err as Error).message}); retrying`);
      await sleep(wait, undefined, { signal: options.signal }).catch(() => {});
      wait = Math.min(RELOAD_RETRY_MAX_MS, wait * 2);
    }
  }
  return 'aborted';
}

/**
 * Follows an upgrade through the store's `watch()` (Redis). The watch ends with `NOT_FOUND` when the
 * upgrade is deleted (reason `deleted`, also when it was created again under the same id) or when
 * the events after the seq held were removed by retention (reason `trimmed`): as a folder does, a
 * deleted upgrade is waited for and a new run followed from its first event, each said in a line;
 * trimmed events are a resync, as from a ws-server: the state is loaded again and followed from it
 * (a state of another run than the one held, or of one waited for, is a run created again, and said so).
 */
async function followWatch(
  store: ProgressStore & Required<Pick<ProgressStore, 'watch'>>,
  id: string,
  loaded: UpgradeProgress | undefined,
  options: WatchOptions,
): Promise<UpgradeProgress | undefined> {
  let state = loaded;
  const done = () => state !== undefined && isTerminal(state.status) && !options.follow;
  /** The upgrade was deleted: its next run's first event (or state, after a resync) says it was created again. */
  let deleted = false;
  /** When the last watch ended as NOT_FOUND (`performance.now()`): two in a row within a second wait a little (a store that keeps answering so must not spin). */
  let lastEnd = -Infinity;
  const saysDeleted = () => {
    deleted = true;
    options.view.forget();
    options.view.say(deletedLine(id));
  };
  const saysCreatedAgain = () => {
    deleted = false;
    options.view.say(createdAgainLine(id));
  };
  while (!options.signal.aborted) {
    try {
      for await (const event of store.watch(id, state?.lastSeq ?? 0, { signal: options.signal })) {
        if (deleted) saysCreatedAgain();
        state = fold(state, event, options.view);
        if (done()) return state;
      }
      return state;
    } catch (err) {
      const reason = isProgressError(err, 'NOT_FOUND') ? err.context.reason : undefined;
      if (reason !== 'deleted' && reason !== 'trimmed') throw err;
      if (performance.now() - lastEnd < 1000) await sleep(200, undefined, { signal: options.signal }).catch(() => {});
      if (options.signal.aborted) break;
      lastEnd = performance.now();
      if (reason === 'trimmed') options.view.say('resync: history gone; reloading the snapshot');
      const now = await reload(store, id, options);
      if (now === 'aborted') break;
      if (reason === 'trimmed') {
        // The state held names its run by createdAt: a reloaded one of another run (deleted and
        // created again before this watch began) is a new run, as is any after a deletion.
        const held = state;
        state = now;
        if (state) {
          if (deleted || (held !== undefined && held.createdAt !== state.createdAt)) saysCreatedAgain();
          options.view.update(state);
          if (done()) return state;
        } else saysDeleted();
        continue;
      }
      // Deleted, perhaps created again: a new run is followed from its first event, never folded
      // onto the old run's state.
      state = undefined;
      options.view.forget();
      if (now) saysCreatedAgain();
      else saysDeleted();
    }
  }
  return state;
}

/** Enough of an {@link UpgradeProgress} to fold events into and draw. */
function isState(data: unknown): data is UpgradeProgress {
  const s = data as Partial<UpgradeProgress> | null;
  return (
    typeof s === 'object' &&
    s !== null &&
    Number.isSafeInteger(s.lastSeq) &&
    typeof s.status === 'string' &&
    Number.isFinite(s.overallPercentage) &&
    typeof s.tasks === 'object' &&
    s.tasks !== null
  );
}

/**
 * RFC 7230 `token` characters, the only ones a WebSocket subprotocol name may hold (ws refuses any
 * other before connecting). A base64 token (`/`, `=`) cannot travel as `progress-token.<token>`.
 */
const SUBPROTOCOL_SAFE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Waits before asking again after `RATE_LIMITED`, one per retry; then the command gives up. */
const RATE_LIMIT_RETRY_MS = [500, 1000, 2000];

/**
 * The first wait before asking again after the server could not serve a request (its store failed);
 * it doubles up to STORE_RETRY_MAX_MS, and the command asks for as long as it runs (as it reconnects).
 */
const STORE_RETRY_MS = 500;
const STORE_RETRY_MAX_MS = 10_000;

/**
 * What a proxy or load balancer in front of the ws-server answers the upgrade request with while the
 * server behind it is down or restarting (Bad Gateway, Service Unavailable, Gateway Timeout): the
 * command reconnects with its backoff, as after a refused connection. Any other answer (401, 403,
 * 404, ...) would be the same next time: it ends the command.
 */
const RETRIED_STATUS = new Set([502, 503, 504]);

/**
 * `401 Unauthorized`, with a hint where one helps, naming the credentials `url` was sent with. A URL's
 * own `?token=` (a dashboard link's, which expires) is sent instead of PROGRESS_TOKEN, and a read-token
 * server takes it before --token; its `user:password@` is sent instead of PROGRESS_TOKEN too (a
 * `token` given, a bearer header, goes instead of them). "check --token or PROGRESS_TOKEN" for those
 * had a user set either, right, and get the same 401 again.
 */
function describeStatus(code: number, url: string, token: string | undefined): string {
  const text = `HTTP ${code}${STATUS_CODES[code] ? ` ${STATUS_CODES[code]}` : ''}`;
  if (code !== 401 && code !== 403) return text;
  const sent = new URL(url);
  if (sent.searchParams.has('token')) return `${text} (check the ?token= in the URL: a read-token server takes it before --token, and PROGRESS_TOKEN is not sent with it)`;
  if ((sent.username || sent.password) && !token) return `${text} (check the user and password in the URL; PROGRESS_TOKEN is not sent with them)`;
  return `${text} (check --token or PROGRESS_TOKEN)`;
}

/** What to try after a 404 from each of `tried`: the server's default endpoint on that host, when not tried yet. */
function notFoundHint(tried: readonly string[]): string {
  const last = new URL(tried.at(-1)!);
  last.pathname = DEFAULT_WS_PATH;
  const fallback = last.toString();
  const where = `the ws-server listens on ${DEFAULT_WS_PATH} unless its \`path\` option says otherwise`;
  return tried.includes(fallback) ? `; ${where}: give the path it was given (a dashboard page names it in its progress-ws-path meta tag)` : `; ${where}: try ${redactUrl(fallback)}`;
}

interface ServerMessage {
  type: string;
  upgradeId?: string;
  seq?: number;
  data?: unknown;
  code?: string;
  message?: string;
  reason?: string;
  exists?: unknown;
  serverTime?: unknown;
}

/** How long ws waits for a server to answer the upgrade request, ms. */
const HANDSHAKE_TIMEOUT_MS = 5000;
/** The least a handshake is given before a first connection, however little of --connect-timeout is left: ws takes 0 as no timeout at all. */
const MIN_HANDSHAKE_MS = 100;

/**
 * Follows an upgrade through a ws-server: subscribes (from the snapshot, or after the last seen
 * seq when reconnecting), folds the events, and reconnects with backoff when the connection drops,
 * resuming where it stopped. Resolves with the final state.
 *
 * `urls` are the endpoints to try: until a first connection, one answered 404 gives way to the next
 * (saying so), which is then the one used; the last one's 404 ends the command, naming each tried.
 */
export async function watchWebSocket(urls: string | readonly string[], upgradeId: string | undefined, options: WatchOptions & { token?: string }): Promise<UpgradeProgress | undefined> {
  const candidates = typeof urls === 'string' ? [urls] : [...urls];
  if (candidates.length === 0) throw new CliError('no WebSocket URL to watch');
  let url = candidates.shift()!;
  /** The endpoints answered 404 before the one tried now. */
  const notFound: string[] = [];
  /** The next attempt is another endpoint: made at once, not after the backoff. */
  let tryNext = false;
  let state: UpgradeProgress | undefined;
  /** The run a `resync` dropped (its createdAt): a snapshot or first event of another run means the id was created again. */
  let droppedRun: string | undefined;
  /** Says so when the run of `createdAt` is another than the one a resync dropped, as watching a folder does. */
  const noteRun = (createdAt: string) => {
    if (droppedRun !== undefined && createdAt !== droppedRun && target) options.view.say(createdAgainLine(target));
    droppedRun = undefined;
  };
  let target = upgradeId;
  let backoff = 250;
  let connectedOnce = false;
  let rateLimited = 0;
  /** Requests in a row the server could not serve (see STORE_RETRY_MS). */
  let unserved = 0;
  /** Why the last attempt to connect failed (`HTTP 503 ...`), for the final error when it is never reached. */
  let lastFailure: string | undefined;
  /** The server listed no upgrade: said once, not at every list it is asked for again. */
  let saidNoUpgrades = false;
  /** The server's list answered the ask for a hint on an id it does not hold (see hintListOut): not asked again. */
  let hintAnswered = false;
  /**
   * When a server never reached is given up (--connect-timeout), by the monotonic clock: a deadline
   * of Date.now() moved with the wall clock, so a clock set back an hour (an NTP step, a resumed VM)
   * kept a script's `watch` of a server that is down retrying for an hour, and one set forward gave
   * up after the first try.
   */
  const firstConnectDeadline = performance.now() + (options.firstConnectTimeoutMs ?? 10_000);
  while (!options.signal.aborted) {
    const outcome = await new Promise<'ended' | 'lost' | 'aborted'>((resolve, reject) => {
      // The token goes where readTokenAuth looks for it (the subprotocol `progress-token.<token>`,
      // beside `progress.v1`, which the server answers) when it can be a subprotocol name, and
      // always as a bearer header, for custom hooks.
      const headers: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};
      const protocols = options.token && SUBPROTOCOL_SAFE.test(options.token) ? [PROGRESS_SUBPROTOCOL, `${TOKEN_SUBPROTOCOL_PREFIX}${options.token}`] : [];
      let ws: WebSocket;
      try {
        // Before a first connection, a handshake the server never answers (a host that takes the
        // connection and says nothing) is given no longer than what is left of --connect-timeout: ws
        // waited its 5 s whatever the timeout, and `--connect-timeout 1` gave up after 5 s.
        const handshakeTimeout = connectedOnce ? HANDSHAKE_TIMEOUT_MS : Math.min(HANDSHAKE_TIMEOUT_MS, Math.max(MIN_HANDSHAKE_MS, firstConnectDeadline - performance.now()));
        ws = new WebSocket(url, protocols, { headers, handshakeTimeout });
      } catch (err) {
        // ws checks the URL and the subprotocols before connecting: what it refuses is the command line's fault.
        reject(new CliError(`cannot use ${redactUrl(url)}: ${(err as Error).message}`, err instanceof SyntaxError ? ExitCode.USAGE : ExitCode.UNAVAILABLE));
        return;
      }
      /**
       * The last `subscribed` of this connection said the upgrade followed does not exist, and no
       * snapshot or event of it came since (after one, a resync is the server's, not a deletion).
       */
      let absent = false;
      /**
       * A `list_upgrades` was sent on this connection, once `subscribed` said the upgrade followed
       * does not exist, for the id nearest it (a typo waited for ever without a word): the server
       * answers in order and the subscribe was answered, so the next `upgrades`, or `error` without
       * an upgradeId (its store failed to list, the message rate), answers it. Only ids the server
       * lists to this client (what its `authorize` lets a read token see) can be named.
       */
      let hintListOut = false;
      /**
       * After a gap, a subscribe from the seq held was sent and the server has not answered it
       * `subscribed` yet: the `progress_event`, `snapshot` and `resync` frames of the upgrade that
       * come before that answer are of the subscription it replaces (answers come in the order of the
       * requests), still in flight when it was sent, and are ignored: the resume replays every event
       * after the seq held. Acting on them asked again for each frame past the gap (a resubscribe per
       * frame in flight, each answered by a replay of its own). Only after a gap: a first subscribe
       * replaces nothing, and a server that sends frames without `subscribed` is still followed.
       * A resume still unanswered at two heartbeats in a row is given up with the connection (see
       * the heartbeat below): the frames are ignored until it is answered, so a server that never
       * answers it would leave the command showing a frozen state for ever. An `error` answers it too
       * (the server's store failed, a rate limit): the command asks again later, and while it waits
       * to, no resume is out. Taken for no answer, a store down for a minute had the command drop a
       * connection that worked every 30-60 s, saying the server did not answer.
       */
      let awaitingSubscribed = false;
      /** Subscribes sent while awaitingSubscribed (a resume, and each asked again after an error); the heartbeat compares it with the one it saw out. */
      let resumes = 0;
      /** The last of those an `error` answered: none is out while it equals `resumes`. */
      let refusedResume = 0;
      /** The resume that was out, unanswered, at the last heartbeat (0: none). */
      let waitingAtBeat = 0;
      /** The one pending "ask again" of this connection (an empty list, a rate limit), dropped with it. */
      let again: NodeJS.Timeout | undefined;
      const askAgain = (ms: number) => {
        clearTimeout(again);
        again = setTimeout(() => ws.readyState === WebSocket.OPEN && subscribe(), ms);
      };
      /**
       * The heartbeat: a connection whose path died without a FIN or RST (the server's host lost, a
       * NAT or firewall that dropped the flow, a proxy that hangs) stays open for ever to the socket,
       * and the command showed its last state for ever. It is pinged every heartbeatMs; one that sent
       * nothing since the last ping (the server answers pings itself, as any WebSocket peer must) is
       * cut off and reconnected, resuming after the last seq shown.
       */
      let beat: NodeJS.Timeout | undefined;
      /** Something came from the server since the last ping. */
      let heard = true;
      const onAbort = () => {
        clearInterval(beat);
        ws.close(1000);
        resolve('aborted');
      };
      options.signal.addEventListener('abort', onAbort, { once: true });
      /** Stops listening (frames still in flight are not drawn) and closes the socket. */
      const detach = () => {
        options.signal.removeEventListener('abort', onAbort);
        clearInterval(beat);
        clearTimeout(again);
        ws.removeAllListeners();
        ws.on('error', () => {});
        ws.close(1000);
      };
      const finish = (result: 'ended' | 'lost') => {
        detach();
        resolve(result);
      };
      const fail = (err: CliError) => {
        detach();
        reject(err);
      };
      const subscribe = () => {
        if (!target) return ws.send(JSON.stringify({ type: 'list_upgrades' }));
        if (awaitingSubscribed) resumes += 1;
        // createdAt names the run the state is of: if the id was started again while we were away,
        // the server answers resync and a snapshot rather than the new run's events after our seq.
        ws.send(JSON.stringify(state ? { type: 'subscribe', upgradeId: target, sinceSeq: state.lastSeq, createdAt: state.createdAt } : { type: 'subscribe', upgradeId: target }));
      };
      ws.on('unexpected-response', (_req, res) => {
        const code = res.statusCode ?? 0;
        // With this listener ws leaves the request to us: fail() closes it (a proxy answering 401 with
        // keep-alive held the socket, and the handshake timeout then logged "retrying" after the error).
        res.resume();
        if (RETRIED_STATUS.has(code)) {
          // The server behind a proxy is down or restarting: try again, as after a refused connection.
          lastFailure = describeStatus(code, url, options.token);
          options.view.say(`${connectedOnce ? 'reconnecting' : 'connecting'} to ${redactUrl(url)}: ${lastFailure}; retrying`);
          finish('lost');
          return;
        }
        if (code === 404 && !connectedOnce && candidates.length > 0) {
          // Not the endpoint (a URL without the server's path): the next one, said so that the user
          // learns the URL that works.
          notFound.push(url);
          url = candidates.shift()!;
          options.view.say(`no WebSocket endpoint at ${redactUrl(notFound.at(-1)!)} (HTTP 404); trying ${redactUrl(url)}`);
          tryNext = true;
          finish('lost');
          return;
        }
        if (code === 404) {
          // After a first connection, the one URL used since (the ones that failed before it are history).
          const tried = connectedOnce ? [url] : [...notFound, url];
          fail(new CliError(`the server refused the connection: ${describeStatus(code, url, options.token)} (no WebSocket endpoint at ${tried.map(redactUrl).join(' nor at ')}${connectedOnce ? '' : notFoundHint(tried)})`, ExitCode.NOT_FOUND));
          return;
        }
        fail(new CliError(`the server refused the connection: ${describeStatus(code, url, options.token)}`, ExitCode.UNAVAILABLE));
      });
      ws.on('open', () => {
        backoff = 250;
        lastFailure = undefined;
        if (connectedOnce) options.view.say(`reconnected to ${redactUrl(url)}; resuming after seq ${state?.lastSeq ?? 0}`);
        connectedOnce = true;
        const every = options.heartbeatMs ?? 30_000;
        if (every > 0) {
          /** Gives the connection up, saying what went unanswered, and reconnects. */
          const giveUp = (what: string): void => {
            options.view.say(`no answer ${what}from ${redactUrl(url)} within ${every / 1000} s; reconnecting`);
            // No close handshake over a dead path: ws would wait for the server's close frame.
            ws.terminate();
            finish('lost');
          };
          beat = setInterval(() => {
            if (!heard) return giveUp('');
            const resumeOut = awaitingSubscribed && refusedResume !== resumes;
            if (resumeOut && waitingAtBeat === resumes) return giveUp('to the subscribe ');
            waitingAtBeat = resumeOut ? resumes : 0;
            heard = false;
            if (ws.readyState === WebSocket.OPEN) ws.ping();
          }, every);
        }
      });
      ws.on('pong', () => (heard = true));
      ws.on('ping', () => (heard = true));
      ws.on('message', (raw) => {
        heard = true;
        let msg: ServerMessage;
        try {
          msg = JSON.parse(raw.toString()) as ServerMessage;
        } catch {
          return;
        }
        try {
          if (!msg || typeof msg !== 'object') throw new TypeError('not a JSON object');
          switch (msg.type) {
            case 'welcome': {
              // The server's clock (an addition to protocol v1: an older server sends none), carried
              // on by the monotonic one: the ETA is reckoned from the upgrade's start, which the
              // server's side stamped. This machine's clock may be minutes off (a laptop): the time
              // spent came out that much off, below zero (none: an ETA of "now") when behind.
              const serverAt = typeof msg.serverTime === 'string' ? Date.parse(msg.serverTime) : NaN;
              if (Number.isFinite(serverAt)) {
                const at = performance.now();
                options.view.now = () => serverAt + (performance.now() - at);
              }
              subscribe();
              break;
            }
            case 'subscribed':
              // The answer to the subscribe sent last (only one is out at a time): its frames follow.
              if (msg.upgradeId === undefined || msg.upgradeId === target) awaitingSubscribed = false;
              rateLimited = 0;
              unserved = 0;
              // Nothing else comes until the upgrade appears: said, as a folder or a Redis URL says it,
              // so that a mistyped id is not an empty screen for ever.
              absent = target !== undefined && msg.upgradeId === target && msg.exists === false;
              if (absent && !state) {
                options.view.say(waitingLine(target!));
                if (!hintAnswered && !hintListOut) {
                  hintListOut = true;
                  ws.send(JSON.stringify({ type: 'list_upgrades' }));
                }
              }
              break;
            case 'upgrades': {
              const rows = Array.isArray(msg.data) ? (msg.data as Array<{ upgradeId: string }>) : [];
              if (hintListOut) {
                // The list asked for a hint: the nearest id, while the upgrade is still waited for.
                hintListOut = false;
                hintAnswered = true;
                const hint = target !== undefined && absent && !state ? didYouMean(target, rows.map((row) => (row as { upgradeId?: unknown } | null)?.upgradeId)) : '';
                if (hint) options.view.say(`upgrade "${target}" is not on this server yet${hint}`);
                break;
              }
              rateLimited = 0;
              unserved = 0;
              if (rows[0]) {
                target = rows[0].upgradeId;
                subscribe();
              } else {
                // Asked again until one appears: said, so that an empty server is not an empty screen.
                if (!saidNoUpgrades) options.view.say('no upgrades on this server yet; waiting for one to appear...');
                saidNoUpgrades = true;
                askAgain(500);
              }
              break;
            }
            case 'snapshot':
              if (msg.upgradeId !== target || awaitingSubscribed) break;
              if (!isState(msg.data)) throw new TypeError('a snapshot without an upgrade state');
              // A copy whose tasks record has no prototype, as the reducer keeps it: JSON.parse gave
              // a plain object, on which a task "constructor" or "__proto__" added later would not fold.
              state = cloneState(msg.data);
              // It exists now: a later resync on this connection is not the deletion `absent` says.
              absent = false;
              noteRun(state.createdAt);
              options.view.update(state);
              if (isTerminal(state.status) && !options.follow) finish('ended');
              break;
            case 'progress_event': {
              if (msg.upgradeId !== target || awaitingSubscribed) break;
              const event = msg.data as ProgressEvent;
              // The reducer takes a percentage as it comes: a string would be drawn as the task's (its text, escapes and all).
              if (event?.percentage !== undefined && !Number.isFinite(event.percentage)) throw new TypeError('an event whose percentage is not a number');
              if (state && event.seq > state.lastSeq + 1) {
                // Never show a gap: ask again from what we have, once; the frames after this one
                // until the server answers are the old subscription's (see awaitingSubscribed).
                awaitingSubscribed = true;
                subscribe();
                break;
              }
              if (!state && event.seq === 1 && event.type === 'upgrade.created') noteRun(event.timestamp);
              state = fold(state, event, options.view);
              absent = false;
              if (isTerminal(state.status) && !options.follow) finish('ended');
              break;
            }
            case 'resync':
              if (awaitingSubscribed && (msg.upgradeId === undefined || msg.upgradeId === target)) break;
              // The state shown is dropped with its bars: with no snapshot after it (deleted), they would stay as if current.
              options.view.forget();
              // After `subscribed` said the upgrade does not exist, no snapshot follows: it was deleted
              // while we were away, and is waited for (its new run's first event says so), as from a folder.
              // So when the server says none follows (`exists: false`: deleted or expired while followed).
              // Not when it says one does (`exists: true`): the upgrade waited for has appeared (a server
              // over a store that cannot watch resyncs its subscribers to it), and was never deleted.
              if ((msg.exists === false || (msg.exists === undefined && absent)) && target !== undefined) options.view.say(deletedLine(target));
              else options.view.say(`resync: ${msg.reason ?? 'history gone'}; reloading the snapshot`);
              droppedRun = state?.createdAt ?? droppedRun;
              state = undefined;
              break;
            case 'error': {
              // The list asked for a hint could not be had: no hint (asked again on the next connection), the subscribe stands.
              if (hintListOut && msg.upgradeId === undefined) {
                hintListOut = false;
                break;
              }
              // The answer to the resume out, if one is (see awaitingSubscribed): the heartbeat does not count it as unanswered.
              refusedResume = resumes;
              options.view.say(`server: ${msg.code}: ${msg.message}`);
              const asked = target ? `"${target}"` : 'the upgrade list';
              // The only requests this client sends are a subscribe and list_upgrades, so an error
              // answers one of them. A refusal gives up (asking again would get the same answer); a
              // rate limit passes, and so may a failing store.
              if (msg.code === 'FORBIDDEN') fail(new CliError(`the server refused access to ${asked}: ${msg.message}`, ExitCode.NOT_FOUND));
              else if (msg.code === 'INVALID_MESSAGE') fail(new CliError(`the server refused the request for ${asked}: ${msg.message}`, ExitCode.USAGE));
              else if (msg.code === 'RATE_LIMITED') {
                const wait = RATE_LIMIT_RETRY_MS[rateLimited++];
                if (wait === undefined) fail(new CliError(`the server kept refusing ${asked} (RATE_LIMITED ${rateLimited} times): ${msg.message}`, ExitCode.UNAVAILABLE));
                else askAgain(wait);
              } else {
                // The server could not serve it now: its store failed (STORE_UNAVAILABLE, DATA_CORRUPTED,
                // ...; a ws-server older than STORE_UNAVAILABLE says NOT_FOUND). Not "no such upgrade": a
                // subscribe to one that does not exist yet is answered `subscribed` and waits. Ask again,
                // on this connection, as a lost connection is reconnected to.
                const wait = Math.min(STORE_RETRY_MAX_MS, STORE_RETRY_MS * 2 ** unserved++);
                options.view.say(`the server could not serve ${asked}; asking again in ${wait / 1000} s`);
                askAgain(wait);
              }
              break;
            }
            default:
              break;
          }
        } catch (err) {
          // A frame of a server that breaks the protocol (or of another version) must not crash the command.
          fail(new CliError(`the server sent a message this client cannot use (${(err as Error).message})`, ExitCode.UNAVAILABLE));
        }
      });
      ws.on('close', () => finish('lost'));
      ws.on('error', (err) => {
        // A wss:// URL to a plain server: OpenSSL's reason (its whole message is a line of codes and
        // file names, ending with a line break) and the scheme to use. Others on one line.
        const notTls = isNotTlsAnswer(err);
        lastFailure = notTls ? notTlsReason(err) : withPlainHangUpHint(err.message.trim().replace(/\s*\n\s*/g, ' '), err, url);
        // A certificate Node refuses, or a server that does not speak TLS, is met again on the next
        // try: given up at once, with the error the timeout would have ended with (a server reached
        // before may renew its certificate, or be put back behind TLS, while it is away: that one is
        // retried, as any lost connection).
        if (!connectedOnce && (isCertificateError(err) || notTls)) fail(new CliError(`cannot connect to ${redactUrl(url)} (${withCertificateHint(lastFailure)})`, ExitCode.UNAVAILABLE));
        else if (!connectedOnce) options.view.say(`cannot connect to ${redactUrl(url)}: ${lastFailure}; retrying`);
      });
    });
    if (outcome !== 'lost') break;
    if (tryNext) {
      tryNext = false;
      continue;
    }
    // Never reached: give up after a while, so that a wrong URL fails a script instead of hanging it.
    if (!connectedOnce && performance.now() >= firstConnectDeadline) {
      throw new CliError(`cannot connect to ${redactUrl(url)}${lastFailure ? ` (${withCertificateHint(lastFailure)})` : ''}`, ExitCode.UNAVAILABLE);
    }
    // The last try before giving up is made at the deadline, not a whole backoff (up to 5 s) after it.
    await sleep(connectedOnce ? backoff : Math.max(0, Math.min(backoff, firstConnectDeadline - performance.now())), undefined, { signal: options.signal }).catch(() => {});
    backoff = Math.min(5000, backoff * 2);
  }
  return state;
}
