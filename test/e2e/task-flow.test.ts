/**
 * One task through the whole local system with real parts: Mosquitto (mutual TLS + ACL),
 * DynamoDB Local, the rules engine invoking the real handlers, and the two example agents each
 * running as its own process. Request → proposals → merged plan → assignments → outputs → result.
 */
import { readFileSync } from 'node:fs';
import type { AgentProcess } from '../../cli/agent-processes';
import { PorchlightClient, type TaskEvent } from '../../cli/client';
import { DEMO_AGENTS, DEMO_REQUEST_PATH, launchDemoAgents } from '../../cli/commands/demo';
import { CLI_CLIENT_ID, localRegistry, waitForAgents } from '../../cli/session';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../local/dynamodb';
import type { TaskStatus } from '../../core/schemas';
import { filters, topics } from '../../core/topics';
import { connectMqtt, nextMessage, startTestStack, type TestStack } from '../helpers/local-stack';

jest.setTimeout(120_000);

describe('task flow (local stack, agents as processes)', () => {
  let t: TestStack;
  let agents: AgentProcess[] = [];
  let client: PorchlightClient;
  let registry: ReturnType<typeof localRegistry>;

  beforeAll(async () => {
    t = await startTestStack({ functionEnv: { PROPOSAL_WINDOW_MS: '3000' } });
    registry = localRegistry({ dynamoEndpoint: t.stack.endpoints.dynamoEndpoint, tableName: t.stack.tableName, region: LOCAL_REGION });
    agents = await launchDemoAgents(t.stack);
    await waitForAgents(registry.registry, DEMO_AGENTS.map((a) => a.agentId), 60_000);
    const cert = await t.issue(CLI_CLIENT_ID, 'client');
    client = await PorchlightClient.connect({ host: t.mqttHost, port: t.mqttPort, ...cert, clientId: CLI_CLIENT_ID });
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await Promise.all(agents.map((a) => a.stop()));
    agents = [];
    registry?.close();
    await t?.cleanup();
  });

  describe('the demo request', () => {
    it('completes with a plan merged from both agents, fenced outputs and the wanted artifacts', async () => {
      const request: unknown = JSON.parse(readFileSync(DEMO_REQUEST_PATH, 'utf8'));
      const task = await client.submit(request);
      const events: TaskEvent[] = [];
      const result = await client.watch(task.taskId, (e) => events.push(e), { taskRoot: task.taskRoot, timeoutMs: 60_000 });

      expect(result.state).toBe('completed');
      expect(result.outputs.chart_svg).toEqual(expect.stringMatching(/^<svg[\s\S]*<\/svg>$/));
      expect(result.outputs.optimised_sql).toEqual(expect.stringMatching(/^SELECT/i));
      // The optimiser really rewrote the query: the tautology is gone.
      expect(result.outputs.optimised_sql).not.toContain('1 = 1');

      const statuses = events.filter((e): e is Extract<TaskEvent, { type: 'status' }> => e.type === 'status').map((e) => e.status);
      const final: TaskStatus | undefined = statuses.at(-1);
      expect(final?.state).toBe('completed');
      const steps = final?.plan?.steps ?? [];
      // Neither agent can satisfy the request alone: the plan needs both proposals.
      expect(new Set(steps.map((s) => s.proposedBy))).toEqual(new Set(DEMO_AGENTS.map((a) => a.agentId)));
      expect(steps.map((s) => [s.skill, s.agentId, s.state, s.epoch])).toEqual([
        ['sql-optimiser', 'sql-bot', 'completed', 1],
        ['nl2chart', 'chart-bot', 'completed', 1],
      ]);

      // Each accepted output reached the owner on its own tree, republished by the orchestrator.
      const outputs = events.flatMap((e) => (e.type === 'output' && e.ok ? [e.stepId] : []));
      expect([...new Set(outputs)].sort()).toEqual(steps.map((s) => s.id).sort());

      // Another client reads none of it, live or retained.
      const other = await connectMqtt(t, 'client-other-tenant', { kind: 'client' });
      const snooped = nextMessage(other, () => true, 2000);
      await other.subscribeAsync(filters.clientTasks(CLI_CLIENT_ID), { qos: 1 });
      await other.subscribeAsync(topics.clientResult(CLI_CLIENT_ID, task.taskId), { qos: 1 });
      await expect(snooped).rejects.toThrow(/no message/);
    });

    it('rejects a request naming an artifact nobody produces, with the reason in the result', async () => {
      const task = await client.submit({ goal: 'impossible', input: { sql: 'SELECT 1' }, want: ['a_unicorn'], proposalWindowMs: 1500 });
      const result = await client.watch(task.taskId, () => undefined, { timeoutMs: 30_000 });
      expect(result.state).toBe('failed');
      expect(result.reason).toMatch(/a_unicorn/);
    });
  });

  describe('a bid that arrives after the proposal window closed', () => {
    it('keeps the task waiting for the eligible bidder, says so in its status, and completes once it bids', async () => {
      const agentId = 'late-bidder';
      const late = await connectMqtt(t, agentId, { kind: 'agent' });
      await late.publishAsync(topics.agentResume(agentId), JSON.stringify({ skills: ['slow-thinker'], cost: { usd: 0.01, p95_ms: 100 }, region: 'eu-central-1' }), { qos: 1, retain: true });
      await late.publishAsync(topics.agentStatus(agentId), JSON.stringify({ state: 'online' }), { qos: 1, retain: true });
      await eventually(async () => ((await registry.registry.get(agentId))?.state === 'online' ? true : undefined));
      await late.subscribeAsync(filters.assignmentsFor(agentId), { qos: 1 });

      const task = await client.submit({ goal: 'think slowly', input: { question: 'why?' }, want: ['answer'], skills: ['slow-thinker'], proposalWindowMs: 300 });
      const statuses: TaskStatus[] = [];
      const watching = client.watch(task.taskId, (e) => {
        if (e.type === 'status') statuses.push(e.status);
      }, { taskRoot: task.taskRoot, timeoutMs: 60_000 });

      // The window (300 ms) closes without a bid; the task waits for the agent that was eligible.
      const waiting = await eventually(async () => statuses.find((s) => s.waitingForBids !== undefined), 20_000);
      expect(waiting).toMatchObject({ state: 'submitted', phase: 'collecting-proposals', waitingForBids: { agents: [agentId] } });
      expect(waiting.waitingForBids?.reasons.join(' ')).toMatch(/'answer' has no producer/);

      const assignment = nextMessage(late, (topic) => topic === topics.taskAssign(task.taskId, agentId), 20_000);
      await late.publishAsync(topics.taskProposal(task.taskId, agentId), JSON.stringify({
        steps: [{ id: 'think', skill: 'slow-thinker', consumes: ['question'], produces: ['answer'], estUsd: 0.01, estMs: 100 }],
      }), { qos: 1 });
      const a = JSON.parse((await assignment).payload.toString()) as { stepId: string; epoch: number; token: string };
      // The token exists only on the wire: nothing stored for the task holds it, so reading the table completes no step.
      const dynamo = new DynamoDBClient({ endpoint: t.stack.endpoints.dynamoEndpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
      try {
        const items = await DynamoDBDocumentClient.from(dynamo).send(new QueryCommand({
          TableName: t.stack.tableName, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': `TASK#${task.taskId}` },
        }));
        expect(items.Items?.length).toBeGreaterThan(0);
        expect(JSON.stringify(items.Items)).not.toContain(a.token);
      } finally {
        dynamo.destroy();
      }
      await late.publishAsync(topics.taskOutput(task.taskId, a.stepId, agentId), JSON.stringify({
        taskId: task.taskId, stepId: a.stepId, epoch: a.epoch, token: a.token, ok: true, output: { answer: 42 },
      }), { qos: 1 });
      const result = await watching;
      expect(result).toMatchObject({ state: 'completed', outputs: { answer: 42 } });
    });
  });

  describe('the registry', () => {
    const SEED_RESUME =
      '{"skills":["sql-optimiser","nl2chart"],"cost":{"usd":0.02,"p95_ms":350},"region":"eu-central-1","accredit":["ISO27001","gdpr"]}';

    it("stores the seed article's résumé, published raw by a plain MQTT client with its own certificate", async () => {
      const raw = await connectMqtt(t, 'seed-agent', { kind: 'agent', accreditations: ['ISO27001', 'gdpr'] });
      await raw.publishAsync(topics.agentResume('seed-agent'), SEED_RESUME, { qos: 1, retain: true });
      const record = await eventually(() => registry.registry.get('seed-agent'));
      expect(record.resume).toMatchObject(JSON.parse(SEED_RESUME));
      expect(record.verifiedAccredit.sort()).toEqual(['ISO27001', 'gdpr']);
      expect(record.unverifiedAccredit).toEqual([]);
      // The per-skill index finds it under both skills.
      for (const skill of ['sql-optimiser', 'nl2chart']) {
        expect((await registry.registry.findBySkill(skill)).map((a) => a.agentId)).toContain('seed-agent');
      }
    });

    it('drops an accreditation the identity does not hold and tells the agent why', async () => {
      const raw = await connectMqtt(t, 'claims-too-much', { kind: 'agent', accreditations: ['ISO27001'] });
      const notice = nextMessage(raw, topics.agentErrors('claims-too-much'), 15_000);
      await raw.subscribeAsync(topics.agentErrors('claims-too-much'), { qos: 1 });
      await raw.publishAsync(topics.agentResume('claims-too-much'), SEED_RESUME, { qos: 1, retain: true });
      const record = await eventually(() => registry.registry.get('claims-too-much'));
      expect(record.verifiedAccredit).toEqual(['ISO27001']);
      expect(record.unverifiedAccredit).toEqual(['gdpr']);
      expect(JSON.parse((await notice).payload.toString())).toMatchObject({ code: 'not-authorized', message: expect.stringMatching(/gdpr/) });
    });

    it('answers a malformed résumé with a specific notice and keeps serving', async () => {
      const raw = await connectMqtt(t, 'sloppy-agent', { kind: 'agent' });
      const notice = nextMessage(raw, topics.agentErrors('sloppy-agent'), 15_000);
      await raw.subscribeAsync(topics.agentErrors('sloppy-agent'), { qos: 1 });
      await raw.publishAsync(topics.agentResume('sloppy-agent'), '{"skills": "everything"', { qos: 1 });
      expect(JSON.parse((await notice).payload.toString())).toMatchObject({ code: 'invalid-json', topic: 'agents/sloppy-agent/resume' });
      expect(await registry.registry.get('sloppy-agent')).toBeUndefined();
      expect((await registry.registry.get('sql-bot'))?.state).toBe('online');
    });
  });
});

/** Polls `probe` until it yields a value (the rules engine and handlers are asynchronous). */
async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`nothing after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
