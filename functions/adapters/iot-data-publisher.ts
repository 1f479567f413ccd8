/**
 * The Publisher port over the IoT data-plane `Publish` API. Retained topics (task status and
 * result) can only be set this way: the Republish rule action cannot set RETAIN. Locally the
 * data-plane shim serves the same HTTP API, so this adapter runs unchanged against it.
 */
import { PublishCommand, type IoTDataPlaneClient, type PublishCommandInput } from '@aws-sdk/client-iot-data-plane';
import type { OutboundMessage } from '../../core/model';
import type { Publisher } from '../../core/ports';
import { MAX_PAYLOAD_BYTES } from '../../core/schemas';
import { PayloadTooLargeError } from '../../core/errors';
import { errorMessage, isRetryableSdkError, PublishError, sdkErrorName } from './errors';

/** Something that yields the data-plane client, possibly after endpoint discovery at cold start. */
export type IotDataClientSource = IoTDataPlaneClient | (() => Promise<IoTDataPlaneClient>);

/**
 * The Publish request for `message`: JSON payload bytes (zero bytes for a `null` payload, which
 * with `retain` clears the retained message), MQTT 5 user properties as the JSON array of
 * one-key objects the API wants (the SDK base64-encodes the header), and the message expiry.
 */
export function publishInput(message: OutboundMessage): PublishCommandInput {
  const payload = message.payload === null ? new Uint8Array(0) : Buffer.from(JSON.stringify(message.payload), 'utf8');
  if (payload.byteLength > MAX_PAYLOAD_BYTES) throw new PayloadTooLargeError(payload.byteLength, MAX_PAYLOAD_BYTES);
  const properties = Object.entries(message.userProperties ?? {});
  return {
    topic: message.topic,
    qos: message.qos,
    retain: message.retain,
    payload,
    ...(payload.byteLength > 0 ? { contentType: 'application/json', payloadFormatIndicator: 'UTF8_DATA' as const } : {}),
    ...(properties.length > 0 ? { userProperties: JSON.stringify(properties.map(([k, v]) => ({ [k]: v }))) } : {}),
    ...(message.messageExpirySec !== undefined ? { messageExpiry: message.messageExpirySec } : {}),
  };
}

/** Publishes through IoT Core's data plane; SDK failures become PublishError (cause kept). */
export class IotDataPublisher implements Publisher {
  private readonly source: IotDataClientSource;

  /** `client` may be a function resolving the client once the data endpoint is known. */
  constructor(client: IotDataClientSource) {
    this.source = client;
  }

  /** Sends one message; throws PayloadTooLargeError before sending anything over 128 KB. */
  async publish(message: OutboundMessage): Promise<void> {
    const input = publishInput(message);
    const client = typeof this.source === 'function' ? await this.source() : this.source;
    try {
      await client.send(new PublishCommand(input));
    } catch (err) {
      throw new PublishError(message.topic, `${sdkErrorName(err)}: ${errorMessage(err)}`, isRetryableSdkError(err), { cause: err });
    }
  }
}
