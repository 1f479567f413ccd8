/**
 * The chaos scenario, shared by test/e2e/chaos.test.ts and bench/chaos.ts: N two-step tasks
 * through the whole local stack while
 *   - a random agent process is SIGKILLed every few seconds and restarted (same identity),
 *   - the broker is restarted once, in order, mid-run,
 *   - a fraction of messages is delivered twice, both to the handlers (rules engine) and to the
 *     agents (runtime inbound dispatch).
 * Then it checks that every task reached a terminal state (result seen by the client, record
 * terminal in DynamoDB) and, from the agents' effect ledger, that no accepted step's effect
 * happened twice.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { MqttClient } from 'mqtt';
import { DynamoTaskStore } from '../../functions/adapters/dynamo-task-store';
import { DynamoRegistry } from '../../functions/adapters/dynamo-registry';
import { spawnAgentProcess } from '../../cli/agent-processes';
import { waitForAgents } from '../../cli/session';
import { isTerminal, type TaskRecord } from '../../core/model';
import { decodePayload, parseMessage, TaskRequest, TaskResult } from '../../core/schemas';
import { filters, topics } from '../../core/topics';
import { CHAOS_SKILLS, type ChaosSkill, type EffectLine } from '../../agents/examples/chaos-worker/agent';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../local/dynamodb';
import { seededRandom, type RandomSource } from '../../local/fault-injection';
import { quietLog, type StackLog } from '../../local/log';
import { connectWithCertificate, reconnectWithBackoff } from '../../local/mqtt-connect';
import { startLocalStack, type LocalStack } from '../../local/stack';
import { percentile } from './measure';

/** Settings of one chaos run; everything but `tasks` has a default. */
export interface ChaosOptions {
  /** Tasks to submit. */
  readonly tasks: number;
  /** Agent processes per skill (chaos-a, chaos-b). @default 3 */
  readonly agentsPerSkill?: number;
  /** Tasks in flight at once (submitted, no result yet). @default 16 */
  readonly concurrency?: number;
  /** Gap between two kills, ms. @default [2000, 4000] */
  readonly killEveryMs?: readonly [number, number];
  /** How long a killed agent stays down, ms. @default [500, 1000] */
  readonly restartAfterMs?: readonly [number, number];
  /** Restart the broker once this fraction of the tasks has been submitted. @default 0.4 */
  readonly brokerRestartAt?: number;
  /** How long the broker stays down, ms. @default 500 */
  readonly brokerDowntimeMs?: number;
  /** Fraction of messages delivered twice (rules engine and agents). @default 0.05 */
  readonly duplicateRate?: number;
  /** Seed of every random choice of the run. @default 42 */
  readonly seed?: number;
  /** Orchestrator lease, ms. @default 4000 */
  readonly leaseMs?: number;
  /** Assignments per step before a task fails. @default 6 */
  readonly maxAttempts?: number;
  /** Proposal window of each request, ms (it closes early once every eligible agent answered). @default 3000 */
  readonly proposalWindowMs?: number;
  /** Each task's deadline after submission, ms: a stuck task fails with a reason instead of hanging. @default 120000 */
  readonly taskDeadlineMs?: number;
  /** How long to wait for the last results after the last submission, ms. @default 150000 */
  readonly settleTimeoutMs?: number;
  /** Keep the state directory (logs, ledger) instead of deleting it. @default false */
  readonly keepState?: boolean;
  /** Progress lines (e.g. to stderr). @default none */
  readonly progress?: (line: string) => void;
  /** The stack's log. @default warnings and errors to stderr */
  readonly log?: StackLog;
}

/** One failed task's reason, grouped. */
export type ReasonHistogram = Record<string, number>;

/** What a chaos run found. */
export interface ChaosReport {
  readonly submitted: number;
  readonly completed: number;
  readonly failed: number;
  /** Terminal but neither completed nor failed (canceled, rejected). */
  readonly otherTerminal: number;
  /** Submitted tasks with no terminal result. */
  readonly lost: number;
  /** Accepted effects that happened more than once, plus result effects missing from or repeated in the ledger. */
  readonly duplicateEffects: number;
  /** What made up `duplicateEffects`, first few. */
  readonly effectFindings: readonly string[];
  readonly failureReasons: ReasonHistogram;
  /** Results that arrived on the client's live subscription vs. read back from the retained topic afterwards. */
  readonly resultsLive: number;
  readonly resultsFromRetained: number;
  /** DynamoDB cross-check: tasks absent from the store, and present but not terminal. */
  readonly storeMissing: number;
  readonly storeNotTerminal: number;
  readonly ledgerLines: number;
  /** Ledger lines of superseded epochs: work that was done but whose output was not accepted. */
  readonly supersededEffects: number;
  readonly duplicatesInjected: { readonly rulesEngine: number; readonly agents: number };
  readonly kills: number;
  readonly brokerRestarts: number;
  /** Submit → result at the client, ms (tasks with a live result). */
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly durationMs: number;
  /** Where the logs and the ledger are (deleted unless keepState). */
  readonly stateDir: string;
}

const REPO_ROOT = resolve(__dirname, '..', '..');
const WORKER_ENTRY = join(REPO_ROOT, 'agents', 'examples', 'chaos-worker', 'main.ts');
const CLIENT_ID = 'client-chaos';
const WANT = Object.values(CHAOS_SKILLS).map((s) => s.produces);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const between = (random: RandomSource, [lo, hi]: readonly [number, number]): number => lo + random() * (hi - lo);

/** One agent identity whose process may be killed and started again. */
export interface ChaosAgent {
  readonly agentId: string;
  readonly skill: ChaosSkill;
  /** The current process, if one is running. */
  readonly child: ChildProcess | undefined;
  /** Resolves when the current process has exited. */
  readonly exited: Promise<void>;
  /** Starts a new process with the same identity (the previous one must have exited). */
  launch(): void;
  /** SIGKILL: no drain, no DISCONNECT; the broker publishes the last will. Resolves on exit. */
  kill(): Promise<void>;
  /** SIGTERM (drain), SIGKILL after a short grace; closes the log. */
  stop(): Promise<void>;
}

/** Where a chaos worker connects and what it records. */
export interface ChaosAgentLaunch {
  readonly stack: LocalStack;
  readonly agentId: string;
  readonly skill: ChaosSkill;
  readonly ledgerPath: string;
  /** @default 0 */
  readonly duplicateRate?: number;
  /** Seed of the agent's duplicate decisions (varied per launch). @default 1 */
  readonly seed?: number;
}

/**
 * Issues the agent's certificate and starts a chaos worker process as that identity, logging
 * to `<logs>/<agentId>.log` (appended to across restarts).
 */
export async function startChaosAgent(launch: ChaosAgentLaunch): Promise<ChaosAgent> {
  const { stack, agentId, skill } = launch;
  const cert = await stack.issue(agentId, 'agent');
  const log: WriteStream = createWriteStream(join(stack.paths.logsDir, `${agentId}.log`), { flags: 'a' });
  const connection = { agentId, host: stack.endpoints.mqttHost, port: stack.endpoints.mqttPort, ...cert };
  const extraEnv: Record<string, string> = {
    PORCHLIGHT_CHAOS_SKILL: skill, PORCHLIGHT_EFFECT_LEDGER: launch.ledgerPath, PORCHLIGHT_LOG_LEVEL: 'info',
    ...((launch.duplicateRate ?? 0) > 0 ? { PORCHLIGHT_FAULT_DUPLICATE_RATE: String(launch.duplicateRate) } : {}),
  };
  let launches = 0;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const running = (): ChildProcess | undefined => (child !== undefined && child.exitCode === null && child.signalCode === null ? child : undefined);
  const agent: ChaosAgent = {
    agentId,
    skill,
    get child() {
      return running();
    },
    get exited() {
      return exited;
    },
    launch() {
      if (running() !== undefined) throw new Error(`agent ${agentId} is already running`);
      launches += 1;
      const seed = ((launch.seed ?? 1) * 7919 + launches * 104_729) >>> 0;
      const next = spawnAgentProcess(WORKER_ENTRY, connection, { ...extraEnv, PORCHLIGHT_FAULT_SEED: String(seed) });
      next.stdout?.pipe(log, { end: false });
      next.stderr?.pipe(log, { end: false });
      child = next;
      exited = new Promise((done) => next.once('exit', () => done()));
    },
    async kill() {
      running()?.kill('SIGKILL');
      await exited;
    },
    async stop() {
      const current = running();
      if (current !== undefined) {
        current.kill('SIGTERM');
        const timer = setTimeout(() => current.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      if (log.writable) await new Promise<void>((r) => log.end(r));
    },
  };
  agent.launch();
  return agent;
}

/** The line bench/chaos.ts ends with. */
export function formatChaosLine(r: ChaosReport): string {
  return `completed=${r.completed} failed=${r.failed} lost=${r.lost} duplicate_effects=${r.duplicateEffects} p95_ms=${Math.round(r.p95Ms)}`;
}

/** A human summary of a report, several lines. */
export function describeChaosReport(r: ChaosReport): string {
  const reasons = Object.entries(r.failureReasons).map(([k, v]) => `${v}× ${k}`).join('; ') || 'none';
  return [
    `tasks: submitted=${r.submitted} completed=${r.completed} failed=${r.failed} other-terminal=${r.otherTerminal} lost=${r.lost}`,
    `results: live=${r.resultsLive} from-retained=${r.resultsFromRetained}; store: missing=${r.storeMissing} not-terminal=${r.storeNotTerminal}`,
    `effects: ledger-lines=${r.ledgerLines} superseded=${r.supersededEffects} duplicate_effects=${r.duplicateEffects}${r.effectFindings.length > 0 ? ` (${r.effectFindings.join('; ')})` : ''}`,
    `faults: kills=${r.kills} broker-restarts=${r.brokerRestarts} duplicates-injected rules=${r.duplicatesInjected.rulesEngine} agents=${r.duplicatesInjected.agents}`,
    `latency submit→result: p50=${Math.round(r.p50Ms)} ms p95=${Math.round(r.p95Ms)} ms; run ${(r.durationMs / 1000).toFixed(1)} s`,
    `failure reasons: ${reasons}`,
  ].join('\n');
}

/** Parses the effect ledger; a malformed line is an error (lines are appended atomically). */
export function parseLedger(text: string): EffectLine[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((line, i) => {
    try {
      return JSON.parse(line) as EffectLine;
    } catch (err) {
      throw new Error(`effect ledger line ${i + 1} is not JSON (interleaved write?): ${line.slice(0, 200)}`, { cause: err });
    }
  });
}

/** What {@link checkEffects} needs about one completed task. */
export interface CompletedTask {
  readonly taskId: string;
  /** The stored record: each step's state and epoch at completion. */
  readonly record: Pick<TaskRecord, 'steps'>;
  /** The result's outputs (the wanted artifacts). */
  readonly outputs: Record<string, unknown>;
}

/** Outcome of {@link checkEffects}. */
export interface EffectCheck {
  /** Violations: an accepted (task, step, epoch) with several effects, a result effect absent from the ledger, mismatched or reused. */
  readonly duplicateEffects: number;
  readonly findings: string[];
  /** Ledger lines whose (task, step, epoch) was not the accepted one. */
  readonly superseded: number;
}

/**
 * Checks exactly-once effects: for every completed step of every completed task, the ledger must
 * hold exactly one line with the step's accepted (task, step, epoch); every effect a result
 * names must be in the ledger under that same (task, step, epoch), and no effect may be named
 * by two results.
 */
export function checkEffects(ledger: readonly EffectLine[], completed: readonly CompletedTask[]): EffectCheck {
  const byKey = new Map<string, EffectLine[]>();
  const byEffect = new Map<string, EffectLine>();
  for (const line of ledger) {
    const key = `${line.taskId}/${line.stepId}/${line.epoch}`;
    byKey.set(key, [...(byKey.get(key) ?? []), line]);
    byEffect.set(line.effectId, line);
  }
  const findings: string[] = [];
  let violations = 0;
  const acceptedKeys = new Set<string>();
  const referenced = new Map<string, string>();
  for (const task of completed) {
    for (const [stepId, step] of Object.entries(task.record.steps)) {
      if (step.state !== 'completed') continue;
      const key = `${task.taskId}/${stepId}/${step.epoch}`;
      acceptedKeys.add(key);
      const lines = byKey.get(key) ?? [];
      if (lines.length > 1) {
        violations += 1;
        findings.push(`${key}: ${lines.length} effects for one accepted epoch`);
      } else if (lines.length === 0) {
        violations += 1;
        findings.push(`${key}: accepted with no effect in the ledger`);
      }
      for (const artifact of step.produces) {
        const value = task.outputs[artifact] as { effect?: unknown } | undefined;
        if (value === undefined) continue;
        const effectId = typeof value.effect === 'string' ? value.effect : undefined;
        const line = effectId === undefined ? undefined : byEffect.get(effectId);
        if (effectId === undefined || line === undefined) {
          violations += 1;
          findings.push(`${key}: result names effect ${String(effectId)} that is not in the ledger`);
          continue;
        }
        if (`${line.taskId}/${line.stepId}/${line.epoch}` !== key) {
          violations += 1;
          findings.push(`${key}: result names effect ${effectId} recorded for ${line.taskId}/${line.stepId}/${line.epoch}`);
        }
        const previous = referenced.get(effectId);
        if (previous !== undefined) {
          violations += 1;
          findings.push(`effect ${effectId} named by ${previous} and ${key}`);
        }
        referenced.set(effectId, key);
      }
    }
  }
  const superseded = ledger.filter((l) => !acceptedKeys.has(`${l.taskId}/${l.stepId}/${l.epoch}`)).length;
  return { duplicateEffects: violations, findings, superseded };
}

/** Groups failure reasons, with ids and numbers blanked so equal causes count together. */
export function reasonKey(reason: string | undefined): string {
  if (reason === undefined || reason.trim() === '') return '(no reason)';
  return reason.replace(/[0-9a-f]{8}-[0-9a-f-]{27,}/g, '<id>').replace(/\bc\d+-[a-z0-9]+\b/g, '<task>').replace(/\d+/g, 'N').slice(0, 160);
}

/** Runs the scenario and reports; stops every process it started, also on failure. */
export async function runChaosScenario(options: ChaosOptions): Promise<ChaosReport> {
  const n = options.tasks;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`tasks must be a positive integer; got ${String(n)}`);
  const seed = options.seed ?? 42;
  const random = seededRandom(seed ^ 0x5eed);
  const duplicateRate = options.duplicateRate ?? 0.05;
  const perSkill = options.agentsPerSkill ?? 3;
  const concurrency = options.concurrency ?? 16;
  const progress = options.progress ?? (() => undefined);
  const started = performance.now();

  const stateDir = await mkdtemp(join(tmpdir(), 'porchlight-chaos-'));
  const ledgerPath = join(stateDir, 'effects.jsonl');
  await writeFile(ledgerPath, '');
  let stack: LocalStack | undefined;
  let client: MqttClient | undefined;
  let dynamo: DynamoDBClient | undefined;
  const agents: ChaosAgent[] = [];
  let chaosDone = false;
  let chaosLoop: Promise<void> = Promise.resolve();
  let progressTimer: NodeJS.Timeout | undefined;
  let restartTimer: NodeJS.Timeout | undefined;

  try {
    stack = await startLocalStack({
      stateDir, inMemory: true, log: options.log ?? quietLog('chaos'),
      sweeperIntervalMs: 1000,
      // Longer than Lambda's two retries: a handler whose publish failed while the broker was
      // down gets retried after it is back (the sweeper would cover it too, only later).
      retryDelaysMs: [1000, 2000, 4000],
      faults: { duplicateRate, seed },
      functionEnv: {
        LEASE_MS: String(options.leaseMs ?? 4000),
        MAX_ATTEMPTS: String(options.maxAttempts ?? 6),
        PROPOSAL_WINDOW_MS: String(options.proposalWindowMs ?? 3000),
      },
    });
    const s = stack;
    dynamo = new DynamoDBClient({ endpoint: s.endpoints.dynamoEndpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
    const doc = DynamoDBDocumentClient.from(dynamo);
    const registry = new DynamoRegistry({ client: doc, tableName: s.tableName });
    const store = new DynamoTaskStore({ client: doc, tableName: s.tableName });

    // Agents -----------------------------------------------------------------------------------
    for (const skill of Object.keys(CHAOS_SKILLS) as ChaosSkill[]) {
      for (let i = 1; i <= perSkill; i += 1) {
        agents.push(await startChaosAgent({ stack: s, agentId: `${skill}-${i}`, skill, ledgerPath, duplicateRate, seed: seed + agents.length }));
      }
    }
    await waitForAgents(registry, agents.map((a) => a.agentId), 90_000);
    progress(`${agents.length} agents online; submitting ${n} tasks`);

    // Client -------------------------------------------------------------------------------------
    const clientCert = await s.issue(CLIENT_ID, 'client');
    // A persistent session with reconnection: results published while the broker restarts or
    // while the client reconnects are queued for it, as a real client would want.
    client = await connectWithCertificate({
      host: s.endpoints.mqttHost, port: s.endpoints.mqttPort, ...clientCert, clientId: CLIENT_ID, clean: false,
      extra: { reconnectPeriod: 500, properties: { sessionExpiryInterval: 3600 } },
    });
    const c = client;
    reconnectWithBackoff(c, { minDelayMs: 250, maxDelayMs: 5000 });
    c.on('error', () => undefined);
    const submittedAt = new Map<string, number>();
    const results = new Map<string, { result: TaskResult; live: boolean; ms: number }>();
    const waiters = new Map<string, () => void>();
    const onResult = (topic: string, payload: Buffer, live: boolean): void => {
      if (payload.length === 0) return;
      let result: TaskResult;
      try {
        result = decodePayload(TaskResult, payload, `result on ${topic}`);
      } catch {
        return;
      }
      const at = submittedAt.get(result.taskId);
      if (at === undefined || results.has(result.taskId)) return;
      results.set(result.taskId, { result, live, ms: performance.now() - at });
      waiters.get(result.taskId)?.();
    };
    c.on('message', (topic, payload) => onResult(topic, payload, true));
    // Subscribed before the first submission, so no result can be missed.
    const resultFilter = filters.clientResults(CLIENT_ID);
    const granted = await c.subscribeAsync(resultFilter, { qos: 1 });
    if ((granted[0]?.qos ?? 0x80) >= 0x80) throw new Error(`the broker refused the client subscription to ${resultFilter}`);

    // Chaos --------------------------------------------------------------------------------------
    let kills = 0;
    chaosLoop = (async () => {
      const killEvery = options.killEveryMs ?? [2000, 4000];
      const downFor = options.restartAfterMs ?? [500, 1000];
      while (!chaosDone) {
        await sleep(between(random, killEvery));
        if (chaosDone) break;
        const victim = agents[Math.floor(random() * agents.length)];
        if (victim?.child === undefined) continue;
        await victim.kill();
        kills += 1;
        progress(`killed ${victim.agentId} (kill ${kills})`);
        await sleep(between(random, downFor));
        if (chaosDone) break;
        victim.launch();
      }
    })();

    // The broker restarts once, when this many results are in: mid-run, with work in flight.
    let brokerRestart: Promise<void> | undefined;
    const restartAt = Math.max(1, Math.floor(n * (options.brokerRestartAt ?? 0.4)));
    restartTimer = setInterval(() => {
      if (brokerRestart !== undefined || results.size < restartAt) return;
      clearInterval(restartTimer);
      progress(`restarting the broker (${results.size} results in)`);
      brokerRestart = s.restartBroker(options.brokerDowntimeMs ?? 500).then(() => progress('broker restarted'));
    }, 50);
    progressTimer = setInterval(() => {
      const done = [...results.values()];
      progress(`submitted=${submittedAt.size}/${n} results=${done.length} completed=${done.filter((r) => r.result.state === 'completed').length} kills=${kills} broker-restarts=${s.faultCounts().brokerRestarts}`);
    }, 5000);

    // Submission with bounded concurrency -------------------------------------------------------
    const runId = randomBytes(3).toString('hex');
    const deadlineMs = options.taskDeadlineMs ?? 120_000;
    const inFlight = new Set<Promise<void>>();
    for (let i = 0; i < n; i += 1) {
      while (inFlight.size >= concurrency) await Promise.race(inFlight);
      const taskId = `c${i}-${runId}`;
      const request = parseMessage(TaskRequest, {
        v: 1, goal: `chaos task ${i}`, input: { seed: `seed-${i}-${runId}` }, want: WANT, skills: Object.keys(CHAOS_SKILLS),
        proposalWindowMs: options.proposalWindowMs ?? 3000,
        constraints: { deadline: new Date(Date.now() + deadlineMs).toISOString() },
        cancelHash: createHash('sha256').update(randomBytes(16)).digest('hex'),
      }, 'chaos request');
      submittedAt.set(taskId, performance.now());
      const done = new Promise<void>((resolveDone) => {
        const timer = setTimeout(resolveDone, deadlineMs + 15_000);
        waiters.set(taskId, () => {
          clearTimeout(timer);
          resolveDone();
        });
      });
      const slot: Promise<void> = c.publishAsync(topics.clientRequest(CLIENT_ID, taskId), JSON.stringify(request), { qos: 1 })
        .then(() => done)
        .finally(() => {
          inFlight.delete(slot);
          waiters.delete(taskId);
        });
      inFlight.add(slot);
    }
    progress(`all ${n} submitted; waiting for results`);

    const settleBy = Date.now() + (options.settleTimeoutMs ?? 150_000);
    while (results.size < n && Date.now() < settleBy) await sleep(250);
    clearInterval(restartTimer);
    await brokerRestart;
    chaosDone = true;
    await chaosLoop;
    clearInterval(progressTimer);

    // Reconciliation ----------------------------------------------------------------------------
    const missing = [...submittedAt.keys()].filter((id) => !results.has(id));
    if (missing.length > 0) {
      progress(`${missing.length} results not seen live; reading their retained result topics`);
      const retained = (topic: string, payload: Buffer): void => onResult(topic, payload, false);
      c.removeAllListeners('message');
      c.on('message', retained);
      for (let i = 0; i < missing.length; i += 20) {
        await c.subscribeAsync(missing.slice(i, i + 20).map((id) => topics.clientResult(CLIENT_ID, id)), { qos: 1 });
      }
      await sleep(3000);
    }

    const records = new Map<string, TaskRecord | undefined>();
    for (const taskId of submittedAt.keys()) records.set(taskId, await store.get(taskId));
    const storeMissing = [...records.values()].filter((r) => r === undefined).length;
    const storeNotTerminal = [...records.values()].filter((r) => r !== undefined && !isTerminal(r.state)).length;

    const ledger = parseLedger(await readFile(ledgerPath, 'utf8'));
    const completed: CompletedTask[] = [];
    const failureReasons: ReasonHistogram = {};
    let failed = 0;
    let otherTerminal = 0;
    for (const [taskId, { result }] of results) {
      if (result.state === 'completed') {
        const record = records.get(taskId);
        if (record !== undefined) completed.push({ taskId, record, outputs: result.outputs });
      } else if (result.state === 'failed') {
        failed += 1;
        const key = reasonKey(result.reason);
        failureReasons[key] = (failureReasons[key] ?? 0) + 1;
      } else {
        otherTerminal += 1;
      }
    }
    const effects = checkEffects(ledger, completed);
    // A completed result without a stored record cannot be checked: count it as a violation.
    const unchecked = [...results.values()].filter((r) => r.result.state === 'completed' && records.get(r.result.taskId) === undefined).length;
    const latencies = [...results.values()].filter((r) => r.live).map((r) => r.ms);
    const agentDuplicates = await countAgentDuplicates(s.paths.logsDir, agents.map((a) => a.agentId));
    const counts = s.faultCounts();

    return {
      submitted: submittedAt.size,
      completed: [...results.values()].filter((r) => r.result.state === 'completed').length,
      failed,
      otherTerminal,
      lost: submittedAt.size - results.size,
      duplicateEffects: effects.duplicateEffects + unchecked,
      effectFindings: [...effects.findings.slice(0, 10), ...(unchecked > 0 ? [`${unchecked} completed results without a stored record`] : [])],
      failureReasons,
      resultsLive: latencies.length,
      resultsFromRetained: [...results.values()].filter((r) => !r.live).length,
      storeMissing,
      storeNotTerminal,
      ledgerLines: ledger.length,
      supersededEffects: effects.superseded,
      duplicatesInjected: { rulesEngine: counts.duplicatesInjected, agents: agentDuplicates },
      kills,
      brokerRestarts: counts.brokerRestarts,
      p50Ms: latencies.length > 0 ? percentile(latencies, 50) : 0,
      p95Ms: latencies.length > 0 ? percentile(latencies, 95) : 0,
      durationMs: performance.now() - started,
      stateDir,
    };
  } finally {
    chaosDone = true;
    clearInterval(progressTimer);
    clearInterval(restartTimer);
    await chaosLoop.catch(() => undefined);
    await client?.endAsync(true).catch(() => undefined);
    await Promise.all(agents.map((a) => a.stop()));
    dynamo?.destroy();
    await stack?.stop();
    if (options.keepState !== true) await rm(stateDir, { recursive: true, force: true });
  }
}

/** Duplicate deliveries the agents injected, from their logs (each is logged once). */
async function countAgentDuplicates(logsDir: string, agentIds: readonly string[]): Promise<number> {
  const files = new Set(await readdir(logsDir));
  let count = 0;
  for (const id of agentIds) {
    if (!files.has(`${id}.log`)) continue;
    const text = await readFile(join(logsDir, `${id}.log`), 'utf8');
    count += text.split('fault injection: duplicate delivery').length - 1;
  }
  return count;
}
