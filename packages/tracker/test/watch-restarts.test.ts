// `progress watch` across a restart of what it watches, driving the real command (a child process,
// run from source through tsx, as a user runs it): a ws-server restarting behind an HTTP proxy, and
// an upgrade deleted and created again under the same id in a JSON folder.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { STATUS_CODES, createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { JsonFileStore, createProgressTracker } from '../src/index.js';
import { renderProgress } from '../src/render.js';
import { cleanupTempDirs, freePort, spawnCli, tempDir } from './helpers.js';

const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  cleanupTempDirs();
});

const seqsOf = (text: string, id: string): number[] => [...text.matchAll(new RegExp(`#(\\d+) ${id} `, 'g'))].map((m) => Number(m[1]));

/** Starts `progress <args>` as a user would (from source, through tsx), stdout not a terminal. */
function startCli(args: string[]) {
  const { child, exited, stdout, stderr } = spawnCli(args);
  children.push(child);
  /** Waits until `test(stdout)` holds; throws with what was printed when it does not in time, or the command ended. */
  const waitFor = async (what: string, test: (out: string) => boolean, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!test(stdout())) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`progress never printed ${what} (exit ${child.exitCode}); stdout:\n${stdout()}\nstderr:\n${stderr()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  /**
   * Calls `write` (an event of `id`) until the command prints an event line of `id`: what was written
   * before it read its first state is in that state, not printed. Resolves with the seq printed first.
   */
  const started = async (id: string, write: () => Promise<unknown>) => {
    const deadline = Date.now() + 20_000;
    while (seqsOf(stdout(), id).length === 0) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`progress never printed an event (exit ${child.exitCode}); stdout:\n${stdout()}\nstderr:\n${stderr()}`);
      await write();
      await new Promise((r) => setTimeout(r, 200));
    }
    return seqsOf(stdout(), id)[0]!;
  };
  return { child, exited, waitFor, started, out: stdout, err: stderr };
}

/**
 * An HTTP proxy in front of a ws-server, as nginx or a load balancer is: it passes each upgrade
 * request on to `target`, and answers 502 when nothing listens there (the server restarting). The
 * answers in `script` go first, one per request: a status code, or 'reset' (the connection reset).
 */
async function startProxy(target: number) {
  const script: Array<number | 'reset'> = [];
  let requests = 0;
  const server: Server = createServer((_req, res) => res.writeHead(404).end());
  const answer = (socket: Socket, code: number) => socket.end(`HTTP/1.1 ${code} ${STATUS_CODES[code]}\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    requests++;
    socket.on('error', () => {});
    const scripted = script.shift();
    if (scripted === 'reset') return void socket.resetAndDestroy();
    if (scripted !== undefined) return void answer(socket, scripted);
    const upstream = connect(target, '127.0.0.1');
    let connected = false;
    upstream.on('connect', () => {
      connected = true;
      const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', () => (connected ? socket.destroy() : answer(socket, 502)));
    upstream.on('close', () => connected && socket.destroy());
    socket.on('close', () => upstream.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`,
    script,
    get requests() {
      return requests;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('progress watch ws:// behind a proxy, while the server restarts', () => {
  it('retries when the proxy answers 502, 503 or 504 (or resets the connection), and resumes once the server is back', async () => {
    const wsPort = await freePort();
    const dir = tempDir('watch-proxy');
    const t = await createProgressTracker({ upgradeId: 'proxied', planId: 'p', clusterName: 'c', storagePath: dir, webSocket: { port: wsPort } });
    await t.startWebSocketServer();
    const proxy = await startProxy(wsPort);
    try {
      await t.startUpgrade();
      await t.addTask('a', 'A');
      const cli = startCli(['watch', proxy.url, 'proxied']);
      let p = 0;
      const firstSeen = await cli.started('proxied', () => t.updateTaskProgress('a', Math.min(++p, 99)));
      // The server goes away behind the proxy: a reset, then 503 and 504 from the proxy, then 502s
      // (nothing listens behind it) until the server is back.
      proxy.script.push('reset', 503, 504);
      const before = proxy.requests;
      await t.stopWebSocketServer();
      await t.updateTaskProgress('a', Math.min(++p, 99));
      const during = t.progress.lastSeq;
      for (let i = 0; i < 400 && proxy.requests < before + 4; i++) await new Promise((r) => setTimeout(r, 25));
      expect(proxy.requests).toBeGreaterThanOrEqual(before + 4);
      expect(cli.child.exitCode).toBeNull();
      await t.startWebSocketServer();
      await t.updateTaskProgress('a', Math.min(++p, 99));
      await t.completeTask('a');
      await t.completeUpgrade();
      const code = await cli.exited;
      expect(cli.err()).toBe('');
      expect(code).toBe(0);
      expect(cli.out()).toMatch(/HTTP 503 Service Unavailable; retrying/);
      expect(cli.out()).toContain('reconnected');
      // Every event after the first snapshot, once and in order, the one written during the outage too.
      const last = t.progress.lastSeq;
      expect(seqsOf(cli.out(), 'proxied')).toEqual(Array.from({ length: last - firstSeen + 1 }, (_, i) => firstSeen + i));
      expect(firstSeen).toBeLessThan(during);
    } finally {
      await t.close();
      await proxy.close();
    }
  }, 60_000);

  it.each([
    [401, 4, 'Unauthorized'],
    [403, 4, 'Forbidden'],
    [404, 3, 'Not Found'],
  ])('gives up at once when the proxy answers %i on a reconnect, with exit code %i', async (status, exitCode, text) => {
    const wsPort = await freePort();
    const t = await createProgressTracker({ upgradeId: 'refused', planId: 'p', clusterName: 'c', storage: 'memory', webSocket: { port: wsPort } });
    await t.startWebSocketServer();
    const proxy = await startProxy(wsPort);
    try {
      await t.startUpgrade();
      await t.addTask('a', 'A');
      const cli = startCli(['watch', proxy.url, 'refused']);
      let p = 0;
      await cli.started('refused', () => t.updateTaskProgress('a', Math.min(++p, 99)));
      const before = proxy.requests;
      proxy.script.push(status, status, status);
      await t.stopWebSocketServer();
      expect(await cli.exited).toBe(exitCode);
      expect(cli.err()).toContain(`the server refused the connection: HTTP ${status} ${text}`);
      // A refused token says where the token comes from; a missing endpoint does not.
      if (status === 404) expect(cli.err()).not.toContain('check --token');
      else expect(cli.err()).toContain(`HTTP ${status} ${text} (check --token or PROGRESS_TOKEN)`);
      // Not asked again: the first answer was final.
      expect(proxy.requests).toBe(before + 1);
    } finally {
      await t.close();
      await proxy.close();
    }
  }, 60_000);
});

describe('progress watch <folder> --follow, when the upgrade is deleted and created again', () => {
  it('says so and follows the new run from its first event, not its events on the old run', async () => {
    const dir = tempDir('watch-again');
    const id = 'again';
    const first = await createProgressTracker({ upgradeId: id, planId: 'p', clusterName: 'c', storagePath: dir });
    await first.startUpgrade();
    await first.addTask('a', 'A');
    const cli = startCli(['watch', dir, id, '--follow']);
    let p = 0;
    await cli.started(id, () => first.updateTaskProgress('a', Math.min(++p, 99)));
    await first.completeTask('a');
    await first.completeUpgrade();
    await first.close();
    const oldLast = first.progress.lastSeq;
    await cli.waitFor(`the old run to its end (seq ${oldLast})`, (out) => seqsOf(out, id).includes(oldLast));
    const oldRun = cli.out().length;
    // A new run under the same id, longer than the old one: its events 7.. would fit the seqs the watcher holds.
    const store = new JsonFileStore({ directory: dir });
    expect(await store.delete(id)).toBe(true);
    await store.close();
    await new Promise((r) => setTimeout(r, 5));
    const second = await createProgressTracker({ upgradeId: id, planId: 'p2', clusterName: 'c', storagePath: dir });
    await second.startUpgrade();
    await second.addTasks([{ taskId: 'b', taskName: 'B' }, { taskId: 'c', taskName: 'C' }]);
    for (let i = 0; i <= oldLast; i++) await second.updateTaskProgress('b', i);
    await second.close();
    const lastSeq = second.progress.lastSeq;
    expect(lastSeq).toBeGreaterThan(oldLast);
    await cli.waitFor(`the new run to seq ${lastSeq}`, (out) => seqsOf(out.slice(oldRun), id).includes(lastSeq));
    cli.child.kill('SIGINT');
    expect(await cli.exited).toBe(130);
    const after = cli.out().slice(oldRun);
    expect(after).toMatch(new RegExp(`upgrade "${id}" was created again; following the new run from its start`));
    // After that line: the new run from seq 1, every event once, in order.
    const newRun = after.slice(after.indexOf('created again'));
    expect(seqsOf(newRun, id)).toEqual(Array.from({ length: lastSeq }, (_, i) => i + 1));
    expect(newRun).toContain('upgrade.created');
  }, 60_000);

  it('without --follow: says the upgrade was deleted, waits for it, and ends with the new run', async () => {
    const dir = tempDir('watch-deleted');
    const id = 'gone';
    const first = await createProgressTracker({ upgradeId: id, planId: 'p', clusterName: 'c', storagePath: dir });
    await first.startUpgrade();
    await first.addTask('a', 'A');
    const cli = startCli(['watch', dir, id]);
    let p = 0;
    await cli.started(id, () => first.updateTaskProgress('a', Math.min(++p, 99)));
    await first.close();
    const store = new JsonFileStore({ directory: dir });
    expect(await store.delete(id)).toBe(true);
    await store.close();
    await cli.waitFor('that it was deleted', (out) => out.includes(`upgrade "${id}" was deleted; waiting for it to be created again`));
    const oldRun = cli.out().length;
    // Before, the watcher said nothing and waited for seqs past the old run's, for ever: the new run ends at seq 3.
    const second = await createProgressTracker({ upgradeId: id, planId: 'p2', clusterName: 'c', storagePath: dir });
    await second.startUpgrade();
    await second.failUpgrade('boom');
    await second.close();
    expect(await cli.exited).toBe(1);
    const after = cli.out().slice(oldRun);
    expect(after).toContain(`upgrade "${id}" was created again; following the new run from its start`);
    expect(seqsOf(after, id)).toEqual([1, 2, 3]);
    expect(cli.err()).toBe('');
  }, 60_000);
});

describe('progress watch <folder>, an upgrade whose first log line is damaged below its snapshot', () => {
  it('follows it to its end as before: the first event names no run then, the events after the snapshot are still its own', async () => {
    const dir = tempDir('watch-damaged-first');
    const id = 'dmg';
    // Snapshots every 3 events: the damaged line 1 lies below one, so the store still opens the upgrade.
    const store = () => new JsonFileStore({ directory: dir, snapshotEvery: 3, durability: 'none' });
    const first = await createProgressTracker({ upgradeId: id, planId: 'p', clusterName: 'c', storage: store() });
    await first.startUpgrade();
    await first.addTask('a', 'A');
    for (let i = 1; i < 8; i++) await first.updateTaskProgress('a', i);
    await first.close();
    const log = join(dir, 'upgrades', id, 'events.jsonl');
    const text = readFileSync(log, 'latin1');
    const at = text.indexOf('"message":"') + '"message":"'.length;
    writeFileSync(log, `${text.slice(0, at)}${text[at] === 'X' ? 'Y' : 'X'}${text.slice(at + 1)}`, 'latin1');
    const cli = startCli(['watch', dir, id]);
    // The same run goes on (its writer opens from the snapshot) and ends.
    const second = await createProgressTracker({ upgradeId: id, planId: 'p', clusterName: 'c', storage: store() });
    let p = 10;
    const firstSeen = await cli.started(id, () => second.updateTaskProgress('a', Math.min(++p, 99)));
    await second.completeTask('a');
    await second.completeUpgrade();
    await second.close();
    const last = second.progress.lastSeq;
    await cli.waitFor(`seq ${last}`, (out) => seqsOf(out, id).includes(last));
    expect(await cli.exited).toBe(0);
    expect(seqsOf(cli.out(), id)).toEqual(Array.from({ length: last - firstSeen + 1 }, (_, i) => firstSeen + i));
    expect(cli.out()).not.toContain('read failed');
    expect(cli.out()).not.toContain('created again');
  }, 60_000);
});

/** A Python `str()` datetime, as the old module wrote them: `2025-10-20 05:25:00.100000+00:00`. */
const pyTime = (ms: number): string => new Date(ms).toISOString().replace('T', ' ').replace('Z', '000+00:00');

/** A task of the old module's file, not started. */
const pyTask = (id: string, name = id) => ({
  task_id: id,
  task_name: name,
  task_type: 'upgrade_step',
  parent_task_id: null,
  status: 'not_started',
  started_at: null as string | null,
  completed_at: null as string | null,
  duration: null,
  percentage: 0,
  current_step: null,
  total_steps: null,
  completed_steps: 0,
  error_message: null,
  retry_count: 0,
  events: [] as Array<Record<string, unknown>>,
});

/** An event the old module recorded in a task's `events`. */
const pyEvent = (taskId: string, ms: number, status: string, message: string, percentage: number) => ({
  event_id: `${taskId}-${ms}`,
  timestamp: pyTime(ms),
  task_id: taskId,
  task_type: 'upgrade_step',
  status,
  message,
  details: {},
  percentage,
});

describe('progress watch <folder> on a file of the old Python module that it still rewrites', () => {
  /** `<dir>/progress/upgrade_<id>.json`, and a save() that rewrites it in place, as the old module's save() did. */
  const legacyFolder = (label: string, id: string, doc: Record<string, unknown>) => {
    const dir = tempDir(label);
    mkdirSync(join(dir, 'progress'));
    const file = join(dir, 'progress', `upgrade_${id}.json`);
    const save = () => writeFileSync(file, JSON.stringify(doc, null, 2));
    save();
    return { dir, file, save };
  };

  it('says nothing false when a file without times is rewritten (its createdAt was its mtime), and still says a deletion and a new file', async () => {
    const id = 'no-times';
    const doc = { upgrade_id: id, plan_id: 'p', cluster_name: 'c', status: 'not_started', started_at: null, completed_at: null, duration: null, overall_percentage: 0, current_phase: null, tasks: { a: pyTask('a') } as Record<string, ReturnType<typeof pyTask>>, metadata: {} };
    const { dir, file, save } = legacyFolder('watch-legacy-mtime', id, doc);
    const cli = startCli(['watch', dir, id]);
    // Each rewrite adds a task: no time in the file, so every import took the file's new mtime as createdAt.
    let n = 0;
    await cli.started(id, async () => {
      doc.tasks[`t${++n}`] = pyTask(`t${n}`);
      save();
    });
    doc.tasks.last = pyTask('last');
    save();
    await cli.waitFor('the task added last', (out) => / task\.added last /.test(out));
    const rewrites = cli.out();
    expect(rewrites).not.toContain('created again');
    expect(rewrites).not.toContain('was deleted');
    // Every task added after the first line, each once.
    expect(rewrites.match(/ task\.added last /g)).toHaveLength(1);
    // Deleted for real, then a new file (a new run, cancelled): both said, once.
    rmSync(file);
    await cli.waitFor('that it was deleted', (out) => out.includes(`upgrade "${id}" was deleted; waiting for it to be created again`));
    doc.tasks = { z: pyTask('z') };
    doc.status = 'cancelled';
    save();
    expect(await cli.exited).toBe(1);
    const after = cli.out().slice(rewrites.length);
    expect(after.match(/was created again/g)).toHaveLength(1);
    expect(after.indexOf('was deleted')).toBeLessThan(after.indexOf('created again'));
    expect(after).toMatch(/#2 no-times task\.added z /);
    expect(after).toContain('CANCELLED');
    expect(cli.err()).toBe('');
  }, 60_000);

  it('shows the file as it is after each rewrite (a task started, a status, a percentage, a task added ahead), ending in the state load() gives', async () => {
    const id = 'test-upgrade-123';
    // The real file of the old module, taken back to a run in progress: task-1 running, task-2 not started.
    const doc = JSON.parse(readFileSync(new URL('../../storage-json/test/fixtures/upgrade_test-upgrade-123.json', import.meta.url), 'utf8')) as Record<string, unknown> & { tasks: Record<string, ReturnType<typeof pyTask>> };
    const t0 = Date.parse('2025-10-20T05:25:00.000Z');
    Object.assign(doc, { status: 'in_progress', started_at: pyTime(t0), completed_at: null, duration: null, overall_percentage: 0 });
    doc.tasks = { 'task-1': pyTask('task-1', 'First Task'), 'task-2': pyTask('task-2', 'Second Task') };
    const [t1, t2] = [doc.tasks['task-1']!, doc.tasks['task-2']!];
    Object.assign(t1, { status: 'in_progress', started_at: pyTime(t0 + 100) });
    t1.events.push(pyEvent('task-1', t0 + 100, 'in_progress', 'Task started', 0));
    const { dir, save } = legacyFolder('watch-legacy-rewrites', id, doc);
    const cli = startCli(['watch', dir, id]);
    let p = 0;
    await cli.started(id, async () => {
      t1.percentage = Math.min(++p, 99);
      t1.events.push(pyEvent('task-1', t0 + 100 + p, 'in_progress', `at ${t1.percentage}`, t1.percentage));
      save();
    });
    // task-1 completes and task-2 starts.
    Object.assign(t1, { status: 'completed', completed_at: pyTime(t0 + 400), percentage: 100 });
    t1.events.push(pyEvent('task-1', t0 + 400, 'completed', 'Task completed', 100));
    Object.assign(t2, { status: 'in_progress', started_at: pyTime(t0 + 500) });
    t2.events.push(pyEvent('task-2', t0 + 500, 'in_progress', 'Task started', 0));
    save();
    await cli.waitFor('task-2 started', (out) => / task\.started task-2 /.test(out));
    // A task added: its task.added goes ahead of every task's events (the seqs already shown change).
    doc.tasks['task-3'] = pyTask('task-3', 'Third Task');
    save();
    await cli.waitFor('task-3 added', (out) => / task\.added task-3 /.test(out));
    // A percentage the old module set without an event.
    t2.percentage = 50;
    save();
    await cli.waitFor('task-2 at 50%', (out) => / task-2 in_progress 50% /.test(out));
    // The rest of the run, and its end.
    const t3 = doc.tasks['task-3']!;
    Object.assign(t2, { status: 'completed', completed_at: pyTime(t0 + 700), percentage: 100 });
    t2.events.push(pyEvent('task-2', t0 + 700, 'completed', 'Task completed', 100));
    Object.assign(t3, { status: 'completed', started_at: pyTime(t0 + 800), completed_at: pyTime(t0 + 900), percentage: 100 });
    t3.events.push(pyEvent('task-3', t0 + 800, 'in_progress', 'Task started', 0), pyEvent('task-3', t0 + 900, 'completed', 'Task completed', 100));
    Object.assign(doc, { status: 'completed', completed_at: pyTime(t0 + 1000), overall_percentage: 100 });
    save();
    expect(await cli.exited).toBe(0);
    const out = cli.out();
    expect(out).not.toContain('created again');
    expect(out).toContain(`the legacy file of upgrade "${id}" was rewritten`);
    // The state it ends with (drawn last) is the file's, as load() gives it.
    const store = new JsonFileStore({ directory: dir });
    const loaded = (await store.load(id))!;
    await store.close();
    expect(loaded.status).toBe('completed');
    expect(Object.keys(loaded.tasks)).toEqual(['task-1', 'task-2', 'task-3']);
    expect(out.endsWith(`${renderProgress(loaded, { color: false, recentEvents: 0 }).join('\n')}\n`)).toBe(true);
    expect(cli.err()).toBe('');
  }, 60_000);

  it('follows the upgrade on into its log once a tracker takes it over (imports the file, then appends)', async () => {
    const id = 'steps-1';
    const doc = JSON.parse(readFileSync(new URL('../../storage-json/test/fixtures/upgrade_steps-1.json', import.meta.url), 'utf8')) as { tasks: Record<string, { percentage: number }> };
    const { dir, save } = legacyFolder('watch-legacy-import', id, doc);
    const cli = startCli(['watch', dir, id]);
    // Followed as a legacy file first: the old module moves `drain` on.
    let p = 50;
    await cli.started(id, async () => {
      doc.tasks.drain!.percentage = Math.min(++p, 99);
      save();
    });
    const t = await createProgressTracker({ upgradeId: id, planId: 'p', clusterName: 'c', storagePath: dir });
    const imported = t.progress.lastSeq;
    await t.updateTaskProgress('drain', 99);
    for (const task of Object.values(t.progress.tasks)) if (task.status === 'in_progress') await t.completeTask(task.taskId);
    await t.completeUpgrade();
    await t.close();
    expect(await cli.exited).toBe(0);
    // Every event the tracker appended after its import, once and in order; nothing said of runs.
    const last = t.progress.lastSeq;
    expect(seqsOf(cli.out(), id).filter((seq) => seq > imported)).toEqual(Array.from({ length: last - imported }, (_, i) => imported + 1 + i));
    expect(cli.out()).not.toMatch(/created again|was deleted|read failed/);
    expect(cli.err()).toBe('');
  }, 60_000);
});
