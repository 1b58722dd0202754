import type { ProgressEvent, TaskProgress, UpgradeProgress } from '@progress/core';

/** Versions walked by StateVersion.state(), for tests. @internal */
export const walkStats = { steps: 0 };

/** A task that changed (or appeared, or went) from one version to the next. */
interface Change {
  readonly id: string;
  /** The task at the previous version; `undefined` when it is new. */
  readonly before: Readonly<TaskProgress> | undefined;
  /** The task at this version; `undefined` when it is gone. */
  readonly after: Readonly<TaskProgress> | undefined;
}

/** The fields of a state but its tasks (frozen, `tasks: null`, in the state's key order). */
type Top = Readonly<Omit<UpgradeProgress, 'tasks'> & { tasks: null }>;

/** A state made for callbacks, with its version. */
export interface MadeState {
  readonly version: StateVersion;
  readonly state: Readonly<UpgradeProgress>;
}

/**
 * Where a queue keeps the state it made last, to make the next one from while it drains (emptied
 * when it is idle: what it holds keeps alive every version after it).
 */
export interface StateCache {
  made?: MadeState | undefined;
}

/**
 * The state of one tracker's upgrade right after one event, as callbacks are given it, kept as
 * what changed since the previous version: the tasks that changed (frozen copies, shared with
 * every later version that has them unchanged) and the other fields. A call waiting in a queue
 * holds a version, not a copy of the whole state: what it keeps alive grows with what the event
 * changed, not with the number of tasks. The whole state is made (frozen) only when a callback is
 * about to be called with it, and shared by every callback that takes it then.
 *
 * @internal
 */
export class StateVersion {
  readonly #history: StateHistory;
  readonly #top: Top;
  /** What changed since the previous version. */
  readonly changes: readonly Change[];
  /** The version after this one (set when it is made): the way from this one to the newest. */
  next: StateVersion | undefined;

  constructor(history: StateHistory, top: Top, changes: readonly Change[]) {
    this.#history = history;
    this.#top = top;
    this.changes = changes;
  }

  /** The task `id` at this version (frozen), or `undefined`. */
  task(id: string): Readonly<TaskProgress> | undefined {
    if (this.next === undefined) return this.#history.tasks.get(id);
    const state = this.state();
    return Object.hasOwn(state.tasks, id) ? state.tasks[id] : undefined;
  }

  /**
   * The state at this version, frozen (not its events). The newest version's tasks are the history's. An older
   * one's are made from `cache`'s state, the one its queue made last (a queue drains its versions in
   * order, so that is most often the version just before this one), else from the state made last
   * (the callbacks of one event share it): the changes between the two done or undone. Without one
   * to start from, the newest tasks with the changes of the later versions undone. Its unchanged
   * tasks are the very objects of the other versions.
   */
  state(cache?: StateCache): Readonly<UpgradeProgress> {
    const history = this.#history;
    let made = history.made;
    if (made?.version !== this) {
      const own = cache?.made;
      if (own?.version === this) made = own;
      else {
        // Not from the state made last when it is another's (a callback that keeps up makes the newest
        // one at every event): a queue behind walked its whole backlog to it and back, at each call.
        const from = own !== undefined && own.version.#history === history ? own : made;
        // (#undo without a version to stop at always reaches the newest.)
        const tasks = this.next === undefined ? history.tasks : ((from && this.#tasksFrom(from)) ?? this.#undo(history.tasks, undefined)!);
        // As the engine's own record: no prototype, so a task id such as "__proto__" is an ordinary key.
        const record = Object.create(null) as Record<string, TaskProgress>;
        for (const [id, task] of tasks) record[id] = task as TaskProgress;
        made = { version: this, state: Object.freeze({ ...this.#top, tasks: Object.freeze(record) }) as Readonly<UpgradeProgress> };
      }
      history.made = made;
    }
    if (cache) cache.made = made;
    return made.state;
  }

  /**
   * Lets go of `made` (a state made at this version, which a queue drops from its cache) as its
   * history's state made last too, if it still is: that one holds every later version (through
   * `next`), and a queue that dropped it because its call hangs makes no state that would replace it.
   */
  release(made: MadeState): void {
    if (this.#history.made === made) this.#history.made = undefined;
  }

  /**
   * The tasks at this version from `made`'s: its later versions' changes done when it is older (a
   * walk from it to this one), else this one's later versions' changes undone up to it.
   */
  #tasksFrom(made: MadeState): Map<string, Readonly<TaskProgress>> | undefined {
    const forward: StateVersion[] = [];
    for (let v = made.version.next; v !== undefined; v = v.next) {
      walkStats.steps += 1;
      forward.push(v);
      if (v !== this) continue;
      const tasks = new Map(Object.entries(made.state.tasks));
      for (const version of forward) {
        for (const { id, after } of version.changes) {
          if (after === undefined) tasks.delete(id);
          else tasks.set(id, after);
        }
      }
      return tasks;
    }
    return this.#undo(new Map(Object.entries(made.state.tasks)), made.version);
  }

  /**
   * `tasks` (those of version `at`, or the newest when `undefined`) with the changes of this one's
   * later versions up to `at` undone, newest first; `undefined` when `at` does not come after this one.
   */
  #undo(tasks: ReadonlyMap<string, Readonly<TaskProgress>>, at: StateVersion | undefined): Map<string, Readonly<TaskProgress>> | undefined {
    const later: StateVersion[] = [];
    for (let v = this.next; ; v = v.next) {
      if (v === undefined) {
        if (at !== undefined) return undefined;
        break;
      }
      walkStats.steps += 1;
      later.push(v);
      if (v === at) break;
    }
    const undone = new Map(tasks);
    for (let i = later.length - 1; i >= 0; i--) {
      const changes = later[i]!.changes;
      for (let j = changes.length - 1; j >= 0; j--) {
        const { id, before } = changes[j]!;
        if (before === undefined) undone.delete(id);
        else undone.set(id, before);
      }
    }
    return undone;
  }
}

/**
 * The versions of the state of one tracker (one live state object), newest last. Only the newest
 * one is held here; older ones live as long as a queued call holds them (each holds its way to the
 * newest through `next`).
 *
 * @internal
 */
export class StateHistory {
  /** The tasks at the newest version, frozen, in the state's order. */
  readonly tasks = new Map<string, Readonly<TaskProgress>>();
  #newest: StateVersion | undefined;
  /**
   * The state made last, and its version: the callbacks of one event share it. Not a WeakRef: its
   * target would be kept until the microtask queue drains, which a run of commands on a store
   * that answers in microtasks (MemoryStore) never lets happen.
   */
  made: MadeState | undefined;
  #metadataSource: unknown;
  #metadata: Readonly<Record<string, unknown>> = Object.freeze({});

  /**
   * Records the live state as the newest version. Its tasks are compared with the newest version's:
   * only the ones that differ are copied (and frozen); the others are shared.
   */
  record(live: Readonly<UpgradeProgress>): StateVersion {
    // The copies are made before this history changes: a state that cannot be copied (structuredClone
    // throws on a function in the metadata) leaves it as it was.
    const changes: Change[] = [];
    let count = 0;
    let added = 0;
    for (const id in live.tasks) {
      if (!Object.hasOwn(live.tasks, id)) continue;
      count += 1;
      const task = live.tasks[id]!;
      const before = this.tasks.get(id);
      if (before !== undefined && sameTask(before, task)) continue;
      if (before === undefined) added += 1;
      changes.push({ id, before, after: frozenTask(task) });
    }
    if (count !== this.tasks.size + added) {
      // A task gone (the engine never removes one, but a state handed over by someone else may).
      for (const [id, before] of this.tasks) {
        if (!Object.hasOwn(live.tasks, id)) changes.push({ id, before, after: undefined });
      }
    }
    // The engine sets the metadata once (a new object when it reloads): copied again only then.
    const metadata = live.metadata === this.#metadataSource ? this.#metadata : deepFreeze(structuredClone(live.metadata));
    const top = Object.freeze({ ...live, tasks: null, metadata }) as Top;
    for (const { id, after } of changes) {
      if (after === undefined) this.tasks.delete(id);
      else this.tasks.set(id, after);
    }
    this.#metadataSource = live.metadata;
    this.#metadata = metadata;
    const version = new StateVersion(this, top, changes);
    if (this.#newest !== undefined) this.#newest.next = version;
    this.#newest = version;
    return version;
  }
}

/**
 * True when `frozen` (a copy made earlier) still shows `live`. The engine changes a task only by
 * folding an event of that task, which enters its `recentEvents` (a window of the last ones, so
 * its last event is then another one), or by recomputing its percentage from its children's: so
 * those are what is compared (with the status), not every field of every task on every event,
 * which cost more than the whole copy this replaces (the engine's tasks have many shapes, so that
 * each field read is a slow one).
 */
function sameTask(frozen: Readonly<TaskProgress>, live: Readonly<TaskProgress>): boolean {
  const mine = frozen.recentEvents;
  const theirs = live.recentEvents;
  return mine.length === theirs.length && mine[mine.length - 1] === theirs[theirs.length - 1] && frozen.percentage === live.percentage && frozen.status === live.status;
}

/** How many fields a {@link TaskProgress} has. */
const TASK_FIELDS = 16;

/**
 * A frozen copy of a task; its events are shared (events are immutable). Made as one literal, so
 * that every copy has the same shape (a spread copies the shape of its source, and the engine's
 * tasks have many: reading the copies' fields was then several times slower).
 */
export function frozenTask(task: Readonly<TaskProgress>): Readonly<TaskProgress> {
  if (Object.keys(task).length !== TASK_FIELDS) return frozenTaskOfAnyShape(task);
  return Object.freeze({
    taskId: task.taskId,
    taskName: task.taskName,
    taskType: task.taskType,
    parentTaskId: task.parentTaskId,
    status: task.status,
    startedAt: task.startedAt,
    completedAt: task.completedAt,
    durationMs: task.durationMs,
    percentage: task.percentage,
    currentStep: task.currentStep,
    totalSteps: task.totalSteps,
    completedSteps: task.completedSteps,
    errorMessage: task.errorMessage,
    retryCount: task.retryCount,
    weight: task.weight,
    recentEvents: Object.freeze(task.recentEvents.slice()) as ProgressEvent[],
  });
}

/** {@link frozenTask} for a task with other fields than {@link TaskProgress}'s (a newer core). */
function frozenTaskOfAnyShape(task: Readonly<TaskProgress>): Readonly<TaskProgress> {
  const copy = { ...task } as Record<string, unknown>;
  for (const key of Object.keys(copy)) {
    const value = copy[key];
    if (key === 'recentEvents') copy[key] = Object.freeze((value as unknown[]).slice());
    else if (typeof value === 'object' && value !== null) copy[key] = deepFreeze(structuredClone(value));
  }
  return Object.freeze(copy) as unknown as Readonly<TaskProgress>;
}

function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  Object.freeze(value);
  for (const key of Reflect.ownKeys(value)) deepFreeze((value as Record<PropertyKey, unknown>)[key]);
  return value;
}
