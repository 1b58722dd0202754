// `progress watch ws://` of an upgrade that does not exist yet, on a ws-server over a JSON folder that
// another process writes: once the upgrade appears, the server (asked by another client) sends the
// waiting subscriber `resync` with `exists: true` and the upgrade's snapshot. The command said
// `upgrade "u" was deleted; waiting for it to be created again...` there, of an upgrade that had
// just appeared and was never deleted, before showing it.
import WebSocket from 'ws';
import { afterAll, describe, expect, it } from 'vitest';
import { JsonFileStore, ProgressWebSocketServer, createProgressTracker } from '../src/index.js';
import { LiveView } from '../src/cli/terminal.js';
import { deletedLine, waitingLine, watchWebSocket } from '../src/cli/watch.js';
import { Capture, cleanupTempDirs, tempDir, until } from './helpers.js';

afterAll(() => cleanupTempDirs());

describe('progress watch ws:// of an upgrade that appears in the folder the server reads', () => {
  it('shows it without saying it was deleted', async () => {
    const dir = tempDir('watch-ws-appears');
    const id = 'later';
    const served = new JsonFileStore({ directory: dir });
    const server = new ProgressWebSocketServer({ port: 0, store: served });
    const { url } = await server.start();
    const out = new Capture();
    const ac = new AbortController();
    const watching = watchWebSocket(url, id, { view: new LiveView({ out: out as unknown as NodeJS.WriteStream }), signal: ac.signal, heartbeatMs: 0 });
    let other: WebSocket | undefined;
    try {
      await until('said it waits', () => out.text.includes(waitingLine(id)), () => out.text);
      // Written by another process's tracker (its own store on the folder).
      const t = await createProgressTracker({ upgradeId: id, planId: 'p', clusterName: 'c', storagePath: dir });
      await t.startUpgrade('Phase one');
      await t.addTask('a', 'Drain nodes');
      await t.close();
      // Another client subscribes to it: the server reads the store, finds the upgrade and resyncs every subscriber to it.
      other = new WebSocket(url, ['progress.v1']);
      await new Promise((resolve, reject) => other!.once('open', resolve).once('error', reject));
      other.send(JSON.stringify({ type: 'subscribe', upgradeId: id }));
      await until('showed the upgrade', () => / state in_progress at seq 3 /.test(out.text), () => out.text);
    } finally {
      other?.close();
      ac.abort();
      await watching;
      await server.stop();
      await served.close();
    }
    expect(out.text).not.toContain(deletedLine(id));
    expect(out.text).not.toContain('created again');
  }, 30_000);
});
