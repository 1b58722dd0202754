import { ProgressTracker, type ProgressStore } from '@progress/core';

/**
 * Opens the tracker every sequential benchmark drives: upgrade `upgradeId` on `store`, started, with
 * ten tasks `t0`..`t9` (the commands then cycle through them), so that all of them measure the same
 * state and event shape.
 */
export async function openBenchTracker(store: ProgressStore, upgradeId: string): Promise<ProgressTracker> {
  const tracker = await ProgressTracker.open({ upgradeId, planId: 'plan', clusterName: 'bench', store });
  await tracker.startUpgrade();
  await tracker.addTasks(Array.from({ length: 10 }, (_, i) => ({ taskId: `t${i}`, taskName: `Task ${i}` })));
  return tracker;
}
