/**
 * End-to-end latency of the demo task on the local stack, next to the floor it stands on.
 *
 *   npx tsx bench/e2e.ts [--runs 100]
 *
 * Starts the local stack (Mosquitto with mutual TLS, DynamoDB Local, the rules engine and the
 * real handlers), launches both example agents as their own processes, then:
 *   1. submits the demo task `runs` times, one after another, timing request → result at the client;
 *   2. measures the broker's raw QoS 1 publish → receive latency between two TLS clients;
 *   3. measures one DynamoDB Local write (PutItem) from this process;
 *   4. counts, through counting proxies in front of DynamoDB Local and the data-plane shim, the
 *      DynamoDB requests and orchestrator publishes each task costs, and reports the sequential
 *      broker hops on the task's critical path.
 * so the orchestration overhead over that floor is visible.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import type { MqttClient } from 'mqtt';
import type { AgentProcess } from '../cli/agent-processes';
import { PorchlightClient, type TaskEvent } from '../cli/client';
import { DEMO_AGENTS, DEMO_REQUEST_PATH, launchDemoAgents } from '../cli/commands/demo';
import { CLI_CLIENT_ID, localRegistry, waitForAgents } from '../cli/session';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../local/dynamodb';
import { freePort } from '../local/free-port';
import { quietLog } from '../local/log';
import { connectWithCertificate } from '../local/mqtt-connect';
import { startLocalStack } from '../local/stack';
import { ORCHESTRATOR_IDENTITY, startLocalBroker } from '../local/broker';
import { topics } from '../core/topics';
import type { TaskStatus } from '../core/schemas';
import { percentile } from './lib/measure';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** An HTTP proxy that forwards everything to `target` and counts requests by a label. */
interface CountingProxy {
  readonly endpoint: string;
  readonly counts: Map<string, number>;
  reset(): void;
  close(): Promise<void>;
}

async function countingProxy(targetPort: number, label: (method: string, path: string, headers: Record<string, string | string[] | undefined>) => string): Promise<CountingProxy> {
  const counts = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const key = label(req.method ?? 'GET', req.url ?? '/', req.headers);
    counts.set(key, (counts.get(key) ?? 0) + 1);
    const upstream = httpRequest({ host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', (err) => {
      res.writeHead(502);
      res.end(String(err));
    });
    req.pipe(upstream);
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts,
    reset: () => counts.clear(),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function summary(label: string, values: readonly number[]): string {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return `${label.padEnd(36)} n=${String(values.length).padStart(4)}  p50=${percentile(values, 50).toFixed(2).padStart(8)} ms  p95=${percentile(values, 95).toFixed(2).padStart(8)} ms  mean=${mean.toFixed(2).padStart(8)} ms`;
}

/**
 * Raw broker latency: QoS 1 publish by one TLS client → receipt by another, as an agent hands a
 * step's progress to the orchestrator. Measured on a second Mosquitto with the stack's own
 * configuration (CA, mutual TLS, generated ACL) but no rules engine, so no handler runs for these
 * messages and the stack's orchestrator session is left alone.
 */
async function brokerFloor(stateDir: string, samples: number): Promise<number[]> {
  const broker = await startLocalBroker({ stateDir: join(stateDir, 'floor-broker'), log: quietLog('bench-floor') });
  const publisherCert = await broker.issue('bench-publisher', 'agent');
  const subscriberCert = await broker.issue(ORCHESTRATOR_IDENTITY, 'orchestrator');
  const publisher: MqttClient = await connectWithCertificate({ host: broker.mqttHost, port: broker.mqttPort, ...publisherCert });
  const subscriber: MqttClient = await connectWithCertificate({ host: broker.mqttHost, port: broker.mqttPort, ...subscriberCert });
  try {
    const topic = topics.taskProgress('bench-floor', 's1', 'bench-publisher');
    const granted = await subscriber.subscribeAsync(topic, { qos: 1 });
    if ((granted[0]?.qos ?? 0x80) >= 0x80) throw new Error(`the floor broker refused the subscription to ${topic}`);
    const latencies: number[] = [];
    for (let i = 0; i < samples; i += 1) {
      const marker = `sample-${i}`;
      const received = new Promise<void>((resolve) => {
        const onMessage = (_topic: string, payload: Buffer): void => {
          if (!payload.toString().includes(marker)) return;
          subscriber.off('message', onMessage);
          resolve();
        };
        subscriber.on('message', onMessage);
      });
      const started = performance.now();
      await publisher.publishAsync(topic, JSON.stringify({ v: 1, taskId: 'bench-floor', stepId: 's1', epoch: 1, message: marker }), { qos: 1 });
      await received;
      latencies.push(performance.now() - started);
    }
    return latencies;
  } finally {
    await publisher.endAsync();
    await subscriber.endAsync();
    await broker.stop();
  }
}

/** One DynamoDB Local write, as the handlers make it (a PutItem of a small item). */
async function dynamoFloor(endpoint: string, tableName: string, samples: number): Promise<number[]> {
  const client = new DynamoDBClient({ endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  try {
    const latencies: number[] = [];
    for (let i = 0; i < samples; i += 1) {
      const started = performance.now();
      await client.send(new PutItemCommand({ TableName: tableName, Item: { pk: { S: `BENCH#${i}` }, sk: { S: 'BENCH' }, n: { N: String(i) } } }));
      latencies.push(performance.now() - started);
    }
    return latencies;
  } finally {
    client.destroy();
  }
}

/** Broker traversals on the critical path: request, the last proposal, assign+output per step on the longest chain, result. */
function criticalPathHops(status: TaskStatus): number {
  const steps = status.plan?.steps ?? [];
  const producer = new Map<string, string>();
  for (const s of steps) for (const a of s.produces) producer.set(a, s.id);
  const depth = new Map<string, number>();
  for (const s of steps) {
    const parents = s.consumes.map((a) => producer.get(a)).filter((p): p is string => p !== undefined);
    depth.set(s.id, 1 + Math.max(0, ...parents.map((p) => depth.get(p) ?? 0)));
  }
  // Request to the orchestrator, its call for bids, the last proposal, assignment and output per step
  // of the longest chain, the result.
  return 1 + 1 + 1 + 2 * Math.max(0, ...depth.values()) + 1;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '100' } } });
  const runs = Number(values.runs);
  const stateDir = await mkdtemp(join(tmpdir(), 'porchlight-bench-'));
  const dynamoPort = await freePort();
  const dataPlanePort = await freePort();
  const dynamoProxy = await countingProxy(dynamoPort, (_m, _p, h) => String(h['x-amz-target'] ?? 'unknown').replace('DynamoDB_20120810.', ''));
  const publishProxy = await countingProxy(dataPlanePort, (_m, path) => (path.startsWith('/topics/') ? 'Publish' : 'other'));
  const stack = await startLocalStack({
    stateDir, inMemory: true, log: quietLog('bench'), sweeperIntervalMs: false,
    ports: { dynamo: dynamoPort, dataPlane: dataPlanePort },
    functionEnv: { DYNAMODB_ENDPOINT: dynamoProxy.endpoint, IOT_DATA_ENDPOINT: publishProxy.endpoint, PROPOSAL_WINDOW_MS: '5000' },
  });
  let agents: AgentProcess[] = [];
  const registry = localRegistry({ dynamoEndpoint: stack.endpoints.dynamoEndpoint, tableName: stack.tableName, region: LOCAL_REGION });
  let client: PorchlightClient | undefined;
  try {
    agents = await launchDemoAgents(stack);
    await waitForAgents(registry.registry, DEMO_AGENTS.map((a) => a.agentId), 60_000);
    const cert = await stack.issue(CLI_CLIENT_ID, 'client');
    client = await PorchlightClient.connect({ host: stack.endpoints.mqttHost, port: stack.endpoints.mqttPort, ...cert, clientId: CLI_CLIENT_ID });
    const request: unknown = JSON.parse(readFileSync(DEMO_REQUEST_PATH, 'utf8'));

    // Warm-up: the first tasks pay JIT and connection set-up in every process.
    for (let i = 0; i < 3; i += 1) {
      const task = await client.submit(request);
      await client.watch(task.taskId, () => undefined, { timeoutMs: 60_000 });
    }

    dynamoProxy.reset();
    publishProxy.reset();
    const latencies: number[] = [];
    let failed = 0;
    let lastStatus: TaskStatus | undefined;
    for (let i = 0; i < runs; i += 1) {
      const started = performance.now();
      const task = await client.submit(request);
      const result = await client.watch(task.taskId, (e: TaskEvent) => {
        if (e.type === 'status') lastStatus = e.status;
      }, { timeoutMs: 60_000 });
      latencies.push(performance.now() - started);
      if (result.state !== 'completed') failed += 1;
    }
    const dynamoCounts = new Map(dynamoProxy.counts);
    const publishCounts = new Map(publishProxy.counts);

    const broker = await brokerFloor(stateDir, 500);
    const dynamo = await dynamoFloor(stack.endpoints.dynamoEndpoint, stack.tableName, 500);

    const perTask = (n: number | undefined): string => ((n ?? 0) / runs).toFixed(1);
    const writes = ['PutItem', 'UpdateItem', 'DeleteItem', 'TransactWriteItems', 'BatchWriteItem'];
    const reads = ['GetItem', 'Query', 'BatchGetItem', 'Scan'];
    const sum = (keys: string[]): number => keys.reduce((a, k) => a + (dynamoCounts.get(k) ?? 0), 0);
    const out: string[] = [];
    out.push(`demo task (2 agents, 2-step merged plan), ${runs} sequential runs, ${failed} not completed`);
    out.push(summary('request → result (client)', latencies));
    out.push(summary('broker publish → receive (QoS 1, TLS)', broker));
    out.push(summary('DynamoDB Local PutItem', dynamo));
    if (lastStatus) out.push(`sequential broker hops on the critical path: ${criticalPathHops(lastStatus)} (request, call for bids, last proposal, assign+output per step of the longest chain, result)`);
    out.push(`DynamoDB writes per task: ${perTask(sum(writes))} (${writes.filter((k) => dynamoCounts.has(k)).map((k) => `${k} ${perTask(dynamoCounts.get(k))}`).join(', ')})`);
    out.push(`DynamoDB reads per task:  ${perTask(sum(reads))} (${reads.filter((k) => dynamoCounts.has(k)).map((k) => `${k} ${perTask(dynamoCounts.get(k))}`).join(', ')})`);
    out.push(`orchestrator publishes per task: ${perTask(publishCounts.get('Publish'))}`);
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    await client?.close();
    await Promise.all(agents.map((a) => a.stop()));
    registry.close();
    await stack.stop();
    await dynamoProxy.close();
    await publishProxy.close();
    await rm(stateDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/e2e: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
