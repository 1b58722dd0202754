import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { replayEvents, type ProgressEvent } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { JsonFileStore } from '../src/index.js';
import { crc32Hex } from '../src/checksum.js';
import { lineNear, scanStats } from '../src/log-scanner.js';
import { encodeEvents, encodeSnapshot } from '../src/record-codec.js';
import { removeTempDirs, tempDir } from './helpers.js';

// readEvents below the snapshot's seq (a ws-server client resuming a few hundred events behind)
// seeks by byte position in the part of the log the snapshot covers, instead of reading it from its
// start; anything odd it meets there sends it back to the start.

afterAll(removeTempDirs);

async function collect(it: AsyncIterable<ProgressEvent>): Promise<ProgressEvent[]> {
  const out: ProgressEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

/** A small deterministic pseudo-random sequence (the same log on every run). */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

/**
 * `n` events of upgrade u1 whose lines differ in length (messages of `minMsg` to `minMsg + spread`
 * bytes; with `huge`, every `huge.every`th of `huge.bytes`).
 */
function makeEvents(n: number, minMsg: number, spread: number, seed = 7, huge?: { every: number; bytes: number }): { f: EventFactory; events: ProgressEvent[] } {
  const rand = prng(seed);
  const f = new EventFactory('u1');
  const events = f.batch(3); // created, started, task t1
  while (events.length < n) {
    const length = huge && events.length % huge.every === 0 ? huge.bytes : minMsg + Math.floor(rand() * spread);
    events.push(f.next('task.progress', { taskId: 't1', percentage: events.length % 101, message: 'm'.repeat(length) }));
  }
  return { f, events };
}

/** A folder holding upgrade u1 with `n` events, appended through the store in batches of 1 to 40 (snapshots every `snapshotEvery`). */
async function seeded(
  n: number,
  snapshotEvery: number,
  minMsg: number,
  spread: number,
  huge?: { every: number; bytes: number },
): Promise<{ dir: string; log: string; events: ProgressEvent[]; snap: { lastSeq: number; offset: number } }> {
  const dir = await tempDir('read-seek');
  const { events } = makeEvents(n, minMsg, spread, 7, huge);
  const rand = prng(99);
  const store = new JsonFileStore({ directory: dir, snapshotEvery, durability: 'none' });
  const states = replayStates(events);
  for (let at = 0; at < n; ) {
    const size = Math.min(1 + Math.floor(rand() * 40), n - at);
    await store.append('u1', events.slice(at, at + size), at, states[at + size - 1]!);
    at += size;
  }
  await store.close();
  const up = join(dir, 'upgrades', 'u1');
  const snap = JSON.parse(await readFile(join(up, 'snapshot.json'), 'utf8')) as { lastSeq: number; offset: number };
  return { dir, log: join(up, 'events.jsonl'), events, snap };
}

/** The state after each event. */
function replayStates(events: ProgressEvent[]): ReturnType<typeof replayEvents>[] {
  const out = [];
  for (let i = 1; i <= events.length; i++) out.push(replayEvents(events.slice(0, i)));
  return out;
}

/** The log's events, decoded here line by line: what a read from the start gives. */
async function reference(log: string): Promise<ProgressEvent[]> {
  const lines = (await readFile(log, 'utf8')).split('\n').filter((l) => l.length > 0);
  return lines.map((l) => (JSON.parse(l) as { e: ProgressEvent }).e);
}

const ids = (events: ProgressEvent[]): string => events.map((e) => `${e.seq}:${e.eventId}`).join(',');

/**
 * Rewrites the lines of seqs `from` to `to` (1-based) with `edit` of their event JSON, of the same
 * length (the test says so): re-checksummed (sound lines), or with their old checksum (`damage`).
 */
async function rewriteLines(log: string, from: number, to: number, edit: (json: string, seq: number) => string, damage = false): Promise<void> {
  const lines = (await readFile(log, 'utf8')).split('\n');
  for (let seq = from; seq <= to; seq++) {
    const line = lines[seq - 1]!;
    const m = /^(\{"c":")([0-9a-f]{8})(".*?"e":)(.*)\}$/.exec(line)!;
    const json = edit(m[4]!, seq);
    expect(json.length).toBe(m[4]!.length);
    lines[seq - 1] = `${m[1]}${damage ? m[2] : crc32Hex(json)}${m[3]}${json}}`;
  }
  await writeFile(log, lines.join('\n'));
}

describe('readEvents below the snapshot', () => {
  it('seeks near the sought seq: a read 500 events below the snapshot walks only the lines near them, not the log from its start', async () => {
    const n = 4000;
    const { dir, log, snap } = await seeded(n, 1000, 150, 200);
    expect(snap.lastSeq).toBeGreaterThan(3000);
    const all = await reference(log);
    const store = new JsonFileStore({ directory: dir });
    const after = snap.lastSeq - 500;
    scanStats.lines = 0;
    const read = await collect(store.readEvents('u1', after));
    expect(ids(read)).toBe(ids(all.slice(after)));
    // The lines from the sought one on, and those of the few KiB it lands before it: nowhere near the
    // thousands a read from the start walks over.
    expect(scanStats.lines).toBeLessThan(n - after + 500);
    scanStats.lines = 0;
    expect(ids(await collect(store.readEvents('u1', after, 10)))).toBe(ids(all.slice(after, after + 10)));
    expect(scanStats.lines).toBeLessThan(500);
    await store.close();
  });

  it('does not read the log far before the sought seq (zeros in line 20 go unseen), as a read from the snapshot does not', async () => {
    const { dir, log, snap } = await seeded(3000, 1000, 150, 200);
    const all = await reference(log);
    const buf = await readFile(log);
    let at = 0;
    for (let i = 1; i < 20; i++) at = buf.indexOf(0x0a, at) + 1;
    buf.fill(0, at + 60, at + 80);
    await writeFile(log, buf);
    const store = new JsonFileStore({ directory: dir });
    const after = snap.lastSeq - 300;
    expect(ids(await collect(store.readEvents('u1', after)))).toBe(ids(all.slice(after)));
    // A read from the start passes over it, and sees them.
    await expect(collect(store.readEvents('u1', 5))).rejects.toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining('line 20 of') });
    await store.close();
  });

  it('gives exactly the events after every seq, on a log of several snapshots and lines of many lengths', async () => {
    const n = 1000;
    const { dir, log, snap } = await seeded(n, 150, 0, 2500);
    expect(snap.lastSeq).toBeGreaterThan(850);
    const all = await reference(log);
    expect(all.map((e) => e.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    const store = new JsonFileStore({ directory: dir });
    // Lines walked over besides the ones read (those after `after`).
    let extra = 0;
    for (let after = 0; after <= n; after++) {
      scanStats.lines = 0;
      const read = await collect(store.readEvents('u1', after));
      extra += scanStats.lines - (n - after);
      if (ids(read) !== ids(all.slice(after))) expect.fail(`after ${after}: got seqs ${read.map((e) => e.seq).join(',')}`);
    }
    // Reads from the start below the snapshot's seq would walk the `after` lines before the sought
    // one each time (some 400,000 in all); a seek, the few dozen lines of at most 64 KiB before it.
    expect(extra).toBeLessThan(150 * (n + 1));
    await store.close();
  }, 60_000);

  it('gives exactly the events after every seq when some lines are longer than the range a seek stops at (64 KiB)', async () => {
    const n = 700;
    // Short lines, and every 23rd of 200 KB: probes that find no line start before the range's end.
    const { dir, log, snap } = await seeded(n, 100, 0, 300, { every: 23, bytes: 200_000 });
    expect(snap.lastSeq).toBeGreaterThan(600);
    const all = await reference(log);
    const store = new JsonFileStore({ directory: dir });
    let extra = 0;
    for (let after = 0; after <= n; after++) {
      scanStats.lines = 0;
      const read = await collect(store.readEvents('u1', after, 30));
      extra += scanStats.lines - Math.min(30, n - after);
      if (ids(read) !== ids(all.slice(after, after + 30))) expect.fail(`after ${after}: got seqs ${read.map((e) => e.seq).join(',')}`);
    }
    expect(extra).toBeLessThan(60 * (n + 1));
    await store.close();
  }, 60_000);

  it('keeps to the limit, from every seq', async () => {
    const n = 1200;
    const { dir, log } = await seeded(n, 200, 100, 600);
    const all = await reference(log);
    const store = new JsonFileStore({ directory: dir });
    for (let after = 0; after <= n; after++) {
      const limit = 1 + (after % 9);
      const read = await collect(store.readEvents('u1', after, limit));
      if (ids(read) !== ids(all.slice(after, after + limit))) expect.fail(`after ${after}, limit ${limit}: got seqs ${read.map((e) => e.seq).join(',')}`);
    }
    await store.close();
  }, 60_000);

  for (const [name, edit, damage] of [
    ['damaged (a flipped byte)', (json: string) => json.replace('"message":"m', '"message":"X'), true],
    ['of another upgrade', (json: string) => json.replace('"upgradeId":"u1"', '"upgradeId":"u2"'), false],
    ['holding seqs that do not fit their place', (json: string, seq: number) => json.replace(`"seq":${seq},`, `"seq":${9000 + (seq % 1000)},`), false],
    // A seq a sound log holds, but only on the line at the snapshot's offset: a probe must hold one
    // strictly between those of the lines around it.
    ['holding the seq of the line at the snapshot\'s offset', (json: string, seq: number, next: number) => json.replace(`"seq":${seq},`, `"seq":${next},`), false],
  ] as const) {
    it(`falls back to reading from the start when the lines it probes are ${name}, and still gives the right events`, async () => {
      const n = 4000;
      const { dir, log, snap } = await seeded(n, 1000, 150, 200);
      const all = await reference(log);
      const after = snap.lastSeq - 200;
      // Every line from seq 1000 to 50 before the sought one: every probe but the nearest lands on one.
      // A read from the start only counts them (they come before the sought seq).
      await rewriteLines(log, 1000, after - 50, (json, seq) => edit(json, seq, snap.lastSeq + 1), damage);
      const store = new JsonFileStore({ directory: dir });
      scanStats.lines = 0;
      expect(ids(await collect(store.readEvents('u1', after)))).toBe(ids(all.slice(after)));
      expect(scanStats.lines).toBeGreaterThanOrEqual(n);
      // The snapshot's own read, and load(), never go there.
      expect(ids(await collect(store.readEvents('u1', snap.lastSeq)))).toBe(ids(all.slice(snap.lastSeq)));
      expect((await store.load('u1'))!.lastSeq).toBe(n);
      await store.close();
    });
  }

  it('starts at the sought line itself when a probe lands in the long line just before it', async () => {
    const n = 3500;
    // Messages of 150 bytes, but seqs 1001, 2001 and 3001 of 300 KB: the probe aimed some 32 KiB
    // before the line after one of those lands in the long line, and finds the sought line next.
    const { dir, log, snap } = await seeded(n, 1000, 150, 0, { every: 1000, bytes: 300_000 });
    expect(snap.lastSeq).toBeGreaterThan(2100);
    const all = await reference(log);
    const store = new JsonFileStore({ directory: dir });
    for (const after of [1001, 2001]) {
      scanStats.lines = 0;
      expect(ids(await collect(store.readEvents('u1', after)))).toBe(ids(all.slice(after)));
      // The scan starts at the line found (not a byte into it, which reads as damage there and sends
      // the read back to the start).
      expect(scanStats.lines).toBeLessThan(n - after + 100);
    }
    await store.close();
  });

  it('reads from the start when the lines before the sought seq are numbered one short (the seek lands on one of them), and gives the right events', async () => {
    const n = 4000;
    const { dir, log, snap } = await seeded(n, 1000, 150, 200);
    const all = await reference(log);
    const after = snap.lastSeq - 300;
    // Seq 1001..after hold 1000..after-1: sound lines, rising, so every probe among them fits; the
    // scan from the one it lands on then counts the sought line one short, and finds it misplaced.
    await rewriteLines(log, 1001, after, (json, seq) => json.replace(`"seq":${seq},`, `"seq":${seq - 1},`));
    const store = new JsonFileStore({ directory: dir });
    expect(ids(await collect(store.readEvents('u1', after)))).toBe(ids(all.slice(after)));
    expect(ids(await collect(store.readEvents('u1', after, 3)))).toBe(ids(all.slice(after, after + 3)));
    await store.close();
  });

  it('seeks in a log of lines from before the write offset ("w"), and of both formats', async () => {
    const n = 3000;
    const { events } = makeEvents(n, 150, 200, 11);
    const states = replayStates(events);
    for (const oldUpTo of [n, 1700]) {
      const dir = await tempDir('read-seek-old');
      const up = join(dir, 'upgrades', 'u1');
      await mkdir(up, { recursive: true });
      // Old lines: `{"c":"<crc32>","e":<event JSON>}`, the same checksum.
      const lines = encodeEvents(events)
        .toString('utf8')
        .split('\n')
        .slice(0, n)
        .map((l, i) => (i < oldUpTo ? l.replace(/,"w":"[0-9a-f]{13}"/, '') : l));
      const text = lines.join('\n') + '\n';
      expect(text).toContain('{"c":"');
      expect(lines[0]).not.toContain('"w":');
      const lastSeq = 2900;
      const offset = Buffer.byteLength(lines.slice(0, lastSeq).join('\n') + '\n');
      await writeFile(join(up, 'events.jsonl'), text);
      await writeFile(join(up, 'snapshot.json'), encodeSnapshot({ v: 1, lastSeq, offset }, JSON.stringify(states[lastSeq - 1])));
      const store = new JsonFileStore({ directory: dir });
      expect((await store.load('u1'))!.lastSeq).toBe(n);
      for (const after of [0, 1, 2, 500, 1699, 1700, 1701, 2399, 2600, 2899, 2900, 2999, 3000]) {
        scanStats.lines = 0;
        const read = await collect(store.readEvents('u1', after));
        expect(ids(read)).toBe(ids(events.slice(after)));
        if (after >= 1000 && after < lastSeq) expect(scanStats.lines).toBeLessThan(n - after + 500);
      }
      await store.close();
    }
  });
});

describe('lineNear: how many reads a seek costs', () => {
  /**
   * The most reads one seek made (over targets spread through the log), on a log of `n` lines whose
   * message is `length(i)` bytes long for the event at index i; checking each line found.
   */
  async function mostReads(n: number, length: (i: number) => number): Promise<{ most: number; size: number }> {
    const f = new EventFactory('u1');
    const events = f.batch(3);
    while (events.length < n) events.push(f.next('task.progress', { taskId: 't1', percentage: events.length % 101, message: 'm'.repeat(length(events.length)) }));
    const buf = encodeEvents(events);
    const starts = [0];
    for (let at = buf.indexOf(0x0a); at >= 0; at = buf.indexOf(0x0a, at + 1)) starts.push(at + 1);
    const path = join(await tempDir('line-near'), 'events.jsonl');
    await writeFile(path, buf);
    const handle = await open(path, 'r');
    // The real file's reads, counted.
    const read = handle.read.bind(handle) as (...args: unknown[]) => Promise<unknown>;
    let reads = 0;
    handle.read = ((...args: unknown[]) => {
      reads++;
      return read(...args);
    }) as typeof handle.read;
    let most = 0;
    try {
      for (let target = 2; target < n; target += 97) {
        reads = 0;
        const near = await lineNear(handle, 'u1', { offset: starts[n - 1]!, seq: n }, target);
        if (near && (near.offset !== starts[near.seq - 1] || near.seq > target)) expect.fail(`target ${target}: got ${JSON.stringify(near)}`);
        most = Math.max(most, reads);
      }
    } finally {
      await handle.close();
    }
    return { most, size: buf.length };
  }

  it('lines of about the same length: one probe, aimed by their mean length, lands near the sought line', async () => {
    // Seqs of 1 to 5 digits: the lines differ by a few bytes.
    const { most } = await mostReads(15_000, () => 100);
    expect(most).toBe(1);
  });

  it('lines of very different lengths (the last 2% of 20 KB): the range halves every other probe at worst', async () => {
    const n = 15_000;
    const { most, size } = await mostReads(n, (i) => (i > n * 0.98 ? 20_000 : 20));
    // Aimed by the mean length alone, probes land far off the sought line again and again (some
    // 370 reads); halving every other probe, a seek takes at most 2 log2(size / 64 KiB) probes, of a
    // few reads each in lines that long.
    expect(most).toBeLessThan(6 * 2 * Math.log2(size / 65_536));
  });
});

