import { ProgressError, assertValidId, describeValue, isValidId } from '@progress/core';

/** The Redis keys of one upgrade. All carry the `{upgradeId}` hash tag, so they share one slot. */
export interface UpgradeKeys {
  /** Stream of events: one entry per append, id `0-<seq of its last event>`, field `b` (JSON array of the events). Development builds before the first release wrote one entry per event (id `0-<seq>`, field `e`, some also `i`); both are read. */
  events: string;
  /** Hash: `lastSeq`, `snapSeq`, `trimmed` (highest seq removed by retention), `row` (list row JSON), `fast` (the row's fields every append moves), `epoch` (eventId of seq 1: tells a re-created upgrade from the one before), `born` (single-node mode: the feed entry id of the first append; feed entries older than it are of an earlier upgrade under the id), `unfed` (cluster mode: '1' from the first append, '0' once a feed entry from seq 1 is known written), `token` (the first append's call: see `deletedRuns`). */
  meta: string;
  /** String: JSON of the state at `snapSeq`. */
  snapshot: string;
}

/**
 * Builds every key name from the prefix. Layout (prefix `progress:`):
 * `progress:{u1}:events`, `progress:{u1}:meta`, `progress:{u1}:snapshot`, `progress:index`
 * (sorted set of upgrade ids by creation) and `progress:feed` (stream of new events, capped).
 */
export class KeyLayout {
  readonly prefix: string;
  /** Sorted set: member upgradeId, score the ms of its first append (list() sorts by the rows). */
  readonly index: string;
  /** Stream: one entry per append, one field `p` = `<first seq>|<count>|<upgradeId>`: a pointer into the upgrade's stream (see `feedPointer`). */
  readonly feed: string;

  constructor(prefix: string) {
    if (typeof prefix !== 'string' || prefix.length > 256 || /[{}\s]/.test(prefix)) {
      throw new ProgressError('INVALID_ARGUMENT', `[@progress/storage-redis] keyPrefix must be a string of at most 256 characters without braces or spaces, got ${describeValue(prefix)}`);
    }
    this.prefix = prefix;
    this.index = `${prefix}index`;
    this.feed = `${prefix}feed`;
  }

  /**
   * The keys of one upgrade. An id that is not valid is refused (`INVALID_ARGUMENT`): it names keys
   * no store writes, and a tool reading them would find nothing, as if the upgrade had no events.
   */
  upgrade(upgradeId: string): UpgradeKeys {
    assertValidId(upgradeId, 'upgradeId');
    return upgradeKeys(this, upgradeId);
  }

  /**
   * String: the marker of one `delete()` call (`token` is the call's own), in the upgrade's slot,
   * written by the delete script with a short TTL: a re-send of the call finds it (see DELETE_LUA).
   */
  deleteMarker(upgradeId: string, token: string): string {
    assertValidId(upgradeId, 'upgradeId');
    if (!isValidId(token)) throw new ProgressError('INVALID_ARGUMENT', `[@progress/storage-redis] the delete token must be 1 to 128 characters of A-Z a-z 0-9 _ . : -, got ${describeValue(token)}`);
    return `${this.prefix}{${upgradeId}}:delete:${token}`;
  }

  /**
   * Hash: the epochs (eventIds of seq 1) of the upgrade's runs `delete()` removed lately, each with
   * the token of the call that created the run, written by the delete script with the marker's TTL:
   * a re-sent first append of such a run (the same call) stores nothing (see DELETE_LUA).
   */
  deletedRuns(upgradeId: string): string {
    assertValidId(upgradeId, 'upgradeId');
    return `${this.prefix}{${upgradeId}}:deleted`;
  }
}

/**
 * {@link KeyLayout.upgrade} without its check, for the store: the ids it names keys for were checked
 * by the call, or read from the index or the feed, where an id that is not valid (written by
 * something else under the prefix) is the data's fault, not an argument's.
 */
export function upgradeKeys(layout: KeyLayout, upgradeId: string): UpgradeKeys {
  const base = `${layout.prefix}{${upgradeId}}:`;
  return { events: `${base}events`, meta: `${base}meta`, snapshot: `${base}snapshot` };
}

/** The stream entry id `0-<seq>`: an entry's id is the seq of its last event, so the entry holding seq s is the first with an id >= `entryId(s)`. */
export const entryId = (seq: number): string => `0-${seq}`;

/** The seq of a stream entry id `0-<seq>`. */
export const seqOf = (id: string): number => Number(id.slice(id.indexOf('-') + 1));

/**
 * Reads of an upgrade in a row whose epoch (the meta's, the eventId of its seq 1) did not hold still
 * before a reader gives up: it moved between a page's two meta reads (`readEvents`), or a new run's
 * seq 1 does not carry it (`watch()`). Each is a fresh read, so a delete and re-create landing between
 * the same two commands every time is not what keeps it up.
 */
export const EPOCH_READS = 5;
