import 'aws-sdk-client-mock-jest';
import { QueueDoesNotExist, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { ScheduleError } from '../../../../functions/adapters/errors';
import { delaySeconds, MAX_DELAY_SECONDS, SqsTimer } from '../../../../functions/adapters/sqs-timer';

const sqs = mockClient(SQSClient);
const QUEUE_URL = 'https://sqs.eu-central-1.amazonaws.com/123456789012/porchlight-timers';
const NOW = 1_700_000_000_000;

function timer() {
  return new SqsTimer({ client: new SQSClient({ region: 'eu-central-1' }), queueUrl: QUEUE_URL, clock: { now: () => NOW } });
}

beforeEach(() => sqs.reset());

describe('SqsTimer', () => {
  describe('scheduling an event', () => {
    it('sends {event, dueAt} with the delay rounded up to whole seconds', async () => {
      sqs.on(SendMessageCommand).resolves({ MessageId: 'm-1' });
      const event = { kind: 'lease' as const, taskId: 't-1', stepId: 's1', epoch: 2 };
      await timer().schedule(event, NOW + 2_500);
      expect(sqs).toHaveReceivedCommandTimes(SendMessageCommand, 1);
      expect(sqs.commandCalls(SendMessageCommand)[0]!.args[0].input).toEqual({
        QueueUrl: QUEUE_URL,
        MessageBody: JSON.stringify({ event, dueAt: NOW + 2_500 }),
        DelaySeconds: 3,
      });
    });

    it('caps the delay at 15 minutes for an event due later', async () => {
      sqs.on(SendMessageCommand).resolves({});
      await timer().schedule({ kind: 'deadline', taskId: 't-1' }, NOW + 3_600_000);
      expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, { DelaySeconds: 900 });
    });

    it('sends an overdue event with no delay', async () => {
      sqs.on(SendMessageCommand).resolves({});
      await timer().schedule({ kind: 'proposal-window', taskId: 't-1' }, NOW - 10_000);
      expect(sqs).toHaveReceivedCommandWith(SendMessageCommand, { DelaySeconds: 0 });
    });
  });

  describe('SDK failures', () => {
    it('throws a permanent ScheduleError keeping the cause when the queue is gone', async () => {
      const failure = new QueueDoesNotExist({ message: 'no queue', $metadata: {} });
      sqs.on(SendMessageCommand).rejects(failure);
      const err = await timer().schedule({ kind: 'deadline', taskId: 't-1' }, NOW).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ScheduleError);
      expect(err).toMatchObject({ retryable: false });
      expect((err as Error).cause).toBe(failure);
    });

    it('throws a retryable ScheduleError on a network failure', async () => {
      sqs.on(SendMessageCommand).rejects(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
      const err = await timer().schedule({ kind: 'deadline', taskId: 't-1' }, NOW).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'ScheduleError', retryable: true });
    });
  });

  describe('delaySeconds', () => {
    it('clamps to 0..900 and rounds up', () => {
      expect(delaySeconds(NOW + 1, NOW)).toBe(1);
      expect(delaySeconds(NOW + 1000, NOW)).toBe(1);
      expect(delaySeconds(NOW + 1001, NOW)).toBe(2);
      expect(delaySeconds(NOW - 1, NOW)).toBe(0);
      expect(delaySeconds(NOW + 900_001, NOW)).toBe(MAX_DELAY_SECONDS);
      expect(delaySeconds(Number.NaN, NOW)).toBe(0);
    });
  });
});
