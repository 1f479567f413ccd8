import { ForbiddenException, InvalidRequestException, IoTDataPlaneClient, PublishCommand, RequestEntityTooLargeException } from '@aws-sdk/client-iot-data-plane';
import { MAX_PAYLOAD_BYTES } from '../../../core/schemas';
import { startDataPlaneShim, type DataPlaneShim } from '../../../local/data-plane-shim';
import { LOCAL_CREDENTIALS } from '../../../local/dynamodb';
import { freePort } from '../../helpers/free-port';
import { connectMqtt, nextMessage, startTestBroker, type TestBroker } from '../../helpers/local-stack';

describe('data-plane shim', () => {
  let broker: TestBroker;
  let shim: DataPlaneShim;
  let iotData: IoTDataPlaneClient;

  beforeAll(async () => {
    broker = await startTestBroker();
    const orchestrator = await connectMqtt(broker, 'porchlight-orchestrator');
    shim = await startDataPlaneShim({ port: await freePort(), mqtt: orchestrator });
    iotData = new IoTDataPlaneClient({ endpoint: shim.endpoint, region: 'eu-central-1', credentials: LOCAL_CREDENTIALS, maxAttempts: 1 });
  }, 30_000);

  afterAll(async () => {
    iotData.destroy();
    await shim.stop();
    await broker.cleanup();
  });

  describe('Publish through the real IoTDataPlaneClient', () => {
    it('publishes a retained message with MQTT 5 properties that a later subscriber receives', async () => {
      await iotData.send(new PublishCommand({
        topic: 'tasks/t-shim-1/status',
        qos: 1,
        retain: true,
        payload: Buffer.from('{"v":1,"state":"submitted"}'),
        userProperties: JSON.stringify([{ traceparent: '00-abc-def-01' }, { kind: 'status' }, { kind: 'snapshot' }]),
        contentType: 'application/json',
        payloadFormatIndicator: 'UTF8_DATA',
        correlationData: Buffer.from('corr-1').toString('base64'),
        messageExpiry: 3600,
      }));

      // Subscribing after the publish proves the broker kept it retained.
      const watcher = await connectMqtt(broker, 'client-watcher');
      const received = nextMessage(watcher, 'tasks/t-shim-1/status');
      await watcher.subscribeAsync('tasks/t-shim-1/status', { qos: 1 });
      const { payload, packet } = await received;

      expect(JSON.parse(payload.toString())).toEqual({ v: 1, state: 'submitted' });
      expect(packet.retain).toBe(true);
      expect(packet.qos).toBe(1);
      expect(packet.properties?.userProperties).toEqual({ traceparent: '00-abc-def-01', kind: ['status', 'snapshot'] });
      expect(packet.properties?.contentType).toBe('application/json');
      expect(packet.properties?.payloadFormatIndicator).toBe(true);
      expect(packet.properties?.correlationData?.toString()).toBe('corr-1');
      expect(packet.properties?.messageExpiryInterval).toBeGreaterThan(3500);
    });

    it('clears a retained message when the payload is empty and retain is set', async () => {
      await iotData.send(new PublishCommand({ topic: 'tasks/t-shim-2/status', qos: 1, retain: true, payload: Buffer.from('{"v":1}') }));
      await iotData.send(new PublishCommand({ topic: 'tasks/t-shim-2/status', qos: 1, retain: true, payload: new Uint8Array(0) }));

      const watcher = await connectMqtt(broker, 'client-watcher-2');
      const received = nextMessage(watcher, 'tasks/t-shim-2/status', 700).then(() => 'received', () => 'nothing');
      await watcher.subscribeAsync('tasks/t-shim-2/status', { qos: 1 });
      await expect(received).resolves.toBe('nothing');
    });

    it('delivers a QoS 0 publish without retain to a live subscriber', async () => {
      const watcher = await connectMqtt(broker, 'client-watcher-3');
      await watcher.subscribeAsync('tasks/t-shim-3/result', { qos: 1 });
      const received = nextMessage(watcher, 'tasks/t-shim-3/result');
      await iotData.send(new PublishCommand({ topic: 'tasks/t-shim-3/result', qos: 0, payload: Buffer.from('{"v":1}') }));
      const { packet } = await received;
      expect(packet.retain).toBe(false);
      expect(packet.qos).toBe(0);
    });
  });

  describe('refusals the SDK surfaces as modelled exceptions', () => {
    it('answers InvalidRequestException for QoS 2, which IoT Core does not support', async () => {
      await expect(iotData.send(new PublishCommand({ topic: 'tasks/t-shim-4/status', qos: 2, payload: Buffer.from('{}') }))).rejects.toBeInstanceOf(InvalidRequestException);
    });

    it('answers InvalidRequestException for a wildcard topic', async () => {
      await expect(iotData.send(new PublishCommand({ topic: 'tasks/+/status', qos: 1, payload: Buffer.from('{}') }))).rejects.toThrow(/wildcard/);
    });

    it('answers InvalidRequestException for user properties that are not an array of objects', async () => {
      await expect(iotData.send(new PublishCommand({ topic: 'tasks/t-shim-5/status', qos: 1, payload: Buffer.from('{}'), userProperties: '{"a":"b"}' })))
        .rejects.toBeInstanceOf(InvalidRequestException);
    });

    it('answers RequestEntityTooLargeException above 128 KB', async () => {
      await expect(iotData.send(new PublishCommand({ topic: 'tasks/t-shim-6/status', qos: 1, payload: Buffer.alloc(MAX_PAYLOAD_BYTES + 1, 'a') })))
        .rejects.toBeInstanceOf(RequestEntityTooLargeException);
    });

    it('answers ForbiddenException when the broker denies the orchestrator the topic', async () => {
      // Only an agent writes its own résumé; the orchestrator's policy has no such right.
      await expect(iotData.send(new PublishCommand({ topic: 'agents/agent-x/resume', qos: 1, payload: Buffer.from('{}') }))).rejects.toBeInstanceOf(ForbiddenException);
    });
  });
});
