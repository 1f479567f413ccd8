/**
 * The agent author's API: describe what the agent is (id, résumé), how it bids (`propose`) and
 * how it works (`execute`). The runtime does the MQTT, validation, fencing, throttling and
 * telemetry around it.
 */
import type { z } from 'zod';
import { Resume, Proposal, parseMessage, type Artifacts, type Assignment, type TaskRequest } from '../../core/schemas';
import { validateId } from '../../core/topics';
import type { AgentLogger } from './logger';

/** What `propose()` may return: a bid or a decline; `v` may be left out. */
export type ProposalInput = z.input<typeof Proposal>;

/** What `propose()` learns besides the request. */
export interface ProposeContext {
  readonly agentId: string;
  readonly taskId: string;
  /** The task's topic root (`tasks`, `patient-data`, …). */
  readonly taskRoot: string;
  readonly resume: Resume;
  readonly log: AgentLogger;
}

/** What `execute()` gets besides the assignment. */
export interface ExecuteContext {
  readonly agentId: string;
  readonly taskRoot: string;
  /**
   * Aborted when the task turns terminal (canceled, failed, …), when the step is re-assigned
   * to a newer epoch, at the step deadline, or when a drain runs out of time. `signal.reason`
   * is an Error saying which.
   */
  readonly signal: AbortSignal;
  /** Reports progress (0..1) with an optional message; throttled and coalesced by the runtime. */
  progress(fraction: number, message?: string): void;
  /**
   * Adds a measured cost (USD) for this step, e.g. metered model tokens. If never called, the
   * résumé's per-step price is charged.
   */
  charge(usd: number): void;
  readonly log: AgentLogger;
  /**
   * Stable for this (task, step, epoch): the same on every delivery of the assignment and after
   * the agent process restarts, different for every other epoch (64 hex characters). An agent
   * whose effect is outside this process (a payment, an e-mail, a row in someone's database)
   * must pass it to that system, or record it with the effect and look it up first, so that a
   * resumed attempt does not repeat the effect.
   */
  readonly idempotencyKey: string;
  /**
   * True when this (task, step, epoch) was started before, by this process or a predecessor with
   * the same journal, and never finished: the effect may already have happened. Check it by
   * `idempotencyKey` before doing it again, and return what the first attempt produced.
   * (An attempt that finished is never executed again: the runtime republishes its output.)
   */
  readonly resumed: boolean;
}

/** An agent, as the author writes it. */
export interface AgentDefinitionInput {
  /** The agent id: MQTT client id, certificate CN and thing name. */
  readonly id: string;
  /** The résumé (validated against core's schema; `v` may be left out). */
  readonly resume: z.input<typeof Resume>;
  /** Bids on a request, or declines it with a reason. May be async. */
  propose(request: TaskRequest, ctx: ProposeContext): Promise<ProposalInput> | ProposalInput;
  /** Runs one assigned step; resolves with the artifacts it produced (at least the step's `produces`). */
  execute(assignment: Assignment, ctx: ExecuteContext): Promise<Artifacts>;
}

/** A validated agent definition. */
export interface AgentDefinition extends Omit<AgentDefinitionInput, 'resume'> {
  readonly resume: Resume;
  /** Steps run concurrently: the résumé's maxConcurrent, or 1. */
  readonly maxConcurrent: number;
}

/**
 * Validates the id and the résumé once, up front, so a misconfigured agent fails at start with
 * a message naming the bad field rather than later on the wire.
 * @throws InvalidIdError for an id that cannot be a topic level; ValidationError for a bad résumé
 */
export function defineAgent(def: AgentDefinitionInput): AgentDefinition {
  validateId('agentId', def.id);
  const resume = parseMessage(Resume, def.resume, `résumé of agent ${def.id}`);
  return {
    id: def.id,
    resume,
    maxConcurrent: resume.maxConcurrent ?? 1,
    propose: def.propose.bind(def),
    execute: def.execute.bind(def),
  };
}
