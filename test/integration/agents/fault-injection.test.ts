/**
 * The agent runtime's test-only duplicate injection (PORCHLIGHT_FAULT_DUPLICATE_RATE) and its
 * handling of messages a rejoined session delivers before the agent is online. Runs the runtime
 * over the in-memory bus; the chaos e2e test runs the same paths across processes.
 */
import { AgentRuntime } from '../../../agents/runtime/agent-runtime';
import { defineAgent } from '../../../agents/runtime/define-agent';
import { FAULT_ENV, faultsFromEnvironment, seededRandom } from '../../../agents/runtime/fault-injection';
import { ConfigError } from '../../../core/errors';
import { StepOutput } from '../../../core/schemas';
import { captureLogger, eventually, FakeBus } from '../../unit/agents/runtime/fake-bus';

const ID = 'agent-dup';

function assignment(epoch = 1) {
  return {
    v: 1, taskId: 't1', stepId: 's1', epoch, token: 'tok-0123456789abcdef-xyz', skill: 'echo', goal: 'echo', inputs: { text: 'hi' },
    produces: ['echoed'], deadline: new Date(Date.now() + 60_000).toISOString(), leaseMs: 30_000,
  };
}

function counted() {
  const calls: number[] = [];
  const def = defineAgent({
    id: ID,
    resume: { skills: ['echo'], cost: { usd: 0.01, p95_ms: 50 }, region: 'eu-central-1', maxConcurrent: 4 },
    propose: () => ({ steps: [{ id: 'echo', skill: 'echo', consumes: ['text'], produces: ['echoed'], estUsd: 0.01, estMs: 50 }] }),
    execute: async (a) => {
      calls.push(a.epoch);
      return { echoed: a.inputs.text ?? null };
    },
  });
  return { def, calls };
}

describe('agent runtime fault injection', () => {
  describe('reading the environment', () => {
    it('is off when PORCHLIGHT_FAULT_DUPLICATE_RATE is not set', () => {
      expect(faultsFromEnvironment({})).toBeUndefined();
      expect(faultsFromEnvironment({ [FAULT_ENV.duplicateRate]: '  ' })).toBeUndefined();
    });

    it('names the variable when the rate or the seed is malformed', () => {
      expect(() => faultsFromEnvironment({ [FAULT_ENV.duplicateRate]: '1.5' })).toThrow(ConfigError);
      expect(() => faultsFromEnvironment({ [FAULT_ENV.duplicateRate]: 'often' })).toThrow(/PORCHLIGHT_FAULT_DUPLICATE_RATE=often/);
      expect(() => faultsFromEnvironment({ [FAULT_ENV.duplicateRate]: '0.1', [FAULT_ENV.seed]: '-3' })).toThrow(/PORCHLIGHT_FAULT_SEED=-3/);
    });

    it('replays the same decisions from the same seed', () => {
      const a = faultsFromEnvironment({ [FAULT_ENV.duplicateRate]: '0.05', [FAULT_ENV.seed]: '9' });
      const b = seededRandom(9);
      expect(a?.duplicateRate).toBe(0.05);
      const draws = Array.from({ length: 5 }, () => a?.random?.());
      expect(draws).toEqual(Array.from({ length: 5 }, () => b()));
      for (const d of draws) expect(d).toBeGreaterThanOrEqual(0);
    });
  });

  describe('duplicate delivery', () => {
    it('dispatches every message twice at rate 1, yet executes an assignment once and publishes one output', async () => {
      const { def, calls } = counted();
      const bus = new FakeBus();
      const log = captureLogger();
      await new AgentRuntime(def, bus, { log, faults: { duplicateRate: 1, random: () => 0 } }).start();
      bus.deliver('tasks/t1/request', { v: 1, goal: 'echo', input: { text: 'hi' }, want: ['echoed'] });
      bus.deliver('tasks/t1/assign/agent-dup', assignment());
      await eventually(() => expect(bus.on('tasks/t1/output/s1/agent-dup')).toHaveLength(1));
      await new Promise((r) => setTimeout(r, 50));
      expect(calls).toEqual([1]);
      expect(bus.on('tasks/t1/output/s1/agent-dup')).toHaveLength(1);
      expect(StepOutput.parse(JSON.parse(bus.on('tasks/t1/output/s1/agent-dup')[0]?.payload ?? ''))).toMatchObject({ ok: true, epoch: 1 });
      expect(bus.on('tasks/t1/proposal/agent-dup')).toHaveLength(1);
      expect(log.lines.filter((l) => l.message === 'fault injection: duplicate delivery')).toHaveLength(2);
      expect(log.lines.filter((l) => l.message === 'duplicate assignment ignored')).toHaveLength(1);
    });

    it('still executes a new epoch of the same step', async () => {
      const { def, calls } = counted();
      const bus = new FakeBus();
      await new AgentRuntime(def, bus, { log: captureLogger(), faults: { duplicateRate: 1, random: () => 0 } }).start();
      bus.deliver('tasks/t1/assign/agent-dup', assignment(1));
      await eventually(() => expect(calls).toEqual([1]));
      bus.deliver('tasks/t1/assign/agent-dup', assignment(2));
      await eventually(() => expect(calls).toEqual([1, 2]));
    });

    it('never duplicates at rate 0', async () => {
      const { def } = counted();
      const bus = new FakeBus();
      const log = captureLogger();
      await new AgentRuntime(def, bus, { log, faults: { duplicateRate: 0 } }).start();
      bus.deliver('tasks/t1/assign/agent-dup', assignment());
      await eventually(() => expect(bus.on('tasks/t1/output/s1/agent-dup')).toHaveLength(1));
      expect(log.lines.filter((l) => l.message.startsWith('fault injection'))).toEqual([]);
    });
  });

  describe('messages that arrive before the agent is online', () => {
    it('holds them until birth is complete, then bids and executes instead of declining', async () => {
      const { def, calls } = counted();
      const bus = new FakeBus();
      const runtime = new AgentRuntime(def, bus, { log: captureLogger() });
      // A rejoined session delivers its queue right after the handler is registered, while
      // start() is still subscribing and publishing the résumé.
      const originalSubscribe = bus.subscribe.bind(bus);
      bus.subscribe = async (filters) => {
        bus.deliver('tasks/t9/request', { v: 1, goal: 'echo', input: { text: 'hi' }, want: ['echoed'] });
        bus.deliver('tasks/t1/assign/agent-dup', assignment());
        return originalSubscribe(filters);
      };
      await runtime.start();
      await eventually(() => expect(bus.on('tasks/t1/output/s1/agent-dup')).toHaveLength(1));
      expect(calls).toEqual([1]);
      const [proposal] = bus.json('tasks/t9/proposal/agent-dup') as { decline?: boolean; steps?: unknown[] }[];
      expect(proposal?.decline).toBeUndefined();
      expect(proposal?.steps).toHaveLength(1);
      // The résumé and status online went out before the held messages were handled.
      expect(bus.published.slice(0, 2).map((p) => p.topic)).toEqual(['agents/agent-dup/resume', 'agents/agent-dup/status']);
    });
  });
});
