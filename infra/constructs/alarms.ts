import { Aws, Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as iot from 'aws-cdk-lib/aws-iot';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** Props of {@link Alarms}. */
export interface AlarmsProps {
  /** Dead-letter queues, by a short name; each gets an alarm on its depth. */
  readonly deadLetterQueues: Readonly<Record<string, sqs.IQueue>>;
  /** Functions, by name; each gets an alarm on its Errors metric. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  /**
   * IoT topic rules, by any name; each gets an alarm on the messages it could not handle (SQL
   * parse errors, throttling). Failed rule actions land in the rule-error queue, alarmed above.
   * @default no rule alarms
   */
  readonly topicRules?: Readonly<Record<string, iot.CfnTopicRule>>;
  /**
   * Where alarm notifications are e-mailed; the address must confirm the subscription. Anything
   * else (chat, paging) subscribes to {@link Alarms.topic}.
   * @default no subscription
   */
  readonly email?: string;
  /**
   * Errors per function in one period that raise the alarm.
   * @default 1
   */
  readonly errorThreshold?: number;
  /**
   * IoT Core authorization failures (connect, publish, subscribe, deliver; MQTT and HTTP) in one
   * period that raise the alarm: an identity acting outside its policy, or a function outside its
   * IAM grant.
   * @default 1
   */
  readonly authorizationFailureThreshold?: number;
  /**
   * Evaluation period.
   * @default Duration.minutes(5)
   */
  readonly period?: Duration;
}

/** IoT Core message-broker metrics that count requests the broker could not authorize. */
export const IOT_AUTHORIZATION_FAILURE_METRICS = ['Connect.AuthError', 'PublishIn.AuthError', 'Subscribe.AuthError', 'PublishOut.AuthError'] as const;
/** IoT Core rule metrics that count messages a rule could not handle (dimension RuleName). */
export const IOT_RULE_FAILURE_METRICS = ['ParseError', 'RuleMessageThrottled'] as const;
const IOT_PROTOCOLS = ['MQTT', 'HTTP'] as const;

function positiveInt(id: string, name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${id}: ${name} must be a positive integer`);
  return value;
}

/**
 * CloudWatch alarms, all notifying one SNS topic: any message in a dead-letter queue (something
 * was given up on), any function error, any message a topic rule could not handle, and IoT Core
 * authorization failures. The topic is encrypted with its own key, which CloudWatch may use to
 * publish (the AWS-managed SNS key does not let it).
 */
export class Alarms extends Construct {
  /** Every alarm, by name. */
  public readonly alarms: Readonly<Record<string, cloudwatch.Alarm>>;
  /** Where every alarm (and its return to OK) is published. */
  public readonly topic: sns.Topic;

  constructor(scope: Construct, id: string, props: AlarmsProps) {
    super(scope, id);
    const threshold = positiveInt(id, 'errorThreshold', props.errorThreshold ?? 1);
    const authThreshold = positiveInt(id, 'authorizationFailureThreshold', props.authorizationFailureThreshold ?? 1);
    const period = props.period ?? Duration.minutes(5);
    if (Object.keys(props.deadLetterQueues).length === 0 && Object.keys(props.functions).length === 0) throw new Error(`${id}: nothing to alarm on`);
    if (props.email !== undefined && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(props.email)) throw new Error(`${id}: email "${props.email}" is not an e-mail address`);

    const key = new kms.Key(this, 'TopicKey', { enableKeyRotation: true, description: 'Porchlight: encrypts the alarm notification topic' });
    key.addToResourcePolicy(new iam.PolicyStatement({
      principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
      actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
      resources: ['*'],
      conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
    }));
    this.topic = new sns.Topic(this, 'Topic', { displayName: 'Porchlight alarms', masterKey: key, enforceSSL: true });
    if (props.email !== undefined) this.topic.addSubscription(new subscriptions.EmailSubscription(props.email));
    const notify = new actions.SnsAction(this.topic);

    const alarms: Record<string, cloudwatch.Alarm> = {};
    const alarm = (name: string, constructId: string, description: string, metric: cloudwatch.IMetric, at: number): void => {
      const a = new cloudwatch.Alarm(this, constructId, {
        alarmDescription: description,
        metric,
        threshold: at,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      a.addAlarmAction(notify);
      a.addOkAction(notify);
      alarms[name] = a;
    };

    for (const [name, queue] of Object.entries(props.deadLetterQueues)) {
      alarm(`dlq-${name}`, `Dlq-${name}`, `Porchlight: messages waiting in the ${name} dead-letter queue`,
        queue.metricApproximateNumberOfMessagesVisible({ period, statistic: 'Maximum' }), 1);
    }
    for (const [name, fn] of Object.entries(props.functions)) {
      alarm(`errors-${name}`, `Errors-${name}`, `Porchlight: the ${name} function failed`, fn.metricErrors({ period, statistic: 'Sum' }), threshold);
    }
    for (const [name, rule] of Object.entries(props.topicRules ?? {})) {
      const ruleName = rule.ruleName ?? rule.ref;
      const usingMetrics = Object.fromEntries(IOT_RULE_FAILURE_METRICS.map((metricName, i) => [
        `m${i}`, new cloudwatch.Metric({ namespace: 'AWS/IoT', metricName, dimensionsMap: { RuleName: ruleName }, period, statistic: 'Sum' }),
      ]));
      alarm(`rule-${name}`, `Rule-${name}`, `Porchlight: IoT rule ${ruleName} could not handle messages (${IOT_RULE_FAILURE_METRICS.join(', ')})`,
        new cloudwatch.MathExpression({ expression: Object.keys(usingMetrics).join(' + '), usingMetrics, period, label: `${ruleName} failures` }), 1);
    }
    const authMetrics = Object.fromEntries(IOT_AUTHORIZATION_FAILURE_METRICS.flatMap((metricName, i) => IOT_PROTOCOLS.map((Protocol, j) => [
      `a${i}${j}`, new cloudwatch.Metric({ namespace: 'AWS/IoT', metricName, dimensionsMap: { Protocol }, period, statistic: 'Sum' }),
    ])));
    alarm('iot-authorization', 'IotAuthorization', 'Porchlight: IoT Core refused requests its policies do not allow (connect, publish, subscribe or deliver)',
      new cloudwatch.MathExpression({ expression: Object.keys(authMetrics).join(' + '), usingMetrics: authMetrics, period, label: 'IoT authorization failures' }), authThreshold);
    this.alarms = alarms;
  }
}
