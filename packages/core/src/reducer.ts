import { ProgressError } from './errors.js';
import { KNOWN_EVENT_TYPES, KNOWN_STATUSES, RECENT_EVENTS_LIMIT, type ProgressEvent, type TaskProgress, type UpgradeProgress } from './model.js';
import { describe } from './validation.js';

const round2 = (n: number): number => Math.round(n * 100) / 100;

/** Skipped and cancelled tasks are left out of every mean. */
const counts = (task: TaskProgress): boolean => task.status !== 'skipped' && task.status !== 'cancelled';

/** The smallest positive double with full precision (below it, products lose digits). */
const MIN_NORMAL = 2.2250738585072014e-308;

/**
 * One list of siblings (a task's children, or the top-level tasks) in the index's order, with the
 * sums of their weighted mean kept in a segment tree: leaf `cap + i` holds the i-th task's
 * `percentage * weight` (and `weight`), 0 for a task left out of the mean, and node `k` the sum of
 * nodes `2k` and `2k + 1`. A change to one task updates its leaf and the O(log n) nodes above it, so
 * an event costs the same however many siblings its task has (summing them all made a history's fold
 * O(events x tasks)). The sums are a function of the leaves in order alone (a larger capacity only adds
 * `+ 0` above them, which is exact), so a list updated live and one rebuilt from a loaded state give
 * the same means to the last bit.
 */
interface Siblings {
  tasks: TaskProgress[];
  /** Node sums of `percentage * weight`; leaves from `sums.length / 2`. */
  sums: Float64Array;
  /** Node sums of `weight`, laid out as `sums`. */
  weights: Float64Array;
  /** The numbers of the integer-like ids, which head `tasks` in numeric order (see {@link addToIndex}). */
  nums: number[];
}

/** Children of each task and the top-level tasks, derived from `parentTaskId` and cached per tasks record. */
interface TaskIndex {
  children: Map<string, Siblings>;
  top: Siblings;
  /**
   * Where each task sits in its list of siblings, as a key that a task added before it leaves as it
   * is: for a task with an integer-like id, `-1 - its number` (found in `nums` by binary search);
   * for another, its place among the others, which only ever come after it (see {@link placeOf}).
   * Places themselves would have to be set anew for every task after one added in the middle.
   */
  at: Map<TaskProgress, number>;
}

const indexes = new WeakMap<Record<string, TaskProgress>, TaskIndex>();

function siblings(): Siblings {
  // Two leaves at least: the root is then always a sum (a lone -0 leaf would pass for the sum).
  return { tasks: [], sums: new Float64Array(4), weights: new Float64Array(4), nums: [] };
}

/** The place in `list` of the task whose key (`TaskIndex.at`) is `key`. */
function placeOf(list: Siblings, key: number): number {
  const nums = list.nums;
  if (key >= 0) return nums.length + key;
  const num = -1 - key;
  let lo = 0;
  let hi = nums.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (nums[mid]! < num) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The list of the tasks under `parentTaskId` (the top-level tasks for `null`), made when it has none yet. */
function listFor(index: TaskIndex, parentTaskId: string | null): Siblings {
  if (parentTaskId === null) return index.top;
  let list = index.children.get(parentTaskId);
  if (list === undefined) index.children.set(parentTaskId, (list = siblings()));
  return list;
}

function indexOf(tasks: Record<string, TaskProgress>): TaskIndex {
  let index = indexes.get(tasks);
  if (!index) {
    index = { children: new Map(), top: siblings(), at: new Map() };
    // Object.values lists the tasks in the index's order already (see addToIndex): pushed as they come.
    for (const task of Object.values(tasks)) {
      const list = listFor(index, task.parentTaskId);
      const num = arrayIndex(task.taskId);
      if (num === undefined) index.at.set(task, list.tasks.length - list.nums.length);
      else {
        index.at.set(task, -1 - num);
        list.nums.push(num);
      }
      list.tasks.push(task);
    }
    rebuild(index.top);
    for (const list of index.children.values()) rebuild(list);
    indexes.set(tasks, index);
  }
  return index;
}

/**
 * The number of tasks in `tasks`: the size of its index when the reducer keeps one (the tracker's
 * states, folded here), else counted. `Object.keys` of a record of many tasks (a dictionary-mode
 * object) costs ~1 ms at 10,000 and ~8 ms at 20,000 here, and the Redis store takes the count of
 * every append that adds a task. @internal
 */
export function taskCount(tasks: Readonly<Record<string, TaskProgress>>): number {
  return indexes.get(tasks)?.at.size ?? Object.keys(tasks).length;
}

/** Sets the leaf of the task at `i` from its percentage, weight and status (without the nodes above it). */
function setLeaf(list: Siblings, i: number): void {
  const task = list.tasks[i]!;
  const leaf = (list.sums.length >> 1) + i;
  const weight = counts(task) ? task.weight : 0;
  list.sums[leaf] = weight === 0 ? 0 : task.percentage * weight;
  list.weights[leaf] = weight;
}

/** Recomputes every leaf and node of `list`, growing the tree to hold all its tasks: O(n). */
function rebuild(list: Siblings): void {
  const n = list.tasks.length;
  let cap = list.sums.length >> 1;
  if (n > cap) {
    while (cap < n) cap *= 2;
    list.sums = new Float64Array(2 * cap);
    list.weights = new Float64Array(2 * cap);
  }
  for (let i = 0; i < n; i++) setLeaf(list, i);
  for (let i = n; i < cap; i++) list.sums[cap + i] = list.weights[cap + i] = 0;
  const { sums, weights } = list;
  for (let k = cap - 1; k >= 1; k--) {
    sums[k] = sums[2 * k]! + sums[2 * k + 1]!;
    weights[k] = weights[2 * k]! + weights[2 * k + 1]!;
  }
}

/** Brings the leaf of the task at `i` and the nodes above it up to date: O(log n). */
function update(list: Siblings, i: number): void {
  setLeaf(list, i);
  const { sums, weights } = list;
  for (let k = ((sums.length >> 1) + i) >> 1; k >= 1; k >>= 1) {
    sums[k] = sums[2 * k]! + sums[2 * k + 1]!;
    weights[k] = weights[2 * k]! + weights[2 * k + 1]!;
  }
}

/** The list `task` sits in. */
function listOf(index: TaskIndex, task: TaskProgress): Siblings | undefined {
  return task.parentTaskId === null ? index.top : index.children.get(task.parentTaskId);
}

/**
 * Adds `task` where `Object.values(tasks)` lists it, so that an index built live and one rebuilt
 * from a loaded state hold the same order, and means summed over them (floating point) agree to
 * the last bit: a state from a snapshot and its tail equals the live one. JavaScript lists
 * integer-like keys ("1", "10") first, in numeric order, then the others in the order they were added.
 */
function addToIndex(index: TaskIndex, task: TaskProgress): void {
  const list = listFor(index, task.parentTaskId);
  const tasks = list.tasks;
  const num = arrayIndex(task.taskId);
  let lo = tasks.length;
  if (num === undefined) index.at.set(task, tasks.length - list.nums.length);
  else {
    // The integer-like ids are the list's head, in numeric order: a binary search of their numbers
    // (a scan would make n adds O(n^2)).
    const key = -1 - num;
    lo = placeOf(list, key);
    index.at.set(task, key);
    list.nums.splice(lo, 0, num);
  }
  const n = tasks.length + 1;
  const cap = list.sums.length >> 1;
  if (lo === tasks.length) {
    tasks.push(task);
    if (n > cap) rebuild(list);
    else update(list, lo);
    return;
  }
  // In the middle: the tasks after it move one place along, and their leaves with them, as they are
  // (a copy of numbers: reading every task again made each such add cost far more than it did when
  // every event summed all siblings); then the nodes above the leaves that moved.
  tasks.splice(lo, 0, task);
  if (n > cap) return rebuild(list);
  const { sums, weights } = list;
  sums.copyWithin(cap + lo + 1, cap + lo, cap + n - 1);
  weights.copyWithin(cap + lo + 1, cap + lo, cap + n - 1);
  setLeaf(list, lo);
  for (let l = (cap + lo) >> 1, r = (cap + n - 1) >> 1; l >= 1; l >>= 1, r >>= 1) {
    for (let k = l; k <= r; k++) {
      sums[k] = sums[2 * k]! + sums[2 * k + 1]!;
      weights[k] = weights[2 * k]! + weights[2 * k + 1]!;
    }
  }
}

/** The weighted mean of a list from its sums, or `undefined` when none counts. */
function meanOf(list: Siblings): number | undefined {
  const sum = list.sums[1]!;
  const weights = list.weights[1]!;
  if (weights === 0) return undefined;
  // Weights are any finite number > 0: huge ones overflow the sums (Infinity, then NaN), tiny ones
  // lose precision. Then the mean is taken again with the weights scaled by the largest (O(n), for
  // such weights only).
  if (sum < Infinity && weights < Infinity && weights >= MIN_NORMAL) return round2(sum / weights);
  return scaledMean(list.tasks);
}

/** The number of an integer-like key (an array index, which objects list first), else undefined. */
function arrayIndex(key: string): number | undefined {
  const c = key.charCodeAt(0);
  if (c < 48 || c > 57 || (c === 48 && key.length > 1) || key.length > 10 || !/^\d+$/.test(key)) return undefined;
  const n = Number(key);
  return n < 4294967295 ? n : undefined;
}

function scaledMean(tasks: readonly TaskProgress[]): number | undefined {
  let max = 0;
  for (const task of tasks) if (counts(task) && task.weight > max) max = task.weight;
  if (!(max > 0 && max < Infinity)) return undefined;
  let sum = 0;
  let weights = 0;
  for (const task of tasks) {
    if (!counts(task)) continue;
    const weight = task.weight / max;
    sum += task.percentage * weight;
    weights += weight;
  }
  return weights > 0 ? round2(sum / weights) : undefined;
}

/** Recomputes the percentages that depend on `taskId`: its ancestors', then the upgrade's. */
function recompute(state: UpgradeProgress, taskId: string | null): void {
  const index = indexOf(state.tasks);
  // Guards against a parent cycle in loaded data; made only when there is a parent to walk to
  // (most tasks have none, and this runs for every event).
  let seen: Set<string> | undefined;
  let id = taskId;
  while (id !== null) {
    if (seen?.has(id)) break;
    const task = state.tasks[id];
    if (!task) break;
    const children = index.children.get(id);
    if (task.status === 'completed') task.percentage = 100;
    else if (children) {
      const mean = meanOf(children);
      if (mean !== undefined) task.percentage = mean;
    }
    // Its place in its parent's (or the upgrade's) mean, with what changed in it.
    const list = listOf(index, task);
    const key = index.at.get(task);
    if (list !== undefined && key !== undefined) {
      const at = placeOf(list, key);
      if (list.tasks[at] === task) update(list, at);
    }
    if (task.parentTaskId !== null) (seen ??= new Set()).add(id);
    id = task.parentTaskId;
  }
  state.overallPercentage = state.status === 'completed' ? 100 : (meanOf(index.top) ?? 0);
}

const elapsed = (from: string | null, to: string): number | null => (from === null ? null : Math.max(0, Date.parse(to) - Date.parse(from)));

const str = (value: unknown): string | null => (typeof value === 'string' ? value : null);
const num = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);

function createState(event: ProgressEvent): UpgradeProgress {
  const d = event.details;
  const metadata = d.metadata;
  return {
    upgradeId: event.upgradeId,
    planId: str(d.planId) ?? '',
    clusterName: str(d.clusterName) ?? '',
    status: event.status,
    createdAt: event.timestamp,
    updatedAt: event.timestamp,
    startedAt: null,
    completedAt: null,
    durationMs: null,
    overallPercentage: 0,
    currentPhase: null,
    errorMessage: null,
    tasks: taskRecord(),
    metadata: metadata && typeof metadata === 'object' && !Array.isArray(metadata) ? { ...(metadata as Record<string, unknown>) } : {},
    lastSeq: event.seq,
  };
}

/**
 * A state's `tasks` record, without a prototype: task ids are free text within the id pattern, so
 * `constructor`, `toString` or `__proto__` are ids like any other, and every plain `tasks[id]`
 * lookup finds only real tasks (and assigning `tasks['__proto__']` stores a task).
 */
function taskRecord(): Record<string, TaskProgress> {
  return Object.create(null) as Record<string, TaskProgress>;
}

function corrupted(state: UpgradeProgress | undefined, event: ProgressEvent, why: string): ProgressError {
  return new ProgressError('DATA_CORRUPTED', `[@progress/core] upgrade "${event.upgradeId}": event seq ${event.seq} (${event.type}) ${why}`, {
    context: { upgradeId: event.upgradeId, seq: event.seq, lastSeq: state?.lastSeq },
  });
}

const isObject = (value: unknown): value is object => typeof value === 'object' && value !== null;

/**
 * Refuses, as `INVALID_ARGUMENT` naming `fn`, what is not an upgrade state: an object (not an array)
 * whose `tasks` is one. For the exported building blocks, which JavaScript (or a state parsed from
 * JSON) can hand anything; the tracker's own states are not checked. @internal
 */
export function assertStateArg(state: unknown, fn: string): asserts state is UpgradeProgress {
  if (!isObject(state) || Array.isArray(state)) throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] ${fn}() needs an upgrade state, got ${describe(state)}`);
  const { tasks } = state as { tasks?: unknown };
  if (!isObject(tasks) || Array.isArray(tasks)) {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] ${fn}() needs an upgrade state, got an object whose tasks is ${describe(tasks)}`);
  }
}

/** Refuses a task of a state that is not an object, for the building blocks that read every task. @internal */
export function assertTaskArg(task: unknown, id: string, fn: string): asserts task is TaskProgress {
  if (!isObject(task)) throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] ${fn}() needs an upgrade state, got one whose task ${JSON.stringify(id)} is ${describe(task)}`);
}

function assertEventArg(event: unknown, fn: string): asserts event is ProgressEvent {
  if (!isObject(event)) throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] ${fn}() needs an event, got ${describe(event)}`);
}

/**
 * Folds one event into `state`, changing it in place, and returns it: {@link applyEventInPlace}
 * without its argument checks, for the tracker's hot path (events it made itself, and stored events
 * folded inside a catch of anything). What it throws that is not a ProgressError is thrown as it
 * is. @internal
 */
export function foldEvent(state: UpgradeProgress | undefined, event: ProgressEvent): UpgradeProgress {
  if (event.type === 'upgrade.created') {
    if (state !== undefined) throw corrupted(state, event, 'creates an upgrade that already exists');
    if (event.seq !== 1) throw corrupted(state, event, 'must have seq 1');
    return createState(event);
  }
  if (state === undefined) throw corrupted(state, event, 'comes before upgrade.created');
  if (event.upgradeId !== state.upgradeId) throw corrupted(state, event, `belongs to upgrade "${state.upgradeId}"`);
  if (event.seq !== state.lastSeq + 1) throw corrupted(state, event, `does not follow seq ${state.lastSeq}`);
  // Checked before anything changes: a damaged event must not leave the state half folded.
  if (!KNOWN_EVENT_TYPES.has(event.type)) throw corrupted(state, event, 'has an unknown type');
  if (!KNOWN_STATUSES.has(event.status)) throw corrupted(state, event, `has an unknown status "${String(event.status)}"`);
  const d = event.details;
  const taskId = event.taskId;
  let task: TaskProgress | undefined;
  let parentTaskId: string | null = null;
  if (event.type.startsWith('task.')) {
    if (taskId === undefined) throw corrupted(state, event, 'has no taskId');
    if (event.type === 'task.added') {
      if (state.tasks[taskId]) throw corrupted(state, event, `adds task "${taskId}" twice`);
      parentTaskId = str(d.parentTaskId);
      if (parentTaskId !== null && !state.tasks[parentTaskId]) throw corrupted(state, event, `names unknown parent "${parentTaskId}"`);
    } else {
      task = state.tasks[taskId];
      if (!task) throw corrupted(state, event, `names unknown task "${taskId}"`);
    }
  }
  state.lastSeq = event.seq;
  state.updatedAt = event.timestamp;
  const ts = event.timestamp;

  if (event.type.startsWith('upgrade.')) {
    state.status = event.status;
    switch (event.type) {
      case 'upgrade.started':
        state.startedAt = ts;
        state.currentPhase = str(d.phase) ?? state.currentPhase;
        break;
      case 'upgrade.phase_changed':
        state.currentPhase = str(d.phase) ?? state.currentPhase;
        break;
      case 'upgrade.completed':
      case 'upgrade.failed':
      case 'upgrade.cancelled':
        state.completedAt = ts;
        state.durationMs = elapsed(state.startedAt, ts);
        if (event.type === 'upgrade.failed') state.errorMessage = str(d.errorMessage) ?? event.message;
        break;
      default:
        break;
    }
    recompute(state, null);
    return state;
  }

  if (task === undefined) {
    // task.added (checked above).
    const added: TaskProgress = {
      taskId: taskId!,
      taskName: str(d.taskName) ?? taskId!,
      taskType: event.taskType ?? 'upgrade_step',
      parentTaskId,
      status: event.status,
      startedAt: null,
      completedAt: null,
      durationMs: null,
      percentage: 0,
      currentStep: null,
      totalSteps: num(d.totalSteps),
      completedSteps: 0,
      errorMessage: null,
      retryCount: 0,
      weight: num(d.weight) ?? 1,
      recentEvents: [event],
    };
    const index = indexOf(state.tasks);
    state.tasks[taskId!] = added;
    addToIndex(index, added);
    recompute(state, parentTaskId);
    return state;
  }

  task.status = event.status;
  switch (event.type) {
    case 'task.started':
      task.startedAt ??= ts;
      if (event.percentage !== undefined) task.percentage = event.percentage;
      break;
    case 'task.progress': {
      task.startedAt ??= ts;
      if (event.percentage !== undefined) task.percentage = event.percentage;
      const steps = num(d.completedSteps);
      if (steps !== null) task.completedSteps = steps;
      const step = str(d.currentStep);
      if (step !== null) task.currentStep = step;
      break;
    }
    case 'task.completed':
      task.startedAt ??= ts;
      task.completedAt = ts;
      task.durationMs = elapsed(task.startedAt, ts);
      task.percentage = 100;
      if (task.totalSteps !== null) task.completedSteps = task.totalSteps;
      break;
    case 'task.failed':
      task.startedAt ??= ts;
      task.completedAt = ts;
      task.durationMs = elapsed(task.startedAt, ts);
      task.errorMessage = str(d.errorMessage) ?? event.message;
      break;
    case 'task.retried':
      task.retryCount += 1;
      // A retry starts the task again: its times are the new attempt's (as the old module's
      // start_task() set started_at anew), so durationMs and the notifier's duration are its own.
      task.startedAt = ts;
      task.completedAt = null;
      task.durationMs = null;
      task.errorMessage = null;
      break;
    case 'task.skipped':
    case 'task.cancelled':
      task.completedAt = ts;
      task.durationMs = elapsed(task.startedAt, ts);
      break;
    default:
      throw corrupted(state, event, 'has an unknown type');
  }
  const recent = task.recentEvents;
  if (recent.length < RECENT_EVENTS_LIMIT) {
    recent.push(event);
  } else {
    // Full: slide the window by one in place (shift() then push() reallocates or trims the array on
    // every event once the task is busy).
    const last = recent.length - 1;
    for (let i = 0; i < last; i++) recent[i] = recent[i + 1]!;
    recent[last] = event;
    if (recent.length > RECENT_EVENTS_LIMIT) recent.splice(0, recent.length - RECENT_EVENTS_LIMIT);
  }
  recompute(state, task.taskId);
  return state;
}

/**
 * {@link foldEvent}, with what it throws that is not a ProgressError (a field of the wrong type in a
 * stored event) reported as the damage it is.
 */
function foldOrCorrupt(state: UpgradeProgress | undefined, event: ProgressEvent): UpgradeProgress {
  try {
    return foldEvent(state, event);
  } catch (err) {
    if (err instanceof ProgressError) throw err;
    throw new ProgressError('DATA_CORRUPTED', `[@progress/core] upgrade "${String(event?.upgradeId)}": event seq ${String(event?.seq)} cannot be folded (${(err as Error)?.message ?? String(err)})`, {
      cause: err,
      context: { upgradeId: event?.upgradeId, seq: event?.seq, lastSeq: state?.lastSeq },
    });
  }
}

/**
 * Folds one event into `state`, changing it in place, and returns it. It trusts the event's fields
 * (the tracker validates commands before it makes events) but refuses an event that cannot follow
 * the state (`DATA_CORRUPTED`): a wrong upgrade, a seq that is not the next one, an unknown task.
 *
 * Use {@link applyEvent} for a pure fold.
 *
 * @throws ProgressError `INVALID_ARGUMENT` for a state or an event that is not one, or a frozen
 * state (nothing changed), `DATA_CORRUPTED` for an event that cannot follow or cannot be folded.
 */
export function applyEventInPlace(state: UpgradeProgress | undefined, event: ProgressEvent): UpgradeProgress {
  if (state !== undefined) {
    assertStateArg(state, 'applyEventInPlace');
    // The states callbacks and sinks are handed are frozen: the fold's first write threw a TypeError,
    // reported as an event that cannot be folded, after the writes to what was not frozen.
    if (Object.isFrozen(state) || Object.isFrozen(state.tasks)) {
      throw new ProgressError('INVALID_ARGUMENT', '[@progress/core] applyEventInPlace() needs a state it can change, got a frozen one (applyEvent() folds into a copy)');
    }
  }
  assertEventArg(event, 'applyEventInPlace');
  return foldOrCorrupt(state, event);
}

/** {@link cloneState} of a state already checked by `fn`'s caller but for its tasks. */
function copyState(state: Readonly<UpgradeProgress>, fn: string): UpgradeProgress {
  const tasks = taskRecord();
  for (const [id, task] of Object.entries(state.tasks)) {
    assertTaskArg(task, id, fn);
    tasks[id] = cloneTask(task);
  }
  return { ...state, tasks, metadata: structuredClone(state.metadata) };
}

/**
 * A deep copy of a state, sharing only the (immutable) events. Cheap enough for snapshots; the
 * metadata is copied with `structuredClone`.
 *
 * @throws ProgressError `INVALID_ARGUMENT` for what is not a state.
 */
export function cloneState(state: Readonly<UpgradeProgress>): UpgradeProgress {
  assertStateArg(state, 'cloneState');
  return copyState(state, 'cloneState');
}

/** A copy of a task that shares only its (immutable) events. @internal */
export function cloneTask(task: Readonly<TaskProgress>): TaskProgress {
  return { ...task, recentEvents: task.recentEvents.slice() };
}

/**
 * The pure reducer: the state after `event`, leaving `state` untouched.
 *
 * @example
 * const state = events.reduce(applyEvent, undefined);
 *
 * @throws ProgressError as {@link applyEventInPlace}.
 */
export function applyEvent(state: Readonly<UpgradeProgress> | undefined, event: ProgressEvent): UpgradeProgress {
  if (state !== undefined) assertStateArg(state, 'applyEvent');
  assertEventArg(event, 'applyEvent');
  return foldOrCorrupt(state === undefined ? undefined : copyState(state, 'applyEvent'), event);
}

/**
 * Folds `events` into a copy of `initial` (or from nothing, when the first event is
 * `upgrade.created`). `replayEvents(allEvents)` gives exactly the live state of the tracker.
 *
 * @throws ProgressError `INVALID_ARGUMENT` when `events` is not iterable or `initial` is not a
 * state; `DATA_CORRUPTED` for an event that cannot follow, or cannot be folded (one that is not an
 * object included: the events are most often read back from outside, a file or Redis).
 */
export function replayEvents(events: Iterable<ProgressEvent>, initial?: Readonly<UpgradeProgress>): UpgradeProgress | undefined {
  if (!isObject(events) || typeof (events as Partial<Iterable<unknown>>)[Symbol.iterator] !== 'function') {
    throw new ProgressError('INVALID_ARGUMENT', `[@progress/core] replayEvents() needs an iterable of events, got ${describe(events)}`);
  }
  if (initial !== undefined) assertStateArg(initial, 'replayEvents');
  let state = initial === undefined ? undefined : copyState(initial, 'replayEvents');
  for (const event of events) state = foldOrCorrupt(state, event);
  return state;
}
