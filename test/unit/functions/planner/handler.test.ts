import { PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { GetCommand, PutCommand, QueryCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import type { RuleHandler } from '../../../../functions/lib/rule-handler';
import { taskRecord } from '../helpers/fixtures';
import { mocks, NOW, published, resetWorld, ruleEvent, setTestEnv, storedTask, TEST_ENV } from '../helpers/handler-env';

const { ddb } = mocks;
const TOPIC = 'tasks/t-1/proposal/agent-a';
const bid = { steps: [{ id: 'chart', skill: 'nl2chart', consumes: ['sales'], produces: ['chart'], estUsd: 0.01, estMs: 500 }] };
const collecting = taskRecord({ eligibleAgents: ['agent-a', 'agent-b'], windowClosesAt: NOW + 2_000 });

let handler: RuleHandler;
let addMetric: jest.SpyInstance;

beforeAll(() => {
  setTestEnv();
  ({ handler } = jest.requireActual<typeof import('../../../../functions/planner/handler')>('../../../../functions/planner/handler'));
});

beforeEach(() => {
  addMetric = resetWorld();
  ddb.on(GetCommand).resolves({ Item: storedTask(collecting) });
  ddb.on(PutCommand).resolves({});
  ddb.on(QueryCommand).resolves({ Items: [] });
  mocks.iotData.on(PublishCommand).resolves({});
  mocks.sqs.on(SendMessageCommand).resolves({});
});

function expectNoProposalStored() {
  expect(ddb).not.toHaveReceivedCommand(PutCommand);
  expect(ddb).not.toHaveReceivedCommand(TransactWriteCommand);
}

describe('planner handler', () => {
  describe('a bid while the window is open', () => {
    it('stores the proposal with the redelivery condition and publishes nothing', async () => {
      ddb.on(QueryCommand).resolves({ Items: [{ taskId: 't-1', agentId: 'agent-a', receivedAt: NOW, body: JSON.stringify({ v: 1, ...bid }) }] });
      const outcome = await handler(ruleEvent(TOPIC, bid, 'agent-a'));
      expect(outcome).toMatchObject({ status: 'accepted' });
      expect(ddb).toHaveReceivedCommandTimes(PutCommand, 1);
      expect(ddb).toHaveReceivedCommandWith(PutCommand, {
        TableName: TEST_ENV.TABLE_NAME,
        ConditionExpression: 'attribute_not_exists(pk) OR #body <> :body',
        ExpressionAttributeNames: { '#body': 'body' },
      });
      expect(ddb.commandCalls(PutCommand)[0]!.args[0].input.Item).toMatchObject({ pk: 'TASK#t-1', sk: 'PROPOSAL#agent-a', receivedAt: NOW });
      expect(ddb).toHaveReceivedCommandWith(QueryCommand, { ExpressionAttributeValues: { ':pk': 'TASK#t-1', ':prefix': 'PROPOSAL#' } });
      expect(published()).toEqual([]);
      expect(addMetric).toHaveBeenCalledWith('Accepted', 'Count', 1);
    });
  });

  describe('a proposal published by another client (spoofed clientid())', () => {
    it('is refused with a notice to the real publisher and nothing is read or stored', async () => {
      const outcome = await handler(ruleEvent(TOPIC, bid, 'agent-evil'));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'not-authorized' });
      expect(ddb.calls()).toHaveLength(0);
      expect(published()).toEqual([
        { topic: 'agents/agent-evil/errors', qos: 1, retain: false, payload: expect.objectContaining({ code: 'not-authorized', topic: TOPIC, taskId: 't-1' }) },
      ]);
    });
  });

  describe('a proposal for an unknown task', () => {
    it('is refused as unknown-task with a notice to the bidder', async () => {
      ddb.on(GetCommand).resolves({});
      const outcome = await handler(ruleEvent(TOPIC, bid, 'agent-a'));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'unknown-task' });
      expectNoProposalStored();
      expect(published()).toEqual([{ topic: 'agents/agent-a/errors', qos: 1, retain: false, payload: expect.objectContaining({ code: 'unknown-task' }) }]);
    });
  });

  describe('a proposal that is base64 of non-JSON', () => {
    it('is refused as invalid-json and not stored', async () => {
      const outcome = await handler(ruleEvent(TOPIC, '<xml/>', 'agent-a'));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'invalid-json' });
      expectNoProposalStored();
      expect(published()).toEqual([{ topic: 'agents/agent-a/errors', qos: 1, retain: false, payload: expect.objectContaining({ code: 'invalid-json' }) }]);
    });
  });

  describe('a cyclic DAG', () => {
    it('is refused as cyclic-dag and not stored', async () => {
      const cyclic = {
        steps: [
          { id: 'a', skill: 'x', consumes: ['q'], produces: ['p'], estUsd: 0, estMs: 1 },
          { id: 'b', skill: 'y', consumes: ['p'], produces: ['q'], estUsd: 0, estMs: 1 },
        ],
      };
      const outcome = await handler(ruleEvent(TOPIC, cyclic, 'agent-a'));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'cyclic-dag' });
      expectNoProposalStored();
    });
  });

  describe('a malformed envelope', () => {
    it('is dropped without touching the table or the broker', async () => {
      const outcome = await handler({ topic: TOPIC, payload: 'e30=', receivedAt: 'yesterday' });
      expect(outcome).toMatchObject({ status: 'rejected', code: 'invalid-payload' });
      expect(ddb.calls()).toHaveLength(0);
      expect(published()).toEqual([]);
      expect(addMetric).toHaveBeenCalledWith('Malformed', 'Count', 1);
    });
  });
});
