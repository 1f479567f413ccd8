/**
 * The market benchmark: an honest agent and a liar bid on the same tasks through the whole local
 * stack. Both run the same skill at the same real cost ($0.01) and duration (200 ms) and report
 * their real usage; the liar's résumé and bids claim a tenth of both. Planning and matching start
 * from the claims (the liar wins) and move to the orchestrator's own measurements
 * (core/reputation.ts) as they accumulate (the honest agent wins).
 *
 *   npx tsx bench/market.ts [--tasks 200] [--concurrency 2]
 *
 * Progress goes to stderr; the last stdout line is exactly
 *   liar_share_first_20=… liar_share_last_100=…
 * (fractions of the tasks the liar ran, 0–1). Exits 1 when a task did not complete or the liar
 * ran more than 10 % of the last 100.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { spawnAgentProcess } from '../cli/agent-processes';
import { waitForAgents } from '../cli/session';
import { reputationOf } from '../core/reputation';
import { decodePayload, parseMessage, TaskRequest, TaskResult } from '../core/schemas';
import { filters, topics } from '../core/topics';
import { DynamoRegistry } from '../functions/adapters/dynamo-registry';
import { MARKET_SKILL } from '../agents/examples/market-bidder/agent';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../local/dynamodb';
import { quietLog } from '../local/log';
import { connectWithCertificate } from '../local/mqtt-connect';
import { startLocalStack, type LocalStack } from '../local/stack';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const ENTRY = resolve(__dirname, '..', 'agents', 'examples', 'market-bidder', 'main.ts');
const HONEST = 'market-honest';
const LIAR = 'market-liar';
const CLIENT_ID = 'market-client';

/** Share of `winners` that is the liar (0 for an empty list). */
function liarShare(winners: readonly (string | undefined)[]): number {
  return winners.length === 0 ? 0 : winners.filter((w) => w === LIAR).length / winners.length;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { tasks: { type: 'string', default: '200' }, concurrency: { type: 'string', default: '2' } } });
  const n = Number(values.tasks);
  const concurrency = Number(values.concurrency);
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(concurrency) || concurrency < 1) throw new Error('--tasks and --concurrency must be whole numbers above 0');
  const stamp = (): string => new Date().toISOString().slice(11, 19);
  const progress = (line: string): void => void process.stderr.write(`[${stamp()}] ${line} load=${loadavg()[0]!.toFixed(2)}\n`);
  const loadBefore = loadavg()[0]!;

  const stateDir = await mkdtemp(join(tmpdir(), 'porchlight-market-'));
  let stack: LocalStack | undefined;
  const children: ReturnType<typeof spawnAgentProcess>[] = [];
  let dynamo: DynamoDBClient | undefined;
  try {
    stack = await startLocalStack({
      stateDir, inMemory: true, log: quietLog('market'), sweeperIntervalMs: 1000,
      functionEnv: { LEASE_MS: '10000', PROPOSAL_WINDOW_MS: '3000' },
    });
    const s = stack;
    dynamo = new DynamoDBClient({ endpoint: s.endpoints.dynamoEndpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
    const registry = new DynamoRegistry({ client: DynamoDBDocumentClient.from(dynamo), tableName: s.tableName });
    for (const [agentId, claim] of [[HONEST, '1'], [LIAR, '0.1']] as const) {
      const cert = await s.issue(agentId, 'agent');
      const child = spawnAgentProcess(ENTRY, { agentId, host: s.endpoints.mqttHost, port: s.endpoints.mqttPort, ...cert }, { PORCHLIGHT_MARKET_CLAIM_FACTOR: claim, PORCHLIGHT_LOG_LEVEL: 'warn' });
      const log = createWriteStream(join(s.paths.logsDir, `${agentId}.log`), { flags: 'a' });
      child.stdout?.pipe(log);
      child.stderr?.pipe(log);
      children.push(child);
    }
    await waitForAgents(registry, [HONEST, LIAR], 90_000);
    progress(`both agents online; submitting ${n} tasks, ${concurrency} at a time`);

    const cert = await s.issue(CLIENT_ID, 'client');
    const client = await connectWithCertificate({ host: s.endpoints.mqttHost, port: s.endpoints.mqttPort, ...cert, clientId: CLIENT_ID });
    const winners: (string | undefined)[] = new Array<string | undefined>(n);
    const states: string[] = new Array<string>(n);
    const waiters = new Map<string, (result: TaskResult) => void>();
    client.on('message', (topic, payload) => {
      if (payload.length === 0) return;
      try {
        const result = decodePayload(TaskResult, payload, `result on ${topic}`);
        waiters.get(result.taskId)?.(result);
      } catch {
        // not a result
      }
    });
    await client.subscribeAsync(filters.clientResults(CLIENT_ID), { qos: 1 });

    const runId = randomBytes(3).toString('hex');
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < n; i = next++) {
        const taskId = `m${i}-${runId}`;
        const request = parseMessage(TaskRequest, {
          v: 1, goal: `market task ${i}`, input: { item: `item-${i}` }, want: ['quote'], skills: [MARKET_SKILL], proposalWindowMs: 3000,
          constraints: { deadline: new Date(Date.now() + 120_000).toISOString() },
          cancelHash: createHash('sha256').update(randomBytes(16)).digest('hex'),
        }, 'market request');
        const result = await new Promise<TaskResult | undefined>((done) => {
          const timer = setTimeout(() => done(undefined), 135_000);
          waiters.set(taskId, (r) => {
            clearTimeout(timer);
            done(r);
          });
          client.publishAsync(topics.clientRequest(CLIENT_ID, taskId), JSON.stringify(request), { qos: 1 }).catch(() => done(undefined));
        });
        waiters.delete(taskId);
        states[i] = result?.state ?? 'no-result';
        const quote = result?.outputs?.quote as { agentId?: unknown } | undefined;
        winners[i] = typeof quote?.agentId === 'string' ? quote.agentId : undefined;
        if ((i + 1) % 20 === 0) progress(`task ${i + 1}/${n}: liar share so far ${liarShare(winners.slice(0, i + 1)).toFixed(2)}`);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, () => worker()));
    await client.endAsync();

    const sums = await registry.measurements([HONEST, LIAR]);
    for (const id of [HONEST, LIAR]) {
      const rep = reputationOf(sums.get(id));
      progress(`${id}: ${rep.steps} measured steps, success ${rep.successRate?.toFixed(2) ?? '–'}, p50 ${rep.p50Ms ?? '–'} ms, p95 ${rep.p95Ms ?? '–'} ms, ` +
        `actual/bid USD ${rep.usdRatio?.toFixed(2) ?? '–'} ms ${rep.msRatio?.toFixed(2) ?? '–'}, factors USD ×${rep.usdFactor.toFixed(2)} ms ×${rep.msFactor.toFixed(2)}`);
    }
    const notCompleted = states.filter((st) => st !== 'completed').length;
    const first = liarShare(winners.slice(0, Math.min(20, n)));
    const last = liarShare(winners.slice(Math.max(0, n - 100)));
    process.stderr.write(`machine: ${cpus().length} cores, 1-min load ${loadBefore.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after; ${n - notCompleted}/${n} completed\n`);
    process.stdout.write(`liar_share_first_20=${first.toFixed(2)} liar_share_last_100=${last.toFixed(2)}\n`);
    if (notCompleted > 0 || last > 0.1) process.exitCode = 1;
  } finally {
    for (const child of children) child.kill('SIGTERM');
    dynamo?.destroy();
    await stack?.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/market: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
