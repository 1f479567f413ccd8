/**
 * Exactly-once effects across an agent restart, deterministically: a chaos worker process (its
 * effect ledger is the external effect) is SIGKILLed by the test-only fault hook after its effect
 * and before its output reaches the broker. While it is down the orchestrator publishes the
 * assignment again (what its outbox repair does), the broker queues it in the agent's persistent
 * session, and the process restarts with the same identity. With its journal, the effect happened
 * once and the output arrives; a process that lost its journal repeats the effect, which is the
 * failure the journal exists for.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { spawnAgentProcess } from '../../../cli/agent-processes';
import { StepOutput } from '../../../core/schemas';
import type { EffectLine } from '../../../agents/examples/chaos-worker/agent';
import { connectMqtt, startTestBroker, type TestBroker } from '../../helpers/local-stack';

// Two agent processes start per test on a machine that may be busy with other work.
jest.setTimeout(180_000);

const ROOT = join(__dirname, '../../..');
const WORKER = join(ROOT, 'agents/examples/chaos-worker/main.ts');
const TOKEN = 'fence-token-journal-0123456789';

let broker: TestBroker;
let orchestrator: MqttClient;
/** Everything the orchestrator identity saw, in order. */
const seen: { topic: string; json: unknown }[] = [];

beforeAll(async () => {
  broker = await startTestBroker();
  orchestrator = await connectMqtt(broker, 'porchlight-orchestrator');
  orchestrator.on('message', (topic, payload) => {
    if (payload.length === 0) return;
    seen.push({ topic, json: JSON.parse(payload.toString('utf8')) as unknown });
  });
  await orchestrator.subscribeAsync(['agents/+/status', 'tasks/+/output/#'], { qos: 1 });
}, 60_000);

afterAll(async () => {
  await broker?.cleanup();
});

async function until<T>(find: () => T | undefined, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The first message on `topic` seen after position `from` that satisfies `accept`. */
function seenAfter(from: number, topic: string, accept: (json: unknown) => boolean = () => true): unknown {
  return seen.slice(from).find((m) => m.topic === topic && accept(m.json))?.json;
}

const hasState = (state: string) => (json: unknown) => (json as { state?: string }).state === state;

interface Worker {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  stderr(): string;
}

/** Starts the chaos worker as `agentId` and waits until it says it is online. */
async function startWorker(agentId: string, env: Record<string, string>): Promise<Worker> {
  const cert = await broker.issue(agentId, 'agent');
  const from = seen.length;
  const child = spawnAgentProcess(WORKER, { agentId, host: broker.mqttHost, port: broker.mqttPort, ...cert }, { PORCHLIGHT_CHAOS_SKILL: 'chaos-a', PORCHLIGHT_LOG_LEVEL: 'info', ...env });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout?.resume();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await until(() => seenAfter(from, `agents/${agentId}/status`, hasState('online')), `${agentId} to be online`);
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${(e as Error).message}\nagent stderr:\n${err}`);
  }
  return { child, exited, stderr: () => err };
}

async function stopWorker(worker: Worker | undefined): Promise<void> {
  if (worker === undefined || worker.child.exitCode !== null || worker.child.signalCode !== null) return;
  worker.child.kill('SIGTERM');
  const timer = setTimeout(() => worker.child.kill('SIGKILL'), 10_000);
  await worker.exited;
  clearTimeout(timer);
}

function ledger(path: string): EffectLine[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as EffectLine);
}

function assignment(taskId: string): string {
  return JSON.stringify({
    v: 1, taskId, stepId: 'a', epoch: 1, token: TOKEN, skill: 'chaos-a', goal: 'one effect',
    inputs: { seed: 'journal' }, produces: ['a_effect'], deadline: new Date(Date.now() + 150_000).toISOString(), leaseMs: 60_000,
  });
}

/**
 * Runs the crash: first process killed at `killPoint` after the effect, assignment published
 * again while it is down, second process started with `secondJournal`. Returns what the
 * orchestrator received and what the ledger holds.
 */
async function crashAndRestart(name: string, killPoint: 'before-journal' | 'before-publish', shareJournal: boolean) {
  const agentId = `chaos-a-${name}`;
  const taskId = `t-journal-${name}`;
  const dir = join(broker.stateDir, agentId);
  mkdirSync(dir, { recursive: true });
  const ledgerPath = join(dir, 'effects.jsonl');
  const journal = join(dir, 'journal.jsonl');
  const outputTopic = `tasks/${taskId}/output/a/${agentId}`;
  let second: Worker | undefined;
  const first = await startWorker(agentId, { PORCHLIGHT_EFFECT_LEDGER: ledgerPath, PORCHLIGHT_JOURNAL: journal, PORCHLIGHT_FAULT_KILL_AFTER_EFFECT: killPoint });
  try {
    const beforeKill = seen.length;
    await orchestrator.publishAsync(`tasks/${taskId}/assign/${agentId}`, assignment(taskId), { qos: 1 });
    await first.exited;
    expect(first.child.signalCode).toBe('SIGKILL');
    expect(first.stderr()).toContain('fault injection: killing the process after the effect');
    expect(ledger(ledgerPath)).toHaveLength(1);
    expect(seenAfter(beforeKill, outputTopic)).toBeUndefined();
    // Its will says it is gone: the broker now queues what arrives for its session.
    await until(() => seenAfter(beforeKill, `agents/${agentId}/status`, hasState('offline')), `the last will of ${agentId}`);
    await orchestrator.publishAsync(`tasks/${taskId}/assign/${agentId}`, assignment(taskId), { qos: 1 });

    second = await startWorker(agentId, { PORCHLIGHT_EFFECT_LEDGER: ledgerPath, PORCHLIGHT_JOURNAL: shareJournal ? journal : join(dir, 'journal-lost.jsonl') });
    const out = StepOutput.parse(await until(() => seenAfter(beforeKill, outputTopic), `the output of ${taskId}`));
    await stopWorker(second);
    return { out, effects: ledger(ledgerPath), firstLog: first.stderr(), secondLog: second.stderr() };
  } finally {
    first.child.kill('SIGKILL');
    if (second !== undefined) second.child.kill('SIGKILL');
  }
}

function effectOf(out: StepOutput): string | undefined {
  if (!out.ok) return undefined;
  return (out.output.a_effect as { effect?: string } | undefined)?.effect;
}

describe('an agent killed after its effect, before its output reached the broker', () => {
  it('killed before the output was journaled: the restarted agent resumes with the same idempotency key and finds the effect, so it happened once', async () => {
    const { out, effects, secondLog } = await crashAndRestart('resume', 'before-journal', true);
    expect(out).toMatchObject({ ok: true, epoch: 1, token: TOKEN });
    expect(effects).toHaveLength(1);
    expect(effectOf(out)).toBe(effects[0]?.effectId);
    expect(secondLog).toContain('resuming a step a previous attempt started and did not finish');
    expect(secondLog).toContain('effect already in the ledger; returning it');
  });

  it('killed after the output was journaled: the restarted agent republishes the journaled output without executing', async () => {
    const { out, effects, secondLog } = await crashAndRestart('republish', 'before-publish', true);
    expect(out).toMatchObject({ ok: true, epoch: 1, token: TOKEN });
    expect(effects).toHaveLength(1);
    expect(effectOf(out)).toBe(effects[0]?.effectId);
    expect(secondLog).toContain('assignment already finished; republishing its journaled output');
    expect(secondLog).not.toContain('"message":"assignment started"');
  });

  it('restarted without its journal, it executes the redelivered epoch again: the duplicate effect the journal prevents', async () => {
    const { out, effects } = await crashAndRestart('lost', 'before-journal', false);
    expect(out).toMatchObject({ ok: true, epoch: 1 });
    expect(effects).toHaveLength(2);
    expect(new Set(effects.map((e) => `${e.taskId}/${e.stepId}/${e.epoch}`)).size).toBe(1);
    expect(effectOf(out)).toBe(effects[1]?.effectId);
  });
});
