import { Duration, Stack, type StackProps } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { acknowledge } from '../constructs/acknowledge';
import { Alarms } from '../constructs/alarms';
import { IotLogging, type IotLogLevel } from '../constructs/iot-logging';
import { OrchestratorFunction, type OrchestratorSettings } from '../constructs/orchestrator-function';
import { SecureQueue } from '../constructs/secure-queue';
import { TopicRules } from '../constructs/topic-rules';
import { FUNCTION_NAMES, type FunctionName } from '../rules/catalogue';

/** Props of {@link ServiceStack}. */
export interface ServiceStackProps extends StackProps {
  /** The Porchlight table's literal name (from the stateful stack). */
  readonly tableName: string;
  /** The timer queue (from the stateful stack). */
  readonly timerQueue: sqs.IQueue;
  /** The fencing key secret (from the stateful stack). */
  readonly fencingKey: secretsmanager.ISecret;
  /** The timer queue's dead-letter queue, alarmed on here. */
  readonly timerDeadLetterQueue: sqs.IQueue;
  /** @default OrchestratorSettings defaults */
  readonly settings?: OrchestratorSettings;
  /**
   * How often the sweeper looks for overdue work.
   * @default Duration.minutes(1)
   */
  readonly sweepInterval?: Duration;
  /**
   * How long the functions' and IoT Core's logs are kept.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * IoT Core logging (account- and region-wide: turn it off where the account already configures
   * it), or `false` for none.
   * @default { level: 'ERROR' }
   */
  readonly iotLogging?: { readonly level?: IotLogLevel } | false;
  /**
   * An address alarm notifications are e-mailed to (it must confirm the subscription).
   * @default none: subscribe to the alarm topic yourself
   */
  readonly alarmEmail?: string;
}

/** How each function is sized, and whether it reads thing groups; what it may publish comes from the publication catalogue. */
const FUNCTIONS: Readonly<Record<FunctionName, { readsThingGroups?: boolean; memorySize?: number; timeout?: Duration }>> = {
  intake: {},
  planner: { memorySize: 512 },
  progress: {},
  registry: { readsThingGroups: true },
  presence: {},
  timer: { memorySize: 512 },
  sweeper: { memorySize: 512, timeout: Duration.seconds(55) },
};

/**
 * The stateless half: the seven orchestrator functions, the IoT topic rules that invoke them,
 * the timer event source, the sweeper schedule, the dead-letter queues, IoT Core logging and the
 * alarms with their notification topic.
 */
export class ServiceStack extends Stack {
  /** The functions, by name. */
  public readonly functions: Readonly<Record<FunctionName, lambda.IFunction>>;
  /** Messages whose IoT rule action failed. */
  public readonly ruleErrorQueue: sqs.Queue;
  /** Async invocations (rules, schedule) that failed after their retries. */
  public readonly functionFailureQueue: sqs.Queue;
  /** The topic rules. */
  public readonly topicRules: TopicRules;
  /** The alarms and their notification topic. */
  public readonly alarms: Alarms;
  /** IoT Core logging, unless turned off. */
  public readonly iotLogging?: IotLogging;

  constructor(scope: Construct, id: string, props: ServiceStackProps) {
    super(scope, id, props);
    const sweepInterval = props.sweepInterval ?? Duration.minutes(1);
    if (sweepInterval.toSeconds() < 60) throw new Error(`${id}: sweepInterval must be at least one minute (EventBridge's resolution)`);

    this.ruleErrorQueue = new SecureQueue(this, 'RuleErrors').queue;
    this.functionFailureQueue = new SecureQueue(this, 'FunctionFailures').queue;
    for (const q of [this.ruleErrorQueue, this.functionFailureQueue]) {
      acknowledge(q, 'This queue is itself a dead-letter destination (IoT rule error action / Lambda on-failure destination); it is alarmed on, not redriven automatically.', 'AwsSolutions-SQS3');
    }

    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const table = dynamodb.Table.fromTableName(this, 'Table', props.tableName);
    const functions = {} as Record<FunctionName, lambda.IFunction>;
    for (const name of FUNCTION_NAMES) {
      const spec = FUNCTIONS[name];
      functions[name] = new OrchestratorFunction(this, `Fn-${name}`, {
        name,
        table,
        timerQueue: props.timerQueue,
        fencingKey: props.fencingKey,
        readsThingGroups: spec.readsThingGroups,
        memorySize: spec.memorySize,
        timeout: spec.timeout,
        settings: props.settings,
        logRetention,
        // The timer is polled synchronously by its event source; the rest are invoked asynchronously.
        onFailure: name === 'timer' ? undefined : this.functionFailureQueue,
      }).function;
    }
    this.functions = functions;

    functions.timer.addEventSource(new sources.SqsEventSource(props.timerQueue, { batchSize: 10, reportBatchItemFailures: true }));
    new events.Rule(this, 'Sweep', {
      description: 'Porchlight safety net: expire overdue windows, leases and deadlines',
      schedule: events.Schedule.rate(sweepInterval),
      targets: [new targets.LambdaFunction(functions.sweeper, { retryAttempts: 2, maxEventAge: Duration.minutes(5) })],
    });

    this.topicRules = new TopicRules(this, 'Rules', {
      targets: { intake: functions.intake, planner: functions.planner, progress: functions.progress, registry: functions.registry, presence: functions.presence },
      errorQueue: this.ruleErrorQueue,
    });

    this.alarms = new Alarms(this, 'Alarms', {
      deadLetterQueues: { timers: props.timerDeadLetterQueue, 'rule-errors': this.ruleErrorQueue, 'function-failures': this.functionFailureQueue },
      functions,
      topicRules: this.topicRules.rules,
      ...(props.alarmEmail !== undefined ? { email: props.alarmEmail } : {}),
    });
    if (props.iotLogging !== false) this.iotLogging = new IotLogging(this, 'IotLogging', { retention: logRetention, ...(props.iotLogging?.level !== undefined ? { level: props.iotLogging.level } : {}) });
  }
}
