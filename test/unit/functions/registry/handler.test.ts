import { ListThingGroupsForThingCommand } from '@aws-sdk/client-iot';
import { PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { GetCommand, PutCommand, QueryCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import type { RuleHandler } from '../../../../functions/lib/rule-handler';
import { agentRecord } from '../helpers/fixtures';
import { mocks, NOW, published, resetWorld, ruleEvent, setTestEnv, storedAgent, TEST_ENV } from '../helpers/handler-env';

const { ddb, iot } = mocks;
const seedPayload = { skills: ['sql-optimiser', 'nl2chart'], cost: { usd: 0.02, p95_ms: 350 }, region: 'eu-central-1', accredit: ['ISO27001', 'gdpr'] };

let handler: RuleHandler;
let addMetric: jest.SpyInstance;

beforeAll(() => {
  setTestEnv();
  ({ handler } = jest.requireActual<typeof import('../../../../functions/registry/handler')>('../../../../functions/registry/handler'));
});

beforeEach(() => {
  addMetric = resetWorld();
  ddb.on(GetCommand).resolves({});
  ddb.on(TransactWriteCommand).resolves({});
  ddb.on(QueryCommand).resolves({ Items: [] });
  iot.on(ListThingGroupsForThingCommand).resolves({ thingGroups: [{ groupName: 'accredit-gdpr' }, { groupName: 'eu-fleet' }] });
  mocks.iotData.on(PublishCommand).resolves({});
});

function expectRegistryUntouched() {
  expect(ddb).not.toHaveReceivedCommand(TransactWriteCommand);
  expect(ddb).not.toHaveReceivedCommand(PutCommand);
}

describe('registry handler', () => {
  describe("the seed article's résumé", () => {
    it('checks the claims against thing groups, indexes the skills, and reports the unverified claim', async () => {
      const outcome = await handler(ruleEvent('agents/agent-a/resume', seedPayload, 'agent-a'));
      expect(outcome).toMatchObject({ status: 'accepted' });
      expect(iot).toHaveReceivedCommandWith(ListThingGroupsForThingCommand, { thingName: 'agent-a' });

      expect(ddb).toHaveReceivedCommandTimes(TransactWriteCommand, 1);
      const items = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!;
      expect(items.map((i) => i.Put!.Item!.sk)).toEqual(['PROFILE', 'SKILL#sql-optimiser', 'SKILL#nl2chart']);
      expect(items[0]!.Put!.ConditionExpression).toBe('attribute_not_exists(pk)');
      expect(items.slice(1).map((i) => i.Put!.Item!.gsi1pk)).toEqual(['SKILL#sql-optimiser', 'SKILL#nl2chart']);
      expect(JSON.parse(String(items[0]!.Put!.Item!.data))).toMatchObject({ verifiedAccredit: ['gdpr'], unverifiedAccredit: ['ISO27001'], state: 'online', updatedAt: NOW });

      expect(published()).toEqual([
        { topic: 'agents/agent-a/errors', qos: 1, retain: false, payload: expect.objectContaining({ code: 'not-authorized', message: expect.stringContaining('ISO27001') }) },
      ]);
      expect(addMetric).toHaveBeenCalledWith('Accepted', 'Count', 1);
    });
  });

  describe('a résumé published by another client (spoofed clientid())', () => {
    it('is refused with a notice to the publisher; no lookup, no write', async () => {
      const outcome = await handler(ruleEvent('agents/agent-a/resume', seedPayload, 'agent-b'));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'not-authorized' });
      expect(iot).not.toHaveReceivedCommand(ListThingGroupsForThingCommand);
      expectRegistryUntouched();
      expect(published()).toEqual([{ topic: 'agents/agent-b/errors', qos: 1, retain: false, payload: expect.objectContaining({ code: 'not-authorized' }) }]);
    });
  });

  describe('a résumé that fails its schema', () => {
    it('is refused naming the field and nothing is stored', async () => {
      const outcome = await handler(ruleEvent('agents/agent-a/resume', { ...seedPayload, skills: [] }, 'agent-a'));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'invalid-payload' });
      expect((outcome as { message: string }).message).toContain('skills');
      expectRegistryUntouched();
    });
  });

  describe('an offline status', () => {
    it('records it under the version condition and looks up the agent\'s assigned tasks', async () => {
      ddb.on(GetCommand, { Key: { pk: 'AGENT#agent-a', sk: 'PROFILE' } }).resolves({ Item: storedAgent(agentRecord({ version: 3 })) });
      const outcome = await handler(ruleEvent('agents/agent-a/status', { state: 'offline', reason: 'last will' }));
      expect(outcome).toMatchObject({ status: 'accepted' });
      const items = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!;
      expect(items[0]!.Put).toMatchObject({ ConditionExpression: '#version = :expected', ExpressionAttributeValues: { ':expected': 3 }, Item: { state: 'offline' } });
      expect(ddb).toHaveReceivedCommandWith(QueryCommand, { TableName: TEST_ENV.TABLE_NAME, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': 'ASSIGNEE#agent-a' } });
      expect(published()).toEqual([]);
    });
  });

  describe('telemetry from an agent with no résumé', () => {
    it('is refused as invalid-state and nothing is written', async () => {
      const outcome = await handler(ruleEvent('agents/agent-a/telemetry', { executions: 3, costUsd: 0.01, p95Ms: 120, successRate: 1 }, 'agent-a'));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'invalid-state' });
      expectRegistryUntouched();
    });
  });

  describe('a throttled thing-group lookup', () => {
    it('throws so the event is retried, and stores nothing', async () => {
      iot.on(ListThingGroupsForThingCommand).rejects(Object.assign(new Error('slow down'), { name: 'ThrottlingException', $fault: 'client', $metadata: {} }));
      await expect(handler(ruleEvent('agents/agent-a/resume', seedPayload, 'agent-a'))).rejects.toMatchObject({ name: 'AccreditationLookupError', retryable: true });
      expectRegistryUntouched();
      expect(addMetric).toHaveBeenCalledWith('Failed', 'Count', 1);
    });
  });
});
