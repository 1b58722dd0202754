// The log writer on its own: what its close() waits for. The case below needs an append timed against
// the end of the writer's own drain, which a test through the store cannot time.
import { mkdir, readFile, readdir, readlink } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '@progress/core';
import { EventFactory } from '@progress/core/testing';
import { upgradePaths } from '../src/layout.js';
import { LogWriter } from '../src/log-writer.js';
import { encodeEvents } from '../src/record-codec.js';
import { removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

/** How many descriptors of this process are open on `path` (Linux: /proc/self/fd); 0 where that cannot be read. */
async function openDescriptorsOf(path: string): Promise<number> {
  const fds = await readdir('/proc/self/fd').catch(() => [] as string[]);
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
  return targets.filter((t) => t === path).length;
}

describe('LogWriter.close()', () => {
  it('waits for an append accepted while it waited for the write in flight, and closes after it', async () => {
    const dir = await tempDir('log-writer-close');
    const paths = upgradePaths(dir, 'u1');
    await mkdir(paths.dir, { recursive: true });
    // A guard that takes a moment, as the lease check does when it must look at the lock file.
    const guard = () => new Promise<void>((resolve) => setTimeout(resolve, 10));
    const writer = new LogWriter('u1', paths, { seq: 0, offset: 0 }, { sync: false, logger: silentLogger, guard });
    const f = new EventFactory('u1');
    const first = f.batch(1);
    const second = f.batch(1);
    // The second append is made as soon as the first is acknowledged: after the first write's drain
    // ended, before close() goes on from its wait for that drain.
    let secondDone = false;
    const both = writer.append(encodeEvents(first), 1, 0).then(() =>
      writer.append(encodeEvents(second), 1, 1).then(() => {
        secondDone = true;
      }),
    );
    await writer.close();
    expect(secondDone).toBe(true);
    await both;
    expect(writer.seq).toBe(2);
    const lines = (await readFile(paths.events, 'utf8')).trimEnd().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { e: { seq: number } }).e.seq)).toEqual([1, 2]);
    // Closed for good: a later append is CLOSED.
    await expect(writer.append(encodeEvents(f.batch(1)), 1, 2)).rejects.toMatchObject({ code: 'CLOSED' });
    // No descriptor of the log left open by a write after close() (it would have opened the file again).
    expect(await openDescriptorsOf(paths.events)).toBe(0);
  });
});

describe('LogWriter opening its log at its first write', () => {
  it('makes no new log when the one it found its end in is gone since (it would hold our lines after a hole), and says so', async () => {
    const dir = await tempDir('log-writer-gone');
    const paths = upgradePaths(dir, 'u1');
    await mkdir(paths.dir, { recursive: true });
    // As a writer that found 4 events (300 bytes) in the log, which was deleted before its first write.
    const writer = new LogWriter('u1', paths, { seq: 4, offset: 300 }, { sync: false, logger: silentLogger });
    const f = new EventFactory('u1');
    f.batch(4);
    await expect(writer.append(encodeEvents(f.batch(1)), 1, 4)).rejects.toMatchObject({ code: 'DATA_CORRUPTED', message: expect.stringContaining(`${paths.events} is gone`) });
    expect(await readdir(paths.dir)).toEqual([]);
    await writer.close();
  });
});
