// Run by building-blocks-bad-input.test.ts in a process of its own: folds an event into a state
// whose tasks name each other as parents (damaged data, as a store may load it). A fold that looped
// for ever would block the test's own process for good; this one is ended by the test's timeout.
import { applyEvent, replayEvents, type ProgressEvent } from '../../src/index.js';

const at = (seq: number, fields: Partial<ProgressEvent>): ProgressEvent => ({
  eventId: `e${seq}`,
  upgradeId: 'u1',
  seq,
  type: 'task.added',
  timestamp: '2026-03-01T10:00:00.000Z',
  status: 'not_started',
  message: 'm',
  details: {},
  ...fields,
});
const state = replayEvents([
  at(1, { type: 'upgrade.created', details: { planId: 'p1', clusterName: 'c1', metadata: {} } }),
  at(2, { taskId: 'a', details: { taskName: 'A' } }),
  at(3, { taskId: 'b', details: { taskName: 'B', parentTaskId: 'a' } }),
])!;
state.tasks.a!.parentTaskId = 'b';
const next = applyEvent(state, at(4, { type: 'task.progress', status: 'in_progress', taskId: 'b', percentage: 40 }));
console.log(`folded ${next.tasks.b!.status}`);
