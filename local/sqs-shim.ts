/**
 * A minimal SQS endpoint for the timer queue, on 127.0.0.1: `SendMessage` and
 * `SendMessageBatch` exactly as @aws-sdk/client-sqs sends them (AWS JSON 1.0, `POST /` with
 * `X-Amz-Target: AmazonSQS.<Action>`), and an in-process event source mapping that invokes the
 * `timer` function with an SQSEvent when a message is due, honouring ReportBatchItemFailures.
 *
 * A message body `{event, dueAt}` (functions/adapters/sqs-timer.ts) is delivered at `dueAt`;
 * any other body after its DelaySeconds. A record the function reports as failed (or every
 * record, when it throws) is redelivered after a backoff, like a visibility timeout; after
 * `maxReceiveCount` receives it goes to the error destination, like a redrive policy.
 * The queue lives in memory: messages pending when the stack stops are lost, which is what the
 * sweeper exists for.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { DeadLetterSink } from './dead-letters';
import type { FunctionInvoker } from './function-invoker';
import { silentLog, type StackLog } from './log';

/** The queue name the local stack uses for timers. */
export const LOCAL_TIMER_QUEUE = 'porchlight-timers';
/** The account id in local queue URLs and ARNs. */
export const LOCAL_ACCOUNT_ID = '000000000000';
/** SQS's message size limit. */
const MAX_BODY_BYTES = 256 * 1024;
/** Longest single setTimeout Node allows; longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The URL of queue `queueName` served by a shim on `port`. */
export function localQueueUrl(port: number, queueName: string = LOCAL_TIMER_QUEUE): string {
  return `http://127.0.0.1:${port}/${LOCAL_ACCOUNT_ID}/${queueName}`;
}

/** Options for {@link startSqsShim}. */
export interface SqsShimOptions {
  readonly port: number;
  readonly invoker: FunctionInvoker;
  readonly deadLetters: DeadLetterSink;
  /** @default LOCAL_TIMER_QUEUE */
  readonly queueName?: string;
  /** The function the queue triggers. @default 'timer' */
  readonly functionName?: string;
  /** @default 'eu-central-1' */
  readonly region?: string;
  /** Receives before a message goes to the error destination (redrive maxReceiveCount). @default 5 */
  readonly maxReceiveCount?: number;
  /** Delay before redelivering a failed record, by receive count so far. @default 1 s doubling, at most 30 s */
  readonly retryDelayMs?: (receiveCount: number) => number;
  /** Records per invocation. @default 10 */
  readonly batchSize?: number;
  /** Invocations in flight at once. @default 2 */
  readonly concurrency?: number;
  readonly log?: StackLog;
}

/** A running queue shim. */
export interface SqsShim {
  /** `http://127.0.0.1:<port>`: SQS_ENDPOINT. */
  readonly endpoint: string;
  /** TIMER_QUEUE_URL. */
  readonly queueUrl: string;
  readonly port: number;
  /** Messages not yet delivered successfully (scheduled, waiting, or being handled). */
  pending(): number;
  /** Stops accepting messages, cancels scheduled deliveries, waits for running invocations. */
  stop(): Promise<void>;
}

interface QueuedMessage {
  readonly messageId: string;
  readonly body: string;
  readonly md5: string;
  readonly sentAt: number;
  receiveCount: number;
  firstReceivedAt?: number;
  timer?: NodeJS.Timeout;
}

/** A refused request: the JSON-protocol error shape the SDK turns into a named exception. */
export class SqsRequestError extends Error {
  constructor(
    readonly status: number,
    readonly errorType: string,
    readonly queryCode: string,
    message: string,
  ) {
    super(message);
    this.name = 'SqsRequestError';
  }
}

const md5 = (text: string): string => createHash('md5').update(text, 'utf8').digest('hex');

/** When a message body asks to be delivered: `dueAt` for timer messages, else now + DelaySeconds. */
export function deliveryTime(body: string, delaySeconds: number, now: number): number {
  try {
    const parsed = JSON.parse(body) as { dueAt?: unknown };
    if (parsed !== null && typeof parsed === 'object' && typeof parsed.dueAt === 'number' && Number.isFinite(parsed.dueAt)) return parsed.dueAt;
  } catch {
    // Not JSON: the timer function reports it; delivery falls back to the SQS delay.
  }
  return now + delaySeconds * 1000;
}

function badParameter(message: string): SqsRequestError {
  return new SqsRequestError(400, 'com.amazonaws.sqs#InvalidParameterValue', 'InvalidParameterValue;Sender', message);
}

function checkMessage(body: unknown, delay: unknown): { body: string; delaySeconds: number } {
  if (typeof body !== 'string' || body.length === 0) throw new SqsRequestError(400, 'com.amazonaws.sqs#MissingParameter', 'MissingParameter;Sender', 'MessageBody is required');
  if (Buffer.byteLength(body) > MAX_BODY_BYTES) throw badParameter(`MessageBody is ${Buffer.byteLength(body)} bytes; the limit is ${MAX_BODY_BYTES}`);
  const delaySeconds = delay === undefined ? 0 : delay;
  if (typeof delaySeconds !== 'number' || !Number.isInteger(delaySeconds) || delaySeconds < 0 || delaySeconds > 900) {
    throw badParameter(`DelaySeconds must be a whole number from 0 to 900; got ${JSON.stringify(delay)}`);
  }
  return { body, delaySeconds };
}

/** Starts the queue endpoint and its event source mapping. */
export async function startSqsShim(options: SqsShimOptions): Promise<SqsShim> {
  const log = options.log ?? silentLog;
  const queueName = options.queueName ?? LOCAL_TIMER_QUEUE;
  const functionName = options.functionName ?? 'timer';
  const region = options.region ?? 'eu-central-1';
  const maxReceiveCount = options.maxReceiveCount ?? 5;
  const retryDelayMs = options.retryDelayMs ?? ((n: number) => Math.min(30_000, 1000 * 2 ** Math.max(0, n - 1)));
  const batchSize = Math.max(1, Math.min(10, options.batchSize ?? 10));
  const concurrency = Math.max(1, options.concurrency ?? 2);
  const endpoint = `http://127.0.0.1:${options.port}`;
  const queueUrl = localQueueUrl(options.port, queueName);
  const queueArn = `arn:aws:sqs:${region}:${LOCAL_ACCOUNT_ID}:${queueName}`;

  const messages = new Map<string, QueuedMessage>();
  const ready: QueuedMessage[] = [];
  const running = new Set<Promise<void>>();
  let stopped = false;

  const schedule = (message: QueuedMessage, at: number): void => {
    if (stopped) return;
    const wait = at - Date.now();
    if (wait <= 0) {
      ready.push(message);
      pump();
      return;
    }
    // +1 ms: a timer may fire within the same millisecond as dueAt, and the timer function
    // sends a message that is not yet due back to the queue.
    message.timer = setTimeout(() => {
      message.timer = undefined;
      schedule(message, at);
    }, Math.min(wait + 1, MAX_TIMER_MS));
  };

  const record = (message: QueuedMessage): SQSRecord => ({
    messageId: message.messageId,
    receiptHandle: `${message.messageId}#${message.receiveCount}`,
    body: message.body,
    attributes: {
      ApproximateReceiveCount: String(message.receiveCount),
      SentTimestamp: String(message.sentAt),
      SenderId: 'LOCAL',
      ApproximateFirstReceiveTimestamp: String(message.firstReceivedAt ?? Date.now()),
    },
    messageAttributes: {},
    md5OfBody: message.md5,
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: region,
  });

  const retryOrGiveUp = async (message: QueuedMessage, error: string): Promise<void> => {
    if (message.receiveCount >= maxReceiveCount) {
      messages.delete(message.messageId);
      await options.deadLetters.write({
        source: 'timer-queue', functionName, attempts: message.receiveCount, error, failedAt: new Date().toISOString(), event: record(message),
      }).catch((err: Error) => log.error('could not write to the error destination', { error: err.message }));
      return;
    }
    log.warn('timer message will be redelivered', { messageId: message.messageId, receiveCount: message.receiveCount, error });
    schedule(message, Date.now() + retryDelayMs(message.receiveCount));
  };

  const deliver = async (batch: QueuedMessage[]): Promise<void> => {
    for (const m of batch) {
      m.receiveCount += 1;
      m.firstReceivedAt ??= Date.now();
    }
    const event: SQSEvent = { Records: batch.map(record) };
    let failed: Map<string, string>;
    try {
      const response = (await options.invoker.invoke(functionName, event)) as Partial<SQSBatchResponse> | null | undefined;
      const failures = response?.batchItemFailures ?? [];
      const ids = new Set(batch.map((m) => m.messageId));
      // Lambda treats a failure naming an id not in the batch as a failure of the whole batch.
      const bogus = failures.some((f) => typeof f?.itemIdentifier !== 'string' || !ids.has(f.itemIdentifier));
      failed = new Map(
        bogus
          ? batch.map((m) => [m.messageId, 'batchItemFailures named an unknown item; the whole batch fails'])
          : failures.map((f) => [f.itemIdentifier, 'reported in batchItemFailures']),
      );
    } catch (err) {
      failed = new Map(batch.map((m) => [m.messageId, (err as Error).message]));
    }
    for (const m of batch) {
      const why = failed.get(m.messageId);
      if (why === undefined) messages.delete(m.messageId);
      else await retryOrGiveUp(m, why);
    }
  };

  function pump(): void {
    while (!stopped && ready.length > 0 && running.size < concurrency) {
      const batch = ready.splice(0, batchSize);
      const run = deliver(batch).finally(() => {
        running.delete(run);
        pump();
      });
      running.add(run);
    }
  }

  const enqueue = (body: string, delaySeconds: number): QueuedMessage => {
    const message: QueuedMessage = { messageId: randomUUID(), body, md5: md5(body), sentAt: Date.now(), receiveCount: 0 };
    messages.set(message.messageId, message);
    schedule(message, deliveryTime(body, delaySeconds, message.sentAt));
    return message;
  };

  const checkQueue = (url: unknown): void => {
    const name = typeof url === 'string' ? url.split('/').pop() : undefined;
    if (name !== queueName) {
      throw new SqsRequestError(400, 'com.amazonaws.sqs#QueueDoesNotExist', 'AWS.SimpleQueueService.NonExistentQueue;Sender', `The specified queue does not exist: ${String(url)}`);
    }
  };

  const act = (target: string, input: Record<string, unknown>): object => {
    switch (target) {
      case 'AmazonSQS.SendMessage': {
        checkQueue(input.QueueUrl);
        const { body, delaySeconds } = checkMessage(input.MessageBody, input.DelaySeconds);
        const m = enqueue(body, delaySeconds);
        return { MessageId: m.messageId, MD5OfMessageBody: m.md5 };
      }
      case 'AmazonSQS.SendMessageBatch': {
        checkQueue(input.QueueUrl);
        const entries = input.Entries;
        if (!Array.isArray(entries) || entries.length === 0) throw new SqsRequestError(400, 'com.amazonaws.sqs#EmptyBatchRequest', 'AWS.SimpleQueueService.EmptyBatchRequest;Sender', 'Entries must not be empty');
        if (entries.length > 10) throw new SqsRequestError(400, 'com.amazonaws.sqs#TooManyEntriesInBatchRequest', 'AWS.SimpleQueueService.TooManyEntriesInBatchRequest;Sender', 'at most 10 entries per batch');
        const Successful: object[] = [];
        const Failed: object[] = [];
        for (const raw of entries as Record<string, unknown>[]) {
          const id = typeof raw?.Id === 'string' ? raw.Id : '';
          try {
            const { body, delaySeconds } = checkMessage(raw?.MessageBody, raw?.DelaySeconds);
            const m = enqueue(body, delaySeconds);
            Successful.push({ Id: id, MessageId: m.messageId, MD5OfMessageBody: m.md5 });
          } catch (err) {
            Failed.push({ Id: id, SenderFault: true, Code: err instanceof SqsRequestError ? err.queryCode.split(';')[0] : 'InternalError', Message: (err as Error).message });
          }
        }
        return { Successful, Failed };
      }
      case 'AmazonSQS.GetQueueUrl':
        if (input.QueueName !== queueName) checkQueue(input.QueueName);
        return { QueueUrl: queueUrl };
      default:
        throw new SqsRequestError(400, 'com.amazonaws.sqs#UnsupportedOperation', 'AWS.SimpleQueueService.UnsupportedOperation;Sender', `${target} is not supported by the local queue`);
    }
  };

  const respond = (res: ServerResponse, status: number, body: object, queryError?: string): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/x-amz-json-1.0',
      'content-length': Buffer.byteLength(text),
      'x-amzn-requestid': randomUUID(),
      ...(queryError !== undefined ? { 'x-amzn-query-error': queryError } : {}),
    });
    res.end(text);
  };

  const handle = (req: IncomingMessage, res: ServerResponse, raw: string): void => {
    try {
      if (stopped) throw new SqsRequestError(503, 'com.amazonaws.sqs#ServiceUnavailable', 'ServiceUnavailable;Server', 'the local queue is stopping');
      const target = req.headers['x-amz-target'];
      if (req.method !== 'POST' || typeof target !== 'string') {
        throw new SqsRequestError(400, 'com.amazonaws.sqs#InvalidAction', 'InvalidAction;Sender', 'expected POST with X-Amz-Target: AmazonSQS.<Action> (AWS JSON 1.0)');
      }
      let input: unknown;
      try {
        input = JSON.parse(raw);
      } catch {
        throw new SqsRequestError(400, 'com.amazonaws.sqs#InvalidParameterValue', 'InvalidParameterValue;Sender', 'request body is not JSON');
      }
      if (input === null || typeof input !== 'object' || Array.isArray(input)) throw badParameter('request body must be a JSON object');
      respond(res, 200, act(target, input as Record<string, unknown>));
    } catch (err) {
      const e = err instanceof SqsRequestError ? err : new SqsRequestError(500, 'com.amazonaws.sqs#InternalError', 'InternalError;Receiver', (err as Error).message);
      log.warn('SQS request refused', { error: e.errorType, message: e.message });
      respond(res, e.status, { __type: e.errorType, message: e.message }, e.queryCode);
    }
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.byteLength;
      if (size <= 11 * MAX_BODY_BYTES) chunks.push(c);
    });
    req.on('end', () => handle(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  log.info('SQS shim ready', { queueUrl });

  return {
    endpoint,
    queueUrl,
    port: options.port,
    pending: () => messages.size,
    stop: async () => {
      stopped = true;
      for (const m of messages.values()) clearTimeout(m.timer);
      ready.length = 0;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await Promise.allSettled([...running]);
    },
  };
}
