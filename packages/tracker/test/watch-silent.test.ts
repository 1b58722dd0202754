// `progress watch ws://...` over a connection that goes silent without closing: the server's host
// lost, a NAT or a firewall that dropped the flow, a proxy that hangs. No FIN or RST ever comes, so
// the socket stays open; the command must find out (a ping that gets no answer) and reconnect,
// not show the last state for ever.
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressWebSocketServer, createProgressTracker, type UpgradeProgress } from '../src/index.js';
import { LiveView } from '../src/cli/terminal.js';
import { watchWebSocket } from '../src/cli/watch.js';
import { Capture, cleanupTempDirs } from './helpers.js';

afterAll(() => cleanupTempDirs());

/**
 * A TCP relay to `target`; `silence()` makes the connections open now stop passing anything either
 * way while they stay open (no FIN, no RST), as a dead network path does. Later connections pass.
 */
async function relay(target: number) {
  const open: Array<{ mute: () => void; close: () => void }> = [];
  const server: Server = createServer((client: Socket) => {
    const upstream = connect(target, '127.0.0.1');
    let muted = false;
    client.on('data', (d) => muted || upstream.write(d));
    upstream.on('data', (d) => muted || client.write(d));
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    open.push({ mute: () => (muted = true), close });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    silence: () => {
      for (const c of open.splice(0)) c.mute();
    },
    connections: () => open.length,
    close: async () => {
      for (const c of open.splice(0)) c.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('progress watch ws://: a connection that goes silent', () => {
  it('notices that pings get no answer, reconnects, and follows the upgrade to its end', async () => {
    const server = new ProgressWebSocketServer({ port: 0 });
    const { port } = await server.start();
    const t = await createProgressTracker({ upgradeId: 'silent', planId: 'p', clusterName: 'c', webSocket: server });
    const proxy = await relay(port);
    const out = new Capture();
    const controller = new AbortController();
    try {
      await t.startUpgrade();
      await t.addTasks([{ taskId: 'a', taskName: 'A' }]);
      const watching = watchWebSocket(`ws://127.0.0.1:${proxy.port}/ws`, 'silent', { view: new LiveView({ out: out as unknown as NodeJS.WriteStream }), signal: controller.signal, heartbeatMs: 200 });
      for (let i = 0; i < 400 && !out.text.includes(' state in_progress'); i++) await new Promise((r) => setTimeout(r, 25));
      expect(out.text).toContain(' state in_progress');
      // The path goes dead; the upgrade goes on and ends meanwhile.
      proxy.silence();
      await t.startTask('a');
      await t.completeTask('a');
      await t.completeUpgrade();
      // Generous: the alternative (no heartbeat) is never.
      const stop = setTimeout(() => controller.abort(), 20_000);
      const state: UpgradeProgress | undefined = await watching.finally(() => clearTimeout(stop));
      expect(controller.signal.aborted, out.text).toBe(false);
      expect(state?.status).toBe('completed');
      expect(out.text).toMatch(/no answer from ws:\/\/127\.0\.0\.1:\d+\/ws within 0\.2 s; reconnecting/);
      expect(out.text).toContain('reconnected to');
      // Every event after the state shown, once.
      const seqs = [...out.text.matchAll(/ #(\d+) silent /g)].map((m) => Number(m[1]));
      expect(seqs).toEqual([...new Set(seqs)].sort((a, b) => a - b));
      expect(seqs.at(-1)).toBe(state!.lastSeq);
    } finally {
      controller.abort();
      await t.close();
      await server.stop();
      await proxy.close();
    }
  });
});
