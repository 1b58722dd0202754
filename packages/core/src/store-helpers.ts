import { ProgressError } from './errors.js';
import { KNOWN_EVENT_TYPES, KNOWN_STATUSES, PROGRESS_STATUSES, type ListFilter, type ProgressEvent, type ProgressStatus, type UpgradeProgress, type UpgradeSummaryRow } from './model.js';
import { assertKnownOptions, describe } from './validation.js';

/**
 * A UTF-16 surrogate without its pair (`'\uD800'`). An eventId holding one cannot be stored as it
 * is: UTF-8 (a file, a Redis key or argument) has no spelling for it and writes U+FFFD instead, so
 * the id read back is another one, and a store that compares ids (Redis' check that a re-sent
 * append is its own, its watchers' check of an upgrade's first event) never matches it.
 */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Checks the arguments of `append` the same way in every store: a non-empty array of events of this
 * upgrade with consecutive seqs starting at `expectedSeq + 1`, each with a non-empty string
 * `eventId` (well-formed: no lone surrogate), a known `type` (a `task.*` one with a string `taskId`), a known `status`, a string `timestamp` and a
 * `details` object: what a store needs to read the event back and what the reducer needs to place
 * it. (Whether the event may follow the state, such as a task added twice, is the tracker's check;
 * a store does not fold what it stores.)
 *
 * An event that cannot be read (a getter or Proxy trap that throws) is refused alike.
 *
 * @param store The store's name, for the message.
 * @throws ProgressError `INVALID_ARGUMENT`
 */
export function assertAppend(store: string, upgradeId: string, events: readonly ProgressEvent[], expectedSeq: number): void {
  if (!Number.isSafeInteger(expectedSeq) || expectedSeq < 0) {
    throw new ProgressError('INVALID_ARGUMENT', `[${store}] expectedSeq must be a whole number >= 0, got ${describe(expectedSeq)}`);
  }
  if (!Array.isArray(events) || events.length === 0) {
    throw new ProgressError('INVALID_ARGUMENT', `[${store}] append needs at least one event`, { context: { upgradeId } });
  }
  for (let i = 0; i < events.length; i++) {
    try {
      assertEvent(store, upgradeId, events[i]!, i, expectedSeq);
    } catch (cause) {
      // A getter or Proxy trap that throws: refused like any other bad event, in every store.
      if (cause instanceof ProgressError) throw cause;
      throw new ProgressError('INVALID_ARGUMENT', `[${store}] upgrade "${upgradeId}": event ${i} could not be read`, { cause, context: { upgradeId, expectedSeq } });
    }
  }
}

/** One event of {@link assertAppend}'s batch. */
function assertEvent(store: string, upgradeId: string, event: ProgressEvent, i: number, expectedSeq: number): void {
  if (!event || event.upgradeId !== upgradeId || event.seq !== expectedSeq + i + 1) {
    throw new ProgressError(
      'INVALID_ARGUMENT',
      `[${store}] upgrade "${upgradeId}": event ${i} must have upgradeId "${upgradeId}" and seq ${expectedSeq + i + 1}, got ${describe(event?.upgradeId)} seq ${describe(event?.seq)}`,
      { context: { upgradeId, expectedSeq } },
    );
  }
  const d = event.details as unknown;
  if (
    typeof event.eventId !== 'string' ||
    event.eventId === '' ||
    LONE_SURROGATE.test(event.eventId) ||
    !KNOWN_EVENT_TYPES.has(event.type) ||
    !KNOWN_STATUSES.has(event.status) ||
    (event.type.startsWith('task.') && typeof event.taskId !== 'string') ||
    typeof event.timestamp !== 'string' ||
    d === null ||
    typeof d !== 'object' ||
    Array.isArray(d)
  ) {
    throw new ProgressError(
      'INVALID_ARGUMENT',
      `[${store}] upgrade "${upgradeId}": event ${i} (seq ${event.seq}) needs a non-empty string eventId (no lone surrogate), a known type (with a taskId for a task.* one) and status, a string timestamp and a details object`,
      { context: { upgradeId, expectedSeq } },
    );
  }
}

/**
 * Checks the `state` argument of `append` (the upgrade's state after the events, which a store may
 * write as a snapshot and from which it takes the `list()` row): an object of this `upgradeId` with
 * a whole `lastSeq`, a known `status`, a finite `overallPercentage`, a string `updatedAt` and a
 * `tasks` object (and one that cannot be read: a getter or Proxy trap that throws). Every store
 * checks it before it changes anything, so that a bad one is refused the same way everywhere.
 *
 * @param lastSeq The seq of the batch's last event (`expectedSeq + events.length`), for a store that
 * takes more than a snapshot it checks from the state (its `list()` row): a state whose `lastSeq` is
 * another (the state from before the events, one ahead of them) is then refused too, since that
 * store would list what `load()` contradicts. A store that takes its row from the events may leave
 * it out and skip the snapshot of such a state.
 * @throws ProgressError `INVALID_ARGUMENT`
 */
export function assertAppendState(store: string, upgradeId: string, state: unknown, lastSeq?: number): asserts state is UpgradeProgress {
  const s = state !== null && typeof state === 'object' ? (state as Partial<Record<keyof UpgradeProgress, unknown>>) : undefined;
  let bad: boolean;
  try {
    bad = isBadState(s, upgradeId);
  } catch (cause) {
    throw new ProgressError('INVALID_ARGUMENT', `[${store}] upgrade "${upgradeId}": the state could not be read`, { cause, context: { upgradeId } });
  }
  if (bad) {
    throw new ProgressError(
      'INVALID_ARGUMENT',
      `[${store}] upgrade "${upgradeId}": state must be this upgrade's state after the events (upgradeId, lastSeq, status, overallPercentage, updatedAt, tasks), got ${describe(state)}`,
      { context: { upgradeId } },
    );
  }
  if (lastSeq !== undefined && (state as UpgradeProgress).lastSeq !== lastSeq) {
    throw new ProgressError(
      'INVALID_ARGUMENT',
      `[${store}] upgrade "${upgradeId}": state must be this upgrade's state after the events, whose last seq is ${lastSeq}, got a state at seq ${(state as UpgradeProgress).lastSeq}`,
      { context: { upgradeId } },
    );
  }
}

function isBadState(s: Partial<Record<keyof UpgradeProgress, unknown>> | undefined, upgradeId: string): boolean {
  return (
    !s ||
    s.upgradeId !== upgradeId ||
    typeof s.lastSeq !== 'number' ||
    !Number.isSafeInteger(s.lastSeq) ||
    s.lastSeq < 0 ||
    !PROGRESS_STATUSES.includes(s.status as ProgressStatus) ||
    typeof s.overallPercentage !== 'number' ||
    !Number.isFinite(s.overallPercentage) ||
    typeof s.updatedAt !== 'string' ||
    s.tasks === null ||
    typeof s.tasks !== 'object'
  );
}

/**
 * Checks the arguments of `readEvents`: `afterSeq` a whole number >= 0, `limit` one too or
 * `Infinity` (the default). Stores refuse a bad one alike rather than read it as "no events" (-1,
 * NaN) or round it (2.5).
 *
 * @throws ProgressError `INVALID_ARGUMENT`
 */
export function assertReadEvents(store: string, upgradeId: string, afterSeq: number, limit: number): void {
  if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) {
    throw new ProgressError('INVALID_ARGUMENT', `[${store}] afterSeq must be a whole number >= 0, got ${describe(afterSeq)}`, { context: { upgradeId } });
  }
  if (limit !== Infinity && (!Number.isSafeInteger(limit) || limit < 0)) {
    throw new ProgressError('INVALID_ARGUMENT', `[${store}] limit must be a whole number >= 0, got ${describe(limit)}`, { context: { upgradeId } });
  }
}

/**
 * `INVALID_ARGUMENT` for an append whose events or state a store could not serialize or copy (`why`
 * says which, `cause` is what threw): nothing was stored. Every store refuses such input alike.
 */
export function appendInputError(store: string, upgradeId: string, expectedSeq: number, why: string, cause: unknown): ProgressError {
  return new ProgressError('INVALID_ARGUMENT', `[${store}] upgrade "${upgradeId}": ${why} (${(cause as Error)?.message ?? String(cause)})`, {
    cause,
    context: { upgradeId, expectedSeq },
  });
}

// An object checked against the interface, so that a new filter key cannot be left out of this list.
const LIST_FILTER_KEYS = Object.keys({ status: 0, clusterName: 0, limit: 0 } satisfies Record<keyof ListFilter, 0>);

/** Checks a list filter; throws `INVALID_ARGUMENT` for a bad one. */
export function assertListFilter(filter: ListFilter | undefined): void {
  if (filter === undefined) return;
  if (!filter || typeof filter !== 'object') throw new ProgressError('INVALID_ARGUMENT', '[@progress/core] a list filter must be an object');
  // A misspelt key (`statuses`, `cluster`) was left out without a word: every upgrade was listed,
  // as if unfiltered.
  assertKnownOptions(filter, LIST_FILTER_KEYS, { source: '@progress/core', what: 'list filter' });
  if (filter.clusterName !== undefined && typeof filter.clusterName !== 'string') {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] list clusterName must be a string, got ${describe(filter.clusterName)}`);
  }
  const statuses = filter.status === undefined ? [] : Array.isArray(filter.status) ? filter.status : [filter.status];
  for (const s of statuses) {
    if (!PROGRESS_STATUSES.includes(s)) throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] unknown status ${describe(s)} in list filter`);
  }
  if (filter.limit !== undefined && (!Number.isSafeInteger(filter.limit) || filter.limit < 0)) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] list limit must be a whole number >= 0, got ${describe(filter.limit)}`);
  }
}

/**
 * Applies a {@link ListFilter} to rows: status and cluster, then the most recently updated first,
 * then the limit. Every store returns its rows through this, so they all sort and filter alike.
 */
export function filterRows(rows: UpgradeSummaryRow[], filter?: ListFilter): UpgradeSummaryRow[] {
  if (!Array.isArray(rows)) throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] filterRows() needs an array of rows, got ${describe(rows)}`);
  assertListFilter(filter);
  const statuses = filter?.status === undefined ? undefined : Array.isArray(filter.status) ? filter.status : [filter.status];
  const out = rows.filter((r) => {
    if (typeof r !== 'object' || r === null) throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] filterRows() needs rows that are objects, got ${describe(r)}`);
    return (!statuses || statuses.includes(r.status)) && (filter?.clusterName === undefined || r.clusterName === filter.clusterName);
  });
  out.sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : a.updatedAt > b.updatedAt ? -1 : a.upgradeId.localeCompare(b.upgradeId)));
  return filter?.limit === undefined ? out : out.slice(0, filter.limit);
}
