import { randomBytes } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { resolve } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { createServer, isIPv6 } from 'node:net';
import { MAX_TIMER_MS, TERMINAL_TASK_STATUSES, isTerminal, redactUrl, type TaskProgress, type TaskSpec } from '@progress/core';
import { JsonFileStore } from '@progress/storage-json';
import { createReadToken, readTokenAuth } from '@progress/ws-server';
import { createProgressTracker, type ComposedProgressTracker } from '../create-progress-tracker.js';
import type { StorageOption } from '../options.js';
import { CliError, ExitCode } from './errors.js';
import { clusterStore, isClusterStore, openStore, shellArg } from './sources.js';
import type { LiveView } from './terminal.js';

/** Options of `progress demo`. */
export interface DemoOptions {
  /** JSON folder. @default ./progress-demo-data */
  directory?: string;
  /** Use Redis instead of the JSON folder. */
  redisUrl?: string;
  /** `redisUrl`'s password came from REDISCLI_AUTH (said when Redis refuses it). */
  redisPasswordFromEnv?: boolean;
  /** The Redis store's key prefix (with `redisUrl`). @default 'progress:' */
  keyPrefix?: string;
  /** 2 runs twice as fast. @default 1 */
  speed?: number;
  /** @default 8765 (a free one when taken) */
  port?: number;
  /** Address to listen on; `0.0.0.0` or `::` for every interface. @default '127.0.0.1' */
  host?: string;
  view: LiveView;
  signal: AbortSignal;
  /** Seconds to keep serving the dashboard after the upgrade ends. @default Infinity */
  lingerSeconds?: number;
  /** Where the first lines go (the URL). */
  print: (line: string) => void;
  /** How to run `progress` in another shell, for the hints it prints. @default 'npx progress' */
  command?: string;
}

/** The simulated EKS upgrade: a dozen tasks with parents and steps. */
export const DEMO_TASKS: TaskSpec[] = [
  { taskId: 'preflight', taskName: 'Pre-flight checks', taskType: 'upgrade_plan' },
  { taskId: 'check-versions', taskName: 'Check versions', taskType: 'validation', parentTaskId: 'preflight' },
  { taskId: 'check-addons', taskName: 'Check add-on compatibility', taskType: 'validation', parentTaskId: 'preflight', totalSteps: 3 },
  { taskId: 'check-pdbs', taskName: 'Check PodDisruptionBudgets', taskType: 'validation', parentTaskId: 'preflight' },
  { taskId: 'control-plane', taskName: 'Upgrade control plane 1.30 → 1.31', taskType: 'upgrade_step', totalSteps: 4, weight: 2 },
  { taskId: 'addons', taskName: 'Upgrade add-ons', taskType: 'upgrade_step' },
  { taskId: 'vpc-cni', taskName: 'vpc-cni', parentTaskId: 'addons', totalSteps: 2 },
  { taskId: 'coredns', taskName: 'coredns', parentTaskId: 'addons', totalSteps: 2 },
  { taskId: 'kube-proxy', taskName: 'kube-proxy', parentTaskId: 'addons', totalSteps: 2 },
  { taskId: 'nodegroups', taskName: 'Upgrade node groups', taskType: 'upgrade_step', weight: 3 },
  { taskId: 'ng-system', taskName: 'Node group system (3 nodes)', parentTaskId: 'nodegroups', totalSteps: 3 },
  { taskId: 'ng-apps', taskName: 'Node group apps (5 nodes)', parentTaskId: 'nodegroups', totalSteps: 5, weight: 2 },
  { taskId: 'validation', taskName: 'Post-upgrade validation', taskType: 'validation', totalSteps: 3 },
  { taskId: 'cleanup', taskName: 'Clean up old launch templates', taskType: 'cleanup' },
];

/** What each step of a stepped task is called, for the terminal and the dashboard. */
const STEPS: Record<string, string[]> = {
  'check-addons': ['vpc-cni 1.18 supports 1.31', 'coredns 1.11 supports 1.31', 'kube-proxy 1.31 available'],
  'control-plane': ['snapshot etcd', 'update API servers', 'update controllers', 'health check'],
  'vpc-cni': ['update manifest', 'roll out daemonset'],
  coredns: ['update manifest', 'roll out deployment'],
  'kube-proxy': ['update manifest', 'roll out daemonset'],
  'ng-system': ['ip-10-0-1-11', 'ip-10-0-1-12', 'ip-10-0-1-13'],
  'ng-apps': ['ip-10-0-3-14', 'ip-10-0-3-15', 'ip-10-0-3-17', 'ip-10-0-3-18', 'ip-10-0-3-19'],
  validation: ['smoke tests', 'workload health', 'error rates'],
};

const PHASES: Record<string, string> = {
  preflight: 'Pre-flight',
  'control-plane': 'Control plane',
  addons: 'Add-ons',
  nodegroups: 'Node groups',
  validation: 'Validation',
  cleanup: 'Cleanup',
};

/** Runs one leaf task to its end, from wherever it stands (so a restarted demo resumes). */
async function runLeaf(t: ComposedProgressTracker, task: TaskProgress, step: () => Promise<void>): Promise<void> {
  const id = task.taskId;
  if (TERMINAL_TASK_STATUSES.includes(task.status)) return;
  if (task.status === 'failed') await t.retryTask(id, 'Retrying after the node drain timeout');
  if (task.status === 'not_started') await t.startTask(id);
  const total = task.totalSteps;
  if (total === null) {
    for (const p of [25, 50, 75]) {
      if ((t.progress.tasks[id]?.percentage ?? 0) >= p) continue;
      await step();
      await t.updateTaskProgress(id, p, `${task.taskName}: ${p}%`);
    }
  } else {
    for (let s = (t.progress.tasks[id]?.completedSteps ?? 0) + 1; s <= total; s++) {
      await step();
      if (id === 'ng-apps' && s === 3 && (t.progress.tasks[id]?.retryCount ?? 0) === 0) {
        await t.failTask(id, 'node ip-10-0-3-17 did not drain within 300s (PodDisruptionBudget)');
        await step();
        await t.retryTask(id, 'Retrying after the node drain timeout');
      }
      const name = STEPS[id]?.[s - 1] ?? `step ${s}`;
      await t.advanceTask(id, { completedSteps: s, currentStep: id.startsWith('ng-') ? `drained and replaced ${name}` : name });
    }
  }
  await step();
  await t.completeTask(id);
}

/**
 * The host:port a browser on this machine can open, from the address the server reports (IPv6 in
 * brackets). A wildcard address is no host to browse to, and the server reports it as `localhost`,
 * which may resolve to the other family than the one listened on; so the loopback address of the
 * family listened on is printed instead. Short forms of a wildcard (`--host 0`, `::0`) are told as
 * URL parsing reads them, as the system does; 0.0.0.0 mapped into IPv6 (`::ffff:0.0.0.0`) listens
 * on IPv4 only, reached at 127.0.0.1.
 */
function browsableHost(listenHost: string, reported: URL, port: number): string {
  const hostname = parsedHost(listenHost);
  if (hostname === '[::]') return `[::1]:${port}`;
  if (hostname === '0.0.0.0' || hostname === '[::ffff:0:0]') return `127.0.0.1:${port}`;
  return `${reported.hostname}:${port}`;
}

/** `host` as URL parsing (and the system) reads it: `0` is `0.0.0.0`, `::0` is `[::]`; undefined when it is no host. */
function parsedHost(host: string): string | undefined {
  const url = isIPv6(host) ? `http://[${host}]/` : `http://${host}/`;
  return URL.canParse(url) ? new URL(url).hostname : undefined;
}

/**
 * Whether a server listening on `host` is reached from this machine only: `localhost` (and its
 * subdomains), 127.0.0.0/8, `::1` and 127.x mapped into IPv6. Any other host (a wildcard, an
 * address of a network interface, a name) may be reached from other machines.
 */
export function isLoopbackHost(host: string): boolean {
  const hostname = parsedHost(host)?.replace(/^\[|\]$/g, '');
  if (hostname === undefined) return false;
  return hostname === 'localhost' || hostname.endsWith('.localhost') || /^127\.\d+\.\d+\.\d+$/.test(hostname) || hostname === '::1' || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(hostname);
}

/**
 * The host:port of this machine another machine on the network may open, for a server on a wildcard
 * address (`0.0.0.0`, `::`): the first address of a network interface that is not a loopback one
 * (IPv4 first; an IPv6 one but link-local, only on `::`). Undefined for another host, or on a
 * machine without such an interface.
 */
function networkHost(listenHost: string, port: number): string | undefined {
  const hostname = parsedHost(listenHost);
  if (hostname !== '0.0.0.0' && hostname !== '[::]' && hostname !== '[::ffff:0:0]') return undefined;
  const addresses = Object.values(networkInterfaces()).flatMap((list) => list ?? []).filter((a) => !a.internal);
  const v4 = addresses.find((a) => a.family === 'IPv4');
  if (v4) return `${v4.address}:${port}`;
  const v6 = hostname === '[::]' ? addresses.find((a) => a.family === 'IPv6' && !a.address.toLowerCase().startsWith('fe80:')) : undefined;
  return v6 ? `[${v6.address}]:${port}` : undefined;
}

/** How long the demo's read token is valid: longer than a demo usually runs, short enough not to be a key for good. */
const DEMO_TOKEN_TTL_SECONDS = 7 * 24 * 3600;

/** Why a server could not listen on `host`:`port` now (EADDRINUSE, an unknown host, a port that needs root), or undefined when it could. */
function listenProblem(port: number, host: string): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err));
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve(undefined)));
  });
}

/**
 * `progress demo`: a simulated EKS upgrade written to a JSON folder (or Redis), served live by the
 * WebSocket server and dashboard, with bars in the terminal. Run it again on the same folder and it
 * resumes the unfinished upgrade where it stopped.
 */
export async function runDemo(options: DemoOptions): Promise<ComposedProgressTracker> {
  const speed = options.speed ?? 1;
  const stepMs = Math.max(1, Math.round(450 / speed));
  const directory = resolve(options.directory ?? 'progress-demo-data');
  const prefix = options.keyPrefix !== undefined ? { keyPrefix: options.keyPrefix } : {};
  let storage: StorageOption = options.redisUrl ? { redis: options.redisUrl, ...prefix } : { json: directory };
  // A port in use or a host it cannot listen on is found before the folder is made and the tracker
  // opens, so that a demo that cannot serve writes nothing (opening creates the upgrade; the folder
  // stayed behind empty). The server's start still decides.
  const listenHost = options.host ?? '127.0.0.1';
  let port = options.port ?? 8765;
  let problem = await listenProblem(port, listenHost);
  if (problem?.code === 'EADDRINUSE' && options.port === undefined) {
    port = 0;
    problem = await listenProblem(port, listenHost);
  }
  if (problem?.code === 'EADDRINUSE') throw new CliError(`cannot listen on ${listenHost}:${port}: the port is in use`, ExitCode.UNAVAILABLE);
  if (problem) throw new CliError(`cannot listen on ${listenHost}:${port}: ${problem.message}`, ExitCode.USAGE);
  if (!options.redisUrl) {
    await mkdir(directory, { recursive: true, mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
      // A file where the folder should be: said as `ls` says it, not as a raw EEXIST (exit 4).
      throw err.code === 'EEXIST' || err.code === 'ENOTDIR' ? new CliError(`not a folder: ${directory}`, ExitCode.USAGE) : err;
    });
  }

  // Reachable from other machines (--host 0.0.0.0): the WebSocket server takes only a read token,
  // made here and printed in the URLs below, rather than serve the upgrade to anyone on the network.
  const secret = isLoopbackHost(listenHost) ? undefined : randomBytes(32);
  const token = secret ? createReadToken({ secret, upgradeIds: ['*'], ttlSeconds: DEMO_TOKEN_TTL_SECONDS }) : undefined;
  const open = (upgradeId: string, port: number) =>
    createProgressTracker({
      upgradeId,
      planId: 'eks-1.31-plan',
      clusterName: 'demo-cluster (eu-west-1)',
      metadata: { from: '1.30', to: '1.31', region: 'eu-west-1', demo: true },
      storage,
      webSocket: { port, host: options.host ?? '127.0.0.1', ...(secret ? readTokenAuth({ secret }) : {}) },
    });

  // The unfinished demo upgrade in this storage, or the next fresh id.
  // A Redis that does not answer is said as `ls` says it (`cannot reach Redis at ...`, exit 4), after
  // openStore's short probe, rather than as the first load's failure after its 10 s command timeout.
  const probe = options.redisUrl ? await openStore({ kind: 'redis', url: options.redisUrl, ...prefix, ...(options.redisPasswordFromEnv ? { passwordFromEnv: true } : {}) }, undefined, options.signal) : new JsonFileStore({ directory });
  // A node of a Redis Cluster (openStore went through the Cluster's nodes): a store on the one node
  // would be answered MOVED.
  const throughCluster = isClusterStore(probe);
  let upgradeId = 'eks-demo';
  try {
    for (let n = 2; n < 10_000; n++) {
      const stored = await probe.load(upgradeId);
      if (!stored || !isTerminal(stored.status)) break;
      upgradeId = `eks-demo-${n}`;
    }
  } finally {
    await probe.close();
  }
  if (!throughCluster) return serve(upgradeId);
  // The tracker writes through a Cluster store of its own, with the store's default timeouts (the
  // probe's are 3 s), closed after the tracker (which leaves a store it was given open).
  const shared = clusterStore(options.redisUrl!, prefix);
  storage = shared;
  let served: ComposedProgressTracker;
  try {
    served = await serve(upgradeId);
  } catch (err) {
    await shared.close().catch(() => {});
    throw err;
  }
  const closeTracker = served.close.bind(served);
  served.close = () => closeTracker().finally(() => shared.close());
  return served;

  /** Opens the tracker, serves it and runs the simulation; the tracker is the caller's to close, once this resolves. */
  async function serve(upgradeId: string): Promise<ComposedProgressTracker> {
    let t = await open(upgradeId, port);
    let address;
    try {
      address = await t.startWebSocketServer();
    } catch (err) {
      await t.close();
      const cause = (err as { cause?: { code?: string } }).cause;
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' && cause?.code !== 'EADDRINUSE') throw err;
      if (options.port !== undefined) throw err;
      port = 0;
      t = await open(upgradeId, port);
      address = await t.startWebSocketServer().catch(async (again: unknown) => {
        await t.close();
        throw again;
      });
    }
    const reported = new URL(address.url);
    const host = browsableHost(options.host ?? '127.0.0.1', reported, address.port);
    const webSocket = `ws://${host}${reported.pathname}`;
    const query = token ? `?token=${token}` : '';
    options.print(`Dashboard: http://${host}/${query}`);
    // After the URL, which comes first (the README says so; a script may read the first line).
    if (options.port === undefined && port === 0) options.print(`port 8765 is taken; using ${address.port}`);
    const network = networkHost(listenHost, address.port);
    if (network) options.print(`Network:   http://${network}/${query}   (from other machines)`);
    const progress = options.command ?? 'npx progress';
    // The token in the environment, not on the command line, where any local user sees it in ps.
    options.print(`WebSocket: ${webSocket}   (in another shell: ${token ? `PROGRESS_TOKEN=${token} ` : ''}${progress} watch ${webSocket})`);
    const prefixed = options.keyPrefix !== undefined ? `, key prefix ${options.keyPrefix}` : '';
    options.print(options.redisUrl ? `Storage:   Redis${throughCluster ? ' Cluster' : ''} ${redactUrl(options.redisUrl)}${prefixed}` : `Storage:   ${directory}   (${progress} ls ${shellArg(directory)})`);
    options.print(`Upgrade:   ${upgradeId}${t.progress.lastSeq > 1 ? ` (resuming after seq ${t.progress.lastSeq})` : ''}`);

    t.subscribe((event, state) => options.view.update(state, event));
    options.view.update(t.progress);
    const step = () => sleep(stepMs, undefined, { signal: options.signal });

    try {
      if (Object.keys(t.progress.tasks).length === 0) await t.addTasks(DEMO_TASKS);
      if (t.progress.status === 'not_started') await t.startUpgrade('Pre-flight');
      if (t.progress.status === 'paused') await t.resumeUpgrade();
      const tops = DEMO_TASKS.filter((s) => s.parentTaskId === undefined);
      for (const top of tops) {
        const parent = t.progress.tasks[top.taskId]!;
        if (parent.status === 'completed') continue;
        if (t.progress.currentPhase !== PHASES[top.taskId]) await t.setCurrentPhase(PHASES[top.taskId]!);
        const children = DEMO_TASKS.filter((s) => s.parentTaskId === top.taskId);
        if (children.length === 0) {
          await runLeaf(t, parent, step);
          continue;
        }
        if (parent.status === 'not_started') await t.startTask(top.taskId);
        for (const child of children) await runLeaf(t, t.progress.tasks[child.taskId]!, step);
        await t.completeTask(top.taskId);
      }
      await t.completeUpgrade();
      options.view.finish();
      const summary = t.getProgressSummary();
      options.print(`Upgrade ${summary.status} in ${((summary.durationMs ?? 0) / 1000).toFixed(1)}s: ${summary.completedTasks}/${summary.totalTasks} tasks.`);
    } catch (err) {
      options.view.finish();
      if (!options.signal.aborted) {
        // The caller gets no tracker to close: close it here, or its server keeps the process alive.
        await t.close().catch(() => {});
        throw err;
      }
      return t;
    }
    const linger = options.lingerSeconds ?? Infinity;
    if (linger > 0) {
      options.print(Number.isFinite(linger) ? `Serving the dashboard for ${linger}s more.` : 'The dashboard stays up; Ctrl+C to stop.');
      // In steps a timer can hold: a longer setTimeout fires at once (Node's TimeoutOverflowWarning),
      // which ended a `--linger` past about 24.8 days straight away, and Ctrl-C's wait after that long.
      // On the monotonic clock: a wall clock set back an hour (an NTP step) kept it up an hour longer.
      const until = performance.now() + linger * 1000;
      while (!options.signal.aborted && performance.now() < until) {
        await sleep(Math.min(MAX_TIMER_MS, until - performance.now()), undefined, { signal: options.signal }).catch(() => {});
      }
    }
    return t;
  }
}
