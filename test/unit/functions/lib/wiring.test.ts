import 'aws-sdk-client-mock-jest';
import { DescribeEndpointCommand, IoTClient } from '@aws-sdk/client-iot';
import { mockClient } from 'aws-sdk-client-mock';
import { ConfigError } from '../../../../core/errors';
import { FileAccreditationVerifier, IotAccreditationVerifier } from '../../../../functions/adapters/accreditation-verifiers';
import { AdapterError } from '../../../../functions/adapters/errors';
import { loadSettings } from '../../../../functions/lib/settings';
import { createClients, createVerifier, discoverDataEndpoint } from '../../../../functions/lib/wiring';
import { TEST_ENV } from '../helpers/handler-env';

const iot = mockClient(IoTClient);

beforeEach(() => iot.reset());

describe('wiring', () => {
  describe('createClients with local endpoint overrides', () => {
    it('points DynamoDB and SQS at the overrides and uses local credentials when none are set', async () => {
      const settings = loadSettings('intake', { ...TEST_ENV, AWS_REGION: '', DYNAMODB_ENDPOINT: 'http://127.0.0.1:8000', SQS_ENDPOINT: 'http://127.0.0.1:9324' });
      const clients = createClients(settings, {});
      const ddbEndpoint = await clients.documentClient.config.endpoint!();
      expect(`${ddbEndpoint.protocol}//${ddbEndpoint.hostname}:${ddbEndpoint.port}`).toBe('http://127.0.0.1:8000');
      const sqsEndpoint = await clients.sqs.config.endpoint!();
      expect(sqsEndpoint.port).toBe(9324);
      await expect(clients.sqs.config.region()).resolves.toBe('us-east-1');
      await expect(clients.sqs.config.credentials()).resolves.toMatchObject({ accessKeyId: 'local' });
    });
  });

  describe('the IoT data endpoint', () => {
    it('uses IOT_DATA_ENDPOINT without asking IoT', async () => {
      const clients = createClients(loadSettings('intake', TEST_ENV), {});
      const data = await clients.iotData();
      expect((await data.config.endpoint!()).hostname).toBe('example-ats.iot.eu-central-1.amazonaws.com');
      expect(iot).not.toHaveReceivedCommand(DescribeEndpointCommand);
    });

    it('discovers the ATS endpoint once when IOT_DATA_ENDPOINT is unset', async () => {
      iot.on(DescribeEndpointCommand).resolves({ endpointAddress: 'abc123-ats.iot.eu-central-1.amazonaws.com' });
      const clients = createClients(loadSettings('intake', { ...TEST_ENV, IOT_DATA_ENDPOINT: '' }), {});
      const [a, b] = await Promise.all([clients.iotData(), clients.iotData()]);
      expect(a).toBe(b);
      expect((await a.config.endpoint!()).hostname).toBe('abc123-ats.iot.eu-central-1.amazonaws.com');
      expect(iot).toHaveReceivedCommandTimes(DescribeEndpointCommand, 1);
      expect(iot).toHaveReceivedCommandWith(DescribeEndpointCommand, { endpointType: 'iot:Data-ATS' });
    });

    it('tries discovery again on the next call after a failure', async () => {
      iot.on(DescribeEndpointCommand)
        .rejectsOnce(Object.assign(new Error('slow'), { name: 'ThrottlingException', $fault: 'client', $metadata: {} }))
        .resolves({ endpointAddress: 'abc-ats.iot.eu-central-1.amazonaws.com' });
      const clients = createClients(loadSettings('intake', { ...TEST_ENV, IOT_DATA_ENDPOINT: '' }), {});
      await expect(clients.iotData()).rejects.toMatchObject({ name: 'AdapterError', retryable: true });
      await expect(clients.iotData()).resolves.toBeDefined();
      expect(iot).toHaveReceivedCommandTimes(DescribeEndpointCommand, 2);
    });

    it('throws ConfigError when IoT returns no address', async () => {
      iot.on(DescribeEndpointCommand).resolves({});
      await expect(discoverDataEndpoint(new IoTClient({ region: 'eu-central-1' }))).rejects.toThrow(ConfigError);
    });

    it('wraps a denied DescribeEndpoint as a permanent AdapterError', async () => {
      iot.on(DescribeEndpointCommand).rejects(Object.assign(new Error('denied'), { name: 'UnauthorizedException', $fault: 'client', $metadata: {} }));
      const err = await discoverDataEndpoint(new IoTClient({ region: 'eu-central-1' })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AdapterError);
      expect(err).toMatchObject({ retryable: false });
    });
  });

  describe('createVerifier', () => {
    it('reads the local CA file when ACCREDITATION_FILE is set, else IoT thing groups', () => {
      const clients = { iot: new IoTClient({ region: 'eu-central-1' }) };
      expect(createVerifier({ accreditationFile: '/tmp/x.json' }, clients)).toBeInstanceOf(FileAccreditationVerifier);
      expect(createVerifier({}, clients)).toBeInstanceOf(IotAccreditationVerifier);
    });
  });
});
