/**
 * The planner's and matcher's inputs and outputs (implemented in planner.ts and matching.ts).
 */
import type { AgentRecord, MatchAudit } from './model';
import type { Constraints, ProposedStep, TaskRequest } from './schemas';

/** One agent's bid, already schema-validated. */
export interface Bidder {
  readonly agentId: string;
  readonly steps: readonly ProposedStep[];
}

/** Everything the planner needs; no I/O happens inside. */
export interface PlanInput {
  readonly request: TaskRequest;
  readonly bids: readonly Bidder[];
  /** Registry view of the bidders (region, verified accreditations), by agent id; a bidder missing here is excluded. */
  readonly agents: ReadonlyMap<string, AgentRecord>;
  /** Epoch ms, for deadline arithmetic. */
  readonly now: number;
}

/** A step of the chosen plan. `id` is the plan id (s1, s2, … in topological order). */
export interface PlannedStep extends ProposedStep {
  readonly proposedBy: string;
  readonly proposedStepId: string;
}

/** The chosen plan, or why there is none. */
export type PlanOutcome =
  | {
      readonly ok: true;
      /** Topological order: every step comes after the producers of what it consumes. */
      readonly steps: readonly PlannedStep[];
      readonly estUsd: number;
      /** Critical-path duration, ms. */
      readonly estMs: number;
      /** Human-readable account of the choice: derivation picked, steps excluded and by which constraint. */
      readonly notes: readonly string[];
    }
  | {
      readonly ok: false;
      /** Specific reasons: which artifact has no producer, which constraint excluded which steps. */
      readonly reasons: readonly string[];
    };

/** What matching needs besides the candidates. */
export interface MatchContext {
  readonly constraints: Constraints;
  /** Agents never to choose for this step (failed it, lost it, went offline). */
  readonly exclude: readonly string[];
  readonly now: number;
}

/** Signature of the matcher: rank live agents for one step and say why. */
export type RankAgents = (
  step: Pick<PlannedStep, 'id' | 'skill' | 'proposedBy' | 'dataClasses'>,
  candidates: readonly AgentRecord[],
  context: MatchContext,
) => MatchAudit;
