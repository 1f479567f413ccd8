/**
 * The whole local stack on one laptop (ARCHITECTURE §6): the CA, DynamoDB Local with the table,
 * Mosquitto, the IoT data-plane and SQS shims, and the rules engine invoking the real handler
 * modules. Everything listens on 127.0.0.1 only (DynamoDB Local, which cannot be told to, runs in
 * a loopback-only network namespace where the system allows one, see local/dynamodb.ts) and
 * keeps its state under one directory.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { MqttClient } from 'mqtt';
import { RULES, type RuleDefinition } from '../infra/rules/catalogue';
import { certificatePaths, type IdentityKind, type IssuedCertificate } from './ca';
import { ORCHESTRATOR_IDENTITY, startLocalBroker, type LocalBroker } from './broker';
import { ensureFencingKey } from './fencing-key';
import { startDataPlaneShim, type DataPlaneShim } from './data-plane-shim';
import { fileDeadLetterSink } from './dead-letters';
import { LOCAL_CREDENTIALS, LOCAL_REGION, LOCAL_TABLE_NAME, startDynamoDbLocal, type DynamoDbLocal } from './dynamodb';
import { freePort } from './free-port';
import { functionPublishGrant, localFunctionCredentials } from './function-credentials';
import { createWorkerInvoker, type FunctionInvoker, type HandlerResolver } from './function-invoker';
import { checkRate, seededRandom } from './fault-injection';
import { silentLog, type StackLog } from './log';
import { connectWithCertificate, reconnectWithBackoff } from './mqtt-connect';
import { requireExecutable } from './processes';
import { collectEarlyMessages, type MessageBacklog } from './puback-gate';
import { startRulesEngine, type RulesEngine } from './rules-engine';
import { LOCAL_TIMER_QUEUE, localQueueUrl, startSqsShim, type SqsShim } from './sqs-shim';

/**
 * How long the broker keeps the orchestrator's session (subscriptions and queued messages) after
 * its connection drops, seconds.
 */
export const ORCHESTRATOR_SESSION_EXPIRY_S = 3600;

/**
 * How many QoS 1 messages the broker may send the orchestrator connection before it has
 * acknowledged them (MQTT 5 Receive Maximum). The rules engine acknowledges a message only once
 * its handler finished, so a slow or retried handler keeps its messages, and those queued behind
 * it for the same task, unacknowledged. Mosquitto 2.0 takes the client's Receive Maximum as its
 * send window, and without one uses `max_inflight_messages` (20): too few for a few tasks whose
 * handlers are being retried, after which the broker would hold back every other task's messages
 * too. The engine runs at most 8 invocations at once whatever this allows.
 */
export const ORCHESTRATOR_RECEIVE_MAXIMUM = 1000;

/** Ports of the stack's servers; any left out is chosen free. */
export interface LocalStackPorts {
  readonly mqtt: number;
  readonly ws: number;
  readonly dynamo: number;
  readonly dataPlane: number;
  readonly sqs: number;
}

/** Options for {@link startLocalStack}. */
export interface LocalStackOptions {
  /** Where the CA, broker data, database (unless in memory), logs and dead letters live. */
  readonly stateDir: string;
  readonly ports?: Partial<LocalStackPorts>;
  /** Keep DynamoDB Local in memory (tests) rather than under `<stateDir>/dynamodb`. @default false */
  readonly inMemory?: boolean;
  /** @default silent */
  readonly log?: StackLog;
  /** Which module serves each function. @default functions/<name>/handler.ts */
  readonly resolveHandler?: HandlerResolver;
  /** @default the catalogue's RULES */
  readonly rules?: readonly RuleDefinition[];
  /** Extra environment for the functions (e.g. PROPOSAL_WINDOW_MS, LEASE_MS), over the stack's own. */
  readonly functionEnv?: Readonly<Record<string, string>>;
  /** Sweeper period; `false` turns it off. @default 10000 */
  readonly sweeperIntervalMs?: number | false;
  /** Delays between a failed rule invocation's retries. @default [1000, 2000] */
  readonly retryDelaysMs?: readonly number[];
  /** Start every function's execution environment before accepting messages. @default true */
  readonly warmFunctions?: boolean;
  /** Table name. @default LOCAL_TABLE_NAME */
  readonly tableName?: string;
  /** Test-only fault injection; everything is off by default. */
  readonly faults?: LocalStackFaults;
}

/** Faults the local stack can inject on purpose, to test what AWS may do. */
export interface LocalStackFaults {
  /**
   * Fraction (0..1) of messages the rules engine hands to their rules twice, with the same event,
   * as IoT Core may redeliver a QoS 1 message without the DUP flag. @default 0
   */
  readonly duplicateRate?: number;
  /** Seed of the duplicate decisions, so a run can be replayed. @default 1 */
  readonly seed?: number;
}

/** Counters of what the stack's fault injection has done so far. */
export interface LocalStackFaultCounts {
  /** Messages the rules engine delivered twice. */
  readonly duplicatesInjected: number;
  /** Broker restarts through {@link LocalStack.restartBroker}. */
  readonly brokerRestarts: number;
}

/** Addresses of the running stack. */
export interface LocalStackEndpoints {
  readonly mqttHost: '127.0.0.1';
  readonly mqttPort: number;
  readonly wsPort: number;
  readonly dynamoEndpoint: string;
  readonly iotDataEndpoint: string;
  readonly sqsEndpoint: string;
  readonly timerQueueUrl: string;
}

/** Files of the running stack. */
export interface LocalStackPaths {
  readonly stateDir: string;
  readonly caDir: string;
  /** The CA certificate clients must trust. */
  readonly caPath: string;
  readonly accreditationFile: string;
  readonly deadLetters: string;
  readonly logsDir: string;
  readonly mosquittoLog: string;
  /** The functions' stdout/stderr (Powertools logs, EMF metrics). */
  readonly functionsLog: string;
}

/** A running local stack. */
export interface LocalStack {
  readonly endpoints: LocalStackEndpoints;
  /** The environment the handlers run with; also what a CLI needs to talk to the stack's AWS shims. */
  readonly env: Readonly<Record<string, string>>;
  readonly paths: LocalStackPaths;
  readonly tableName: string;
  /** The WebSocket listener's read-only user. */
  readonly observer: { readonly username: string; readonly password: string };
  readonly dynamo: DynamoDbLocal;
  readonly rulesEngine: RulesEngine;
  readonly invoker: FunctionInvoker;
  /**
   * Issues (or reuses) a certificate for `identity` and reloads the broker ACL so its role,
   * accreditations and pools apply to its next connection.
   */
  issue(identity: string, kind: Exclude<IdentityKind, 'broker'>, accreditations?: readonly string[], pools?: readonly string[]): Promise<IssuedCertificate>;
  /**
   * Restarts Mosquitto in order (SIGTERM, so it saves retained messages and persistent sessions,
   * then the same port and config), after `downtimeMs` of being down. The orchestrator
   * connection, agents and clients reconnect on their own; resolves once the broker answers.
   */
  restartBroker(downtimeMs?: number): Promise<void>;
  /** What fault injection has done so far. */
  faultCounts(): LocalStackFaultCounts;
  /** Stops everything in reverse start order; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Checks that the programs the stack spawns are installed, before anything starts. Throws
 * MissingDependencyError naming the apt-get command.
 */
export async function preflight(): Promise<void> {
  await requireExecutable('openssl', 'to run the local certificate authority');
  await requireExecutable('mosquitto', 'to run the local MQTT broker', ['/usr/sbin', '/usr/local/sbin']);
  await requireExecutable('java', 'to run DynamoDB Local');
}

/**
 * Starts the stack: CA → DynamoDB Local + table → Mosquitto → orchestrator connection → data-plane
 * and SQS shims → function environments → rules engine. On any failure, whatever started is
 * stopped again before the error is rethrown.
 */
export async function startLocalStack(options: LocalStackOptions): Promise<LocalStack> {
  const log = options.log ?? silentLog;
  const duplicateRate = checkRate(options.faults?.duplicateRate ?? 0, 'faults.duplicateRate');
  await preflight();
  const stateDir = resolve(options.stateDir);
  const logsDir = join(stateDir, 'logs');
  await mkdir(logsDir, { recursive: true });
  const tableName = options.tableName ?? LOCAL_TABLE_NAME;

  const stops: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    while (stops.length > 0) {
      const stop = stops.pop();
      try {
        await stop?.();
      } catch (err) {
        log.warn('error while stopping the local stack', { error: (err as Error).message });
      }
    }
  };

  try {
    const dynamo = await startDynamoDbLocal({
      port: options.ports?.dynamo ?? (await freePort()),
      ...(options.inMemory === true ? {} : { dbPath: join(stateDir, 'dynamodb') }),
      logFile: join(logsDir, 'dynamodb.log'),
      tableName,
      log,
    });
    stops.push(() => dynamo.stop());

    const broker: LocalBroker = await startLocalBroker({
      stateDir,
      ports: { ...(options.ports?.mqtt !== undefined ? { mqtt: options.ports.mqtt } : {}), ...(options.ports?.ws !== undefined ? { ws: options.ports.ws } : {}) },
      log,
    });
    stops.push(() => broker.stop());

    const orchestratorCert = certificatePaths(broker.caDir, ORCHESTRATOR_IDENTITY);
    // One connection serves the shim and the rules engine: the broker forces client id = CN,
    // so two connections with the orchestrator's certificate would keep taking over each other.
    // A persistent session: while the connection is down (a broker restart, a network blip) the
    // broker queues the QoS 1 messages of the rules' shared subscriptions for it, so nothing
    // published in the gap is lost; on a restart Mosquitto keeps the session in its persistence file.
    // The rules engine acknowledges a message only after handling it, so one in a handler when
    // this process dies is sent again when the next start rejoins the session.
    // A resumed session delivers its backlog right after CONNACK, long before the rules engine
    // starts: collected with PUBACKs held, and handed to the engine.
    let backlog: MessageBacklog | undefined;
    const mqtt: MqttClient = await connectWithCertificate({
      host: broker.mqttHost, port: broker.mqttPort, ...orchestratorCert, clientId: ORCHESTRATOR_IDENTITY, clean: false,
      extra: { reconnectPeriod: 500, properties: { sessionExpiryInterval: ORCHESTRATOR_SESSION_EXPIRY_S, receiveMaximum: ORCHESTRATOR_RECEIVE_MAXIMUM } },
      onCreated: (client) => {
        backlog = collectEarlyMessages(client);
      },
    });
    reconnectWithBackoff(mqtt, { minDelayMs: 250, maxDelayMs: 10_000 });
    mqtt.on('error', (err) => log.warn('orchestrator MQTT connection error', { error: err.message }));
    mqtt.on('offline', () => log.warn('orchestrator MQTT connection lost; reconnecting'));
    mqtt.on('connect', (connack) => log.info('orchestrator MQTT connection up', { sessionPresent: connack.sessionPresent }));
    stops.push(() => mqtt.endAsync().catch(() => undefined));

    // Each function publishes with its own credentials and only within its grant, as on AWS.
    const dataPlane: DataPlaneShim = await startDataPlaneShim({ port: options.ports?.dataPlane ?? (await freePort()), mqtt, log, grants: functionPublishGrant });
    stops.push(() => dataPlane.stop());

    const functionsLog: WriteStream = createWriteStream(join(logsDir, 'functions.log'), { flags: 'a' });
    // Every function worker pipes its stdout and stderr here: more than Node's default of ten listeners.
    functionsLog.setMaxListeners(0);
    stops.push(() => new Promise<void>((r) => functionsLog.end(r)));

    const sqsPort = options.ports?.sqs ?? (await freePort());
    const sqsEndpoint = `http://127.0.0.1:${sqsPort}`;
    const fencingKeyFile = await ensureFencingKey(stateDir);
    const env: Record<string, string> = {
      TABLE_NAME: tableName,
      FENCING_KEY_FILE: fencingKeyFile,
      DYNAMODB_ENDPOINT: dynamo.endpoint,
      IOT_DATA_ENDPOINT: dataPlane.endpoint,
      SQS_ENDPOINT: sqsEndpoint,
      TIMER_QUEUE_URL: localQueueUrl(sqsPort, LOCAL_TIMER_QUEUE),
      ACCREDITATION_FILE: broker.accreditationFile,
      AWS_REGION: LOCAL_REGION,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      // No instance-metadata lookups from a laptop.
      AWS_EC2_METADATA_DISABLED: 'true',
      POWERTOOLS_SERVICE_NAME: 'porchlight',
      POWERTOOLS_METRICS_NAMESPACE: 'Porchlight',
      ...options.functionEnv,
    };

    const deadLetterPath = join(stateDir, 'dead-letters.jsonl');
    const deadLetters = fileDeadLetterSink(deadLetterPath, log);
    const workers = createWorkerInvoker({
      env, credentials: localFunctionCredentials, ...(options.resolveHandler !== undefined ? { resolve: options.resolveHandler } : {}), output: functionsLog,
    });
    stops.push(() => workers.close());
    const sqs: SqsShim = await startSqsShim({ port: sqsPort, invoker: workers, deadLetters, region: LOCAL_REGION, queueName: LOCAL_TIMER_QUEUE, log });
    stops.push(() => sqs.stop());
    const rules = options.rules ?? RULES;
    if (options.warmFunctions !== false) {
      const targets = [...new Set([...rules.filter((r) => r.awsOnly !== true).map((r) => r.target as string), 'timer', ...(options.sweeperIntervalMs === false ? [] : ['sweeper'])])];
      await workers.warm(targets);
      log.info('function environments ready', { functions: targets });
    }

    const rulesEngine = await startRulesEngine({
      mqtt, invoker: workers, deadLetters, rules, log,
      duplicateRate,
      ...(backlog !== undefined ? { backlog } : {}),
      // One orchestrator connection locally (see above), so nothing to share the load with; and
      // Mosquitto 2.0 does not restore shared subscriptions with a persistent session after a
      // restart, while plain ones come back and have their messages queued during the gap.
      shareGroup: false,
      random: seededRandom(options.faults?.seed ?? 1),
      ...(options.retryDelaysMs !== undefined ? { retryDelaysMs: options.retryDelaysMs } : {}),
      sweeper: options.sweeperIntervalMs === false ? false : { functionName: 'sweeper', intervalMs: options.sweeperIntervalMs ?? 10_000 },
    });
    stops.push(() => rulesEngine.stop());

    log.info('local stack ready', { mqtt: `mqtts://127.0.0.1:${broker.mqttPort}`, ws: `ws://127.0.0.1:${broker.wsPort}`, stateDir });
    let stopped: Promise<void> | undefined;
    return {
      endpoints: {
        mqttHost: broker.mqttHost,
        mqttPort: broker.mqttPort,
        wsPort: broker.wsPort,
        dynamoEndpoint: dynamo.endpoint,
        iotDataEndpoint: dataPlane.endpoint,
        sqsEndpoint: sqs.endpoint,
        timerQueueUrl: sqs.queueUrl,
      },
      env: { ...env },
      paths: {
        stateDir,
        caDir: broker.caDir,
        caPath: broker.caPath,
        accreditationFile: broker.accreditationFile,
        deadLetters: deadLetterPath,
        logsDir,
        mosquittoLog: broker.mosquitto.paths.logPath,
        functionsLog: join(logsDir, 'functions.log'),
      },
      tableName,
      observer: broker.mosquitto.observer,
      dynamo,
      rulesEngine,
      invoker: workers,
      issue: (identity, kind, accreditations, pools) => broker.issue(identity, kind, accreditations, pools),
      restartBroker: async (downtimeMs = 0) => {
        log.warn('restarting the broker', { downtimeMs });
        await broker.mosquitto.restart(downtimeMs);
      },
      faultCounts: () => ({ duplicatesInjected: rulesEngine.duplicatesInjected, brokerRestarts: broker.mosquitto.restarts }),
      stop: () => {
        stopped ??= stopAll().then(() => log.info('local stack stopped'));
        return stopped;
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
