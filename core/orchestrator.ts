/**
 * The orchestrator's application service: one method per inbound message kind (ARCHITECTURE §4),
 * called by the Lambda handlers in the cloud and by the local rules engine on a laptop.
 *
 * Every mutation is load → pure transition (task-machine.ts) → conditional save, retried on a
 * version conflict by reloading and re-applying. Messages a transition produces sit in the task's
 * outbox, are saved with it, published after the save, then removed with a second save; a failure
 * in between leaves them for the sweeper or the next transition (transactional outbox). Timers
 * follow from the state change and are scheduled after the save; the sweeper covers lost ones.
 *
 * Every handler is idempotent: the same message handled twice changes nothing the second time.
 * Bad input is refused with a specific error code, published (a `rejected` task status for a bad
 * request, a RejectNotice on `agents/{id}/errors` otherwise) and returned; only infrastructure
 * failures (storage, broker) are thrown, so the caller's retry policy applies to them.
 */
import {
  ConfigError, DuplicateTaskError, FencingError, InvalidStateError, NotAuthorizedError, PorchlightError, TopicParseError, UnknownTaskError,
  UnsatisfiableError, ValidationError, VersionConflictError,
} from './errors';
import { validateProposal } from './dag';
import { rankAgents } from './matching';
import { isTerminal, type AgentRecord, type OutboundMessage, type ProposalRecord, type TaskRecord, type TimerEvent } from './model';
import { canonicalJson, flush, withFencingTokens } from './outbox';
import { planTask } from './planner';
import { planWithMeasurements, type Measurement } from './reputation';
import type { PlanOutcome } from './plan-types';
import type { Clock, Fencer, Publisher, Registry, TaskStore, Timer } from './ports';
import type { z } from 'zod';
import type { InboundMessage } from './rule-event';
import { CancelRequest, Claim, Progress, Proposal, StepOutput, TaskRequest, decodePayload, isDecline } from './schemas';
import {
  acceptOutput, allEligibleAnswered, awaitableBidders, cancelTask, checkRequest, claimStep, clearRetained, closeWindowAt, createTask, dueEvents,
  earliestWindowClose, eligibleAgentsFor, expireDeadline,
  expireLease, markPublished, reassignAgentSteps, recordPlan, rejectionMessages, retryDispatch, timerDueAt, timersBetween,
  type Decision, type DispatchContext, type MachineContext,
} from './task-machine';
import { isValidId, topics, type ParsedTopic } from './topics';
import {
  asPorchlightError, describeError, refuse, refuseClient, rejected, topicOfKind, type HandleOutcome, type LogFn, type LogLevel,
} from './inbound';

/** The orchestrator's settings (functions read them from LEASE_MS, MAX_ATTEMPTS, … with these defaults). */
export interface OrchestratorConfig {
  /** How long a task collects proposals when its request does not say, ms. */
  defaultProposalWindowMs: number;
  /**
   * The least time a window stays open even once every eligible agent answered, ms (capped by the
   * request's own window), so the first fast bidder does not win by default.
   */
  minProposalWindowMs: number;
  /**
   * How long a task whose window closed without a satisfiable plan keeps waiting for bids from
   * agents that may still answer, ms (never past its deadline). 0 fails at once.
   */
  maxWaitForBidsMs: number;
  /** While waiting for bids, how often the window closes again to re-plan and re-check whom to wait for, ms. */
  bidRecheckMs: number;
  /** Assignment lease: the assignee must answer within it or the step is re-assigned, ms. */
  leaseMs: number;
  /** Assignments per step before the task fails. */
  maxAttempts: number;
  /** How long a finished task keeps its retained topics and its stored items, ms. */
  retentionMs: number;
  /** Deadline of a request that names none, ms after it arrives. */
  defaultDeadlineMs: number;
  /**
   * How long a ready step may wait for a capable agent that is only temporarily unavailable
   * (offline, draining, at capacity) before the task fails, ms. 0 fails at once.
   */
  maxWaitForAgentMs: number;
  /** How often dispatch of a waiting step is tried again, ms. */
  dispatchRetryMs: number;
}

/**
 * Defaults: 2 s window open at least 200 ms, waiting up to 60 s for missing bids (re-planning every
 * second), 60 s lease, 3 attempts, 24 h retention, 15 min deadline, wait up to 60 s for an agent,
 * re-trying every second.
 */
export const DEFAULT_ORCHESTRATOR_CONFIG: OrchestratorConfig = Object.freeze({
  defaultProposalWindowMs: 2_000,
  minProposalWindowMs: 200,
  maxWaitForBidsMs: 60_000,
  bidRecheckMs: 1_000,
  leaseMs: 60_000,
  maxAttempts: 3,
  retentionMs: 24 * 60 * 60 * 1000,
  defaultDeadlineMs: 15 * 60 * 1000,
  maxWaitForAgentMs: 60_000,
  dispatchRetryMs: 1_000,
});

/** What the orchestrator is wired with. */
export interface OrchestratorDeps {
  tasks: TaskStore;
  registry: Registry;
  publisher: Publisher;
  timer: Timer;
  clock: Clock;
  /** Derives fencing tokens: assignments get theirs as they are published, outputs are checked against it. */
  fencer: Fencer;
  config: OrchestratorConfig;
  log?: LogFn;
  /**
   * Lower-case hex SHA-256 of a UTF-8 string, used to check cancel secrets against the request's
   * `cancelHash` (adapters pass node:crypto's; core stays free of I/O modules). Without it every
   * cancel is refused with a `config` error.
   */
  sha256?: (text: string) => string;
}

export type { HandleOutcome, LogFn, LogLevel } from './inbound';

/** Saves attempted per mutation before a version conflict is left to the caller's retry. */
export const MAX_SAVE_ATTEMPTS = 5;

/** Tasks the sweeper examines per run unless told otherwise. */
export const DEFAULT_SWEEP_LIMIT = 100;

/** The orchestrator: intake, planning, assignment, progress, cancellation and timers. */
export class Orchestrator {
  private readonly deps: OrchestratorDeps;

  constructor(deps: OrchestratorDeps) {
    // Every publish goes through the fencer, so an assignment gets its token only on the wire.
    this.deps = { ...deps, publisher: withFencingTokens(deps.publisher, deps.fencer) };
  }

  /**
   * `clients/{clientId}/{root}/{taskId}/request` (intake): validates and stores a new task owned by
   * the client the broker let publish there, publishes the call for bids on the agent tree of the
   * root its data classes choose, and opens its proposal window. A bad request gets a `rejected`
   * status and result on the client's tree; nothing reaches an agent.
   */
  async onRequest(msg: InboundMessage): Promise<HandleOutcome> {
    const parsed = this.parse(msg, 'client-request');
    if (parsed instanceof PorchlightError) return this.refuse(msg, parsed);
    const { taskId, taskRoot, clientId } = parsed;
    if (msg.clientId !== undefined && msg.clientId !== clientId) {
      const error = new NotAuthorizedError(`request published on ${msg.topic} by client ${msg.clientId}; a client may only submit under its own id`);
      return this.refuseClient(msg, error, msg.clientId, { topic: msg.topic, taskId });
    }
    const now = this.now();

    let read: { ok: true; request: TaskRequest } | { ok: false; error: PorchlightError };
    try {
      const request = decodePayload(TaskRequest, msg.payload, 'task request');
      checkRequest(request, taskRoot, now);
      read = { ok: true, request };
    } catch (err) {
      read = { ok: false, error: asPorchlightError(err) };
    }

    // Checked before any rejection is published: a bad request must not overwrite a live task's status.
    const existing = await this.deps.tasks.get(taskId);
    if (existing) return this.duplicateRequest(existing, read.ok ? read.request : undefined, msg, clientId);

    if (!read.ok) {
      await this.publishAll(rejectionMessages(taskId, taskRoot, clientId, read.error, now));
      this.log('info', 'task request rejected', { taskId, code: read.error.code, reason: read.error.message });
      return rejected(read.error);
    }
    const { request } = read;

    const eligible = eligibleAgentsFor(request, await this.candidatesFor(request.skills ?? []).then((m) => [...m.values()].flat()));
    const task = createTask({ taskId, taskRoot, owner: clientId, request, eligibleAgents: eligible }, this.machine(now));
    try {
      await this.deps.tasks.create(task);
    } catch (err) {
      if (!(err instanceof DuplicateTaskError)) throw err;
      const winner = await this.deps.tasks.get(taskId);
      if (winner) return this.duplicateRequest(winner, request, msg, clientId);
      throw err;
    }
    this.log('info', 'task submitted', { taskId, taskRoot, owner: clientId, eligibleAgents: eligible });
    await this.afterSave(undefined, task);
    return { status: 'accepted', detail: `task ${taskId} submitted; ${eligible.length} eligible agent(s)` };
  }

  /** `{root}/{taskId}/proposal/{agentId}` (planner): stores a bid or decline; closes the window early once all eligible agents answered. */
  async onProposal(msg: InboundMessage): Promise<HandleOutcome> {
    const parsed = this.parse(msg, 'task-proposal');
    if (parsed instanceof PorchlightError) return this.refuse(msg, parsed);
    const { taskId, agentId } = parsed;
    const about = { topic: msg.topic, taskId };
    if (msg.clientId !== undefined && msg.clientId !== agentId) {
      const error = new NotAuthorizedError(`proposal published on ${msg.topic} for agent ${agentId} by client ${msg.clientId}; an agent may only propose as itself`);
      return this.refuse(msg, error, msg.clientId, about);
    }
    const task = await this.deps.tasks.get(taskId);
    if (!task) return this.refuse(msg, new UnknownTaskError(taskId), agentId, about);
    const wrongRoot = rootMismatch(task, parsed);
    if (wrongRoot) return this.refuse(msg, wrongRoot, agentId, about);

    let proposal: Proposal;
    try {
      proposal = decodePayload(Proposal, msg.payload, 'proposal');
      if (!isDecline(proposal)) validateProposal(proposal.steps);
    } catch (err) {
      return this.refuse(msg, asPorchlightError(err), agentId, about);
    }

    if (task.phase !== 'collecting-proposals' || isTerminal(task.state)) {
      const stored = (await this.deps.tasks.listProposals(taskId)).find((p) => p.agentId === agentId);
      if (stored && canonicalJson(stored.proposal) === canonicalJson(proposal)) {
        return { status: 'duplicate', detail: `proposal of ${agentId} for task ${taskId} already stored` };
      }
      const error = new InvalidStateError(`the proposal window of task ${taskId} has closed; the task is ${task.state} (${task.phase})`);
      return this.refuse(msg, error, agentId, about);
    }

    const record: ProposalRecord = { taskId, agentId, proposal, receivedAt: msg.receivedAt };
    const stored = await this.deps.tasks.putProposal(record);
    if (stored) this.log('info', 'proposal stored', { taskId, agentId, decline: isDecline(proposal) });

    const answer = (detail: string): HandleOutcome =>
      (stored ? { status: 'accepted', detail: `proposal stored; ${detail}` } : { status: 'duplicate', detail: `proposal already stored; ${detail}` });
    if (task.bidWait !== undefined) {
      // The window closed without a plan and the task waits for bids like this one: plan again now.
      return answer(`re-planned while waiting for bids (${summary(await this.closeWindow(taskId))})`);
    }
    // Checked on a redelivery too: the first delivery may have stored the proposal and then failed while planning.
    const answered = (await this.deps.tasks.listProposals(taskId)).map((p) => p.agentId);
    if (allEligibleAnswered(task, answered)) {
      const earliest = earliestWindowClose(task, this.deps.config);
      if (this.now() < earliest) {
        const moved = await this.mutate(taskId, (t) => closeWindowAt(t, earliest, this.machine(this.now())));
        return answer(`every eligible agent answered; the window closes at its minimum open time (${summary(outcomeOrGone(taskId, moved))})`);
      }
      return answer(`every eligible agent answered, window closed early (${summary(await this.closeWindow(taskId))})`);
    }
    if (!stored) return { status: 'duplicate', detail: `proposal of ${agentId} for task ${taskId} already stored` };
    return { status: 'accepted', detail: `proposal stored (${isDecline(proposal) ? 'decline' : `${proposal.steps.length} step(s)`})` };
  }

  /**
   * `{root}/{taskId}/output/{stepId}/{agentId}` (progress): applies a fenced step output handed in
   * by the agent the topic names (the broker lets an agent publish only under its own id), and
   * republishes an accepted one to the owner's tree.
   */
  async onOutput(msg: InboundMessage): Promise<HandleOutcome> {
    // An empty payload on a well-formed output topic is a cleared retained message, not a hand-in.
    if (msg.payload.byteLength === 0 && !(this.parse(msg, 'task-output') instanceof PorchlightError)) {
      return { status: 'ignored', detail: `empty output on ${msg.topic} ignored` };
    }
    const handed = await this.handedIn(msg, 'task-output', StepOutput, 'step output');
    if ('refused' in handed) return handed.refused;
    const { parsed: { taskId, stepId, agentId }, payload: output, about } = handed;
    const tokenMatches = await this.deps.fencer.matches(taskId, stepId, output.epoch, output.token);
    const decision = await this.mutateWithCandidates(taskId, (t, ctx) => acceptOutput(t, stepId, output, tokenMatches, ctx, agentId));
    if (!decision) return this.refuse(msg, new UnknownTaskError(taskId), agentId, about);
    if (decision.kind === 'rejected') return this.refuse(msg, decision.error, agentId, about);
    return outcomeOf(decision);
  }

  /**
   * `{root}/{taskId}/claim/{stepId}/{agentId}` (planner): a pool member claims an offered step.
   * The first valid claim turns the offer into a fenced assignment to the claimant; a later or
   * ineligible claim is refused on the claimant's `agents/{id}/errors` (core/task-machine.ts
   * `claimStep`).
   */
  async onClaim(msg: InboundMessage): Promise<HandleOutcome> {
    const handed = await this.handedIn(msg, 'task-claim', Claim, 'claim');
    if ('refused' in handed) return handed.refused;
    const { parsed: { taskId, stepId, agentId }, payload: claim, about } = handed;
    const agent = await this.deps.registry.get(agentId);
    const decision = await this.mutateWithCandidates(taskId, (t, ctx) => claimStep(t, stepId, claim, agentId, agent, ctx));
    if (!decision) return this.refuse(msg, new UnknownTaskError(taskId), agentId, about);
    if (decision.kind === 'rejected') return this.refuse(msg, decision.error, decision.notify ?? agentId, about);
    if (decision.kind === 'changed') this.log('info', 'pool step claimed', { taskId, stepId, agentId });
    return outcomeOf(decision);
  }

  /**
   * `{root}/{taskId}/progress/{stepId}/{agentId}` (progress): republishes a step's progress to the
   * owner's tree when it comes from the step's live assignee for its live epoch; anything else is
   * refused. Nothing is stored: progress is advisory, and a lost one is not retried.
   */
  async onProgress(msg: InboundMessage): Promise<HandleOutcome> {
    const handed = await this.handedIn(msg, 'task-progress', Progress, 'progress');
    if ('refused' in handed) return handed.refused;
    const { parsed: { taskId, stepId, agentId }, payload: progress, task, about } = handed;
    const step = task.steps[stepId];
    if (progress.taskId !== taskId || progress.stepId !== stepId) {
      return this.refuse(msg, new ValidationError('invalid-payload', `progress on ${msg.topic} names task ${progress.taskId} step ${progress.stepId} in its payload`), agentId, about);
    }
    if (isTerminal(task.state) || step?.state !== 'assigned' || step.agentId !== agentId || step.epoch !== progress.epoch) {
      const live = step?.state === 'assigned' && step.agentId !== undefined ? `${step.agentId} holds epoch ${step.epoch}` : `the step is ${step?.state ?? 'unknown'}`;
      return this.refuse(msg, new FencingError('stale-epoch', `progress of ${agentId} for step ${stepId} epoch ${progress.epoch} of task ${taskId} is not from the live assignment (${live})`), agentId, about);
    }
    await this.deps.publisher.publish({ topic: topics.clientProgress(task.owner, taskId, stepId, task.taskRoot), payload: progress, qos: 0, retain: false });
    return { status: 'accepted', detail: `progress of step ${stepId} relayed to ${task.owner}` };
  }

  /**
   * `clients/{clientId}/{root}/{taskId}/cancel` (progress): cancels the task when the client owns
   * it and the secret matches the request's cancelHash. Refusals go to `clients/{clientId}/errors`.
   */
  async onCancel(msg: InboundMessage): Promise<HandleOutcome> {
    const parsed = this.parse(msg, 'client-cancel');
    if (parsed instanceof PorchlightError) return this.refuse(msg, parsed);
    const { taskId, clientId } = parsed;
    const about = { topic: msg.topic, taskId };
    const refuse = (error: PorchlightError): Promise<HandleOutcome> => this.refuseClient(msg, error, clientId, about);
    if (msg.clientId !== undefined && msg.clientId !== clientId) {
      return this.refuseClient(msg, new NotAuthorizedError(`cancel published on ${msg.topic} by client ${msg.clientId}; a client may only cancel under its own id`), msg.clientId, about);
    }
    let cancel: CancelRequest;
    try {
      cancel = decodePayload(CancelRequest, msg.payload, 'cancel request');
    } catch (err) {
      return refuse(asPorchlightError(err));
    }
    const task = await this.deps.tasks.get(taskId);
    // Another client's task is indistinguishable from no task: ids are not an oracle for other tenants.
    if (!task || task.owner !== clientId) return refuse(new UnknownTaskError(taskId));
    const wrongRoot = rootMismatch(task, parsed);
    if (wrongRoot) return refuse(wrongRoot);
    if (task.request.cancelHash === undefined) {
      return refuse(new NotAuthorizedError(`task ${taskId} was submitted without cancelHash; it cannot be canceled`));
    }
    if (!this.deps.sha256) {
      return refuse(new ConfigError('cancel requests cannot be verified: the orchestrator was wired without a sha256 function'));
    }
    if (this.deps.sha256(cancel.secret).toLowerCase() !== task.request.cancelHash) {
      return refuse(new NotAuthorizedError(`cancel secret for task ${taskId} does not match the task's cancelHash`));
    }
    const reason = cancel.reason !== undefined ? `canceled by the client: ${cancel.reason}` : 'canceled by the client';
    const decision = await this.mutate(taskId, (t) => cancelTask(t, reason, this.machine(this.now())));
    if (!decision) return refuse(new UnknownTaskError(taskId));
    if (decision.kind === 'rejected') return refuse(decision.error);
    if (decision.kind === 'changed') this.log('info', 'task canceled', { taskId });
    return outcomeOf(decision);
  }

  /**
   * A timer fired (proposal window, lease, deadline, retention, dispatch of held steps). Timers are
   * at-least-once and may fire early or late: one that no longer applies is ignored, an early one is
   * re-scheduled, except an early dispatch timer, which a later hold superseded and scheduled anew.
   */
  async onTimer(event: TimerEvent): Promise<HandleOutcome> {
    if (!isValidId(event.taskId)) return { status: 'rejected', code: 'invalid-id', message: `timer event names an invalid task id ${JSON.stringify(event.taskId)}` };
    const task = await this.deps.tasks.get(event.taskId);
    if (!task) return { status: 'ignored', detail: `task ${event.taskId} no longer exists` };
    const dueAt = timerDueAt(task, event, this.deps.config);
    if (dueAt === undefined) return { status: 'ignored', detail: `${event.kind} timer of task ${event.taskId} no longer applies` };
    const now = this.now();
    if (now < dueAt && event.kind === 'dispatch') {
      // Re-scheduling it would leave one more timer chain behind each duplicate for as long as the step waits.
      return { status: 'ignored', detail: `dispatch timer of task ${event.taskId} superseded; the next attempt is in ${dueAt - now} ms` };
    }
    if (now < dueAt) {
      await this.deps.timer.schedule(event, dueAt);
      return { status: 'ignored', detail: `${event.kind} timer fired ${dueAt - now} ms early; re-scheduled` };
    }
    switch (event.kind) {
      case 'proposal-window':
        return this.closeWindow(event.taskId);
      case 'lease':
        return outcomeOrGone(event.taskId, await this.mutateWithCandidates(event.taskId, (t, ctx) => expireLease(t, event.stepId, event.epoch, ctx)));
      case 'deadline':
        return outcomeOrGone(event.taskId, await this.mutate(event.taskId, (t) => expireDeadline(t, this.machine(this.now()))));
      case 'retention':
        return outcomeOrGone(event.taskId, await this.mutate(event.taskId, (t) => clearRetained(t, this.machine(this.now()))));
      case 'dispatch':
        return outcomeOrGone(event.taskId, await this.mutateWithCandidates(event.taskId, (t, ctx) => retryDispatch(t, ctx)));
    }
  }

  /** An agent went offline: each live step it holds is re-assigned with a new epoch. */
  async onAgentGone(agentId: string, reason: string): Promise<void> {
    const taskIds = await this.deps.tasks.tasksAssignedTo(agentId);
    for (const taskId of taskIds) {
      const decision = await this.mutateWithCandidates(taskId, (t, ctx) => reassignAgentSteps(t, agentId, reason, ctx));
      if (decision?.kind === 'changed') this.log('info', 'steps re-assigned after agent left', { taskId, agentId, reason });
    }
  }

  /**
   * The safety net: publishes unflushed outboxes and fires whatever is due (windows, leases,
   * deadlines, retention) for up to `limit` tasks, for timers that were lost or never scheduled.
   * A task that fails is logged and skipped so the others still advance.
   */
  async sweep(limit = DEFAULT_SWEEP_LIMIT): Promise<{ examined: number; advanced: number }> {
    const due = await this.deps.tasks.listDue(this.now(), limit);
    let advanced = 0;
    for (const task of due) {
      try {
        let moved = false;
        if (task.outbox.length > 0) moved = (await this.flushStored(task)) || moved;
        for (const event of dueEvents(task)) {
          const at = timerDueAt(task, event, this.deps.config);
          if (at === undefined || at > this.now()) continue;
          const outcome = await this.onTimer(event);
          if (outcome.status === 'accepted') moved = true;
        }
        if (moved) advanced += 1;
      } catch (err) {
        this.log('error', 'sweep failed for a task', { taskId: task.taskId, error: describeError(err) });
      }
    }
    return { examined: due.length, advanced };
  }

  // -------------------------------------------------------------------------------------------
  // Planning

  /** Closes the proposal window: plans from the stored proposals and assigns the ready steps. */
  private async closeWindow(taskId: string): Promise<HandleOutcome> {
    const task = await this.deps.tasks.get(taskId);
    if (!task) return { status: 'ignored', detail: `task ${taskId} no longer exists` };
    if (task.phase !== 'collecting-proposals' || isTerminal(task.state)) return { status: 'ignored', detail: `task ${taskId} is already planned` };
    const proposals = await this.deps.tasks.listProposals(taskId);
    const bids = proposals.flatMap((p) => (isDecline(p.proposal) ? [] : [{ agentId: p.agentId, steps: p.proposal.steps }]));
    const agents = new Map<string, AgentRecord>();
    for (const bid of bids) {
      const agent = await this.deps.registry.get(bid.agentId);
      if (agent) agents.set(bid.agentId, agent);
    }
    await this.attachMeasurements([...agents.values()]);
    const outcome = this.plan({ request: task.request, bids, agents, now: this.now() }, taskId);
    let awaitable: string[] = [];
    if (!outcome.ok && this.deps.config.maxWaitForBidsMs > 0) {
      const hinted = await this.candidatesFor(task.request.skills ?? []);
      awaitable = awaitableBidders(task, [...hinted.values()].flat(), proposals.map((p) => p.agentId));
    }
    const skills = outcome.ok ? outcome.steps.map((s) => s.skill) : [];
    const candidates = await this.candidatesFor(skills);
    const decision = await this.mutate(taskId, (t) => recordPlan(t, outcome, this.dispatch(candidates), awaitable));
    this.log('info', 'proposal window closed', { taskId, bids: bids.length, proposals: proposals.length, planned: outcome.ok, awaitable });
    return outcomeOrGone(taskId, decision);
  }

  private plan(input: Parameters<typeof planTask>[0], taskId: string): PlanOutcome {
    try {
      return planWithMeasurements(input, planTask);
    } catch (err) {
      // A planner that throws on some input must fail the task with a reason, not leave it collecting forever.
      if (err instanceof UnsatisfiableError) return { ok: false, reasons: err.reasons };
      if (err instanceof PorchlightError) return { ok: false, reasons: [err.message] };
      this.log('error', 'planner threw', { taskId, error: describeError(err) });
      throw err;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Mutation, outbox, timers

  /**
   * Load → transition → conditional save, re-applied on a version conflict. Returns the decision,
   * or undefined when the task does not exist.
   */
  private async mutate(taskId: string, apply: (task: TaskRecord) => Decision): Promise<Decision | undefined> {
    for (let attempt = 1; ; attempt++) {
      const task = await this.deps.tasks.get(taskId);
      if (!task) return undefined;
      const decision = apply(task);
      if (decision.kind === 'unchanged') {
        // Often a redelivery whose first delivery saved and then failed to publish: finish that publishing now
        // rather than leaving the messages to the next sweep.
        if (task.outbox.length > 0) await this.flushStored(task);
        return decision;
      }
      if (decision.kind !== 'changed') return decision;
      try {
        await this.deps.tasks.save(decision.task, task.version);
      } catch (err) {
        if (err instanceof VersionConflictError && attempt < MAX_SAVE_ATTEMPTS) {
          this.log('debug', 'version conflict; reloading', { taskId, attempt });
          continue;
        }
        throw err;
      }
      await this.afterSave(task, decision.task);
      await this.recordMeasurements(taskId, decision.measurements ?? []);
      return decision;
    }
  }

  /**
   * Records what a saved transition measured of agents. At-most-once: a crash before this point
   * loses the samples (a redelivery finds the transition applied and measures nothing), which
   * leaves the figures unbiased; a failed write is logged, never retried into a double count.
   */
  private async recordMeasurements(taskId: string, measurements: readonly Measurement[]): Promise<void> {
    for (const { agentId, sample } of measurements) {
      try {
        await this.deps.registry.recordMeasurement(agentId, sample, this.now());
      } catch (err) {
        this.log('warn', 'measurement not recorded', { taskId, agentId, error: describeError(err) });
      }
    }
  }

  /** Sets `measured` on each record that has measurements (planning and matching read it). */
  private async attachMeasurements(records: readonly AgentRecord[]): Promise<void> {
    if (records.length === 0) return;
    const sums = await this.deps.registry.measurements(records.map((r) => r.agentId));
    for (const record of records) {
      const m = sums.get(record.agentId);
      if (m !== undefined) record.measured = m;
    }
  }

  /** {@link mutate} for transitions that may assign steps: loads candidates for every skill the task still needs. */
  private async mutateWithCandidates(taskId: string, apply: (task: TaskRecord, ctx: DispatchContext) => Decision): Promise<Decision | undefined> {
    const task = await this.deps.tasks.get(taskId);
    if (!task) return undefined;
    const skills = task.stepOrder.flatMap((id) => {
      const s = task.steps[id];
      return s && s.state !== 'completed' ? [s.skill] : [];
    });
    const ctx = this.dispatch(await this.candidatesFor(skills));
    return this.mutate(taskId, (t) => apply(t, ctx));
  }

  /** After a save: schedule the timers the change implies, publish the outbox, then record what was published. */
  private async afterSave(before: TaskRecord | undefined, after: TaskRecord): Promise<void> {
    for (const { event, dueAt } of timersBetween(before, after, this.deps.config)) {
      try {
        await this.deps.timer.schedule(event, dueAt);
      } catch (err) {
        // The sweeper finds due windows, leases and deadlines from the stored state.
        this.log('warn', 'timer not scheduled; the sweeper will cover it', { taskId: after.taskId, event, error: describeError(err) });
      }
    }
    await this.flushStored(after);
  }

  /** Publishes a stored task's outbox and saves it without what was published. True when anything was published. */
  private async flushStored(task: TaskRecord): Promise<boolean> {
    if (task.outbox.length === 0) return false;
    const result = await flush(this.deps.publisher, task.outbox);
    if (result.error !== undefined) {
      this.log('warn', 'publish failed; the outbox keeps the rest', { taskId: task.taskId, remaining: result.remaining.length, error: describeError(result.error) });
    }
    for (const { message, error } of result.dropped) {
      this.log('error', 'message over the broker payload limit dropped', { taskId: task.taskId, topic: message.topic, bytes: error.bytes, limit: error.limit });
    }
    if (result.published.length === 0 && result.dropped.length === 0) return false;
    try {
      await this.deps.tasks.save(markPublished(task, result.remaining, this.machine(this.now())), task.version);
    } catch (err) {
      // Another transition saved first and carries these messages on; they will be published again, which receivers tolerate.
      if (!(err instanceof VersionConflictError)) throw err;
      this.log('debug', 'outbox bookkeeping lost a race', { taskId: task.taskId });
    }
    return true;
  }

  // -------------------------------------------------------------------------------------------
  // Helpers

  private async duplicateRequest(existing: TaskRecord, request: TaskRequest | undefined, msg: InboundMessage, clientId: string): Promise<HandleOutcome> {
    if (existing.owner === clientId && request && canonicalJson(existing.request) === canonicalJson(request)) {
      // A redelivery after a crash between save and publish: finish the publishing the first delivery started.
      if (existing.outbox.length > 0) await this.flushStored(existing);
      return { status: 'duplicate', detail: `task ${existing.taskId} already submitted with this request` };
    }
    // Told on the client's errors topic: a rejected status would overwrite the live task's own.
    return this.refuseClient(msg, new DuplicateTaskError(existing.taskId), clientId, { topic: msg.topic, taskId: existing.taskId });
  }

  /**
   * What every message an agent hands in on a topic ending in its own id goes through: a topic of
   * the expected kind, a sender that is the identity the topic names (on AWS, `clientid()`), the
   * task and its root, the payload's schema. Returns the parts, or the refusal already made.
   */
  private async handedIn<S extends z.ZodType>(
    msg: InboundMessage, kind: HandInTopic['kind'], schema: S, what: string,
  ): Promise<{ refused: HandleOutcome } | { parsed: HandInTopic; payload: z.infer<S>; task: TaskRecord; about: { topic: string; taskId: string; stepId: string } }> {
    const parsed = this.parse(msg, kind);
    if (parsed instanceof PorchlightError) return { refused: await this.refuse(msg, parsed) };
    const { taskId, stepId, agentId } = parsed;
    const about = { topic: msg.topic, taskId, stepId };
    const spoofed = senderMismatch(msg, agentId);
    if (spoofed) return { refused: await this.refuse(msg, spoofed, msg.clientId, about) };
    const task = await this.deps.tasks.get(taskId);
    if (!task) return { refused: await this.refuse(msg, new UnknownTaskError(taskId), agentId, about) };
    const wrongRoot = rootMismatch(task, parsed);
    if (wrongRoot) return { refused: await this.refuse(msg, wrongRoot, agentId, about) };
    try {
      return { parsed, payload: decodePayload(schema, msg.payload, what), task, about };
    } catch (err) {
      return { refused: await this.refuse(msg, asPorchlightError(err), agentId, about) };
    }
  }

  private refuseClient(msg: InboundMessage, error: PorchlightError, clientId: string, about: { topic: string; taskId?: string }): Promise<HandleOutcome> {
    return refuseClient(this.deps, msg, error, clientId, about);
  }

  private parse<K extends ParsedTopic['kind']>(msg: InboundMessage, kind: K): Extract<ParsedTopic, { kind: K }> | PorchlightError {
    return topicOfKind(msg, kind);
  }

  private refuse(msg: InboundMessage, error: PorchlightError, notify?: string, about?: { topic: string; taskId?: string; stepId?: string }): Promise<HandleOutcome> {
    return refuse(this.deps, msg, error, notify, about);
  }

  private async publishAll(messages: readonly OutboundMessage[]): Promise<void> {
    const result = await flush(this.deps.publisher, messages);
    if (result.error !== undefined) throw result.error instanceof Error ? result.error : new Error(describeError(result.error));
  }

  /** Registry candidates for each distinct skill. */
  private async candidatesFor(skills: readonly string[]): Promise<Map<string, AgentRecord[]>> {
    const out = new Map<string, AgentRecord[]>();
    for (const skill of new Set(skills)) out.set(skill, await this.deps.registry.findBySkill(skill));
    await this.attachMeasurements([...out.values()].flat());
    return out;
  }

  private machine(now: number): MachineContext {
    return { now, config: this.deps.config };
  }

  private dispatch(candidates: ReadonlyMap<string, readonly AgentRecord[]>): DispatchContext {
    return { now: this.now(), config: this.deps.config, candidates, rank: rankAgents };
  }

  private now(): number {
    return this.deps.clock.now();
  }

  private log(level: LogLevel, msg: string, data?: Record<string, unknown>): void {
    this.deps.log?.(level, msg, data);
  }
}

/** A topic on which an agent hands something in under its own id: output, progress or a pool claim. */
type HandInTopic = Extract<ParsedTopic, { kind: 'task-output' | 'task-claim' | 'task-progress' }>;

/** On AWS the rule tells who published (`clientid()`); it must be the identity the topic names. */
function senderMismatch(msg: InboundMessage, agentId: string): NotAuthorizedError | undefined {
  if (msg.clientId === undefined || msg.clientId === agentId) return undefined;
  return new NotAuthorizedError(`${msg.topic} names agent ${agentId} but was published by client ${msg.clientId}; an agent may only hand in work as itself`);
}

function rootMismatch(task: TaskRecord, parsed: { taskRoot: string; taskId: string }): TopicParseError | undefined {
  if (parsed.taskRoot === task.taskRoot) return undefined;
  return new TopicParseError(`task ${parsed.taskId} lives under ${task.taskRoot}/, not ${parsed.taskRoot}/`);
}

function outcomeOf(decision: Decision): HandleOutcome {
  switch (decision.kind) {
    case 'changed': return { status: 'accepted', detail: decision.detail };
    case 'unchanged': return { status: decision.outcome, detail: decision.detail };
    case 'rejected': return rejected(decision.error);
  }
}

function outcomeOrGone(taskId: string, decision: Decision | undefined): HandleOutcome {
  return decision ? outcomeOf(decision) : { status: 'ignored', detail: `task ${taskId} no longer exists` };
}

function summary(outcome: HandleOutcome): string {
  return outcome.status === 'rejected' ? `${outcome.code}: ${outcome.message}` : (outcome.detail ?? outcome.status);
}

