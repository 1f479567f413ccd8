/**
 * Connecting to the local broker with an identity's certificate over MQTT 5 (mqtt.js), with a
 * start-up timeout and an error that says why the broker refused.
 */
import { readFile } from 'node:fs/promises';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';

/** Where to connect and as whom. */
export interface CertificateConnectOptions {
  readonly host: string;
  readonly port: number;
  readonly certPath: string;
  readonly keyPath: string;
  readonly caPath: string;
  /** Ignored by the local broker, which sets the client id to the certificate CN. @default the CN is used */
  readonly clientId?: string;
  /** @default true */
  readonly clean?: boolean;
  /** Give up if CONNACK has not arrived after this long. @default 10000 */
  readonly connectTimeoutMs?: number;
  /** Further mqtt.js options (will, session expiry, reconnect period, …). */
  readonly extra?: Partial<IClientOptions>;
  /**
   * Called with the client as soon as it is created, before it can receive anything: the place
   * for listeners that must not miss what a persistent session delivers right after CONNACK.
   */
  readonly onCreated?: (client: MqttClient) => void;
}

/** The broker refused or dropped the connection before CONNACK. */
export class MqttConnectError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MqttConnectError';
  }
}

/**
 * Opens an MQTT 5 connection and resolves once CONNACK succeeds; rejects (and closes the client)
 * on a TLS failure, a refused CONNACK, or the timeout. Reconnection is off unless `extra` turns
 * it on, so a refused identity is reported rather than retried forever.
 */
export async function connectWithCertificate(options: CertificateConnectOptions): Promise<MqttClient> {
  const [cert, key, ca] = await Promise.all([readFile(options.certPath), readFile(options.keyPath), readFile(options.caPath)]);
  const client = connect({
    protocol: 'mqtts',
    host: options.host,
    port: options.port,
    protocolVersion: 5,
    cert,
    key,
    ca,
    servername: 'localhost',
    rejectUnauthorized: true,
    clean: options.clean ?? true,
    reconnectPeriod: 0,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    ...(options.clientId !== undefined ? { clientId: options.clientId } : {}),
    ...options.extra,
  });
  options.onCreated?.(client);
  return awaitConnack(client, options.connectTimeoutMs ?? 10_000, `${options.host}:${options.port}`);
}

/**
 * Resolves with `client` once it is connected; rejects with MqttConnectError (closing the
 * client) when it errors or closes first, or after `timeoutMs`.
 */
export function awaitConnack(client: MqttClient, timeoutMs: number, where: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.off('connect', onConnect);
      client.off('error', onError);
      client.off('close', onClose);
      if (err === undefined) {
        resolve(client);
        return;
      }
      client.end(true);
      reject(err);
    };
    const onConnect = (): void => finish();
    const onError = (err: Error): void => finish(new MqttConnectError(`connecting to ${where} failed: ${err.message}`, { cause: err }));
    const onClose = (): void => finish(new MqttConnectError(`the broker at ${where} closed the connection before accepting it`));
    const timer = setTimeout(() => finish(new MqttConnectError(`no CONNACK from ${where} within ${timeoutMs} ms`)), timeoutMs);
    client.on('connect', onConnect);
    client.on('error', onError);
    client.on('close', onClose);
  });
}

/** Bounds of {@link reconnectWithBackoff}. */
export interface ReconnectBackoff {
  /** Ceiling of the first retry's delay, ms. */
  readonly minDelayMs: number;
  /** The ceiling never grows past this, ms. */
  readonly maxDelayMs: number;
  /** @default Math.random */
  readonly random?: () => number;
}

/**
 * Replaces mqtt.js's fixed reconnect period with exponential backoff and full jitter: the n-th
 * consecutive attempt waits a random time up to min(max, min·2ⁿ), so many clients dropped by the
 * same broker restart do not reconnect in lockstep. The client must have reconnection on
 * (`reconnectPeriod` > 0). Returns a function that detaches it.
 */
export function reconnectWithBackoff(client: MqttClient, backoff: ReconnectBackoff): () => void {
  if (!(backoff.minDelayMs > 0) || backoff.maxDelayMs < backoff.minDelayMs) {
    throw new RangeError(`reconnect backoff needs 0 < minDelayMs <= maxDelayMs; got ${backoff.minDelayMs} and ${backoff.maxDelayMs}`);
  }
  const random = backoff.random ?? Math.random;
  let attempt = 0;
  // mqtt.js reads options.reconnectPeriod when it schedules the next attempt (on 'close'), so
  // the delay for the next failure is set when an attempt starts and when a connection succeeds.
  const next = (): void => {
    const ceiling = Math.min(backoff.maxDelayMs, backoff.minDelayMs * 2 ** Math.min(attempt, 30));
    // Never 0: mqtt.js reads a period of 0 as "do not reconnect".
    client.options.reconnectPeriod = Math.max(1, Math.round(random() * ceiling));
  };
  const onConnect = (): void => {
    attempt = 0;
    next();
  };
  const onReconnect = (): void => {
    attempt += 1;
    next();
  };
  next();
  client.on('connect', onConnect);
  client.on('reconnect', onReconnect);
  return () => {
    client.off('connect', onConnect);
    client.off('reconnect', onReconnect);
  };
}
