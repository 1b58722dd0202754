// Takes the writer lock of one upgrade in its own process, asking again every 200 ms on CONFLICT
// (as a restarted writer would): says "locked <tries>" once it has it, or "gave up <message>" after
// 20 s by the monotonic clock. The third argument sets lockLeaseMs.
import { isProgressError } from '@progress/core';
import { JsonFileStore } from '../../src/index.js';

const [directory, upgradeId, lease] = process.argv.slice(2) as [string, string, string];
const store = new JsonFileStore({ directory, lockLeaseMs: Number(lease) });
const end = performance.now() + 20_000;
for (let tries = 1; ; tries++) {
  try {
    await store.acquire(upgradeId);
    process.stdout.write(`locked ${tries}\n`);
    break;
  } catch (err) {
    if (!isProgressError(err, 'CONFLICT') || performance.now() > end) {
      process.stdout.write(`gave up ${err instanceof Error ? err.message : String(err)}\n`);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
await store.close();
