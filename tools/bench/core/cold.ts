// The tracker's cost per command when its memory is cold, as it is on the sequential path, where
// every command waits ~100 us for Redis and the caches are refilled by others meanwhile. Between
// commands this evicts the caches by touching MB megabytes (default 5; on the 2-core machine 5 MB
// gave about the 10-15 us per command that the I/O-interleaved profile showed, against ~3 us hot).
// The store answers at once and does nothing, so only core is measured. Profile it with
//   node --cpu-prof --cpu-prof-interval=50 --import tsx tools/bench/core/cold.ts
// (without --conditions, core's built dist/ gives line numbers), and read the lines that touch
// memory first: they carry the cost.
import { openBenchTracker } from './bench-tracker.js';
import { instantStore } from './instant-store.js';

// Setup goes to a MemoryStore; the measured commands are acknowledged at once.
const store = instantStore();
const tracker = await openBenchTracker(store, 'u0');

const evict = new Uint8Array(Number(process.env.MB ?? 5) << 20);
const N = 3000;
for (let round = 0; round < 5; round++) {
  let total = 0;
  for (let i = 0; i < N; i++) {
    for (let at = 0; at < evict.length; at += 64) evict[at]!++;
    const start = performance.now();
    await tracker.updateTaskProgress(`t${i % 10}`, i % 100, 'step');
    total += performance.now() - start;
  }
  console.log(`updateTaskProgress with ${process.env.MB ?? 5} MB evicted between commands: ${((total * 1000) / N).toFixed(2)} us per command`);
}
