/**
 * The settings every Porchlight function reads from its environment (shared names: TABLE_NAME,
 * TIMER_QUEUE_URL, IOT_DATA_ENDPOINT, DYNAMODB_ENDPOINT, SQS_ENDPOINT, ACCREDITATION_FILE,
 * FENCING_KEY_SECRET_ARN or FENCING_KEY_FILE, and the
 * orchestrator's LEASE_MS, MAX_ATTEMPTS, PROPOSAL_WINDOW_MS, RETENTION_MS, DEFAULT_DEADLINE_MS,
 * MIN_PROPOSAL_WINDOW_MS, MAX_WAIT_FOR_BIDS_MS, BID_RECHECK_MS, MAX_WAIT_FOR_AGENT_MS, DISPATCH_RETRY_MS).
 */
import { DEFAULT_ORCHESTRATOR_CONFIG, type OrchestratorConfig } from '../../core/orchestrator';
import { ConfigError } from '../../core/errors';
import { Env, type EnvSource } from './env';

/** The functions, as named in the rule catalogue and the CDK stacks. */
export type FunctionName = 'intake' | 'planner' | 'progress' | 'registry' | 'presence' | 'timer' | 'sweeper';

/** Everything a function is configured with. */
export interface FunctionSettings {
  readonly functionName: FunctionName;
  readonly tableName: string;
  readonly timerQueueUrl: string;
  /** https URL of the IoT data endpoint; when absent it is discovered with DescribeEndpoint. */
  readonly iotDataEndpoint?: string;
  /** Local stack only: DynamoDB Local. */
  readonly dynamodbEndpoint?: string;
  /** Local stack only: the local queue. */
  readonly sqsEndpoint?: string;
  /** Local stack only: the local CA's accreditation file; else IoT thing groups are asked. */
  readonly accreditationFile?: string;
  /** Where the fencing key is: a Secrets Manager secret (AWS) or a file (local stack). */
  readonly fencingKey: { readonly secretArn: string } | { readonly file: string };
  readonly region?: string;
  readonly orchestrator: OrchestratorConfig;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** FENCING_KEY_SECRET_ARN or FENCING_KEY_FILE: exactly one. */
function fencingKeyOf(env: Env): FunctionSettings['fencingKey'] {
  const secretArn = env.optionalString('FENCING_KEY_SECRET_ARN');
  const file = env.optionalString('FENCING_KEY_FILE');
  if (secretArn !== undefined && file !== undefined) throw new ConfigError('set FENCING_KEY_SECRET_ARN or FENCING_KEY_FILE, not both');
  if (secretArn !== undefined) return { secretArn };
  if (file !== undefined) return { file };
  throw new ConfigError('missing environment variable: FENCING_KEY_SECRET_ARN (AWS) or FENCING_KEY_FILE (local stack) must name the fencing key');
}

/** Reads and validates the settings; throws ConfigError naming the first bad variable. */
export function loadSettings(functionName: FunctionName, source: EnvSource = process.env): FunctionSettings {
  const env = new Env(source);
  const d = DEFAULT_ORCHESTRATOR_CONFIG;
  const optional = <K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> =>
    (value === undefined ? {} : { [key]: value }) as Partial<Record<K, V>>;
  return {
    functionName,
    tableName: env.string('TABLE_NAME'),
    timerQueueUrl: env.url('TIMER_QUEUE_URL'),
    ...optional('iotDataEndpoint', env.optionalUrl('IOT_DATA_ENDPOINT')),
    ...optional('dynamodbEndpoint', env.optionalUrl('DYNAMODB_ENDPOINT')),
    ...optional('sqsEndpoint', env.optionalUrl('SQS_ENDPOINT')),
    ...optional('accreditationFile', env.optionalString('ACCREDITATION_FILE')),
    fencingKey: fencingKeyOf(env),
    ...optional('region', env.optionalString('AWS_REGION')),
    orchestrator: {
      leaseMs: env.int('LEASE_MS', d.leaseMs, { min: 100, max: DAY_MS }),
      maxAttempts: env.int('MAX_ATTEMPTS', d.maxAttempts, { min: 1, max: 100 }),
      defaultProposalWindowMs: env.int('PROPOSAL_WINDOW_MS', d.defaultProposalWindowMs, { min: 50, max: 60_000 }),
      minProposalWindowMs: env.int('MIN_PROPOSAL_WINDOW_MS', d.minProposalWindowMs, { min: 0, max: 60_000 }),
      maxWaitForBidsMs: env.int('MAX_WAIT_FOR_BIDS_MS', d.maxWaitForBidsMs, { min: 0, max: DAY_MS }),
      bidRecheckMs: env.int('BID_RECHECK_MS', d.bidRecheckMs, { min: 50, max: 15 * 60 * 1000 }),
      retentionMs: env.int('RETENTION_MS', d.retentionMs, { min: 1_000, max: 365 * DAY_MS }),
      defaultDeadlineMs: env.int('DEFAULT_DEADLINE_MS', d.defaultDeadlineMs, { min: 100, max: 30 * DAY_MS }),
      maxWaitForAgentMs: env.int('MAX_WAIT_FOR_AGENT_MS', d.maxWaitForAgentMs, { min: 0, max: DAY_MS }),
      dispatchRetryMs: env.int('DISPATCH_RETRY_MS', d.dispatchRetryMs, { min: 50, max: 15 * 60 * 1000 }),
    },
  };
}
