/**
 * Ordering an agent's connection events. IoT Core lifecycle events may arrive out of order and
 * more than once, and an agent's own status messages (its last will among them) may be handled
 * in a different order than they were published. Each one is reduced to a {@link PresenceMark};
 * the registry keeps the newest, and an event older than it changes nothing, so a disconnect of
 * an old session never marks an agent that has since come back offline.
 */

/** What is known about an agent's connection at one moment. */
export interface PresenceMark {
  readonly event: 'connected' | 'disconnected';
  /** Epoch ms on the broker's clock (lifecycle `timestamp`, or the rule's `timestamp()`). */
  readonly at: number;
  /** IoT Core's `versionNumber` of the connection the event belongs to; it only grows per client id. */
  readonly version?: number;
}

/** How an event relates to the newest one recorded. */
export type PresenceOrder = 'newer' | 'duplicate' | 'stale';

const RANK = { connected: 0, disconnected: 1 } as const;

/**
 * Orders `next` against the newest recorded mark: by connection version when both carry a
 * different one, otherwise by time, and at the same time a disconnect comes after a connect.
 */
export function orderPresence(known: PresenceMark | undefined, next: PresenceMark): PresenceOrder {
  if (known === undefined) return 'newer';
  if (known.version !== undefined && next.version !== undefined && known.version !== next.version) {
    return next.version > known.version ? 'newer' : 'stale';
  }
  if (next.at !== known.at) return next.at > known.at ? 'newer' : 'stale';
  const rank = RANK[next.event] - RANK[known.event];
  return rank > 0 ? 'newer' : rank === 0 ? 'duplicate' : 'stale';
}
