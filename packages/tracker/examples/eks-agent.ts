// The old module's example, with @progress/tracker: an agent upgrading a cluster in four tasks,
// reporting progress as it goes, then printing the summary.
//
//   npx tsx --conditions=@progress/source packages/tracker/examples/eks-agent.ts [storage-dir]
import { setTimeout as sleep } from 'node:timers/promises';
import { createProgressTracker, ProgressStatus, TaskType } from '@progress/tracker';

const storagePath = process.argv[2];

const tracker = await createProgressTracker({
  upgradeId: `example-upgrade-${Date.now()}`,
  planId: 'plan-1.31',
  clusterName: 'my-eks-cluster',
  // The old module's option names still work: storagePath, eventBridgeBusName, awsRegion, enableWebSocket, webSocketPort.
  ...(storagePath ? { storagePath } : {}),
});

tracker.addEventCallback((event) => console.log(`[event] #${event.seq} ${event.type} ${event.taskId ?? ''} ${event.message}`));
tracker.addStatusCallback(ProgressStatus.COMPLETED, (task) => console.log(`[done]  ${task.taskName} in ${task.durationMs} ms`));

await tracker.startUpgrade('Initialization');
await tracker.addTasks([
  { taskId: 'backup', taskName: 'Backup cluster state', taskType: TaskType.UPGRADE_STEP },
  { taskId: 'control-plane', taskName: 'Upgrade control plane', taskType: TaskType.UPGRADE_STEP },
  { taskId: 'node-groups', taskName: 'Upgrade node groups', taskType: TaskType.UPGRADE_STEP },
  { taskId: 'validate', taskName: 'Validate workloads', taskType: TaskType.VALIDATION },
]);

for (const taskId of ['backup', 'control-plane', 'node-groups', 'validate']) {
  await tracker.setCurrentPhase(tracker.progress.tasks[taskId]!.taskName);
  await tracker.startTask(taskId);
  for (const pct of [25, 50, 75]) {
    await sleep(20);
    await tracker.updateTaskProgress(taskId, pct, `${pct}% done`);
  }
  await tracker.completeTask(taskId);
  console.log(`overall: ${tracker.calculateProgressPercentage()}%`);
}

await tracker.completeUpgrade();
console.log(JSON.stringify(tracker.getProgressSummary(), null, 2));
await tracker.close();
