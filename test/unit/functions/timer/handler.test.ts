import { PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { GetCommand, PutCommand, QueryCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { taskRecord } from '../helpers/fixtures';
import { mocks, NOW, published, resetWorld, setTestEnv, storedTask, TEST_ENV } from '../helpers/handler-env';

const { ddb, sqs } = mocks;

let handler: (event: SQSEvent) => Promise<SQSBatchResponse>;
let addMetric: jest.SpyInstance;

function record(messageId: string, body: unknown): SQSRecord {
  return {
    messageId,
    receiptHandle: `rh-${messageId}`,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    attributes: { ApproximateReceiveCount: '1', SentTimestamp: String(NOW), SenderId: 'x', ApproximateFirstReceiveTimestamp: String(NOW) },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:eu-central-1:123456789012:porchlight-timers',
    awsRegion: 'eu-central-1',
  };
}

beforeAll(() => {
  setTestEnv();
  ({ handler } = jest.requireActual<typeof import('../../../../functions/timer/handler')>('../../../../functions/timer/handler'));
});

beforeEach(() => {
  addMetric = resetWorld();
  ddb.on(GetCommand).resolves({});
  ddb.on(QueryCommand).resolves({ Items: [] });
  ddb.on(PutCommand).resolves({});
  sqs.on(SendMessageCommand).resolves({});
  mocks.iotData.on(PublishCommand).resolves({});
});

describe('timer handler', () => {
  describe('an event not yet due', () => {
    it('is sent on with the remaining delay and the task is not read', async () => {
      const event = { kind: 'deadline', taskId: 't-1' };
      const result = await handler({ Records: [record('m1', { event, dueAt: NOW + 3_600_000 })] });
      expect(result).toEqual({ batchItemFailures: [] });
      expect(sqs).toHaveReceivedCommandTimes(SendMessageCommand, 1);
      expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, {
        QueueUrl: TEST_ENV.TIMER_QUEUE_URL,
        MessageBody: JSON.stringify({ event, dueAt: NOW + 3_600_000 }),
        DelaySeconds: 900,
      });
      expect(ddb.calls()).toHaveLength(0);
      expect(addMetric).toHaveBeenCalledWith('Ignored', 'Count', 1);
    });
  });

  describe('a due proposal window', () => {
    it('closes the window: reads the proposals, records the failed plan and publishes the outcome', async () => {
      const task = taskRecord({ windowClosesAt: NOW - 10, deadlineAt: NOW + 600_000 });
      ddb.on(GetCommand).resolves({ Item: storedTask(task) });
      const result = await handler({ Records: [record('m1', { event: { kind: 'proposal-window', taskId: 't-1' }, dueAt: NOW - 10 })] });
      expect(result).toEqual({ batchItemFailures: [] });
      expect(ddb).toHaveReceivedCommandWith(QueryCommand, { ExpressionAttributeValues: { ':pk': 'TASK#t-1', ':prefix': 'PROPOSAL#' } });
      expect(ddb).toHaveReceivedCommandWith(PutCommand, { ConditionExpression: '#version = :expected', ExpressionAttributeValues: { ':expected': 1 } });
      expect(ddb.commandCalls(PutCommand)[0]!.args[0].input.Item).toMatchObject({ state: 'failed', version: 2 });
      expect(published().find((p) => p.topic === 'clients/client-1/tasks/t-1/status')).toMatchObject({ retain: true, payload: { state: 'failed' } });
    });
  });

  describe('a mixed batch', () => {
    it('drops malformed records, reports only the record that failed transiently', async () => {
      ddb.on(GetCommand, { Key: { pk: 'TASK#t-boom', sk: 'TASK' } }).rejects(Object.assign(new Error('down'), { name: 'InternalServerError', $fault: 'server', $metadata: {} }));
      const result = await handler({
        Records: [
          record('bad-json', '{oops'),
          record('bad-shape', { event: { kind: 'lease', taskId: 't-1' }, dueAt: NOW }),
          record('boom', { event: { kind: 'deadline', taskId: 't-boom' }, dueAt: NOW - 1 }),
          record('gone', { event: { kind: 'deadline', taskId: 't-gone' }, dueAt: NOW - 1 }),
        ],
      });
      expect(result).toEqual({ batchItemFailures: [{ itemIdentifier: 'boom' }] });
      expect(addMetric).toHaveBeenCalledWith('Malformed', 'Count', 1);
      expect(addMetric.mock.calls.filter(([name]) => name === 'Malformed')).toHaveLength(2);
      expect(addMetric).toHaveBeenCalledWith('Failed', 'Count', 1);
      expect(ddb).not.toHaveReceivedCommand(PutCommand);
      expect(ddb).not.toHaveReceivedCommand(TransactWriteCommand);
    });
  });
});
