/**
 * Composition root shared by the functions: SDK clients (built once per cold start, with the
 * local stack's endpoint overrides) and the core services wired over the adapters.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeEndpointCommand, IoTClient } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { ConfigError } from '../../core/errors';
import { Orchestrator } from '../../core/orchestrator';
import type { AccreditationVerifier, Clock } from '../../core/ports';
import { RegistryService } from '../../core/registry-service';
import { FileAccreditationVerifier, IotAccreditationVerifier } from '../adapters/accreditation-verifiers';
import { DynamoRegistry } from '../adapters/dynamo-registry';
import { DynamoTaskStore } from '../adapters/dynamo-task-store';
import { AdapterError, errorMessage, isRetryableSdkError, sdkErrorName } from '../adapters/errors';
import { IotDataPublisher } from '../adapters/iot-data-publisher';
import { SqsTimer } from '../adapters/sqs-timer';
import { fileKey, HmacFencer, secretsManagerKey } from '../adapters/fencer';
import { sha256, SystemClock } from '../adapters/system';
import { createObservability, type Observability } from './observability';
import type { FunctionSettings } from './settings';

/** The SDK clients a function uses. */
export interface AwsClients {
  readonly documentClient: DynamoDBDocumentClient;
  readonly sqs: SQSClient;
  readonly iot: IoTClient;
  readonly secrets: SecretsManagerClient;
  /** The data-plane client, once its endpoint is known (discovered at most once per process). */
  readonly iotData: () => Promise<IoTDataPlaneClient>;
}

/** Region used against local endpoints when AWS_REGION is unset (DynamoDB Local ignores it). */
const LOCAL_REGION = 'us-east-1';

/**
 * Builds the clients. An endpoint override means the local stack, which needs no real
 * credentials: when none are in the environment, fixed local ones are used so the SDK's provider
 * chain does not go looking for an AWS account.
 */
export function createClients(settings: FunctionSettings, env: Readonly<Record<string, string | undefined>> = process.env): AwsClients {
  const local = settings.dynamodbEndpoint !== undefined || settings.sqsEndpoint !== undefined;
  const region = settings.region ?? (local ? LOCAL_REGION : undefined);
  const credentials = local && env.AWS_ACCESS_KEY_ID === undefined ? { accessKeyId: 'local', secretAccessKey: 'local' } : undefined;
  const base = { ...(region !== undefined ? { region } : {}), ...(credentials !== undefined ? { credentials } : {}) };
  const dynamo = new DynamoDBClient({ ...base, ...(settings.dynamodbEndpoint !== undefined ? { endpoint: settings.dynamodbEndpoint } : {}) });
  const documentClient = DynamoDBDocumentClient.from(dynamo, { marshallOptions: { removeUndefinedValues: true } });
  const sqs = new SQSClient({ ...base, ...(settings.sqsEndpoint !== undefined ? { endpoint: settings.sqsEndpoint } : {}) });
  const iot = new IoTClient(base);
  const secrets = new SecretsManagerClient(base);

  let iotData: Promise<IoTDataPlaneClient> | undefined;
  const resolveIotData = (): Promise<IoTDataPlaneClient> => {
    if (iotData !== undefined) return iotData;
    const explicit = settings.iotDataEndpoint;
    const pending = explicit !== undefined ? Promise.resolve(explicit) : discoverDataEndpoint(iot);
    const client = pending.then((endpoint) => new IoTDataPlaneClient({ ...base, endpoint }));
    iotData = client;
    // A failed discovery is not kept: the next invocation tries again.
    client.catch(() => {
      if (iotData === client) iotData = undefined;
    });
    return client;
  };
  return { documentClient, sqs, iot, secrets, iotData: resolveIotData };
}

/** The account's ATS data endpoint as an https URL (IoT DescribeEndpoint, endpointType iot:Data-ATS). */
export async function discoverDataEndpoint(iot: IoTClient): Promise<string> {
  let address: string | undefined;
  try {
    address = (await iot.send(new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' }))).endpointAddress;
  } catch (err) {
    throw new AdapterError('describe IoT data endpoint', `${sdkErrorName(err)}: ${errorMessage(err)}`, isRetryableSdkError(err), { cause: err });
  }
  if (address === undefined || address === '') throw new ConfigError('IoT DescribeEndpoint returned no iot:Data-ATS address; set IOT_DATA_ENDPOINT');
  return `https://${address}`;
}

/** The local CA's file when ACCREDITATION_FILE is set (local stack), else IoT thing groups. */
export function createVerifier(settings: Pick<FunctionSettings, 'accreditationFile'>, clients: Pick<AwsClients, 'iot'>): AccreditationVerifier {
  return settings.accreditationFile !== undefined ? new FileAccreditationVerifier(settings.accreditationFile) : new IotAccreditationVerifier(clients.iot);
}

/** The fencing key from its file (local stack) or its secret (AWS), read once per cold start. */
export function createFencer(settings: Pick<FunctionSettings, 'fencingKey'>, clients: Pick<AwsClients, 'secrets'>): HmacFencer {
  const where = settings.fencingKey;
  return new HmacFencer('file' in where ? fileKey(where.file) : secretsManagerKey(clients.secrets, where.secretArn));
}

/** Everything a handler needs, built once per cold start. */
export interface Runtime {
  readonly settings: FunctionSettings;
  readonly obs: Observability;
  readonly clients: AwsClients;
  readonly clock: Clock;
  readonly timer: SqsTimer;
  readonly orchestrator: Orchestrator;
  readonly registryService: RegistryService;
}

/** Wires the adapters into core's Orchestrator and RegistryService. */
export function createRuntime(settings: FunctionSettings): Runtime {
  const obs = createObservability(settings.functionName);
  const clients = createClients(settings);
  const clock = new SystemClock();
  const { tableName } = settings;
  const tasks = new DynamoTaskStore({
    client: clients.documentClient, tableName, config: settings.orchestrator,
    onUnreadable: (key, error) => obs.logger.error('skipped an unreadable task item', { key, error: error.message }),
  });
  const registry = new DynamoRegistry({ client: clients.documentClient, tableName });
  const publisher = new IotDataPublisher(clients.iotData);
  const timer = new SqsTimer({ client: clients.sqs, queueUrl: settings.timerQueueUrl, clock });
  const orchestrator = new Orchestrator({
    tasks, registry, publisher, timer, clock, fencer: createFencer(settings, clients), config: settings.orchestrator, sha256, log: obs.log,
  });
  const registryService = new RegistryService({ registry, verifier: createVerifier(settings, clients), publisher, clock, orchestrator, log: obs.log });
  return { settings, obs, clients, clock, timer, orchestrator, registryService };
}
