import { readFile } from 'node:fs/promises';
import { DescribeTableCommand, DescribeTimeToLiveCommand, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { ForbiddenException, IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import type { MqttClient } from 'mqtt';
import { TABLE } from '../../../infra/table-definition';
import { LOCAL_CREDENTIALS } from '../../../local/dynamodb';
import { assertPortFree } from '../../../local/free-port';
import { localFunctionCredentials } from '../../../local/function-credentials';
import { waitUntil } from '../../../local/processes';
import { connectMqtt, nextMessage, startTestStack, type TestStack } from '../../helpers/local-stack';

interface StatusSnapshot {
  readonly taskId: string;
  readonly state: string;
  readonly errors: readonly { code: string }[];
}

/** Collects every status snapshot a client sees on `topic`. */
function collectStatuses(client: MqttClient, topic: string): StatusSnapshot[] {
  const seen: StatusSnapshot[] = [];
  client.on('message', (t, payload) => {
    if (t === topic && payload.length > 0) seen.push(JSON.parse(payload.toString()) as StatusSnapshot);
  });
  return seen;
}

describe('local stack (real handlers)', () => {
  let t: TestStack;

  beforeAll(async () => {
    t = await startTestStack({ functionEnv: { PROPOSAL_WINDOW_MS: '300', POWERTOOLS_LOG_LEVEL: 'WARN' }, retryDelaysMs: [100, 200] });
  }, 120_000);

  afterAll(async () => {
    await t?.cleanup();
  });

  describe('data-plane shim', () => {
    const publishAs = async (fn: string, topic: string): Promise<void> => {
      const client = new IoTDataPlaneClient({ endpoint: t.stack.endpoints.iotDataEndpoint, region: t.stack.env.AWS_REGION, credentials: localFunctionCredentials(fn), maxAttempts: 1 });
      try {
        await client.send(new PublishCommand({ topic, qos: 1, payload: Buffer.from('{"v":1}') }));
      } finally {
        client.destroy();
      }
    };

    it('refuses a publish outside the calling function\'s grant, as IoT Core would', async () => {
      await expect(publishAs('presence', 'agents/stack-a1/errors')).rejects.toBeInstanceOf(ForbiddenException);
      await expect(publishAs('registry', 'agents/stack-a1/errors')).resolves.toBeUndefined();
    }, 30_000);

    it('refuses the shared local credentials: each function publishes with its own', async () => {
      const client = new IoTDataPlaneClient({ endpoint: t.stack.endpoints.iotDataEndpoint, region: t.stack.env.AWS_REGION, credentials: LOCAL_CREDENTIALS, maxAttempts: 1 });
      try {
        await expect(client.send(new PublishCommand({ topic: 'tasks/stack-t1/status', qos: 1, payload: Buffer.from('{}') }))).rejects.toBeInstanceOf(ForbiddenException);
      } finally {
        client.destroy();
      }
    }, 30_000);
  });

  describe('DynamoDB Local', () => {
    it('has the table with the same keys, both GSIs and TTL as the CDK table', async () => {
      const { Table } = await t.stack.dynamo.client.send(new DescribeTableCommand({ TableName: t.stack.tableName }));
      expect(Table?.KeySchema).toEqual([
        { AttributeName: TABLE.partitionKey, KeyType: 'HASH' },
        { AttributeName: TABLE.sortKey, KeyType: 'RANGE' },
      ]);
      const indexes = Object.fromEntries((Table?.GlobalSecondaryIndexes ?? []).map((g) => [g.IndexName, g.KeySchema?.map((k) => k.AttributeName)]));
      expect(indexes).toEqual({
        [TABLE.skillIndex.name]: [TABLE.skillIndex.partitionKey, TABLE.skillIndex.sortKey],
        [TABLE.dueIndex.name]: [TABLE.dueIndex.partitionKey, TABLE.dueIndex.sortKey],
      });
      const ttl = await t.stack.dynamo.client.send(new DescribeTimeToLiveCommand({ TableName: t.stack.tableName }));
      expect(ttl.TimeToLiveDescription).toMatchObject({ TimeToLiveStatus: 'ENABLED', AttributeName: TABLE.ttlAttribute });
    });
  });

  describe('environment', () => {
    it('gives the functions every local endpoint and the accreditation file', () => {
      expect(t.stack.env).toMatchObject({
        TABLE_NAME: t.stack.tableName,
        DYNAMODB_ENDPOINT: t.stack.endpoints.dynamoEndpoint,
        IOT_DATA_ENDPOINT: t.stack.endpoints.iotDataEndpoint,
        SQS_ENDPOINT: t.stack.endpoints.sqsEndpoint,
        TIMER_QUEUE_URL: t.stack.endpoints.timerQueueUrl,
        ACCREDITATION_FILE: t.stack.paths.accreditationFile,
        AWS_ACCESS_KEY_ID: 'local',
        POWERTOOLS_METRICS_NAMESPACE: 'Porchlight',
      });
      for (const url of [t.stack.endpoints.dynamoEndpoint, t.stack.endpoints.iotDataEndpoint, t.stack.endpoints.sqsEndpoint]) {
        expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      }
    });
  });

  describe('rules → handlers → DynamoDB and the data plane', () => {
    it('stores a published résumé in the registry through the registry rule', async () => {
      const agent = await connectMqtt(t, 'agent-stack-1', { accreditations: ['gdpr'] });
      const resume = { skills: ['sql-optimiser'], cost: { usd: 0.02, p95_ms: 350 }, region: 'eu-central-1', accredit: ['gdpr', 'ISO27001'] };
      await agent.publishAsync('agents/agent-stack-1/resume', JSON.stringify(resume), { qos: 1, retain: true });

      let item: Record<string, unknown> | undefined;
      await waitUntil('the agent profile in DynamoDB', async () => {
        const out = await t.stack.dynamo.client.send(new GetItemCommand({ TableName: t.stack.tableName, Key: { pk: { S: 'AGENT#agent-stack-1' }, sk: { S: 'PROFILE' } }, ConsistentRead: true }));
        item = out.Item;
        return item !== undefined;
      }, { timeoutMs: 15_000, intervalMs: 100 });
      expect(item).toBeDefined();
    });

    it('takes in a request, publishes its retained status through the shim, and closes the window from the timer queue', async () => {
      const client = await connectMqtt(t, 'client-stack-1');
      const topic = 'clients/client-stack-1/tasks/t-stack-1/status';
      await client.subscribeAsync(topic, { qos: 1 });
      const statuses = collectStatuses(client, topic);
      const first = nextMessage(client, topic, 15_000);
      await client.publishAsync('clients/client-stack-1/tasks/t-stack-1/request', JSON.stringify({ v: 1, goal: 'chart sales', want: ['chart'], skills: ['nl2chart'], proposalWindowMs: 300 }), { qos: 1 });

      const { packet } = await first;
      expect(packet.properties?.contentType).toBe('application/json');
      expect(statuses[0]).toMatchObject({ taskId: 't-stack-1' });

      // No agent can make a chart: once the 300 ms window closes (a timer through the SQS shim)
      // the task ends, and the status says so.
      await waitUntil('a terminal status', async () => statuses.some((s) => ['failed', 'rejected'].includes(s.state)), { timeoutMs: 15_000, intervalMs: 50 });
    });

    it('rejects a malformed request with a specific error and keeps running', async () => {
      const client = await connectMqtt(t, 'client-stack-2');
      const topic = 'clients/client-stack-2/tasks/t-stack-2/status';
      await client.subscribeAsync(topic, { qos: 1 });
      const status = nextMessage(client, topic, 15_000);
      await client.publishAsync('clients/client-stack-2/tasks/t-stack-2/request', '{"v":1,"goal":', { qos: 1 });
      const snapshot = JSON.parse((await status).payload.toString()) as StatusSnapshot;
      expect(snapshot.state).toBe('rejected');
      expect(snapshot.errors.map((e) => e.code)).toContain('invalid-json');
      expect(await readFile(t.stack.paths.deadLetters, 'utf8').catch(() => '')).toBe('');
    });
  });

  describe('stop', () => {
    it('stops every process and frees every port', async () => {
      const { mqttPort, wsPort, dynamoEndpoint, iotDataEndpoint, sqsEndpoint } = t.stack.endpoints;
      await t.cleanup();
      const ports = [mqttPort, wsPort, ...[dynamoEndpoint, iotDataEndpoint, sqsEndpoint].map((u) => Number(new URL(u).port))];
      for (const port of ports) await expect(assertPortFree(port)).resolves.toBeUndefined();
    }, 30_000);
  });
});
