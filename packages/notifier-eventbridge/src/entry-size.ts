import type { PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';

/**
 * The size of a PutEvents entry as AWS counts it against the request limit: the UTF-8 bytes of
 * `Source`, `DetailType`, `Detail` and each of `Resources`, plus 14 when `Time` is set.
 * (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html)
 */
export function entrySize(entry: PutEventsRequestEntry): number {
  let size = entry.Time !== undefined ? 14 : 0;
  if (entry.Source !== undefined) size += Buffer.byteLength(entry.Source, 'utf8');
  if (entry.DetailType !== undefined) size += Buffer.byteLength(entry.DetailType, 'utf8');
  if (entry.Detail !== undefined) size += Buffer.byteLength(entry.Detail, 'utf8');
  for (const resource of entry.Resources ?? []) size += Buffer.byteLength(resource, 'utf8');
  return size;
}
