// Takes the writer lock of one upgrade in its own process, says so, and waits to be killed.
import { ProgressTracker } from '@progress/core';
import { JsonFileStore } from '../../src/index.js';

const [directory, upgradeId] = process.argv.slice(2) as [string, string];
const store = new JsonFileStore({ directory });
await ProgressTracker.open({ upgradeId, planId: 'p', clusterName: 'c', store });
process.stdout.write(`locked ${process.pid}\n`);
setInterval(() => {}, 1 << 30);
