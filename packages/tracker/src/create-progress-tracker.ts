import {
  DEFAULT_SINK_FLUSH_TIMEOUT_MS,
  MemoryStore,
  ProgressError,
  ProgressTracker,
  silentLogger,
  type AddTaskOptions,
  type AdvanceTaskOptions,
  type Logger,
  type ProgressEvent,
  type ProgressListener,
  type ProgressSink,
  type ProgressStatus,
  type ProgressStore,
  type ProgressSummary,
  type TaskProgress,
  type TaskSpec,
  type TaskType,
  type TrackerSystemInfo,
  type UpgradeProgress,
} from '@progress/core';
import { CallbackManager, type EventCallback, type StatusCallback } from '@progress/callbacks';
import { EventBridgeNotifier } from '@progress/notifier-eventbridge';
import { JsonFileStore } from '@progress/storage-json';
import { RedisStore } from '@progress/storage-redis';
import { ProgressWebSocketServer } from '@progress/ws-server';
import { isServer, isStore, resolveOptions, type CreateProgressTrackerOptions, type StorageOption } from './options.js';

/** Where the WebSocket server listens. */
export interface WebSocketAddress {
  port: number;
  url: string;
}

/** What {@link ComposedProgressTracker.getSystemInfo} returns. */
export interface ComposedSystemInfo extends TrackerSystemInfo {
  notifier: ReturnType<EventBridgeNotifier['stats']> | null;
  callbacks: ReturnType<CallbackManager['getCallbackCounts']>;
  websocket: { enabled: boolean; listening: boolean; url: string | null };
}

function makeStore(storage: StorageOption, logger: Logger): { store: ProgressStore; owned: boolean } {
  if (storage === 'memory') return { store: new MemoryStore(), owned: true };
  // A store first: one of the user's own may also have a `json` or `redis` key (resolveOptions took it as a store).
  if (isStore(storage)) return { store: storage, owned: false };
  if ('json' in storage && typeof storage.json === 'string') return { store: new JsonFileStore({ directory: storage.json, logger }), owned: true };
  if ('redis' in storage && typeof storage.redis === 'string') {
    return { store: new RedisStore({ url: storage.redis, logger, ...(storage.keyPrefix !== undefined ? { keyPrefix: storage.keyPrefix } : {}) }), owned: true };
  }
  // Not reached: resolveOptions checked the form.
  throw new ProgressError('INVALID_ARGUMENT', "[@progress/tracker] storage must be 'memory', { json: dir }, { redis: url } or a ProgressStore");
}

/** How long closing waits for EventBridge delivery, in all, unless `eventBridge.flushTimeoutMs` says otherwise (the notifier's own default). */
const NOTIFIER_FLUSH_TIMEOUT_MS = 10_000;

/** When a close() of the tracker must be done waiting for EventBridge (`performance.now()` ms), once it has begun. */
interface NotifierDeadline {
  at: number | undefined;
}

/** What is left until `deadline`, in whole ms (0 once it has passed). */
const msLeft = (deadline: number): number => Math.max(0, Math.round(deadline - performance.now()));

/**
 * The notifier as the engine sees it: its own `handle`, and a `flush` that, once close() has begun,
 * waits only for what is left of `flushTimeoutMs` counted from the start of close(). The engine's
 * close flushes its sinks after the store has made every accepted command durable: the notifier's
 * own flush ran a whole `flushTimeoutMs` again from there, so a slow store's time came on top of it.
 */
function notifierSink(notifier: EventBridgeNotifier, deadline: NotifierDeadline): ProgressSink {
  return {
    name: notifier.name,
    handle: (event, state) => notifier.handle(event, state),
    flush: () => notifier.flush(deadline.at === undefined ? undefined : msLeft(deadline.at)),
  };
}

/**
 * The old module's `ProgressTracker`, composed: the whole engine API of `@progress/core`, the
 * components as properties (`storage`, `notifier`, `callbacks`, `websocket`) and the old module's
 * conveniences. Made by {@link createProgressTracker}.
 */
export class ComposedProgressTracker implements AsyncDisposable {
  /** The engine. */
  readonly engine: ProgressTracker;
  /** The store the events are kept in. */
  readonly storage: ProgressStore;
  /** The EventBridge sink, when configured. */
  readonly notifier: EventBridgeNotifier | undefined;
  /** The in-process callbacks. */
  readonly callbacks: CallbackManager;
  /** The WebSocket server, when configured (it listens once `startWebSocketServer()` is called). */
  websocket: ProgressWebSocketServer | undefined;
  readonly #owned: { store: boolean; websocket: boolean; notifier: boolean };
  readonly #logger: Logger;
  readonly #notifierFlushTimeoutMs: number;
  readonly #sinkFlushTimeoutMs: number;
  readonly #notifierDeadline: NotifierDeadline;
  #untrack: (() => void) | undefined;
  #closing: Promise<void> | undefined;

  /** @internal Use {@link createProgressTracker}. */
  constructor(parts: {
    engine: ProgressTracker;
    storage: ProgressStore;
    notifier: EventBridgeNotifier | undefined;
    callbacks: CallbackManager;
    websocket: ProgressWebSocketServer | undefined;
    owned: { store: boolean; websocket: boolean; notifier: boolean };
    notifierFlushTimeoutMs?: number;
    notifierDeadline?: NotifierDeadline;
    sinkFlushTimeoutMs?: number;
    logger: Logger;
  }) {
    this.engine = parts.engine;
    this.storage = parts.storage;
    this.notifier = parts.notifier;
    this.callbacks = parts.callbacks;
    this.websocket = parts.websocket;
    this.#owned = parts.owned;
    this.#notifierFlushTimeoutMs = parts.notifierFlushTimeoutMs ?? NOTIFIER_FLUSH_TIMEOUT_MS;
    this.#sinkFlushTimeoutMs = parts.sinkFlushTimeoutMs ?? DEFAULT_SINK_FLUSH_TIMEOUT_MS;
    this.#notifierDeadline = parts.notifierDeadline ?? { at: undefined };
    this.#logger = parts.logger;
    if (this.websocket) this.#untrack = this.websocket.track(this.engine);
  }

  // ------------------------------------------------------------------ the old module's conveniences

  /** Calls `cb(event, state)` for every event. Returns the function that removes it. */
  addEventCallback(cb: EventCallback): () => void {
    return this.callbacks.addEventCallback(cb);
  }

  /** Calls `cb(task, event, state)` when a task enters `status`. Returns the function that removes it. */
  addStatusCallback(status: ProgressStatus, cb: StatusCallback): () => void {
    return this.callbacks.addStatusCallback(status, cb);
  }

  /**
   * Starts the WebSocket server (and its dashboard) and resolves where it listens. Idempotent. Makes
   * a server with the default options when none was configured.
   */
  startWebSocketServer(): Promise<WebSocketAddress> {
    if (this.#closing) return Promise.reject(new ProgressError('CLOSED', `[@progress/tracker] the tracker of upgrade "${this.upgradeId}" is closed`));
    if (!this.websocket) {
      this.websocket = new ProgressWebSocketServer({ logger: this.#logger });
      this.#owned.websocket = true;
      this.#untrack = this.websocket.track(this.engine);
    }
    // The server's own start() is idempotent, waits for a stop in progress, and rejects when a stop
    // overtakes it: the address is always the server's own.
    return this.websocket.start().then((address) => ({ port: address.port, url: address.url }));
  }

  /**
   * Stops the WebSocket server this tracker made, also when it was started through
   * `tracker.websocket.start()` (a shared server is only detached from, in `close()`).
   */
  async stopWebSocketServer(): Promise<void> {
    // A shared server is only detached from, in close().
    if (!this.websocket || !this.#owned.websocket) return;
    // It also ends a start still waiting for an attached http.Server to listen (that start rejects).
    await this.websocket.stop();
  }

  /** The engine's info plus the components'. */
  getSystemInfo(): ComposedSystemInfo {
    return {
      ...this.engine.getSystemInfo(),
      notifier: this.notifier ? this.notifier.stats() : null,
      callbacks: this.callbacks.getCallbackCounts(),
      websocket: { enabled: this.websocket !== undefined, listening: this.websocket?.address !== undefined, url: this.websocket?.address?.url ?? null },
    };
  }

  // ------------------------------------------------------------------ the engine API, delegated

  get upgradeId(): string {
    return this.engine.upgradeId;
  }
  get progress(): Readonly<UpgradeProgress> {
    return this.engine.progress;
  }
  get durableProgress(): Readonly<UpgradeProgress> {
    return this.engine.durableProgress;
  }
  /** True once `close()` has been called (the engine's, which this close() closes first, at once). */
  get closed(): boolean {
    return this.#closing !== undefined || this.engine.closed;
  }
  startUpgrade(phase?: string): Promise<ProgressEvent> {
    return this.engine.startUpgrade(phase);
  }
  setCurrentPhase(phase: string): Promise<ProgressEvent> {
    return this.engine.setCurrentPhase(phase);
  }
  completeUpgrade(message?: string): Promise<ProgressEvent> {
    return this.engine.completeUpgrade(message);
  }
  failUpgrade(errorMessage: string | Error): Promise<ProgressEvent> {
    return this.engine.failUpgrade(errorMessage);
  }
  pauseUpgrade(reason?: string): Promise<ProgressEvent> {
    return this.engine.pauseUpgrade(reason);
  }
  resumeUpgrade(message?: string): Promise<ProgressEvent> {
    return this.engine.resumeUpgrade(message);
  }
  cancelUpgrade(reason?: string): Promise<ProgressEvent> {
    return this.engine.cancelUpgrade(reason);
  }
  addTask(taskId: string, taskName: string, taskType?: TaskType, options?: AddTaskOptions): Promise<TaskProgress> {
    return this.engine.addTask(taskId, taskName, taskType, options);
  }
  addTasks(specs: readonly TaskSpec[]): Promise<TaskProgress[]> {
    return this.engine.addTasks(specs);
  }
  startTask(taskId: string, message?: string): Promise<ProgressEvent> {
    return this.engine.startTask(taskId, message);
  }
  updateTaskProgress(taskId: string, percentage: number, message?: string, details?: Record<string, unknown>): Promise<ProgressEvent> {
    return this.engine.updateTaskProgress(taskId, percentage, message, details);
  }
  advanceTask(taskId: string, options?: AdvanceTaskOptions): Promise<ProgressEvent> {
    return this.engine.advanceTask(taskId, options);
  }
  completeTask(taskId: string, message?: string): Promise<ProgressEvent> {
    return this.engine.completeTask(taskId, message);
  }
  failTask(taskId: string, errorMessage: string | Error): Promise<ProgressEvent> {
    return this.engine.failTask(taskId, errorMessage);
  }
  retryTask(taskId: string, message?: string): Promise<ProgressEvent> {
    return this.engine.retryTask(taskId, message);
  }
  skipTask(taskId: string, reason?: string): Promise<ProgressEvent> {
    return this.engine.skipTask(taskId, reason);
  }
  cancelTask(taskId: string, reason?: string): Promise<ProgressEvent> {
    return this.engine.cancelTask(taskId, reason);
  }
  getProgressSummary(): ProgressSummary {
    return this.engine.getProgressSummary();
  }
  getTaskProgress(taskId: string): TaskProgress | undefined {
    return this.engine.getTaskProgress(taskId);
  }
  getCurrentTask(): TaskProgress | undefined {
    return this.engine.getCurrentTask();
  }
  calculateProgressPercentage(): number {
    return this.engine.calculateProgressPercentage();
  }
  getEstimatedCompletionTime(): string | undefined {
    return this.engine.getEstimatedCompletionTime();
  }
  readEvents(afterSeq?: number, limit?: number): AsyncIterable<ProgressEvent> {
    return this.engine.readEvents(afterSeq, limit);
  }
  subscribe(listener: ProgressListener): () => void {
    return this.engine.subscribe(listener);
  }
  addSink(sink: ProgressSink): () => void {
    return this.engine.addSink(sink);
  }
  flush(): Promise<void> {
    return this.engine.flush();
  }

  /**
   * Closes the engine (waiting for durability and the sinks), then every component this tracker
   * made: callbacks, the EventBridge notifier (waiting for delivery within its timeout), the
   * WebSocket server and the store. Shared components passed in are left open. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const started = performance.now();
      // Every wait for EventBridge delivery from here on counts against one flushTimeoutMs from now:
      // the engine's flush of the notifier (after the store's last writes, however long they took)
      // and the notifier's close below.
      this.#notifierDeadline.at = started + this.#notifierFlushTimeoutMs;
      await this.engine.close();
      // The engine flushed the notifier (for up to sinkFlushTimeoutMs): its close waits for what is
      // left of its own flush timeout, counted from the start of this close when that step runs (the
      // callbacks' close before it may take a while), not a whole one again.
      const notifierLeftMs = (): number => msLeft(this.#notifierDeadline.at!);
      this.#untrack?.();
      const steps: Array<[string, () => Promise<unknown>]> = [
        // The engine waited for the callbacks (a sink) for up to sinkFlushTimeoutMs: their close waits
        // for what is left of it, not for every call queued behind one that hangs (each up to
        // callbackTimeoutMs); the calls left are dropped, and onError hears of each.
        ['callbacks', () => this.callbacks.close(Math.max(0, Math.round(this.#sinkFlushTimeoutMs - (performance.now() - started))))],
        ['notifier', async () => (this.notifier && this.#owned.notifier ? this.notifier.close(notifierLeftMs()) : undefined)],
        ['websocket', () => this.stopWebSocketServer()],
        ['store', async () => (this.#owned.store ? this.storage.close() : undefined)],
      ];
      for (const [name, step] of steps) {
        try {
          await step();
        } catch (err) {
          this.#logger.warn({ err, upgradeId: this.upgradeId, component: name }, 'closing a component failed');
        }
      }
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Builds the pieces and returns an opened tracker: the store (`storage`: memory by default, a JSON
 * folder, a Redis URL or any store), the callbacks, EventBridge when configured, and the WebSocket
 * server when configured (listening once `startWebSocketServer()` is called). Accepts the old
 * module's option names too (`storagePath`, `eventBridgeBusName`, `awsRegion`, `enableWebSocket`,
 * `webSocketPort`, and their snake_case forms).
 *
 * @example
 * const tracker = await createProgressTracker({ upgradeId: 'u1', planId: 'p1', clusterName: 'prod', storage: { json: './progress-data' } });
 * tracker.addStatusCallback('failed', (task) => console.error(`${task.taskName} failed: ${task.errorMessage}`));
 * await tracker.startUpgrade();
 */
export async function createProgressTracker(options: CreateProgressTrackerOptions): Promise<ComposedProgressTracker> {
  const o = resolveOptions(options);
  const logger = o.logger ?? silentLogger;
  // The notifier's flush timeout, which close() also counts what is left of.
  const notifierFlushTimeoutMs = o.eventBridge?.flushTimeoutMs ?? NOTIFIER_FLUSH_TIMEOUT_MS;
  // Made first: it holds nothing, and refuses a bad option (callbacks.maxQueueSize: 0) before a
  // store (a Redis connection, a folder) is made.
  const callbacks = new CallbackManager({ logger, ...o.callbacks });
  const { store, owned: ownsStore } = makeStore(o.storage, logger);
  let notifier: EventBridgeNotifier | undefined;
  let websocket: ProgressWebSocketServer | undefined;
  let ownsWebsocket = false;
  let engine: ProgressTracker;
  const notifierDeadline: NotifierDeadline = { at: undefined };
  try {
    // Any of these may refuse its options after the store (a Redis connection) is made: release
    // what was made before rethrowing, so that a failed call leaves nothing open.
    notifier = o.eventBridge
      ? new EventBridgeNotifier({ logger, ...o.eventBridge, flushTimeoutMs: notifierFlushTimeoutMs })
      : undefined;
    // Its AWS region may come from the shared config files or the EC2 instance metadata, which the
    // SDK reads asynchronously: with none, the tracker is refused here, as a bad option is, rather
    // than running with every event given up on.
    await notifier?.ready();
    if (o.webSocket !== undefined) {
      if (isServer(o.webSocket)) websocket = o.webSocket;
      else {
        websocket = new ProgressWebSocketServer({ logger, ...o.webSocket });
        ownsWebsocket = true;
      }
    }
    const sinks: ProgressSink[] = [callbacks, ...(notifier ? [notifierSink(notifier, notifierDeadline)] : []), ...o.sinks];
    engine = await ProgressTracker.open({
      upgradeId: o.upgradeId,
      planId: o.planId,
      clusterName: o.clusterName,
      ...(o.metadata !== undefined ? { metadata: o.metadata } : {}),
      store,
      sinks,
      logger,
      ...(o.now !== undefined ? { now: o.now } : {}),
      ...(o.sinkFlushTimeoutMs !== undefined ? { sinkFlushTimeoutMs: o.sinkFlushTimeoutMs } : {}),
      ...(o.storeTimeoutMs !== undefined ? { storeTimeoutMs: o.storeTimeoutMs } : {}),
    });
  } catch (err) {
    await callbacks.close().catch(() => {});
    await notifier?.close().catch(() => {});
    if (ownsStore) await store.close().catch(() => {});
    throw err;
  }
  return new ComposedProgressTracker({
    engine,
    storage: store,
    notifier,
    callbacks,
    websocket,
    owned: { store: ownsStore, websocket: ownsWebsocket, notifier: true },
    notifierFlushTimeoutMs,
    notifierDeadline,
    ...(o.sinkFlushTimeoutMs !== undefined ? { sinkFlushTimeoutMs: o.sinkFlushTimeoutMs } : {}),
    logger,
  });
}
