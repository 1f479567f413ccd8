import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** Props of {@link SecureQueue}. */
export interface SecureQueueProps {
  /**
   * How long a message stays in the queue.
   * @default Duration.days(14) — the SQS maximum, so a dead letter waits for an operator
   */
  readonly retentionPeriod?: Duration;
  /**
   * Visibility timeout; must be at least the consumer's timeout.
   * @default Duration.seconds(30)
   */
  readonly visibilityTimeout?: Duration;
  /**
   * Dead-letter queue for messages received `maxReceiveCount` times.
   * @default none — the queue is itself a dead-letter destination
   */
  readonly deadLetterQueue?: sqs.DeadLetterQueue;
}

/** An SQS queue with SQS-managed encryption and TLS-only access; the base of every Porchlight queue. */
export class SecureQueue extends Construct {
  /** The queue. */
  public readonly queue: sqs.Queue;

  constructor(scope: Construct, id: string, props: SecureQueueProps = {}) {
    super(scope, id);
    const retention = props.retentionPeriod ?? Duration.days(14);
    if (retention.toSeconds() < 60 || retention.toSeconds() > Duration.days(14).toSeconds()) {
      throw new Error(`${id}: retentionPeriod must be between 60 seconds and 14 days`);
    }
    if (props.deadLetterQueue && (props.deadLetterQueue.maxReceiveCount < 1 || props.deadLetterQueue.maxReceiveCount > 1000)) {
      throw new Error(`${id}: deadLetterQueue.maxReceiveCount must be between 1 and 1000`);
    }
    this.queue = new sqs.Queue(this, 'Queue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: retention,
      visibilityTimeout: props.visibilityTimeout ?? Duration.seconds(30),
      deadLetterQueue: props.deadLetterQueue,
      removalPolicy: RemovalPolicy.DESTROY,
    });
  }
}
