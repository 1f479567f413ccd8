import { PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { GetCommand, PutCommand, QueryCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import type { RuleHandler } from '../../../../functions/lib/rule-handler';
import { agentRecord } from '../helpers/fixtures';
import { mocks, NOW, published, resetWorld, ruleEvent, setTestEnv, storedAgent } from '../helpers/handler-env';

const { ddb } = mocks;
const DISCONNECTED = '$aws/events/presence/disconnected/agent-a';
const lifecycle = (eventType: 'connected' | 'disconnected', extra: Record<string, unknown> = {}) => ({
  clientId: 'agent-a', timestamp: NOW - 100, eventType, sessionIdentifier: 'sess-1', principalIdentifier: 'cert-1', versionNumber: 3, ...extra,
});

let handler: RuleHandler;
let addMetric: jest.SpyInstance;

beforeAll(() => {
  setTestEnv();
  ({ handler } = jest.requireActual<typeof import('../../../../functions/presence/handler')>('../../../../functions/presence/handler'));
});

beforeEach(() => {
  addMetric = resetWorld();
  ddb.on(GetCommand).resolves({ Item: storedAgent(agentRecord({ version: 5 })) });
  ddb.on(TransactWriteCommand).resolves({});
  ddb.on(QueryCommand).resolves({ Items: [] });
  mocks.iotData.on(PublishCommand).resolves({});
});

describe('presence handler', () => {
  describe('an agent that lost its connection', () => {
    it('marks it offline under the version condition and re-assigns its steps', async () => {
      const outcome = await handler(ruleEvent(DISCONNECTED, lifecycle('disconnected', { disconnectReason: 'CONNECTION_LOST' })));
      expect(outcome).toMatchObject({ status: 'accepted' });
      const items = ddb.commandCalls(TransactWriteCommand)[0]!.args[0].input.TransactItems!;
      expect(items[0]!.Put).toMatchObject({ ConditionExpression: '#version = :expected', ExpressionAttributeValues: { ':expected': 5 }, Item: { sk: 'PROFILE', state: 'offline' } });
      expect(ddb).toHaveReceivedCommandWith(QueryCommand, { ExpressionAttributeValues: { ':pk': 'ASSIGNEE#agent-a' } });
      expect(published()).toEqual([]);
      expect(addMetric).toHaveBeenCalledWith('Accepted', 'Count', 1);
    });
  });

  describe('an old session closed because the agent reconnected', () => {
    it('is ignored: nothing written', async () => {
      const outcome = await handler(ruleEvent(DISCONNECTED, lifecycle('disconnected', { disconnectReason: 'DUPLICATE_CLIENTID' })));
      expect(outcome).toMatchObject({ status: 'ignored' });
      expect(ddb).not.toHaveReceivedCommand(TransactWriteCommand);
      expect(ddb).not.toHaveReceivedCommand(PutCommand);
      expect(addMetric).toHaveBeenCalledWith('Ignored', 'Count', 1);
    });
  });

  describe('an event whose payload contradicts its topic', () => {
    it('is refused as invalid-payload and nothing is written', async () => {
      const outcome = await handler(ruleEvent(DISCONNECTED, lifecycle('connected')));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'invalid-payload' });
      expect(ddb).not.toHaveReceivedCommand(TransactWriteCommand);
    });
  });

  describe('a payload that is base64 of non-JSON', () => {
    it('is refused as invalid-json without a database read', async () => {
      const outcome = await handler(ruleEvent(DISCONNECTED, 'not json'));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'invalid-json' });
      expect(ddb.calls()).toHaveLength(0);
    });
  });
});
