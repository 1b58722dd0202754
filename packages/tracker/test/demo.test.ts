import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { JsonFileStore, RedisStore, createProgressTracker, type ProgressEvent, type UpgradeProgress } from '../src/index.js';
import { DEMO_TASKS, isLoopbackHost, runDemo, type DemoOptions } from '../src/cli/demo.js';
import { networkInterfaces } from 'node:os';
import { LiveView } from '../src/cli/terminal.js';
import { CliError } from '../src/cli/errors.js';
import { Capture, cleanupTempDirs, deleteKeys, tempDir, uniqueId } from './helpers.js';

afterAll(() => cleanupTempDirs());

/**
 * Runs the demo until it has printed where it serves, and hands back what it printed; `stop()`
 * interrupts it (as Ctrl+C does) and closes it.
 */
async function startDemo(options: Partial<DemoOptions>): Promise<{ lines: string[]; stop(): Promise<void> }> {
  const lines: string[] = [];
  const controller = new AbortController();
  let printed!: () => void;
  const ready = new Promise<void>((resolve) => (printed = resolve));
  const running = runDemo({
    ...(options.redisUrl ? {} : { directory: tempDir('demo-out') }),
    port: 0,
    speed: 1000,
    lingerSeconds: 600,
    view: new LiveView({ out: new Capture() as unknown as NodeJS.WriteStream }),
    signal: controller.signal,
    print: (line) => {
      lines.push(line);
      if (line.startsWith('Upgrade:')) printed();
    },
    ...options,
  });
  await Promise.race([ready, running]);
  return {
    lines,
    stop: async () => {
      controller.abort();
      await (await running).close();
    },
  };
}

/** A LiveView (not a terminal) that keeps every event it is shown. */
class RecordingView extends LiveView {
  readonly events: ProgressEvent[] = [];
  constructor(private readonly onEvent: (event: ProgressEvent) => void = () => {}) {
    super({ out: new Capture() as unknown as NodeJS.WriteStream });
  }
  override update(state: Readonly<UpgradeProgress>, event?: ProgressEvent): void {
    if (event) this.events.push(event);
    super.update(state, event);
    if (event) this.onEvent(event);
  }
}

/**
 * Runs the demo on the store `where` says to its end (fast, not lingering), or until `stopAt` an
 * event (as Ctrl+C does), and closes it: what it printed, the events it showed, its final state.
 */
async function demoToEnd(where: Pick<DemoOptions, 'directory' | 'redisUrl' | 'keyPrefix'>, stopAt: (event: ProgressEvent) => boolean = () => false): Promise<{ lines: string[]; events: ProgressEvent[]; state: UpgradeProgress }> {
  const lines: string[] = [];
  const controller = new AbortController();
  const view = new RecordingView((event) => {
    if (stopAt(event)) controller.abort();
  });
  const tracker = await runDemo({ ...where, port: 0, speed: 1000, lingerSeconds: 0, view, signal: controller.signal, print: (line) => lines.push(line) });
  const state = structuredClone(tracker.progress) as UpgradeProgress;
  await tracker.close();
  return { lines, events: view.events, state };
}

/** Opens a WebSocket as the dashboard page at `page` does (same Origin); resolves 'open' or why it failed. */
function connectAsPage(page: string): Promise<string> {
  // The page's query (its read token) goes into the WebSocket's URL, as the dashboard sends it.
  const { origin, host, search } = new URL(page);
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://${host}/ws${search}`, ['progress.v1'], { origin });
    ws.once('open', () => {
      ws.close();
      resolve('open');
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(`HTTP ${res.statusCode}`);
      ws.terminate();
    });
    ws.once('error', (err) => resolve(err.message));
  });
}

describe('progress demo --host', () => {
  for (const [host, shown] of [
    ['::1', '[::1]'],
    ['0.0.0.0', '127.0.0.1'],
    ['::', '[::1]'],
    // The short form of 0.0.0.0 (as `ping 0` takes it): http://0.0.0.0:PORT/ was printed, whose page the server refuses.
    ['0', '127.0.0.1'],
    ['::0', '[::1]'],
    // 0.0.0.0 mapped into IPv6: a wildcard of IPv4, reached at 127.0.0.1 (not at ::1).
    ['::ffff:0.0.0.0', '127.0.0.1'],
  ] as const) {
    const loopback = host === '::1';
    it(`--host ${host}: prints a dashboard URL a browser can open, whose WebSocket the server accepts${loopback ? '' : ', with the read token the URL carries and not without it (reachable from other machines)'}`, async () => {
      const demo = await startDemo({ host });
      try {
        const dashboard = demo.lines.find((l) => l.startsWith('Dashboard: '))!.slice('Dashboard: '.length);
        expect(dashboard).toMatch(new RegExp(`^http://${shown.replace(/[[\]]/g, '\\$&')}:\\d+/${loopback ? '' : '\\?token=[\\w-]+\\.[\\w-]+'}$`));
        const page = await fetch(dashboard);
        expect(page.status).toBe(200);
        expect(await connectAsPage(dashboard)).toBe('open');
        const webSocketLine = demo.lines.find((l) => l.startsWith('WebSocket: '))!;
        const webSocket = /^WebSocket: (\S+)/.exec(webSocketLine)![1]!;
        const bare = dashboard.replace(/\?.*$/, '');
        expect(webSocket).toBe(`${bare.replace('http:', 'ws:')}ws`);
        if (loopback) {
          expect(demo.lines.some((l) => l.startsWith('Network:'))).toBe(false);
          return;
        }
        // Without the token: refused before any frame.
        expect(await connectAsPage(bare)).toBe('HTTP 401');
        // The watch command it prints takes the token from the environment (kept out of ps).
        const token = new URL(dashboard).searchParams.get('token')!;
        expect(webSocketLine).toContain(`(in another shell: PROGRESS_TOKEN=${token} `);
        // The URL for other machines: this machine's address on its network, with the same token.
        const external = Object.values(networkInterfaces()).flatMap((list) => list ?? []).find((a) => !a.internal && a.family === 'IPv4');
        if (external) {
          const network = /^Network: {3}(\S+) {3}\(from other machines\)$/.exec(demo.lines.find((l) => l.startsWith('Network:')) ?? '')?.[1];
          expect(network).toMatch(new RegExp(`^http://${external.address.replaceAll('.', '\\.')}:\\d+/\\?token=${token}$`));
          expect(await connectAsPage(network!)).toBe('open');
        }
      } finally {
        await demo.stop();
      }
    });
  }
});

describe('isLoopbackHost', () => {
  it('tells the hosts reached from this machine only from those other machines may reach', () => {
    for (const host of ['localhost', 'LOCALHOST', 'app.localhost', '127.0.0.1', '127.1.2.3', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ['0.0.0.0', '0', '::', '::0', '::ffff:0.0.0.0', '192.168.1.5', 'fd00::2', 'example.com', 'localhost.example.com', '128.0.0.1', '']) expect(isLoopbackHost(host), host).toBe(false);
  });
});

describe('progress demo --redis', () => {
  it('does not print the Redis password, and keeps its upgrade under the key prefix given', async () => {
    const url = new URL(process.env.REDIS_URL!);
    url.username = 'default';
    url.password = 's3cr3t-demo-pass';
    const keyPrefix = `${uniqueId('demo')}:`;
    const demo = await startDemo({ redisUrl: url.toString(), keyPrefix });
    await demo.stop();
    const reader = new RedisStore({ url: process.env.REDIS_URL!, keyPrefix });
    try {
      const storage = demo.lines.find((l) => l.startsWith('Storage:'))!;
      expect(storage).toContain('default:***@');
      expect(storage).toContain(`key prefix ${keyPrefix}`);
      expect(demo.lines.join('\n')).not.toContain('s3cr3t-demo-pass');
      expect((await reader.list()).map((r) => r.upgradeId)).toEqual(['eks-demo']);
    } finally {
      await reader.close();
      await deleteKeys(process.env.REDIS_URL!, keyPrefix);
    }
  });
});

describe('progress demo --redis --prefix, run again', () => {
  it('finds its completed upgrade under the key prefix given, and starts a new one beside it', async () => {
    const keyPrefix = `${uniqueId('demo-again')}:`;
    const where = { redisUrl: process.env.REDIS_URL!, keyPrefix };
    const reader = new RedisStore({ url: process.env.REDIS_URL!, keyPrefix });
    try {
      const first = await demoToEnd(where);
      const second = await demoToEnd(where);
      // It looked for eks-demo under progress: and reopened the completed one: "upgrade.completed is not allowed".
      expect(second.lines).toContain('Upgrade:   eks-demo-2');
      expect((await reader.list()).map((row) => [row.upgradeId, row.status]).sort()).toEqual([['eks-demo', 'completed'], ['eks-demo-2', 'completed']]);
      expect((await reader.load('eks-demo'))?.lastSeq).toBe(first.state.lastSeq);
    } finally {
      await reader.close();
      await deleteKeys(process.env.REDIS_URL!, keyPrefix);
    }
  });
});

describe('progress demo --redis, Redis not answering', () => {
  it('says it cannot reach Redis, naming the URL without its password, as ls does (exit 4)', async () => {
    let caught: unknown;
    try {
      await runDemo({
        redisUrl: 'redis://:s3cr3t@127.0.0.1:1',
        port: 0,
        speed: 1000,
        lingerSeconds: 0,
        view: new LiveView({ out: new Capture() as unknown as NodeJS.WriteStream }),
        signal: new AbortController().signal,
        print: () => {},
      });
    } catch (err) {
      caught = err;
    }
    // It was the first load's failure after its 10 s command timeout, naming the upgrade, not Redis.
    expect(caught).toBeInstanceOf(CliError);
    expect(caught).toMatchObject({ exitCode: 4, message: expect.stringMatching(/^cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1: /) });
  });
});

describe('progress demo --linger', () => {
  it('keeps serving for a linger longer than a timer can hold (about 24.8 days), with no TimeoutOverflowWarning', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    const lines: string[] = [];
    const controller = new AbortController();
    let lingering!: () => void;
    const serving = new Promise<void>((resolve) => (lingering = resolve));
    let ended = false;
    const running = runDemo({
      directory: tempDir('demo-linger'),
      port: 0,
      speed: 1000,
      lingerSeconds: 3_000_000,
      view: new LiveView({ out: new Capture() as unknown as NodeJS.WriteStream }),
      signal: controller.signal,
      print: (line) => {
        lines.push(line);
        if (line.startsWith('Serving the dashboard')) lingering();
      },
    }).finally(() => (ended = true));
    try {
      await Promise.race([serving, running]);
      expect(lines).toContain('Serving the dashboard for 3000000s more.');
      // A setTimeout past 2^31 - 1 ms fired after 1 ms: the demo ended at once instead of serving.
      await new Promise((r) => setTimeout(r, 200));
      expect(ended).toBe(false);
      expect(warnings).not.toContain('TimeoutOverflowWarning');
    } finally {
      process.off('warning', onWarning);
      controller.abort();
      await (await running).close();
    }
  });
});

describe('progress demo, run to its end', () => {
  it('runs the six phases in order, fails ng-apps once and retries it, and completes all fourteen tasks', async () => {
    const run = await demoToEnd({ directory: tempDir('demo-end') });
    expect(run.lines).toContain('Upgrade:   eks-demo');
    expect(run.lines.join('\n')).not.toContain('resuming');
    const phases = run.events.filter((e) => e.type === 'upgrade.started' || e.type === 'upgrade.phase_changed').map((e) => e.details.phase);
    expect(phases).toEqual(['Pre-flight', 'Control plane', 'Add-ons', 'Node groups', 'Validation', 'Cleanup']);
    const failures = run.events.filter((e) => e.type === 'task.failed' || e.type === 'task.retried').map((e) => [e.type, e.taskId]);
    expect(failures).toEqual([['task.failed', 'ng-apps'], ['task.retried', 'ng-apps']]);
    expect(Object.values(run.state.tasks).map((task) => [task.taskId, task.status])).toEqual(DEMO_TASKS.map((task) => [task.taskId, 'completed']));
    expect(run.state.status).toBe('completed');
    expect(run.state.durationMs).toBeGreaterThan(0);
    expect(run.lines.at(-1)).toBe(`Upgrade completed in ${(run.state.durationMs! / 1000).toFixed(1)}s: 14/14 tasks.`);
  });

  it('run again on a folder whose upgrade completed: starts a new upgrade, and leaves the completed one as it was', async () => {
    const directory = tempDir('demo-again');
    const first = await demoToEnd({ directory });
    const second = await demoToEnd({ directory });
    expect(second.lines).toContain('Upgrade:   eks-demo-2');
    expect(second.state.status).toBe('completed');
    const store = new JsonFileStore({ directory });
    try {
      expect((await store.list()).map((row) => [row.upgradeId, row.status]).sort()).toEqual([['eks-demo', 'completed'], ['eks-demo-2', 'completed']]);
      expect((await store.load('eks-demo'))?.lastSeq).toBe(first.state.lastSeq);
    } finally {
      await store.close();
    }
  });
});

describe('progress demo, stopped and run again', () => {
  it('stopped half-way through a task without steps: the next run goes on from its percentage, not from 25%', async () => {
    const directory = tempDir('demo-stopped-half');
    const first = await demoToEnd({ directory }, (event) => event.taskId === 'check-versions' && event.percentage === 50);
    expect(first.state.tasks['check-versions']).toMatchObject({ status: 'in_progress', percentage: 50 });
    const second = await demoToEnd({ directory });
    expect(second.events.filter((e) => e.taskId === 'check-versions').map((e) => [e.type, e.percentage])).toEqual([
      ['task.progress', 75],
      ['task.completed', 100],
    ]);
    expect(second.state.status).toBe('completed');
  });

  it('stopped while ng-apps has failed: the next run retries it from the step it reached and completes the upgrade', async () => {
    const directory = tempDir('demo-stopped-failed');
    const first = await demoToEnd({ directory }, (event) => event.type === 'task.failed');
    expect(first.state.tasks['ng-apps']).toMatchObject({ status: 'failed', completedSteps: 2 });
    const second = await demoToEnd({ directory });
    expect(second.lines).toContain(`Upgrade:   eks-demo (resuming after seq ${first.state.lastSeq})`);
    expect(second.events.filter((e) => e.taskId === 'ng-apps' && e.type !== 'task.progress').map((e) => e.type)).toEqual(['task.retried', 'task.completed']);
    expect(second.events.filter((e) => e.taskId === 'ng-apps' && e.type === 'task.progress').map((e) => e.details.completedSteps)).toEqual([3, 4, 5]);
    expect(second.state).toMatchObject({ status: 'completed', tasks: { 'ng-apps': { status: 'completed', retryCount: 1 } } });
  });
});

describe('progress demo --port 0', () => {
  it('serves on a free port without saying that port 8765 is taken: 0 was asked for', async () => {
    const { lines } = await demoToEnd({ directory: tempDir('demo-port0') });
    expect(lines[0]).toMatch(/^Dashboard: http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(lines[1]).toMatch(/^WebSocket: /);
    expect(lines.join('\n')).not.toContain('is taken');
  });
});

describe('progress demo on a folder whose demo upgrade is paused', () => {
  it('resumes it and runs it to its end', async () => {
    const directory = tempDir('demo-paused');
    const paused = await createProgressTracker({ upgradeId: 'eks-demo', planId: 'eks-1.31-plan', clusterName: 'demo-cluster (eu-west-1)', storage: { json: directory } });
    await paused.startUpgrade('Pre-flight');
    await paused.pauseUpgrade('maintenance window closed');
    await paused.close();
    const run = await demoToEnd({ directory });
    expect(run.lines).toContainEqual(expect.stringMatching(/^Upgrade: {3}eks-demo \(resuming after seq \d+\)$/));
    expect(run.events.map((e) => e.type)).toContain('upgrade.resumed');
    expect(run.state.status).toBe('completed');
  });
});
