import { Duration } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { SecureQueue } from './secure-queue';

/** Props of {@link TimerQueue}. */
export interface TimerQueueProps {
  /**
   * Visibility timeout; SQS event sources need it at least as long as the timer function's timeout.
   * @default Duration.minutes(3)
   */
  readonly visibilityTimeout?: Duration;
  /**
   * Receives before a timer message moves to the dead-letter queue.
   * @default 5
   */
  readonly maxReceiveCount?: number;
}

/**
 * The timer port in the cloud: delayed SQS messages (proposal windows, leases, deadlines) for the
 * timer function, with a dead-letter queue for timers that keep failing.
 */
export class TimerQueue extends Construct {
  /** The queue timers are sent to (DelaySeconds per message, at most 15 minutes). */
  public readonly queue: sqs.Queue;
  /** Where timers go after `maxReceiveCount` failed receives. */
  public readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: TimerQueueProps = {}) {
    super(scope, id);
    const maxReceiveCount = props.maxReceiveCount ?? 5;
    if (!Number.isInteger(maxReceiveCount) || maxReceiveCount < 1) throw new Error(`${id}: maxReceiveCount must be a positive integer`);
    this.deadLetterQueue = new SecureQueue(this, 'DeadLetters').queue;
    this.queue = new SecureQueue(this, 'Timers', {
      visibilityTimeout: props.visibilityTimeout ?? Duration.minutes(3),
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount },
    }).queue;
  }
}
