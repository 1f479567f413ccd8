/**
 * The agent runtime against the local stack's Mosquitto (mutual TLS, CN as identity, the ACL
 * rendered from core/policy): birth, bidding, fenced execution,
 * deduplication, cancellation, graceful drain and the last will of a killed agent process.
 *
 * Agents run as child processes, as they do in production; this also keeps aws-crt's native
 * handles out of the Jest process.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { AgentStatus, Resume, StepOutput } from '../../../core/schemas';
import { startLocalBroker, type LocalBroker } from '../../../local/broker';
import { spawnAgentProcess } from '../../../cli/agent-processes';

jest.setTimeout(60_000);

const ROOT = join(__dirname, '../../..');
const TOKEN = 'fence-token-0123456789abcdef';

/** The local stack's broker: mTLS, CN as username and client id, and the ACL from core/policy. */
let broker: LocalBroker;
let stateDir: string;
/** Publishes assignments and task status; the ACL lets only the orchestrator identity do so. */
let orchestrator: MqttClient;

function brokerLog(): string {
  try {
    return readFileSync(join(stateDir, 'logs', 'mosquitto.log'), 'utf8');
  } catch {
    return '(no broker log)';
  }
}

/** Connects an MQTT 5 client with `identity`'s certificate. */
async function connectAs(identity: string, kind: 'orchestrator' | 'client'): Promise<MqttClient> {
  const cert = await broker.issue(identity, kind);
  return mqtt.connectAsync(`mqtts://localhost:${broker.mqttPort}`, {
    clientId: identity,
    protocolVersion: 5,
    key: readFileSync(cert.keyPath),
    cert: readFileSync(cert.certPath),
    ca: readFileSync(cert.caPath),
    reconnectPeriod: 0,
  });
}

/** Resolves with the first message on `topic` (retained included) that satisfies `accept`. */
async function nextMessage(client: MqttClient, topic: string, accept: (payload: unknown) => boolean = () => true, timeoutMs = 15_000): Promise<{ payload: unknown; retain: boolean }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.removeListener('message', onMessage);
      reject(new Error(`no matching message on ${topic} within ${timeoutMs} ms; broker log:\n${brokerLog()}`));
    }, timeoutMs);
    const onMessage = (t: string, payload: Buffer, packet: { retain?: boolean }) => {
      if (t !== topic) return;
      const json: unknown = JSON.parse(payload.toString('utf8'));
      if (!accept(json)) return;
      clearTimeout(timer);
      client.removeListener('message', onMessage);
      resolve({ payload: json, retain: packet.retain === true });
    };
    client.on('message', onMessage);
    client.subscribeAsync(topic, { qos: 1 }).catch(reject);
  });
}

const hasState = (state: string) => (s: unknown) => (s as { state?: string }).state === state;

/** An agent process with its output collected. */
interface AgentProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
}

/** Starts `script` as agent `agentId` and waits until its retained status says online. */
async function startAgent(script: string, agentId: string): Promise<AgentProcess> {
  const cert = await broker.issue(agentId, 'agent');
  const online = nextMessage(orchestrator, `agents/${agentId}/status`, hasState('online'), 30_000);
  const child = spawnAgentProcess(
    join(ROOT, script),
    { agentId, host: 'localhost', port: broker.mqttPort, caPath: cert.caPath, certPath: cert.certPath, keyPath: cert.keyPath },
    // The journal lives with this run's state: one left under the working directory by an earlier
    // run would answer this run's assignments (same task ids) from its entries.
    { PORCHLIGHT_LOG_LEVEL: 'info', PORCHLIGHT_JOURNAL: join(stateDir, 'journals', `${agentId}.jsonl`) },
  );
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await online.catch((e: Error) => {
    child.kill('SIGKILL');
    throw new Error(`${e.message}\nagent stderr:\n${err}`);
  });
  return { child, exited, stdout: () => out, stderr: () => err };
}

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function assignment(taskId: string, stepId: string, skill = 'upper') {
  return {
    v: 1, taskId, stepId, epoch: 1, token: TOKEN, skill, goal: 'shout',
    inputs: { text: 'hello mqtt' }, produces: ['shouted'], deadline: new Date(Date.now() + 30_000).toISOString(), leaseMs: 10_000,
  };
}

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'porchlight-agents-it-'));
  broker = await startLocalBroker({ stateDir });
  orchestrator = await connectAs('porchlight-orchestrator', 'orchestrator');
});

afterAll(async () => {
  await orchestrator?.endAsync();
  await broker?.stop();
  if (stateDir !== undefined) rmSync(stateDir, { recursive: true, force: true });
});

describe('agent runtime over Mosquitto with mTLS', () => {
  describe('a running agent', () => {
    let agent: AgentProcess;

    beforeAll(async () => {
      agent = await startAgent('test/integration/agents/fixtures/upper-agent.ts', 'upper-1');
    });

    afterAll(async () => {
      if (agent !== undefined && agent.child.exitCode === null) {
        agent.child.kill('SIGTERM');
        await agent.exited;
      }
    });

    it('has published its retained résumé and status online at birth', async () => {
      const resume = await nextMessage(orchestrator, 'agents/upper-1/resume');
      expect(resume.retain).toBe(true);
      expect(Resume.parse(resume.payload).skills).toEqual(['upper', 'wait']);
      const status = await nextMessage(orchestrator, 'agents/upper-1/status');
      expect(status.retain).toBe(true);
      expect(AgentStatus.parse(status.payload)).toMatchObject({ state: 'online', load: { active: 0, max: 2 } });
    });

    it('answers a request with a proposal on its own proposal topic', async () => {
      const proposal = nextMessage(orchestrator, 'tasks/t-int-1/proposal/upper-1');
      // Calls for bids are the orchestrator's to publish (clients submit on their own tree).
      await orchestrator.publishAsync('tasks/t-int-1/request', JSON.stringify({ goal: 'shout it', input: { text: 'hello mqtt' }, want: ['shouted'] }), { qos: 1 });
      expect((await proposal).payload).toEqual({ v: 1, steps: [{ id: 'upper', skill: 'upper', consumes: ['text'], produces: ['shouted'], estUsd: 0.001, estMs: 20 }], note: 'shout it' });
    });

    it('executes a duplicated assignment once, streams progress, and publishes a retained output echoing the token, then telemetry', async () => {
      const output = nextMessage(orchestrator, 'tasks/t-int-1/output/s1/upper-1');
      const progress = nextMessage(orchestrator, 'tasks/t-int-1/progress/s1/upper-1');
      const telemetry = nextMessage(orchestrator, 'agents/upper-1/telemetry', (t) => (t as { executions?: number }).executions === 1);
      const payload = JSON.stringify(assignment('t-int-1', 's1'));
      await orchestrator.publishAsync('tasks/t-int-1/assign/upper-1', payload, { qos: 1 });
      await orchestrator.publishAsync('tasks/t-int-1/assign/upper-1', payload, { qos: 1 });

      const handedIn = await output;
      expect(handedIn.retain).toBe(false);
      const out = StepOutput.parse(handedIn.payload);
      expect(out).toMatchObject({ taskId: 't-int-1', stepId: 's1', epoch: 1, token: TOKEN, ok: true, output: { shouted: 'HELLO MQTT' } });
      expect(out.usage?.ms).toBeGreaterThanOrEqual(50);
      expect((await progress).payload).toMatchObject({ fraction: 0.5, message: 'half way', epoch: 1 });
      expect((await telemetry).payload).toMatchObject({ executions: 1, successRate: 1, costUsd: 0.001 });

      const observer = await connectAs('client-observer-1', 'client');
      try {
        // The hand-in is the orchestrator's alone: a client never sees an agent's output or its token.
        await expect(nextMessage(observer, 'tasks/t-int-1/output/s1/upper-1', () => true, 2000)).rejects.toThrow(/no matching message/);
      } finally {
        await observer.endAsync();
      }
      await until(() => agent.stderr().includes('duplicate assignment ignored'), 'the duplicate to be logged');
      expect(agent.stdout().trim().split('\n').filter((l) => l.includes('t-int-1/s1#1'))).toHaveLength(1);
    });

    it('aborts a step when the task status turns canceled, without publishing an output', async () => {
      const outputs: string[] = [];
      const collect = (topic: string) => topic === 'tasks/t-int-2/output/s1/upper-1' && outputs.push(topic);
      orchestrator.on('message', collect);
      await orchestrator.subscribeAsync('tasks/t-int-2/output/s1/upper-1', { qos: 1 });
      try {
        await orchestrator.publishAsync('tasks/t-int-2/assign/upper-1', JSON.stringify(assignment('t-int-2', 's1', 'wait')), { qos: 1 });
        await until(() => agent.stdout().includes('t-int-2/s1#1'), 'the waiting step to start');
        const status = { v: 1, taskId: 't-int-2', state: 'canceled', phase: 'done', errors: [], version: 5, updatedAt: new Date().toISOString() };
        await orchestrator.publishAsync('tasks/t-int-2/status', JSON.stringify(status), { qos: 1, retain: true });
        await until(() => /"message":"execution aborted".*"kind":"task-ended"/.test(agent.stderr()), 'the abort to be logged');
        await new Promise((r) => setTimeout(r, 200));
        expect(outputs).toEqual([]);
      } finally {
        orchestrator.removeListener('message', collect);
      }
    });
  });

  describe('an example agent process', () => {
    it('bids on the demo request, and its last will marks it offline when it is killed', async () => {
      const agent = await startAgent('agents/examples/sql-optimiser/main.ts', 'sql-it-1');
      try {
        const demo: unknown = JSON.parse(readFileSync(join(ROOT, 'agents/examples/demo-request.json'), 'utf8'));
        const proposal = nextMessage(orchestrator, 'tasks/t-demo-1/proposal/sql-it-1');
        await orchestrator.publishAsync('tasks/t-demo-1/request', JSON.stringify(demo), { qos: 1 });
        expect((await proposal).payload).toMatchObject({ steps: [{ skill: 'sql-optimiser', produces: ['optimised_sql', 'rows'] }] });

        const offline = nextMessage(orchestrator, 'agents/sql-it-1/status', hasState('offline'));
        agent.child.kill('SIGKILL');
        expect(AgentStatus.parse((await offline).payload)).toMatchObject({ state: 'offline', reason: 'connection lost (last will)' });
      } finally {
        if (agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill('SIGKILL');
      }
    });

    it('drains on SIGTERM: status draining, then its own offline status (not the will), then exit 0', async () => {
      const agent = await startAgent('agents/examples/nl2chart/main.ts', 'chart-it-1');
      try {
        const states: string[] = [];
        const done = nextMessage(orchestrator, 'agents/chart-it-1/status', (s) => {
          states.push((s as { state: string }).state);
          return hasState('offline')(s);
        });
        agent.child.kill('SIGTERM');
        const final = AgentStatus.parse((await done).payload);
        expect(final.state).toBe('offline');
        expect(final.reason).toBeUndefined();
        expect(states).toContain('draining');
        expect(await agent.exited).toBe(0);
      } finally {
        if (agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill('SIGKILL');
      }
    });
  });
});
