import { Stack, type StackProps } from 'aws-cdk-lib';
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

  constructor(scope: Construct, id: string, props: StatefulStackProps = {}) {
    super(scope, id, props);
    this.tableName = props.table?.tableName ?? `${this.stackName}-table`;
    this.table = new PorchlightTable(this, 'Table', { ...props.table, tableName: this.tableName }).table;
    const timers = new TimerQueue(this, 'Timers', props.timers);
    this.timerQueue = timers.queue;
    this.timerDeadLetterQueue = timers.deadLetterQueue;
    acknowledge(this.timerDeadLetterQueue, 'This queue is the dead-letter queue of the timer queue; a dead-letter queue of its own would only move the problem.', 'AwsSolutions-SQS3');
    this.policies = new AgentPolicies(this, 'Policies', props.policies);
    acknowledgeCustomResourceProvider(this);
  }
}
