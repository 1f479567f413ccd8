/**
 * Hostile input for every Lambda handler, with the AWS SDK mocked by aws-sdk-client-mock: malformed
 * rule envelopes, garbage payloads on every rule topic, malformed timer bodies and sweeper events.
 * A handler must resolve (throwing would make Lambda retry an event that can never succeed), refuse
 * with a wire code, write nothing to DynamoDB, schedule nothing, and publish only rejections.
 */
import { PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { BatchWriteCommand, DeleteCommand, GetCommand, PutCommand, QueryCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { ScheduledEvent, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import fc from 'fast-check';
import { sha256 } from '../../../functions/adapters/system';
import type { RuleHandler } from '../../../functions/lib/rule-handler';
import { agentRecord, step, taskRecord } from '../functions/helpers/fixtures';
import { mocks, NOW, published, resetWorld, ruleEvent, setTestEnv, storedAgent, storedTask } from '../functions/helpers/handler-env';
import {
  RUNS, badArtifactName, badId, brokenField, expectPrototypeClean, expectSpecificRefusal, garbage, trapUnhandledRejections, type BreakableField,
} from './arbitraries';
import { testToken } from '../../helpers/in-memory-ports';

const { ddb, sqs, iotData } = mocks;
const TOKEN = testToken('t-live', 's1', 2);
const PAYLOAD_CODES = ['invalid-json', 'invalid-payload', 'payload-too-large'];

trapUnhandledRejections();

const live = taskRecord({
  taskId: 't-live',
  state: 'working',
  phase: 'executing',
  version: 4,
  deadlineAt: NOW + 600_000,
  request: { v: 1, goal: 'chart', input: { sales: [1, 2] }, want: ['chart'], constraints: {}, cancelHash: sha256('let-me-cancel') },
  steps: { s1: step('s1', { state: 'assigned', agentId: 'agent-a', epoch: 2, attempts: 2, leaseExpiresAt: NOW + 30_000 }) },
  stepOrder: ['s1'],
});

const handlers: Record<'intake' | 'planner' | 'progress' | 'registry' | 'presence', RuleHandler> = {} as Record<'intake' | 'planner' | 'progress' | 'registry' | 'presence', RuleHandler>;
let timerHandler: (event: SQSEvent) => Promise<SQSBatchResponse>;
let sweeperHandler: (event: ScheduledEvent) => Promise<{ examined: number; advanced: number }>;

beforeAll(() => {
  setTestEnv();
  handlers.intake = jest.requireActual<typeof import('../../../functions/intake/handler')>('../../../functions/intake/handler').handler;
  handlers.planner = jest.requireActual<typeof import('../../../functions/planner/handler')>('../../../functions/planner/handler').handler;
  handlers.progress = jest.requireActual<typeof import('../../../functions/progress/handler')>('../../../functions/progress/handler').handler;
  handlers.registry = jest.requireActual<typeof import('../../../functions/registry/handler')>('../../../functions/registry/handler').handler;
  handlers.presence = jest.requireActual<typeof import('../../../functions/presence/handler')>('../../../functions/presence/handler').handler;
  timerHandler = jest.requireActual<typeof import('../../../functions/timer/handler')>('../../../functions/timer/handler').handler;
  sweeperHandler = jest.requireActual<typeof import('../../../functions/sweeper/handler')>('../../../functions/sweeper/handler').handler;
});

beforeEach(() => {
  resetWorld();
  ddb.on(GetCommand).callsFake((input: { Key: { pk: string } }) => {
    if (input.Key.pk === 'TASK#t-live') return { Item: storedTask(live, ['agent-a']) };
    if (input.Key.pk === 'AGENT#agent-a') return { Item: storedAgent(agentRecord()) };
    return {};
  });
  ddb.on(QueryCommand).resolves({ Items: [] });
  iotData.on(PublishCommand).resolves({});
  sqs.on(SendMessageCommand).resolves({});
});

/** Clears the recorded calls between property runs. */
function freshCalls(): void {
  for (const m of Object.values(mocks)) m.resetHistory();
}

/** Nothing was written or scheduled; every publish went to an allowed topic. */
function expectNoWrites(allowedTopics: RegExp): void {
  expect(ddb).not.toHaveReceivedCommand(PutCommand);
  expect(ddb).not.toHaveReceivedCommand(TransactWriteCommand);
  expect(ddb).not.toHaveReceivedCommand(UpdateCommand);
  expect(ddb).not.toHaveReceivedCommand(DeleteCommand);
  expect(ddb).not.toHaveReceivedCommand(BatchWriteCommand);
  expect(sqs).not.toHaveReceivedCommand(SendMessageCommand);
  for (const p of published()) expect(p.topic).toMatch(allowedTopics);
}

const ERRORS_TOPIC = /^agents\/[^/]+\/errors$/;

interface RuleKind {
  readonly name: string;
  readonly fn: keyof typeof handlers;
  readonly topic: string;
  readonly clientId?: string;
  readonly valid: unknown;
  readonly fields: readonly BreakableField[];
  readonly allowed: RegExp;
}

const RULE_KINDS: readonly RuleKind[] = [
  {
    name: 'intake: request', fn: 'intake', topic: 'clients/client-1/tasks/t-new/request', clientId: 'client-1',
    valid: { goal: 'chart', input: { sales: [1] }, want: ['chart'] },
    fields: [{ path: ['goal'] }, { path: ['want'] }, { path: ['want', 0], bad: badArtifactName }],
    allowed: /^clients\/client-1\/(tasks\/t-new\/(status|result)|errors)$/,
  },
  {
    name: 'planner: proposal', fn: 'planner', topic: 'tasks/t-live/proposal/agent-a', clientId: 'agent-a',
    valid: { steps: [{ id: 's', skill: 'nl2chart', consumes: ['sales'], produces: ['chart'], estUsd: 0.01, estMs: 10 }] },
    fields: [{ path: ['steps'] }, { path: ['steps', 0, 'id'], bad: badId }, { path: ['steps', 0, 'estMs'], bad: fc.constantFrom(0, -1) }],
    allowed: ERRORS_TOPIC,
  },
  {
    name: 'progress: output', fn: 'progress', topic: 'tasks/t-live/output/s1/agent-a', clientId: 'agent-a',
    valid: { taskId: 't-live', stepId: 's1', epoch: 2, token: TOKEN, ok: true, output: { chart: 1 } },
    fields: [{ path: ['epoch'], bad: fc.constantFrom(0, -2, 2.5) }, { path: ['token'], bad: fc.constant('short') }, { path: ['ok'] }, { path: ['taskId'], bad: badId }],
    allowed: ERRORS_TOPIC,
  },
  {
    name: 'progress: cancel', fn: 'progress', topic: 'clients/client-1/tasks/t-live/cancel', clientId: 'client-1',
    valid: { secret: 'let-me-cancel' },
    fields: [{ path: ['secret'], bad: fc.constantFrom('', 'short') }],
    allowed: /^clients\/client-1\/errors$/,
  },
  {
    name: 'registry: résumé', fn: 'registry', topic: 'agents/agent-a/resume', clientId: 'agent-a',
    valid: { skills: ['nl2chart'], cost: { usd: 0.01, p95_ms: 10 }, region: 'eu-central-1' },
    fields: [{ path: ['skills'], bad: fc.constant([]) }, { path: ['cost', 'usd'], bad: fc.constant(-1) }, { path: ['region'], bad: fc.constant('') }],
    allowed: ERRORS_TOPIC,
  },
  {
    name: 'registry: status', fn: 'registry', topic: 'agents/agent-a/status', clientId: 'agent-a',
    valid: { state: 'offline' },
    fields: [{ path: ['state'], bad: fc.constantFrom('gone', '') }],
    allowed: ERRORS_TOPIC,
  },
  {
    name: 'registry: telemetry', fn: 'registry', topic: 'agents/agent-a/telemetry', clientId: 'agent-a',
    valid: { executions: 3, costUsd: 0.01, p95Ms: 10, successRate: 1 },
    fields: [{ path: ['successRate'], bad: fc.constant(2) }, { path: ['executions'], bad: fc.constant(-3) }],
    allowed: ERRORS_TOPIC,
  },
  {
    name: 'presence: lifecycle event', fn: 'presence', topic: '$aws/events/presence/disconnected/agent-a',
    valid: { clientId: 'agent-a', timestamp: NOW, eventType: 'disconnected', disconnectReason: 'CONNECTION_LOST' },
    fields: [{ path: ['clientId'], bad: fc.constant('') }, { path: ['eventType'], bad: fc.constant('vanished') }, { path: ['timestamp'], bad: fc.constant(-1) }],
    allowed: ERRORS_TOPIC,
  },
];

describe('handler fuzz', () => {
  describe.each(RULE_KINDS)('$name', (kind) => {
    it('refuses any garbage payload without a DynamoDB write, a timer or a publish outside rejections', async () => {
      await fc.assert(
        fc.asyncProperty(garbage(kind.valid), async (payload) => {
          freshCalls();
          const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload);
          const outcome = await handlers[kind.fn](ruleEvent(kind.topic, bytes, kind.clientId));
          expectSpecificRefusal(outcome, PAYLOAD_CODES);
          expectNoWrites(kind.allowed);
        }),
        { numRuns: 60 },
      );
    });

    it('refuses a message with one field broken, naming the field, without a write', async () => {
      await fc.assert(
        fc.asyncProperty(brokenField(kind.valid, kind.fields), async ({ path, payload }) => {
          freshCalls();
          const outcome = await handlers[kind.fn](ruleEvent(kind.topic, payload, kind.clientId));
          expectSpecificRefusal(outcome, PAYLOAD_CODES, path);
          expectNoWrites(kind.allowed);
        }),
        { numRuns: 60 },
      );
    });

    it('refuses the message on a topic with an invalid id as invalid-topic without reading the table', async () => {
      const topics = badId.map((id) => kind.topic.replace(/(agent-a|t-live|t-new)/, () => id));
      await fc.assert(
        fc.asyncProperty(topics, async (topic) => {
          freshCalls();
          const outcome = await handlers[kind.fn](ruleEvent(topic, kind.valid, kind.clientId));
          expectSpecificRefusal(outcome, ['invalid-topic']);
          expect(ddb.calls()).toHaveLength(0);
          expect(published()).toEqual([]);
        }),
        { numRuns: 60 },
      );
    });
  });

  describe('malformed rule envelopes', () => {
    const valid = ruleEvent('clients/client-1/tasks/t-new/request', { goal: 'chart', want: ['chart'] });
    const envelope = fc.oneof(
      fc.anything({ maxDepth: 2 }),
      fc.constantFrom<[string, unknown]>(
        ['payload', 'not base64!'], ['payload', 42], ['payload', null], ['payload', 'YQ'], ['topic', ''], ['topic', 7],
        ['receivedAt', -1], ['receivedAt', 1.5], ['receivedAt', '2030-01-01'], ['clientId', 12],
      ).map(([key, value]) => ({ ...valid, [key]: value })),
      fc.constantFrom('payload', 'topic', 'receivedAt').map((key) => {
        const copy: Record<string, unknown> = { ...valid };
        delete copy[key];
        return copy;
      }),
    );

    it.each(Object.keys(RULE_KINDS.reduce<Record<string, true>>((acc, k) => ({ ...acc, [k.fn]: true }), {})))('%s drops them as invalid-payload without touching AWS', async (fn) => {
      await fc.assert(
        fc.asyncProperty(envelope, async (event) => {
          freshCalls();
          const outcome = await handlers[fn as keyof typeof handlers](event);
          expectSpecificRefusal(outcome, ['invalid-payload']);
          expect(ddb.calls()).toHaveLength(0);
          expect(iotData.calls()).toHaveLength(0);
          expect(sqs.calls()).toHaveLength(0);
        }),
        { numRuns: 50 },
      );
    });

    it('handles an envelope carrying a __proto__ key without polluting the prototype', async () => {
      const text = `{"__proto__":{"polluted":true},${JSON.stringify(valid).slice(1)}`;
      const outcome = await handlers.intake(JSON.parse(text));
      expect(['accepted', 'rejected']).toContain(outcome.status);
      expectPrototypeClean();
    });
  });

  describe('timer: malformed SQS bodies', () => {
    const validBody = { event: { kind: 'lease', taskId: 't-live', stepId: 's1', epoch: 2 }, dueAt: NOW - 1 };
    const record = (messageId: string, body: string): SQSRecord => ({
      messageId, receiptHandle: `rh-${messageId}`, body, md5OfBody: '', eventSource: 'aws:sqs', awsRegion: 'eu-central-1', messageAttributes: {},
      eventSourceARN: 'arn:aws:sqs:eu-central-1:123456789012:porchlight-timers',
      attributes: { ApproximateReceiveCount: '1', SentTimestamp: String(NOW), SenderId: 'x', ApproximateFirstReceiveTimestamp: String(NOW) },
    });
    const body = fc.oneof(
      // A timer body has no size limit of its own (unknown keys are dropped), so oversize is not garbage here.
      garbage(validBody).map((p) => (typeof p === 'string' ? p : Buffer.from(p).toString('utf8'))).filter((b) => !b.includes('"pad"')),
      brokenField(validBody, [
        { path: ['event', 'kind'], bad: fc.constantFrom('lease-ish', 'proposal_window', '') },
        { path: ['event', 'taskId'], bad: badId },
        { path: ['event', 'epoch'], bad: fc.constantFrom(0, -1, 1.5) },
        { path: ['dueAt'], bad: fc.constantFrom(-1, 1.5) },
      ]).map(({ payload }) => JSON.stringify(payload)),
    );

    it('drops every malformed record (no redelivery, no write) and still handles the good one in the batch', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(body, { minLength: 1, maxLength: 4 }), async (bodies) => {
          freshCalls();
          const due = JSON.stringify({ event: { kind: 'deadline', taskId: 't-gone' }, dueAt: NOW - 1 });
          const result = await timerHandler({ Records: [...bodies.map((b, i) => record(`m${i}`, b)), record('good', due)] });
          expect(result).toEqual({ batchItemFailures: [] });
          expectNoWrites(/^$/);
          // The well-formed record was still handled: its task was looked up.
          expect(ddb).toHaveReceivedCommandWith(GetCommand, { Key: { pk: 'TASK#t-gone', sk: 'TASK' } });
        }),
        { numRuns: RUNS },
      );
    });
  });

  describe('sweeper: events that are not EventBridge schedules', () => {
    /** The sweep ignores its event; reading `event.time` for the log line used to throw on null. */
    it('sweeps and resolves whatever the event is', async () => {
      await fc.assert(
        fc.asyncProperty(fc.anything({ maxDepth: 2 }), async (event) => {
          freshCalls();
          await expect(sweeperHandler(event as ScheduledEvent)).resolves.toEqual({ examined: 0, advanced: 0 });
          expect(ddb).toHaveReceivedCommand(QueryCommand);
        }),
        { numRuns: 50 },
      );
    });
  });
});
