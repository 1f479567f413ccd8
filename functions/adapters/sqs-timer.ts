/**
 * The Timer port over SQS delay messages. SQS delays at most 15 minutes, so an event due later is
 * sent with the maximum delay and the timer function sends it on again until it is due.
 */
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { TimerEvent } from '../../core/model';
import type { Clock, Timer } from '../../core/ports';
import { errorMessage, isRetryableSdkError, ScheduleError, sdkErrorName } from './errors';

/** SQS's longest DelaySeconds. */
export const MAX_DELAY_SECONDS = 900;

/** The body of a timer message, as the timer function parses it. */
export interface TimerMessage {
  readonly event: TimerEvent;
  /** Epoch ms when the event is due. */
  readonly dueAt: number;
}

/** Whole seconds to delay a message due at `dueAt`: rounded up, within SQS's 0..900. */
export function delaySeconds(dueAt: number, now: number): number {
  const seconds = Math.ceil((dueAt - now) / 1000);
  if (!Number.isFinite(seconds)) return 0;
  return Math.min(MAX_DELAY_SECONDS, Math.max(0, seconds));
}

/** Construction options. */
export interface SqsTimerOptions {
  readonly client: SQSClient;
  readonly queueUrl: string;
  readonly clock: Clock;
}

/** Schedules timer events as delayed SQS messages (at-least-once). */
export class SqsTimer implements Timer {
  constructor(private readonly options: SqsTimerOptions) {}

  /** Sends `{event, dueAt}` with the delay left until `dueAt` (at most 15 minutes). */
  async schedule(event: TimerEvent, dueAt: number): Promise<void> {
    const body: TimerMessage = { event, dueAt };
    try {
      await this.options.client.send(
        new SendMessageCommand({
          QueueUrl: this.options.queueUrl,
          MessageBody: JSON.stringify(body),
          DelaySeconds: delaySeconds(dueAt, this.options.clock.now()),
        }),
      );
    } catch (err) {
      throw new ScheduleError(`${event.kind} timer for task ${event.taskId}: ${sdkErrorName(err)}: ${errorMessage(err)}`, isRetryableSdkError(err), { cause: err });
    }
  }
}
