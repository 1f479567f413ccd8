import { PayloadTooLargeError } from '../../../core/errors';
import type { OutboundMessage } from '../../../core/model';
import { DEFAULT_ORCHESTRATOR_CONFIG, Orchestrator } from '../../../core/orchestrator';
import { flush } from '../../../core/outbox';
import { Assignment, MAX_PAYLOAD_BYTES, TaskStatus, type Resume } from '../../../core/schemas';
import { InMemoryRegistry, InMemoryTaskStore, ManualClock, ManualTimer, RecordingPublisher, testFencer, inbound } from '../../helpers/in-memory-ports';

/** A publisher that, like IotDataPublisher, refuses a payload over the broker's limit before sending. */
class LimitedPublisher extends RecordingPublisher {
  override async publish(message: OutboundMessage): Promise<void> {
    const bytes = message.payload === null ? 0 : Buffer.byteLength(JSON.stringify(message.payload), 'utf8');
    if (bytes > MAX_PAYLOAD_BYTES) throw new PayloadTooLargeError(bytes, MAX_PAYLOAD_BYTES);
    return super.publish(message);
  }
}

const big = (c: string): string => c.repeat(80 * 1024);

/**
 * Each step output fits under the 128 KB limit, but the task result carries every wanted
 * artifact and can exceed it. The outbox used to stop at the first message that failed to publish
 * and keep it for a retry: a message too large for the broker can never be published, so the
 * final status queued behind it was never published either and every sweep tried again.
 */
describe('outbox with a message over the broker payload limit', () => {
  describe('flush', () => {
    it('skips it, reports it in dropped, and publishes what follows in order', async () => {
      const publisher = new LimitedPublisher();
      const messages: OutboundMessage[] = [
        { topic: 'clients/client-1/tasks/t1/result', payload: { pad: big('x') + big('y') }, qos: 1, retain: true },
        { topic: 'clients/client-1/tasks/t1/status', payload: { state: 'completed' }, qos: 1, retain: true },
      ];
      const result = await flush(publisher, messages);
      expect(result.published.map((m) => m.topic)).toEqual(['clients/client-1/tasks/t1/status']);
      expect(result.remaining).toEqual([]);
      expect(result.dropped.map((d) => [d.message.topic, d.error.code])).toEqual([['clients/client-1/tasks/t1/result', 'payload-too-large']]);
    });

    it('still stops at a failure a retry may fix, keeping the rest', async () => {
      const publisher = new LimitedPublisher();
      publisher.failNext(1);
      const messages: OutboundMessage[] = [
        { topic: 'clients/client-1/tasks/t1/result', payload: {}, qos: 1, retain: true },
        { topic: 'clients/client-1/tasks/t1/status', payload: {}, qos: 1, retain: true },
      ];
      const result = await flush(publisher, messages);
      expect(result.remaining).toEqual(messages);
      expect(result.dropped).toEqual([]);
    });
  });

  describe('a task whose result is too large to publish', () => {
    it('publishes its completed status, logs the dropped result and leaves the outbox empty', async () => {
      const publisher = new LimitedPublisher();
      const tasks = new InMemoryTaskStore();
      const registry = new InMemoryRegistry();
      const clock = new ManualClock();
      const logs: { level: string; msg: string }[] = [];
      const orchestrator = new Orchestrator({
        tasks, registry, publisher, timer: new ManualTimer(), clock, fencer: testFencer, config: { ...DEFAULT_ORCHESTRATOR_CONFIG, minProposalWindowMs: 0 },
        log: (level, msg) => logs.push({ level, msg }),
      });
      const resume: Resume = { v: 1, skills: ['gen'], cost: { usd: 0.01, p95_ms: 10 }, region: 'eu-central-1', accredit: [] };
      await registry.putResume('gen-agent', resume, { verified: [], unverified: [] }, clock.now());
      await orchestrator.onRequest(inbound('clients/client-1/tasks/t1/request', { goal: 'two big artifacts', input: { seed: 1 }, want: ['a', 'b'], skills: ['gen'] }));
      const steps = [
        { id: 'make-a', skill: 'gen', consumes: ['seed'], produces: ['a'], estUsd: 0.01, estMs: 10 },
        { id: 'make-b', skill: 'gen', consumes: ['seed'], produces: ['b'], estUsd: 0.01, estMs: 10 },
      ];
      await orchestrator.onProposal(inbound('tasks/t1/proposal/gen-agent', { steps }));
      const assignments = publisher.on('tasks/t1/assign/gen-agent').map((m) => Assignment.parse(m.payload));
      expect(assignments).toHaveLength(2);
      for (const [i, a] of assignments.entries()) {
        const output = { taskId: 't1', stepId: a.stepId, epoch: a.epoch, token: a.token, ok: true, output: { [a.produces[0]!]: big(i === 0 ? 'a' : 'b') } };
        expect(await orchestrator.onOutput(inbound(`tasks/t1/output/${a.stepId}/${a.agentId}`, output))).toMatchObject({ status: 'accepted' });
      }

      expect(TaskStatus.parse(publisher.retained.get('clients/client-1/tasks/t1/status'))).toMatchObject({ state: 'completed', phase: 'done' });
      expect(publisher.retained.has('clients/client-1/tasks/t1/result')).toBe(false);
      expect(logs).toContainEqual({ level: 'error', msg: 'message over the broker payload limit dropped' });
      expect((await tasks.get('t1'))?.outbox).toEqual([]);
    });
  });
});
