import type { PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { assertObjectArg, badArgument } from './arguments.js';

/**
 * The size of a PutEvents entry as AWS counts it against the request limit: the UTF-8 bytes of
 * `Source`, `DetailType`, `Detail` and each of `Resources`, plus 14 when `Time` is set.
 * (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html)
 */
export function entrySize(entry: PutEventsRequestEntry): number {
  assertObjectArg('entrySize', 'a PutEvents entry', entry);
  for (const key of ['Source', 'DetailType', 'Detail'] as const) {
    if (entry[key] !== undefined && typeof entry[key] !== 'string') throw badArgument('entrySize', `an entry whose ${key} is a string`, entry[key]);
  }
  if (entry.Resources !== undefined && (!Array.isArray(entry.Resources) || entry.Resources.some((r) => typeof r !== 'string'))) {
    throw badArgument('entrySize', 'an entry whose Resources is an array of strings', entry.Resources);
  }
  let size = entry.Time !== undefined ? 14 : 0;
  if (entry.Source !== undefined) size += Buffer.byteLength(entry.Source, 'utf8');
  if (entry.DetailType !== undefined) size += Buffer.byteLength(entry.DetailType, 'utf8');
  if (entry.Detail !== undefined) size += Buffer.byteLength(entry.Detail, 'utf8');
  for (const resource of entry.Resources ?? []) size += Buffer.byteLength(resource, 'utf8');
  return size;
}
