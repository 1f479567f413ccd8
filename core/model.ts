/**
 * The records Porchlight keeps (in DynamoDB in the cloud, DynamoDB Local on a laptop) and the
 * messages it emits. Pure data: transitions live in task-machine.ts, storage behind ports.ts.
 */
import type { PresenceMark } from './presence';
import type { AgentMeasurements } from './reputation';
import type {
  AgentState, Artifacts, JsonValue, ProposedStep, Proposal, Resume, StepState, TaskErrorEntry, TaskPhase, TaskRequest,
  TaskState, Telemetry, Usage,
} from './schemas';

/** A message to publish: what the Publisher port sends and the task outbox holds. */
export interface OutboundMessage {
  readonly topic: string;
  /** Serialised as JSON by the publisher; `null` with `retain: true` clears a retained topic. */
  readonly payload: JsonValue | null;
  readonly qos: 0 | 1;
  readonly retain: boolean;
  readonly userProperties?: Readonly<Record<string, string>>;
  /** MQTT 5 message expiry, seconds. */
  readonly messageExpirySec?: number;
  /**
   * Set on an assignment: the publisher fills in the fencing token of this (task, step, epoch)
   * as the payload's `token` when it publishes (core/outbox.ts `withFencingTokens`), so the token
   * is never part of what is stored.
   */
  readonly fence?: { readonly taskId: string; readonly stepId: string; readonly epoch: number };
}

/** Why an agent was (or was not) chosen for a step: the auditable part of a plan. */
export interface MatchAudit {
  readonly stepId: string;
  readonly chosen?: string;
  /** Ranked candidates, best first, with the score and how it was made up. */
  readonly ranked: readonly { readonly agentId: string; readonly score: number; readonly why: string }[];
  /** Candidates excluded, each with the constraint that excluded it. */
  readonly excluded: readonly { readonly agentId: string; readonly reason: string }[];
  /**
   * Set only when nobody was chosen: the candidates (bounded, in candidate order) that pass every
   * static rule (skill, not excluded for this step, region, data class, accreditation) and are
   * blocked only by their state (offline, draining) or capacity, so waiting for them may help.
   */
  readonly waitingFor?: readonly string[];
}

/** A step of the merged plan, with its live execution state. */
export interface StepRecord extends ProposedStep {
  /** The agent whose proposal contained the step. */
  readonly proposedBy: string;
  /** The step id inside that agent's proposal (plan ids are renumbered s1, s2, …). */
  readonly proposedStepId: string;
  state: StepState;
  /** Current assignee (unset for a pool step until a member claims it). */
  agentId?: string;
  /** Pool steps: the epoch of the offer the live assignee claimed (unset while the step is only offered). */
  claimedFrom?: number;
  /** 0 until first assigned; +1 on every (re-)assignment. */
  epoch: number;
  /** Epoch ms when the live lease runs out. */
  leaseExpiresAt?: number;
  /** Number of assignments made so far. */
  attempts: number;
  /** Agents that failed or lost this step; not chosen again. */
  excluded: string[];
  /**
   * Epoch ms since when the step, ready but pending, has been held because every capable agent
   * was only temporarily unavailable (offline, draining, at capacity). Unset once it is assigned.
   */
  waitingSince?: number;
  /** Epoch ms of the next dispatch attempt of a held step (the `dispatch` timer). */
  dispatchRetryAt?: number;
  usage?: Usage;
  audit?: MatchAudit;
  /**
   * Epochs of this step that were superseded (lost, failed, taken away), oldest first. Lets the
   * orchestrator tell a redelivered error output from a late one and send a stale sender its notice.
   */
  superseded?: SupersededEpoch[];
}

/** One superseded assignment of a step. */
export interface SupersededEpoch {
  readonly epoch: number;
  /** The assignee of that epoch (unset for pool steps). */
  readonly agentId?: string;
  /** What ended the epoch. */
  readonly cause: 'error-output' | 'lease-expired' | 'agent-gone';
}

/** One task: request, plan, step states, artifacts and what is still to be published. */
export interface TaskRecord {
  readonly taskId: string;
  /** Topic root: `tasks` or a data-class root such as `patient-data`. */
  readonly taskRoot: string;
  /** The client that submitted the task: its tree (`clients/{owner}/…`) gets status, outputs and result. */
  readonly owner: string;
  readonly request: TaskRequest;
  state: TaskState;
  phase: TaskPhase;
  /** Optimistic-concurrency version; every save increments it by one. */
  version: number;
  readonly createdAt: number;
  updatedAt: number;
  /** When the proposal window closes (epoch ms). */
  windowClosesAt: number;
  /** Epoch ms from request.constraints.deadline, if any. */
  deadlineAt?: number;
  /** Agents that could answer (online, with a hinted or matching skill) when the task arrived. */
  eligibleAgents: string[];
  /**
   * Set while the window has closed without a satisfiable plan and the task waits for more bids
   * (task-machine.ts `recordPlan`): since when, from whom, and why no plan could be made yet.
   */
  bidWait?: BidWait;
  /** Merged plan, keyed by plan step id, in topological order in `stepOrder`. */
  steps: Record<string, StepRecord>;
  stepOrder: string[];
  /** The request's input plus every artifact produced so far. */
  artifacts: Artifacts;
  estUsd?: number;
  estMs?: number;
  /** Why the plan looks as it does: chosen derivation, excluded steps and their constraints. */
  planNotes: string[];
  errors: TaskErrorEntry[];
  /** Messages produced by the last transitions and not yet confirmed published (transactional outbox). */
  outbox: OutboundMessage[];
  finishedAt?: number;
  /** DynamoDB TTL (epoch seconds): when the item may be deleted. */
  expiresAt?: number;
  /** Epoch ms when the task's retained topics (status, result, outputs) were cleared after retention. */
  retainedClearedAt?: number;
}

/** A task waiting for bids after its window closed without a satisfiable plan. */
export interface BidWait {
  /** Epoch ms when the window first closed without a plan. */
  readonly since: number;
  /** Agents that may still bid, sorted. */
  readonly agents: readonly string[];
  /** The planner's reasons at the last attempt. */
  readonly reasons: readonly string[];
}

/** A stored proposal. */
export interface ProposalRecord {
  readonly taskId: string;
  readonly agentId: string;
  readonly proposal: Proposal;
  readonly receivedAt: number;
}

/** An agent as the registry knows it. */
export interface AgentRecord {
  readonly agentId: string;
  resume: Resume;
  state: AgentState;
  load?: { active: number; max: number };
  telemetry?: Telemetry;
  /** Accreditations claimed in the résumé that the identity's groups confirm. */
  verifiedAccredit: string[];
  /** Claimed but not confirmed: never trusted by the planner. */
  unverifiedAccredit: string[];
  /**
   * Pools the résumé lists that the identity's groups confirm (`pool-<name>` on AWS, the local
   * CA's pools file locally). Only these pools' offers may be claimed. Absent on older records.
   */
  verifiedPools?: string[];
  /** The newest connection event handled (core/presence.ts); older ones change nothing. */
  presence?: PresenceMark;
  /**
   * What the orchestrator measured of the agent (core/reputation.ts). Kept apart from the profile
   * by the registry (atomic additions) and attached by {@link Registry.measurements} readers.
   */
  measured?: AgentMeasurements;
  updatedAt: number;
  version: number;
}

/** Things that happen later: proposal windows, leases, deadlines, retention, re-trying held steps. */
export type TimerEvent =
  | { readonly kind: 'proposal-window'; readonly taskId: string }
  | { readonly kind: 'lease'; readonly taskId: string; readonly stepId: string; readonly epoch: number }
  | { readonly kind: 'deadline'; readonly taskId: string }
  | { readonly kind: 'retention'; readonly taskId: string }
  | { readonly kind: 'dispatch'; readonly taskId: string };

/** Terminal task states. */
export const TERMINAL_STATES: readonly TaskState[] = ['completed', 'failed', 'canceled', 'rejected'];

/** True once a task can change no more. */
export function isTerminal(state: TaskState): boolean {
  return TERMINAL_STATES.includes(state);
}

/** Artifacts, re-exported for adapters that only need the record types. */
export type { Artifacts };
