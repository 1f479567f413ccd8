import { RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { acknowledge } from '../constructs/acknowledge';
import { AgentPolicies, acknowledgeCustomResourceProvider, type AgentPoliciesProps } from '../constructs/agent-policies';
import { PorchlightTable, type PorchlightTableProps } from '../constructs/porchlight-table';
import { TimerQueue, type TimerQueueProps } from '../constructs/timer-queue';

/** Props of {@link StatefulStack}. */
export interface StatefulStackProps extends StackProps {
  /** @default PorchlightTable defaults, named `<stack name>-table` */
  readonly table?: PorchlightTableProps;
  /** @default TimerQueue defaults */
  readonly timers?: TimerQueueProps;
  /** @default AgentPolicies defaults */
  readonly policies?: AgentPoliciesProps;
}

/**
 * What outlives a deployment of the functions: the table, the timer queue and its dead-letter
 * queue, and the IoT policies and accreditation thing groups identities are attached to.
 */
export class StatefulStack extends Stack {
  /** The Porchlight table. */
  public readonly table: dynamodb.Table;
  /** The table's literal name, for importing it elsewhere. */
  public readonly tableName: string;
  /** The timer queue. */
  public readonly timerQueue: sqs.Queue;
  /** The timer queue's dead-letter queue. */
  public readonly timerDeadLetterQueue: sqs.Queue;
  /** IoT policies per role and accreditation thing groups. */
  public readonly policies: AgentPolicies;
  /** The key fencing tokens are derived from: read by the functions, by nobody else. */
  public readonly fencingKey: secretsmanager.Secret;

  constructor(scope: Construct, id: string, props: StatefulStackProps = {}) {
    super(scope, id, props);
    this.tableName = props.table?.tableName ?? `${this.stackName}-table`;
    this.table = new PorchlightTable(this, 'Table', { ...props.table, tableName: this.tableName }).table;
    const timers = new TimerQueue(this, 'Timers', props.timers);
    this.timerQueue = timers.queue;
    this.timerDeadLetterQueue = timers.deadLetterQueue;
    acknowledge(this.timerDeadLetterQueue, 'This queue is the dead-letter queue of the timer queue; a dead-letter queue of its own would only move the problem.', 'AwsSolutions-SQS3');
    this.policies = new AgentPolicies(this, 'Policies', props.policies);
    this.fencingKey = new secretsmanager.Secret(this, 'FencingKey', {
      description: 'Porchlight: the key fencing tokens are derived from (HMAC-SHA-256 of task, step and epoch)',
      generateSecretString: { passwordLength: 64, excludePunctuation: true, includeSpace: false },
      // Replacing it would refuse every live assignment's output: it goes only with the deployment's data.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    acknowledge(
      this.fencingKey,
      'Rotating the fencing key refuses the outputs of every assignment made under the old key (their leases then expire and the steps are re-assigned); it is rotated by replacing the secret value during a quiet period, not on a schedule.',
      'AwsSolutions-SMG4',
    );
    acknowledgeCustomResourceProvider(this);
  }
}
