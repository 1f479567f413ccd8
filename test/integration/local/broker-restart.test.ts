/**
 * A broker restart on the local stack: Mosquitto stops in order (SIGTERM, persistence written)
 * and starts again on the same port. Persistent sessions bring back subscriptions and the QoS 1
 * messages queued while a client was away; retained messages survive; the orchestrator
 * connection and agent processes reconnect by themselves and work continues.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoRegistry } from '../../../functions/adapters/dynamo-registry';
import { startChaosAgent, type ChaosAgent } from '../../../bench/lib/chaos-scenario';
import { waitForAgents } from '../../../cli/session';
import { decodePayload, TaskResult } from '../../../core/schemas';
import { filters, topics } from '../../../core/topics';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../../local/dynamodb';
import { quietLog } from '../../../local/log';
import { connectWithCertificate } from '../../../local/mqtt-connect';
import { startLocalStack, type LocalStack } from '../../../local/stack';

jest.setTimeout(120_000);

/** The first message on `topic` that `client` receives. */
/** The next non-empty message on `topic` (or one `topic` accepts). */
function nextOn(client: MqttClient, topic: string | ((t: string, payload: Buffer) => boolean), timeoutMs = 20_000): Promise<Buffer> {
  const accept = typeof topic === 'string' ? (t: string): boolean => t === topic : topic;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nothing on ${typeof topic === 'string' ? topic : 'the awaited topic'} within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (t: string, payload: Buffer): void => {
      if (payload.length === 0 || !accept(t, payload)) return;
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve(payload);
    };
    client.on('message', onMessage);
  });
}

describe('local stack', () => {
  describe('broker restart', () => {
    let stack: LocalStack;
    let stateDir: string;
    let agents: ChaosAgent[] = [];
    let dynamo: DynamoDBClient;
    const clients: MqttClient[] = [];

    const connect = async (identity: string, kind: 'client' | 'agent', extra: Parameters<typeof connectWithCertificate>[0]['extra'] = {}): Promise<MqttClient> => {
      const cert = await stack.issue(identity, kind);
      const client = await connectWithCertificate({
        host: stack.endpoints.mqttHost, port: stack.endpoints.mqttPort, ...cert, clientId: identity, clean: false,
        extra: { properties: { sessionExpiryInterval: 600 }, ...extra },
      });
      client.on('error', () => undefined);
      clients.push(client);
      return client;
    };

    const submit = async (client: MqttClient): Promise<string> => {
      const taskId = `restart-${randomUUID()}`;
      const request = {
        v: 1, goal: 'restart check', input: { seed: taskId }, want: ['a_effect', 'b_effect'], skills: ['chaos-a', 'chaos-b'], proposalWindowMs: 3000,
        cancelHash: createHash('sha256').update(randomBytes(16)).digest('hex'),
      };
      await client.publishAsync(topics.clientRequest('client-restart', taskId), JSON.stringify(request), { qos: 1 });
      return taskId;
    };

    beforeAll(async () => {
      stateDir = await mkdtemp(join(tmpdir(), 'porchlight-restart-'));
      stack = await startLocalStack({ stateDir, inMemory: true, log: quietLog('restart-test'), sweeperIntervalMs: 1000, functionEnv: { PROPOSAL_WINDOW_MS: '3000', LEASE_MS: '5000' } });
      const ledgerPath = join(stateDir, 'effects.jsonl');
      await writeFile(ledgerPath, '');
      agents = [
        await startChaosAgent({ stack, agentId: 'restart-a', skill: 'chaos-a', ledgerPath }),
        await startChaosAgent({ stack, agentId: 'restart-b', skill: 'chaos-b', ledgerPath }),
      ];
      dynamo = new DynamoDBClient({ endpoint: stack.endpoints.dynamoEndpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
      await waitForAgents(new DynamoRegistry({ client: DynamoDBDocumentClient.from(dynamo), tableName: stack.tableName }), agents.map((a) => a.agentId), 60_000);
    }, 120_000);

    afterAll(async () => {
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
      await Promise.all(agents.map((a) => a.stop()));
      dynamo?.destroy();
      await stack?.stop();
      await rm(stateDir, { recursive: true, force: true });
    });

    it('keeps retained messages and delivers what a persistent session missed while it was away', async () => {
      const publisher = await connect('restart-publisher', 'agent', { reconnectPeriod: 200 });
      // Reconnects only after a pause, so a message published meanwhile must wait in its session.
      const subscriber = await connect('client-restart-subscriber', 'client', { reconnectPeriod: 3000 });
      await subscriber.subscribeAsync('agents/+/status', { qos: 1 });
      await publisher.publishAsync(topics.agentResume('restart-publisher'), JSON.stringify({ skills: ['x'], cost: { usd: 0, p95_ms: 1 }, region: 'local' }), { qos: 1, retain: true });

      await stack.restartBroker(200);
      expect(stack.faultCounts().brokerRestarts).toBe(1);
      await new Promise<void>((resolve) => publisher.once('connect', () => resolve()));
      expect(subscriber.connected).toBe(false);
      const gapStatus = '{"state":"online","reason":"published during the gap"}';
      const missed = nextOn(subscriber, (topic, payload) => topic === topics.agentStatus('restart-publisher') && payload.toString() === gapStatus);
      await publisher.publishAsync(topics.agentStatus('restart-publisher'), gapStatus, { qos: 1 });
      expect((await missed).toString()).toBe(gapStatus);

      const reader = await connect('client-restart-reader', 'client', { reconnectPeriod: 0 });
      const retained = nextOn(reader, topics.agentResume('restart-publisher'));
      await reader.subscribeAsync(topics.agentResume('restart-publisher'), { qos: 1 });
      expect(JSON.parse((await retained).toString())).toMatchObject({ skills: ['x'] });
    });

    it('resumes the orchestrator and the agents: a task submitted after the restart completes', async () => {
      const client = await connect('client-restart', 'client', { reconnectPeriod: 500 });
      await client.subscribeAsync(filters.clientResults('client-restart'), { qos: 1 });
      const before = await submit(client);
      const first = nextOn(client, topics.clientResult('client-restart', before), 60_000);
      expect(decodePayload(TaskResult, await first, 'result').state).toBe('completed');

      await stack.restartBroker(500);
      // Agents come back online in the registry by themselves after the wills the shutdown sent;
      // give the orchestrator a moment to take in those wills before polling for "online".
      await new Promise((r) => setTimeout(r, 2000));
      await waitForAgents(new DynamoRegistry({ client: DynamoDBDocumentClient.from(dynamo), tableName: stack.tableName }), agents.map((a) => a.agentId), 30_000);
      const after = await submit(client);
      const second = nextOn(client, topics.clientResult('client-restart', after), 60_000);
      const result = decodePayload(TaskResult, await second, 'result');
      expect(result.state).toBe('completed');
      expect(Object.keys(result.outputs).sort()).toEqual(['a_effect', 'b_effect']);
    });
  });
});
