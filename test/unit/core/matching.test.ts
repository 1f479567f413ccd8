import { createRankAgents, MATCH_AUDIT_LIMITS, MATCH_WEIGHTS, rankAgents } from '../../../core/matching';
import type { AgentRecord } from '../../../core/model';
import type { MatchContext } from '../../../core/plan-types';
import { Resume, type AgentState, type Constraints, type Telemetry } from '../../../core/schemas';

interface AgentOptions {
  usd?: number;
  p95?: number;
  region?: string;
  skills?: string[];
  state?: AgentState;
  verified?: string[];
  dataClasses?: string[];
  load?: { active: number; max: number };
  maxConcurrent?: number;
  telemetry?: Omit<Telemetry, 'v'>;
}

function agent(agentId: string, o: AgentOptions = {}): AgentRecord {
  return {
    agentId,
    resume: Resume.parse({
      skills: o.skills ?? ['nl2chart'],
      cost: { usd: o.usd ?? 0.02, p95_ms: o.p95 ?? 350 },
      region: o.region ?? 'eu-central-1',
      accredit: o.verified ?? [],
      ...(o.dataClasses ? { dataClasses: o.dataClasses } : {}),
      ...(o.maxConcurrent ? { maxConcurrent: o.maxConcurrent } : {}),
    }),
    state: o.state ?? 'online',
    ...(o.load ? { load: o.load } : {}),
    ...(o.telemetry ? { telemetry: { v: 1, ...o.telemetry } } : {}),
    verifiedAccredit: o.verified ?? [],
    unverifiedAccredit: [],
    updatedAt: 0,
    version: 1,
  };
}

const step = { id: 's1', skill: 'nl2chart', proposedBy: 'proposer' };

function context(constraints: Constraints = {}, exclude: string[] = []): MatchContext {
  return { constraints, exclude, now: 0 };
}

describe('matching', () => {
  describe('rankAgents', () => {
    describe('when candidates must be excluded', () => {
      it.each<[string, AgentRecord, Constraints, string[], string]>([
        ['offline', agent('x', { state: 'offline' }), {}, [], 'agent is offline'],
        ['draining', agent('x', { state: 'draining' }), {}, [], 'agent is draining'],
        ['in the exclude list', agent('x'), {}, ['x'], 'excluded for this step (failed or lost it before)'],
        ['without the skill', agent('x', { skills: ['sql-optimiser'] }), {}, [], 'résumé lacks skill nl2chart'],
        ['outside the allowed regions', agent('x', { region: 'us-east-1' }), { region: ['eu-central-1', 'eu-west-1'] }, [], 'region us-east-1 not in [eu-central-1, eu-west-1]'],
        ['missing a required accreditation', agent('x', { verified: ['gdpr'] }), { accredit: ['ISO27001'] }, [], 'missing verified accreditation ISO27001'],
        ['without the data class', agent('x', { verified: ['gdpr'] }), { dataClasses: ['phi'] }, [], 'résumé lacks data class phi'],
        ['missing the accreditation a data class implies', agent('x', { dataClasses: ['phi'] }), { dataClasses: ['phi'] }, [], 'missing verified accreditation gdpr'],
        ['at its reported capacity', agent('x', { load: { active: 4, max: 4 } }), {}, [], 'at capacity (4/4 active)'],
        ['at its résumé maxConcurrent', agent('x', { load: { active: 2, max: 10 }, maxConcurrent: 2 }), {}, [], 'at capacity (2/2 active)'],
      ])('excludes an agent %s', (_label, candidate, constraints, exclude, reason) => {
        const audit = rankAgents(step, [candidate, agent('fine', { verified: ['gdpr', 'ISO27001'], dataClasses: ['phi'] })], context(constraints, exclude));
        expect(audit.excluded).toEqual([{ agentId: 'x', reason }]);
        expect(audit.chosen).toBe('fine');
        expect(audit.ranked.map((r) => r.agentId)).toEqual(['fine']);
      });

      it('chooses nobody and waits for nobody when every candidate is excluded by a static rule', () => {
        const audit = rankAgents(step, [agent('a', { skills: ['sql'] }), agent('b', { region: 'us-east-1' })], context({ region: 'eu-central-1' }));
        expect(audit).toEqual({
          stepId: 's1', ranked: [],
          excluded: [{ agentId: 'a', reason: 'résumé lacks skill nl2chart' }, { agentId: 'b', reason: 'region us-east-1 not in [eu-central-1]' }],
        });
        expect('chosen' in audit).toBe(false);
        expect('waitingFor' in audit).toBe(false);
      });

      it('names the most lasting reason when an agent fails a static rule and is also offline', () => {
        const audit = rankAgents(step, [agent('a', { region: 'us-east-1', state: 'offline' })], context({ region: 'eu-central-1' }));
        expect(audit.excluded).toEqual([{ agentId: 'a', reason: 'region us-east-1 not in [eu-central-1]' }]);
        expect(audit.waitingFor).toBeUndefined();
      });

      it('counts a duplicated candidate once', () => {
        const audit = rankAgents(step, [agent('a'), agent('a')], context());
        expect(audit.ranked).toHaveLength(1);
      });
    });

    describe('when nobody can be chosen only for now', () => {
      it('lists the offline, draining and busy agents that pass every static rule as worth waiting for', () => {
        const audit = rankAgents(step, [
          agent('off', { state: 'offline' }),
          agent('drain', { state: 'draining' }),
          agent('busy', { load: { active: 4, max: 4 } }),
          agent('wrong-region', { region: 'us-east-1', state: 'offline' }),
          agent('failed-before', { state: 'offline' }),
        ], context({ region: 'eu-central-1' }, ['failed-before']));
        expect(audit.chosen).toBeUndefined();
        expect(audit.waitingFor).toEqual(['off', 'drain', 'busy']);
        expect(audit.excluded.map((e) => e.reason)).toEqual([
          'agent is offline', 'agent is draining', 'at capacity (4/4 active)', 'region us-east-1 not in [eu-central-1]', 'excluded for this step (failed or lost it before)',
        ]);
      });

      it('leaves waitingFor out when someone is chosen', () => {
        const audit = rankAgents(step, [agent('off', { state: 'offline' }), agent('on')], context());
        expect(audit.chosen).toBe('on');
        expect(audit.waitingFor).toBeUndefined();
      });

      it('bounds waitingFor by the excluded limit', () => {
        const rank = createRankAgents(MATCH_WEIGHTS, { ranked: 10, excluded: 3 });
        const audit = rank(step, Array.from({ length: 8 }, (_, i) => agent(`a${i}`, { state: 'offline' })), context());
        expect(audit.waitingFor).toEqual(['a0', 'a1', 'a2']);
        expect(audit.excluded).toHaveLength(3);
      });
    });

    describe('when candidates are ranked', () => {
      it('prefers the cheaper agent, all else equal', () => {
        expect(rankAgents(step, [agent('dear', { usd: 0.04 }), agent('cheap', { usd: 0.02 })], context()).chosen).toBe('cheap');
      });

      it('prefers the faster agent, all else equal', () => {
        expect(rankAgents(step, [agent('slow', { p95: 700 }), agent('fast', { p95: 100 })], context()).chosen).toBe('fast');
      });

      it('uses reported telemetry over the résumé once the agent has executions', () => {
        const cheapOnPaper = agent('paper', { usd: 0.01, telemetry: { executions: 50, costUsd: 0.05, p95Ms: 350, successRate: 0.9 } });
        const audit = rankAgents(step, [cheapOnPaper, agent('honest', { usd: 0.02 })], context());
        expect(audit.chosen).toBe('honest');
        expect(audit.ranked.find((r) => r.agentId === 'paper')?.why).toMatch(/^cost \$0\.05 \(reported over 50 runs\)/);
      });

      it('ignores telemetry with no executions', () => {
        const audit = rankAgents(step, [agent('new', { usd: 0.01, telemetry: { executions: 0, costUsd: 9, p95Ms: 9999, successRate: 0 } })], context());
        expect(audit.ranked[0]?.why).toMatch(/^cost \$0\.01 \(résumé\).*success 0\.900 \(assumed\)/);
      });

      it('prefers the more reliable agent', () => {
        const flaky = agent('flaky', { telemetry: { executions: 100, costUsd: 0.02, p95Ms: 350, successRate: 0.5 } });
        const solid = agent('solid', { telemetry: { executions: 100, costUsd: 0.02, p95Ms: 350, successRate: 0.99 } });
        expect(rankAgents(step, [flaky, solid], context()).chosen).toBe('solid');
      });

      it('prefers the less loaded agent', () => {
        expect(rankAgents(step, [agent('busy', { load: { active: 3, max: 4 } }), agent('idle', { load: { active: 0, max: 4 } })], context()).chosen).toBe('idle');
      });

      it('prefers the proposer among equals, and only slightly', () => {
        expect(rankAgents(step, [agent('another'), agent('proposer')], context()).chosen).toBe('proposer');
        expect(rankAgents(step, [agent('cheaper', { usd: 0.01 }), agent('proposer', { usd: 0.02 })], context()).chosen).toBe('cheaper');
      });

      it('breaks exact ties on agent id', () => {
        const audit = rankAgents(step, [agent('b'), agent('c'), agent('a')], context());
        expect(audit.ranked.map((r) => r.agentId)).toEqual(['a', 'b', 'c']);
        expect(new Set(audit.ranked.map((r) => r.score)).size).toBe(1);
      });

      it('shows every term of the score in why', () => {
        const audit = rankAgents(step, [agent('proposer', { load: { active: 1, max: 4 } })], context());
        expect(audit.ranked[0]).toEqual({
          agentId: 'proposer',
          score: 0.35 + 0.25 + 0.25 * 0.9 + 0.1 * 0.75 + 0.05,
          why: 'cost $0.02 (résumé) 1.000×0.35, p95 350 ms (résumé) 1.000×0.25, success 0.900 (assumed) ×0.25, load 1/4 0.750×0.1, proposer +0.05 = 0.950',
        });
      });

      it('scores a free agent as cheapest without dividing by zero', () => {
        const audit = rankAgents(step, [agent('free', { usd: 0 }), agent('paid', { usd: 0.02 })], context());
        expect(audit.chosen).toBe('free');
        expect(audit.ranked.every((r) => Number.isFinite(r.score))).toBe(true);
      });
    });

    describe('when there are many candidates', () => {
      it('keeps only the best-ranked and the first excluded in the audit, still choosing the best', () => {
        const many = Array.from({ length: 50 }, (_, i) => agent(`a${String(i).padStart(2, '0')}`, { usd: 0.01 + i / 1000, state: i % 2 === 0 ? 'online' : 'offline' }));
        const audit = rankAgents(step, many, context());
        expect(audit.chosen).toBe('a00');
        expect(audit.ranked).toHaveLength(MATCH_AUDIT_LIMITS.ranked);
        expect(audit.ranked.map((r) => r.agentId)).toEqual(['a00', 'a02', 'a04', 'a06', 'a08', 'a10', 'a12', 'a14', 'a16', 'a18']);
        expect(audit.excluded).toHaveLength(MATCH_AUDIT_LIMITS.excluded);
        expect(audit.excluded[0]).toEqual({ agentId: 'a01', reason: 'agent is offline' });
      });

      it('honours custom limits', () => {
        const rank = createRankAgents(MATCH_WEIGHTS, { ranked: 2, excluded: 0 });
        const audit = rank(step, [agent('a'), agent('b'), agent('c'), agent('d', { state: 'offline' })], context());
        expect(audit.ranked.map((r) => r.agentId)).toEqual(['a', 'b']);
        expect(audit.excluded).toEqual([]);
      });
    });

    describe('with custom weights', () => {
      it('lets latency dominate when weighted so', () => {
        const latencyFirst = createRankAgents({ ...MATCH_WEIGHTS, cost: 0.05, latency: 0.8 });
        const candidates = [agent('cheap-slow', { usd: 0.01, p95: 900 }), agent('dear-fast', { usd: 0.03, p95: 100 })];
        expect(rankAgents(step, candidates, context()).chosen).toBe('cheap-slow');
        expect(latencyFirst(step, candidates, context()).chosen).toBe('dear-fast');
      });
    });
  });
});
