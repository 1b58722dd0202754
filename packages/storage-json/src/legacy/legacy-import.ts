import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { type EventType, type ProgressError, type ProgressEvent, type ProgressStatus, PROGRESS_STATUSES, describeValue, isValidId } from '@progress/core';
import { storeError } from '../errors.js';
import { parsePythonDatetimeMicros, parsePythonTimedelta } from './python-time.js';

type Obj = Record<string, unknown>;

/** Task statuses that end a task (for now): their event carries the recorded end time. */
const ENDED: readonly ProgressStatus[] = ['completed', 'failed', 'skipped', 'cancelled'];

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const strOr = (v: unknown, fallback: string): string => (typeof v === 'string' && v.length > 0 ? v : fallback);
const numOr = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
/** A decimal number written as a string (`"50.0"`, `"1E+2"`), as Python's float() reads one; not `""`, `"0x10"` or `"nan"`. */
const DECIMAL = /^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$/;
/**
 * A percentage's number: a finite number, or one written as a decimal string. The old module saved
 * with `json.dump(..., default=str)`, which writes a value that is not a JSON number (a `Decimal`, a
 * numpy float32 a caller passed) as its `str()`, and its pydantic model read such a string back as
 * the float it spells.
 */
const pctNumOr = (v: unknown): number | undefined => numOr(typeof v === 'string' && DECIMAL.test(v) ? Number(v) : v);
/** A task's total_steps as the API takes it (a whole number >= 1), else null: 0 steps would make every step 0/0%. */
const wholeSteps = (v: unknown): number | null => (typeof v === 'number' && Number.isInteger(v) && v >= 1 ? v : null);
/**
 * The most retries a task's `retry_count` is imported as: each is an event, replayed on every load
 * (the old module never counted retries itself; a larger count is not one a run made).
 */
const MAX_IMPORTED_RETRIES = 100;
/**
 * A task's `retry_count` as a number of retries: a whole number of 0 or more as it is (at most
 * {@link MAX_IMPORTED_RETRIES}); a negative or fractional one brought to the nearest whole number of 0 or more below it;
 * anything else (a string, a boolean; null, or a NaN that loads as null) 0.
 */
const retriesOf = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? Math.min(MAX_IMPORTED_RETRIES, Math.max(0, Math.floor(v))) : 0);

/** An ISO 8601 date and time, e.g. `2024-01-01T00:00:00.000Z` or `2024-01-01T01:00:00+01:00`. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})$/;

/**
 * Checks what a caller of {@link importLegacyUpgrade} gives besides the file's content, and returns
 * `fallbackTime` in the form every event's timestamp has (`toISOString()`: timestamps are compared as
 * strings). Unchecked, an id no store takes (`42`, `../x`) or a time that is none (`'garbage'`, a
 * Date) became events that no store would append, and a file name that is not a string a TypeError.
 */
function checkImportArguments(upgradeId: unknown, file: unknown, fallbackTime: unknown): string {
  const refuse = (what: string, value: unknown, rule: string): ProgressError =>
    storeError('INVALID_ARGUMENT', `importLegacyUpgrade(): ${what} must be ${rule}, got ${describeValue(value)}`, { [what]: value });
  if (!isValidId(upgradeId)) throw refuse('upgradeId', upgradeId, 'a valid id (1 to 128 characters of A-Z a-z 0-9 _ . : -, not "." or "..")');
  if (typeof file !== 'string' || file.length === 0) throw refuse('file', file, "a non-empty string (the file's path, for messages)");
  const ms = typeof fallbackTime === 'string' && ISO_TIME.test(fallbackTime) ? Date.parse(fallbackTime) : NaN;
  if (!Number.isFinite(ms)) throw refuse('fallbackTime', fallbackTime, 'an ISO 8601 time string (such as new Date().toISOString())');
  return new Date(ms).toISOString();
}

/** A UUID-shaped id derived from the upgrade and seq, so that importing twice gives the same events. */
function derivedId(upgradeId: string, seq: number): string {
  const h = createHash('sha1').update(`@progress/storage-json legacy ${upgradeId} ${seq}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

interface Draft {
  type: EventType;
  /** With microseconds (`parsePythonDatetimeMicros`), so that drafts order as recorded within a millisecond; cut to milliseconds in the event. */
  timestamp: string;
  status: ProgressStatus;
  message: string;
  taskId?: string;
  taskType?: string;
  percentage?: number;
  details: Obj;
  eventId?: string;
}

/**
 * Turns a file of the old Python module (`progress/upgrade_<id>.json`: snake_case, Python `str()`
 * datetimes and timedeltas) into the events that rebuild it: `upgrade.created` (with the metadata),
 * `upgrade.started` (with the phase, when the upgrade had started), `task.added` per task (parents
 * first), each task's recorded events as `task.*` events (keeping their ids, messages and details),
 * whatever event it takes to reach each task's recorded final status, and the upgrade's final
 * status event. Task start and end events carry the task's recorded `started_at` / `completed_at`,
 * so the loaded state has the old times to the millisecond (the import orders and compares them to
 * the microsecond, as recorded). A restart (after an end, or while running, told by the file's
 * `started_at`) is a `task.retried`, and a task's `retry_count` the number of `task.retried` it
 * loads with (the retries its events do not record are added at its start). Python durations are
 * kept as `legacyDuration` / `legacyDurationMs` in the details of the event that ends the task or
 * upgrade.
 *
 * @param upgradeId A valid id (see `assertValidId`).
 * @param file The file's path, for messages and `details.legacyFile`.
 * @param fallbackTime ISO 8601 time for `upgrade.created` when the file holds no time at all.
 * @throws ProgressError `INVALID_ARGUMENT` for an `upgradeId`, `file` or `fallbackTime` that does
 * not fit; `DATA_CORRUPTED` naming the file and the field when the file does not fit.
 */
export function importLegacyUpgrade(doc: unknown, upgradeId: string, file: string, fallbackTime: string): ProgressEvent[] {
  const fallback = `${checkImportArguments(upgradeId, file, fallbackTime).slice(0, -1)}000Z`;
  const bad = (why: string): Error => storeError('DATA_CORRUPTED', `upgrade "${upgradeId}": legacy file ${file} ${why}; it is left as it is`, { upgradeId, file });
  if (!isObj(doc)) throw bad('is not a JSON object');
  const time = (v: unknown, field: string): string | undefined => {
    if (v === null || v === undefined) return undefined;
    const iso = typeof v === 'string' ? parsePythonDatetimeMicros(v) : undefined;
    if (!iso) throw bad(`has a bad datetime in ${field}: ${JSON.stringify(v)}`);
    return iso;
  };
  const status = (v: unknown, field: string): ProgressStatus => {
    if (typeof v === 'string' && (PROGRESS_STATUSES as readonly string[]).includes(v)) return v as ProgressStatus;
    throw bad(`has an unknown status in ${field}: ${JSON.stringify(v)}`);
  };
  /**
   * A task's status here. The old model let a task be `paused` too, which tasks here are not: one
   * stays in_progress while its upgrade is paused. So a paused task (or event) loads as in_progress,
   * keeping its start time, percentage and events; `legacyStatus` keeps the recorded one.
   */
  const taskStatus = (v: unknown, field: string): ProgressStatus => {
    const s = status(v, field);
    return s === 'paused' ? 'in_progress' : s;
  };
  /**
   * A percentage in 0..100, or `undefined` for none (null, or NaN and Infinity, which load as null).
   * One written as a decimal string (`"50.0"`) is that number, as the old module read it back.
   * One outside 0..100 (the old module took any number: 5 of 4 steps made 125) is brought to the
   * nearest end, so that it cannot carry the overall percentage out of 0..100, and the file still
   * loads; the event keeps the recorded value in `details.legacyPercentage`.
   */
  const percentage = (v: unknown): number | undefined => {
    const n = pctNumOr(v);
    return n === undefined ? undefined : Math.min(100, Math.max(0, n));
  };
  /** `{ legacyPercentage }` when the file's value was brought into 0..100, else nothing. */
  const keptPercentage = (v: unknown, pct: number | undefined): Obj => (pct !== undefined && pctNumOr(v) !== pct ? { legacyPercentage: v } : {});
  const duration = (v: unknown): Obj => {
    const ms = typeof v === 'string' ? parsePythonTimedelta(v) : undefined;
    return ms === undefined ? {} : { legacyDuration: v, legacyDurationMs: ms };
  };

  const upStatus = status(doc.status ?? 'not_started', 'status');
  // A known status, but not an upgrade's: loaded, it would pass for in_progress.
  if (upStatus === 'skipped') throw bad(`has a status only a task can have in status: ${JSON.stringify(doc.status)}`);
  const startedAt = time(doc.started_at, 'started_at');
  const completedAt = time(doc.completed_at, 'completed_at');
  const metadata = isObj(doc.metadata) ? doc.metadata : {};
  const rawTasks = doc.tasks === undefined || doc.tasks === null ? {} : doc.tasks;
  if (!isObj(rawTasks)) throw bad('has "tasks" that is not an object');

  // Tasks, parents before children, otherwise in file order.
  const tasks: Array<{ id: string; t: Obj }> = [];
  const pending = Object.entries(rawTasks).map(([key, t]) => {
    if (!isObj(t)) throw bad(`has task "${key}" that is not an object`);
    return { id: strOr(t.task_id, key), t };
  });
  // Two entries with one task_id: the old module keyed each task by its id, so only a file edited
  // by hand has them. Imported, the second task.added would fail in core's reducer with a message
  // that names neither this file nor the entries; said here, as for any other field that does not fit.
  const keyOf = new Map<string, string>();
  for (const [key, t] of Object.entries(rawTasks)) {
    const id = strOr((t as Obj).task_id, key);
    const first = keyOf.get(id);
    if (first !== undefined) throw bad(`has two tasks with the id ${JSON.stringify(id)} (tasks.${first} and tasks.${key})`);
    keyOf.set(id, key);
  }
  const placed = new Set<string>();
  while (pending.length > 0) {
    const i = pending.findIndex(({ t }) => typeof t.parent_task_id !== 'string' || placed.has(t.parent_task_id) || !pending.some((p) => p.id === t.parent_task_id));
    if (i < 0) throw bad('has tasks whose parents form a cycle');
    const [next] = pending.splice(i, 1);
    tasks.push(next!);
    placed.add(next!.id);
  }

  const allTimes: string[] = [];
  for (const v of [startedAt, completedAt]) if (v) allTimes.push(v);
  /** Each task's events, in the order the task recorded them. */
  const taskLists: Draft[][] = [];
  const added: Draft[] = [];
  let order = 0;
  const seqOf = new Map<Draft, number>();
  for (const { id, t } of tasks) {
    const taskType = strOr(t.task_type, 'upgrade_step');
    const tStarted = time(t.started_at, `tasks.${id}.started_at`);
    const tCompleted = time(t.completed_at, `tasks.${id}.completed_at`);
    const tStatus = taskStatus(t.status ?? 'not_started', `tasks.${id}.status`);
    const parent = typeof t.parent_task_id === 'string' && placed.has(t.parent_task_id) ? t.parent_task_id : null;
    const addedDraft: Draft = {
      type: 'task.added',
      timestamp: '',
      status: 'not_started',
      message: `Task added: ${strOr(t.task_name, id)}`,
      taskId: id,
      taskType,
      details: { taskName: strOr(t.task_name, id), parentTaskId: parent, totalSteps: wholeSteps(t.total_steps), weight: 1, ...(t.status === 'paused' ? { legacyStatus: 'paused' } : {}) },
    };
    added.push(addedDraft);
    const mine: Draft[] = [];
    let cur: ProgressStatus = 'not_started';
    let lastPct: number | undefined;
    /** When the task's current run started: its last task.started or task.retried so far ('' for none). */
    let runStart = '';
    const recorded = Array.isArray(t.events) ? t.events : [];
    for (let n = 0; n < recorded.length; n++) {
      const raw: unknown = recorded[n];
      if (!isObj(raw)) throw bad(`has event ${n} of task "${id}" that is not an object`);
      const s = taskStatus(raw.status, `tasks.${id}.events[${n}].status`);
      const ts = time(raw.timestamp, `tasks.${id}.events[${n}].timestamp`) ?? tStarted ?? startedAt ?? fallback;
      const prev = mine[mine.length - 1];
      let type = taskEventType(s, cur);
      if (!type) continue;
      // Started again while it was running: the old start_task() took a running task too, and set
      // started_at anew just before recording the start, as an event like a progress update. The file's
      // started_at, when it is later than this run's start, is that last start's: the first event at or
      // after it (and not before the event ahead of it) is the restart. Imported as a retry, which
      // starts the task again here (its start and duration are the last run's, as the file has them).
      if (type === 'task.progress' && tStarted && tStarted <= ts && prev !== undefined && tStarted >= prev.timestamp && tStarted > runStart) type = 'task.retried';
      const details: Obj = isObj(raw.details) ? { ...raw.details } : {};
      if (raw.status === 'paused') details.legacyStatus = 'paused';
      // Each failure's own error: the old module's fail_task() wrote it only into the message
      // ("Task failed: <error>", details empty), and error_message holds the last failure's.
      if (type === 'task.failed') {
        const fromMessage = typeof raw.message === 'string' && raw.message.startsWith('Task failed: ') ? raw.message.slice('Task failed: '.length) : undefined;
        details.errorMessage = strOr(details.error_message, strOr(fromMessage, strOr(t.error_message, strOr(raw.message, 'Task failed'))));
      }
      const pct = percentage(raw.percentage);
      Object.assign(details, keptPercentage(raw.percentage, pct));
      mine.push({
        type,
        // The old module set started_at just before recording the start, and again on every later
        // start_task(): a started_at after this event is a restart's, and would put the start after
        // what followed it; one before the event ahead of a restart is an earlier start's.
        timestamp: (type === 'task.started' || type === 'task.retried') && tStarted && tStarted <= ts && (prev === undefined || tStarted >= prev.timestamp) ? tStarted : ts,
        status: s,
        message: strOr(raw.message, type),
        taskId: id,
        taskType: strOr(raw.task_type, taskType),
        ...(pct !== undefined ? { percentage: pct } : {}),
        details,
        ...(typeof raw.event_id === 'string' ? { eventId: raw.event_id } : {}),
      });
      cur = s;
      if (type === 'task.started' || type === 'task.retried') runStart = mine[mine.length - 1]!.timestamp;
      // The percentage the task has now, as the reducer applies it: a start's or a progress event's;
      // 100 on completion; a failure's, skip's or cancel's not at all. A retry keeps the one it had, but
      // the old module's start_task() set the percentage the restart records (0 after a completion):
      // a progress event carries it, or a task completed, started again and failed would load at 100%.
      if (type === 'task.completed') lastPct = 100;
      else if (type === 'task.started' || type === 'task.progress') {
        if (pct !== undefined) lastPct = pct;
      } else if (type === 'task.retried' && pct !== undefined && pct !== lastPct) {
        const retried = mine[mine.length - 1]!;
        mine.push({ type: 'task.progress', timestamp: retried.timestamp, status: 'in_progress', message: 'Imported progress', taskId: id, taskType: retried.taskType, percentage: pct, details: {} });
        lastPct = pct;
      }
    }
    // Reach the recorded final status, and the recorded percentage and steps of a running task.
    const finalType = cur !== tStatus ? taskEventType(tStatus, cur) : undefined;
    if (finalType) {
      const type = finalType;
      const details: Obj = tStatus === 'failed' ? { errorMessage: strOr(t.error_message, 'Task failed') } : {};
      const ts = tStatus === 'in_progress' ? (tStarted ?? startedAt ?? fallback) : (tCompleted ?? tStarted ?? startedAt ?? fallback);
      mine.push({ type, timestamp: ts, status: tStatus, message: `Imported status: ${tStatus}`, taskId: id, taskType, details });
      cur = tStatus;
    }
    const recordedPct = percentage(t.percentage);
    const steps = numOr(t.completed_steps) ?? 0;
    // No percentage recorded (null, or a NaN that loads as null): the steps give it, as DESIGN's rule
    // has it ("the last explicit percentage or completedSteps/totalSteps") and as advanceTask records it
    // (the old module, too, derived it from the steps whenever it had total_steps).
    const total = wholeSteps(t.total_steps);
    const pct = recordedPct ?? (total !== null && numOr(t.completed_steps) !== undefined ? percentage(Math.round((steps / total) * 10_000) / 100) : undefined);
    const step = typeof t.current_step === 'string' ? t.current_step : undefined;
    if (tStatus === 'in_progress' && ((pct !== undefined && pct !== lastPct) || steps > 0 || step !== undefined)) {
      mine.push({
        type: 'task.progress',
        timestamp: mine[mine.length - 1]?.timestamp ?? tStarted ?? fallback,
        status: 'in_progress',
        message: 'Imported progress',
        taskId: id,
        taskType,
        ...(pct !== undefined ? { percentage: pct } : {}),
        details: { completedSteps: steps, ...(step !== undefined ? { currentStep: step } : {}), ...keptPercentage(t.percentage, recordedPct) },
      });
    }
    // A failed task loads at the percentage the file records (a restart without a percentage of its
    // own left the completion's 100; the old module did not record every progress update as an event):
    // carried by a progress event just before the failure, which takes the file's completed_at first
    // (the rule below would no longer find it between the events around the failure).
    const ending = mine[mine.length - 1];
    if (tStatus === 'failed' && pct !== undefined && pct !== lastPct && ending?.type === 'task.failed') {
      const before = mine[mine.length - 2]?.timestamp;
      if (tCompleted && tCompleted <= ending.timestamp && (before === undefined || tCompleted >= before)) ending.timestamp = tCompleted;
      mine.splice(mine.length - 1, 0, { type: 'task.progress', timestamp: ending.timestamp, status: 'in_progress', message: 'Imported progress', taskId: id, taskType, percentage: pct, details: keptPercentage(t.percentage, recordedPct) });
      lastPct = pct;
    }
    // The event that ended the task carries the recorded end time and duration.
    const last = mine[mine.length - 1];
    if (last && last.status === tStatus && ENDED.includes(tStatus)) {
      // Only a completed_at that fits between the event before and this one is this end's: the old
      // fail_task() left completed_at alone, so a task completed, started again and failed still
      // carries the first completion's time.
      const before = mine[mine.length - 2]?.timestamp;
      if (tCompleted && tCompleted <= last.timestamp && (before === undefined || tCompleted >= before)) last.timestamp = tCompleted;
      Object.assign(last.details, duration(t.duration));
    }
    // The retries the file counts (retry_count) and its events do not record (each restart recorded is
    // one already): that many task.retried at the task's first start, where they change nothing but
    // the count (a retry here starts the task again, at the same time); before its end for a task
    // that ended without a recorded start. A task never started cannot be retried here. Whenever the
    // count loaded is not the file's, task.added keeps the file's value in details.legacyRetryCount.
    let retries = mine.filter((d) => d.type === 'task.retried').length;
    const missing = retriesOf(t.retry_count) - retries;
    if (missing > 0) {
      const startAt = mine.findIndex((d) => d.type === 'task.started' || d.type === 'task.retried');
      // Ended without a recorded start: its first event starts it here (a completion or failure, or the
      // progress event that carries a failed task's recorded percentage, 0 included, just before it).
      const first = mine[0]?.type;
      const at = startAt >= 0 ? startAt + 1 : first === 'task.completed' || first === 'task.failed' || first === 'task.progress' ? 0 : -1;
      if (at >= 0) {
        const anchor = mine[startAt >= 0 ? startAt : 0]!;
        const synthesized = Array.from({ length: missing }, (_, i): Draft => ({
          type: 'task.retried',
          timestamp: anchor.timestamp,
          status: 'in_progress',
          message: `Imported retry ${retries + i + 1} of ${retries + missing} (retry_count)`,
          taskId: id,
          taskType,
          details: {},
        }));
        mine.splice(at, 0, ...synthesized);
        retries += missing;
      }
    }
    if (t.retry_count !== undefined && t.retry_count !== null && t.retry_count !== retries) addedDraft.details.legacyRetryCount = t.retry_count;
    for (const d of mine) {
      allTimes.push(d.timestamp);
      seqOf.set(d, order++);
    }
    taskLists.push(mine);
  }
  const taskDrafts = mergeByTime(taskLists, seqOf);

  const createdAt = allTimes.length > 0 ? allTimes.reduce((a, b) => (a < b ? a : b)) : fallback;
  const lastTime = allTimes.length > 0 ? allTimes.reduce((a, b) => (a > b ? a : b)) : createdAt;
  const phase = typeof doc.current_phase === 'string' && doc.current_phase.length > 0 ? doc.current_phase : undefined;
  const drafts: Draft[] = [
    {
      type: 'upgrade.created',
      timestamp: createdAt,
      status: 'not_started',
      message: `Upgrade imported from ${basename(file)}`,
      details: { planId: strOr(doc.plan_id, upgradeId), clusterName: strOr(doc.cluster_name, 'unknown'), metadata, legacyFile: basename(file) },
    },
  ];
  // Started when it has a start time or a status only a started upgrade has: the old module could
  // fail or cancel an upgrade that never started (a failed pre-flight), and so can ours.
  if (startedAt || (upStatus !== 'not_started' && upStatus !== 'failed' && upStatus !== 'cancelled')) {
    drafts.push({ type: 'upgrade.started', timestamp: startedAt ?? createdAt, status: 'in_progress', message: `Upgrade started: ${phase ?? 'Initialization'}`, details: { phase: phase ?? 'Initialization' } });
  } else if (phase) {
    drafts.push({ type: 'upgrade.phase_changed', timestamp: createdAt, status: 'not_started', message: `Phase changed to ${phase}`, details: { phase } });
  }
  for (const a of added) drafts.push({ ...a, timestamp: createdAt });
  drafts.push(...taskDrafts);
  const end = completedAt ?? lastTime;
  const upDuration = duration(doc.duration);
  switch (upStatus) {
    case 'completed':
      drafts.push({ type: 'upgrade.completed', timestamp: end, status: 'completed', message: 'Upgrade completed', details: upDuration });
      break;
    case 'failed': {
      const errorMessage = strOr(metadata.error_message, strOr(doc.error_message, 'Upgrade failed'));
      drafts.push({ type: 'upgrade.failed', timestamp: end, status: 'failed', message: `Upgrade failed: ${errorMessage}`, details: { errorMessage, ...upDuration } });
      break;
    }
    case 'cancelled':
      drafts.push({ type: 'upgrade.cancelled', timestamp: end, status: 'cancelled', message: 'Upgrade cancelled', details: upDuration });
      break;
    case 'paused':
      drafts.push({ type: 'upgrade.paused', timestamp: lastTime, status: 'paused', message: 'Upgrade paused', details: {} });
      break;
    default:
      break;
  }

  const seen = new Set<string>();
  return drafts.map((d, i) => {
    const seq = i + 1;
    const eventId = d.eventId && !seen.has(d.eventId) ? d.eventId : derivedId(upgradeId, seq);
    seen.add(eventId);
    const ev: { -readonly [K in keyof ProgressEvent]: ProgressEvent[K] } = {
      eventId,
      seq,
      upgradeId,
      type: d.type,
      timestamp: `${d.timestamp.slice(0, -4)}Z`,
      status: d.status,
      message: d.message,
      details: d.details,
    };
    if (d.taskId !== undefined) ev.taskId = d.taskId;
    if (d.taskType !== undefined) ev.taskType = d.taskType;
    if (d.percentage !== undefined) ev.percentage = d.percentage;
    return ev;
  });
}

/**
 * The event that moves a task from status `cur` into status `s`, as the old module recorded it;
 * undefined for a status no task event leads to (`not_started`; a task's `paused` is read as
 * in_progress before it gets here).
 */
function taskEventType(s: ProgressStatus, cur: ProgressStatus): EventType | undefined {
  switch (s) {
    case 'in_progress':
      // Started again after it ended (the old start_task() took any task): a retry, which starts
      // the task anew (its times are the new run's), as the file's started_at is the last start.
      return cur === 'not_started' ? 'task.started' : ENDED.includes(cur) ? 'task.retried' : 'task.progress';
    case 'completed':
      return 'task.completed';
    case 'failed':
      return 'task.failed';
    case 'skipped':
      return 'task.skipped';
    case 'cancelled':
      return 'task.cancelled';
    default:
      return undefined;
  }
}

/**
 * The tasks' events in one list by time (ties in the order they were read), each task's own events
 * kept in the order it recorded them: the old module's wall clock could step back (a task completed
 * a second before it started), and sorting a task's events by time would fold its completion before
 * its start. A merge of lists that are each in time order is the same as sorting them all. The
 * lists' heads sit in a binary heap: O(n log k) for n events of k tasks (a scan of every head for
 * each event took seconds for a file of 10,000 tasks, imported again on every load).
 */
function mergeByTime(lists: Draft[][], order: Map<Draft, number>): Draft[] {
  const before = (a: Draft, b: Draft): boolean => a.timestamp < b.timestamp || (a.timestamp === b.timestamp && order.get(a)! < order.get(b)!);
  /** Heap of [list, index of its head], the earliest head first. */
  const heap: Array<[number, number]> = [];
  const head = ([list, at]: [number, number]): Draft => lists[list]![at]!;
  const swap = (i: number, j: number): void => void ([heap[i], heap[j]] = [heap[j]!, heap[i]!]);
  const down = (from: number): void => {
    for (let i = from; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let least = i;
      if (l < heap.length && before(head(heap[l]!), head(heap[least]!))) least = l;
      if (r < heap.length && before(head(heap[r]!), head(heap[least]!))) least = r;
      if (least === i) return;
      swap(i, least);
      i = least;
    }
  };
  for (let list = 0; list < lists.length; list++) if (lists[list]!.length > 0) heap.push([list, 0]);
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) down(i);
  const merged: Draft[] = [];
  while (heap.length > 0) {
    const top = heap[0]!;
    merged.push(head(top));
    if (top[1] + 1 < lists[top[0]]!.length) top[1]++;
    else {
      heap[0] = heap[heap.length - 1]!;
      heap.pop();
    }
    down(0);
  }
  return merged;
}
