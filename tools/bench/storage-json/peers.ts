import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { JSONFilePreset } from 'lowdb/node';
import { legacyEvent, rate, scratch, TASKS } from './workload.js';

const MAX_MS = 2500;

function oldDocument(existing: number): { doc: Record<string, unknown>; events: unknown[] } {
  const events: unknown[] = [];
  for (let i = 0; i < existing; i++) events.push(legacyEvent(i));
  const tasks: Record<string, unknown> = {};
  for (let t = 1; t <= TASKS; t++) tasks[`t${t}`] = { task_id: `t${t}`, task_name: `t${t}`, status: 'in_progress', events: [] };
  return { doc: { upgrade_id: 'bench', plan_id: 'plan', cluster_name: 'bench', status: 'in_progress', tasks, events }, events };
}

/**
 * The old module's way: every update appends the event to the in-memory document and rewrites the
 * whole JSON file (json.dump, indent 2; it neither fsynced nor renamed). Sequential by nature (its
 * save was synchronous), so a burst of 100 is 100 rewrites.
 */
export async function oldModule(existing: number, burst: number): Promise<number> {
  const { dir, done } = await scratch('old');
  const path = join(dir, 'upgrade_bench.json');
  const { doc, events } = oldDocument(existing);
  let n = existing;
  const r = await rate(burst * 1000, MAX_MS, async () => {
    for (let i = 0; i < burst; i++) {
      events.push(legacyEvent(n++));
      await writeFile(path, JSON.stringify(doc, null, 2));
    }
    return burst;
  });
  await done();
  return r;
}

/** lowdb v7 (lowdb/node JSONFilePreset): `db.data.events.push(e); await db.write()` per event (steno: temp file + rename, no fsync). */
export async function lowdb(existing: number, burst: number): Promise<number> {
  const { dir, done } = await scratch('lowdb');
  const { doc } = oldDocument(existing);
  const db = await JSONFilePreset(join(dir, 'db.json'), doc as { events: unknown[] });
  await db.write();
  let n = existing;
  const r = await rate(burst * 1000, MAX_MS, async () => {
    const writes: Array<Promise<void>> = [];
    for (let i = 0; i < burst; i++) {
      db.data.events.push(legacyEvent(n++));
      writes.push(db.write());
    }
    await Promise.all(writes);
    return burst;
  });
  await done();
  return r;
}
