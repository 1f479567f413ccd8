/**
 * The body of a timer message on the SQS queue, as SqsTimer writes it: `{event, dueAt}`.
 */
import { z } from 'zod';
import { ValidationError } from '../../core/errors';
import type { TimerEvent } from '../../core/model';
import { Id } from '../../core/schemas';
import type { TimerMessage } from '../adapters/sqs-timer';

/** A TimerEvent (core/model.ts), checked. */
export const TimerEventSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('proposal-window'), taskId: Id }),
  z.object({ kind: z.literal('lease'), taskId: Id, stepId: Id, epoch: z.number().int().positive() }),
  z.object({ kind: z.literal('deadline'), taskId: Id }),
  z.object({ kind: z.literal('retention'), taskId: Id }),
  z.object({ kind: z.literal('dispatch'), taskId: Id }),
]) satisfies z.ZodType<TimerEvent>;

/** `{event, dueAt}`. */
export const TimerMessageSchema = z.object({ event: TimerEventSchema, dueAt: z.number().int().nonnegative() });

/** Parses a timer message body; ValidationError (`invalid-json` / `invalid-payload`) saying what is wrong. */
export function parseTimerMessage(body: string): TimerMessage {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (err) {
    throw new ValidationError('invalid-json', `timer message is not JSON: ${(err as Error).message}`, [], { cause: err });
  }
  const result = TimerMessageSchema.safeParse(json);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`);
    throw new ValidationError('invalid-payload', `timer message is invalid: ${issues.join('; ')}`, issues);
  }
  return result.data;
}
