import { appendFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, expect, it } from 'vitest';
import { replayEvents, type ProgressEvent } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { JsonFileStore } from '../src/index.js';
import { encodeEvents, stampWriteOffset } from '../src/record-codec.js';
import { removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

async function collect(it: AsyncIterable<ProgressEvent>): Promise<ProgressEvent[]> {
  const out: ProgressEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

const json = (v: unknown): unknown => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

type Op = { kind: 'append'; size: number } | { kind: 'reopen' } | { kind: 'tear'; bytes: number } | { kind: 'zeroed'; size: number; zeros: number };

it('loads the live state and replays any seq, whatever the batches, snapshots, reopens, torn tails and torn writes', async () => {
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('append' as const), size: fc.integer({ min: 1, max: 40 }) }) },
    { weight: 2, arbitrary: fc.constant({ kind: 'reopen' as const }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('tear' as const), bytes: fc.integer({ min: 1, max: 300 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('zeroed' as const), size: fc.integer({ min: 1, max: 20 }), zeros: fc.integer({ min: 1, max: 4000 }) }) },
  );
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 25 }), fc.array(op, { minLength: 1, maxLength: 12 }), fc.nat(), async (snapshotEvery, ops, pick) => {
      const directory = await tempDir('prop');
      const log = join(directory, 'upgrades', 'p1', 'events.jsonl');
      let store = new JsonFileStore({ directory, snapshotEvery, durability: 'none' });
      const f = new EventFactory('p1');
      const all: ProgressEvent[] = [];
      // Whether the log ends torn: a writer cuts that off before it writes, so a crash cannot leave
      // another torn write behind it until an append has opened a writer.
      let torn = false;
      try {
        for (const o of ops) {
          if (o.kind === 'append') {
            const expected = f.lastSeq;
            const events = f.batch(o.size);
            await store.append('p1', events, expected, f.state!);
            all.push(...events);
            torn = false;
          } else {
            await store.close();
            // A crash mid-append leaves part of a line (no newline) at the end.
            const tear = o.kind !== 'reopen' && all.length > 0 && !torn;
            if (tear) torn = true;
            if (tear && o.kind === 'tear') await appendFile(log, '{"c":"12345678","e":{"seq":'.concat('9'.repeat(o.bytes)));
            // A power loss mid-write can leave the start of a write as zeros (blocks allocated, not
            // written) and the rest of it sound: none of that write was acknowledged.
            if (tear && o.kind === 'zeroed') {
              const ghost = new EventFactory('p1');
              ghost.state = structuredClone(f.state!);
              const lines = encodeEvents(ghost.batch(o.size));
              stampWriteOffset(lines, (await stat(log)).size);
              await appendFile(log, lines.fill(0, 0, Math.min(o.zeros, lines.length)));
            }
            store = new JsonFileStore({ directory, snapshotEvery, durability: 'none' });
          }
          const loaded = await store.load('p1');
          expect(json(loaded)).toEqual(json(f.state));
        }
        const k = all.length === 0 ? 0 : pick % (all.length + 1);
        const read = await collect(store.readEvents('p1', k));
        expect(read.map((e) => e.seq)).toEqual(all.slice(k).map((e) => e.seq));
        expect(json(replayEvents(await collect(store.readEvents('p1', 0))))).toEqual(json(f.state));
      } finally {
        await store.close();
      }
    }),
    { numRuns: 40 },
  );
}, 60_000);
