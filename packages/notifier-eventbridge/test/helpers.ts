import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { localClientConfig } from '../../../tools/test-utils/src/eventbridge-endpoint.js';

/** A real SDK client pointed at the local endpoint, without SDK retries (the notifier retries). */
export function localClient(url: string, maxAttempts = 1): EventBridgeClient {
  return new EventBridgeClient({ ...localClientConfig(url), maxAttempts });
}

/** A controllable clock for the tracker's `now` option. */
export function clock(start = Date.parse('2026-01-01T00:00:00.000Z')): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}
