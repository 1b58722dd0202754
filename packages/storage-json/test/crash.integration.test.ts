import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ProgressTracker, replayEvents, type ProgressEvent } from '@progress/core';
import { JsonFileStore } from '../src/index.js';
import { kill, spawnChild, waitForLine } from './child/spawn.js';
import { removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

const ROUNDS = 15;

it(`loses no acknowledged event and leaves no gap when the writer is SIGKILLed (${ROUNDS} rounds)`, async () => {
  const dir = await tempDir('crash');
  /** Every acknowledged event: seq -> eventId. */
  const acked = new Map<number, string>();
  let lastCount = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const child = spawnChild('crash-writer.ts', [dir, 'crash-1']);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await waitForLine(child, /^ready$/);
    // Varied moments: right away, mid-burst, after a good many bursts.
    await new Promise((r) => setTimeout(r, (round * 73) % 450));
    await kill(child);
    for (const line of out.split('\n')) {
      const m = /^(\d+) (\S+)$/.exec(line);
      if (m) {
        const known = acked.get(Number(m[1]));
        if (known !== undefined) expect(known).toBe(m[2]);
        acked.set(Number(m[1]), m[2]!);
      }
    }
    const reader = new JsonFileStore({ directory: dir });
    const events: ProgressEvent[] = [];
    for await (const e of reader.readEvents('crash-1', 0)) events.push(e);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(new Set(events.map((e) => e.eventId)).size).toBe(events.length);
    for (const [seq, id] of acked) expect([seq, events[seq - 1]?.eventId]).toEqual([seq, id]);
    const state = await reader.load('crash-1');
    expect(JSON.parse(JSON.stringify(state))).toEqual(JSON.parse(JSON.stringify(replayEvents(events))));
    await reader.close();
    expect(events.length).toBeGreaterThanOrEqual(lastCount);
    lastCount = events.length;
  }
  expect(acked.size).toBeGreaterThan(ROUNDS);

  // A reopened tracker goes on from there.
  const store = new JsonFileStore({ directory: dir });
  const tracker = await ProgressTracker.open({ upgradeId: 'crash-1', planId: 'crash', clusterName: 'crash-test', store });
  const before = tracker.progress.lastSeq;
  expect(before).toBe(lastCount);
  const ev = await tracker.updateTaskProgress('t', 100);
  expect(ev.seq).toBe(before + 1);
  await tracker.completeTask('t');
  await tracker.completeUpgrade();
  await tracker.close();
  await store.close();
  const lines = (await readFile(join(dir, 'upgrades', 'crash-1', 'events.jsonl'), 'utf8')).trim().split('\n');
  expect(lines.length).toBe(before + 3);
  // What the killed writers left of their snapshot writes went with the next writer.
  expect((await readdir(join(dir, 'upgrades', 'crash-1'))).filter((n) => n.endsWith('.tmp'))).toEqual([]);
}, 60_000);
