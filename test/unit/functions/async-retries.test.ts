/**
 * Lambda invokes rule targets asynchronously and retries a failed invocation; MQTT QoS 1 may
 * deliver a message twice. Every handler must therefore be safe when invoked twice with the same
 * event and when retried after failing half-way. These tests run the real handler modules against
 * a stateful fake of the table (conditions, transactions, queries) and compare where the table ends
 * up with a clean single run.
 */
import { ListThingGroupsForThingCommand } from '@aws-sdk/client-iot';
import { PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import type { ScheduledEvent } from 'aws-lambda';
import type { TaskRecord } from '../../../core/model';
import { Assignment } from '../../../core/schemas';
import { sha256 } from '../../../functions/adapters/system';
import type { RuleHandler } from '../../../functions/lib/rule-handler';
import { FakeTable } from './helpers/fake-table';
import { mocks, NOW, published, resetWorld, ruleEvent, setTestEnv } from './helpers/handler-env';

const { ddb, iotData, sqs, iot } = mocks;

type Fn = 'intake' | 'planner' | 'progress' | 'registry' | 'presence';
const handlers = {} as Record<Fn, RuleHandler>;
let sweeper: (event: ScheduledEvent) => Promise<{ examined: number; advanced: number }>;

beforeAll(() => {
  setTestEnv();
  for (const fn of ['intake', 'planner', 'progress', 'registry', 'presence'] as const) {
    handlers[fn] = jest.requireActual<{ handler: RuleHandler }>(`../../../functions/${fn}/handler`).handler;
  }
  sweeper = jest.requireActual<typeof import('../../../functions/sweeper/handler')>('../../../functions/sweeper/handler').handler;
});

let table: FakeTable;

beforeEach(() => {
  resetWorld();
  table = new FakeTable();
  table.install(ddb);
  iotData.on(PublishCommand).resolves({});
  sqs.on(SendMessageCommand).resolves({});
  iot.on(ListThingGroupsForThingCommand).resolves({ thingGroups: [] });
});

/** Starts again from an empty table (fencing tokens are derived, so the same story gives the same ones). */
function freshTable(): void {
  table = new FakeTable();
  table.install(ddb);
}

const RESUME = { skills: ['nl2chart'], cost: { usd: 0.01, p95_ms: 100 }, region: 'eu-central-1' };
const REQUEST = { goal: 'chart sales', input: { sales: [1, 2, 3] }, want: ['chart'], skills: ['nl2chart'], cancelHash: sha256('let-me-cancel') };
const BID = { steps: [{ id: 'draw', skill: 'nl2chart', consumes: ['sales'], produces: ['chart'], estUsd: 0.01, estMs: 100 }] };

const events = {
  resumeA: () => ruleEvent('agents/agent-a/resume', RESUME, 'agent-a'),
  resumeB: () => ruleEvent('agents/agent-b/resume', { ...RESUME, cost: { usd: 0.05, p95_ms: 100 } }, 'agent-b'),
  request: () => ruleEvent('clients/client-1/tasks/t-1/request', REQUEST, 'client-1'),
  bidA: () => ruleEvent('tasks/t-1/proposal/agent-a', BID, 'agent-a'),
  declineB: () => ruleEvent('tasks/t-1/proposal/agent-b', { decline: true, reason: 'busy' }, 'agent-b'),
  cancel: () => ruleEvent('clients/client-1/tasks/t-1/cancel', { secret: 'let-me-cancel' }, 'client-1'),
  offlineA: () => ruleEvent('agents/agent-a/status', { state: 'offline', reason: 'will' }, 'agent-a'),
  telemetryA: () => ruleEvent('agents/agent-a/telemetry', { executions: 3, costUsd: 0.01, p95Ms: 90, successRate: 1 }, 'agent-a'),
  lostA: () => ruleEvent('$aws/events/presence/disconnected/agent-a', { clientId: 'agent-a', timestamp: NOW, eventType: 'disconnected', disconnectReason: 'CONNECTION_LOST' }),
};

/** Two agents registered, one task planned with its step assigned to agent-a; returns the assignment. */
async function assigned(): Promise<Assignment> {
  for (const e of [events.resumeA(), events.resumeB(), events.request(), events.bidA(), events.declineB()]) {
    const topic = String(e.topic);
    const outcome = await (topic.startsWith('agents/') ? handlers.registry : topic.endsWith('/request') ? handlers.intake : handlers.planner)(e);
    expect(outcome.status).toBe('accepted');
  }
  const payload = published().filter((p) => p.topic === 'tasks/t-1/assign/agent-a').at(-1)?.payload;
  return Assignment.parse(payload);
}

function outputEvent(a: Assignment) {
  return ruleEvent(`tasks/t-1/output/${a.stepId}/${a.agentId}`, { taskId: a.taskId, stepId: a.stepId, epoch: a.epoch, token: a.token, ok: true, output: { chart: { mark: 'bar' } } }, 'agent-a');
}

function task(): TaskRecord {
  const item = table.item('TASK#t-1', 'TASK');
  if (!item) throw new Error('task t-1 is not stored');
  return JSON.parse(String(item.data)) as TaskRecord;
}

/** Runs `event` a second time and asserts it changed no item and published no assignment, status or result. */
async function expectRedeliveryChangesNothing(handler: RuleHandler, event: Record<string, unknown>): Promise<void> {
  const before = table.snapshot();
  iotData.resetHistory();
  const outcome = await handler(event);
  expect(['duplicate', 'ignored']).toContain(outcome.status);
  expect(table.snapshot()).toEqual(before);
  expect(published().filter((p) => !/\/errors$/.test(p.topic))).toEqual([]);
}

describe('handlers under Lambda async retries and duplicate delivery', () => {
  describe('the same event invoked twice', () => {
    it('intake: the second request is a duplicate and writes nothing', async () => {
      await handlers.intake(events.request());
      await expectRedeliveryChangesNothing(handlers.intake, events.request());
    });

    it('planner: the second proposal is a duplicate; the window closed once and the step was assigned once', async () => {
      await assigned();
      await expectRedeliveryChangesNothing(handlers.planner, events.bidA());
      await expectRedeliveryChangesNothing(handlers.planner, events.declineB());
      expect(task().steps.s1).toMatchObject({ epoch: 1, attempts: 1, agentId: 'agent-a' });
    });

    it('progress: the second output is a duplicate and the task stays completed at the same version', async () => {
      const a = await assigned();
      expect(await handlers.progress(outputEvent(a))).toMatchObject({ status: 'accepted' });
      expect(task().state).toBe('completed');
      await expectRedeliveryChangesNothing(handlers.progress, outputEvent(a));
    });

    it('progress: the second cancel is a duplicate', async () => {
      await assigned();
      expect(await handlers.progress(events.cancel())).toMatchObject({ status: 'accepted' });
      await expectRedeliveryChangesNothing(handlers.progress, events.cancel());
      expect(task().state).toBe('canceled');
    });

    it('registry: a second résumé, telemetry or offline status changes nothing; the step moved to agent-b once', async () => {
      await assigned();
      await expectRedeliveryChangesNothing(handlers.registry, events.resumeA());
      await handlers.registry(events.telemetryA());
      await expectRedeliveryChangesNothing(handlers.registry, events.telemetryA());
      expect(await handlers.registry(events.offlineA())).toMatchObject({ status: 'accepted' });
      expect(task().steps.s1).toMatchObject({ epoch: 2, agentId: 'agent-b' });
      await expectRedeliveryChangesNothing(handlers.registry, events.offlineA());
      expect(task().steps.s1).toMatchObject({ epoch: 2, attempts: 2, agentId: 'agent-b' });
    });

    it('presence: a second disconnect changes nothing; the step moved to agent-b once', async () => {
      await assigned();
      expect(await handlers.presence(events.lostA())).toMatchObject({ status: 'accepted' });
      expect(task().steps.s1).toMatchObject({ epoch: 2, agentId: 'agent-b' });
      await expectRedeliveryChangesNothing(handlers.presence, events.lostA());
    });
  });

  describe('a retry after a partial failure', () => {
    /** The table a clean, single delivery of the output ends with. */
    async function cleanRun(): Promise<ReturnType<FakeTable['snapshot']>> {
      const a = await assigned();
      await handlers.progress(outputEvent(a));
      return table.snapshot();
    }

    it('publishes a kept outbox on redelivery when every publish failed after the save, without re-applying the output', async () => {
      const clean = await cleanRun();
      freshTable();
      const a = await assigned();

      iotData.on(PublishCommand).rejects(Object.assign(new Error('throttled'), { name: 'ThrottlingException' }));
      expect(await handlers.progress(outputEvent(a))).toMatchObject({ status: 'accepted' });
      expect(task()).toMatchObject({ state: 'completed' });
      expect(task().outbox.map((m) => m.topic)).toEqual(['clients/client-1/tasks/t-1/output/s1', 'clients/client-1/tasks/t-1/result', 'tasks/t-1/status', 'clients/client-1/tasks/t-1/status']);

      iotData.on(PublishCommand).resolves({});
      iotData.resetHistory();
      expect(await handlers.progress(outputEvent(a))).toMatchObject({ status: 'duplicate' });
      expect(published().map((p) => p.topic)).toEqual(['clients/client-1/tasks/t-1/output/s1', 'clients/client-1/tasks/t-1/result', 'tasks/t-1/status', 'clients/client-1/tasks/t-1/status']);
      expect(task().outbox).toEqual([]);
      expect(table.snapshot()).toEqual(clean);
    });

    it('the sweeper publishes the kept outbox when no redelivery comes', async () => {
      const clean = await cleanRun();
      freshTable();
      const a = await assigned();
      iotData.on(PublishCommand).rejects(Object.assign(new Error('throttled'), { name: 'ThrottlingException' }));
      await handlers.progress(outputEvent(a));
      iotData.on(PublishCommand).resolves({});
      iotData.resetHistory();
      expect(await sweeper({} as ScheduledEvent)).toMatchObject({ advanced: 1 });
      expect(published().map((p) => p.topic)).toEqual(['clients/client-1/tasks/t-1/output/s1', 'clients/client-1/tasks/t-1/result', 'tasks/t-1/status', 'clients/client-1/tasks/t-1/status']);
      expect(table.snapshot()).toEqual(clean);
    });

    it('ends where a clean run ends when the save after publishing fails, the handler throws and Lambda retries', async () => {
      const clean = await cleanRun();
      freshTable();
      const a = await assigned();

      let taskWrites = 0;
      table.beforeWrite = (_kind, input) => {
        const pk = JSON.stringify(input).includes('"pk":"TASK#t-1","sk":"TASK"');
        if (pk && ++taskWrites === 2) throw Object.assign(new Error('Rate exceeded'), { name: 'ProvisionedThroughputExceededException', $retryable: {} });
      };
      await expect(handlers.progress(outputEvent(a))).rejects.toThrow(/Rate exceeded|throughput/i);
      expect(task()).toMatchObject({ state: 'completed' });
      table.beforeWrite = undefined;

      const retry = await handlers.progress(outputEvent(a));
      expect(retry).toMatchObject({ status: 'duplicate' });
      expect(table.snapshot()).toEqual(clean);
    });

    it('reloads and re-applies when another writer wins the race for the task (ConditionalCheckFailed / TransactionCanceled)', async () => {
      const a = await assigned();
      let raced = false;
      table.beforeWrite = (kind, input) => {
        if (raced || !JSON.stringify(input).includes('"pk":"TASK#t-1","sk":"TASK"')) return;
        raced = true;
        // A concurrent writer (an outbox bookkeeping save) moves the task on by one version first.
        const stored = table.item('TASK#t-1', 'TASK')!;
        const data = JSON.parse(String(stored.data)) as TaskRecord;
        data.version += 1;
        table.seed({ ...stored, version: data.version, data: JSON.stringify(data) });
        expect(kind).toBe('transact');
      };
      const versionBefore = task().version;
      expect(await handlers.progress(outputEvent(a))).toMatchObject({ status: 'accepted' });
      expect(table.refusedWrites).toBe(1);
      const after = task();
      expect(after).toMatchObject({ state: 'completed', outbox: [] });
      expect(after.steps.s1).toMatchObject({ state: 'completed', epoch: 1 });
      // Raced (+1), the transition (+1), the outbox bookkeeping (+1): applied once.
      expect(after.version).toBe(versionBefore + 3);
      expect(table.item('ASSIGNEE#agent-a', 'TASK#t-1')).toBeUndefined();
    });
  });

  describe('retained-state hygiene in the table', () => {
    it('gives the task item, its assignee pointer and the proposals a DynamoDB TTL, pushed past retention when the task finishes', async () => {
      const a = await assigned();
      const live = task();
      expect(table.item('TASK#t-1', 'TASK')?.expiresAt).toBe(live.expiresAt);
      expect(live.expiresAt).toBe(Math.ceil((live.deadlineAt! + 24 * 3600 * 1000) / 1000));
      expect(table.item('ASSIGNEE#agent-a', 'TASK#t-1')?.expiresAt).toBe(live.expiresAt);
      expect(table.item('TASK#t-1', 'PROPOSAL#agent-a')?.expiresAt).toEqual(expect.any(Number));

      await handlers.progress(outputEvent(a));
      const done = task();
      expect(done.expiresAt).toBe(Math.ceil((done.finishedAt! + 24 * 3600 * 1000) / 1000) + 3600);
      expect(table.item('TASK#t-1', 'TASK')?.expiresAt).toBe(done.expiresAt);
      // Indexed for the sweeper until the retention clean-up has run.
      expect(table.item('TASK#t-1', 'TASK')?.dueAt).toBe(done.finishedAt! + 24 * 3600 * 1000);
    });
  });
});
