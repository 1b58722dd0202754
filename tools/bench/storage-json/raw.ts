import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { rate, scratch } from './workload.js';

const LINE = `${JSON.stringify({ c: '00000000', e: { eventId: 'x'.repeat(36), seq: 1, upgradeId: 'bench', type: 'task.progress', timestamp: new Date().toISOString(), taskId: 't1', taskType: 'upgrade_step', status: 'in_progress', message: 'bench', percentage: 42, details: { n: 1 } } })}\n`;

/** The disk's limit with the same async file API: append one line + fdatasync, per event. */
export async function rawPerEvent(maxMs = 1500): Promise<number> {
  const { dir, done } = await scratch('raw');
  const file = await open(join(dir, 'raw.jsonl'), 'a');
  const buf = Buffer.from(LINE);
  const r = await rate(100_000, maxMs, async () => {
    await file.write(buf);
    await file.datasync();
    return 1;
  });
  await file.close();
  await done();
  return r;
}

/** The disk's limit per batch: 100 lines in one write + one fdatasync. */
export async function rawPerBatch(maxMs = 1500): Promise<number> {
  const { dir, done } = await scratch('raw-batch');
  const file = await open(join(dir, 'raw.jsonl'), 'a');
  const buf = Buffer.from(LINE.repeat(100));
  const r = await rate(1_000_000, maxMs, async () => {
    await file.write(buf);
    await file.datasync();
    return 100;
  });
  await file.close();
  await done();
  return r;
}

/** For reference: one line per write on a file opened O_DSYNC (write + sync in one system call), what JsonFileStore does. */
export async function rawDsync(lines: number, maxMs = 1500): Promise<number> {
  const { dir, done } = await scratch('raw-dsync');
  const file = await open(join(dir, 'raw.jsonl'), constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_DSYNC, 0o600);
  const buf = Buffer.from(LINE.repeat(lines));
  const r = await rate(1_000_000, maxMs, async () => {
    await file.write(buf);
    return lines;
  });
  await file.close();
  await done();
  return r;
}
