// Appends to one upgrade in bursts with fsync durability, printing "<seq> <eventId>" for every
// acknowledged event, until it is killed.
import { ProgressTracker, type ProgressEvent } from '@progress/core';
import { JsonFileStore } from '../../src/index.js';

const [directory, upgradeId] = process.argv.slice(2) as [string, string];
const store = new JsonFileStore({ directory, durability: 'fsync', snapshotEvery: 50 });
const tracker = await ProgressTracker.open({ upgradeId, planId: 'crash', clusterName: 'crash-test', store });
const ack = (e: ProgressEvent): void => void process.stdout.write(`${e.seq} ${e.eventId}\n`);
tracker.subscribe(ack);
if (tracker.progress.status === 'not_started') await tracker.startUpgrade('Crash');
if (!tracker.progress.tasks['t']) await tracker.addTask('t', 'Work');
process.stdout.write('ready\n');
for (let round = 0; ; round++) {
  const burst = 1 + ((round * 37) % 60);
  const commands: Array<Promise<ProgressEvent>> = [];
  for (let i = 0; i < burst; i++) {
    commands.push(i % 17 === 16 ? tracker.setCurrentPhase(`Phase ${round}`) : tracker.updateTaskProgress('t', (round + i) % 101));
  }
  for (const c of commands) void c.then(ack);
  await Promise.all(commands);
}
