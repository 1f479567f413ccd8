/**
 * The event an IoT topic rule hands to a Lambda function, and the local rules engine builds
 * identically. Every rule selects the raw payload as base64 rather than `*`, so a payload that
 * is not JSON still reaches the handler (and gets a specific rejection) and payload fields can
 * never shadow the envelope's.
 */
import { z } from 'zod';

/** `SELECT encode(*, 'base64') AS payload, topic() AS topic, clientid() AS clientId, timestamp() AS receivedAt, … FROM '<filter>'` */
export const RuleEvent = z.object({
  /** The raw MQTT payload, base64. */
  payload: z.string(),
  /** The full topic the message was published on. */
  topic: z.string().min(1),
  /** The publisher's client id on IoT Core (`clientid()`); absent locally, where the broker cannot tell. */
  clientId: z.string().optional(),
  /** Broker receive time, epoch ms (`timestamp()`). */
  receivedAt: z.number().int().nonnegative(),
}).loose();
export type RuleEvent = z.infer<typeof RuleEvent>;

/** An inbound message as core sees it: the envelope with the payload decoded to bytes. */
export interface InboundMessage {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly clientId?: string;
  readonly receivedAt: number;
}
