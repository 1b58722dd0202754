// importLegacyUpgrade() is exported "for tools that read those files themselves" (README): what
// such a tool passes besides the file's content is checked as every other entry point checks it.
import { describe, expect, it } from 'vitest';
import { isProgressError, replayEvents } from '@progress/core';
import { importLegacyUpgrade } from '../src/index.js';
import { thrown } from '../../../tools/test-utils/src/thrown.js';

const doc = { upgrade_id: 'u1', plan_id: 'p', cluster_name: 'c', status: 'in_progress', tasks: {} };
const TIME = '2024-01-01T00:00:00.000Z';

describe('importLegacyUpgrade() arguments', () => {
  it.each([42, null, undefined, '../../x', '', { toString: () => 'u1' }])('refuses the upgrade id %s with INVALID_ARGUMENT, rather than making events of an upgrade no store could hold', (id) => {
    const err = thrown(() => importLegacyUpgrade(doc, id as never, 'upgrade_u1.json', TIME));
    expect(isProgressError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect((err as Error).message).toMatch(/^\[@progress\/storage-json\] importLegacyUpgrade\(\): upgradeId/);
  });

  it.each([42, null, undefined, [], Symbol('f')])('refuses a file name that is not a string (%s) with INVALID_ARGUMENT, not a TypeError from node:path', (file) => {
    const err = thrown(() => importLegacyUpgrade(doc, 'u1', file as never, TIME));
    expect(isProgressError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect((err as Error).message).toContain('file');
  });

  it('refuses an empty file name with INVALID_ARGUMENT: it would name no file in upgrade.created (legacyFile, its message)', () => {
    const err = thrown(() => importLegacyUpgrade(doc, 'u1', '', TIME));
    expect(isProgressError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect((err as Error).message).toMatch(/^\[@progress\/storage-json\] importLegacyUpgrade\(\): file must be a non-empty string/);
  });

  it.each([42, null, undefined, 'garbage', '', new Date(0)])('refuses a fallbackTime that is not an ISO time (%s): it was the timestamp of the upgrade.created event', (time) => {
    const err = thrown(() => importLegacyUpgrade(doc, 'u1', 'upgrade_u1.json', time as never));
    expect(isProgressError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect((err as Error).message).toContain('fallbackTime');
  });

  it('derives the ids of the events the file does not record from the upgrade id as well as the seq: two upgrades share none', () => {
    const ids = (id: string): string[] => importLegacyUpgrade({ ...doc, upgrade_id: id }, id, `upgrade_${id}.json`, TIME).map((e) => e.eventId);
    expect(ids('u1')).toEqual(ids('u1'));
    expect(ids('u1').filter((e) => ids('u2').includes(e))).toEqual([]);
  });

  it('derives the same ids in every version: a tool that kept them from an earlier load finds them again', () => {
    // Name-based, UUID-shaped (version 5, RFC 4122 variant): pinned, as a change would give every
    // legacy upgrade's events new ids on the next load.
    expect(importLegacyUpgrade(doc, 'u1', 'upgrade_u1.json', TIME).map((e) => e.eventId)).toEqual(['1d62bd37-6c53-5f4c-a6b5-03d526beb054', '028077e1-2cbc-57c9-a494-dc0a29442263']);
  });

  it('refuses a fallbackTime without a zone (Date would read it as local time: another instant on each machine)', () => {
    const err = thrown(() => importLegacyUpgrade(doc, 'u1', 'upgrade_u1.json', '2024-01-01T00:00:00.000'));
    expect(isProgressError(err, 'INVALID_ARGUMENT')).toBe(true);
    expect((err as Error).message).toContain('fallbackTime');
  });

  it('takes an ISO time in any form Date reads, and stamps the events in the one form the tracker writes', () => {
    const events = importLegacyUpgrade(doc, 'u1', 'upgrade_u1.json', '2024-01-01T01:00:00+01:00');
    expect(events[0]!.timestamp).toBe(TIME);
    expect(replayEvents(events)!.upgradeId).toBe('u1');
  });
});
