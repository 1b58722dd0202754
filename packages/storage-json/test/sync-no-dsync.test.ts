// Durability 'fsync' where the platform has no O_DSYNC (node's fs.constants lacks it on Windows): the
// writer must then datasync each write of events before acknowledging it. On Linux the log is opened
// O_DSYNC, so that path ran in no test: dropping its datasync left every other test passing. node:fs is
// mocked in this file to take O_DSYNC away.
import type * as Fs from 'node:fs';
import { afterAll, describe, expect, it, vi } from 'vitest';

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof Fs>();
  return { ...real, constants: { ...real.constants, O_DSYNC: undefined } };
});

const { readlinkSync } = await import('node:fs');
const { EventFactory } = await import('@progress/core/testing');
const { JsonFileStore } = await import('../src/index.js');
const { fileHandlePrototype, removeTempDirs, tempDir } = await import('./helpers.js');

afterAll(removeTempDirs);

describe("durability 'fsync' without O_DSYNC", () => {
  it('datasyncs every write of events before the append resolves', async () => {
    const dir = await tempDir('sync-no-dsync');
    const calls: string[] = [];
    const proto = (await fileHandlePrototype(dir)) as unknown as Record<'write' | 'datasync', (this: { fd: number }, ...args: unknown[]) => Promise<unknown>>;
    const originals = { write: proto.write, datasync: proto.datasync };
    for (const method of ['write', 'datasync'] as const) {
      proto[method] = async function (this: { fd: number }, ...args: unknown[]): Promise<unknown> {
        const file = readlinkSync(`/proc/self/fd/${this.fd}`);
        const result = await originals[method].apply(this, args);
        if (file.endsWith('/events.jsonl')) calls.push(method);
        return result;
      };
    }
    try {
      const store = new JsonFileStore({ directory: dir, snapshotEvery: 1000 });
      const f = new EventFactory('u1');
      await store.append('u1', f.batch(2), 0, f.state!);
      expect(calls).toEqual(['write', 'datasync']);
      await store.append('u1', f.batch(1), 2, f.state!);
      expect(calls).toEqual(['write', 'datasync', 'write', 'datasync']);
      await store.close();
    } finally {
      Object.assign(proto, originals);
    }
  });
});
