// What `progress watch` leaves on the screen once the upgrade it follows is deleted: the bars of the
// deleted run stayed drawn under `was deleted; waiting...` (redrawn after every line said later), and
// the command, stopped then, ended by printing that run's progress as its final state, of an upgrade
// that no longer exists. A JSON folder deleted from another process (and another store), and a
// ws-server over that folder, through real processes and sockets.
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, describe, expect, it } from 'vitest';
import { JsonFileStore, ProgressWebSocketServer, createProgressTracker } from '../src/index.js';
import { LiveView } from '../src/cli/terminal.js';
import { deletedLine, watchStore, watchWebSocket } from '../src/cli/watch.js';
import { Capture, cleanupTempDirs, legacyDir, spawnCli, tempDir, until } from './helpers.js';

const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  cleanupTempDirs();
});

/** Starts `progress <args>` as a user would (from source, through tsx), stdout not a terminal. */
function startCli(args: string[]) {
  const { child, exited, stdout } = spawnCli(args);
  children.push(child);
  const waitFor = async (what: string, test: (out: string) => boolean) => {
    const deadline = Date.now() + 20_000;
    while (!test(stdout())) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`progress never printed ${what} (exit ${child.exitCode}); stdout:\n${stdout()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  return { child, exited, waitFor, out: stdout };
}

/** What a terminal shows of `text`: each `ESC[<n>A ESC[0J` (the live view's redraw) takes the last n lines off. */
function screen(text: string): string[] {
  const lines: string[] = [];
  for (const part of text.split(/(\x1b\[\d+A\x1b\[0J)/)) { // eslint-disable-line no-control-regex
    const up = /^\x1b\[(\d+)A\x1b\[0J$/.exec(part); // eslint-disable-line no-control-regex
    if (up) lines.splice(lines.length - Number(up[1]));
    else lines.push(...part.split('\n').slice(0, -1));
  }
  return lines;
}

/** Upgrade `id` of a folder, in progress with one task at 40%, written by a tracker that then closed. */
async function written(dir: string, id: string): Promise<void> {
  const t = await createProgressTracker({ upgradeId: id, planId: 'p', clusterName: 'c', storagePath: dir });
  await t.startUpgrade('Phase one');
  await t.addTask('a', 'Drain nodes');
  await t.updateTaskProgress('a', 40);
  await t.close();
}

/** Deletes `id` from the folder through a store of its own, as retention in another process does. */
async function deleteElsewhere(dir: string, id: string): Promise<void> {
  const store = new JsonFileStore({ directory: dir });
  try {
    expect(await store.delete(id)).toBe(true);
  } finally {
    await store.close();
  }
}

describe('progress watch <folder>, stopped while the upgrade it followed is deleted', () => {
  it('does not end by printing the deleted run as the final state', async () => {
    const dir = tempDir('watch-del-final');
    const id = 'gone';
    await written(dir, id);
    const cli = startCli(['watch', dir, id]);
    await cli.waitFor('the state', (out) => out.includes('state in_progress'));
    await deleteElsewhere(dir, id);
    await cli.waitFor('that it was deleted', (out) => out.includes(deletedLine(id)));
    cli.child.kill('SIGINT');
    expect(await cli.exited).toBe(130);
    // Nothing after that line: it printed the deleted run's progress ("gone  cluster c ... IN_PROGRESS", its 40% bar).
    const after = cli.out().slice(cli.out().indexOf(deletedLine(id)) + deletedLine(id).length);
    expect(after).toBe('\n');
  }, 60_000);
});

describe('progress watch <folder> on a terminal, when the upgrade it followed is deleted', () => {
  it('takes the deleted run off the screen, and draws it again neither after a later line nor at the end', async () => {
    const dir = tempDir('watch-del-tty');
    const id = 'gone-tty';
    await written(dir, id);
    const out = new Capture();
    out.isTTY = true;
    const view = new LiveView({ out: out as unknown as NodeJS.WriteStream, color: false, intervalMs: 0 });
    const store = new JsonFileStore({ directory: dir });
    const ac = new AbortController();
    const watching = watchStore(store, id, { view, signal: ac.signal, pollMs: 20 });
    try {
      await until('drew the bars', () => screen(out.text).some((l) => l.includes('Drain nodes')), () => out.text);
      await deleteElsewhere(dir, id);
      await until('said it was deleted', () => out.text.includes(deletedLine(id)), () => out.text);
      // A line said after it (as a read failure or a reconnect says one) redrew the old bars under it.
      view.say('a later line');
    } finally {
      ac.abort();
      expect(await watching).toBeUndefined();
      view.finish();
      await store.close();
    }
    const shown = screen(out.text);
    expect(shown.slice(-2)).toEqual([deletedLine(id), 'a later line']);
    expect(shown.join('\n')).not.toContain('Drain nodes');
  }, 30_000);

  it("takes the run of a legacy file off the screen too, once the old module's file is removed", async () => {
    const dir = legacyDir();
    const id = 'test-upgrade-123';
    const out = new Capture();
    out.isTTY = true;
    const view = new LiveView({ out: out as unknown as NodeJS.WriteStream, color: false, intervalMs: 0 });
    const store = new JsonFileStore({ directory: dir });
    const ac = new AbortController();
    // --follow: the file's run has ended (failed), and is followed on.
    const watching = watchStore(store, id, { view, signal: ac.signal, pollMs: 20, follow: true });
    try {
      await until('drew the bars', () => screen(out.text).some((l) => l.includes('First Task')), () => out.text);
      rmSync(join(dir, 'progress', `upgrade_${id}.json`));
      await until('said it was deleted', () => out.text.includes(deletedLine(id)), () => out.text);
      view.say('a later line');
    } finally {
      ac.abort();
      expect(await watching).toBeUndefined();
      view.finish();
      await store.close();
    }
    const shown = screen(out.text);
    expect(shown.slice(-2)).toEqual([deletedLine(id), 'a later line']);
    expect(shown.join('\n')).not.toContain('First Task');
  }, 30_000);
});

describe('progress watch ws:// of a ws-server over a folder, when the upgrade it followed is deleted', () => {
  it('takes the deleted run off the screen once the server says it is gone, and does not end with it', async () => {
    const dir = tempDir('watch-del-ws');
    const id = 'gone-ws';
    await written(dir, id);
    const served = new JsonFileStore({ directory: dir });
    const server = new ProgressWebSocketServer({ port: 0, store: served });
    const { url } = await server.start();
    const out = new Capture();
    out.isTTY = true;
    const view = new LiveView({ out: out as unknown as NodeJS.WriteStream, color: false, intervalMs: 0 });
    const ac = new AbortController();
    const watching = watchWebSocket(url, id, { view, signal: ac.signal, heartbeatMs: 0 });
    let other: WebSocket | undefined;
    try {
      await until('drew the bars', () => screen(out.text).some((l) => l.includes('Drain nodes')), () => out.text);
      await deleteElsewhere(dir, id);
      // Another client (a dashboard asks for the list every 5 s): the server finds the run gone and
      // resyncs its subscribers, with no snapshot to follow.
      other = new WebSocket(url, ['progress.v1']);
      await new Promise((resolve, reject) => other!.once('open', resolve).once('error', reject));
      other.send(JSON.stringify({ type: 'list_upgrades' }));
      await until('said it was deleted', () => out.text.includes(deletedLine(id)), () => out.text);
    } finally {
      other?.close();
      ac.abort();
      expect(await watching).toBeUndefined();
      view.finish();
      await server.stop();
      await served.close();
    }
    const shown = screen(out.text);
    expect(shown.at(-1)).toBe(deletedLine(id));
    expect(shown.join('\n')).not.toContain('Drain nodes');
  }, 30_000);
});
