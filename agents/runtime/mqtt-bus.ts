/**
 * The runtime's view of an MQTT connection. The agent logic codes against {@link MqttBus};
 * {@link Mqtt5Bus} implements it over aws-iot-device-sdk-v2's Mqtt5Client (mTLS), and tests
 * implement it in memory.
 */
import { once } from 'node:events';
import { iot, mqtt5 } from 'aws-iot-device-sdk-v2';
import { ConnectTimeoutError, MqttOperationError } from './errors';
import type { AgentLogger } from './logger';

/** A message as delivered to a subscriber. */
export interface InboundMessage {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly retain: boolean;
}

/** The broker's answer for one filter of a SUBSCRIBE. */
export interface SubscribeOutcome {
  readonly filter: string;
  readonly ok: boolean;
  /** MQTT 5 SUBACK reason code. */
  readonly reasonCode: number;
  /** Human name of the reason code (e.g. `NotAuthorized`). */
  readonly reason: string;
}

/** Options of one publish. */
export interface PublishOptions {
  readonly qos: 0 | 1;
  readonly retain?: boolean;
}

/** A connected MQTT client, as the runtime uses it. */
export interface MqttBus {
  /** Publishes; for QoS 1 resolves only on a successful PUBACK and rejects with MqttOperationError otherwise. */
  publish(topic: string, payload: string, options: PublishOptions): Promise<void>;
  /** Subscribes (QoS 1) and reports the broker's verdict per filter; rejects only when no SUBACK came. */
  subscribe(filters: readonly string[]): Promise<SubscribeOutcome[]>;
  unsubscribe(filters: readonly string[]): Promise<void>;
  /** Sets the one handler every inbound message goes to (messages that arrived earlier are handed to it first). */
  onMessage(handler: (message: InboundMessage) => void): void;
  /** Called after a reconnect, once lost subscriptions have been restored. */
  onReconnect(handler: () => void): void;
  /** Disconnects and releases the connection. */
  stop(): Promise<void>;
}

/** Where and how an agent connects. */
export interface AgentConnection {
  readonly host: string;
  readonly port: number;
  /** PEM client certificate (its CN is the agent id). */
  readonly certPath: string;
  readonly keyPath: string;
  /** PEM CA bundle that signed the broker's certificate: the local CA, or Amazon's root CA on AWS. */
  readonly caPath?: string;
  /** MQTT client id. @default the agent id */
  readonly clientId?: string;
}

/** Connection tuning; defaults suit both Mosquitto and IoT Core. */
export interface Mqtt5BusOptions {
  /** Give up connecting after this long, ms. @default 15000 */
  readonly connectTimeoutMs?: number;
  /** Fail a QoS 1 PUBLISH/SUBSCRIBE without an ack after this long, s (the CRT default is to wait forever). @default 10 */
  readonly ackTimeoutSeconds?: number;
  /** @default 30 */
  readonly keepAliveSeconds?: number;
  /**
   * How long the broker keeps the session (subscriptions, queued QoS 1 messages) after the
   * connection drops, s. @default 300
   */
  readonly sessionExpirySeconds?: number;
  /** Reconnect backoff bounds, ms (exponential with full jitter). @default 250 / 30000 */
  readonly minReconnectDelayMs?: number;
  readonly maxReconnectDelayMs?: number;
  /** Apply IoT Core's client-side limits (100 publishes/s, 8 filters per SUBSCRIBE, 7 slashes). @default true */
  readonly awsIotCoreLimits?: boolean;
  /** Sent by the broker when the connection drops without a DISCONNECT. */
  readonly will?: { readonly topic: string; readonly payload: string; readonly retain: boolean };
  readonly log: AgentLogger;
}

/** Messages kept for a handler that is not registered yet. */
const MAX_EARLY_MESSAGES = 10_000;

/** IoT Core accepts at most 8 filters per SUBSCRIBE. */
const FILTERS_PER_SUBSCRIBE = 8;

function toBytes(payload: unknown): Uint8Array {
  if (payload === undefined || payload === null) return new Uint8Array(0);
  if (payload instanceof ArrayBuffer) return new Uint8Array(payload);
  if (ArrayBuffer.isView(payload)) return new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
  if (typeof payload === 'string') return new TextEncoder().encode(payload);
  return new TextEncoder().encode(JSON.stringify(payload));
}

/** CRT errors are Error objects at run time but typed as a bare interface. */
function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'object' && err !== null && 'error_name' in err) return String((err as { error_name?: unknown }).error_name);
  return JSON.stringify(err);
}

function reasonName(table: Record<number, string>, code: number): string {
  return table[code] ?? `0x${code.toString(16)}`;
}

const SUBACK_NAMES = mqtt5.SubackReasonCode as unknown as Record<number, string>;
const PUBACK_NAMES = mqtt5.PubackReasonCode as unknown as Record<number, string>;

/** {@link MqttBus} over aws-iot-device-sdk-v2's Mqtt5Client with X.509 mutual TLS. */
export class Mqtt5Bus implements MqttBus {
  private messageHandler: (message: InboundMessage) => void = () => undefined;
  private reconnectHandler: () => void = () => undefined;
  private readonly active = new Set<string>();
  private connectedOnce = false;
  /** Messages received before {@link onMessage} was called; undefined once it has been. */
  private early: InboundMessage[] | undefined = [];
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly client: mqtt5.Mqtt5Client,
    private readonly log: AgentLogger,
  ) {}

  /**
   * Connects with mTLS and resolves once the broker accepted the connection.
   * @throws ConnectTimeoutError when no connection succeeded in time (carries the last failure)
   */
  static async connect(conn: AgentConnection, clientId: string, options: Mqtt5BusOptions): Promise<Mqtt5Bus> {
    const builder = iot.AwsIotMqtt5ClientConfigBuilder.newDirectMqttBuilderWithMtlsFromPath(conn.host, conn.certPath, conn.keyPath);
    builder.withPort(conn.port);
    if (conn.caPath !== undefined) builder.withCertificateAuthorityFromPath(undefined, conn.caPath);
    builder.withConnectProperties({
      clientId,
      keepAliveIntervalSeconds: options.keepAliveSeconds ?? 30,
      sessionExpiryIntervalSeconds: options.sessionExpirySeconds ?? 300,
      ...(options.will === undefined
        ? {}
        : { will: { topicName: options.will.topic, payload: options.will.payload, qos: mqtt5.QoS.AtLeastOnce, retain: options.will.retain } }),
    });
    // A persistent session, rejoined on every connection, also a restarted process's first: the
    // broker queues QoS 1 requests and assignments while the link (or the process) is down, so
    // they are not lost to a reconnect, a broker restart or a crash. Work queued for a crashed
    // predecessor whose epoch was re-assigned meanwhile is aborted once the retained task status
    // shows the newer epoch, and its output would be refused by fencing. (RejoinPostSuccess would
    // start each process clean, and Mosquitto 2.0 does not persist sessions begun with a clean
    // start across its own restart.) When the broker lost the session, restore() subscribes again.
    builder.withSessionBehavior(mqtt5.ClientSessionBehavior.RejoinAlways);
    builder.withRetryJitterMode(mqtt5.RetryJitterType.Full);
    builder.withMinReconnectDelayMs(options.minReconnectDelayMs ?? 250);
    builder.withMaxReconnectDelayMs(options.maxReconnectDelayMs ?? 30_000);
    builder.withAckTimeoutSeconds(options.ackTimeoutSeconds ?? 10);
    builder.withConnackTimeoutMs(Math.min(options.connectTimeoutMs ?? 15_000, 10_000));
    builder.withOfflineQueueBehavior(mqtt5.ClientOperationQueueBehavior.FailQos0PublishOnDisconnect);
    if (options.awsIotCoreLimits ?? true) {
      builder.withExtendedValidationAndFlowControlOptions(mqtt5.ClientExtendedValidationAndFlowControl.AwsIotCoreDefaults);
    }
    const client = new mqtt5.Mqtt5Client(builder.build());
    const bus = new Mqtt5Bus(client, options.log);
    await bus.start(options.connectTimeoutMs ?? 15_000);
    return bus;
  }

  /** Listeners first, then start(), then wait for connectionSuccess (per the SDK's lifecycle rules). */
  private async start(timeoutMs: number): Promise<void> {
    let lastFailure = 'no connection attempt completed';
    let resolveFirst: () => void = () => undefined;
    const firstSuccess = new Promise<void>((resolve) => (resolveFirst = resolve));

    this.client.on('messageReceived', (event: mqtt5.MessageReceivedEvent) => {
      const message = { topic: event.message.topicName, payload: toBytes(event.message.payload), retain: event.message.retain ?? false };
      // A rejoined session delivers what was queued for it right after CONNACK, before the
      // runtime has registered its handler: keep those messages for it.
      if (this.early !== undefined) {
        if (this.early.length < MAX_EARLY_MESSAGES) this.early.push(message);
        else this.log.warn('dropping a message that arrived before the handler was set', { topic: message.topic });
        return;
      }
      try {
        this.messageHandler(message);
      } catch (err) {
        this.log.error('message handler threw', { topic: message.topic, error: err });
      }
    });
    this.client.on('connectionSuccess', (event: mqtt5.ConnectionSuccessEvent) => {
      if (!this.connectedOnce) {
        this.connectedOnce = true;
        this.log.info('connected', { clientId: event.settings.clientId });
        resolveFirst();
        return;
      }
      this.log.info('reconnected', { rejoinedSession: event.settings.rejoinedSession });
      this.restore(event.settings.rejoinedSession);
    });
    this.client.on('connectionFailure', (event: mqtt5.ConnectionFailureEvent) => {
      const reason = event.connack === undefined ? '' : ` (CONNACK ${event.connack.reasonCode}${event.connack.reasonString === undefined ? '' : `: ${event.connack.reasonString}`})`;
      lastFailure = `${describeError(event.error)}${reason}`;
      this.log.warn('connection attempt failed', { error: lastFailure });
    });
    this.client.on('disconnection', (event: mqtt5.DisconnectionEvent) => {
      if (this.stopping === undefined) this.log.warn('disconnected; reconnecting with backoff', { error: describeError(event.error), reasonCode: event.disconnect?.reasonCode });
    });
    this.client.on('error', (err) => this.log.error('MQTT client error', { error: describeError(err) }));

    this.client.start();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const outcome = await Promise.race([firstSuccess.then(() => 'ok' as const), timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      await this.stop();
      throw new ConnectTimeoutError(`could not connect within ${timeoutMs} ms: ${lastFailure}`);
    }
  }

  private restore(rejoined: boolean): void {
    const filters = [...this.active];
    // Subscribing again even to a rejoined session: it is idempotent, and a broker may bring a
    // session back without some of its subscriptions (Mosquitto 2.0 drops shared subscriptions,
    // i.e. pools, when it restores sessions from its persistence file).
    if (rejoined) this.log.debug('session rejoined; renewing subscriptions anyway', { filters: filters.length });
    const resubscribe = filters.length === 0 ? Promise.resolve([]) : this.subscribe(filters);
    resubscribe
      .then((outcomes) => {
        for (const o of outcomes.filter((x) => !x.ok)) this.log.error('subscription refused after reconnect', { filter: o.filter, reason: o.reason });
        this.reconnectHandler();
      })
      .catch((err: unknown) => this.log.error('could not restore subscriptions after reconnect', { error: err }));
  }

  /** {@inheritDoc MqttBus.publish} */
  async publish(topic: string, payload: string, options: PublishOptions): Promise<void> {
    const qos = options.qos === 1 ? mqtt5.QoS.AtLeastOnce : mqtt5.QoS.AtMostOnce;
    let result: mqtt5.PublishCompletionResult;
    try {
      result = await this.client.publish({ topicName: topic, payload, qos, retain: options.retain ?? false, payloadFormat: mqtt5.PayloadFormatIndicator.Utf8, contentType: 'application/json' });
    } catch (err) {
      throw new MqttOperationError(`publish to ${topic} failed: ${describeError(err)}`, { cause: err });
    }
    if (options.qos === 1) {
      if (result === undefined) throw new MqttOperationError(`publish to ${topic}: no PUBACK`);
      if (!mqtt5.isSuccessfulPubackReasonCode(result.reasonCode)) {
        throw new MqttOperationError(
          `publish to ${topic} refused: ${reasonName(PUBACK_NAMES, result.reasonCode)}${result.reasonString === undefined ? '' : ` (${result.reasonString})`}`,
          { reasonCode: result.reasonCode },
        );
      }
    }
  }

  /** {@inheritDoc MqttBus.subscribe} */
  async subscribe(filters: readonly string[]): Promise<SubscribeOutcome[]> {
    const outcomes: SubscribeOutcome[] = [];
    for (let i = 0; i < filters.length; i += FILTERS_PER_SUBSCRIBE) {
      const batch = filters.slice(i, i + FILTERS_PER_SUBSCRIBE);
      let suback: mqtt5.SubackPacket;
      try {
        suback = await this.client.subscribe({ subscriptions: batch.map((topicFilter) => ({ topicFilter, qos: mqtt5.QoS.AtLeastOnce })) });
      } catch (err) {
        throw new MqttOperationError(`subscribe to ${batch.join(', ')} failed: ${describeError(err)}`, { cause: err });
      }
      batch.forEach((filter, j) => {
        const code = suback.reasonCodes[j];
        const ok = code !== undefined && mqtt5.isSuccessfulSubackReasonCode(code);
        if (ok) this.active.add(filter);
        outcomes.push({ filter, ok, reasonCode: code ?? -1, reason: code === undefined ? 'missing from SUBACK' : reasonName(SUBACK_NAMES, code) });
      });
    }
    return outcomes;
  }

  /** {@inheritDoc MqttBus.unsubscribe} */
  async unsubscribe(filters: readonly string[]): Promise<void> {
    for (const f of filters) this.active.delete(f);
    try {
      const unsuback = await this.client.unsubscribe({ topicFilters: [...filters] });
      unsuback.reasonCodes.forEach((code, i) => {
        if (!mqtt5.isSuccessfulUnsubackReasonCode(code)) this.log.warn('unsubscribe refused', { filter: filters[i], reasonCode: code });
      });
    } catch (err) {
      throw new MqttOperationError(`unsubscribe from ${filters.join(', ')} failed: ${describeError(err)}`, { cause: err });
    }
  }

  /** {@inheritDoc MqttBus.onMessage} */
  onMessage(handler: (message: InboundMessage) => void): void {
    this.messageHandler = handler;
    const early = this.early ?? [];
    this.early = undefined;
    for (const message of early) {
      try {
        handler(message);
      } catch (err) {
        this.log.error('message handler threw', { topic: message.topic, error: err });
      }
    }
  }

  /** {@inheritDoc MqttBus.onReconnect} */
  onReconnect(handler: () => void): void {
    this.reconnectHandler = handler;
  }

  /** stop(), await `stopped`, then close(): the native client leaks otherwise. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const stopped = once(this.client, 'stopped');
      // Without an explicit DISCONNECT the CRT just closes the socket, and the broker then
      // publishes the last will over the offline status the agent has just published.
      this.client.stop({ reasonCode: mqtt5.DisconnectReasonCode.NormalDisconnection });
      await stopped;
      this.client.close();
    })();
    return this.stopping;
  }
}
