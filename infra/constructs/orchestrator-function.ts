import { Duration, Stack, Token } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as path from 'node:path';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DEFAULT_ORCHESTRATOR_CONFIG as DEFAULTS } from '../../core/orchestrator';
import { iotTopicPattern } from '../../core/policy';
import { functionPublications, handlerEntry, type FunctionName } from '../rules/catalogue';
import { acknowledge, LAMBDA_BASIC_EXECUTION_FINDING, wildcardResourceFinding } from './acknowledge';

/** The orchestrator's tunables, passed to every function as environment variables; defaults are core's DEFAULT_ORCHESTRATOR_CONFIG. */
export interface OrchestratorSettings {
  /** @default 60000 (LEASE_MS) */
  readonly leaseMs?: number;
  /** @default 3 (MAX_ATTEMPTS) */
  readonly maxAttempts?: number;
  /** @default 2000 (PROPOSAL_WINDOW_MS) */
  readonly proposalWindowMs?: number;
  /** The least time a window stays open, even once every eligible agent answered. @default 200 (MIN_PROPOSAL_WINDOW_MS) */
  readonly minProposalWindowMs?: number;
  /** How long a task without a satisfiable plan waits for bids from agents that may still answer; 0 fails at once. @default 60000 (MAX_WAIT_FOR_BIDS_MS) */
  readonly maxWaitForBidsMs?: number;
  /** How often a task waiting for bids re-plans. @default 1000 (BID_RECHECK_MS) */
  readonly bidRecheckMs?: number;
  /** @default 86400000, 24 h (RETENTION_MS) */
  readonly retentionMs?: number;
  /** @default 900000, 15 min (DEFAULT_DEADLINE_MS) */
  readonly defaultDeadlineMs?: number;
  /** How long a ready step may wait for a capable agent to come back. @default 60000 (MAX_WAIT_FOR_AGENT_MS) */
  readonly maxWaitForAgentMs?: number;
  /** How often a waiting step retries dispatch. @default 1000 (DISPATCH_RETRY_MS) */
  readonly dispatchRetryMs?: number;
}

/** Props of {@link OrchestratorFunction}. */
export interface OrchestratorFunctionProps {
  /** Which handler: `functions/<name>/handler.ts`. */
  readonly name: FunctionName;
  /** The Porchlight table (read and write), imported by its literal name. */
  readonly table: dynamodb.ITable;
  /** The timer queue (send only). */
  readonly timerQueue: sqs.IQueue;
  /** The secret fencing tokens are derived from (read only; FENCING_KEY_SECRET_ARN). */
  readonly fencingKey: secretsmanager.ISecret;
  /**
   * Whether the function reads an identity's thing groups to verify accreditations.
   * @default false
   */
  readonly readsThingGroups?: boolean;
  /**
   * Memory, MB (256–512).
   * @default 256
   */
  readonly memorySize?: number;
  /**
   * Timeout.
   * @default Duration.seconds(30)
   */
  readonly timeout?: Duration;
  /**
   * Async invocations (IoT rules, EventBridge): where events go after the retries fail. Omit for
   * functions invoked synchronously (the SQS-fed timer).
   * @default no on-failure destination
   */
  readonly onFailure?: sqs.IQueue;
  /** @default the defaults of {@link OrchestratorSettings} */
  readonly settings?: OrchestratorSettings;
  /**
   * How long the function's logs are kept.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

/** The repository root: bundling resolves dependencies from its lock file. */
const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** IoT topic resource patterns of the kinds a function publishes, retained ones apart (they also need iot:RetainPublish). */
function publishPatterns(name: FunctionName): { plain: string[]; retained: string[] } {
  const publications = functionPublications(name);
  const patterns = (retained: boolean): string[] => [...new Set(publications.filter((p) => p.retained === retained).flatMap((p) => p.filters.map(iotTopicPattern)))];
  return { plain: patterns(false), retained: patterns(true) };
}

/** The table's name, which must be a literal so the index grant can be acknowledged by name. */
function literalTableName(table: dynamodb.ITable): string {
  if (Token.isUnresolved(table.tableName)) throw new Error(`table ${table.node.path} must be imported by its literal name (Table.fromTableName), not by reference`);
  return table.tableName;
}

function positiveInt(name: string, value: number): string {
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got ${value}`);
  return String(value);
}

/** Zero allowed: `maxWaitForAgentMs: 0` turns waiting for an agent off. */
function nonNegativeInt(name: string, value: number): string {
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got ${value}`);
  return String(value);
}

/**
 * One orchestrator Lambda function (Node.js, ARM64, esbuild bundle with the AWS SDK inside) with
 * exactly the permissions its handler needs: table read/write, send to the timer queue,
 * iot:Publish on the topics of every kind the core entry points it calls may publish
 * (core/publications.ts via infra/rules/catalogue.ts; iot:RetainPublish as well on retained
 * kinds, which includes clearing outputs after retention), and IoT endpoint discovery.
 */
export class OrchestratorFunction extends Construct {
  /** The function. */
  public readonly function: nodejs.NodejsFunction;

  constructor(scope: Construct, id: string, props: OrchestratorFunctionProps) {
    super(scope, id);
    const memorySize = props.memorySize ?? 256;
    if (memorySize < 256 || memorySize > 512) throw new Error(`${id}: memorySize must be 256–512 MB, got ${memorySize}`);
    const timeout = props.timeout ?? Duration.seconds(30);
    if (timeout.toSeconds() < 3 || timeout.toSeconds() > 300) throw new Error(`${id}: timeout must be 3–300 seconds`);
    const s = props.settings ?? {};

    const logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH });
    this.function = new nodejs.NodejsFunction(this, 'Function', {
      entry: handlerEntry(props.name),
      projectRoot: REPO_ROOT,
      depsLockFilePath: path.join(REPO_ROOT, 'package-lock.json'),
      handler: 'handler',
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize,
      timeout,
      logGroup,
      description: `Porchlight ${props.name}`,
      bundling: {
        minify: true,
        sourceMap: true,
        // The SDK is bundled so the deployed code runs the versions the tests ran.
        externalModules: [],
      },
      environment: {
        NODE_OPTIONS: '--enable-source-maps',
        TABLE_NAME: props.table.tableName,
        TIMER_QUEUE_URL: props.timerQueue.queueUrl,
        FENCING_KEY_SECRET_ARN: props.fencingKey.secretArn,
        POWERTOOLS_SERVICE_NAME: `porchlight-${props.name}`,
        POWERTOOLS_METRICS_NAMESPACE: 'Porchlight',
        LEASE_MS: positiveInt('leaseMs', s.leaseMs ?? DEFAULTS.leaseMs),
        MAX_ATTEMPTS: positiveInt('maxAttempts', s.maxAttempts ?? DEFAULTS.maxAttempts),
        PROPOSAL_WINDOW_MS: positiveInt('proposalWindowMs', s.proposalWindowMs ?? DEFAULTS.defaultProposalWindowMs),
        MIN_PROPOSAL_WINDOW_MS: nonNegativeInt('minProposalWindowMs', s.minProposalWindowMs ?? DEFAULTS.minProposalWindowMs),
        MAX_WAIT_FOR_BIDS_MS: nonNegativeInt('maxWaitForBidsMs', s.maxWaitForBidsMs ?? DEFAULTS.maxWaitForBidsMs),
        BID_RECHECK_MS: positiveInt('bidRecheckMs', s.bidRecheckMs ?? DEFAULTS.bidRecheckMs),
        RETENTION_MS: positiveInt('retentionMs', s.retentionMs ?? DEFAULTS.retentionMs),
        DEFAULT_DEADLINE_MS: positiveInt('defaultDeadlineMs', s.defaultDeadlineMs ?? DEFAULTS.defaultDeadlineMs),
        MAX_WAIT_FOR_AGENT_MS: nonNegativeInt('maxWaitForAgentMs', s.maxWaitForAgentMs ?? DEFAULTS.maxWaitForAgentMs),
        DISPATCH_RETRY_MS: positiveInt('dispatchRetryMs', s.dispatchRetryMs ?? DEFAULTS.dispatchRetryMs),
      },
    });

    props.table.grantReadWriteData(this.function);
    props.timerQueue.grantSendMessages(this.function);
    props.fencingKey.grantRead(this.function);
    if (props.onFailure) {
      this.function.configureAsyncInvoke({ retryAttempts: 2, onFailure: new destinations.SqsDestination(props.onFailure) });
    }

    const stack = Stack.of(this);
    const topicArn = (p: string): string => stack.formatArn({ service: 'iot', resource: 'topic', resourceName: p });
    const { plain, retained } = publishPatterns(props.name);
    if (plain.length > 0) this.function.addToRolePolicy(new iam.PolicyStatement({ actions: ['iot:Publish'], resources: plain.map(topicArn) }));
    if (retained.length > 0) {
      this.function.addToRolePolicy(new iam.PolicyStatement({ actions: ['iot:Publish', 'iot:RetainPublish'], resources: retained.map(topicArn) }));
    }
    this.function.addToRolePolicy(new iam.PolicyStatement({ actions: ['iot:DescribeEndpoint'], resources: ['*'] }));
    if (props.readsThingGroups) {
      this.function.addToRolePolicy(new iam.PolicyStatement({
        actions: ['iot:ListThingGroupsForThing'],
        resources: [stack.formatArn({ service: 'iot', resource: 'thing', resourceName: '*' })],
      }));
    }

    acknowledge(this.function, 'AWSLambdaBasicExecutionRole only lets the function write its own CloudWatch log streams.', LAMBDA_BASIC_EXECUTION_FINDING);
    const nagArn = (resource: string): string => `arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:${resource}`;
    acknowledge(this.function, 'The wildcards of an IoT topic ARN stand for task, agent, step and pool ids, which exist only at run time; the topic structure itself is fixed.',
      ...[...plain, ...retained].map((p) => wildcardResourceFinding(nagArn(`topic/${p}`))));
    acknowledge(this.function, 'iot:DescribeEndpoint has no resource type; IAM accepts only "*" for it.', wildcardResourceFinding('*'));
    acknowledge(this.function, 'DynamoDB grants include the table\'s own indexes (index/*): bySkill for matching and byDue for the sweeper.',
      wildcardResourceFinding(`arn:<AWS::Partition>:dynamodb:<AWS::Region>:<AWS::AccountId>:table/${literalTableName(props.table)}/index/*`));
    if (props.readsThingGroups) {
      acknowledge(this.function, 'ListThingGroupsForThing is asked about whichever identity sent the résumé, known only at run time.', wildcardResourceFinding(nagArn('thing/*')));
    }
  }
}
