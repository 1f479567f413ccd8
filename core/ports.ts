/**
 * Ports: what core/ needs from the outside world. Adapters implement them over DynamoDB, the
 * IoT data plane and SQS (functions/adapters), or over the local stack (local/).
 */
import type { AgentRecord, OutboundMessage, ProposalRecord, TaskRecord, TimerEvent } from './model';
import type { PresenceMark, PresenceOrder } from './presence';
import type { AgentMeasurements, MeasurementSample } from './reputation';
import type { AgentStatus, Resume, Telemetry } from './schemas';

/** Wall-clock time; injected so tests control it. */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
}

/**
 * Fencing tokens, derived rather than stored: the token of (task, step, epoch) is a keyed MAC of
 * the three (HMAC-SHA-256 with a key held in Secrets Manager on AWS, in the state directory
 * locally), so nothing that grants authority sits in the table or in a stored outbox, and a token
 * read from the database cannot complete a step.
 */
export interface Fencer {
  /** The fencing token of `epoch` of step `stepId` of task `taskId`; URL-safe, 16–128 characters. */
  token(taskId: string, stepId: string, epoch: number): Promise<string>;
  /** Whether `token` is that token, compared in time that does not depend on where they differ. */
  matches(taskId: string, stepId: string, epoch: number, token: string): Promise<boolean>;
}

/** Publishes to the broker (IoT data-plane Publish in the cloud, the shim locally). */
export interface Publisher {
  publish(message: OutboundMessage): Promise<void>;
}

/** Schedules a TimerEvent for later (SQS delay in the cloud, in-process locally). At-least-once. */
export interface Timer {
  schedule(event: TimerEvent, dueAt: number): Promise<void>;
}

/** Task state. Writes are conditional: a lost race throws VersionConflictError. */
export interface TaskStore {
  /** Stores a new task; throws DuplicateTaskError when the id exists. */
  create(task: TaskRecord): Promise<void>;
  get(taskId: string): Promise<TaskRecord | undefined>;
  /**
   * Replaces the task when its stored version is `expectedVersion` (the caller has already set
   * `task.version = expectedVersion + 1`); throws VersionConflictError otherwise.
   */
  save(task: TaskRecord, expectedVersion: number): Promise<void>;
  /** Stores (or replaces) an agent's proposal for a task. Returns false when an identical one was already stored. */
  putProposal(proposal: ProposalRecord): Promise<boolean>;
  listProposals(taskId: string): Promise<ProposalRecord[]>;
  /** Ids of live tasks with a step currently assigned to `agentId`. */
  tasksAssignedTo(agentId: string): Promise<string[]>;
  /** Live tasks with something due at or before `now` (window, lease, deadline, dispatch retry, unflushed outbox). */
  listDue(now: number, limit: number): Promise<TaskRecord[]>;
}

/** The agent registry of record (IoT Core does not deliver retained messages to wildcard subscribers). */
export interface Registry {
  /** Stores the résumé and re-indexes the agent's skills. */
  /** `verified.pools`: the résumé's pools the identity's groups confirm (stored as `verifiedPools`). */
  putResume(agentId: string, resume: Resume, verified: ResumeVerification, at: number): Promise<AgentRecord>;
  /** Records a status; returns the updated record, or undefined for an agent with no résumé yet. */
  setStatus(agentId: string, status: AgentStatus, at: number): Promise<AgentRecord | undefined>;
  recordTelemetry(agentId: string, telemetry: Telemetry, at: number): Promise<AgentRecord | undefined>;
  /**
   * Records `mark` (and `status`, when given) only if it is newer than the agent's recorded mark
   * (`orderPresence` in core/presence.ts), atomically with respect to other updates of the agent. Returns how
   * the mark ordered and the record as it now is; undefined for an agent with no résumé.
   */
  recordPresence(agentId: string, mark: PresenceMark, status: AgentStatus | undefined, at: number): Promise<{ order: PresenceOrder; record: AgentRecord } | undefined>;
  /**
   * Adds one orchestrator measurement to the agent's sums (core/reputation.ts `increments`) as one
   * atomic update that reads nothing, so concurrent recordings never race. At-most-once: the
   * orchestrator records after the task transition that produced the sample was saved.
   */
  recordMeasurement(agentId: string, sample: MeasurementSample, at: number): Promise<void>;
  /** The measurement sums of the given agents that have any, by agent id. */
  measurements(agentIds: readonly string[]): Promise<Map<string, AgentMeasurements>>;
  get(agentId: string): Promise<AgentRecord | undefined>;
  /** Agents advertising `skill`: O(agents with the skill), via the per-skill index. */
  findBySkill(skill: string): Promise<AgentRecord[]>;
  /** Every agent (for `porchlight agents`; paginated by the adapter). */
  list(): Promise<AgentRecord[]>;
}

/** What the identity system confirmed of a résumé's claims. */
export interface ResumeVerification {
  readonly verified: string[];
  readonly unverified: string[];
  /** Pools listed in the résumé that the identity is a member of. @default [] */
  readonly pools?: string[];
}

/**
 * Confirms accreditations and pool memberships against the identity system (IoT thing groups
 * `accredit-<label>` and `pool-<name>`; locally, the CA's accreditations and pools files).
 */
export interface AccreditationVerifier {
  /** The accreditations `agentId`'s identity actually holds. */
  accreditationsOf(agentId: string): Promise<string[]>;
  /** The pools `agentId`'s identity is a member of. */
  poolsOf(agentId: string): Promise<string[]>;
}
