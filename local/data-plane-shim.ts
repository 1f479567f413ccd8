/**
 * The AWS IoT data-plane `Publish` API on 127.0.0.1, publishing to the local broker, so
 * handlers use the real `IoTDataPlaneClient` (functions/adapters/iot-data-publisher.ts)
 * unchanged: `IOT_DATA_ENDPOINT=http://127.0.0.1:<port>`.
 *
 * Wire format, as @aws-sdk/client-iot-data-plane's PublishCommand sends it:
 *   POST /topics/{topic}   (topic URL-encoded, `/` as %2F)
 *   query:   qos (0|1), retain (true|false), messageExpiry (seconds), contentType, responseTopic
 *   headers: x-amz-mqtt5-user-properties   base64 of a JSON array of one-key objects [{"k":"v"}, …]
 *            x-amz-mqtt5-payload-format-indicator   UNSPECIFIED_BYTES | UTF8_DATA
 *            x-amz-mqtt5-correlation-data           base64
 *   body:    the payload bytes (zero bytes with retain=true clears the retained message)
 * Errors are JSON `{"message": …}` with the error name in `x-amzn-errortype`, which the SDK
 * turns into its modelled exceptions (InvalidRequestException, RequestEntityTooLargeException, …).
 *
 * Requests are not SigV4-verified (the shim listens on loopback only), but with `grants` they are
 * authorised as IoT Core authorises the Lambda role's iot:Publish: the access key that signed the
 * request names the calling function (local/function-credentials.ts), and a topic outside that
 * function's grant — or a retained publish of a kind granted without iot:RetainPublish — is
 * refused with 403 ForbiddenException before anything reaches the broker.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { IClientPublishOptions, MqttClient } from 'mqtt';
import { publishRefusal } from '../core/publications';
import { MAX_PAYLOAD_BYTES } from '../core/schemas';
import { accessKeyOfAuthorization, type PublishGrant } from './function-credentials';
import { silentLog, type StackLog } from './log';

/** Options for {@link startDataPlaneShim}. */
export interface DataPlaneShimOptions {
  /** Port on 127.0.0.1. */
  readonly port: number;
  /** A connected MQTT 5 client authenticated as the orchestrator identity; not closed by stop(). */
  readonly mqtt: MqttClient;
  /** @default MAX_PAYLOAD_BYTES (128 KB, IoT Core's limit) */
  readonly maxPayloadBytes?: number;
  /** How long to wait for the broker's PUBACK. @default 10000 */
  readonly publishTimeoutMs?: number;
  /**
   * The publish grant of the caller whose access key signed a request (undefined: the key grants
   * nothing). When set, every publish is checked against it; the local stack sets it to the
   * functions' grants from the publication catalogue.
   * @default no check: anything the orchestrator identity may publish on the broker
   */
  readonly grants?: (accessKeyId: string | undefined) => PublishGrant | undefined;
  readonly log?: StackLog;
}

/** A running shim. */
export interface DataPlaneShim {
  /** `http://127.0.0.1:<port>`: what IOT_DATA_ENDPOINT is set to. */
  readonly endpoint: string;
  readonly port: number;
  /** Stops accepting requests and waits for in-flight ones. */
  stop(): Promise<void>;
}

/** A request the shim refuses, with the HTTP status and the AWS error name the SDK maps. */
export class DataPlaneRequestError extends Error {
  constructor(
    readonly status: number,
    readonly errorType: 'InvalidRequestException' | 'RequestEntityTooLargeException' | 'MethodNotAllowedException' | 'ResourceNotFoundException'
      | 'UnauthorizedException' | 'ForbiddenException' | 'ServiceUnavailableException' | 'InternalFailureException',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DataPlaneRequestError';
  }
}

/** The MQTT publish a Publish request asks for. */
export interface ParsedPublish {
  readonly topic: string;
  readonly payload: Buffer;
  readonly options: IClientPublishOptions;
}

const invalid = (message: string): DataPlaneRequestError => new DataPlaneRequestError(400, 'InvalidRequestException', message);

function singleHeader(headers: IncomingMessage['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Decodes `x-amz-mqtt5-user-properties`: base64 JSON `[{"name": "value"}, …]` → MQTT 5 user properties. */
export function decodeUserProperties(header: string): Record<string, string | string[]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(header, 'base64').toString('utf8'));
  } catch (err) {
    throw new DataPlaneRequestError(400, 'InvalidRequestException', 'x-amz-mqtt5-user-properties is not base64-encoded JSON', { cause: err });
  }
  if (!Array.isArray(parsed)) throw invalid('x-amz-mqtt5-user-properties must be a JSON array of {"name": "value"} objects');
  const properties: Record<string, string | string[]> = {};
  for (const entry of parsed) {
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw invalid('each user property must be an object {"name": "value"}');
    for (const [name, value] of Object.entries(entry as Record<string, unknown>)) {
      if (typeof value !== 'string') throw invalid(`user property ${JSON.stringify(name)} must have a string value`);
      const existing = properties[name];
      properties[name] = existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
    }
  }
  return properties;
}

/**
 * Validates a Publish request and turns it into an MQTT publish. Pure apart from reading `url`
 * and headers; throws DataPlaneRequestError for anything IoT Core would refuse.
 */
export function parsePublishRequest(method: string, rawUrl: string, headers: IncomingMessage['headers'], body: Buffer, maxPayloadBytes: number): ParsedPublish {
  const url = new URL(rawUrl, 'http://localhost');
  const match = /^\/topics\/(.+)$/.exec(url.pathname);
  if (match === null) throw new DataPlaneRequestError(404, 'ResourceNotFoundException', `no such data-plane operation: ${method} ${url.pathname}`);
  if (method !== 'POST') throw new DataPlaneRequestError(405, 'MethodNotAllowedException', `${method} is not allowed on /topics/{topic}; use POST`);

  let topic: string;
  try {
    topic = decodeURIComponent(match[1] ?? '');
  } catch (err) {
    throw new DataPlaneRequestError(400, 'InvalidRequestException', 'topic is not valid URL encoding', { cause: err });
  }
  if (topic.length === 0 || Buffer.byteLength(topic) > 256) throw invalid('topic must be 1 to 256 bytes');
  if (/[+#]/.test(topic) || topic.includes('\u0000')) throw invalid(`topic ${JSON.stringify(topic)} contains a wildcard or NUL; publish needs a concrete topic`);
  if (topic.startsWith('$')) throw invalid(`topic ${JSON.stringify(topic)} is reserved ('$' prefix)`);
  if (body.byteLength > maxPayloadBytes) {
    throw new DataPlaneRequestError(413, 'RequestEntityTooLargeException', `payload is ${body.byteLength} bytes; the limit is ${maxPayloadBytes}`);
  }

  const query = url.searchParams;
  const qosText = query.get('qos') ?? '0';
  if (qosText !== '0' && qosText !== '1') throw invalid(`qos must be 0 or 1; got ${JSON.stringify(qosText)}`);
  const retainText = query.get('retain') ?? 'false';
  if (retainText !== 'true' && retainText !== 'false') throw invalid(`retain must be true or false; got ${JSON.stringify(retainText)}`);

  const properties: NonNullable<IClientPublishOptions['properties']> = {};
  const expiry = query.get('messageExpiry');
  if (expiry !== null) {
    if (!/^\d+$/.test(expiry) || Number(expiry) > 0xffffffff) throw invalid(`messageExpiry must be whole seconds; got ${JSON.stringify(expiry)}`);
    properties.messageExpiryInterval = Number(expiry);
  }
  const contentType = query.get('contentType');
  if (contentType !== null) properties.contentType = contentType;
  const responseTopic = query.get('responseTopic');
  if (responseTopic !== null) {
    if (/[+#]/.test(responseTopic) || responseTopic.length === 0) throw invalid('responseTopic must be a concrete topic');
    properties.responseTopic = responseTopic;
  }
  const userProperties = singleHeader(headers, 'x-amz-mqtt5-user-properties');
  if (userProperties !== undefined) properties.userProperties = decodeUserProperties(userProperties);
  const format = singleHeader(headers, 'x-amz-mqtt5-payload-format-indicator');
  if (format !== undefined) {
    if (format !== 'UTF8_DATA' && format !== 'UNSPECIFIED_BYTES') throw invalid(`payloadFormatIndicator must be UTF8_DATA or UNSPECIFIED_BYTES; got ${JSON.stringify(format)}`);
    properties.payloadFormatIndicator = format === 'UTF8_DATA';
    if (format === 'UTF8_DATA' && !isUtf8(body)) throw invalid('payloadFormatIndicator is UTF8_DATA but the payload is not valid UTF-8');
  }
  const correlation = singleHeader(headers, 'x-amz-mqtt5-correlation-data');
  if (correlation !== undefined) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(correlation)) throw invalid('x-amz-mqtt5-correlation-data must be base64');
    properties.correlationData = Buffer.from(correlation, 'base64');
  }

  return {
    topic,
    payload: body,
    options: { qos: qosText === '1' ? 1 : 0, retain: retainText === 'true', ...(Object.keys(properties).length > 0 ? { properties } : {}) },
  };
}

function isUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.byteLength;
      // Keep reading (so the response can be written) but stop buffering past the limit.
      if (size <= limit + 1) chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, requestId: string, body?: object, errorType?: string): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': requestId,
    ...(errorType !== undefined ? { 'x-amzn-errortype': errorType } : {}),
  });
  res.end(text);
}

/** Publishes and maps broker refusals onto the data-plane errors IoT Core would return. */
async function publish(mqtt: MqttClient, request: ParsedPublish, timeoutMs: number): Promise<void> {
  if (!mqtt.connected) throw new DataPlaneRequestError(503, 'ServiceUnavailableException', 'the local broker connection is down');
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DataPlaneRequestError(503, 'ServiceUnavailableException', `no PUBACK from the local broker within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([mqtt.publishAsync(request.topic, request.payload, request.options), timeout]);
  } catch (err) {
    if (err instanceof DataPlaneRequestError) throw err;
    const code = (err as { code?: unknown }).code;
    if (code === 135) throw new DataPlaneRequestError(403, 'ForbiddenException', `the orchestrator identity may not publish to ${request.topic}`, { cause: err });
    if (code === 149 || code === 131) throw new DataPlaneRequestError(413, 'RequestEntityTooLargeException', `the broker refused the payload for ${request.topic}`, { cause: err });
    throw new DataPlaneRequestError(503, 'ServiceUnavailableException', `publishing to ${request.topic} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** Refuses (403, as IoT Core refuses a publish outside the role's IAM grant) what the signer's grant does not cover. */
function authorize(grants: NonNullable<DataPlaneShimOptions['grants']>, authorization: string | undefined, request: ParsedPublish): void {
  const accessKeyId = accessKeyOfAuthorization(authorization);
  const grant = grants(accessKeyId);
  if (grant === undefined) {
    throw new DataPlaneRequestError(403, 'ForbiddenException', `access key ${JSON.stringify(accessKeyId ?? null)} belongs to no function; it may not publish to ${request.topic}`);
  }
  const refusal = publishRefusal(grant.publications, request.topic, request.options.retain === true);
  if (refusal !== undefined) {
    throw new DataPlaneRequestError(403, 'ForbiddenException', `${grant.caller} is not authorized to perform iot:Publish${request.options.retain === true ? ' with RETAIN' : ''} on ${request.topic}: ${refusal}`);
  }
}

/** Starts the shim on 127.0.0.1:`port`. */
export async function startDataPlaneShim(options: DataPlaneShimOptions): Promise<DataPlaneShim> {
  const log = options.log ?? silentLog;
  const maxPayloadBytes = options.maxPayloadBytes ?? MAX_PAYLOAD_BYTES;
  const timeoutMs = options.publishTimeoutMs ?? 10_000;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestId = randomUUID();
    try {
      const body = await readBody(req, maxPayloadBytes);
      const request = parsePublishRequest(req.method ?? 'GET', req.url ?? '/', req.headers, body, maxPayloadBytes);
      if (options.grants !== undefined) authorize(options.grants, singleHeader(req.headers, 'authorization'), request);
      await publish(options.mqtt, request, timeoutMs);
      send(res, 200, requestId);
    } catch (err) {
      const e = err instanceof DataPlaneRequestError ? err : new DataPlaneRequestError(500, 'InternalFailureException', (err as Error).message, { cause: err });
      (e.status >= 500 ? log.error : log.warn)('data-plane Publish refused', { status: e.status, error: e.errorType, message: e.message, url: req.url });
      if (!res.headersSent) send(res, e.status, requestId, { message: e.message }, e.errorType);
    }
  };

  const server: Server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const endpoint = `http://127.0.0.1:${options.port}`;
  log.info('IoT data-plane shim ready', { endpoint });
  return {
    endpoint,
    port: options.port,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeIdleConnections();
      }),
  };
}
