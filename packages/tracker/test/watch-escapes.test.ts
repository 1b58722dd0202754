import type { ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import type { ProgressEvent } from '@progress/core';
import { createProgressTracker } from '../src/index.js';
import { protocolServer, spawnCli } from './helpers.js';

const children: ChildProcess[] = [];
const closers: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const close of closers) await close();
});

/** A real upgrade's state (a task started) and the events a tracker wrote after it. */
async function upgrade(): Promise<{ state: object; next: (fields: Partial<ProgressEvent>) => ProgressEvent }> {
  const t = await createProgressTracker({ upgradeId: 'u1', planId: 'p', clusterName: 'c' });
  await t.startUpgrade();
  await t.addTask('a', 'A');
  await t.startTask('a');
  const state = JSON.parse(JSON.stringify(t.progress)) as { lastSeq: number; updatedAt: string };
  await t.close();
  let seq = state.lastSeq;
  const next = (fields: Partial<ProgressEvent>) =>
    ({ eventId: `e${++seq}`, upgradeId: 'u1', seq, timestamp: state.updatedAt, status: 'in_progress', message: 'm', details: {}, ...fields }) as ProgressEvent;
  return { state, next };
}

/** `progress watch` of u1 on a ws-server that answers its subscribe with `frames`: its exit code, with no terminal escape in what it printed. */
async function watchServed(frames: object[]): Promise<ReturnType<typeof spawnCli> & { code: number | null }> {
  const server = await protocolServer((msg) => (msg.type === 'subscribe' ? frames : []));
  closers.push(server.close);
  const run = spawnCli(['watch', server.url, 'u1']);
  children.push(run.child);
  const code = await run.exited;
  expect(run.output()).not.toContain('\u001b');
  return { ...run, code };
}

// `watch` printed the numbers a ws-server sent as they came, without the control characters taken
// out of every text it prints: a snapshot whose overallPercentage or an event whose percentage was a
// string of terminal escapes reached the terminal raw (`| tee`, or a terminal's plain lines), and the
// command then ended on `n.toFixed is not a function`.
const ESC = '\u001b]0;OWNED\u0007\u001b[2J';

describe('progress watch: numbers a ws-server sends that are not numbers', () => {
  for (const where of ['snapshot', 'event'] as const) {
    it(`${where === 'snapshot' ? "a snapshot's overallPercentage" : "an event's percentage"} of escapes: never printed raw; the command ends with exit 4 and a message`, async () => {
      const { state, next } = await upgrade();
      const frames = [
        { type: 'subscribed', upgradeId: 'u1', exists: true },
        { type: 'snapshot', upgradeId: 'u1', data: where === 'snapshot' ? { ...state, overallPercentage: ESC } : state },
        { type: 'progress_event', upgradeId: 'u1', data: next({ type: 'task.progress', taskId: 'a', percentage: (where === 'event' ? ESC : 50) as number }) },
        { type: 'progress_event', upgradeId: 'u1', data: next({ type: 'upgrade.completed', status: 'completed' }) },
      ];
      const { code, stderr } = await watchServed(frames);
      expect({ code, stderr: stderr() }).toEqual({ code: 4, stderr: expect.stringMatching(/^progress: the server sent a message this client cannot use \(.*\)\n$/) });
    }, 20_000);
  }
});

// The last drawing of the upgrade (`finish()`, and every redraw on a terminal) printed a task's steps
// and a recent event's seq as the snapshot held them: a server's strings, escapes and all.
describe("progress watch: a snapshot's task fields that are not numbers", () => {
  it('never print their terminal escapes raw', async () => {
    const { state, next } = await upgrade();
    const tasks = (state as { tasks: Record<string, Record<string, unknown> & { recentEvents: Array<Record<string, unknown>> }> }).tasks;
    const a = tasks.a!;
    const snapshot = { ...state, tasks: { a: { ...a, totalSteps: ESC, completedSteps: ESC, recentEvents: a.recentEvents.map((e) => ({ ...e, seq: ESC })) } } };
    const frames = [
      { type: 'subscribed', upgradeId: 'u1', exists: true },
      { type: 'snapshot', upgradeId: 'u1', data: snapshot },
      { type: 'progress_event', upgradeId: 'u1', data: next({ type: 'upgrade.completed', status: 'completed' }) },
    ];
    const { code, stdout } = await watchServed(frames);
    expect(stdout()).toContain('OWNED');
    expect(code).toBe(0);
  }, 20_000);
});
