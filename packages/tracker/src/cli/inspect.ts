import type { ProgressStore, UpgradeProgress, UpgradeSummaryRow } from '@progress/core';
import { fitCells, renderProgress, safeText } from '../render.js';
import { CliError, ExitCode } from './errors.js';
import { storeError } from './sources.js';

/** A cell: stored text, with control characters (terminal escapes a writer could plant) made spaces, in `n` terminal cells. */
const pad = (text: string, n: number): string => fitCells(safeText(text), n, '…');

/** A table of upgrades, for `progress ls`. */
export function formatRows(rows: readonly UpgradeSummaryRow[]): string {
  if (rows.length === 0) return 'no upgrades';
  const header = `${pad('UPGRADE', 28)} ${pad('CLUSTER', 20)} ${pad('STATUS', 12)} ${'DONE'.padStart(7)} ${pad('PHASE', 20)} ${pad('TASKS', 5)} UPDATED`;
  const lines = rows.map(
    (r) =>
      `${pad(r.upgradeId, 28)} ${pad(r.clusterName, 20)} ${pad(r.status, 12)} ${`${r.overallPercentage.toFixed(1)}%`.padStart(7)} ${pad(r.currentPhase ?? '-', 20)} ${pad(String(r.totalTasks), 5)} ${safeText(r.updatedAt)}`,
  );
  return [header, ...lines].join('\n');
}

/** A table of the tasks of one upgrade, for `progress show`. */
export function formatUpgrade(state: Readonly<UpgradeProgress>): string {
  const lines = renderProgress(state, { color: false, recentEvents: 10 });
  const tasks = Object.values(state.tasks);
  if (tasks.length) {
    lines.push('', `${pad('TASK', 24)} ${pad('NAME', 30)} ${pad('TYPE', 14)} ${pad('STATUS', 12)} ${'DONE'.padStart(7)} ${pad('RETRIES', 7)} DURATION`);
    for (const t of tasks) {
      lines.push(
        `${pad(t.taskId, 24)} ${pad(t.taskName, 30)} ${pad(String(t.taskType), 14)} ${pad(t.status, 12)} ${`${t.percentage.toFixed(1)}%`.padStart(7)} ${pad(String(t.retryCount), 7)} ${
          t.durationMs === null ? '-' : `${(t.durationMs / 1000).toFixed(3)}s`
        }`,
      );
    }
  }
  return lines.join('\n');
}

/**
 * `value` as indented JSON, with the characters {@link safeText} takes out of the text output that
 * JSON.stringify leaves as they are (DEL, C1 controls such as U+009B, a CSI to a terminal that reads
 * it, and bidi controls) escaped as `\uXXXX`: the JSON says the same, the terminal gets none of them.
 */
function safeJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** `progress ls`. */
export async function listUpgrades(store: ProgressStore, json: boolean): Promise<string> {
  const rows = await store.list().catch((err: unknown) => {
    throw storeError(err);
  });
  return json ? safeJson(rows) : formatRows(rows);
}

/**
 * `progress show`. An upgrade the store does not hold is named with what `hint` says of it (the id
 * nearest it that the store lists, as `watch` names it): a typo said only "no upgrade".
 */
export async function showUpgrade(store: ProgressStore, upgradeId: string | undefined, json: boolean, hint: (upgradeId: string) => Promise<string>): Promise<string> {
  if (!upgradeId) throw new CliError('missing <upgradeId>: `progress ls <source>` lists them');
  const state = await store.load(upgradeId).catch((err: unknown) => {
    throw storeError(err);
  });
  if (!state) throw new CliError(`no upgrade "${upgradeId}" in this source${await hint(upgradeId)}`, ExitCode.NOT_FOUND);
  return json ? safeJson(state) : formatUpgrade(state);
}
