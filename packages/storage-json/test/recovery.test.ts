import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, readFile, readdir, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProgressTracker, replayEvents, silentLogger, type ProgressEvent } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { JsonFileStore } from '../src/index.js';
import { encodeEventLine } from '../src/record-codec.js';
import { throwingLogger } from '../../../tools/test-utils/src/logger.js';
import { procIdentity, removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

async function collect(it: AsyncIterable<ProgressEvent>): Promise<ProgressEvent[]> {
  const out: ProgressEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

/** A folder holding one upgrade of `n` events written in batches of 7. */
async function seeded(n: number, snapshotEvery = 1000): Promise<{ dir: string; f: EventFactory; log: string }> {
  const dir = await tempDir('recovery');
  const store = new JsonFileStore({ directory: dir, snapshotEvery, durability: 'none' });
  const f = new EventFactory('u1');
  while (f.lastSeq < n) {
    const expected = f.lastSeq;
    await store.append('u1', f.batch(Math.min(7, n - expected)), expected, f.state!);
  }
  await store.close();
  return { dir, f, log: join(dir, 'upgrades', 'u1', 'events.jsonl') };
}

/** Flips one byte inside the JSON of line `line` (1-based). */
async function damageLine(path: string, line: number): Promise<void> {
  const buf = await readFile(path);
  let at = 0;
  for (let i = 1; i < line; i++) at = buf.indexOf(0x0a, at) + 1;
  const target = buf.indexOf(Buffer.from('"message":"'), at) + 12;
  buf[target] = buf[target] === 0x58 ? 0x59 : 0x58;
  await writeFile(path, buf);
}

describe('damage in the middle of a log', () => {
  it('is refused with DATA_CORRUPTED naming the file and line, never a fresh state, and the file is left as it was', async () => {
    const { dir, log } = await seeded(50);
    await damageLine(log, 20);
    const before = await readFile(log);
    const store = new JsonFileStore({ directory: dir });
    const expected = { code: 'DATA_CORRUPTED', message: expect.stringMatching(/line 20 of .*events\.jsonl is damaged/) };
    await expect(store.load('u1')).rejects.toMatchObject(expected);
    await expect(ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store })).rejects.toMatchObject(expected);
    await expect(collect(store.readEvents('u1', 0))).rejects.toMatchObject(expected);
    expect((await collect(store.readEvents('u1', 30))).map((e) => e.seq)[0]).toBe(31);
    const more = new EventFactory('u1');
    more.batch(50);
    await expect(store.append('u1', more.batch(1), 50, more.state!)).rejects.toMatchObject(expected);
    expect(await store.list()).toEqual([]);
    await store.close();
    expect(await readFile(log)).toEqual(before);
  });

  it('is refused past the snapshot, and still found by a replay from the start before it', async () => {
    const { dir, log } = await seeded(45, 10);
    await damageLine(log, 43);
    const store = new JsonFileStore({ directory: dir });
    await expect(store.load('u1')).rejects.toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining('line 43 of') });
    await store.close();

    const other = await seeded(45, 10);
    await damageLine(other.log, 5);
    const before = await readFile(other.log);
    const again = new JsonFileStore({ directory: other.dir });
    // The snapshot (seq 40) is sound, so the state loads; the damaged line is reported on replay.
    expect(JSON.parse(JSON.stringify(await again.load('u1')))).toEqual(JSON.parse(JSON.stringify(other.f.state)));
    await expect(collect(again.readEvents('u1', 0))).rejects.toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining('line 5 of') });
    await again.close();
    expect(await readFile(other.log)).toEqual(before);
  });

  it('refuses a bad line that is followed by a good one, even near the end', async () => {
    const { dir, log } = await seeded(12);
    await damageLine(log, 11);
    const store = new JsonFileStore({ directory: dir });
    await expect(store.load('u1')).rejects.toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining('line 11 of') });
    await store.close();
  });

  it('replays the whole log when the snapshot is damaged', async () => {
    const { dir, f } = await seeded(25, 10);
    const snap = join(dir, 'upgrades', 'u1', 'snapshot.json');
    const text = await readFile(snap, 'utf8');
    await writeFile(snap, text.replace('"upgradeId":"u1"', '"upgradeId":"u2"'));
    const store = new JsonFileStore({ directory: dir });
    expect(JSON.parse(JSON.stringify(await store.load('u1')))).toEqual(JSON.parse(JSON.stringify(f.state)));
    await store.close();
  });

  it('replays it with a logger that throws (a closed transport) too: the warning cannot fail the load', async () => {
    const { dir, f } = await seeded(25, 10);
    const snap = join(dir, 'upgrades', 'u1', 'snapshot.json');
    await writeFile(snap, (await readFile(snap, 'utf8')).replace('"upgradeId":"u1"', '"upgradeId":"u2"'));
    const { logger, calls } = throwingLogger();
    const store = new JsonFileStore({ directory: dir, logger });
    expect(JSON.parse(JSON.stringify(await store.load('u1')))).toEqual(JSON.parse(JSON.stringify(f.state)));
    expect(calls.map((c) => c.level)).toEqual(['warn']);
    await store.close();
    expect(() => new JsonFileStore({ directory: dir, logger: { warn() {} } as never })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe('a damaged snapshot header in readEvents', () => {
  // readEvents reads only the snapshot's first bytes (seq and offset), which its checksum covers
  // only together with the whole state: it must not skip events or report sound lines as damaged.
  const cases: Array<[string, number, (snap: string, logSize: number) => string, number, number[]]> = [
    // 25 events in batches of 7: the snapshot is at seq 21.
    ['a lastSeq too low', 25, (t) => t.replace('"lastSeq":21,', '"lastSeq":19,'), 19, [20, 21, 22, 23, 24, 25]],
    ['a lastSeq too high', 25, (t) => t.replace('"lastSeq":21,', '"lastSeq":23,'), 23, [24, 25]],
    ['an offset at the end of the log', 25, (t, size) => t.replace(/"offset":\d+,/, `"offset":${size},`), 21, [22, 23, 24, 25]],
    ['an offset inside a line', 25, (t) => t.replace(/"offset":(\d+),/, (_, n: string) => `"offset":${Number(n) - 5},`), 21, [22, 23, 24, 25]],
    // 20 events: the snapshot is at the end of the log (the reviewer's case).
    ['a lastSeq too low, at the end of the log', 20, (t) => t.replace('"lastSeq":20,', '"lastSeq":19,'), 19, [20]],
    ['a lastSeq too high, at the end of the log', 20, (t) => t.replace('"lastSeq":20,', '"lastSeq":21,'), 19, [20]],
  ];
  for (const [name, n, damage, after, expected] of cases) {
    it(`(${name}) is ignored and the log read from its start`, async () => {
      const { dir, log } = await seeded(n, 10);
      const snap = join(dir, 'upgrades', 'u1', 'snapshot.json');
      const text = await readFile(snap, 'utf8');
      const damaged = damage(text, (await readFile(log)).length);
      expect(damaged).not.toBe(text);
      await writeFile(snap, damaged);
      const store = new JsonFileStore({ directory: dir });
      expect((await collect(store.readEvents('u1', after))).map((e) => e.seq)).toEqual(expected);
      expect((await collect(store.readEvents('u1', 0))).map((e) => e.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      expect((await store.load('u1'))!.lastSeq).toBe(n);
      await store.close();
    });
  }

  it('is still used when it fits the log, before more lines or at its end', async () => {
    const { dir, log } = await seeded(25, 10);
    // Damage before the snapshot shows whether a read started from it.
    await damageLine(log, 3);
    const store = new JsonFileStore({ directory: dir, snapshotEvery: 10 });
    expect((await collect(store.readEvents('u1', 21))).map((e) => e.seq)).toEqual([22, 23, 24, 25]);
    await expect(collect(store.readEvents('u1', 0))).rejects.toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining('line 3 of') });
    const f = new EventFactory('u1');
    f.state = (await store.load('u1'))!;
    await store.append('u1', f.batch(5), 25, f.state!);
    await store.close();
    // The new snapshot (written after the append, by close at the latest) is at seq 30, the end of the log.
    expect(JSON.parse(await readFile(join(dir, 'upgrades', 'u1', 'snapshot.json'), 'utf8')).lastSeq).toBe(30);
    const reader = new JsonFileStore({ directory: dir });
    expect(await collect(reader.readEvents('u1', 30))).toEqual([]);
    expect(await collect(reader.readEvents('u1', 31))).toEqual([]);
    await reader.close();
  });

  // At the end of the log, the header fits only when the line before its offset is a whole line of
  // its seq, newline included. Without it, a read after the snapshot's seq would start there and
  // find nothing, as if the log were sound.
  // Before more lines, a sound line of the next seq at its offset is not enough either.
  for (const [where, n] of [
    ['at the end of the log', 20],
    ['before more lines', 25],
  ] as const) {
    it(`is not read from when the line before its offset lost its newline (${where})`, async () => {
      const { dir, log } = await seeded(n, 10);
      const buf = await readFile(log);
      const { lastSeq, offset } = JSON.parse(await readFile(join(dir, 'upgrades', 'u1', 'snapshot.json'), 'utf8')) as { lastSeq: number; offset: number };
      expect(offset === buf.length).toBe(n === 20);
      buf[offset - 1] = 0x20;
      await writeFile(log, buf);
      const store = new JsonFileStore({ directory: dir });
      await expect(collect(store.readEvents('u1', lastSeq))).rejects.toMatchObject({ code: 'DATA_CORRUPTED' });
      await store.close();
    });
  }

  it("is read from when a read asks for the events after the snapshot's own seq: the log before it is not read", async () => {
    const { dir, log } = await seeded(25, 10);
    expect(JSON.parse(await readFile(join(dir, 'upgrades', 'u1', 'snapshot.json'), 'utf8')).lastSeq).toBe(21);
    // Zeros inside line 3, its newline intact: a read that passes over that line sees them.
    const buf = await readFile(log);
    let at = 0;
    for (let i = 1; i < 3; i++) at = buf.indexOf(0x0a, at) + 1;
    buf.fill(0, at + 60, at + 80);
    await writeFile(log, buf);
    const store = new JsonFileStore({ directory: dir });
    expect((await collect(store.readEvents('u1', 21))).map((e) => e.seq)).toEqual([22, 23, 24, 25]);
    await expect(collect(store.readEvents('u1', 20))).rejects.toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining('line 3 of') });
    await store.close();
  });
});

describe('a torn last line', () => {
  for (const [name, tail] of [
    ['without a newline', (line: string) => line.slice(0, Math.floor(line.length / 2))],
    ['with a bad checksum', (line: string) => line.replace('"c":"', '"c":"0').replace(/"c":"(.{8})./, '"c":"$1')],
    ['of zeros', () => '\0'.repeat(300)],
  ] as const) {
    it(`(${name}) is ignored by a reader and cut back by the writer that holds the lock`, async () => {
      const { dir, log, f } = await seeded(10);
      const next = new EventFactory('u1');
      next.batch(10);
      const line = (await readFile(log, 'utf8')).split('\n')[9]!.replace('"seq":10', '"seq":11');
      await appendFile(log, tail(line) + (name === 'with a bad checksum' ? '\n' : ''));
      const torn = await readFile(log);
      const reader = new JsonFileStore({ directory: dir });
      expect((await reader.load('u1'))!.lastSeq).toBe(10);
      expect((await collect(reader.readEvents('u1', 0))).length).toBe(10);
      expect(await readFile(log)).toEqual(torn);
      await reader.close();

      const store = new JsonFileStore({ directory: dir });
      const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store });
      expect(tracker.progress.lastSeq).toBe(10);
      expect(JSON.parse(JSON.stringify(tracker.progress))).toEqual(JSON.parse(JSON.stringify(f.state)));
      await tracker.updateTaskProgress('t1', 99);
      await tracker.close();
      const lines = (await readFile(log, 'utf8')).split('\n');
      expect(lines.pop()).toBe('');
      expect(lines.map((l) => JSON.parse(l).e.seq)).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
      await store.close();
    });
  }
});

describe('a torn last write', () => {
  // A power loss during a write can leave blocks of it that the file system had allocated but not
  // written: zeros in the middle of the write, with sound lines of the same write after them.
  const BLOCK = 512;
  const up = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;

  /** The byte offset each line of `buf` starts at. */
  const lineStarts = (buf: Buffer): number[] => {
    const starts = [0];
    for (let at = buf.indexOf(0x0a); at >= 0 && at < buf.length - 1; at = buf.indexOf(0x0a, at + 1)) starts.push(at + 1);
    return starts;
  };

  /** `seeded(n)`, then one more write of `last` events: where that write begins. */
  async function withLastWrite(n: number, last: number): Promise<{ dir: string; f: EventFactory; log: string; write: number }> {
    const s = await seeded(n);
    const write = (await readFile(s.log)).length;
    const store = new JsonFileStore({ directory: s.dir, durability: 'none' });
    await store.append('u1', s.f.batch(last), n, s.f.state!);
    await store.close();
    return { ...s, write };
  }

  /** Zeros bytes `from` (inclusive) to `to` of the file at `path`. */
  async function zero(path: string, from: number, to: number): Promise<Buffer> {
    const buf = await readFile(path);
    buf.fill(0, from, to);
    await writeFile(path, buf);
    return buf;
  }

  /** The seq of the line holding byte `offset`: the first damaged line. */
  const lineAt = (buf: Buffer, offset: number): number => lineStarts(buf).filter((s) => s <= offset).length;

  /** Readers leave the file alone and see the events before `firstBad`; the writer cuts the rest and goes on after them. */
  async function expectCutAt(dir: string, log: string, f: EventFactory, firstBad: number): Promise<void> {
    const torn = await readFile(log);
    const good = firstBad - 1;
    const all = await collect(new JsonFileStore({ directory: dir, snapshotEvery: 1000 }).readEvents('u1', 0));
    expect(all.map((e) => e.seq)).toEqual(Array.from({ length: good }, (_, i) => i + 1));
    const reader = new JsonFileStore({ directory: dir });
    expect(JSON.parse(JSON.stringify(await reader.load('u1')))).toEqual(JSON.parse(JSON.stringify(replayEvents(all))));
    await reader.close();
    expect(await readFile(log)).toEqual(torn);
    expect(f.lastSeq).toBeGreaterThan(good);

    const warnings: unknown[] = [];
    const logger = { ...silentLogger, warn: (obj: unknown) => void warnings.push(obj) };
    const store = new JsonFileStore({ directory: dir, logger });
    const tracker = await ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store });
    expect(tracker.progress.lastSeq).toBe(good);
    await tracker.updateTaskProgress('t1', 99);
    await tracker.close();
    await store.close();
    expect(warnings).toContainEqual(expect.objectContaining({ line: firstBad, offset: lineStarts(torn)[firstBad - 1], length: torn.length - lineStarts(torn)[firstBad - 1]! }));
    const lines = (await readFile(log, 'utf8')).split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.map((l) => JSON.parse(l).e.seq)).toEqual(Array.from({ length: good + 1 }, (_, i) => i + 1));
  }

  it('(zeros in its middle, sound lines of it after them) is cut from the first damaged line', async () => {
    const { dir, log, f, write } = await withLastWrite(21, 30);
    const from = up(write + 1);
    const buf = await zero(log, from, from + BLOCK);
    await expectCutAt(dir, log, f, lineAt(buf, from));
  });

  it('(zeros from its first byte) is cut where it begins', async () => {
    const { dir, log, f, write } = await withLastWrite(21, 30);
    await zero(log, write, up(write + 1) + BLOCK);
    await expectCutAt(dir, log, f, 22);
  });

  it('(zeros up to its end) is cut from the first damaged line', async () => {
    const { dir, log, f, write } = await withLastWrite(21, 30);
    const buf = await readFile(log);
    const from = up(write + BLOCK);
    await zero(log, from, buf.length);
    await expectCutAt(dir, log, f, lineAt(buf, from));
  });

  // The write began at byte 0, where nothing was acknowledged yet: the sound line before the zeros
  // belongs to it, so a sound line of it after them is still the rest of that one write.
  it("(zeros in the middle of the log's first write) is cut from the first damaged line", async () => {
    const dir = await tempDir('recovery');
    const f = new EventFactory('u1');
    const store = new JsonFileStore({ directory: dir, durability: 'none' });
    await store.append('u1', f.batch(30), 0, f.state!);
    await store.close();
    const log = join(dir, 'upgrades', 'u1', 'events.jsonl');
    // Past the line that adds the task the tracker then updates.
    const from = 3 * BLOCK;
    const buf = await zero(log, from, from + BLOCK);
    expect(lineAt(buf, from)).toBeGreaterThan(3);
    await expectCutAt(dir, log, f, lineAt(buf, from));
  });

  for (const [name, change] of [
    // Zeros in a write that a later one follows: that write was acknowledged, so this is damage.
    [
      'zeros in an earlier write',
      async (log: string) => {
        const from = up(lineStarts(await readFile(log))[8]!);
        await zero(log, from, from + BLOCK);
      },
    ],
    // Zeros across the end of the write before the last one, into the last: the last write's sound
    // lines show it began after the damage, which was then in an acknowledged write.
    [
      'zeros from the write before the last into the last',
      async (log: string, write: number) => {
        const from = lineStarts(await readFile(log))[20]! + 10;
        expect(up(from + 1) + BLOCK).toBeGreaterThan(write + 10);
        await zero(log, from, up(from + 1) + BLOCK);
      },
    ],
    // A flipped byte is no tear, even in the last write.
    ['a flipped byte in the last write, sound lines after it', (log: string) => damageLine(log, 30)],
    // Nor is it when all that follows is a last line cut short: that line alone is torn, not the one before.
    [
      'a flipped byte in the line before a last line without its newline',
      async (log: string) => {
        await damageLine(log, 50);
        const buf = await readFile(log);
        await writeFile(log, buf.subarray(0, buf.length - 10));
      },
    ],
    // A flipped byte after the zeros is no tear either: a crash leaves zeros, never other bytes.
    [
      'zeros in the last write, then a line with a flipped byte',
      async (log: string, write: number) => {
        await damageLine(log, 50);
        const from = up(write + 1);
        expect(lineStarts(await readFile(log))[49]).toBeGreaterThan(from + BLOCK);
        await zero(log, from, from + BLOCK);
      },
    ],
    // A sound line of another upgrade after the zeros, though it carries the write's offset and the
    // next seq, is no line this writer wrote: not the rest of its write.
    [
      'zeros in the last write, then a sound line of another upgrade',
      async (log: string, write: number) => {
        const from = up(write + 1);
        const buf = await zero(log, from, from + BLOCK);
        const next = buf.indexOf(0x0a, from + BLOCK) + 1;
        const end = buf.indexOf(0x0a, next);
        expect(buf.indexOf(0x0a, end + 1)).toBeLessThan(buf.length - 1);
        const w = `"w":"${write.toString(16).padStart(13, '0')}"`;
        const line = buf.toString('latin1', next, end);
        expect(line).toContain(w);
        const other = encodeEventLine({ ...(JSON.parse(line) as { e: ProgressEvent }).e, upgradeId: 'u2' }).replace(/"w":"[0-9a-f]{13}"/, w);
        await writeFile(log, Buffer.concat([buf.subarray(0, next), Buffer.from(other), buf.subarray(end + 1)]));
      },
    ],
    // Lines without a write offset (as written before lines had one) cannot show they are of the same write.
    [
      'zeros in the last write, then lines without a write offset',
      async (log: string, write: number) => {
        const from = up(write + 1);
        const buf = await zero(log, from, from + BLOCK);
        const end = buf.indexOf(0x0a, from + BLOCK);
        const rest = buf.subarray(end + 1).toString('latin1').replace(/"w":"[0-9a-f]{13}",/g, '');
        await writeFile(log, Buffer.concat([buf.subarray(0, end + 1), Buffer.from(rest, 'latin1')]));
      },
    ],
    // Sound lines after the zeros that do not all carry one write offset: not the rest of one write,
    // even when the last of them carries the last write's.
    [
      "zeros in the last write, then a sound line of another write before the last write's own",
      async (log: string, write: number) => {
        const from = up(write + 1);
        const buf = await zero(log, from, from + BLOCK);
        const next = buf.indexOf(0x0a, from + BLOCK) + 1;
        expect(buf.indexOf(0x0a, next)).toBeLessThan(buf.length - 1);
        const line = buf.subarray(next, buf.indexOf(0x0a, next)).toString('latin1');
        expect(line).toContain(`"w":"${write.toString(16).padStart(13, '0')}"`);
        buf.write(line.replace(/"w":"[0-9a-f]{13}"/, '"w":"0000000000000"'), next, 'latin1');
        await writeFile(log, buf);
      },
    ],
    // A sound line after the zeros whose seq does not rise past the one before it (a copy of that
    // line): one write's lines rise, so this is not the rest of one write.
    [
      'zeros in the last write, then a sound line that repeats the seq before it',
      async (log: string, write: number) => {
        const from = up(write + 1);
        const buf = await zero(log, from, from + BLOCK);
        const next = buf.indexOf(0x0a, from + BLOCK) + 1;
        const end = buf.indexOf(0x0a, next) + 1;
        expect(buf.indexOf(0x0a, end)).toBeLessThan(buf.length - 1);
        const line = buf.subarray(next, end);
        await writeFile(log, Buffer.concat([buf.subarray(0, end), line, buf.subarray(buf.indexOf(0x0a, end) + 1)]));
      },
    ],
  ] as const) {
    it(`(${name}) is refused with DATA_CORRUPTED and left as it is`, async () => {
      const { dir, log, f, write } = await withLastWrite(21, 30);
      await change(log, write);
      const before = await readFile(log);
      const store = new JsonFileStore({ directory: dir });
      const expected = { code: 'DATA_CORRUPTED', message: expect.stringMatching(/line \d+ of .*events\.jsonl is damaged/) };
      await expect(store.load('u1')).rejects.toMatchObject(expected);
      await expect(collect(store.readEvents('u1', 0))).rejects.toMatchObject(expected);
      await expect(ProgressTracker.open({ upgradeId: 'u1', planId: 'p', clusterName: 'c', store })).rejects.toMatchObject(expected);
      expect(f.lastSeq).toBe(51);
      await store.close();
      expect(await readFile(log)).toEqual(before);
    });
  }

  it('(zeros after a snapshot that lies inside the write) is refused: that write was durable', async () => {
    const { dir, f, log } = await seeded(10, 12);
    const store = new JsonFileStore({ directory: dir, snapshotEvery: 12, durability: 'none' });
    // Three appends at once: the first goes out alone, the next two together, in one write. The
    // second crosses seq 12, so the snapshot's offset is inside that write.
    const batches = [1, 2, 10].map((n) => ({ events: f.batch(n), state: structuredClone(f.state!) }));
    await Promise.all(batches.map((b) => store.append('u1', b.events, b.events[0]!.seq - 1, b.state)));
    await store.close();
    const buf = await readFile(log);
    const starts = lineStarts(buf);
    const writeOf = (seq: number): string => /"w":"([0-9a-f]{13})"/.exec(buf.toString('latin1', starts[seq - 1], starts[seq]))![1]!;
    expect(writeOf(12)).toBe(writeOf(23));
    expect(writeOf(11)).not.toBe(writeOf(12));
    expect(JSON.parse(await readFile(join(dir, 'upgrades', 'u1', 'snapshot.json'), 'utf8')).offset).toBe(starts[13]);
    const snapped = Buffer.from(buf);
    for (const [where, at] of [
      ['after the snapshot', up(starts[15]!)],
      ['before the snapshot', starts[11]! + 40],
    ] as const) {
      await writeFile(log, snapped);
      await zero(log, at, at + BLOCK);
      const reader = new JsonFileStore({ directory: dir });
      // load() reads from the snapshot on: the damage before it is reported by a read from the start.
      if (where === 'after the snapshot') await expect(reader.load('u1')).rejects.toMatchObject({ code: 'DATA_CORRUPTED' });
      else expect((await reader.load('u1'))!.lastSeq).toBe(23);
      await expect(collect(reader.readEvents('u1', 0)), where).rejects.toMatchObject({ code: 'DATA_CORRUPTED' });
      await reader.close();
    }
  });

  it('(zeros in what this store acknowledged) is refused by its own readers, which know what is durable', async () => {
    const { dir, f, log } = await seeded(21);
    const write = (await readFile(log)).length;
    const store = new JsonFileStore({ directory: dir, durability: 'none' });
    await store.append('u1', f.batch(30), 21, f.state!); // the writer stays open: all of it was acknowledged
    const from = up(write + 1);
    await zero(log, from, from + BLOCK);
    await expect(store.load('u1')).rejects.toMatchObject({ code: 'DATA_CORRUPTED' });
    await expect(collect(store.readEvents('u1', 0))).rejects.toMatchObject({ code: 'DATA_CORRUPTED' });
    await store.close();
  });

  it("(the newline of what this store acknowledged last lost) is refused by its own readers, never read as a torn last line", async () => {
    const { dir, f, log } = await seeded(21);
    const store = new JsonFileStore({ directory: dir, durability: 'none' });
    await store.append('u1', f.batch(3), 21, f.state!); // the writer stays open: all of it was acknowledged
    const buf = await readFile(log);
    expect(buf[buf.length - 1]).toBe(0x0a);
    buf[buf.length - 1] = 0x20;
    await writeFile(log, buf);
    const expected = { code: 'DATA_CORRUPTED', message: expect.stringMatching(/line 24 of .*events\.jsonl is damaged/) };
    await expect(store.load('u1')).rejects.toMatchObject(expected);
    await expect(collect(store.readEvents('u1', 0))).rejects.toMatchObject(expected);
    await store.close();
  });

  it('(zeros inside a long line a read skips, its newline intact) is seen by that read too', async () => {
    const { dir, f, log } = await seeded(21);
    const write = (await readFile(log)).length;
    const writer = new JsonFileStore({ directory: dir, durability: 'none' });
    const taskId = Object.keys(f.state!.tasks)[0]!;
    const long = Array.from({ length: 30 }, (_, i) => f.next('task.progress', { taskId, message: 'm'.repeat(3000), percentage: i }));
    await writer.append('u1', long, 21, f.state!);
    await writer.close();
    const line25 = lineStarts(await readFile(log))[24]!;
    expect(line25).toBeGreaterThan(write);
    const at = up(line25 + 1000);
    await zero(log, at, at + BLOCK);
    const reader = new JsonFileStore({ directory: dir });
    expect((await reader.load('u1'))!.lastSeq).toBe(24);
    expect((await collect(reader.readEvents('u1', 23))).map((e) => e.seq)).toEqual([24]);
    // Never the events after the damage, which the writer cuts when it opens.
    expect((await collect(reader.readEvents('u1', 25))).map((e) => e.seq)).toEqual([]);
    await reader.close();
  });

  it('(zeros in the line before a sound snapshot at the end of the log) is refused by a read from the start', async () => {
    const { dir, log } = await seeded(20, 10);
    const snap = JSON.parse(await readFile(join(dir, 'upgrades', 'u1', 'snapshot.json'), 'utf8')) as { lastSeq: number; offset: number };
    const buf = await readFile(log);
    expect([snap.lastSeq, snap.offset]).toEqual([20, buf.length]);
    await zero(log, lineStarts(buf)[19]! + 30, buf.length - 2);
    const reader = new JsonFileStore({ directory: dir });
    expect((await reader.load('u1'))!.lastSeq).toBe(20);
    await expect(collect(reader.readEvents('u1', 0))).rejects.toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining('line 20 of') });
    await reader.close();
  });

  it('(zeros over lines a read skips) is still told from damage by a read that starts inside it', async () => {
    const { dir, log, f, write } = await withLastWrite(21, 30);
    const buf = await readFile(log);
    const starts = lineStarts(buf);
    // Zeros over the newline between lines 24 and 25: line 24 is the first damaged one.
    const at = starts[24]! - 100;
    expect(at).toBeGreaterThan(write);
    await zero(log, at, at + 200);
    const reader = new JsonFileStore({ directory: dir });
    expect((await collect(reader.readEvents('u1', 30))).map((e) => e.seq)).toEqual([]);
    expect((await collect(reader.readEvents('u1', 22))).map((e) => e.seq)).toEqual([23]);
    expect((await collect(reader.readEvents('u1', 22, 1))).map((e) => e.seq)).toEqual([23]);
    await reader.close();
    await expectCutAt(dir, log, f, 24);
  });
});

describe('temp files left by a writer killed in the middle of an atomic write', () => {
  it('are removed by the next writer that holds the lock (the lock-taking temp files of other stores are left alone)', async () => {
    const { dir, f } = await seeded(10, 4);
    const folder = join(dir, 'upgrades', 'u1');
    // What writeFileAtomic leaves when the process dies between creating its temp file and the rename.
    const left = ['snapshot.json.0123456789ab.tmp', 'snapshot.json.ba9876543210.tmp', 'events.jsonl.00000000abcd.tmp', 'legacy-deleted.abcdefabcdef.tmp'];
    for (const name of left) await writeFile(join(folder, name), '{"v":1,"lastSeq":8,"offset":');
    const takingLock = 'writer.lock.3b241101-e2bb-4255-8caf-4136c566a962.tmp';
    await writeFile(join(folder, takingLock), '{}');

    const reader = new JsonFileStore({ directory: dir });
    expect((await reader.load('u1'))!.lastSeq).toBe(10);
    await reader.close();
    // A reader leaves them: the lock holder may be writing them.
    expect((await readdir(folder)).filter((n) => left.includes(n)).sort()).toEqual([...left].sort());

    const store = new JsonFileStore({ directory: dir, snapshotEvery: 4 });
    const expected = f.lastSeq;
    await store.append('u1', f.batch(3), expected, f.state!);
    await store.close();
    const names = await readdir(folder);
    expect(names.filter((n) => left.includes(n))).toEqual([]);
    expect(names).toContain(takingLock);
    const again = new JsonFileStore({ directory: dir });
    expect((await again.load('u1'))!.lastSeq).toBe(13);
    await again.close();
  });

  it.runIf(existsSync('/proc/self/stat'))('removes the lock-taking temp files of a process killed while it took the lock: older than the lease, by a writer provably gone', async () => {
    // Found on 2026-11-30: a process killed between writing its `writer.lock.<uuid>.tmp` (or the
    // takeover mutex's) and unlinking it left the file for ever; a writer killed often at start (OOM
    // kills, evictions) piled them up. Such a file is an owner record, judged as a lock is.
    const { dir, f } = await seeded(10);
    const folder = join(dir, 'upgrades', 'u1');
    const child = spawn(process.execPath, ['-e', '']);
    await new Promise((r) => child.once('exit', r));
    const me = await procIdentity();
    const owner = (pid: number, token: string, startTime = me.startTime) => `${JSON.stringify({ pid, hostname: hostname(), token, createdAt: 'then', ...me, startTime, leaseMs: 30_000 })}\n`;
    const uuid = (n: number) => `3b241101-e2bb-4255-8caf-4136c566a96${n}`;
    const old = new Date(Date.now() - 3600_000);
    const files: Record<string, [string, Date]> = {
      // Gone: a dead pid, or an empty file (killed before writing it), not stamped for an hour.
      [`writer.lock.${uuid(1)}.tmp`]: [owner(child.pid!, uuid(1)), old],
      [`writer.lock.takeover.${uuid(2)}.tmp`]: [owner(child.pid!, uuid(2)), old],
      [`writer.lock.${uuid(3)}.tmp`]: ['', old],
      // Kept: a dead pid's within the lease (judged as a lock is), a live process's, another host's.
      [`writer.lock.${uuid(4)}.tmp`]: [owner(child.pid!, uuid(4)), new Date()],
      [`writer.lock.${uuid(5)}.tmp`]: [owner(process.ppid, uuid(5), (await procIdentity(process.ppid)).startTime), old],
      [`writer.lock.${uuid(6)}.tmp`]: [owner(child.pid!, uuid(6)).replace(JSON.stringify(hostname()), '"another-host"'), old],
    };
    for (const [name, [text, at]] of Object.entries(files)) {
      await writeFile(join(folder, name), text);
      await utimes(join(folder, name), at, at);
    }
    const store = new JsonFileStore({ directory: dir });
    const expected = f.lastSeq;
    await store.append('u1', f.batch(1), expected, f.state!);
    await store.close();
    expect((await readdir(folder)).filter((n) => n.startsWith('writer.lock')).sort()).toEqual([4, 5, 6].map((n) => `writer.lock.${uuid(n)}.tmp`));
  });
});
