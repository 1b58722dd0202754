// Lists the upgrades of a folder and reads one upgrade, printing one JSON line: what list() gave
// (or its error code) and what readEvents(), load() and delete() gave. Run as another user by the test.
import { isProgressError } from '@progress/core';
import { JsonFileStore } from '../../src/index.js';

const [directory, upgradeId] = process.argv.slice(2) as [string, string];
const store = new JsonFileStore({ directory });
const outcome = async (run: () => Promise<unknown>): Promise<unknown> => {
  try {
    return { ok: await run() };
  } catch (err) {
    return { error: isProgressError(err) ? err.code : `raw ${(err as Error).message}` };
  }
};
const list = await outcome(async () => (await store.list()).map((r) => r.upgradeId).sort());
const readEvents = await outcome(async () => {
  const seqs: number[] = [];
  for await (const e of store.readEvents(upgradeId, 0)) seqs.push(e.seq);
  return seqs;
});
const load = await outcome(async () => (await store.load(upgradeId))?.lastSeq);
const deleted = await outcome(() => store.delete(upgradeId));
process.stdout.write(`${JSON.stringify({ list, readEvents, load, delete: deleted })}\n`);
await store.close();
