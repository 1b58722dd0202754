import { z } from 'zod';
import { isValidId, type ErrorCode, type ProgressEvent, type ProgressSummary, type UpgradeProgress, type UpgradeSummaryRow } from '@progress/core';

/** The version of the wire protocol this server speaks, sent in `welcome`. */
export const PROTOCOL_VERSION = 1;

// Core's id rule (the one the stores use), not a copy of it.
const upgradeIdSchema = z.string().refine(isValidId, 'must be 1..128 characters of [A-Za-z0-9_.:-], not "." or ".."');

const seqSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** The schema every client frame is validated with (unknown keys are ignored). */
export const clientMessageSchema = z.discriminatedUnion('type', [
  // `createdAt` (with `sinceSeq`): the run the client's state is of. A seq alone does not name a run:
  // an id started again has seqs from 1 again, and its events after the client's seq would be
  // replayed onto the old run's state. Another run than the one there is now gets a resync.
  z.object({ type: z.literal('subscribe'), upgradeId: z.union([z.literal('*'), upgradeIdSchema]), sinceSeq: seqSchema.optional(), createdAt: z.string().max(64).optional() }),
  z.object({ type: z.literal('unsubscribe'), upgradeId: z.union([z.literal('*'), upgradeIdSchema]) }),
  z.object({ type: z.literal('get_summary'), upgradeId: upgradeIdSchema }),
  z.object({ type: z.literal('list_upgrades') }),
  z.object({ type: z.literal('ping') }),
]);

/** A valid client -> server message. */
export type ClientMessage = z.infer<typeof clientMessageSchema>;

/** A server -> client message of protocol v1. */
export type ServerMessage =
  // `serverTime`: the server's clock when it sent the welcome (ISO 8601), so that a client whose
  // clock is off (a laptop 10 minutes out) can tell the time since an upgrade's `startedAt` by the
  // clock that stamped it; an addition to protocol v1 that older clients ignore.
  | { type: 'welcome'; protocol: 1; serverId: string; serverTime: string }
  | { type: 'subscribed'; upgradeId: string; exists: boolean }
  | { type: 'snapshot'; upgradeId: string; seq: number; data: UpgradeProgress }
  | { type: 'progress_event'; upgradeId: string; data: ProgressEvent }
  // `exists`: whether the upgrade's snapshot follows (false: it does not exist now, deleted or expired,
  // and its events arrive from seq 1 once it is created again); an addition to protocol v1 that older
  // clients ignore.
  | { type: 'resync'; upgradeId: string; reason: ResyncReason; exists: boolean }
  | { type: 'progress_summary'; upgradeId: string; data: ProgressSummary }
  | { type: 'upgrades'; data: UpgradeSummaryRow[] }
  | { type: 'pong' }
  // `upgradeId`: the upgrade (or '*') a request named when the store failed to serve it; an addition
  // to protocol v1 that older clients ignore.
  | { type: 'error'; code: WireErrorCode; message: string; upgradeId?: string };

/** Why a `resync` was sent: the history after `sinceSeq` is gone, or `sinceSeq` is beyond it. */
export type ResyncReason = 'trimmed' | 'ahead' | 'gap' | 'unavailable';

/**
 * The codes of `error` frames: the protocol's own, and for a request the store failed to serve, the
 * store's ProgressError code (STORE_UNAVAILABLE when it threw something else).
 */
export type WireErrorCode = 'INVALID_MESSAGE' | 'FORBIDDEN' | 'RATE_LIMITED' | 'NOT_FOUND' | 'STORE_UNAVAILABLE' | ErrorCode;

/** The result of {@link parseClientMessage}. */
export type ParseResult = { ok: true; message: ClientMessage } | { ok: false; message: string };

/**
 * Parses and validates one text frame from a client. Never throws.
 *
 * @param text The frame's payload, as UTF-8 text.
 */
export function parseClientMessage(text: string): ParseResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, message: 'the message is not valid JSON' };
  }
  const parsed = clientMessageSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    return { ok: false, message: `invalid message: ${where}${issue?.message ?? 'unknown shape'}` };
  }
  if (parsed.data.type === 'subscribe' && parsed.data.createdAt !== undefined && parsed.data.sinceSeq === undefined) {
    return { ok: false, message: 'invalid message: createdAt names the run of the state sinceSeq resumes; it takes a sinceSeq' };
  }
  if (parsed.data.type === 'subscribe' && parsed.data.upgradeId === '*' && parsed.data.sinceSeq !== undefined) {
    return { ok: false, message: 'invalid message: a subscription to "*" takes no sinceSeq' };
  }
  return { ok: true, message: parsed.data };
}
