// `progress watch ws://...` when the events it is sent skip a seq. A ws-server never does that by
// contract (its README: "no gap, no duplicate", a replay holds the live events, a hole it finds is a
// `resync`), so the gap here comes from a `ws` server that speaks protocol v1 and leaves one out, as a
// server of another version or with a bug could: the client must then ask again from what it has,
// once, and not once for each frame of the old subscription still on the wire.
import { replayEvents, type ProgressEvent } from '@progress/core';
import { afterAll, describe, expect, it } from 'vitest';
import { createProgressTracker } from '../src/index.js';
import { LiveView } from '../src/cli/terminal.js';
import { watchWebSocket } from '../src/cli/watch.js';
import { Capture, cleanupTempDirs, protocolServer, runCli as run } from './helpers.js';

afterAll(() => cleanupTempDirs());

/** The events of a completed upgrade `id` with a task advanced step by step: a dozen of them. */
async function eventsOf(id: string): Promise<ProgressEvent[]> {
  const t = await createProgressTracker({ upgradeId: id, planId: 'p', clusterName: 'c' });
  await t.startUpgrade();
  await t.addTasks([{ taskId: 'ng', taskName: 'Node groups', totalSteps: 6 }]);
  await t.startTask('ng');
  for (let s = 1; s <= 6; s++) await t.advanceTask('ng', { completedSteps: s });
  await t.completeTask('ng');
  await t.completeUpgrade();
  const events: ProgressEvent[] = [];
  for await (const event of t.readEvents(0)) events.push(event);
  await t.close();
  return events;
}

describe('progress watch ws://: a gap in the seqs', () => {
  it('subscribes again once, ignores the frames of the old subscription still in flight, and shows every event once', async () => {
    const id = 'gapped';
    const events = await eventsOf(id);
    expect(events.length).toBeGreaterThan(8);
    const at = 2;
    const event = (e: ProgressEvent) => ({ type: 'progress_event', upgradeId: id, data: e });
    // The first subscribe: the snapshot at seq 2, then every event after it but seq 3, sent at once:
    // all of them are on the wire before the server reads the client's next subscribe.
    const server = await protocolServer((msg) => {
      if (msg.type !== 'subscribe') return [];
      if (msg.sinceSeq === undefined) {
        return [
          { type: 'subscribed', upgradeId: id, exists: true },
          { type: 'snapshot', upgradeId: id, seq: at, data: replayEvents(events.slice(0, at)) },
          ...events.slice(at + 1).map(event),
        ];
      }
      // A resume: the events after the seq the client holds, without a gap.
      return [{ type: 'subscribed', upgradeId: id, exists: true }, ...events.filter((e) => e.seq > msg.sinceSeq!).map(event)];
    });
    try {
      const result = await run('watch', server.url, id);
      expect(result).toMatchObject({ code: 0, err: '' });
      // One subscribe, then one resume from the seq held: not one per frame that arrived after the gap.
      expect(server.requests).toEqual([
        { type: 'subscribe', connection: 1 },
        { type: 'subscribe', sinceSeq: at, connection: 1 },
      ]);
      // Every event after the snapshot, each shown once, in order.
      const shown = [...result.out.matchAll(/ #(\d+) gapped /g)].map((m) => Number(m[1]));
      expect(shown).toEqual(events.slice(at).map((e) => e.seq));
    } finally {
      await server.close();
    }
  });

  it('ignores a resync and a snapshot of the old subscription still in flight too: the resume shows every event once', async () => {
    const id = 'gapped-again';
    const events = await eventsOf(id);
    const at = 2;
    const event = (e: ProgressEvent) => ({ type: 'progress_event', upgradeId: id, data: e });
    // The old subscription's frames after the gap end with a resync and the snapshot that follows it
    // (the server found a hole of its own): both are on the wire before the client's resume is read.
    const server = await protocolServer((msg) => {
      if (msg.type !== 'subscribe') return [];
      if (msg.sinceSeq === undefined) {
        return [
          { type: 'subscribed', upgradeId: id, exists: true },
          { type: 'snapshot', upgradeId: id, seq: at, data: replayEvents(events.slice(0, at)) },
          ...events.slice(at + 1, at + 3).map(event),
          { type: 'resync', upgradeId: id, reason: 'history gone', exists: true },
          { type: 'snapshot', upgradeId: id, seq: events.length, data: replayEvents(events) },
        ];
      }
      return [{ type: 'subscribed', upgradeId: id, exists: true }, ...events.filter((e) => e.seq > msg.sinceSeq!).map(event)];
    });
    try {
      const result = await run('watch', server.url, id);
      expect(result).toMatchObject({ code: 0, err: '' });
      expect(result.out).not.toContain('resync:');
      expect(server.requests).toEqual([
        { type: 'subscribe', connection: 1 },
        { type: 'subscribe', sinceSeq: at, connection: 1 },
      ]);
      const shown = [...result.out.matchAll(/ #(\d+) gapped-again /g)].map((m) => Number(m[1]));
      expect(shown).toEqual(events.slice(at).map((e) => e.seq));
    } finally {
      await server.close();
    }
  });

  it('reconnects when the resume after a gap is never answered, rather than showing a frozen state for ever', async () => {
    const id = 'gapped-mute';
    const events = await eventsOf(id);
    const at = 2;
    const event = (e: ProgressEvent) => ({ type: 'progress_event', upgradeId: id, data: e });
    // The first connection sends a gap and then answers nothing more (pings still are: ws answers
    // them itself); the next one serves the resume.
    const server = await protocolServer((msg, { connection }) => {
      if (msg.type !== 'subscribe') return [];
      if (connection === 1) {
        if (msg.sinceSeq !== undefined) return [];
        return [{ type: 'subscribed', upgradeId: id, exists: true }, { type: 'snapshot', upgradeId: id, seq: at, data: replayEvents(events.slice(0, at)) }, ...events.slice(at + 1).map(event)];
      }
      return [{ type: 'subscribed', upgradeId: id, exists: true }, ...events.filter((e) => e.seq > (msg.sinceSeq ?? 0)).map(event)];
    });
    const out = new Capture();
    const controller = new AbortController();
    // Generous: the alternative (no bound on the wait for `subscribed`) is never.
    const stop = setTimeout(() => controller.abort(), 20_000);
    try {
      const state = await watchWebSocket(server.url, id, { view: new LiveView({ out: out as unknown as NodeJS.WriteStream }), signal: controller.signal, heartbeatMs: 200 }).finally(() => clearTimeout(stop));
      expect(controller.signal.aborted, out.text).toBe(false);
      expect(state?.status).toBe('completed');
      expect(out.text).toMatch(/no answer to the subscribe from ws:\/\/127\.0\.0\.1:\d+\/ws within 0\.2 s; reconnecting/);
      expect(server.requests.filter((r) => r.connection === 2)).toEqual([{ type: 'subscribe', sinceSeq: at, connection: 2 }]);
      const shown = [...out.text.matchAll(/ #(\d+) gapped-mute /g)].map((m) => Number(m[1]));
      expect(shown).toEqual(events.slice(at).map((e) => e.seq));
    } finally {
      controller.abort();
      await server.close();
    }
  });
});

describe('progress watch ws://: a resume after a gap that the server answers with an error', () => {
  it('asks again on the same connection while the server answers, rather than taking its errors for no answer', async () => {
    const id = 'gapped-unserved';
    const events = await eventsOf(id);
    const at = 2;
    const event = (e: ProgressEvent) => ({ type: 'progress_event', upgradeId: id, data: e });
    // The first subscribe: a snapshot and the events after it but one. The resume is answered, at
    // once each time, with the store's failure three times (the command asks again after 0.5, 1 and
    // 2 s: longer than two heartbeats in all), and then served.
    let refused = 0;
    const server = await protocolServer((msg) => {
      if (msg.type !== 'subscribe') return [];
      if (msg.sinceSeq === undefined) {
        return [{ type: 'subscribed', upgradeId: id, exists: true }, { type: 'snapshot', upgradeId: id, seq: at, data: replayEvents(events.slice(0, at)) }, ...events.slice(at + 1).map(event)];
      }
      if (refused++ < 3) return [{ type: 'error', code: 'STORE_UNAVAILABLE', message: 'could not read the store', upgradeId: id }];
      return [{ type: 'subscribed', upgradeId: id, exists: true }, ...events.filter((e) => e.seq > (msg.sinceSeq ?? 0)).map(event)];
    });
    const out = new Capture();
    const controller = new AbortController();
    // Generous: the alternative (never served) is never.
    const stop = setTimeout(() => controller.abort(), 20_000);
    try {
      const state = await watchWebSocket(server.url, id, { view: new LiveView({ out: out as unknown as NodeJS.WriteStream }), signal: controller.signal, heartbeatMs: 700 }).finally(() => clearTimeout(stop));
      expect(controller.signal.aborted, out.text).toBe(false);
      expect(state?.status).toBe('completed');
      // Each refusal answered the subscribe: not "no answer", and no reconnect.
      expect(out.text).not.toMatch(/no answer/);
      expect(server.requests.map((r) => r.connection)).toEqual([1, 1, 1, 1, 1]);
      const shown = [...out.text.matchAll(/ #(\d+) gapped-unserved /g)].map((m) => Number(m[1]));
      expect(shown).toEqual(events.slice(at).map((e) => e.seq));
    } finally {
      controller.abort();
      await server.close();
    }
  });
});
