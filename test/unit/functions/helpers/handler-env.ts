/**
 * Shared set-up for handler tests: the environment a function expects, mocked SDK clients (every
 * instance the handler module builds), rule events, and readers for what was published.
 */
import 'aws-sdk-client-mock-jest';
import { IoTClient } from '@aws-sdk/client-iot';
import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { mockClient } from 'aws-sdk-client-mock';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentRecord, TaskRecord } from '../../../../core/model';
import { TEST_FENCING_KEY } from '../../../helpers/in-memory-ports';

/** Fixed "now" for handler tests, epoch ms. */
export const NOW = Date.parse('2030-01-01T00:00:00.000Z');

/** The variables every function reads, as a deployment sets them. */
export const TEST_ENV: Readonly<Record<string, string>> = {
  TABLE_NAME: 'porchlight-test',
  TIMER_QUEUE_URL: 'https://sqs.eu-central-1.amazonaws.com/123456789012/porchlight-timers',
  IOT_DATA_ENDPOINT: 'https://example-ats.iot.eu-central-1.amazonaws.com',
  AWS_REGION: 'eu-central-1',
  POWERTOOLS_LOG_LEVEL: 'SILENT',
  POWERTOOLS_METRICS_DISABLED: 'true',
  POWERTOOLS_METRICS_NAMESPACE: 'Porchlight',
  // The handler tests' clock stands still: a window whose every eligible agent answered closes at once.
  MIN_PROPOSAL_WINDOW_MS: '0',
  FENCING_KEY_FILE: testFencingKeyFile(),
};

/** A key file holding the test fencing key, so tokens in handler tests are {@link testToken}'s. */
function testFencingKeyFile(): string {
  const path = join(mkdtempSync(join(tmpdir(), 'porchlight-fencing-')), 'fencing.key');
  writeFileSync(path, TEST_FENCING_KEY, { mode: 0o600 });
  return path;
}

/** Sets TEST_ENV (plus `extra`) in process.env; call before importing a handler module. */
export function setTestEnv(extra: Record<string, string> = {}): void {
  Object.assign(process.env, TEST_ENV, extra);
}

/** Mocks for every client class the functions use. */
export const mocks = {
  ddb: mockClient(DynamoDBDocumentClient),
  iotData: mockClient(IoTDataPlaneClient),
  sqs: mockClient(SQSClient),
  iot: mockClient(IoTClient),
};

/** Resets the mocks, pins the clock to NOW and spies on metrics; call in beforeEach. */
export function resetWorld(): jest.SpyInstance {
  for (const m of Object.values(mocks)) m.reset();
  jest.restoreAllMocks();
  jest.spyOn(Date, 'now').mockReturnValue(NOW);
  return jest.spyOn(Metrics.prototype, 'addMetric');
}

/** A rule event as IoT Core builds it: payload base64, topic, clientid(), timestamp(). */
export function ruleEvent(topic: string, payload: unknown, clientId?: string): Record<string, unknown> {
  const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload), 'utf8');
  return { payload: bytes.toString('base64'), topic, receivedAt: NOW, ...(clientId !== undefined ? { clientId } : {}), taskId: topic.split('/')[1] };
}

/** Every publish so far: topic, qos, retain and the decoded JSON payload (null for zero bytes). */
export function published(): { topic: string; qos: number; retain: boolean; payload: unknown }[] {
  return mocks.iotData.commandCalls(PublishCommand).map((c) => {
    const input = c.args[0].input;
    const bytes = Buffer.from((input.payload as Uint8Array | undefined) ?? new Uint8Array(0));
    return { topic: input.topic!, qos: input.qos!, retain: input.retain!, payload: bytes.length === 0 ? null : JSON.parse(bytes.toString('utf8')) };
  });
}

/** The stored form of a task item, as DynamoTaskStore writes it. */
export function storedTask(task: TaskRecord, assignees: string[] = []): Record<string, unknown> {
  return { pk: `TASK#${task.taskId}`, sk: 'TASK', version: task.version, assignees, data: JSON.stringify(task) };
}

/** The stored form of an agent profile, as DynamoRegistry writes it. */
export function storedAgent(agent: AgentRecord): Record<string, unknown> {
  return { pk: `AGENT#${agent.agentId}`, sk: 'PROFILE', version: agent.version, skills: agent.resume.skills, data: JSON.stringify(agent) };
}
