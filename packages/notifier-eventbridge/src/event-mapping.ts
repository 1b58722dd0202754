import { assertHandleArgs, type EventType, type ProgressEvent, type UpgradeProgress } from '@progress/core';
import { assertNumberArg, assertObjectArg, assertTypeArg } from './arguments.js';
import { formatTimedelta } from './timedelta.js';

/** The detail of one EventBridge entry: snake_case keys, JSON-serializable. */
export type EventDetail = Record<string, unknown>;

/**
 * The event types sent by default: every type except `upgrade.created`, `task.added` and
 * `task.progress` (the chatty ones, which the old module did not send).
 */
export const DEFAULT_EVENT_TYPES: readonly EventType[] = Object.freeze([
  'upgrade.started',
  'upgrade.phase_changed',
  'upgrade.paused',
  'upgrade.resumed',
  'upgrade.completed',
  'upgrade.failed',
  'upgrade.cancelled',
  'task.started',
  'task.completed',
  'task.failed',
  'task.retried',
  'task.skipped',
  'task.cancelled',
]);

/**
 * The keys of the old module's detail for each of its DetailTypes, in its order. A trimmed entry
 * keeps these (plus `event_id`, `seq`, `duration_ms` and `truncated`); for the other types it
 * keeps the base keys (`upgrade_id`, `cluster_name`, and `task_id`, `task_name` for a task).
 * Frozen through and through: the lists are what every notifier trims by.
 */
export const LEGACY_DETAIL_KEYS: Readonly<Partial<Record<EventType, readonly string[]>>> = Object.freeze({
  'upgrade.started': Object.freeze(['upgrade_id', 'cluster_name', 'phase']),
  'upgrade.completed': Object.freeze(['upgrade_id', 'cluster_name', 'duration']),
  'upgrade.failed': Object.freeze(['upgrade_id', 'cluster_name', 'error_message']),
  'upgrade.phase_changed': Object.freeze(['upgrade_id', 'cluster_name', 'phase']),
  'task.started': Object.freeze(['upgrade_id', 'cluster_name', 'task_id', 'task_name']),
  'task.completed': Object.freeze(['upgrade_id', 'cluster_name', 'task_id', 'task_name', 'duration']),
  'task.failed': Object.freeze(['upgrade_id', 'cluster_name', 'task_id', 'task_name', 'error_message']),
});

const UPGRADE_BASE = ['upgrade_id', 'cluster_name'] as const;
const TASK_BASE = ['upgrade_id', 'cluster_name', 'task_id', 'task_name'] as const;

/** Keys kept when an entry is trimmed to fit: the old module's keys, then ours. */
export function keptKeys(type: EventType): readonly string[] {
  assertTypeArg('keptKeys', type);
  const legacy = LEGACY_DETAIL_KEYS[type] ?? (type.startsWith('task.') ? TASK_BASE : UPGRADE_BASE);
  return [...legacy, 'event_id', 'seq', 'duration_ms'];
}

const text = (value: unknown): string | null => (typeof value === 'string' ? value : null);
const duration = (ms: number | null): string | null => (ms === null ? null : formatTimedelta(ms));

/**
 * The detail of the entry for `event`, built from the event and the durable `state` right after it
 * (names and durations come from the state). For the old module's seven DetailTypes the detail has
 * its keys exactly, then `event_id`, `seq` and, where a duration applies, `duration_ms`; the other
 * types follow the same style.
 */
export function buildDetail(event: ProgressEvent, state: Readonly<UpgradeProgress>): EventDetail {
  assertHandleArgs('@progress/notifier-eventbridge', event, state, 'buildDetail');
  assertObjectArg('buildDetail', 'an event whose details is an object', event.details);
  if (event.type.startsWith('task.')) assertObjectArg('buildDetail', 'a state whose tasks is an object', state.tasks);
  const d = event.details;
  const base: EventDetail = { upgrade_id: event.upgradeId, cluster_name: state.clusterName };
  const ids = { event_id: event.eventId, seq: event.seq };
  if (!event.type.startsWith('task.')) {
    switch (event.type) {
      case 'upgrade.started':
      case 'upgrade.phase_changed':
        return { ...base, phase: text(d.phase) ?? state.currentPhase, ...ids };
      case 'upgrade.completed':
        return { ...base, duration: duration(state.durationMs), ...ids, duration_ms: state.durationMs };
      case 'upgrade.failed':
        return { ...base, error_message: text(d.errorMessage) ?? state.errorMessage ?? event.message, ...ids, duration_ms: state.durationMs };
      case 'upgrade.cancelled':
        return { ...base, reason: text(d.reason), duration: duration(state.durationMs), ...ids, duration_ms: state.durationMs };
      case 'upgrade.paused':
        return { ...base, phase: state.currentPhase, reason: text(d.reason), ...ids };
      case 'upgrade.resumed':
        return { ...base, phase: state.currentPhase, ...ids };
      case 'upgrade.created':
        return { ...base, plan_id: state.planId, metadata: state.metadata, ...ids };
      default:
        return { ...base, status: event.status, message: event.message, details: d, ...ids };
    }
  }
  const taskId = event.taskId ?? '';
  const task = Object.hasOwn(state.tasks, taskId) ? state.tasks[taskId] : undefined;
  const taskBase: EventDetail = { ...base, task_id: taskId, task_name: task?.taskName ?? text(d.taskName) ?? taskId };
  // The task's duration; null for a task that ended without ever being started, which the old module
  // had no start time for (the state gives it both times and 0 ms). Such a task's events before
  // this one are its task.added only.
  // (Read only by the events that end a task: this runs in the tracker's sink call.)
  const endedMs = (): number | null => {
    const ran = task?.recentEvents ? task.recentEvents.some((e) => e.seq !== event.seq && e.type !== 'task.added') : true;
    return ran ? (task?.durationMs ?? null) : null;
  };
  switch (event.type) {
    case 'task.started':
      return { ...taskBase, ...ids };
    case 'task.completed': {
      const ms = endedMs();
      return { ...taskBase, duration: duration(ms), ...ids, duration_ms: ms };
    }
    case 'task.failed':
      return { ...taskBase, error_message: text(d.errorMessage) ?? task?.errorMessage ?? event.message, ...ids, duration_ms: endedMs() };
    case 'task.retried':
      return { ...taskBase, retry_count: task?.retryCount ?? null, ...ids };
    case 'task.skipped':
    case 'task.cancelled':
      return { ...taskBase, reason: text(d.reason), ...ids, duration_ms: endedMs() };
    case 'task.added':
      return { ...taskBase, task_type: event.taskType ?? null, parent_task_id: text(d.parentTaskId), ...ids };
    case 'task.progress':
      return {
        ...taskBase,
        percentage: event.percentage ?? task?.percentage ?? null,
        message: event.message,
        current_step: task?.currentStep ?? null,
        completed_steps: task?.completedSteps ?? null,
        total_steps: task?.totalSteps ?? null,
        details: d,
        ...ids,
      };
    default:
      return { ...taskBase, status: event.status, message: event.message, details: d, ...ids };
  }
}

/** The detail cut down to {@link keptKeys}, marked `truncated: true`. */
export function trimDetail(type: EventType, detail: EventDetail): EventDetail {
  assertTypeArg('trimDetail', type);
  assertObjectArg('trimDetail', 'a detail object', detail);
  const out: EventDetail = {};
  for (const key of keptKeys(type)) if (key in detail) out[key] = detail[key];
  out.truncated = true;
  return out;
}

/** What ends a text value {@link fitDetail} had to shorten. */
export const CUT_MARK = '…[truncated]';

/** The keys consumers match events on: never shortened. */
const IDENTIFIERS = new Set(['upgrade_id', 'task_id', 'event_id']);

/**
 * The detail as JSON of at most `budget` UTF-8 bytes: whole when it fits; else {@link trimDetail}'s;
 * else that with its longest text values shortened, longest first, each to the longest prefix that
 * fits, ending with {@link CUT_MARK} (no surrogate pair split). Undefined when even that does not fit
 * (the identifiers alone are too large).
 *
 * A failure's `error_message` is the usual case: an agent that puts a command's whole output in it
 * (hundreds of KB) made an entry too large even trimmed, and the one event a consumer most needs,
 * `upgrade.failed`, was given up (`too_large`) instead of being sent with the message's start.
 */
export function fitDetail(type: EventType, detail: EventDetail, budget: number): string | undefined {
  assertTypeArg('fitDetail', type);
  assertObjectArg('fitDetail', 'a detail object', detail);
  assertNumberArg('fitDetail', 'a budget of bytes >= 0', budget, 0);
  const bytes = (d: EventDetail): number => Buffer.byteLength(JSON.stringify(d), 'utf8');
  const whole = JSON.stringify(detail);
  if (Buffer.byteLength(whole, 'utf8') <= budget) return whole;
  const out = trimDetail(type, detail);
  for (;;) {
    if (bytes(out) <= budget) return JSON.stringify(out);
    let key: string | undefined;
    for (const [k, v] of Object.entries(out)) {
      if (typeof v === 'string' && !IDENTIFIERS.has(k) && v !== CUT_MARK && (key === undefined || v.length > (out[key] as string).length)) key = k;
    }
    if (key === undefined) return undefined;
    const full = out[key] as string;
    // The longest prefix that fits (binary search: a longer prefix is never smaller). This path is
    // for entries over the limit only (a few ms for a message of a few hundred KB).
    const prefix = (n: number): string => {
      const code = full.charCodeAt(n - 1);
      return full.slice(0, code >= 0xd800 && code <= 0xdbff ? n - 1 : n);
    };
    let lo = 0;
    let hi = full.length - 1;
    out[key] = CUT_MARK;
    if (bytes(out) > budget) continue; // not even the mark: the next value is cut too
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      out[key] = prefix(mid) + CUT_MARK;
      if (bytes(out) <= budget) lo = mid;
      else hi = mid - 1;
    }
    out[key] = prefix(lo) + CUT_MARK;
  }
}
