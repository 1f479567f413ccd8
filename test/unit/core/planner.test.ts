import type { AgentRecord } from '../../../core/model';
import type { Bidder, PlanOutcome } from '../../../core/plan-types';
import { planTask } from '../../../core/planner';
import { Resume, TaskRequest, type AgentState, type ProposedStep } from '../../../core/schemas';

const NOW = Date.parse('2030-01-01T00:00:00Z');

interface AgentOptions {
  region?: string;
  state?: AgentState;
  verified?: string[];
  unverified?: string[];
  dataClasses?: string[];
}

function agent(agentId: string, o: AgentOptions = {}): AgentRecord {
  return {
    agentId,
    resume: Resume.parse({
      skills: ['work'],
      cost: { usd: 0.01, p95_ms: 100 },
      region: o.region ?? 'eu-central-1',
      accredit: [...(o.verified ?? []), ...(o.unverified ?? [])],
      ...(o.dataClasses ? { dataClasses: o.dataClasses } : {}),
    }),
    state: o.state ?? 'online',
    verifiedAccredit: o.verified ?? [],
    unverifiedAccredit: o.unverified ?? [],
    updatedAt: 0,
    version: 1,
  };
}

function step(id: string, consumes: string[], produces: string[], estUsd: number, estMs = 100, extra: Partial<ProposedStep> = {}): ProposedStep {
  return { id, skill: 'work', consumes, produces, estUsd, estMs, ...extra };
}

function request(want: string[], constraints: Record<string, unknown> = {}, input: Record<string, unknown> = { question: 'q' }): TaskRequest {
  return TaskRequest.parse({ goal: 'answer the question', input, want, constraints });
}

/** Plans with every bidder registered online in eu-central-1 unless `agents` says otherwise. */
function plan(req: TaskRequest, bids: Record<string, ProposedStep[]>, agents: AgentRecord[] = []): PlanOutcome {
  const registry = new Map<string, AgentRecord>(Object.keys(bids).map((id) => [id, agent(id)]));
  for (const a of agents) registry.set(a.agentId, a);
  const bidders: Bidder[] = Object.entries(bids).map(([agentId, steps]) => ({ agentId, steps }));
  return planTask({ request: req, bids: bidders, agents: registry, now: NOW });
}

function ok(outcome: PlanOutcome): Extract<PlanOutcome, { ok: true }> {
  if (!outcome.ok) throw new Error(`expected a plan, got: ${outcome.reasons.join('; ')}`);
  return outcome;
}

function fail(outcome: PlanOutcome): readonly string[] {
  if (outcome.ok) throw new Error(`expected no plan, got ${outcome.steps.length} steps`);
  return outcome.reasons;
}

const chosen = (o: PlanOutcome): string[] => ok(o).steps.map((s) => `${s.proposedBy}/${s.proposedStepId}`);

describe('planner', () => {
  describe('planTask', () => {
    describe('when alternatives compete', () => {
      it('picks the cheapest derivation across bidders and renumbers steps in topological order', () => {
        const outcome = ok(
          plan(request(['chart']), {
            'agent-a': [step('sql', ['question'], ['table'], 0.02, 300), step('viz', ['table'], ['chart'], 0.05, 200)],
            'agent-b': [step('all-in-one', ['question'], ['chart'], 0.1, 100)],
            'agent-c': [step('viz-cheap', ['table'], ['chart'], 0.01, 400)],
          }),
        );
        expect(outcome.steps).toEqual([
          { id: 's1', skill: 'work', consumes: ['question'], produces: ['table'], estUsd: 0.02, estMs: 300, proposedBy: 'agent-a', proposedStepId: 'sql' },
          { id: 's2', skill: 'work', consumes: ['table'], produces: ['chart'], estUsd: 0.01, estMs: 400, proposedBy: 'agent-c', proposedStepId: 'viz-cheap' },
        ]);
        expect(outcome.estUsd).toBeCloseTo(0.03, 10);
        expect(outcome.estMs).toBe(700);
      });

      it('computes the critical path, not the sum, for parallel branches', () => {
        const outcome = ok(
          plan(request(['report']), {
            a: [step('left', ['question'], ['l'], 1, 500), step('right', ['question'], ['r'], 1, 200), step('join', ['l', 'r'], ['report'], 1, 100)],
          }),
        );
        expect(outcome.estMs).toBe(600);
        expect(outcome.estUsd).toBe(3);
        expect(outcome.steps.at(-1)?.proposedStepId).toBe('join');
      });

      it('produces a sub-artifact shared by two wanted artifacts only once', () => {
        const outcome = ok(
          plan(request(['chart', 'summary']), {
            a: [step('sql', ['question'], ['table'], 2), step('viz', ['table'], ['chart'], 1)],
            b: [step('sum', ['table'], ['summary'], 1)],
          }),
        );
        expect(chosen(outcome)).toEqual(['a/sql', 'a/viz', 'b/sum']);
        expect(outcome.estUsd).toBe(4);
      });

      it('shares a sub-derivation when that beats the cheapest derivation of each artifact alone', () => {
        const outcome = ok(
          plan(request(['A', 'B']), {
            shared: [step('base', ['question'], ['X'], 10), step('toA', ['X'], ['A'], 1), step('toB', ['X'], ['B'], 1)],
            direct: [step('A', ['question'], ['A'], 8), step('B', ['question'], ['B'], 8)],
          }),
        );
        expect(outcome.estUsd).toBe(12);
        expect(chosen(outcome).sort()).toEqual(['shared/base', 'shared/toA', 'shared/toB']);
        expect(outcome.notes.join('\n')).toMatch(/sharing sub-artifacts lowers the cost from \$16 \(cheapest per artifact\) to \$12/);
      });

      it('uses a step producing several artifacts once for all of them', () => {
        const outcome = ok(
          plan(request(['x', 'y']), {
            a: [step('both', ['question'], ['x', 'y'], 3)],
            b: [step('x', ['question'], ['x'], 2), step('y', ['question'], ['y'], 2)],
          }),
        );
        expect(chosen(outcome)).toEqual(['a/both']);
        expect(outcome.estUsd).toBe(3);
      });

      it('never replaces a task input with a producer of it', () => {
        const outcome = ok(plan(request(['out']), { a: [step('regen', [], ['question'], 0), step('use', ['question'], ['out'], 1)] }));
        expect(chosen(outcome)).toEqual(['a/use']);
      });

      it('returns an empty plan when every wanted artifact is an input', () => {
        const outcome = ok(plan(request(['question']), { a: [step('s', ['question'], ['x'], 1)] }));
        expect(outcome.steps).toEqual([]);
        expect(outcome.estUsd).toBe(0);
        expect(outcome.notes[0]).toMatch(/every wanted artifact is in the task input/);
      });

      it('explains which alternatives were rejected and why', () => {
        const outcome = ok(
          plan(
            request(['chart'], { region: 'eu-central-1' }),
            { a: [step('viz', ['question'], ['chart'], 1)], b: [step('viz', ['question'], ['chart'], 2)], us: [step('viz', ['question'], ['chart'], 0.5)] },
            [agent('us', { region: 'us-east-1' })],
          ),
        );
        expect(outcome.notes).toContain(
          "artifact 'chart' from a/viz ($1, 100 ms); rejected b/viz (derivation $2, 100 ms), us/viz (excluded: region us-east-1 not in [eu-central-1])",
        );
      });
    });

    describe('when costs tie', () => {
      it('prefers the lower critical path', () => {
        expect(chosen(plan(request(['x']), { a: [step('slow', ['question'], ['x'], 1, 500)], b: [step('fast', ['question'], ['x'], 1, 100)] }))).toEqual(['b/fast']);
      });

      it('then the lower agent id', () => {
        expect(chosen(plan(request(['x']), { zed: [step('s', ['question'], ['x'], 1)], amy: [step('s', ['question'], ['x'], 1)] }))).toEqual(['amy/s']);
      });

      it('compares agent ids before step ids (one proposal has at most one producer per artifact)', () => {
        expect(chosen(plan(request(['x']), { b: [step('a', ['question'], ['x'], 1)], a: [step('b', ['question'], ['x'], 1)] }))).toEqual(['a/b']);
      });

      it('is independent of bid order', () => {
        const bids = { a: [step('s', ['question'], ['x'], 1)], b: [step('s', ['question'], ['x'], 1)] };
        const reversed = { b: bids.b, a: bids.a };
        expect(plan(request(['x']), reversed)).toEqual(plan(request(['x']), bids));
      });
    });

    describe('when constraints exclude bidders', () => {
      const bids = { ok: [step('s', ['question'], ['x'], 5)], bad: [step('s', ['question'], ['x'], 1)] };

      it.each<[string, Record<string, unknown>, AgentRecord, RegExp]>([
        ['region (single)', { region: 'eu-central-1' }, agent('bad', { region: 'us-east-1' }), /bad\/s \(region us-east-1 not in \[eu-central-1\]\)/],
        ['region (list)', { region: ['eu-central-1', 'eu-west-1'] }, agent('bad', { region: 'us-east-1' }), /region us-east-1 not in \[eu-central-1, eu-west-1\]/],
        ['accreditation', { accredit: ['ISO27001'] }, agent('bad', { verified: ['gdpr'] }), /bad\/s \(missing verified accreditation ISO27001\)/],
        ['unverified accreditation', { accredit: ['ISO27001'] }, agent('bad', { unverified: ['ISO27001'] }), /missing verified accreditation ISO27001 \(ISO27001 claimed but not verified\)/],
        ['data class', { dataClasses: ['phi'] }, agent('bad', { verified: ['gdpr'] }), /résumé lacks data class phi/],
        ['data-class accreditation', { dataClasses: ['phi'] }, agent('bad', { dataClasses: ['phi'] }), /missing verified accreditation gdpr/],
      ])('excludes a bidder failing %s and uses the other', (_label, constraints, badAgent, note) => {
        const okAgent = agent('ok', { verified: ['ISO27001', 'gdpr'], dataClasses: ['phi'] });
        const outcome = ok(plan(request(['x'], constraints), bids, [okAgent, badAgent]));
        expect(chosen(outcome)).toEqual(['ok/s']);
        expect(outcome.notes.join('\n')).toMatch(note);
      });

      it.each<[string, AgentRecord]>([
        ['offline', agent('cheap', { state: 'offline' })],
        ['draining', agent('cheap', { state: 'draining' })],
        ['at capacity', { ...agent('cheap'), load: { active: 2, max: 2 } }],
      ])('keeps the steps of a bidder that is only %s: availability is decided at dispatch', (_label, cheap) => {
        const outcome = ok(plan(request(['x']), { ok: [step('s', ['question'], ['x'], 5)], cheap: [step('s', ['question'], ['x'], 1)] }, [cheap]));
        expect(chosen(outcome)).toEqual(['cheap/s']);
        expect(outcome.notes.join('\n')).not.toMatch(/excluded/);
      });

      it('plans with an offline bidder that is the only producer', () => {
        const outcome = ok(plan(request(['x']), { solo: [step('s', ['question'], ['x'], 1)] }, [agent('solo', { state: 'offline' })]));
        expect(chosen(outcome)).toEqual(['solo/s']);
      });

      it('excludes a bidder missing from the registry', () => {
        const outcome = planTask({ request: request(['x']), bids: [{ agentId: 'ghost', steps: [step('s', ['question'], ['x'], 1)] }], agents: new Map(), now: NOW });
        expect(fail(outcome)).toEqual(["artifact 'x' is produced only by steps excluded by constraints: ghost/s (agent not in the registry)"]);
      });

      it("applies a step's own data classes", () => {
        const outcome = ok(
          plan(request(['x']), { plain: [step('s', ['question'], ['x'], 1, 100, { dataClasses: ['phi'] })], cleared: [step('s', ['question'], ['x'], 2, 100, { dataClasses: ['phi'] })] }, [
            agent('cleared', { verified: ['gdpr'], dataClasses: ['phi'] }),
          ]),
        );
        expect(chosen(outcome)).toEqual(['cleared/s']);
      });

      it('ignores an invalid bid and says why', () => {
        const outcome = ok(plan(request(['x']), { broken: [step('s', ['question'], ['x'], 0.1, 0)], fine: [step('s', ['question'], ['x'], 1)] }));
        expect(chosen(outcome)).toEqual(['fine/s']);
        expect(outcome.notes.join('\n')).toMatch(/ignored the bid from broken: step 's' has estMs 0/);
      });

      it('ignores a second bid from the same agent', () => {
        const outcome = planTask({
          request: request(['x']),
          bids: [{ agentId: 'a', steps: [step('s', ['question'], ['x'], 2)] }, { agentId: 'a', steps: [step('t', ['question'], ['x'], 1)] }],
          agents: new Map([['a', agent('a')]]),
          now: NOW,
        });
        expect(chosen(outcome)).toEqual(['a/s']);
        expect(ok(outcome).notes).toContain('ignored a second bid from a');
      });
    });

    describe('when no plan exists', () => {
      it('names an artifact nobody produces', () => {
        expect(fail(plan(request(['chart']), { a: [step('s', ['question'], ['table'], 1)] }))).toEqual([
          "artifact 'chart' has no producer and is not in the task input",
        ]);
      });

      it('names the excluded producers and their constraints', () => {
        const reasons = fail(
          plan(request(['x'], { region: ['eu-central-1'] }), { 'agent-a': [step('s1', ['question'], ['y'], 1), step('s2', ['y'], ['x'], 1)] }, [agent('agent-a', { region: 'us-east-1' })]),
        );
        expect(reasons).toEqual(["artifact 'x' is produced only by steps excluded by constraints: agent-a/s2 (region us-east-1 not in [eu-central-1])"]);
      });

      it('follows missing inputs down to the root cause', () => {
        const reasons = fail(plan(request(['chart']), { a: [step('viz', ['table'], ['chart'], 1)], b: [step('sql', ['schema'], ['table'], 1)] }));
        expect(reasons).toEqual([
          "artifact 'chart' cannot be derived: a/viz needs 'table'",
          "artifact 'table' cannot be derived: b/sql needs 'schema'",
          "artifact 'schema' has no producer and is not in the task input",
        ]);
      });

      it('detects a cycle across bidders', () => {
        const reasons = fail(plan(request(['x']), { a: [step('s', ['y'], ['x'], 1)], b: [step('s', ['x'], ['y'], 1)] }));
        expect(reasons).toEqual(["artifact 'x' cannot be derived: a/s needs 'y'", "artifact 'y' cannot be derived: b/s needs 'x'"]);
      });

      it('names the cost and the budget when the cheapest plan is over budget', () => {
        expect(fail(plan(request(['x'], { maxUsd: 0.5 }), { a: [step('s', ['question'], ['m'], 0.4), step('t', ['m'], ['x'], 0.3)] }))).toEqual([
          'the cheapest plan costs $0.7, over the budget of $0.5',
        ]);
      });

      it('names the critical path and the time left when nothing meets the deadline', () => {
        const deadline = new Date(NOW + 1_000).toISOString();
        expect(fail(plan(request(['x'], { deadline }), { a: [step('s', ['question'], ['m'], 1, 800), step('t', ['m'], ['x'], 1, 400)] }))).toEqual([
          `the fastest plan has a critical path of 1200 ms, but only 1000 ms are left before the deadline ${deadline}`,
        ]);
      });

      it('says when the deadline has already passed', () => {
        const deadline = new Date(NOW - 5_000).toISOString();
        expect(fail(plan(request(['x'], { deadline }), { a: [step('s', ['question'], ['x'], 1)] }))).toEqual([`deadline ${deadline} has already passed (5000 ms ago)`]);
      });

      it('reports a plan that meets the deadline but not the budget', () => {
        const deadline = new Date(NOW + 1_000).toISOString();
        const reasons = fail(plan(request(['x'], { deadline, maxUsd: 2 }), { slow: [step('s', ['question'], ['x'], 1, 5_000)], fast: [step('s', ['question'], ['x'], 3, 500)] }));
        expect(reasons).toEqual(['the cheapest plan that meets the deadline costs $3, over the budget of $2']);
      });
    });

    describe('when the deadline is tight', () => {
      const deadline = new Date(NOW + 1_000).toISOString();

      it('keeps the cheapest plan when it fits and says so', () => {
        const outcome = ok(plan(request(['x'], { deadline }), { a: [step('s', ['question'], ['x'], 1, 900)] }));
        expect(outcome.notes).toContain('critical path 900 ms fits the 1000 ms left before the deadline');
      });

      it('drops steps that cannot finish in time and takes the cheapest plan that fits', () => {
        const outcome = ok(
          plan(request(['x'], { deadline }), {
            slow: [step('s', ['question'], ['x'], 1, 5_000)],
            mid: [step('a', ['question'], ['m'], 1, 600), step('b', ['m'], ['x'], 1, 300)],
            fast: [step('s', ['question'], ['x'], 5, 100)],
          }),
        );
        expect(chosen(outcome)).toEqual(['mid/a', 'mid/b']);
        expect(outcome.estMs).toBe(900);
        expect(outcome.notes.join('\n')).toMatch(/dropped 1 step\(s\) whose earliest finish is after the deadline/);
        expect(outcome.notes.join('\n')).toMatch(/slow\/s \(earliest finish 5000 ms, after the 1000 ms left\)/);
      });

      it('finds a cheaper plan that fits when the per-artifact cheapest combination is too slow', () => {
        // Each cheap step fits alone, but chained they take 1200 ms; one fast, dearer step fixes it.
        const outcome = ok(
          plan(request(['x'], { deadline }), {
            cheap: [step('a', ['question'], ['m'], 1, 600), step('b', ['m'], ['x'], 1, 600)],
            quick: [step('a', ['question'], ['m'], 2, 100)],
            express: [step('s', ['question'], ['x'], 10, 100)],
          }),
        );
        expect(chosen(outcome)).toEqual(['quick/a', 'cheap/b']);
        expect(outcome.estUsd).toBe(3);
        expect(outcome.notes.join('\n')).toMatch(/chose the cheapest plan that meets the deadline: \$3, critical path 700 ms/);
      });
    });
  });
});
