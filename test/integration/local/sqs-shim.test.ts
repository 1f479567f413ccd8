import { QueueDoesNotExist, SendMessageBatchCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { memoryDeadLetterSink } from '../../../local/dead-letters';
import { LOCAL_CREDENTIALS } from '../../../local/dynamodb';
import { createInProcessInvoker } from '../../../local/function-invoker';
import { waitUntil } from '../../../local/processes';
import { deliveryTime, startSqsShim, type SqsShim } from '../../../local/sqs-shim';
import { freePort } from '../../helpers/free-port';

describe('SQS shim', () => {
  let shim: SqsShim;
  let sqs: SQSClient;
  const deliveries: { record: SQSRecord; at: number }[] = [];
  const deadLetters = memoryDeadLetterSink();
  /** Bodies containing this marker are reported as failed items every time. */
  const FAIL = 'always-fail';

  beforeAll(async () => {
    const invoker = createInProcessInvoker({
      timer: (event) => {
        const batchItemFailures: SQSBatchResponse['batchItemFailures'] = [];
        for (const record of (event as SQSEvent).Records) {
          deliveries.push({ record, at: Date.now() });
          if (record.body.includes(FAIL)) batchItemFailures.push({ itemIdentifier: record.messageId });
        }
        return { batchItemFailures };
      },
    });
    shim = await startSqsShim({ port: await freePort(), invoker, deadLetters, maxReceiveCount: 3, retryDelayMs: () => 50 });
    sqs = new SQSClient({ endpoint: shim.endpoint, region: 'eu-central-1', credentials: LOCAL_CREDENTIALS, maxAttempts: 1 });
  });

  afterAll(async () => {
    sqs.destroy();
    await shim.stop();
  });

  const deliveredBodies = (marker: string): { record: SQSRecord; at: number }[] => deliveries.filter((d) => d.record.body.includes(marker));

  describe('SendMessage from the real SQSClient', () => {
    it('delivers a timer message to the timer function at its dueAt, as an SQS event record', async () => {
      const dueAt = Date.now() + 300;
      const body = JSON.stringify({ event: { kind: 'deadline', taskId: 't-sqs-1' }, dueAt });
      const sent = await sqs.send(new SendMessageCommand({ QueueUrl: shim.queueUrl, MessageBody: body, DelaySeconds: 1 }));
      expect(sent.MessageId).toEqual(expect.any(String));

      await waitUntil('delivery of t-sqs-1', async () => deliveredBodies('t-sqs-1').length > 0, { timeoutMs: 5000, intervalMs: 10 });
      const [delivery] = deliveredBodies('t-sqs-1');
      expect(delivery?.at).toBeGreaterThanOrEqual(dueAt);
      // dueAt wins over the (rounded-up) DelaySeconds.
      expect(delivery?.at).toBeLessThan(dueAt + 900);
      expect(delivery?.record).toMatchObject({
        messageId: sent.MessageId, body, eventSource: 'aws:sqs', md5OfBody: sent.MD5OfMessageBody,
        attributes: expect.objectContaining({ ApproximateReceiveCount: '1' }),
      });
      expect(delivery?.record.eventSourceARN).toMatch(/^arn:aws:sqs:eu-central-1:000000000000:porchlight-timers$/);
    });

    it('falls back to DelaySeconds for a body without dueAt', async () => {
      const start = Date.now();
      await sqs.send(new SendMessageCommand({ QueueUrl: shim.queueUrl, MessageBody: 'plain t-sqs-2', DelaySeconds: 1 }));
      await waitUntil('delivery of t-sqs-2', async () => deliveredBodies('t-sqs-2').length > 0, { timeoutMs: 5000, intervalMs: 10 });
      expect(deliveredBodies('t-sqs-2')[0]?.at).toBeGreaterThanOrEqual(start + 1000);
    });

    it('accepts SendMessageBatch and reports each entry', async () => {
      const now = Date.now();
      const result = await sqs.send(new SendMessageBatchCommand({
        QueueUrl: shim.queueUrl,
        Entries: [
          { Id: 'a', MessageBody: JSON.stringify({ marker: 't-sqs-3a', dueAt: now }) },
          { Id: 'b', MessageBody: JSON.stringify({ marker: 't-sqs-3b', dueAt: now }), DelaySeconds: 901 },
        ],
      }));
      expect(result.Successful?.map((s) => s.Id)).toEqual(['a']);
      expect(result.Failed).toEqual([expect.objectContaining({ Id: 'b', SenderFault: true, Code: 'InvalidParameterValue' })]);
      await waitUntil('delivery of t-sqs-3a', async () => deliveredBodies('t-sqs-3a').length > 0, { timeoutMs: 5000, intervalMs: 10 });
    });

    it('answers QueueDoesNotExist for another queue URL', async () => {
      await expect(sqs.send(new SendMessageCommand({ QueueUrl: `${shim.endpoint}/000000000000/elsewhere`, MessageBody: '{}' }))).rejects.toBeInstanceOf(QueueDoesNotExist);
    });
  });

  describe('ReportBatchItemFailures', () => {
    it('redelivers a failed item and sends it to the error destination after maxReceiveCount receives', async () => {
      const body = JSON.stringify({ marker: `t-sqs-4 ${FAIL}`, dueAt: Date.now() });
      await sqs.send(new SendMessageCommand({ QueueUrl: shim.queueUrl, MessageBody: body }));
      await waitUntil('the dead letter', async () => deadLetters.entries.some((d) => JSON.stringify(d.event).includes('t-sqs-4')), { timeoutMs: 5000, intervalMs: 10 });

      const attempts = deliveredBodies('t-sqs-4').map((d) => d.record.attributes.ApproximateReceiveCount);
      expect(attempts).toEqual(['1', '2', '3']);
      expect(deadLetters.entries.find((d) => JSON.stringify(d.event).includes('t-sqs-4'))).toMatchObject({ source: 'timer-queue', functionName: 'timer', attempts: 3 });
      expect(shim.pending()).toBe(0);
    });
  });

  describe('deliveryTime', () => {
    it('uses dueAt from a timer message body', () => {
      expect(deliveryTime('{"event":{},"dueAt":12345}', 900, 0)).toBe(12345);
    });

    it('uses the delay for a body that is not JSON or has no numeric dueAt', () => {
      expect(deliveryTime('not json', 3, 1000)).toBe(4000);
      expect(deliveryTime('{"dueAt":"soon"}', 0, 1000)).toBe(1000);
    });
  });
});
