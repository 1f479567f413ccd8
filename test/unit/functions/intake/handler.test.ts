import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { GetCommand, PutCommand, QueryCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import type { RuleHandler } from '../../../../functions/lib/rule-handler';
import { taskRecord } from '../helpers/fixtures';
import { mocks, NOW, published, resetWorld, ruleEvent, setTestEnv, storedTask, TEST_ENV } from '../helpers/handler-env';

const { ddb, sqs } = mocks;
const TOPIC = 'clients/client-1/tasks/t-1/request';
const request = { goal: 'chart the sales', input: { sales: [1, 2, 3] }, want: ['chart'] };

let handler: RuleHandler;
let addMetric: jest.SpyInstance;

beforeAll(() => {
  setTestEnv();
  // Required only now: the module reads its environment when it loads.
  ({ handler } = jest.requireActual<typeof import('../../../../functions/intake/handler')>('../../../../functions/intake/handler'));
});

beforeEach(() => {
  addMetric = resetWorld();
  ddb.on(GetCommand).resolves({});
  ddb.on(PutCommand).resolves({});
  sqs.on(SendMessageCommand).resolves({});
  mocks.iotData.on(PublishCommand).resolves({});
});

function expectNothingStored() {
  expect(ddb).not.toHaveReceivedCommand(PutCommand);
  expect(ddb).not.toHaveReceivedCommand(TransactWriteCommand);
}

describe('intake handler', () => {
  describe('a valid request', () => {
    it('creates the task conditionally, schedules its window and deadline, and publishes the retained status', async () => {
      const outcome = await handler(ruleEvent(TOPIC, request, 'client-1'));
      expect(outcome).toMatchObject({ status: 'accepted' });

      expect(ddb).toHaveReceivedCommandWith(GetCommand, { TableName: TEST_ENV.TABLE_NAME, Key: { pk: 'TASK#t-1', sk: 'TASK' }, ConsistentRead: true });
      expect(ddb).toHaveReceivedCommandTimes(PutCommand, 2);
      expect(ddb).toHaveReceivedNthSpecificCommandWith(1, PutCommand, { ConditionExpression: 'attribute_not_exists(pk)' });
      const created = ddb.commandCalls(PutCommand)[0]!.args[0].input.Item!;
      // Created with its status still in the outbox: due at once, so the sweeper publishes it if this invocation dies.
      expect(created).toMatchObject({ pk: 'TASK#t-1', sk: 'TASK', version: 1, state: 'submitted', dueAt: NOW });
      // The outbox bookkeeping save: conditional on the version just created; next due when the window closes.
      expect(ddb).toHaveReceivedNthSpecificCommandWith(2, PutCommand, { ConditionExpression: '#version = :expected', ExpressionAttributeValues: { ':expected': 1 } });
      expect(ddb.commandCalls(PutCommand)[1]!.args[0].input.Item).toMatchObject({ version: 2, dueAt: NOW + 2_000 });
      expect(ddb).not.toHaveReceivedCommand(TransactWriteCommand);
      expect(ddb).not.toHaveReceivedCommand(QueryCommand);

      expect(sqs).toHaveReceivedCommandTimes(SendMessageCommand, 2);
      expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, {
        QueueUrl: TEST_ENV.TIMER_QUEUE_URL,
        MessageBody: JSON.stringify({ event: { kind: 'proposal-window', taskId: 't-1' }, dueAt: NOW + 2_000 }),
        DelaySeconds: 2,
      });
      expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, {
        MessageBody: JSON.stringify({ event: { kind: 'deadline', taskId: 't-1' }, dueAt: NOW + 15 * 60_000 }),
        DelaySeconds: 900,
      });

      // The call for bids on the agent tree (validated, no cancel commitment), then both status snapshots.
      expect(published()).toEqual([
        { topic: 'tasks/t-1/request', qos: 1, retain: false, payload: expect.objectContaining({ goal: request.goal }) },
        { topic: 'tasks/t-1/status', qos: 1, retain: true, payload: expect.objectContaining({ taskId: 't-1', state: 'submitted' }) },
        { topic: 'clients/client-1/tasks/t-1/status', qos: 1, retain: true, payload: expect.objectContaining({ taskId: 't-1', state: 'submitted' }) },
      ]);
      expect(addMetric).toHaveBeenCalledWith('Accepted', 'Count', 1);
    });
  });

  describe('a malformed envelope', () => {
    it('is dropped with a Malformed metric and touches nothing', async () => {
      const outcome = await handler({ payload: 'e30=', receivedAt: NOW });
      expect(outcome).toMatchObject({ status: 'rejected', code: 'invalid-payload' });
      expect((outcome as { message: string }).message).toContain('topic');
      expect(ddb.calls()).toHaveLength(0);
      expect(published()).toEqual([]);
      expect(addMetric).toHaveBeenCalledWith('Malformed', 'Count', 1);
    });

    it('is dropped when the payload is not base64', async () => {
      const outcome = await handler({ payload: '{"goal":"x"}', topic: TOPIC, receivedAt: NOW });
      expect(outcome).toMatchObject({ status: 'rejected', code: 'invalid-payload' });
      expect(ddb.calls()).toHaveLength(0);
    });
  });

  describe('a payload that is base64 of non-JSON', () => {
    it('publishes a retained rejected status and result and stores nothing', async () => {
      const outcome = await handler(ruleEvent(TOPIC, 'this is not json'));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'invalid-json' });
      expectNothingStored();
      expect(sqs).not.toHaveReceivedCommand(SendMessageCommand);
      const out = published();
      expect(out.map((p) => [p.topic, p.retain, p.qos])).toEqual([['clients/client-1/tasks/t-1/result', true, 1], ['clients/client-1/tasks/t-1/status', true, 1]]);
      expect(out[1]!.payload).toMatchObject({ state: 'rejected', errors: [expect.objectContaining({ code: 'invalid-json' })] });
      expect(addMetric).toHaveBeenCalledWith('Rejected', 'Count', 1);
    });
  });

  describe('a request that fails its schema', () => {
    it('publishes the rejection naming the field and stores nothing', async () => {
      const outcome = await handler(ruleEvent(TOPIC, { goal: 'x', want: [] }));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'invalid-payload' });
      expect((outcome as { message: string }).message).toContain('want');
      expectNothingStored();
      expect(published()[1]!.payload).toMatchObject({ state: 'rejected', errors: [expect.objectContaining({ code: 'invalid-payload' })] });
    });
  });

  describe('an oversize request', () => {
    it('is refused as payload-too-large and stores nothing', async () => {
      const outcome = await handler(ruleEvent(TOPIC, { ...request, input: { blob: 'x'.repeat(130 * 1024) } }));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'payload-too-large' });
      expectNothingStored();
      expect(published().map((p) => p.topic)).toEqual(['clients/client-1/tasks/t-1/result', 'clients/client-1/tasks/t-1/status']);
    });
  });

  describe('a request for a task id that exists', () => {
    it('refuses a different request without overwriting the task or its status', async () => {
      ddb.on(GetCommand).resolves({ Item: storedTask(taskRecord({ request: { v: 1, goal: 'other', input: {}, want: ['x'], constraints: {} } })) });
      const outcome = await handler(ruleEvent(TOPIC, request, 'client-1'));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'duplicate-task' });
      expectNothingStored();
      expect(published()).toEqual([{ topic: 'clients/client-1/errors', qos: 1, retain: false, payload: expect.objectContaining({ code: 'duplicate-task', taskId: 't-1' }) }]);
    });

    it('treats a redelivery of the same request as a duplicate and writes nothing', async () => {
      const existing = taskRecord({ request: { v: 1, ...request, constraints: {} } });
      ddb.on(GetCommand).resolves({ Item: storedTask(existing) });
      const outcome = await handler(ruleEvent(TOPIC, request));
      expect(outcome).toMatchObject({ status: 'duplicate' });
      expectNothingStored();
      expect(published()).toEqual([]);
      expect(addMetric).toHaveBeenCalledWith('Duplicate', 'Count', 1);
    });

    it('loses a creation race without overwriting the winner', async () => {
      const winner = taskRecord({ request: { v: 1, goal: 'first', input: {}, want: ['x'], constraints: {} } });
      ddb.on(GetCommand).resolvesOnce({}).resolves({ Item: storedTask(winner) });
      ddb.on(PutCommand).rejects(new ConditionalCheckFailedException({ message: 'exists', $metadata: {} }));
      const outcome = await handler(ruleEvent(TOPIC, request));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'duplicate-task' });
      expect(ddb).toHaveReceivedCommandTimes(PutCommand, 1);
      expect(ddb).toHaveReceivedCommandWith(PutCommand, { ConditionExpression: 'attribute_not_exists(pk)' });
      expect(published().filter((p) => p.topic === 'clients/client-1/tasks/t-1/status')).toEqual([]);
    });
  });

  describe('a throttled table', () => {
    it('throws so Lambda retries, counting the failure', async () => {
      ddb.on(GetCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ProvisionedThroughputExceededException', $fault: 'client', $metadata: {} }));
      await expect(handler(ruleEvent(TOPIC, request))).rejects.toMatchObject({ name: 'StoreError', retryable: true });
      expectNothingStored();
      expect(addMetric).toHaveBeenCalledWith('Failed', 'Count', 1);
    });
  });
});
