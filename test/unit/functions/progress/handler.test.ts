import { PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { GetCommand, PutCommand, QueryCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { sha256 } from '../../../../functions/adapters/system';
import type { RuleHandler } from '../../../../functions/lib/rule-handler';
import { step, taskRecord } from '../helpers/fixtures';
import { mocks, NOW, published, resetWorld, ruleEvent, setTestEnv, storedTask, TEST_ENV } from '../helpers/handler-env';
import { testToken } from '../../../helpers/in-memory-ports';

const { ddb } = mocks;
const OUTPUT_TOPIC = 'tasks/t-1/output/s1/agent-a';
const CANCEL_TOPIC = 'clients/client-1/tasks/t-1/cancel';
const TOKEN = testToken('t-1', 's1', 2);
const OLD_TOKEN = testToken('t-1', 's1', 1);

const working = taskRecord({
  state: 'working',
  phase: 'executing',
  version: 4,
  deadlineAt: NOW + 600_000,
  request: { v: 1, goal: 'chart', input: { sales: [1, 2] }, want: ['chart'], constraints: {}, cancelHash: sha256('let-me-cancel') },
  steps: {
    s1: step('s1', {
      state: 'assigned', agentId: 'agent-a', epoch: 2, attempts: 2, leaseExpiresAt: NOW + 30_000,
      superseded: [{ epoch: 1, agentId: 'agent-z', cause: 'lease-expired' }],
    }),
  },
  stepOrder: ['s1'],
});

const goodOutput = { taskId: 't-1', stepId: 's1', epoch: 2, token: TOKEN, ok: true, output: { chart: { type: 'bar' } }, usage: { usd: 0.01, ms: 400 } };

let handler: RuleHandler;
let addMetric: jest.SpyInstance;

beforeAll(() => {
  setTestEnv();
  ({ handler } = jest.requireActual<typeof import('../../../../functions/progress/handler')>('../../../../functions/progress/handler'));
});

beforeEach(() => {
  addMetric = resetWorld();
  ddb.on(GetCommand).resolves({ Item: storedTask(working, ['agent-a']) });
  ddb.on(QueryCommand).resolves({ Items: [] });
  ddb.on(PutCommand).resolves({});
  ddb.on(TransactWriteCommand).resolves({});
  mocks.iotData.on(PublishCommand).resolves({});
  mocks.sqs.on(SendMessageCommand).resolves({});
});

function expectTaskUntouched() {
  expect(ddb).not.toHaveReceivedCommand(PutCommand);
  expect(ddb).not.toHaveReceivedCommand(TransactWriteCommand);
}

describe('progress handler', () => {
  describe('the live assignee delivers the wanted artifact', () => {
    it('completes the task: one conditional transaction dropping the assignee pointer, then the retained result and status', async () => {
      const outcome = await handler(ruleEvent(OUTPUT_TOPIC, goodOutput, 'agent-a'));
      expect(outcome).toMatchObject({ status: 'accepted' });

      expect(ddb).toHaveReceivedCommandTimes(TransactWriteCommand, 1);
      const [put, del, ...rest] = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!;
      expect(rest).toEqual([]);
      expect(put!.Put).toMatchObject({
        TableName: TEST_ENV.TABLE_NAME,
        ConditionExpression: '#version = :expected',
        ExpressionAttributeValues: { ':expected': 4 },
        Item: { pk: 'TASK#t-1', version: 5, state: 'completed', assignees: [] },
      });
      expect(del).toEqual({ Delete: { TableName: TEST_ENV.TABLE_NAME, Key: { pk: 'ASSIGNEE#agent-a', sk: 'TASK#t-1' } } });
      // Outbox bookkeeping after publishing: a plain conditional put on the completed version.
      expect(ddb).toHaveReceivedCommandWith(PutCommand, { ConditionExpression: '#version = :expected', ExpressionAttributeValues: { ':expected': 5 } });

      const out = published();
      // The accepted output for the owner (without its token), the result, the agents' and the owner's status.
      expect(out.map((p) => [p.topic, p.retain, p.qos])).toEqual([
        ['clients/client-1/tasks/t-1/output/s1', true, 1], ['clients/client-1/tasks/t-1/result', true, 1], ['tasks/t-1/status', true, 1], ['clients/client-1/tasks/t-1/status', true, 1],
      ]);
      expect(out[0]!.payload).toMatchObject({ ok: true, epoch: 2, output: { chart: { type: 'bar' } } });
      expect(out[0]!.payload).not.toHaveProperty('token');
      expect(out[1]!.payload).toMatchObject({ state: 'completed', outputs: { chart: { type: 'bar' } } });
      expect(mocks.sqs).toHaveReceivedCommandWith(SendMessageCommand, { MessageBody: expect.stringContaining('"kind":"retention"') });
      expect(addMetric).toHaveBeenCalledWith('Accepted', 'Count', 1);
    });
  });

  describe('an output from a superseded epoch', () => {
    it('is refused as stale-epoch with a notice to that epoch\'s assignee, and nothing is saved or published on the task', async () => {
      const outcome = await handler(ruleEvent('tasks/t-1/output/s1/agent-z', { ...goodOutput, epoch: 1, token: OLD_TOKEN }, 'agent-z'));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'stale-epoch' });
      expectTaskUntouched();
      expect(published()).toEqual([
        { topic: 'agents/agent-z/errors', qos: 1, retain: false, payload: expect.objectContaining({ code: 'stale-epoch', taskId: 't-1', stepId: 's1' }) },
      ]);
      expect(addMetric).toHaveBeenCalledWith('Rejected', 'Count', 1);
    });
  });

  describe('an output with the right token published by another client (spoofed clientid())', () => {
    it('is refused as not-authorized and the step stays assigned', async () => {
      const outcome = await handler(ruleEvent(OUTPUT_TOPIC, goodOutput, 'agent-thief'));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'not-authorized' });
      expectTaskUntouched();
      expect(published()).toEqual([{ topic: 'agents/agent-thief/errors', qos: 1, retain: false, payload: expect.objectContaining({ code: 'not-authorized' }) }]);
    });
  });

  describe('an output for an unknown task', () => {
    it('is refused as unknown-task and nothing is written', async () => {
      ddb.on(GetCommand).resolves({});
      const outcome = await handler(ruleEvent(OUTPUT_TOPIC, goodOutput, 'agent-a'));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'unknown-task' });
      expectTaskUntouched();
      expect(published()).toEqual([{ topic: 'agents/agent-a/errors', qos: 1, retain: false, payload: expect.objectContaining({ code: 'unknown-task' }) }]);
    });
  });

  describe('an output that fails its schema', () => {
    it('is refused as invalid-payload with a notice to the assignee', async () => {
      const outcome = await handler(ruleEvent(OUTPUT_TOPIC, { ...goodOutput, token: 'short' }));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'invalid-payload' });
      expectTaskUntouched();
      expect(published()).toEqual([{ topic: 'agents/agent-a/errors', qos: 1, retain: false, payload: expect.objectContaining({ code: 'invalid-payload' }) }]);
    });
  });

  describe('a cancel with the committed secret', () => {
    it('cancels the task under the version condition and publishes the retained canceled status', async () => {
      const outcome = await handler(ruleEvent(CANCEL_TOPIC, { secret: 'let-me-cancel', reason: 'changed my mind' }, 'client-1'));
      expect(outcome).toMatchObject({ status: 'accepted' });
      const [put, del] = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!;
      expect(put!.Put).toMatchObject({ ExpressionAttributeValues: { ':expected': 4 }, Item: { state: 'canceled' } });
      expect(del!.Delete!.Key).toEqual({ pk: 'ASSIGNEE#agent-a', sk: 'TASK#t-1' });
      const status = published().find((p) => p.topic === 'clients/client-1/tasks/t-1/status');
      expect(status).toMatchObject({ retain: true, qos: 1, payload: { state: 'canceled' } });
    });
  });

  describe('a cancel with the wrong secret', () => {
    it('is refused as not-authorized and the task is not touched', async () => {
      const outcome = await handler(ruleEvent(CANCEL_TOPIC, { secret: 'guessing-1234' }, 'client-1'));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'not-authorized' });
      expectTaskUntouched();
      expect(published()).toEqual([{ topic: 'clients/client-1/errors', qos: 1, retain: false, payload: expect.objectContaining({ code: 'not-authorized' }) }]);
    });
  });

  describe('a topic this function does not serve', () => {
    it('is refused as invalid-topic without touching the table', async () => {
      const outcome = await handler(ruleEvent('tasks/t-1/progress/s1', { fraction: 0.5 }));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'invalid-topic' });
      expect(ddb.calls()).toHaveLength(0);
    });
  });
});
