/**
 * The transactional outbox: messages a transition produced are saved with the task, published
 * after the save, and removed once published. A crash between the two leaves them in the record,
 * where the sweeper or the next transition finds and publishes them; receivers tolerate the
 * duplicates this can cause (assignments are deduplicated by task, step and epoch; a status
 * carries a version).
 */
import { PayloadTooLargeError } from './errors';
import type { JsonValue } from './schemas';
import type { OutboundMessage } from './model';
import type { Fencer, Publisher } from './ports';

/**
 * Appends `message` to `outbox`. A retained message supersedes any earlier retained message on
 * the same topic still waiting in the outbox: only the latest retained value matters, and
 * publishing an older one after it would leave a stale snapshot retained on the broker.
 */
export function enqueue(outbox: readonly OutboundMessage[], message: OutboundMessage): OutboundMessage[] {
  const kept = message.retain ? outbox.filter((m) => !(m.retain && m.topic === message.topic)) : [...outbox];
  kept.push(message);
  return kept;
}

/** Appends every message in order, with the same superseding rule as {@link enqueue}. */
export function enqueueAll(outbox: readonly OutboundMessage[], messages: readonly OutboundMessage[]): OutboundMessage[] {
  return messages.reduce<OutboundMessage[]>((acc, m) => enqueue(acc, m), [...outbox]);
}

/** What a flush achieved. */
export interface FlushResult {
  /** Messages the publisher accepted, in order. */
  readonly published: readonly OutboundMessage[];
  /** Messages still to publish: the one that failed and everything after it. */
  readonly remaining: readonly OutboundMessage[];
  /** Why publishing stopped, when it did. */
  readonly error?: unknown;
  /** Messages the broker can never take (over its payload limit), skipped so they do not block the rest. */
  readonly dropped: readonly { readonly message: OutboundMessage; readonly error: PayloadTooLargeError }[];
}

/**
 * Publishes `messages` in order and stops at the first failure, so a later retained snapshot is
 * never published ahead of an earlier one that failed. A message over the broker's payload limit
 * is the exception: no retry can publish it, and stopping there would hold every later message
 * (the final status among them) back for good, so it is skipped and reported in `dropped`.
 */
export async function flush(publisher: Publisher, messages: readonly OutboundMessage[]): Promise<FlushResult> {
  const published: OutboundMessage[] = [];
  const dropped: { message: OutboundMessage; error: PayloadTooLargeError }[] = [];
  for (const [i, message] of messages.entries()) {
    try {
      await publisher.publish(message);
    } catch (error) {
      if (error instanceof PayloadTooLargeError) {
        dropped.push({ message, error });
        continue;
      }
      return { published, remaining: messages.slice(i), error, dropped };
    }
    published.push(message);
  }
  return { published, remaining: [], dropped };
}

/**
 * A stable JSON serialisation (object keys sorted, `undefined` members dropped) used to recognise
 * a redelivered message: storage such as DynamoDB does not keep key order, so plain
 * `JSON.stringify` would call two equal values different.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value)) ?? 'undefined';
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => (v === undefined ? null : sortKeys(v)));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}

/**
 * A publisher that fills in the fencing token of every assignment (`OutboundMessage.fence`) as
 * its payload's `token` just before publishing, and drops the marker: the token exists only on
 * the wire to the assignee, never in a stored task or outbox.
 */
export function withFencingTokens(publisher: Publisher, fencer: Fencer): Publisher {
  return {
    publish: async (message: OutboundMessage): Promise<void> => {
      const { fence, ...rest } = message;
      if (fence === undefined) return publisher.publish(rest);
      if (rest.payload === null || typeof rest.payload !== 'object' || Array.isArray(rest.payload)) {
        throw new TypeError(`message on ${rest.topic} carries a fence but its payload is not an object`);
      }
      const token = await fencer.token(fence.taskId, fence.stepId, fence.epoch);
      const payload: JsonValue = { ...rest.payload, token };
      return publisher.publish({ ...rest, payload });
    },
  };
}
