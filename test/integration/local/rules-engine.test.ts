import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { RULES } from '../../../infra/rules/catalogue';
import { memoryDeadLetterSink, type DeadLetter } from '../../../local/dead-letters';
import { createWorkerInvoker, type FunctionInvoker } from '../../../local/function-invoker';
import { waitUntil } from '../../../local/processes';
import { buildRuleEvent, startRulesEngine, type RulesEngine } from '../../../local/rules-engine';
import { topicMatches } from '../../../core/topics';
import { connectMqtt, startTestBroker, type TestBroker } from '../../helpers/local-stack';

interface Recorded {
  readonly event: Record<string, unknown> & { topic: string; payload: string; receivedAt: number };
  readonly functionName: string;
  readonly remainingMs: number;
  readonly tableAtLoad: string;
}

describe('rules engine', () => {
  let broker: TestBroker;
  let invoker: FunctionInvoker;
  let engine: RulesEngine;
  let recordFile: string;
  let deadLetters: ReturnType<typeof memoryDeadLetterSink>;
  let agent: MqttClient;
  let client: MqttClient;

  async function recorded(): Promise<Recorded[]> {
    const text = await readFile(recordFile, 'utf8').catch(() => '');
    return text.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as Recorded);
  }

  async function recordsFor(topic: string, count: number): Promise<Recorded[]> {
    await waitUntil(`${count} invocation(s) for ${topic}`, async () => (await recorded()).filter((r) => r.event.topic === topic).length >= count, { timeoutMs: 10_000, intervalMs: 25 });
    return (await recorded()).filter((r) => r.event.topic === topic);
  }

  beforeAll(async () => {
    broker = await startTestBroker();
    recordFile = join(broker.stateDir, 'records.jsonl');
    invoker = createWorkerInvoker({
      env: { RECORD_FILE: recordFile, TABLE_NAME: 'table-from-the-stack-env' },
      resolve: () => join(__dirname, 'fixtures', 'recording-handler.ts'),
      timeoutMs: 10_000,
    });
    deadLetters = memoryDeadLetterSink();
    const orchestrator = await connectMqtt(broker, 'porchlight-orchestrator');
    engine = await startRulesEngine({ mqtt: orchestrator, invoker, deadLetters, retryDelaysMs: [50, 100], sweeper: false });
    agent = await connectMqtt(broker, 'agent-a');
    client = await connectMqtt(broker, 'client-a', { accreditations: ['gdpr'] });
  }, 60_000);

  afterAll(async () => {
    await engine.stop();
    await invoker.close();
    await broker.cleanup();
  });

  describe('subscriptions', () => {
    it('subscribes to every catalogue rule except the AWS-only ones', () => {
      expect(engine.rules.map((r) => r.name)).toEqual(RULES.filter((r) => r.awsOnly !== true).map((r) => r.name));
      expect(engine.rules.some((r) => r.target === 'presence')).toBe(false);
    });
  });

  describe('events', () => {
    it("invokes the rule's function with the event its SQL selects", async () => {
      const before = Date.now();
      await agent.publishAsync('tasks/t-re-1/proposal/agent-a', '{"v":1,"steps":[]}', { qos: 1 });
      const [record] = await recordsFor('tasks/t-re-1/proposal/agent-a', 1);
      expect(record?.functionName).toBe('planner');
      expect(record?.event).toEqual({
        payload: Buffer.from('{"v":1,"steps":[]}').toString('base64'),
        topic: 'tasks/t-re-1/proposal/agent-a',
        receivedAt: expect.any(Number),
        taskId: 't-re-1',
        agentId: 'agent-a',
      });
      expect(record?.event.receivedAt).toBeGreaterThanOrEqual(before);
      expect(record?.event).not.toHaveProperty('clientId');
      expect(record?.remainingMs).toBeGreaterThan(0);
    });

    it('hands the function the environment the invoker was given, read at module load', async () => {
      await client.publishAsync('clients/client-a/tasks/t-re-2/request', '{}', { qos: 1 });
      const [record] = await recordsFor('clients/client-a/tasks/t-re-2/request', 1);
      expect(record?.functionName).toBe('intake');
      expect(record?.tableAtLoad).toBe('table-from-the-stack-env');
    });

    it('passes a payload that is not JSON through intact as base64', async () => {
      const bytes = Buffer.from([0xff, 0x00, 0x7b, 0xfe]);
      await agent.publishAsync('agents/agent-a/telemetry', bytes, { qos: 1 });
      const [record] = await recordsFor('agents/agent-a/telemetry', 1);
      expect(Buffer.from(record?.event.payload ?? '', 'base64')).toEqual(bytes);
      expect(record?.event).toMatchObject({ agentId: 'agent-a' });
    });

    it('routes a patient-data request to intake like a tasks request', async () => {
      await client.publishAsync('clients/client-a/patient-data/t-re-3/request', '{}', { qos: 1 });
      const [record] = await recordsFor('clients/client-a/patient-data/t-re-3/request', 1);
      expect(record).toMatchObject({ functionName: 'intake', event: { taskId: 't-re-3' } });
    });

    it('invokes in arrival order for one task', async () => {
      for (const step of ['s1', 's2', 's3', 's4', 's5']) {
        await agent.publishAsync(`tasks/t-re-4/output/${step}/agent-a`, `{"step":"${step}"}`, { qos: 1 });
      }
      await waitUntil('five outputs', async () => (await recorded()).filter((r) => r.event.topic.startsWith('tasks/t-re-4/')).length >= 5, { timeoutMs: 10_000 });
      const order = (await recorded()).filter((r) => r.event.topic.startsWith('tasks/t-re-4/')).map((r) => r.event.stepId);
      expect(order).toEqual(['s1', 's2', 's3', 's4', 's5']);
    });
  });

  describe('failures', () => {
    it('retries a failed invocation and does not dead-letter it once it succeeds', async () => {
      await client.publishAsync('clients/client-a/tasks/fail-once-1/request', '{}', { qos: 1 });
      const records = await recordsFor('clients/client-a/tasks/fail-once-1/request', 2);
      await engine.idle();
      expect(records).toHaveLength(2);
      expect(deadLetters.entries.filter((d) => (d.event as { topic?: string }).topic === 'clients/client-a/tasks/fail-once-1/request')).toEqual([]);
    });

    it('sends an event to the error destination after two retries', async () => {
      await client.publishAsync('clients/client-a/tasks/fail-always-1/cancel', '{}', { qos: 1 });
      await recordsFor('clients/client-a/tasks/fail-always-1/cancel', 3);
      await engine.idle();
      const entries = deadLetters.entries.filter((d: DeadLetter) => (d.event as { topic?: string }).topic === 'clients/client-a/tasks/fail-always-1/cancel');
      expect(entries).toEqual([
        expect.objectContaining({ source: 'rules-engine', functionName: 'progress', rule: 'porchlight_tasks_cancel', attempts: 3, error: expect.stringContaining('deliberate failure') }),
      ]);
      expect(await recordsFor('clients/client-a/tasks/fail-always-1/cancel', 3)).toHaveLength(3);
    });
  });

  describe('topicMatches', () => {
    it.each([
      ['tasks/+/request', 'tasks/t1/request', true],
      ['tasks/+/request', 'tasks/t1/status', false],
      ['tasks/+/proposal/+', 'tasks/t1/proposal', false],
      ['tasks/#', 'tasks/t1/output/s1', true],
      ['+/+/resume', '$SYS/x/resume', false],
      ['agents/+/status', 'agents/a1/status/extra', false],
    ])('%s against %s is %s', (filter, topic, expected) => {
      expect(topicMatches(filter, topic)).toBe(expected);
    });
  });

  describe('buildRuleEvent', () => {
    it('omits a topic(n) field the topic does not have, as the rule SQL does', () => {
      const rule = { name: 'r', topicFilter: '#', target: 'intake' as const, topicFields: [{ index: 2, as: 'taskId' }, { index: 9, as: 'missing' }], description: '' };
      expect(buildRuleEvent(rule, 'tasks/t1/request', Buffer.from('x'), 5)).toEqual({ payload: 'eA==', topic: 'tasks/t1/request', receivedAt: 5, taskId: 't1' });
    });
  });
});
