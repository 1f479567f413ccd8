import { rankAgents } from '../../../core/matching';
import type { AgentRecord } from '../../../core/model';
import type { PlanInput } from '../../../core/plan-types';
import { planTask } from '../../../core/planner';
import {
  addSample, adjustFactor, increments, LATENCY_BUCKET_BOUNDS_MS, latencyBucket, latencyQuantile, NO_MEASUREMENTS, planWithMeasurements, reputationOf,
  shrinkRatio, type AgentMeasurements, type MeasurementSample,
} from '../../../core/reputation';
import { Resume, TaskRequest } from '../../../core/schemas';
import { inbound, orchestratorHarness, sha256Hex } from '../../helpers/in-memory-ports';
import { Assignment } from '../../../core/schemas';

/** Real cost $0.01 and 200 ms for both; the liar claims a tenth of each. */
const REAL = { usd: 0.01, ms: 200 };

function agent(agentId: string, claim: number, measured?: AgentMeasurements): AgentRecord {
  return {
    agentId,
    resume: Resume.parse({ skills: ['quote'], cost: { usd: REAL.usd * claim, p95_ms: REAL.ms * claim }, region: 'eu-central-1' }),
    state: 'online', verifiedAccredit: [], unverifiedAccredit: [], updatedAt: 0, version: 1,
    ...(measured ? { measured } : {}),
  };
}

/** `n` honest-to-reality samples of an agent that bid `claim` × the real figures. */
function history(n: number, claim: number, ok = true): AgentMeasurements {
  let sums = NO_MEASUREMENTS;
  for (let i = 0; i < n; i += 1) sums = addSample(sums, { ok, ms: REAL.ms, bidMs: REAL.ms * claim, usd: REAL.usd, bidUsd: REAL.usd * claim });
  return sums;
}

function planInput(honest: AgentRecord, liar: AgentRecord): PlanInput {
  const bid = (agentId: string, claim: number) => ({
    agentId, steps: [{ id: 'q', skill: 'quote', consumes: ['item'], produces: ['quote'], estUsd: REAL.usd * claim, estMs: REAL.ms * claim }],
  });
  return {
    request: TaskRequest.parse({ v: 1, goal: 'quote', input: { item: 'x' }, want: ['quote'] }),
    bids: [bid('honest', 1), bid('liar', 0.1)],
    agents: new Map([['honest', honest], ['liar', liar]]),
    now: 0,
  };
}

describe('reputation', () => {
  describe('the sums', () => {
    it('puts a latency in the first bucket whose bound holds it, the bounds growing by √2', () => {
      expect(latencyBucket(0)).toBe(0);
      expect(latencyBucket(1)).toBe(0);
      expect(LATENCY_BUCKET_BOUNDS_MS[latencyBucket(200)]).toBeGreaterThanOrEqual(200);
      expect(LATENCY_BUCKET_BOUNDS_MS[latencyBucket(200) - 1]).toBeLessThan(200);
      expect(latencyBucket(1e12)).toBe(LATENCY_BUCKET_BOUNDS_MS.length - 1);
    });

    it('reads p50 and p95 from the histogram as the bound of the bucket holding the quantile', () => {
      let sums = NO_MEASUREMENTS;
      for (let i = 0; i < 19; i += 1) sums = addSample(sums, { ok: true, ms: 100, bidMs: 100, usd: 0, bidUsd: 0 });
      sums = addSample(sums, { ok: true, ms: 5000, bidMs: 100, usd: 0, bidUsd: 0 });
      expect(latencyQuantile(sums.latency, 0.5)).toBe(LATENCY_BUCKET_BOUNDS_MS[latencyBucket(100)]);
      expect(latencyQuantile(sums.latency, 0.95)).toBe(LATENCY_BUCKET_BOUNDS_MS[latencyBucket(100)]);
      expect(latencyQuantile(sums.latency, 1)).toBe(LATENCY_BUCKET_BOUNDS_MS[latencyBucket(5000)]);
      expect(latencyQuantile({}, 0.95)).toBeUndefined();
    });

    it('counts a sample without a duration or a cost in the steps only', () => {
      const sample: MeasurementSample = { ok: false, bidMs: 100, bidUsd: 0.01 };
      expect(increments(sample)).toEqual({ counters: { steps: 1, successes: 0, timed: 0, msSum: 0, bidMsSum: 0, costed: 0, usdSum: 0, bidUsdSum: 0 } });
      const sums = addSample(NO_MEASUREMENTS, sample);
      expect(reputationOf(sums)).toMatchObject({ steps: 1, successRate: 0, usdFactor: 1, msFactor: 1 });
    });
  });

  describe('the formula', () => {
    it('shrinks a ratio toward 1 with a prior of 3 steps', () => {
      expect(shrinkRatio(10, 0)).toBe(1);
      expect(shrinkRatio(10, 1)).toBeCloseTo(13 / 4);
      expect(shrinkRatio(10, 3)).toBeCloseTo(33 / 6);
      expect(shrinkRatio(10, 1000)).toBeCloseTo(10, 1);
    });

    it('leaves agents within their bids alone and penalises an over-runner beyond its ratio', () => {
      expect(adjustFactor(0.5)).toBe(1);
      expect(adjustFactor(1)).toBe(1);
      expect(adjustFactor(2)).toBeCloseTo(3);
      expect(adjustFactor(10)).toBeCloseTo(55);
    });

    it('derives the figures of an honest agent and of one that bids a tenth of what it costs', () => {
      const honest = reputationOf(history(20, 1));
      expect(honest).toMatchObject({ steps: 20, successRate: 1, usdRatio: 1, msRatio: 1, usdFactor: 1, msFactor: 1 });
      expect(honest.meanUsd).toBeCloseTo(REAL.usd);
      expect(honest.p95Ms).toBe(LATENCY_BUCKET_BOUNDS_MS[latencyBucket(REAL.ms)]);
      const liar = reputationOf(history(20, 0.1));
      expect(liar.usdRatio).toBeCloseTo(10);
      expect(liar.usdFactor).toBeCloseTo(adjustFactor((20 * 10 + 3) / 23));
      expect(liar.usdFactor).toBeGreaterThan(10);
    });
  });

  describe('planning', () => {
    it('chooses the liar on self-reports alone', () => {
      const outcome = planWithMeasurements(planInput(agent('honest', 1), agent('liar', 0.1)), planTask);
      expect(outcome.ok && outcome.steps[0]?.proposedBy).toBe('liar');
    });

    it('chooses the honest agent once the liar was measured, keeping the raw bid on the step and saying why', () => {
      const outcome = planWithMeasurements(planInput(agent('honest', 1, history(2, 1)), agent('liar', 0.1, history(2, 0.1))), planTask);
      if (!outcome.ok) throw new Error(outcome.reasons.join('; '));
      expect(outcome.steps[0]).toMatchObject({ proposedBy: 'honest', estUsd: REAL.usd, estMs: REAL.ms });
      expect(outcome.notes.join('\n')).toMatch(/bid of liar scaled by measurements over 2 step\(s\): USD ×/);
      expect(outcome.notes.join('\n')).toMatch(/bid of honest taken as is/);
    });

    it('restores the raw bid of a scaled step the plan still chose', () => {
      const input = planInput(agent('honest', 1), agent('liar', 0.1, history(1, 0.1)));
      const outcome = planWithMeasurements({ ...input, bids: input.bids.filter((b) => b.agentId === 'liar') }, planTask);
      if (!outcome.ok) throw new Error(outcome.reasons.join('; '));
      expect(outcome.steps[0]).toMatchObject({ proposedBy: 'liar', estUsd: REAL.usd * 0.1 });
      expect(outcome.estUsd).toBeGreaterThan(REAL.usd * 0.1);
    });
  });

  describe('matching', () => {
    const step = { id: 's1', skill: 'quote', proposedBy: 'nobody' };
    const ctx = { constraints: {}, exclude: [], now: 0 };

    it('ranks the liar first on self-reports alone', () => {
      expect(rankAgents(step, [agent('honest', 1), agent('liar', 0.1)], ctx).chosen).toBe('liar');
    });

    it('ranks the honest agent first once both were measured, and says the figures were measured', () => {
      const audit = rankAgents(step, [agent('honest', 1, history(5, 1)), agent('liar', 0.1, history(5, 0.1))], ctx);
      expect(audit.chosen).toBe('honest');
      expect(audit.ranked.find((r) => r.agentId === 'liar')?.why).toMatch(/^cost \$[0-9.]+ \(measured over 5 steps\)/);
    });

    it('ranks down an agent whose measured success rate is poor', () => {
      const audit = rankAgents(step, [agent('a', 1, history(10, 1, false)), agent('b', 1, history(10, 1))], ctx);
      expect(audit.chosen).toBe('b');
    });
  });

  describe('the orchestrator records', () => {
    const resume = { v: 1, skills: ['quote'], cost: { usd: 0.01, p95_ms: 200 }, region: 'eu-central-1', accredit: [] };

    async function assigned(leaseMs = 10_000) {
      const h = orchestratorHarness({ leaseMs, maxAttempts: 3 });
      await h.service.onResume(inbound('agents/q-a/resume', resume));
      await h.orchestrator.onRequest(inbound('clients/client-1/tasks/t1/request', {
        goal: 'quote', input: { item: 'x' }, want: ['quote'], skills: ['quote'], cancelHash: sha256Hex('s3cret-value'),
      }));
      await h.orchestrator.onProposal(inbound('tasks/t1/proposal/q-a', { steps: [{ id: 'q', skill: 'quote', consumes: ['item'], produces: ['quote'], estUsd: 0.002, estMs: 50 }] }));
      const a = Assignment.parse(h.publisher.last('tasks/t1/assign/q-a'));
      return { h, a };
    }

    it('one sample per accepted output: the orchestrator\'s own duration, the reported cost, the bid', async () => {
      const { h, a } = await assigned();
      h.clock.advance(750);
      const out = { taskId: 't1', stepId: a.stepId, epoch: a.epoch, token: a.token, ok: true, output: { quote: 1 }, usage: { usd: 0.02, ms: 1 } };
      expect(await h.orchestrator.onOutput(inbound(`tasks/t1/output/${a.stepId}/q-a`, out))).toMatchObject({ status: 'accepted' });
      // A redelivery changes nothing and measures nothing.
      await h.orchestrator.onOutput(inbound(`tasks/t1/output/${a.stepId}/q-a`, out));
      const m = (await h.registry.measurements(['q-a'])).get('q-a');
      expect(m).toMatchObject({ steps: 1, successes: 1, timed: 1, msSum: 750, bidMsSum: 50, costed: 1, usdSum: 0.02, bidUsdSum: 0.002 });
      expect(m?.latency).toEqual({ [latencyBucket(750)]: 1 });
    });

    it('an error output as a failure', async () => {
      const { h, a } = await assigned();
      h.clock.advance(100);
      await h.orchestrator.onOutput(inbound(`tasks/t1/output/${a.stepId}/q-a`, {
        taskId: 't1', stepId: a.stepId, epoch: a.epoch, token: a.token, ok: false, error: { code: 'boom', message: 'no' }, usage: { usd: 0.001, ms: 1 },
      }));
      expect((await h.registry.measurements(['q-a'])).get('q-a')).toMatchObject({ steps: 1, successes: 0, timed: 1, msSum: 100, costed: 1 });
    });

    it('a lapsed lease as a failure timed at the lease, with no cost', async () => {
      const { h } = await assigned(10_000);
      h.clock.advance(10_000);
      for (const e of h.timer.takeDue(h.clock.now())) await h.orchestrator.onTimer(e);
      expect((await h.registry.measurements(['q-a'])).get('q-a')).toMatchObject({ steps: 1, successes: 0, timed: 1, msSum: 10_000, costed: 0, usdSum: 0 });
    });

    it('a step lost to the agent going away as an untimed failure', async () => {
      const { h } = await assigned();
      await h.service.onStatus(inbound('agents/q-a/status', { state: 'offline', reason: 'last will' }));
      expect((await h.registry.measurements(['q-a'])).get('q-a')).toMatchObject({ steps: 1, successes: 0, timed: 0, costed: 0 });
    });
  });
});
