import 'aws-sdk-client-mock-jest';
import { IoTDataPlaneClient, PublishCommand, ThrottlingException, UnauthorizedException } from '@aws-sdk/client-iot-data-plane';
import { mockClient } from 'aws-sdk-client-mock';
import { PayloadTooLargeError } from '../../../../core/errors';
import { PublishError } from '../../../../functions/adapters/errors';
import { IotDataPublisher, publishInput } from '../../../../functions/adapters/iot-data-publisher';

const iot = mockClient(IoTDataPlaneClient);
const client = new IoTDataPlaneClient({ region: 'eu-central-1' });

beforeEach(() => iot.reset());

describe('IotDataPublisher', () => {
  describe('publishing a retained status', () => {
    it('sends the JSON bytes, qos, retain, content type, user properties and expiry', async () => {
      iot.on(PublishCommand).resolves({});
      await new IotDataPublisher(client).publish({
        topic: 'tasks/t-1/status',
        payload: { v: 1, state: 'submitted', note: 'naïve' },
        qos: 1,
        retain: true,
        userProperties: { traceparent: '00-abc-def-01', taskId: 't-1' },
        messageExpirySec: 3600,
      });
      expect(iot).toHaveReceivedCommandTimes(PublishCommand, 1);
      const input = iot.commandCalls(PublishCommand)[0]!.args[0].input;
      expect(input).toEqual({
        topic: 'tasks/t-1/status',
        qos: 1,
        retain: true,
        payload: Buffer.from('{"v":1,"state":"submitted","note":"naïve"}', 'utf8'),
        contentType: 'application/json',
        payloadFormatIndicator: 'UTF8_DATA',
        userProperties: '[{"traceparent":"00-abc-def-01"},{"taskId":"t-1"}]',
        messageExpiry: 3600,
      });
    });
  });

  describe('clearing a retained topic', () => {
    it('sends a zero-length payload with retain and no content type', async () => {
      iot.on(PublishCommand).resolves({});
      await new IotDataPublisher(client).publish({ topic: 'tasks/t-1/output/s1', payload: null, qos: 1, retain: true });
      const input = iot.commandCalls(PublishCommand)[0]!.args[0].input;
      expect(input).toEqual({ topic: 'tasks/t-1/output/s1', qos: 1, retain: true, payload: new Uint8Array(0) });
    });
  });

  describe('an oversize message', () => {
    it('throws PayloadTooLargeError and sends nothing', async () => {
      const err = await new IotDataPublisher(client)
        .publish({ topic: 'tasks/t-1/result', payload: { blob: 'x'.repeat(130 * 1024) }, qos: 1, retain: true })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PayloadTooLargeError);
      expect(iot).not.toHaveReceivedCommand(PublishCommand);
    });
  });

  describe('SDK failures', () => {
    it('turns throttling into a retryable PublishError keeping the cause', async () => {
      const failure = new ThrottlingException({ message: 'rate exceeded', $metadata: {} });
      iot.on(PublishCommand).rejects(failure);
      const err = await new IotDataPublisher(client).publish({ topic: 'tasks/t-1/status', payload: {}, qos: 1, retain: true }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PublishError);
      expect(err).toMatchObject({ topic: 'tasks/t-1/status', retryable: true });
      expect((err as Error).cause).toBe(failure);
      expect((err as Error).message).toContain('ThrottlingException: rate exceeded');
    });

    it('turns a denied publish into a permanent PublishError', async () => {
      iot.on(PublishCommand).rejects(new UnauthorizedException({ message: 'no', $metadata: {} }));
      const err = await new IotDataPublisher(client).publish({ topic: 'agents/a/errors', payload: {}, qos: 1, retain: false }).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'PublishError', retryable: false });
    });
  });

  describe('a lazily resolved client', () => {
    it('awaits the client source before publishing', async () => {
      iot.on(PublishCommand).resolves({});
      const source = jest.fn(() => Promise.resolve(client));
      await new IotDataPublisher(source).publish({ topic: 'agents/a/errors', payload: { code: 'x' }, qos: 1, retain: false });
      expect(source).toHaveBeenCalledTimes(1);
      expect(iot).toHaveReceivedCommandWith(PublishCommand, { topic: 'agents/a/errors', retain: false, qos: 1 });
    });
  });

  describe('publishInput', () => {
    it('omits user properties and expiry when the message has none', () => {
      const input = publishInput({ topic: 'agents/a/errors', payload: 1, qos: 0, retain: false });
      expect(input).not.toHaveProperty('userProperties');
      expect(input).not.toHaveProperty('messageExpiry');
      expect(Buffer.from(input.payload as Uint8Array).toString()).toBe('1');
    });
  });
});
