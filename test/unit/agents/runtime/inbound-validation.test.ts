import { AgentRuntime } from '../../../../agents/runtime/agent-runtime';
import { defineAgent } from '../../../../agents/runtime/define-agent';
import type { TaskRequest } from '../../../../core/schemas';
import { captureLogger, eventually, FakeBus } from './fake-bus';

const ID = 'agent-1';

async function started() {
  const proposed: TaskRequest[] = [];
  const def = defineAgent({
    id: ID,
    resume: { skills: ['echo'], cost: { usd: 0.01, p95_ms: 50 }, region: 'eu-central-1', maxConcurrent: 1 },
    propose: (request) => {
      proposed.push(request);
      return { steps: [{ id: 'echo', skill: 'echo', consumes: ['text'], produces: ['echoed'], estUsd: 0.01, estMs: 50 }] };
    },
    execute: async (a) => ({ echoed: a.inputs.text ?? null }),
  });
  const bus = new FakeBus();
  const log = captureLogger();
  const runtime = new AgentRuntime(def, bus, { log, statusMinGapMs: 10, telemetryMinGapMs: 10 });
  await runtime.start();
  return { bus, log, runtime, proposed };
}

describe('AgentRuntime inbound validation', () => {
  describe('a malformed request followed by a valid one for the same task id', () => {
    /**
     * The orchestrator refuses a malformed request without storing anything, so the same task id
     * can then be submitted properly. The runtime used to remember the task id before validating,
     * and so ignored the valid request as a "duplicate" and never bid.
     */
    it('answers the valid request', async () => {
      const { bus, log, proposed, runtime } = await started();
      bus.deliver('tasks/t1/request', '{"goal":');
      await eventually(() => expect(log.lines.some((l) => l.message === 'invalid task request ignored')).toBe(true));
      bus.deliver('tasks/t1/request', { goal: 'echo hello', input: { text: 'hello' }, want: ['echoed'] });
      await eventually(() => expect(bus.on(`tasks/t1/proposal/${ID}`)).toHaveLength(1));
      expect(proposed).toHaveLength(1);
      await runtime.stop({ timeoutMs: 10 });
    });

    it('still answers a redelivered valid request once', async () => {
      const { bus, proposed, runtime } = await started();
      const request = { goal: 'echo hello', input: { text: 'hello' }, want: ['echoed'] };
      bus.deliver('tasks/t1/request', request);
      bus.deliver('tasks/t1/request', request);
      await eventually(() => expect(bus.on(`tasks/t1/proposal/${ID}`)).toHaveLength(1));
      await new Promise((r) => setTimeout(r, 20));
      expect(bus.on(`tasks/t1/proposal/${ID}`)).toHaveLength(1);
      expect(proposed).toHaveLength(1);
      await runtime.stop({ timeoutMs: 10 });
    });
  });
});
