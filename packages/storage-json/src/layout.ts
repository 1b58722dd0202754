import { join } from 'node:path';
import { assertValidId } from '@progress/core';

/** Mode of every file the store creates. */
export const FILE_MODE = 0o600;
/** Mode of every folder the store creates. */
export const DIR_MODE = 0o700;

/** Where the files of one upgrade live. Every path is built from a validated id. */
export interface UpgradePaths {
  dir: string;
  events: string;
  snapshot: string;
  lock: string;
  /** Present when the legacy file of this id is to be ignored (the upgrade was deleted). */
  legacyHidden: string;
  legacy: string;
}

/** The folder of the new-format upgrades: `<directory>/upgrades`. */
export const upgradesDir = (root: string): string => join(root, 'upgrades');

/** The folder of the old Python module's files: `<directory>/progress`. */
export const legacyDir = (root: string): string => join(root, 'progress');

/** The paths of one upgrade; throws `INVALID_ARGUMENT` for an id that is not safe as a file name. */
export function upgradePaths(root: string, upgradeId: string): UpgradePaths {
  assertValidId(upgradeId, 'upgradeId');
  const dir = join(upgradesDir(root), upgradeId);
  return {
    dir,
    events: join(dir, 'events.jsonl'),
    snapshot: join(dir, 'snapshot.json'),
    lock: join(dir, 'writer.lock'),
    legacyHidden: join(dir, 'legacy-deleted'),
    legacy: join(legacyDir(root), `upgrade_${upgradeId}.json`),
  };
}

/** The id in a legacy file name `upgrade_<id>.json`, or `undefined`. */
export function legacyIdOf(fileName: string): string | undefined {
  const m = /^upgrade_(.+)\.json$/.exec(fileName);
  return m?.[1];
}
