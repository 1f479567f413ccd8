/**
 * Matching: for one plan step, rank the live agents that could run it and say why (ARCHITECTURE
 * §4.3). The caller passes the agents with the step's skill (Registry.findBySkill, so the work is
 * O(agents with the skill)); this module excludes the ones that may not run it and ranks the rest.
 *
 * Score (higher is better, at most 1): a weighted sum of terms that are each in [0, 1].
 * - cost:    cheapest candidate's cost / this candidate's cost;
 * - latency: fastest candidate's p95 / this candidate's p95;
 * - success: the candidate's success rate;
 * - load:    1 - active / capacity (capacity = the smaller of load.max and résumé maxConcurrent);
 * - proposer: 1 for the agent that proposed the step (it planned around its own estimates).
 * Cost, p95 and success come from core/reputation.ts `matchFigures`: the orchestrator's own
 * measurements (résumé price × measured USD factor, shrunk measured p95 × ms penalty, shrunk
 * success rate) once the agent has any; else the agent's self-reported telemetry; else its résumé,
 * with {@link MatchWeights.unmeasuredSuccessRate}. The audit's `why` says which.
 * Relative terms make the score independent of currency scale; ties go to the lower agent id.
 */
import type { AgentRecord, MatchAudit } from './model';
import type { RankAgents } from './plan-types';
import type { ProposedStep, TaskRequest } from './schemas';
import { allowedRegions, neededAccreditations, neededDataClasses } from './planner';
import { matchFigures, type MatchFigures } from './reputation';

/** Weights of the score's terms, and the success rate assumed for an agent never measured. */
export interface MatchWeights {
  readonly cost: number;
  readonly latency: number;
  readonly success: number;
  readonly load: number;
  readonly proposer: number;
  /** Success rate assumed before any telemetry: below a proven agent's, above a failing one's. */
  readonly unmeasuredSuccessRate: number;
}

/** Default weights: cost first, then latency and reliability, then spreading load; sum of term weights is 1. */
export const MATCH_WEIGHTS: MatchWeights = {
  cost: 0.35,
  latency: 0.25,
  success: 0.25,
  load: 0.1,
  proposer: 0.05,
  unmeasuredSuccessRate: 0.9,
};

/**
 * How much of the ranking the audit keeps. The audit is stored with the step (DynamoDB items are
 * at most 400 KB) and a popular skill has thousands of agents; re-assignment calls the matcher
 * again with the failed agents excluded, so it never needs the tail.
 */
export interface MatchAuditLimits {
  /** Best-ranked candidates kept, each with its `why`. */
  readonly ranked: number;
  /** Excluded candidates kept (in candidate order), each with its reason; also bounds `waitingFor`. */
  readonly excluded: number;
}

/**
 * The rules that can exclude a candidate, in the order they are checked: the static ones first,
 * then those that change with time ({@link TRANSIENT_RULES}), so an agent blocked only by the
 * latter is one the step can wait for.
 */
type ExclusionRule = 'excluded' | 'skill' | 'region' | 'data-class' | 'accreditation' | 'state' | 'capacity';

/** Exclusions that lapse by themselves: the agent comes back online or frees a slot. */
const TRANSIENT_RULES: ReadonlySet<ExclusionRule> = new Set(['state', 'capacity']);

/** Default audit limits. */
export const MATCH_AUDIT_LIMITS: MatchAuditLimits = { ranked: 10, excluded: 20 };

/** Builds a matcher with the given weights and audit limits (tests and tuning use this; production uses {@link rankAgents}). */
export function createRankAgents(weights: MatchWeights, limits: MatchAuditLimits = MATCH_AUDIT_LIMITS): RankAgents {
  return (step, candidates, context) => {
    const { constraints } = context;
    const regions = allowedRegions(constraints);
    const classes = neededDataClasses(constraints, step.dataClasses);
    const accreditations = neededAccreditations(constraints, classes);
    const exclude = new Set(context.exclude);
    const excluded: { agentId: string; reason: string }[] = [];
    const eligible: { agent: AgentRecord; usd: number; p95: number; success: number; measured: number; source: MatchFigures['source']; active: number; capacity: number }[] = [];
    const waitingFor: string[] = [];
    const seen = new Set<string>();

    for (const agent of candidates) {
      if (seen.has(agent.agentId)) continue;
      seen.add(agent.agentId);
      const rule = excludedBy(agent);
      if (rule !== undefined) {
        if (excluded.length < limits.excluded) excluded.push({ agentId: agent.agentId, reason: reason(rule, agent) });
        if (TRANSIENT_RULES.has(rule) && waitingFor.length < limits.excluded) waitingFor.push(agent.agentId);
        continue;
      }
      const figures = matchFigures(agent, weights.unmeasuredSuccessRate);
      eligible.push({
        agent,
        usd: figures.usd,
        p95: figures.p95,
        success: figures.success,
        measured: figures.source === 'measured' ? figures.measured : figures.source === 'reported' ? agent.telemetry!.executions : 0,
        source: figures.source,
        active: agent.load?.active ?? 0,
        capacity: capacityOf(agent),
      });
    }

    // Which rule excludes the agent; the reason text is built only for the excluded entries the audit keeps.
    function excludedBy(agent: AgentRecord): ExclusionRule | undefined {
      if (exclude.has(agent.agentId)) return 'excluded';
      if (!agent.resume.skills.includes(step.skill)) return 'skill';
      if (regions !== undefined && !regions.includes(agent.resume.region)) return 'region';
      const handled = agent.resume.dataClasses;
      if (classes.length > 0 && (handled === undefined || !classes.every((c) => handled.includes(c)))) return 'data-class';
      if (!accreditations.every((a) => agent.verifiedAccredit.includes(a))) return 'accreditation';
      if (agent.state !== 'online') return 'state';
      if ((agent.load?.active ?? 0) >= capacityOf(agent)) return 'capacity';
      return undefined;
    }

    function reason(rule: ExclusionRule, agent: AgentRecord): string {
      switch (rule) {
        case 'state':
          return `agent is ${agent.state}`;
        case 'excluded':
          return 'excluded for this step (failed or lost it before)';
        case 'skill':
          return `résumé lacks skill ${step.skill}`;
        case 'region':
          return `region ${agent.resume.region} not in [${(regions ?? []).join(', ')}]`;
        case 'data-class':
          return `résumé lacks data class ${classes.filter((c) => !(agent.resume.dataClasses ?? []).includes(c)).join(', ')}`;
        case 'accreditation':
          return `missing verified accreditation ${accreditations.filter((a) => !agent.verifiedAccredit.includes(a)).join(', ')}`;
        case 'capacity':
          return `at capacity (${agent.load?.active ?? 0}/${capacityOf(agent)} active)`;
      }
    }

    let minUsd = Infinity;
    let minP95 = Infinity;
    for (const e of eligible) {
      minUsd = Math.min(minUsd, e.usd);
      minP95 = Math.min(minP95, e.p95);
    }
    const scored = eligible.map((e) => {
      const terms = {
        cost: ratio(minUsd, e.usd),
        latency: ratio(minP95, e.p95),
        load: e.capacity === Infinity ? 1 : 1 - e.active / e.capacity,
        proposer: e.agent.agentId === step.proposedBy ? 1 : 0,
      };
      const score =
        weights.cost * terms.cost + weights.latency * terms.latency + weights.success * e.success + weights.load * terms.load + weights.proposer * terms.proposer;
      return { e, terms, score };
    });
    scored.sort((a, b) => (a.score !== b.score ? b.score - a.score : a.e.agent.agentId < b.e.agent.agentId ? -1 : a.e.agent.agentId > b.e.agent.agentId ? 1 : 0));
    const ranked = scored.slice(0, limits.ranked).map(({ e, terms, score }) => {
      const from = e.source === 'measured' ? `measured over ${e.measured} steps` : e.source === 'reported' ? `reported over ${e.measured} runs` : 'résumé';
      const why = [
        `cost $${round(e.usd)} (${from}) ${f(terms.cost)}×${weights.cost}`,
        `p95 ${round(e.p95)} ms (${from}) ${f(terms.latency)}×${weights.latency}`,
        `success ${f(e.success)}${e.source === 'résumé' ? ' (assumed)' : ` (${from})`} ×${weights.success}`,
        `load ${e.active}/${e.capacity === Infinity ? '∞' : e.capacity} ${f(terms.load)}×${weights.load}`,
        ...(terms.proposer === 1 ? [`proposer +${weights.proposer}`] : []),
      ].join(', ');
      return { agentId: e.agent.agentId, score, why: `${why} = ${f(score)}` };
    });
    const audit: MatchAudit = { stepId: step.id, ranked, excluded };
    if (ranked.length > 0) return { ...audit, chosen: ranked[0]!.agentId };
    return waitingFor.length > 0 ? { ...audit, waitingFor } : audit;
  };
}

/**
 * Why `agent` may not run `step` whatever its state or load (skill, region, data classes,
 * verified accreditations), or undefined when it may: the static rules of the matcher, for an
 * agent that asks for a step itself (a pool claim) rather than being chosen.
 */
export function claimIneligibility(step: Pick<ProposedStep, 'skill' | 'dataClasses'>, agent: AgentRecord, constraints: TaskRequest['constraints']): string | undefined {
  if (!agent.resume.skills.includes(step.skill)) return `résumé lacks skill ${step.skill}`;
  const regions = allowedRegions(constraints);
  if (regions !== undefined && !regions.includes(agent.resume.region)) return `region ${agent.resume.region} not in [${regions.join(', ')}]`;
  const classes = neededDataClasses(constraints, step.dataClasses);
  const handled = agent.resume.dataClasses;
  if (classes.length > 0 && (handled === undefined || !classes.every((c) => handled.includes(c)))) {
    return `résumé lacks data class ${classes.filter((c) => !(handled ?? []).includes(c)).join(', ')}`;
  }
  const missing = neededAccreditations(constraints, classes).filter((a) => !agent.verifiedAccredit.includes(a));
  if (missing.length > 0) return `missing verified accreditation ${missing.join(', ')}`;
  return undefined;
}

/** The matcher with {@link MATCH_WEIGHTS}. */
export const rankAgents: RankAgents = createRankAgents(MATCH_WEIGHTS);

/** How many steps the agent may run at once: the smaller of its reported load.max and résumé maxConcurrent. */
function capacityOf(agent: AgentRecord): number {
  return Math.min(agent.load?.max ?? Infinity, agent.resume.maxConcurrent ?? Infinity);
}

/** best / value in [0, 1]; a zero value is as good as it gets. */
function ratio(best: number, value: number): number {
  return value <= 0 ? 1 : best / value;
}

/** Figures in the audit: at most 6 significant digits. */
function round(x: number): number {
  return Number(x.toPrecision(6));
}

function f(x: number): string {
  return x.toFixed(3);
}
