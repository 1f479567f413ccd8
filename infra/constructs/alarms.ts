import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** Props of {@link Alarms}. */
export interface AlarmsProps {
  /** Dead-letter queues, by a short name; each gets an alarm on its depth. */
  readonly deadLetterQueues: Readonly<Record<string, sqs.IQueue>>;
  /** Functions, by name; each gets an alarm on its Errors metric. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  /**
   * Errors per function in one period that raise the alarm.
   * @default 1
   */
  readonly errorThreshold?: number;
  /**
   * Evaluation period.
   * @default Duration.minutes(5)
   */
  readonly period?: Duration;
}

/**
 * CloudWatch alarms: any message in a dead-letter queue (something was given up on) and any
 * function error. Actions are left to the operator (an SNS topic, a chat bot).
 */
export class Alarms extends Construct {
  /** Every alarm, by name. */
  public readonly alarms: Readonly<Record<string, cloudwatch.Alarm>>;

  constructor(scope: Construct, id: string, props: AlarmsProps) {
    super(scope, id);
    const threshold = props.errorThreshold ?? 1;
    if (!Number.isInteger(threshold) || threshold < 1) throw new Error(`${id}: errorThreshold must be a positive integer`);
    const period = props.period ?? Duration.minutes(5);
    if (Object.keys(props.deadLetterQueues).length === 0 && Object.keys(props.functions).length === 0) throw new Error(`${id}: nothing to alarm on`);
    const alarms: Record<string, cloudwatch.Alarm> = {};
    for (const [name, queue] of Object.entries(props.deadLetterQueues)) {
      alarms[`dlq-${name}`] = new cloudwatch.Alarm(this, `Dlq-${name}`, {
        alarmDescription: `Porchlight: messages waiting in the ${name} dead-letter queue`,
        metric: queue.metricApproximateNumberOfMessagesVisible({ period, statistic: 'Maximum' }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }
    for (const [name, fn] of Object.entries(props.functions)) {
      alarms[`errors-${name}`] = new cloudwatch.Alarm(this, `Errors-${name}`, {
        alarmDescription: `Porchlight: the ${name} function failed`,
        metric: fn.metricErrors({ period, statistic: 'Sum' }),
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }
    this.alarms = alarms;
  }
}
