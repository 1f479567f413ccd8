/**
 * Integration-test helpers over the local stack: a real Mosquitto (and, for the full stack,
 * DynamoDB Local, the AWS API shims and the rules engine) on free ports with a throw-away state
 * directory, plus MQTT 5 clients authenticated by certificates from the stack's own CA.
 *
 * Typical use (an agent-runtime test that only needs the broker):
 *
 * ```ts
 * let broker: TestBroker;
 * beforeAll(async () => { broker = await startTestBroker(); }, 30_000);
 * afterAll(() => broker.cleanup());
 *
 * it('publishes its résumé', async () => {
 *   const watcher = await connectMqtt(broker, 'porchlight-orchestrator');
 *   const agent = await connectMqtt(broker, 'agent-a', { kind: 'agent', accreditations: ['gdpr'] });
 *   ...
 * });
 * ```
 *
 * Every client made by {@link connectMqtt} is force-closed by `cleanup()`, which then stops the
 * processes and deletes the state directory; tests need not close clients themselves.
 *
 * The full stack ({@link startTestStack}) runs the sweeper only when asked
 * (`sweeperIntervalMs`), so tests see timers fire from the queue, not from a periodic sweep.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt';
import type { IdentityKind, IssuedCertificate } from '../../local/ca';
import { ORCHESTRATOR_IDENTITY, startLocalBroker, type LocalBroker } from '../../local/broker';
import { connectWithCertificate } from '../../local/mqtt-connect';
import { startLocalStack, type LocalStack, type LocalStackOptions } from '../../local/stack';
import { quietLog, type StackLog } from '../../local/log';

/** Anything with a broker and a CA: a {@link TestBroker} or a full test stack. */
export interface MqttTestTarget {
  readonly mqttHost: string;
  readonly mqttPort: number;
  /** Issues a certificate for `identity` (and reloads the broker ACL). */
  issue(identity: string, kind: Exclude<IdentityKind, 'broker'>, accreditations?: readonly string[], pools?: readonly string[]): Promise<IssuedCertificate>;
}

/** A running CA + Mosquitto for a test. */
export interface TestBroker extends MqttTestTarget {
  readonly broker: LocalBroker;
  /** The temporary state directory (deleted by cleanup). */
  readonly stateDir: string;
  /** Closes every client from connectMqtt, stops Mosquitto, deletes the state directory. */
  cleanup(): Promise<void>;
}

/** Options for {@link startTestBroker}. */
export interface TestBrokerOptions {
  /** @default warnings and errors to stderr */
  readonly log?: StackLog;
}

const clientsByTarget = new WeakMap<object, Set<MqttClient>>();

/** Creates an empty temporary state directory for one test stack. */
export function makeStateDir(prefix = 'porchlight-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Closes the clients connectMqtt made for `target` (without waiting for the broker). */
export async function closeClients(target: object): Promise<void> {
  const clients = clientsByTarget.get(target);
  if (clients === undefined) return;
  await Promise.all([...clients].map((c) => c.endAsync(true).catch(() => undefined)));
  clients.clear();
}

/**
 * Starts a CA and Mosquitto (TLS and WebSocket listeners on free 127.0.0.1 ports) in a fresh
 * temporary directory. The orchestrator identity `porchlight-orchestrator` is pre-issued.
 * Takes about 0.2 s.
 */
export async function startTestBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  const stateDir = await makeStateDir();
  let broker: LocalBroker;
  try {
    broker = await startLocalBroker({ stateDir, log: options.log ?? quietLog('test-broker') });
  } catch (err) {
    await rm(stateDir, { recursive: true, force: true });
    throw err;
  }
  const target: TestBroker = {
    broker,
    stateDir,
    mqttHost: broker.mqttHost,
    mqttPort: broker.mqttPort,
    issue: (identity, kind, accreditations, pools) => broker.issue(identity, kind, accreditations, pools),
    cleanup: async () => {
      await closeClients(target);
      await broker.stop();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
  return target;
}

/** A running full local stack for a test. */
export interface TestStack extends MqttTestTarget {
  readonly stack: LocalStack;
  /** The temporary state directory (deleted by cleanup). */
  readonly stateDir: string;
  /** Closes every client from connectMqtt, stops the stack, deletes the state directory. */
  cleanup(): Promise<void>;
}

/** Options for {@link startTestStack}: anything startLocalStack takes except where state lives. */
export type TestStackOptions = Omit<LocalStackOptions, 'stateDir' | 'inMemory'>;

/**
 * Starts the full local stack for a test: DynamoDB Local in memory, Mosquitto, the data-plane and
 * SQS shims, the function environments (real handlers unless `resolveHandler` says otherwise)
 * and the rules engine, all on free ports, in a fresh temporary directory. Takes a few seconds
 * (DynamoDB Local's JVM and the handlers' cold starts): give beforeAll a 60 s timeout.
 *
 * ```ts
 * let t: TestStack;
 * beforeAll(async () => { t = await startTestStack({ functionEnv: { PROPOSAL_WINDOW_MS: '300' } }); }, 60_000);
 * afterAll(() => t.cleanup());
 * // t.stack.endpoints, t.stack.env, t.stack.paths.deadLetters, connectMqtt(t, 'client-1'), t.stack.rulesEngine.idle()
 * ```
 */
export async function startTestStack(options: TestStackOptions = {}): Promise<TestStack> {
  const stateDir = await makeStateDir();
  let stack: LocalStack;
  try {
    stack = await startLocalStack({ log: quietLog('test-stack'), sweeperIntervalMs: false, ...options, stateDir, inMemory: true });
  } catch (err) {
    await rm(stateDir, { recursive: true, force: true });
    throw err;
  }
  const target: TestStack = {
    stack,
    stateDir,
    mqttHost: stack.endpoints.mqttHost,
    mqttPort: stack.endpoints.mqttPort,
    issue: (identity, kind, accreditations, pools) => stack.issue(identity, kind, accreditations, pools),
    cleanup: async () => {
      await closeClients(target);
      await stack.stop();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
  return target;
}

/** Options for {@link connectMqtt}. */
export interface ConnectMqttOptions {
  /**
   * The identity's policy role. @default inferred: `porchlight-orchestrator` → orchestrator,
   * `client-…` → client, `observer…` → observer, anything else → agent
   */
  readonly kind?: Exclude<IdentityKind, 'broker'>;
  /** Accreditations (e.g. `['gdpr']`) recorded for the identity in the local CA. @default [] */
  readonly accreditations?: readonly string[];
  /** Pools (e.g. `['render']`) the identity is a member of in the local CA. @default [] */
  readonly pools?: readonly string[];
  /** Further mqtt.js options: `will`, `properties`, `clean`, `reconnectPeriod`, … */
  readonly mqtt?: Partial<IClientOptions>;
  /** @default 10000 */
  readonly connectTimeoutMs?: number;
}

/** The role an identity is given when the test does not say. */
export function inferKind(identity: string): Exclude<IdentityKind, 'broker'> {
  if (identity === ORCHESTRATOR_IDENTITY) return 'orchestrator';
  if (identity.startsWith('client-')) return 'client';
  if (identity.startsWith('observer')) return 'observer';
  return 'agent';
}

/**
 * An MQTT 5 client (mqtt.js) connected to `target` as `identity`, with a certificate from the
 * target's CA issued on first use. The broker forces the client id to the identity. Resolves
 * after CONNACK; rejects when the broker refuses. The client is closed by the target's cleanup.
 */
export async function connectMqtt(target: MqttTestTarget, identity: string, options: ConnectMqttOptions = {}): Promise<MqttClient> {
  const cert = await target.issue(identity, options.kind ?? inferKind(identity), options.accreditations ?? [], options.pools ?? []);
  const client = await connectWithCertificate({
    host: target.mqttHost,
    port: target.mqttPort,
    ...cert,
    clientId: identity,
    ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
    ...(options.mqtt !== undefined ? { extra: options.mqtt } : {}),
  });
  const clients = clientsByTarget.get(target) ?? new Set<MqttClient>();
  clients.add(client);
  clientsByTarget.set(target, clients);
  return client;
}

/** A message as a test sees it. */
export interface ReceivedMessage {
  readonly topic: string;
  readonly payload: Buffer;
  /** The PUBLISH packet: `retain`, `qos`, `properties.userProperties`, … */
  readonly packet: IPublishPacket;
}

/**
 * Resolves with the first message `client` receives on `topic` (or whose topic satisfies the
 * predicate), or rejects after `timeoutMs`. Subscribe before triggering the publish.
 */
export function nextMessage(client: MqttClient, topic: string | ((topic: string) => boolean), timeoutMs = 5000): Promise<ReceivedMessage> {
  const matches = typeof topic === 'string' ? (t: string) => t === topic : topic;
  const received = new Promise<ReceivedMessage>((resolve, reject) => {
    const onMessage = (t: string, payload: Buffer, packet: IPublishPacket): void => {
      if (!matches(t)) return;
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve({ topic: t, payload, packet });
    };
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      reject(new Error(`no message on ${typeof topic === 'string' ? topic : 'a matching topic'} within ${timeoutMs} ms`));
    }, timeoutMs);
    client.on('message', onMessage);
  });
  // A test that fails before awaiting this must not crash the run with an unhandled rejection;
  // a test that awaits it still sees the timeout.
  received.catch(() => undefined);
  return received;
}
