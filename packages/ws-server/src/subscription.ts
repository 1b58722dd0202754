import type { ClientConnection } from './client.js';

/** A frame owed to a subscriber, held while its replay runs. */
export interface Pending {
  seq: number;
  frame: Buffer;
}

/**
 * One client's subscription to one upgrade: the last seq it was sent and, while a replay from the
 * store runs, the live frames that arrived meanwhile (sent afterwards, those after the replay only).
 */
export class Subscription {
  /** The seq of the last event (or snapshot) sent to the client. */
  lastSent = 0;
  /** True while a replay runs: live frames are held in `buffer`. */
  replaying = false;
  buffer: Pending[] = [];
  /** Set once unsubscribed or disconnected: nothing more is sent. */
  closed = false;

  constructor(
    readonly client: ClientConnection,
    readonly upgradeId: string,
    /** True for the per-upgrade part of a `*` subscription. */
    readonly wildcard: boolean,
  ) {}

  /** Holds a live frame during a replay; the client counts it against its limit (with its other subscriptions' and its socket's). */
  hold(seq: number, frame: Buffer): void {
    this.buffer.push({ seq, frame });
    this.client.hold(frame);
  }

  /** Takes the held frames (also to drop them). */
  take(): Pending[] {
    const held = this.buffer;
    for (const { frame } of held) this.client.release(frame);
    this.buffer = [];
    return held;
  }
}

/** A client's `*` subscription: one {@link Subscription} per upgrade it may read. */
export class WildcardSubscription {
  readonly children = new Map<string, Subscription>();
  closed = false;
  /** Set once `subscribed` was sent (the store's listing succeeded): no snapshot may precede it. */
  ready = false;
  /** The upgrades this client was told the store could not read, and does not have yet: told once. */
  readonly unreadable = new Set<string>();

  constructor(readonly client: ClientConnection) {}
}
