import { PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { ScheduledEvent } from 'aws-lambda';
import { taskRecord } from '../helpers/fixtures';
import { mocks, NOW, published, resetWorld, setTestEnv, storedTask } from '../helpers/handler-env';

const { ddb } = mocks;
const scheduled: ScheduledEvent = {
  version: '0', id: 'e-1', 'detail-type': 'Scheduled Event', source: 'aws.events', account: '123456789012', time: '2030-01-01T00:00:00Z',
  region: 'eu-central-1', resources: ['arn:aws:events:eu-central-1:123456789012:rule/porchlight-sweeper'], detail: {},
};

let handler: (event: ScheduledEvent) => Promise<{ examined: number; advanced: number }>;
let addMetric: jest.SpyInstance;

beforeAll(() => {
  setTestEnv();
  ({ handler } = jest.requireActual<typeof import('../../../../functions/sweeper/handler')>('../../../../functions/sweeper/handler'));
});

beforeEach(() => {
  addMetric = resetWorld();
  ddb.on(QueryCommand).resolves({ Items: [] });
  ddb.on(PutCommand).resolves({});
  mocks.iotData.on(PublishCommand).resolves({});
  mocks.sqs.on(SendMessageCommand).resolves({});
});

describe('sweeper handler', () => {
  describe('a finished task whose status was never published', () => {
    it('publishes the outbox and saves it empty under the version condition', async () => {
      const stuck = taskRecord({
        state: 'failed', phase: 'done', version: 7, updatedAt: NOW - 5_000, finishedAt: NOW - 5_000, retainedClearedAt: NOW - 5_000,
        outbox: [{ topic: 'tasks/t-1/status', payload: { v: 1, taskId: 't-1', state: 'failed' }, qos: 1, retain: true }],
      });
      ddb.on(QueryCommand, { IndexName: 'byDue', ExpressionAttributeValues: { ':shard': 'DUE#0', ':now': NOW } }).resolves({ Items: [{ ...storedTask(stuck), dueShard: 'DUE#0', dueAt: NOW - 5_000 }] });
      ddb.on(GetCommand).resolves({ Item: { version: 7, assignees: [] } });
      const result = await handler(scheduled);
      expect(result).toEqual({ examined: 1, advanced: 1 });
      expect(ddb).toHaveReceivedCommandTimes(QueryCommand, 4);
      expect(published()).toEqual([{ topic: 'tasks/t-1/status', qos: 1, retain: true, payload: { v: 1, taskId: 't-1', state: 'failed' } }]);
      expect(ddb).toHaveReceivedCommandWith(PutCommand, { ConditionExpression: '#version = :expected', ExpressionAttributeValues: { ':expected': 7 } });
      const saved = ddb.commandCalls(PutCommand)[0]!.args[0].input.Item!;
      expect(saved).not.toHaveProperty('dueAt');
      expect(addMetric).toHaveBeenCalledWith('SweptTasks', 'Count', 1);
      expect(addMetric).toHaveBeenCalledWith('AdvancedTasks', 'Count', 1);
    });
  });

  describe('nothing due', () => {
    it('queries every shard and writes nothing', async () => {
      await expect(handler(scheduled)).resolves.toEqual({ examined: 0, advanced: 0 });
      expect(ddb).toHaveReceivedCommandTimes(QueryCommand, 4);
      expect(ddb).not.toHaveReceivedCommand(PutCommand);
    });
  });

  describe('an unreachable table', () => {
    it('throws so the scheduled invocation is retried', async () => {
      ddb.on(QueryCommand).rejects(Object.assign(new Error('down'), { name: 'InternalServerError', $fault: 'server', $metadata: {} }));
      await expect(handler(scheduled)).rejects.toMatchObject({ name: 'StoreError', retryable: true });
      expect(addMetric).toHaveBeenCalledWith('Failed', 'Count', 1);
    });
  });
});
