// Tries to take the writer lock of one upgrade in its own process: says "locked <pid>" and waits to
// be killed, or says "refused <code> <message>" and exits. A third argument sets lockLeaseMs.
import { isProgressError } from '@progress/core';
import { JsonFileStore } from '../../src/index.js';

const [directory, upgradeId, lease] = process.argv.slice(2) as [string, string, string | undefined];
const store = new JsonFileStore({ directory, ...(lease === undefined ? {} : { lockLeaseMs: Number(lease) }) });
try {
  await store.acquire(upgradeId);
  process.stdout.write(`locked ${process.pid}\n`);
  setInterval(() => {}, 1 << 30);
} catch (err) {
  process.stdout.write(`refused ${isProgressError(err) ? err.code : 'error'} ${err instanceof Error ? err.message : String(err)}\n`);
  await store.close();
}
