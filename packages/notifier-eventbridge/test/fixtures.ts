import type { EventType, ProgressEvent, UpgradeProgress } from '@progress/core';

/** A hand-made event (the unit tests do not need a tracker). */
export function fakeEvent(seq: number, type: EventType = 'task.started', details: Record<string, unknown> = {}): ProgressEvent {
  return {
    eventId: `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
    seq,
    upgradeId: 'u1',
    type,
    timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, seq)).toISOString(),
    taskId: type.startsWith('task.') ? 't1' : undefined,
    status: 'in_progress',
    message: 'm',
    details,
  } as ProgressEvent;
}

/** The smallest state `handle()` reads: the cluster and the task's name. */
export const fakeState = {
  upgradeId: 'u1',
  clusterName: 'prod',
  currentPhase: 'Init',
  durationMs: null,
  tasks: { t1: { taskId: 't1', taskName: 'Task one', durationMs: null, retryCount: 0 } },
} as unknown as UpgradeProgress;

/** The event ids of the entries of a PutEvents input. */
export function idsOf(input: { Entries?: Array<{ Detail?: string }> }): string[] {
  return (input.Entries ?? []).map((e) => (JSON.parse(e.Detail!) as { event_id: string }).event_id);
}
