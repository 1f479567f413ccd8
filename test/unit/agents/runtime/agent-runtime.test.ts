import { AgentRuntime, runAgent } from '../../../../agents/runtime/agent-runtime';
import { defineAgent, type AgentDefinitionInput } from '../../../../agents/runtime/define-agent';
import { MqttOperationError, StepError } from '../../../../agents/runtime/errors';
import { InMemoryJournal } from '../../../../agents/runtime/journal';
import type { Mqtt5BusOptions } from '../../../../agents/runtime/mqtt-bus';
import { AgentStatus, StepOutput, Telemetry, Progress, type Assignment } from '../../../../core/schemas';
import { captureLogger, eventually, FakeBus } from './fake-bus';

const ID = 'agent-1';
const TOKEN = 'tok-0123456789abcdef-xyz';

function assignment(overrides: Record<string, unknown> = {}) {
  return {
    v: 1,
    taskId: 't1',
    stepId: 's1',
    epoch: 1,
    token: TOKEN,
    skill: 'echo',
    goal: 'echo things',
    inputs: { text: 'hello' },
    produces: ['echoed'],
    deadline: new Date(Date.now() + 60_000).toISOString(),
    leaseMs: 30_000,
    ...overrides,
  };
}

const request = { goal: 'echo hello', input: { text: 'hello' }, want: ['echoed'] };

function agentDef(overrides: Partial<AgentDefinitionInput> = {}, resume: Record<string, unknown> = {}) {
  return defineAgent({
    id: ID,
    resume: { skills: ['echo'], cost: { usd: 0.01, p95_ms: 50 }, region: 'eu-central-1', maxConcurrent: 1, ...resume },
    propose: () => ({ steps: [{ id: 'echo', skill: 'echo', consumes: ['text'], produces: ['echoed'], estUsd: 0.01, estMs: 50 }] }),
    execute: async (a) => ({ echoed: a.inputs.text ?? null }),
    ...overrides,
  });
}

async function started(def = agentDef(), options: ConstructorParameters<typeof AgentRuntime>[2] = {}) {
  const bus = new FakeBus();
  const log = captureLogger();
  const runtime = new AgentRuntime(def, bus, { log, statusMinGapMs: 10, telemetryMinGapMs: 10, progressIntervalMs: 50, ...options });
  await runtime.start();
  return { bus, log, runtime };
}

function outputs(bus: FakeBus, stepId = 's1', root = 'tasks') {
  return bus.json(`${root}/t1/output/${stepId}/agent-1`).map((o) => StepOutput.parse(o));
}

describe('AgentRuntime', () => {
  describe('birth', () => {
    it('subscribes before publishing its retained résumé and then its retained status online', async () => {
      const { bus } = await started();
      expect(bus.subscribed).toEqual(['tasks/+/request', 'tasks/+/assign/agent-1', 'agents/agent-1/errors']);
      expect(bus.published.map((p) => [p.topic, p.qos, p.retain])).toEqual([
        ['agents/agent-1/resume', 1, true],
        ['agents/agent-1/status', 1, true],
      ]);
      expect(JSON.parse(bus.published[0]?.payload ?? '')).toMatchObject({ v: 1, skills: ['echo'], region: 'eu-central-1' });
      expect(AgentStatus.parse(JSON.parse(bus.published[1]?.payload ?? ''))).toMatchObject({ state: 'online', load: { active: 0, max: 1 } });
    });

    it('fails with the refused filter when the broker refuses a required subscription', async () => {
      const bus = new FakeBus();
      bus.refuse.set('tasks/+/assign/agent-1', 'NotAuthorized');
      const runtime = new AgentRuntime(agentDef(), bus, { log: captureLogger() });
      await expect(runtime.start()).rejects.toThrow(MqttOperationError);
      await expect(new AgentRuntime(agentDef(), bus, { log: captureLogger() }).start()).rejects.toThrow('tasks/+/assign/agent-1 (NotAuthorized)');
      expect(bus.on('agents/agent-1/status')).toHaveLength(0);
    });

    it('starts anyway and warns when only the optional patient-data subscriptions are refused', async () => {
      const bus = new FakeBus();
      const log = captureLogger();
      bus.refuse.set('patient-data/+/request', 'NotAuthorized');
      bus.refuse.set('patient-data/+/assign/agent-1', 'NotAuthorized');
      await new AgentRuntime(agentDef({}, { accredit: ['gdpr'] }), bus, { log }).start();
      expect(log.lines.filter((l) => l.level === 'warn' && l.message.startsWith('broker refused an optional subscription'))).toHaveLength(2);
      expect(bus.on('agents/agent-1/status')).toHaveLength(1);
    });

    it('republishes its status after a reconnect (the will may have marked it offline)', async () => {
      const { bus } = await started();
      bus.simulateReconnect();
      await eventually(() => expect(bus.on('agents/agent-1/status')).toHaveLength(2));
    });
  });

  describe('requests', () => {
    it('publishes the proposal from propose() on its own proposal topic', async () => {
      const { bus } = await started();
      bus.deliver('tasks/t1/request', request);
      await eventually(() => expect(bus.on('tasks/t1/proposal/agent-1')).toHaveLength(1));
      const [p] = bus.on('tasks/t1/proposal/agent-1');
      expect(p?.qos).toBe(1);
      expect(p?.retain).toBe(false);
      expect(JSON.parse(p?.payload ?? '')).toEqual({ v: 1, steps: [{ id: 'echo', skill: 'echo', consumes: ['text'], produces: ['echoed'], estUsd: 0.01, estMs: 50 }] });
    });

    it('answers on the patient-data tree for a request that came on it', async () => {
      const { bus } = await started(agentDef({}, { accredit: ['gdpr'] }));
      bus.deliver('patient-data/t1/request', { ...request, constraints: { dataClasses: ['phi'] } });
      await eventually(() => expect(bus.on('patient-data/t1/proposal/agent-1')).toHaveLength(1));
    });

    it('declines with the reason, without asking propose(), when the region constraint excludes it', async () => {
      const propose = jest.fn();
      const { bus } = await started(agentDef({ propose }));
      bus.deliver('tasks/t1/request', { ...request, constraints: { region: 'us-east-1' } });
      await eventually(() => expect(bus.json('tasks/t1/proposal/agent-1')).toEqual([{ v: 1, decline: true, reason: 'region eu-central-1 is not among the allowed regions us-east-1' }]));
      expect(propose).not.toHaveBeenCalled();
    });

    it('declines when propose() throws, quoting the error', async () => {
      const { bus, log } = await started(agentDef({ propose: () => { throw new Error('model unavailable'); } }));
      bus.deliver('tasks/t1/request', request);
      await eventually(() => expect(bus.json('tasks/t1/proposal/agent-1')).toEqual([{ v: 1, decline: true, reason: 'propose failed: model unavailable' }]));
      expect(log.lines.some((l) => l.level === 'error' && l.message.includes('propose() threw'))).toBe(true);
    });

    it('declines when propose() returns something that is not a proposal', async () => {
      const { bus } = await started(agentDef({ propose: () => ({ steps: [] }) }));
      bus.deliver('tasks/t1/request', request);
      await eventually(() => expect(bus.on('tasks/t1/proposal/agent-1')).toHaveLength(1));
      const [decline] = bus.json('tasks/t1/proposal/agent-1') as { decline: boolean; reason: string }[];
      expect(decline?.decline).toBe(true);
      expect(decline?.reason).toMatch(/^agent produced an invalid proposal: .*steps/);
    });

    it('logs a specific warning and publishes nothing for malformed JSON', async () => {
      const { bus, log } = await started();
      bus.deliver('tasks/t1/request', '{not json');
      await eventually(() => expect(log.lines.some((l) => l.message === 'invalid task request ignored' && String(l.fields.error).includes('not valid JSON'))).toBe(true));
      expect(bus.on('tasks/t1/proposal/agent-1')).toHaveLength(0);
    });

    it('logs the failing field for a request that breaks the schema', async () => {
      const { bus, log } = await started();
      bus.deliver('tasks/t1/request', { goal: 'x', want: [] });
      await eventually(() => expect(log.lines.some((l) => l.message === 'invalid task request ignored' && String(l.fields.error).includes('want'))).toBe(true));
    });

    it('calls propose() once for a redelivered request', async () => {
      const propose = jest.fn(() => ({ decline: true as const, reason: 'no' }));
      const { bus } = await started(agentDef({ propose }));
      bus.deliver('tasks/t1/request', request);
      bus.deliver('tasks/t1/request', request);
      await eventually(() => expect(bus.on('tasks/t1/proposal/agent-1')).toHaveLength(1));
      expect(propose).toHaveBeenCalledTimes(1);
    });

    it('ignores, with a warning, a message on a topic that is not Porchlight\'s', async () => {
      const { bus, log } = await started();
      bus.deliver('weird/topic', {});
      expect(log.lines.some((l) => l.level === 'warn' && l.fields.topic === 'weird/topic')).toBe(true);
    });
  });

  describe('assignments', () => {
    it('executes and hands in its output under its own name, not retained, echoing task, step, epoch and token with usage', async () => {
      const { bus } = await started();
      bus.deliver('tasks/t1/assign/agent-1', assignment());
      await eventually(() => expect(bus.on('tasks/t1/output/s1/agent-1')).toHaveLength(1));
      const [raw] = bus.on('tasks/t1/output/s1/agent-1');
      expect(raw?.retain).toBe(false);
      expect(raw?.qos).toBe(1);
      const out = outputs(bus)[0];
      expect(out).toMatchObject({ taskId: 't1', stepId: 's1', epoch: 1, token: TOKEN, ok: true, output: { echoed: 'hello' } });
      expect(out?.usage?.usd).toBe(0.01);
      expect(out?.usage?.ms).toBeGreaterThanOrEqual(0);
    });

    it('charges what execute() metered instead of the résumé price', async () => {
      const { bus } = await started(agentDef({ execute: async (_a, ctx) => { ctx.charge(0.004); ctx.charge(0.001); return { echoed: 'x' }; } }));
      bus.deliver('tasks/t1/assign/agent-1', assignment());
      await eventually(() => expect(outputs(bus)[0]?.usage?.usd).toBeCloseTo(0.005, 10));
    });

    it('executes a duplicated (task, step, epoch) once', async () => {
      const execute = jest.fn(async () => ({ echoed: 'x' }));
      const { bus, log } = await started(agentDef({ execute }));
      bus.deliver('tasks/t1/assign/agent-1', assignment());
      bus.deliver('tasks/t1/assign/agent-1', assignment());
      await eventually(() => expect(bus.on('tasks/t1/output/s1/agent-1')).toHaveLength(1));
      await new Promise((r) => setTimeout(r, 30));
      expect(execute).toHaveBeenCalledTimes(1);
      expect(log.lines.some((l) => l.message === 'duplicate assignment ignored')).toBe(true);
    });

    it('executes a re-assignment of the same step with a newer epoch', async () => {
      const execute = jest.fn(async () => ({ echoed: 'x' }));
      const { bus } = await started(agentDef({ execute }));
      bus.deliver('tasks/t1/assign/agent-1', assignment());
      await eventually(() => expect(bus.on('tasks/t1/output/s1/agent-1')).toHaveLength(1));
      bus.deliver('tasks/t1/assign/agent-1', assignment({ epoch: 2 }));
      await eventually(() => expect(bus.on('tasks/t1/output/s1/agent-1')).toHaveLength(2));
      expect(outputs(bus).map((o) => o.epoch)).toEqual([1, 2]);
    });

    describe('pool offers', () => {
      const offer = (overrides: Record<string, unknown> = {}) => ({
        v: 1, taskId: 't1', stepId: 's1', pool: 'echoers', epoch: 1, skill: 'echo', goal: 'echo things', consumes: ['text'], produces: ['echoed'],
        deadline: new Date(Date.now() + 60_000).toISOString(), claimWithinMs: 30_000, ...overrides,
      });
      const claims = (bus: FakeBus) => bus.on('tasks/t1/claim/s1/agent-1').map((p) => JSON.parse(String(p.payload)) as Record<string, unknown>);

      it('claims an offer from its shared pool, then executes the assignment its claim won', async () => {
        const execute = jest.fn(async (a: Assignment) => ({ echoed: a.inputs.text ?? null }));
        const { bus } = await started(agentDef({ execute }, { pools: ['echoers'] }));
        expect(bus.subscribed).toContain('$share/echoers/tasks/+/pool/echoers');
        bus.deliver('tasks/t1/pool/echoers', offer());
        await eventually(() => expect(claims(bus)).toEqual([{ v: 1, taskId: 't1', stepId: 's1', epoch: 1 }]));
        // The offer itself runs nothing: it has neither the inputs nor a token.
        expect(execute).not.toHaveBeenCalled();
        expect(outputs(bus)).toEqual([]);
        bus.deliver('tasks/t1/assign/agent-1', assignment({ epoch: 2, agentId: ID }));
        await eventually(() => expect(outputs(bus)[0]).toMatchObject({ ok: true, epoch: 2, token: TOKEN, output: { echoed: 'hello' } }));
        expect(execute).toHaveBeenCalledTimes(1);
      });

      it('claims each offer once, and a re-offer again', async () => {
        const { bus } = await started(agentDef({}, { pools: ['echoers'] }));
        bus.deliver('tasks/t1/pool/echoers', offer());
        bus.deliver('tasks/t1/pool/echoers', offer());
        bus.deliver('tasks/t1/pool/echoers', offer({ epoch: 3 }));
        await eventually(() => expect(claims(bus).map((c) => c.epoch)).toEqual([1, 3]));
      });

      it('does not claim an offer it could not run: unknown skill, past deadline, no free slot, or another pool on the topic', async () => {
        let release: () => void = () => undefined;
        const execute = jest.fn(() => new Promise<{ echoed: string }>((resolve) => { release = () => resolve({ echoed: 'x' }); }));
        const { bus } = await started(agentDef({ execute }, { pools: ['echoers'] }));
        bus.deliver('tasks/t1/pool/echoers', offer({ skill: 'paint' }));
        bus.deliver('tasks/t1/pool/echoers', offer({ epoch: 2, deadline: new Date(Date.now() - 1000).toISOString() }));
        bus.deliver('tasks/t1/pool/echoers', offer({ epoch: 3, pool: 'others' }));
        bus.deliver('tasks/t9/assign/agent-1', assignment({ taskId: 't9' }));
        await eventually(() => expect(execute).toHaveBeenCalledTimes(1));
        bus.deliver('tasks/t1/pool/echoers', offer({ epoch: 4 }));
        await new Promise((r) => setTimeout(r, 50));
        expect(claims(bus)).toEqual([]);
        release();
        await eventually(() => expect(bus.on('tasks/t9/output/s1/agent-1')).toHaveLength(1));
        await new Promise((r) => setTimeout(r, 20));
        bus.deliver('tasks/t1/pool/echoers', offer({ epoch: 5 }));
        await eventually(() => expect(claims(bus).map((c) => c.epoch)).toEqual([5]));
      });
    });

    it('ignores an assignment whose payload names another task than its topic', async () => {
      const execute = jest.fn(async () => ({ echoed: 'x' }));
      const { bus, log } = await started(agentDef({ execute }));
      bus.deliver('tasks/t1/assign/agent-1', assignment({ taskId: 't2' }));
      expect(log.lines.some((l) => l.message === 'assignment ignored: its taskId does not match its topic')).toBe(true);
      expect(execute).not.toHaveBeenCalled();
    });

    it('ignores, with the failing fields, an assignment that breaks the schema', async () => {
      const { bus, log } = await started();
      bus.deliver('tasks/t1/assign/agent-1', assignment({ token: 'short' }));
      expect(log.lines.some((l) => l.message === 'invalid assignment ignored' && String(l.fields.error).includes('token'))).toBe(true);
      expect(bus.on('tasks/t1/output/s1/agent-1')).toHaveLength(0);
    });

    it('refuses a skill it does not have with a retryable unknown-skill output', async () => {
      const { bus } = await started();
      bus.deliver('tasks/t1/assign/agent-1', assignment({ skill: 'nl2chart' }));
      await eventually(() => expect(outputs(bus)[0]).toMatchObject({ ok: false, error: { code: 'unknown-skill', retryable: true }, token: TOKEN }));
    });

    it('refuses an assignment that arrives after its deadline', async () => {
      const { bus } = await started();
      bus.deliver('tasks/t1/assign/agent-1', assignment({ deadline: new Date(Date.now() - 1).toISOString() }));
      await eventually(() => expect(outputs(bus)[0]).toMatchObject({ ok: false, error: { code: 'deadline-exceeded', retryable: false } }));
    });

    it('queues one assignment past maxConcurrent and refuses the next as busy', async () => {
      let release: () => void = () => undefined;
      const gate = new Promise<void>((r) => (release = r));
      const { bus, runtime } = await started(agentDef({ execute: async () => { await gate; return { echoed: 'x' }; } }), { maxQueued: 1 });
      bus.deliver('tasks/t1/assign/agent-1', assignment({ stepId: 's1' }));
      bus.deliver('tasks/t1/assign/agent-1', assignment({ stepId: 's2' }));
      bus.deliver('tasks/t1/assign/agent-1', assignment({ stepId: 's3' }));
      expect(runtime.load()).toEqual({ active: 1, queued: 1, max: 1 });
      await eventually(() => expect(outputs(bus, 's3')[0]).toMatchObject({ ok: false, error: { code: 'busy', retryable: true } }));
      release();
      await eventually(() => expect(outputs(bus, 's2')[0]?.ok).toBe(true));
      expect(outputs(bus, 's1')[0]?.ok).toBe(true);
    });

    it('reports a StepError with its code and retryability', async () => {
      const { bus } = await started(agentDef({ execute: async () => { throw new StepError('invalid-input', 'text is empty'); } }));
      bus.deliver('tasks/t1/assign/agent-1', assignment());
      await eventually(() => expect(outputs(bus)[0]).toMatchObject({ ok: false, error: { code: 'invalid-input', message: 'text is empty', retryable: false } }));
    });

    it('reports any other exception as a retryable execution-failed', async () => {
      const { bus } = await started(agentDef({ execute: async () => { throw new TypeError('x is undefined'); } }));
      bus.deliver('tasks/t1/assign/agent-1', assignment());
      await eventually(() => expect(outputs(bus)[0]).toMatchObject({ ok: false, error: { code: 'execution-failed', message: 'x is undefined', retryable: true } }));
    });

    it('fails the step with missing-artifacts when execute() leaves out a produced artifact', async () => {
      const { bus } = await started(agentDef({ execute: async () => ({ other: 1 }) }));
      bus.deliver('tasks/t1/assign/agent-1', assignment());
      await eventually(() => expect(outputs(bus)[0]).toMatchObject({ ok: false, error: { code: 'missing-artifacts', message: 'step s1 must produce echoed' } }));
    });

    it('fails the step with invalid-output when execute() returns something that is not JSON artifacts', async () => {
      const { bus } = await started(agentDef({ execute: async () => ({ echoed: () => 1 }) as never }));
      bus.deliver('tasks/t1/assign/agent-1', assignment());
      await eventually(() => expect(outputs(bus)[0]).toMatchObject({ ok: false, error: { code: 'invalid-output' } }));
    });

    it('publishes payload-too-large instead of an output over 128 KB', async () => {
      const { bus } = await started(agentDef({ execute: async () => ({ echoed: 'x'.repeat(140 * 1024) }) }));
      bus.deliver('tasks/t1/assign/agent-1', assignment());
      await eventually(() => expect(outputs(bus)[0]).toMatchObject({ ok: false, error: { code: 'payload-too-large', retryable: false } }));
    });

    it('retries a failed output publish and logs when it gives up', async () => {
      const { bus, log } = await started(undefined, { publishAttempts: 2 });
      bus.failPublish.add('tasks/t1/output/s1/agent-1');
      bus.deliver('tasks/t1/assign/agent-1', assignment());
      await eventually(() => expect(log.lines.some((l) => l.message.startsWith('output publish failed; the lease will expire'))).toBe(true));
      expect(log.lines.filter((l) => l.message === 'output publish failed; retrying')).toHaveLength(1);
    });
  });

  describe('cancellation and deadlines', () => {
    function waitingAgent() {
      const seen: { reason?: unknown; started?: boolean } = {};
      const def = agentDef({
        execute: (_a, ctx) =>
          new Promise((_, reject) => {
            seen.started = true;
            ctx.signal.addEventListener('abort', () => {
              seen.reason = ctx.signal.reason;
              reject(ctx.signal.reason as Error);
            });
          }),
      });
      return { def, seen };
    }

    const status = (state: string, steps: object[] = []) => ({
      v: 1, taskId: 't1', state, phase: 'executing', errors: [], version: 3, updatedAt: new Date().toISOString(),
      plan: { steps, estUsd: 0, estMs: 0 },
    });
    const step = (epoch: number, state = 'assigned') => ({ id: 's1', skill: 'echo', consumes: [], produces: ['echoed'], state, agentId: ID, epoch, attempts: epoch, estUsd: 0, estMs: 1, proposedBy: ID });

    it('watches the task status while executing, aborts when it turns canceled, publishes no output and unsubscribes', async () => {
      const { def, seen } = waitingAgent();
      const { bus } = await started(def);
      bus.deliver('tasks/t1/assign/agent-1', assignment());
      await eventually(() => expect(seen.started).toBe(true));
      expect(bus.subscribed).toContain('tasks/t1/status');
      bus.deliver('tasks/t1/status', status('working', [step(1)]), true);
      bus.deliver('tasks/t1/status', status('canceled', [step(1, 'canceled')]), true);
      await eventually(() => expect(bus.unsubscribed).toContain('tasks/t1/status'));
      expect(String(seen.reason)).toContain('task t1 is canceled');
      expect(bus.on('tasks/t1/output/s1/agent-1')).toHaveLength(0);
    });

    it('aborts when the status shows the step re-assigned under a newer epoch', async () => {
      const { def, seen } = waitingAgent();
      const { bus } = await started(def);
      bus.deliver('tasks/t1/assign/agent-1', assignment());
      await eventually(() => expect(seen.started).toBe(true));
      bus.deliver('tasks/t1/status', status('working', [step(2)]));
      await eventually(() => expect(String(seen.reason)).toContain('re-assigned (epoch 2 > 1)'));
      expect(bus.on('tasks/t1/output/s1/agent-1')).toHaveLength(0);
    });

    it('never calls execute() when the retained status already says canceled on subscribing', async () => {
      const execute = jest.fn(async () => ({ echoed: 'x' }));
      const bus = new FakeBus();
      const runtime = new AgentRuntime(agentDef({ execute }), bus, { log: captureLogger() });
      const subscribe = bus.subscribe.bind(bus);
      bus.subscribe = async (filters) => {
        const result = await subscribe(filters);
        if (filters.includes('tasks/t1/status')) bus.deliver('tasks/t1/status', status('canceled'), true);
        return result;
      };
      await runtime.start();
      bus.deliver('tasks/t1/assign/agent-1', assignment());
      await eventually(() => expect(bus.unsubscribed).toContain('tasks/t1/status'));
      expect(execute).not.toHaveBeenCalled();
      expect(bus.on('tasks/t1/output/s1/agent-1')).toHaveLength(0);
    });

    it('keeps one status subscription for two steps of the same task', async () => {
      const { def } = waitingAgent();
      const { bus } = await started(agentDef({ execute: def.execute }, { maxConcurrent: 2 }));
      bus.deliver('tasks/t1/assign/agent-1', assignment({ stepId: 's1' }));
      bus.deliver('tasks/t1/assign/agent-1', assignment({ stepId: 's2' }));
      await eventually(() => expect(bus.subscribed.filter((f) => f === 'tasks/t1/status')).toHaveLength(1));
      bus.deliver('tasks/t1/status', status('failed'));
      await eventually(() => expect(bus.unsubscribed.filter((f) => f === 'tasks/t1/status')).toHaveLength(1));
    });

    it('aborts at the step deadline and publishes a deadline-exceeded output', async () => {
      const { def, seen } = waitingAgent();
      const { bus } = await started(def);
      bus.deliver('tasks/t1/assign/agent-1', assignment({ deadline: new Date(Date.now() + 80).toISOString() }));
      await eventually(() => expect(outputs(bus)[0]).toMatchObject({ ok: false, error: { code: 'deadline-exceeded', retryable: false } }));
      expect(String(seen.reason)).toContain('deadline');
    });

    it('frees the slot at the deadline even when execute() ignores the signal', async () => {
      const { bus, runtime } = await started(agentDef({ execute: () => new Promise(() => undefined) }));
      bus.deliver('tasks/t1/assign/agent-1', assignment({ deadline: new Date(Date.now() + 50).toISOString() }));
      await eventually(() => expect(outputs(bus)[0]?.ok).toBe(false));
      expect(runtime.load().active).toBe(0);
    });

    it('ignores a malformed status with a warning and keeps running', async () => {
      const { def } = waitingAgent();
      const { bus, log, runtime } = await started(def);
      bus.deliver('tasks/t1/assign/agent-1', assignment());
      await eventually(() => expect(bus.subscribed).toContain('tasks/t1/status'));
      bus.deliver('tasks/t1/status', { state: 'exploded' });
      expect(log.lines.some((l) => l.message === 'invalid task status ignored')).toBe(true);
      expect(runtime.load().active).toBe(1);
    });
  });

  describe('progress and telemetry', () => {
    it('publishes progress at QoS 0, throttled and coalesced to the latest value', async () => {
      const { bus } = await started(agentDef({
        execute: async (_a, ctx) => {
          for (let i = 1; i <= 100; i++) ctx.progress(i / 100, `row ${i}`);
          await new Promise((r) => setTimeout(r, 120));
          return { echoed: 'x' };
        },
      }));
      bus.deliver('tasks/t1/assign/agent-1', assignment());
      await eventually(() => expect(bus.on('tasks/t1/output/s1/agent-1')).toHaveLength(1));
      const progress = bus.on('tasks/t1/progress/s1/agent-1');
      expect(progress.every((p) => p.qos === 0 && !p.retain)).toBe(true);
      expect(progress.length).toBe(2);
      expect(progress.map((p) => Progress.parse(JSON.parse(p.payload)).fraction)).toEqual([0.01, 1]);
    });

    it('publishes telemetry measured from executions', async () => {
      const { bus } = await started(agentDef({ execute: async (a) => { if (a.stepId === 's2') throw new Error('no'); return { echoed: 'x' }; } }, { maxConcurrent: 2 }));
      bus.deliver('tasks/t1/assign/agent-1', assignment({ stepId: 's1' }));
      bus.deliver('tasks/t1/assign/agent-1', assignment({ stepId: 's2' }));
      await eventually(() => {
        const last = bus.json('agents/agent-1/telemetry').map((t) => Telemetry.parse(t)).at(-1);
        expect(last).toMatchObject({ executions: 2, costUsd: 0.01, successRate: 0.5 });
      });
    });

    it('publishes load changes on its retained status', async () => {
      const { bus } = await started();
      bus.deliver('tasks/t1/assign/agent-1', assignment());
      await eventually(() => {
        const loads = bus.json('agents/agent-1/status').map((s) => AgentStatus.parse(s).load?.active);
        expect(loads.at(-1)).toBe(0);
        expect(loads).toContain(1);
      });
    });
  });

  describe('reject notices', () => {
    it('logs the orchestrator\'s reason', async () => {
      const { bus, log } = await started();
      bus.deliver('agents/agent-1/errors', { v: 1, code: 'bad-token', message: 'token does not match', topic: 'tasks/t1/output/s1/agent-1', taskId: 't1', at: new Date().toISOString() });
      expect(log.lines.some((l) => l.level === 'warn' && l.fields.code === 'bad-token' && l.fields.reason === 'token does not match')).toBe(true);
    });

    it('warns about a malformed notice', async () => {
      const { bus, log } = await started();
      bus.deliver('agents/agent-1/errors', { nonsense: true });
      expect(log.lines.some((l) => l.message === 'invalid reject notice ignored')).toBe(true);
    });
  });

  describe('drain', () => {
    it('publishes draining then offline, declines new requests meanwhile, and stops the bus', async () => {
      let release: () => void = () => undefined;
      const gate = new Promise<void>((r) => (release = r));
      const { bus, runtime } = await started(agentDef({ execute: async () => { await gate; return { echoed: 'x' }; } }));
      bus.deliver('tasks/t1/assign/agent-1', assignment());
      const stopping = runtime.stop();
      await eventually(() => expect(bus.json('agents/agent-1/status').map((s) => AgentStatus.parse(s).state)).toContain('draining'));
      bus.deliver('tasks/t2/request', request);
      await eventually(() => expect(bus.json('tasks/t2/proposal/agent-1')).toEqual([{ v: 1, decline: true, reason: 'agent agent-1 is draining' }]));
      bus.deliver('tasks/t1/assign/agent-1', assignment({ stepId: 's9' }));
      await eventually(() => expect(outputs(bus, 's9')[0]).toMatchObject({ ok: false, error: { code: 'agent-draining', retryable: true } }));
      release();
      await stopping;
      await runtime.stopped;
      expect(outputs(bus, 's1')[0]?.ok).toBe(true);
      expect(AgentStatus.parse(bus.json('agents/agent-1/status').at(-1)).state).toBe('offline');
      expect(bus.stopCalls).toBe(1);
    });

    it('refuses queued work and aborts running steps with a retryable agent-shutdown when the drain times out', async () => {
      const { bus, runtime } = await started(agentDef({ execute: (_a, ctx) => new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('stopped')))) }), { maxQueued: 1 });
      bus.deliver('tasks/t1/assign/agent-1', assignment({ stepId: 's1' }));
      bus.deliver('tasks/t1/assign/agent-1', assignment({ stepId: 's2' }));
      await runtime.stop({ timeoutMs: 50 });
      expect(outputs(bus, 's2')[0]).toMatchObject({ ok: false, error: { code: 'agent-draining', retryable: true } });
      expect(outputs(bus, 's1')[0]).toMatchObject({ ok: false, error: { code: 'agent-shutdown', retryable: true } });
      expect(AgentStatus.parse(bus.json('agents/agent-1/status').at(-1)).state).toBe('offline');
    });

    it('drains once however often stop() is called', async () => {
      const { bus, runtime } = await started();
      await Promise.all([runtime.stop(), runtime.stop()]);
      expect(bus.stopCalls).toBe(1);
    });
  });
});

describe('runAgent', () => {
  describe('connecting', () => {
    it('registers a retained offline last will on the agent\'s status topic and uses the agent id as client id', async () => {
      const bus = new FakeBus();
      let seen: { clientId: string; options: Mqtt5BusOptions } | undefined;
      const agent = await runAgent(agentDef(), { host: 'localhost', port: 8883, certPath: 'c', keyPath: 'k' }, {
        log: captureLogger(),
        journal: new InMemoryJournal(),
        connect: async (_conn, clientId, options) => {
          seen = { clientId, options };
          return bus;
        },
      });
      expect(seen?.clientId).toBe(ID);
      expect(seen?.options.will?.topic).toBe('agents/agent-1/status');
      expect(seen?.options.will?.retain).toBe(true);
      expect(AgentStatus.parse(JSON.parse(seen?.options.will?.payload ?? ''))).toMatchObject({ state: 'offline', reason: 'connection lost (last will)' });
      await agent.stop();
    });

    it('stops the connection and rethrows when birth fails', async () => {
      const bus = new FakeBus();
      bus.refuse.set('agents/agent-1/errors', 'NotAuthorized');
      await expect(runAgent(agentDef(), { host: 'h', port: 1, certPath: 'c', keyPath: 'k' }, { log: captureLogger(), journal: new InMemoryJournal(), connect: async () => bus })).rejects.toThrow('agents/agent-1/errors (NotAuthorized)');
      expect(bus.stopCalls).toBe(1);
    });
  });
});
