import { ForbiddenException, InvalidRequestException, IoTDataPlaneClient, PublishCommand, RequestEntityTooLargeException } from '@aws-sdk/client-iot-data-plane';
import { MAX_PAYLOAD_BYTES } from '../../../core/schemas';
import { DataPlaneRequestError, decodeUserProperties, parsePublishRequest, startDataPlaneShim, type DataPlaneShim } from '../../../local/data-plane-shim';
import { LOCAL_CREDENTIALS } from '../../../local/dynamodb';
import { functionPublishGrant, localFunctionCredentials } from '../../../local/function-credentials';
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
        topic: 'clients/client-watcher/tasks/t-shim-1/status',
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
      const received = nextMessage(watcher, 'clients/client-watcher/tasks/t-shim-1/status');
      await watcher.subscribeAsync('clients/client-watcher/tasks/t-shim-1/status', { qos: 1 });
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
      await iotData.send(new PublishCommand({ topic: 'clients/client-watcher-2/tasks/t-shim-2/status', qos: 1, retain: true, payload: Buffer.from('{"v":1}') }));
      await iotData.send(new PublishCommand({ topic: 'clients/client-watcher-2/tasks/t-shim-2/status', qos: 1, retain: true, payload: new Uint8Array(0) }));

      const watcher = await connectMqtt(broker, 'client-watcher-2');
      const received = nextMessage(watcher, 'clients/client-watcher-2/tasks/t-shim-2/status', 700).then(() => 'received', () => 'nothing');
      await watcher.subscribeAsync('clients/client-watcher-2/tasks/t-shim-2/status', { qos: 1 });
      await expect(received).resolves.toBe('nothing');
    });

    it('delivers a QoS 0 publish without retain to a live subscriber', async () => {
      const watcher = await connectMqtt(broker, 'client-watcher-3');
      await watcher.subscribeAsync('clients/client-watcher-3/tasks/t-shim-3/result', { qos: 1 });
      const received = nextMessage(watcher, 'clients/client-watcher-3/tasks/t-shim-3/result');
      await iotData.send(new PublishCommand({ topic: 'clients/client-watcher-3/tasks/t-shim-3/result', qos: 0, payload: Buffer.from('{"v":1}') }));
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

  describe('with the functions\' publish grants', () => {
    let granted: DataPlaneShim;
    const clients: IoTDataPlaneClient[] = [];
    const as = (credentials: { accessKeyId: string; secretAccessKey: string }): IoTDataPlaneClient => {
      const c = new IoTDataPlaneClient({ endpoint: granted.endpoint, region: 'eu-central-1', credentials, maxAttempts: 1 });
      clients.push(c);
      return c;
    };

    beforeAll(async () => {
      const orchestrator = await connectMqtt(broker, 'porchlight-orchestrator');
      granted = await startDataPlaneShim({ port: await freePort(), mqtt: orchestrator, grants: functionPublishGrant });
    }, 30_000);

    afterAll(async () => {
      for (const c of clients) c.destroy();
      await granted.stop();
    });

    it('publishes what the calling function\'s grant covers, clearing retained outputs included', async () => {
      await as(localFunctionCredentials('timer')).send(new PublishCommand({ topic: 'clients/c1/patient-data/t-g1/output/s1', qos: 1, retain: true, payload: Buffer.from('{"v":1}') }));
      await as(localFunctionCredentials('timer')).send(new PublishCommand({ topic: 'clients/c1/patient-data/t-g1/output/s1', qos: 1, retain: true, payload: new Uint8Array(0) }));
      // An agent's hand-in topic is never the orchestrator's to write.
      await expect(as(localFunctionCredentials('timer')).send(new PublishCommand({ topic: 'patient-data/t-g1/output/s1/a1', qos: 1, payload: Buffer.from('{}') })))
        .rejects.toBeInstanceOf(ForbiddenException);
      const watcher = await connectMqtt(broker, 'observer-granted', { kind: 'observer' });
      const live = nextMessage(watcher, 'agents/a1/errors');
      await watcher.subscribeAsync('agents/a1/errors', { qos: 1 });
      await as(localFunctionCredentials('registry')).send(new PublishCommand({ topic: 'agents/a1/errors', qos: 1, payload: Buffer.from('{"v":1}') }));
      expect(JSON.parse((await live).payload.toString())).toEqual({ v: 1 });
    }, 30_000);

    it('refuses a topic outside the function\'s grant with ForbiddenException, and nothing reaches the broker', async () => {
      const watcher = await connectMqtt(broker, 'observer-refusal', { kind: 'observer' });
      const seen: string[] = [];
      watcher.on('message', (topic) => seen.push(topic));
      await watcher.subscribeAsync('agents/a2/errors', { qos: 1 });
      // presence never refuses with a notice: agent errors are outside its grant
      const refused = as(localFunctionCredentials('presence')).send(new PublishCommand({ topic: 'agents/a2/errors', qos: 1, payload: Buffer.from('{"v":1}') }));
      await expect(refused).rejects.toBeInstanceOf(ForbiddenException);
      await expect(refused).rejects.toThrow(/function presence is not authorized to perform iot:Publish on agents\/a2\/errors/);
      // a marker published after the refusal arrives alone: the refused message never got there
      const marker = nextMessage(watcher, 'agents/a2/errors');
      await as(localFunctionCredentials('registry')).send(new PublishCommand({ topic: 'agents/a2/errors', qos: 1, payload: Buffer.from('{"marker":true}') }));
      expect(JSON.parse((await marker).payload.toString())).toEqual({ marker: true });
      expect(seen).toEqual(['agents/a2/errors']);
    }, 30_000);

    it('refuses a retained publish of a kind granted only without RETAIN', async () => {
      await expect(as(localFunctionCredentials('planner')).send(new PublishCommand({ topic: 'tasks/t-g2/assign/a1', qos: 1, retain: true, payload: Buffer.from('{}') })))
        .rejects.toThrow(/with RETAIN on tasks\/t-g2\/assign\/a1/);
      await as(localFunctionCredentials('planner')).send(new PublishCommand({ topic: 'tasks/t-g2/assign/a1', qos: 1, retain: false, payload: Buffer.from('{}') }));
    });

    it('refuses a caller whose access key belongs to no function', async () => {
      await expect(as(LOCAL_CREDENTIALS).send(new PublishCommand({ topic: 'tasks/t-g3/status', qos: 1, payload: Buffer.from('{}') })))
        .rejects.toThrow(/access key "local" belongs to no function/);
    });
  });

  describe('parsePublishRequest', () => {
    const parse = (method: string, url: string, headers: Record<string, string> = {}, body = Buffer.from('{}')) => parsePublishRequest(method, url, headers, body, MAX_PAYLOAD_BYTES);
    const refusal = (fn: () => unknown): DataPlaneRequestError => {
      try {
        fn();
      } catch (err) {
        if (err instanceof DataPlaneRequestError) return err;
        throw err;
      }
      throw new Error('expected a DataPlaneRequestError');
    };

    it('decodes the topic, QoS, retain and expiry from the path and query', () => {
      expect(parse('POST', '/topics/tasks%2Ft1%2Fstatus?qos=1&retain=true&messageExpiry=60')).toMatchObject({
        topic: 'tasks/t1/status', options: { qos: 1, retain: true, properties: { messageExpiryInterval: 60 } },
      });
    });

    it('defaults to QoS 0 without retain, as IoT Core does', () => {
      expect(parse('POST', '/topics/a%2Fb').options).toEqual({ qos: 0, retain: false });
    });

    it('answers 404 for another data-plane path and 405 for another method', () => {
      expect(refusal(() => parse('POST', '/things/x/shadow'))).toMatchObject({ status: 404, errorType: 'ResourceNotFoundException' });
      expect(refusal(() => parse('GET', '/topics/a'))).toMatchObject({ status: 405, errorType: 'MethodNotAllowedException' });
    });

    it.each([
      ['/topics/a?retain=yes', /retain/],
      ['/topics/a?messageExpiry=-1', /messageExpiry/],
      ['/topics/%24SYS%2Fx', /reserved/],
      ['/topics/%E0%A4%A', /URL encoding/],
    ])('answers 400 InvalidRequestException for %s', (url, message) => {
      const err = refusal(() => parse('POST', url));
      expect(err).toMatchObject({ status: 400, errorType: 'InvalidRequestException' });
      expect(err.message).toMatch(message);
    });

    it('refuses a UTF8_DATA payload that is not UTF-8', () => {
      const err = refusal(() => parse('POST', '/topics/a', { 'x-amz-mqtt5-payload-format-indicator': 'UTF8_DATA' }, Buffer.from([0xff, 0xfe])));
      expect(err.message).toMatch(/not valid UTF-8/);
    });
  });

  describe('decodeUserProperties', () => {
    const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64');

    it('turns one-key objects into MQTT 5 user properties, repeated names into arrays', () => {
      expect(decodeUserProperties(encode([{ a: '1' }, { b: '2' }, { a: '3' }]))).toEqual({ a: ['1', '3'], b: '2' });
    });

    it.each([['not base64 JSON', Buffer.from('{').toString('base64')], ['a non-array', encode({ a: 'b' })], ['a non-string value', encode([{ a: 1 }])]])('refuses %s', (_, header) => {
      expect(() => decodeUserProperties(header)).toThrow(DataPlaneRequestError);
    });
  });
});
