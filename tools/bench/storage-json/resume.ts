import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { JsonFileStore } from '@progress/storage-json';
import { scanLog, type ScanResult } from '../../../packages/storage-json/src/log-scanner.js';
import { buildHistory, scratch } from './workload.js';

const ms = (from: bigint): number => Number(process.hrtime.bigint() - from) / 1e6;

/**
 * A client resuming `behind` events below the snapshot (a ws-server client a few hundred events
 * behind) on an upgrade of `count` events, snapshot every 1,000: readEvents as it is (a seek below the
 * snapshot), against the read from the log's start it made before (the same scan, from byte 0,
 * counting the lines up to the sought seq). Median ms of `runs` each, taken in turns.
 */
export async function resumeRead(count = 100_000, behind = 500, runs = 9): Promise<{ before: number; after: number; logMB: number; afterSeq: number }> {
  const { dir, done } = await scratch('resume');
  try {
    const seed = new JsonFileStore({ directory: dir, durability: 'none', snapshotEvery: 1000 });
    await buildHistory('bench', count, 100, (events, expected, state) => seed.append('bench', events, expected, state));
    await seed.close();
    const up = join(dir, 'upgrades', 'bench');
    const snap = JSON.parse(await readFile(join(up, 'snapshot.json'), 'utf8')) as { lastSeq: number; offset: number };
    const afterSeq = snap.lastSeq - behind;
    const logMB = (await readFile(join(up, 'events.jsonl'))).length / 2 ** 20;
    const store = new JsonFileStore({ directory: dir });
    const before: number[] = [];
    const after: number[] = [];
    for (let run = 0; run < runs + 1; run++) {
      let t = process.hrtime.bigint();
      const result: ScanResult = { endOffset: 0, lastSeq: 0 };
      let n = 0;
      for await (const _ of scanLog({ upgradeId: 'bench', path: join(up, 'events.jsonl'), start: 0, firstSeq: 1, skipThroughSeq: afterSeq, durable: snap.offset }, result)) n++;
      const b = ms(t);
      t = process.hrtime.bigint();
      let m = 0;
      for await (const _ of store.readEvents('bench', afterSeq)) m++;
      const a = ms(t);
      if (n !== count - afterSeq || m !== n) throw new Error(`read ${n} and ${m} events, expected ${count - afterSeq}`);
      // The first run of each warms the page cache and the JIT.
      if (run > 0) {
        before.push(b);
        after.push(a);
      }
    }
    await store.close();
    const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    return { before: median(before), after: median(after), logMB, afterSeq };
  } finally {
    await done();
  }
}
