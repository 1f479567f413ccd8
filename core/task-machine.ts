/**
 * The task state machine: pure transitions over a TaskRecord (ARCHITECTURE §4–5).
 *
 * Every transition takes a record and returns a {@link Decision}: a changed copy (the input is
 * never mutated), or why nothing changed, or why the input was refused. A changed copy has its
 * version raised by one, its `updatedAt` set, and the messages to publish appended to its outbox
 * (a retained status snapshot last), so the orchestrator can save it with a conditional write and
 * publish afterwards. Terminal states absorb everything.
 *
 * No ports and no async here: the orchestrator loads what a transition needs (candidates, plan)
 * beforehand and passes it in, with the clock's `now`. Fencing tokens are derived, never held
 * here: an assignment leaves the outbox without one and the publisher fills it in, and an output's
 * token is checked by the orchestrator before the transition runs.
 */
import { DATA_CLASSES, isSensitiveDataClass, requiredAccreditations, taskRootFor } from './data-classes';
import { AlreadyClaimedError, FencingError, InvalidStateError, NotAuthorizedError, ValidationError, type ErrorCode, type PorchlightError } from './errors';
import { isTerminal, type AgentRecord, type MatchAudit, type OutboundMessage, type StepRecord, type SupersededEpoch, type TaskRecord, type TimerEvent } from './model';
import { enqueue } from './outbox';
import type { OrchestratorConfig } from './orchestrator';
import { claimIneligibility } from './matching';
import type { PlanOutcome, PlannedStep, RankAgents } from './plan-types';
import {
  SCHEMA_VERSION, type Artifacts, type Assignment, type Claim, type PoolOffer, type RejectNotice, type StatusStep, type StepOutput, type TaskRequest,
  type TaskResult, type TaskStatus, type Usage,
} from './schemas';
import type { Measurement, MeasurementSample } from './reputation';
import { topics } from './topics';

/** What every transition needs: the time and the orchestrator's settings. */
export interface MachineContext {
  /** Epoch ms, from the Clock port. */
  readonly now: number;
  readonly config: OrchestratorConfig;
}

/** What a transition that may assign steps needs besides time and settings. */
export interface DispatchContext extends MachineContext {
  /** Registry view of the agents advertising each skill the task still needs, by skill. */
  readonly candidates: ReadonlyMap<string, readonly AgentRecord[]>;
  /** The matcher. */
  readonly rank: RankAgents;
}

/** The result of a transition. */
export type Decision =
  | {
      readonly kind: 'changed';
      readonly task: TaskRecord;
      readonly detail: string;
      /** What the transition observed of agents (an output, a lapsed lease, a lost step), to record once it is saved. */
      readonly measurements?: readonly Measurement[];
    }
  | { readonly kind: 'unchanged'; readonly outcome: 'duplicate' | 'ignored'; readonly detail: string }
  | {
      readonly kind: 'rejected';
      readonly error: PorchlightError;
      /** The agent that should be told (a RejectNotice on its errors topic), when it is known. */
      readonly notify?: string;
    };

/** A timer to schedule after a transition was saved. */
export interface ScheduledTimer {
  readonly event: TimerEvent;
  readonly dueAt: number;
}

/** Error codes recorded in a task's `errors` besides the wire {@link ErrorCode}s. */
export type TaskErrorCode =
  | ErrorCode | 'deadline-passed' | 'lease-expired' | 'agent-gone' | 'step-failed' | 'no-agent' | 'agent-wait-expired' | 'canceled' | 'missing-artifact'
  | 'budget-exceeded' | 'usage-over-bid';

// ---------------------------------------------------------------------------------------------
// Intake

/**
 * Checks what the schema cannot: that the task's data classes map to one topic tree and that it is
 * the tree the request was published under, and that the deadline is still ahead. Returns the
 * task root; throws ValidationError('invalid-payload') saying what is wrong.
 */
export function checkRequest(request: TaskRequest, topicRoot: string, now: number): string {
  const dataClasses = request.constraints.dataClasses ?? [];
  let taskRoot: string;
  try {
    taskRoot = taskRootFor(dataClasses);
  } catch (err) {
    throw new ValidationError('invalid-payload', `task request is invalid: constraints.dataClasses: ${(err as Error).message}`, [], { cause: err });
  }
  if (taskRoot !== topicRoot) {
    const sensitive = dataClasses.filter(isSensitiveDataClass);
    const why = sensitive.length > 0
      ? `data class ${sensitive.map((c) => `'${c}'`).join(', ')} must be published under ${DATA_CLASSES[sensitive[0]!].root}/`
      : `a task without a sensitive data class must be published under ${taskRoot}/`;
    throw new ValidationError('invalid-payload', `task request was published under ${topicRoot}/ but ${why}`);
  }
  if (request.constraints.deadline !== undefined && Date.parse(request.constraints.deadline) <= now) {
    throw new ValidationError('invalid-payload', `task request is invalid: constraints.deadline ${request.constraints.deadline} has already passed`);
  }
  return taskRoot;
}

/**
 * The agents that can be expected to answer a request: online, advertising one of the hinted
 * skills, and holding (verified) every accreditation the task's data classes need, since the
 * broker withholds the request from anyone else. Empty without a skills hint: then the window
 * closes on its timer only.
 */
export function eligibleAgentsFor(request: TaskRequest, candidates: readonly AgentRecord[]): string[] {
  const hinted = new Set(request.skills ?? []);
  if (hinted.size === 0) return [];
  const needed = requiredAccreditations(request.constraints.dataClasses ?? []);
  const ids = candidates
    .filter((a) => a.state === 'online')
    .filter((a) => a.resume.skills.some((s) => hinted.has(s)))
    .filter((a) => needed.every((n) => a.verifiedAccredit.includes(n)))
    .map((a) => a.agentId);
  return [...new Set(ids)].sort();
}

/** Builds a new task (state submitted, collecting proposals) with its first status snapshot in the outbox. */
export function createTask(
  args: {
    readonly taskId: string;
    readonly taskRoot: string;
    /** The submitting client's identity (from the topic the broker let it publish on). */
    readonly owner: string;
    readonly request: TaskRequest;
    readonly eligibleAgents: readonly string[];
  },
  ctx: MachineContext,
): TaskRecord {
  const { now, config } = ctx;
  const deadlineAt = args.request.constraints.deadline !== undefined ? Date.parse(args.request.constraints.deadline) : now + config.defaultDeadlineMs;
  const task: TaskRecord = {
    taskId: args.taskId,
    taskRoot: args.taskRoot,
    owner: args.owner,
    request: args.request,
    state: 'submitted',
    phase: 'collecting-proposals',
    version: 1,
    createdAt: now,
    updatedAt: now,
    windowClosesAt: now + (args.request.proposalWindowMs ?? config.defaultProposalWindowMs),
    deadlineAt,
    eligibleAgents: [...args.eligibleAgents],
    steps: {},
    stepOrder: [],
    artifacts: { ...args.request.input },
    planNotes: [],
    errors: [],
    outbox: [],
    expiresAt: Math.ceil((deadlineAt + config.retentionMs) / 1000),
  };
  task.outbox = enqueue(task.outbox, { topic: topics.taskRequest(task.taskId, task.taskRoot), payload: callForBids(args.request), qos: 1, retain: false });
  task.outbox = enqueue(task.outbox, agentStatusMessage(task));
  task.outbox = enqueue(task.outbox, statusMessage(task));
  return task;
}

/**
 * The request as agents see it: validated, on the root its data classes chose, without the
 * client's cancel commitment and self-declared name.
 */
export function callForBids(request: TaskRequest): TaskRequest {
  const { cancelHash: _hash, client: _client, ...rest } = request;
  return rest;
}

/**
 * The messages announcing a refused request: a `rejected` result, then a `rejected` status
 * naming the error. Nothing is stored for a refused request.
 */
export function rejectionMessages(
  taskId: string, taskRoot: string, owner: string, error: { readonly code: string; readonly message: string }, now: number,
): OutboundMessage[] {
  const at = iso(now);
  const result: TaskResult = {
    v: SCHEMA_VERSION, taskId, state: 'rejected', outputs: {}, usage: { usd: 0, ms: 0, steps: 0 },
    reason: truncate(error.message, 4000), completedAt: at,
  };
  const status: TaskStatus = {
    v: SCHEMA_VERSION, taskId, state: 'rejected', phase: 'done',
    errors: [{ code: error.code, message: error.message, at }], version: 0, updatedAt: at,
  };
  return [
    { topic: topics.clientResult(owner, taskId, taskRoot), payload: result, qos: 1, retain: true },
    { topic: topics.clientStatus(owner, taskId, taskRoot), payload: status, qos: 1, retain: true },
  ];
}

/** A RejectNotice for `agentId` about a message it sent on `topic`. */
export function rejectNotice(
  agentId: string,
  error: { readonly code: string; readonly message: string },
  about: { readonly topic: string; readonly taskId?: string; readonly stepId?: string },
  now: number,
): OutboundMessage {
  const notice: RejectNotice = {
    v: SCHEMA_VERSION,
    code: error.code,
    message: truncate(error.message, 2000),
    topic: truncate(about.topic, 256),
    ...(about.taskId !== undefined ? { taskId: about.taskId } : {}),
    ...(about.stepId !== undefined ? { stepId: about.stepId } : {}),
    at: iso(now),
  };
  return { topic: topics.agentErrors(agentId), payload: notice, qos: 1, retain: false };
}

/** True once every eligible agent has answered (bid or decline); never true without eligible agents. */
export function allEligibleAnswered(task: TaskRecord, answered: readonly string[]): boolean {
  const set = new Set(answered);
  return task.eligibleAgents.length > 0 && task.eligibleAgents.every((a) => set.has(a));
}

/**
 * The earliest time the proposal window may close, even once every eligible agent answered: the
 * task's creation plus `minProposalWindowMs`, capped by the window the request asked for. It keeps
 * the first fast bidder from winning by default before others (agents whose skills the client did
 * not hint, agents that just came online) had a chance to bid.
 */
export function earliestWindowClose(task: TaskRecord, config: OrchestratorConfig): number {
  const requested = task.request.proposalWindowMs ?? config.defaultProposalWindowMs;
  return task.createdAt + Math.min(config.minProposalWindowMs, requested);
}

/**
 * The agents a task without a satisfiable plan may still hear from: every agent that was eligible
 * when it arrived (the broker queued the request in its persistent session, so it answers once it
 * is back), and every agent online now that advertises a hinted skill and holds the accreditations
 * the task's data needs, less those that answered already. Sorted; empty without a skills hint.
 */
export function awaitableBidders(task: TaskRecord, candidates: readonly AgentRecord[], answered: readonly string[]): string[] {
  const done = new Set(answered);
  const online = eligibleAgentsFor(task.request, candidates);
  return [...new Set([...task.eligibleAgents, ...online])].filter((a) => !done.has(a)).sort();
}

/**
 * Moves the proposal window's close to `at` when that is sooner (every eligible agent answered
 * before the window's minimum open time); saved without a status snapshot, as nothing a
 * subscriber sees has changed.
 */
export function closeWindowAt(task: TaskRecord, at: number, ctx: MachineContext): Decision {
  if (isTerminal(task.state)) return terminal(task);
  if (task.phase !== 'collecting-proposals') return { kind: 'unchanged', outcome: 'ignored', detail: `task ${task.taskId} is already planned` };
  if (task.windowClosesAt <= at) return { kind: 'unchanged', outcome: 'duplicate', detail: `the window of task ${task.taskId} already closes at ${iso(task.windowClosesAt)}` };
  const t = draft(task);
  t.windowClosesAt = at;
  return commit(t, task, ctx, `every eligible agent answered; window closes at its minimum open time ${iso(at)}`, { snapshot: false });
}

// ---------------------------------------------------------------------------------------------
// Planning and dispatch

/**
 * Closes the proposal window with the planner's outcome. A plan becomes the task's steps and the
 * ready ones are assigned. Without a plan, the task keeps collecting while anyone may still bid
 * (`awaitable`, see {@link awaitableBidders}), it has waited less than `maxWaitForBidsMs` since
 * the window first closed, and its deadline is ahead: the window re-opens for `bidRecheckMs` and
 * the status says whom it waits for. Otherwise the task fails with the planner's reasons (and
 * whom it waited for, if it did).
 */
export function recordPlan(task: TaskRecord, outcome: PlanOutcome, ctx: DispatchContext, awaitable: readonly string[] = []): Decision {
  if (isTerminal(task.state)) return terminal(task);
  if (task.phase !== 'collecting-proposals') return { kind: 'unchanged', outcome: 'ignored', detail: `task ${task.taskId} is already planned` };
  const t = draft(task);
  if (!outcome.ok) {
    const since = task.bidWait?.since ?? ctx.now;
    const waitEndsAt = Math.min(since + ctx.config.maxWaitForBidsMs, task.deadlineAt ?? Infinity);
    if (awaitable.length > 0 && ctx.now < waitEndsAt) {
      const agents = [...awaitable];
      const reasons = outcome.reasons.slice(0, 8).map((r) => truncate(r, 500));
      const unchangedWait = task.bidWait !== undefined && sameList(task.bidWait.agents, agents) && sameList(task.bidWait.reasons, reasons);
      t.bidWait = { since, agents, reasons };
      t.windowClosesAt = Math.min(ctx.now + ctx.config.bidRecheckMs, waitEndsAt);
      return commit(t, task, ctx, `no plan yet; waiting for bids from ${agents.join(', ')}`, { snapshot: !unchangedWait });
    }
    const waited = task.bidWait !== undefined
      ? `; waited ${ctx.now - task.bidWait.since} ms for bids from ${task.bidWait.agents.join(', ')}${awaitable.length > 0 ? ' (wait limit reached)' : ''}`
      : '';
    delete t.bidWait;
    finishFailed(t, 'unsatisfiable', `no plan satisfies the request: ${outcome.reasons.join('; ')}${waited}`, ctx);
    return commit(t, task, ctx, 'no plan: task failed');
  }
  delete t.bidWait;
  t.steps = {};
  t.stepOrder = [];
  for (const planned of outcome.steps) {
    t.steps[planned.id] = stepRecordOf(planned);
    t.stepOrder.push(planned.id);
  }
  t.estUsd = outcome.estUsd;
  t.estMs = outcome.estMs;
  t.planNotes = [...outcome.notes];
  t.state = 'working';
  t.phase = 'executing';
  advance(t, ctx);
  return commit(t, task, ctx, `planned ${outcome.steps.length} step(s)`);
}

/** Ids of pending steps whose every consumed artifact exists, in plan order. */
export function readySteps(task: TaskRecord): string[] {
  return task.stepOrder.filter((id) => {
    const step = task.steps[id];
    return step !== undefined && step.state === 'pending' && step.consumes.every((a) => Object.prototype.hasOwnProperty.call(task.artifacts, a));
  });
}

/** True when every wanted artifact exists. */
export function hasWanted(task: TaskRecord): boolean {
  return task.request.want.every((a) => Object.prototype.hasOwnProperty.call(task.artifacts, a));
}

/**
 * The `dispatch` timer: tries again to assign the steps held for want of an available agent
 * (`ctx.candidates` freshly loaded). A step whose agent is back is assigned; one that has waited
 * `maxWaitForAgentMs` fails the task; otherwise the next attempt is set `dispatchRetryMs` later,
 * saved without a status snapshot since nothing a subscriber sees has changed. A timer that is
 * early (a later hold superseded it) or finds nothing held changes nothing.
 */
export function retryDispatch(task: TaskRecord, ctx: DispatchContext): Decision {
  if (isTerminal(task.state)) return terminal(task);
  const dueAt = dispatchDueAt(task);
  if (dueAt === undefined) return { kind: 'unchanged', outcome: 'ignored', detail: `task ${task.taskId} has no step waiting for an agent` };
  if (ctx.now < dueAt) return { kind: 'unchanged', outcome: 'ignored', detail: `next dispatch attempt of task ${task.taskId} is at ${iso(dueAt)}` };
  const t = draft(task);
  advance(t, ctx);
  const moved = t.state !== task.state || t.stepOrder.some((id) => t.steps[id]?.state !== task.steps[id]?.state);
  if (moved) return commit(t, task, ctx, 'dispatched step(s) that were waiting for an agent');
  const held = t.stepOrder.filter((id) => isHeld(t.steps[id]));
  return commit(t, task, ctx, `step(s) ${held.join(', ')} still waiting for an agent`, { snapshot: false });
}

// ---------------------------------------------------------------------------------------------
// Outputs

/**
 * Applies a step output. Accepted only when its epoch is the live assignment's and its token is
 * that epoch's (`tokenMatches`: the orchestrator derived the token of (task, step, output.epoch)
 * and compared it in constant time); the same output delivered again is a duplicate. A successful output stores the
 * artifacts the step declared (a missing one makes it an error output), completes the step and
 * dispatches what became ready, or finishes the task once every wanted artifact exists. An error
 * output re-assigns the step or, at the attempt limit or when not retryable, fails the task.
 * `sender` is the identity that handed the output in (the id its topic ends in, which the broker
 * lets only that identity publish); it must be the assignee. A pool step accepts outputs only
 * once claimed, and then only from its claimant.
 */
export function acceptOutput(task: TaskRecord, stepId: string, output: StepOutput, tokenMatches: boolean, ctx: DispatchContext, sender?: string): Decision {
  const step = task.steps[stepId];
  const about = `output for step ${stepId} of task ${task.taskId}`;
  if (output.taskId !== task.taskId || output.stepId !== stepId) {
    return {
      kind: 'rejected',
      error: new ValidationError('invalid-payload', `${about} names task ${output.taskId} step ${output.stepId} in its payload`),
      ...(step ? notifyFor(step, output.epoch) : {}),
    };
  }
  if (!step) return { kind: 'rejected', error: new InvalidStateError(`task ${task.taskId} has no step ${stepId}`) };
  if (step.epoch === output.epoch && tokenMatches && step.state === 'completed') {
    return { kind: 'unchanged', outcome: 'duplicate', detail: `step ${stepId} epoch ${output.epoch} already completed` };
  }
  const gone = tokenMatches ? step.superseded?.find((s) => s.epoch === output.epoch) : undefined;
  if (gone?.cause === 'error-output') {
    return { kind: 'unchanged', outcome: 'duplicate', detail: `error output of step ${stepId} epoch ${output.epoch} already handled` };
  }
  if (isTerminal(task.state)) {
    return { kind: 'rejected', error: new InvalidStateError(`task ${task.taskId} is ${task.state}; ${about} is not needed`), ...notifyFor(step, output.epoch) };
  }
  if (output.epoch !== step.epoch) {
    const why = output.epoch < step.epoch ? 'was superseded' : 'was never assigned';
    return {
      kind: 'rejected',
      error: new FencingError('stale-epoch', `${about} carries epoch ${output.epoch}, which ${why}; the live epoch is ${step.epoch}`),
      ...notifyFor(step, output.epoch),
    };
  }
  if (isOpenOffer(step)) {
    return {
      kind: 'rejected',
      error: new NotAuthorizedError(`${about}: epoch ${output.epoch} is an offer to pool ${step.pool ?? '?'} that nobody has claimed; claim it first`),
      ...(sender !== undefined ? { notify: sender } : {}),
    };
  }
  if (!tokenMatches) {
    return { kind: 'rejected', error: new FencingError('bad-token', `${about} carries the wrong fencing token for epoch ${output.epoch}`), ...notifyFor(step, output.epoch) };
  }
  if (step.state !== 'assigned') {
    return { kind: 'rejected', error: new InvalidStateError(`step ${stepId} of task ${task.taskId} is ${step.state}`), ...notifyFor(step, output.epoch) };
  }
  if (sender !== undefined && step.agentId !== undefined && sender !== step.agentId) {
    return {
      kind: 'rejected',
      error: new NotAuthorizedError(`${about} was published by client ${sender}, but the step is assigned to ${step.agentId}`),
      notify: sender,
    };
  }

  const t = draft(task);
  const s = t.steps[stepId]!;
  const complete = output.ok && s.produces.every((a) => Object.prototype.hasOwnProperty.call(output.output, a));
  const measured = measurementOf(step, ctx, { ok: complete, timed: true, usd: output.usage?.usd ?? 0 });
  s.usage = addUsage(s.usage, output.usage);
  flagUsageOverBid(t, s, output.usage?.usd ?? 0, ctx);
  // What the client reads is the orchestrator's copy of an output it accepted, never the agent's message.
  const { token: _token, ...forClient } = output;
  t.outbox = enqueue(t.outbox, { topic: topics.clientOutput(t.owner, t.taskId, stepId, t.taskRoot), payload: forClient, qos: 1, retain: true });
  if (!output.ok) {
    failStepIn(t, s, 'error-output', { code: output.error.code, message: output.error.message }, output.error.retryable, ctx);
    return measuring(commit(t, task, ctx, `step ${stepId} reported an error`), measured);
  }
  const missing = s.produces.filter((a) => !Object.prototype.hasOwnProperty.call(output.output, a));
  if (missing.length > 0) {
    failStepIn(t, s, 'error-output', { code: 'missing-artifact', message: `output of step ${stepId} lacks declared artifact(s) ${missing.join(', ')}` }, true, ctx);
    return measuring(commit(t, task, ctx, `step ${stepId} output incomplete`), measured);
  }
  for (const name of s.produces) t.artifacts[name] = output.output[name]!;
  s.state = 'completed';
  delete s.leaseExpiresAt;
  if (overBudget(t, 0)) {
    const budget = t.request.constraints.maxUsd!;
    finishFailed(t, 'budget-exceeded', `budget exceeded: step ${stepId} brought the spend to ${usd(spentUsd(t))}, over the budget of ${usd(budget)}; no further step is dispatched`, ctx, stepId);
    return measuring(commit(t, task, ctx, `step ${stepId} completed over the budget: task failed`), measured);
  }
  advance(t, ctx);
  return measuring(commit(t, task, ctx, `step ${stepId} completed`), measured);
}

/** USD spent on the task so far: the usage every attempt of every step reported. */
export function spentUsd(task: TaskRecord): number {
  return round(Object.values(task.steps).reduce((sum, s) => sum + (s.usage?.usd ?? 0), 0));
}

/** Estimates of the steps running now (assigned, usage not reported yet). */
function committedUsd(task: TaskRecord): number {
  return Object.values(task.steps).reduce((sum, s) => sum + (s.state === 'assigned' && s.usage === undefined ? s.estUsd : 0), 0);
}

/** True when the spend plus what is running plus `extra` would pass the request's budget. */
function overBudget(t: TaskRecord, extra: number): boolean {
  const budget = t.request.constraints.maxUsd;
  return budget !== undefined && spentUsd(t) + committedUsd(t) + extra > budget + 1e-9;
}

/**
 * Records, visibly in the task's errors, an agent that reported more for a step than it bid: the
 * planner chose the step at its bid, so a larger report is a broken promise, whatever the budget.
 */
function flagUsageOverBid(t: TaskRecord, s: StepRecord, reportedUsd: number, ctx: MachineContext): void {
  if (reportedUsd <= s.estUsd + 1e-9) return;
  const agent = s.agentId ?? s.proposedBy;
  t.errors.push({
    code: 'usage-over-bid',
    message: `agent ${agent} reported ${usd(reportedUsd)} for step ${s.id}, more than its bid of ${usd(s.estUsd)}`,
    stepId: s.id, agentId: agent, at: iso(ctx.now),
  });
}

function usd(n: number): string {
  return `$${n.toFixed(4)}`;
}

// ---------------------------------------------------------------------------------------------
// Pool claims

/**
 * A pool member claims an offered step. The first valid claim of the live offer wins: the step
 * becomes a normal fenced assignment to the claimant (a new epoch and token on its own
 * `assign/{agentId}` topic, a fresh lease), whose outputs alone are then accepted. The winner's
 * claim delivered again is a duplicate; anyone else's claim of that offer is refused with
 * `already-claimed`, and a claim of an offer that was superseded or never made with `stale-epoch`.
 *
 * `agent` is the claimant's registry record: it must be a verified member of the step's pool
 * (its résumé lists the pool and its identity's groups confirm it) and pass the step's static
 * constraints (skill, region, data classes, verified accreditations), and it must not be an agent
 * that failed the step before (one that lost it by going away may claim it again).
 */
export function claimStep(task: TaskRecord, stepId: string, claim: Claim, claimant: string, agent: AgentRecord | undefined, ctx: DispatchContext): Decision {
  const step = task.steps[stepId];
  const about = `claim of ${claimant} for step ${stepId} of task ${task.taskId}`;
  const refuse = (error: PorchlightError): Decision => ({ kind: 'rejected', error, notify: claimant });
  if (claim.taskId !== task.taskId || claim.stepId !== stepId) {
    return refuse(new ValidationError('invalid-payload', `${about} names task ${claim.taskId} step ${claim.stepId} in its payload`));
  }
  if (!step) return refuse(new InvalidStateError(`task ${task.taskId} has no step ${stepId}`));
  if (step.pool === undefined) return refuse(new InvalidStateError(`step ${stepId} of task ${task.taskId} is not offered to a pool; it cannot be claimed`));
  if (step.agentId === claimant && step.claimedFrom === claim.epoch) {
    return { kind: 'unchanged', outcome: 'duplicate', detail: `${claimant} already holds step ${stepId} from offer ${claim.epoch}` };
  }
  if (isTerminal(task.state)) return refuse(new InvalidStateError(`task ${task.taskId} is ${task.state}; ${about} is not needed`));
  if (claim.epoch > step.epoch) return refuse(new FencingError('stale-epoch', `${about} names offer ${claim.epoch}, which was never made; the live epoch is ${step.epoch}`));
  if (step.claimedFrom === claim.epoch && step.agentId !== undefined) {
    return refuse(new AlreadyClaimedError(`offer ${claim.epoch} of step ${stepId} of task ${task.taskId} was already claimed by another member of pool ${step.pool}`));
  }
  if (claim.epoch < step.epoch || !isOpenOffer(step)) {
    return refuse(new FencingError('stale-epoch', `${about} names offer ${claim.epoch}, which is no longer open (the step is ${step.state} at epoch ${step.epoch})`));
  }
  if (agent === undefined) return refuse(new NotAuthorizedError(`${about}: ${claimant} has no résumé in the registry`));
  if (!(agent.verifiedPools ?? []).includes(step.pool)) {
    return refuse(new NotAuthorizedError(`${about}: ${claimant} is not a verified member of pool ${step.pool} (its résumé must list the pool and its identity must be in the pool's group)`));
  }
  const failedIt = (step.superseded ?? []).some((x) => x.agentId === claimant && x.cause !== 'agent-gone');
  if (failedIt) return refuse(new NotAuthorizedError(`${about}: ${claimant} failed this step before and may not run it again`));
  const ineligible = claimIneligibility(step, agent, task.request.constraints);
  if (ineligible !== undefined) return refuse(new NotAuthorizedError(`${about}: ${ineligible}`));

  const t = draft(task);
  const s = t.steps[stepId]!;
  s.claimedFrom = claim.epoch;
  assignTo(t, s, claimant, ctx);
  return commit(t, task, ctx, `step ${stepId} claimed by ${claimant} from pool ${step.pool}`);
}

// ---------------------------------------------------------------------------------------------
// Failures, timers, cancellation

/**
 * A lease ran out: if `epoch` is still the step's live, unanswered assignment, the assignee is
 * excluded and the step re-assigned, or held until another capable agent is available (or the
 * task fails at the attempt limit).
 */
export function expireLease(task: TaskRecord, stepId: string, epoch: number, ctx: DispatchContext): Decision {
  if (isTerminal(task.state)) return terminal(task);
  const step = task.steps[stepId];
  if (!step || step.epoch !== epoch || step.state !== 'assigned') {
    return { kind: 'unchanged', outcome: 'ignored', detail: `lease of step ${stepId} epoch ${epoch} is no longer live` };
  }
  if (step.leaseExpiresAt !== undefined && ctx.now < step.leaseExpiresAt) {
    return { kind: 'unchanged', outcome: 'ignored', detail: `lease of step ${stepId} epoch ${epoch} has not run out` };
  }
  const t = draft(task);
  const message = step.agentId !== undefined
    ? `agent ${step.agentId} did not answer step ${stepId} within ${ctx.config.leaseMs} ms`
    : `no member of pool ${step.pool ?? '?'} claimed step ${stepId} within ${ctx.config.leaseMs} ms`;
  // An unclaimed pool offer has no assignee to measure.
  const measured = step.agentId !== undefined ? measurementOf(step, ctx, { ok: false, timed: true }) : undefined;
  failStepIn(t, t.steps[stepId]!, 'lease-expired', { code: 'lease-expired', message }, true, ctx);
  return measuring(commit(t, task, ctx, `lease of step ${stepId} epoch ${epoch} expired`), measured);
}

/** An agent went offline: every step it holds is re-assigned with a new epoch, or held until another capable agent is available. */
export function reassignAgentSteps(task: TaskRecord, agentId: string, reason: string, ctx: DispatchContext): Decision {
  if (isTerminal(task.state)) return terminal(task);
  const held = task.stepOrder.filter((id) => task.steps[id]?.state === 'assigned' && task.steps[id]?.agentId === agentId);
  if (held.length === 0) return { kind: 'unchanged', outcome: 'ignored', detail: `agent ${agentId} holds no step of task ${task.taskId}` };
  const t = draft(task);
  const lost: Measurement[] = [];
  for (const id of held) {
    if (isTerminal(t.state)) break;
    const s = t.steps[id]!;
    if (s.state !== 'assigned') continue;
    // A step cut short says nothing about how long it takes: counted as a failure, not timed.
    const m = measurementOf(s, ctx, { ok: false, timed: false });
    if (m !== undefined) lost.push(m);
    failStepIn(t, s, 'agent-gone', { code: 'agent-gone', message: `agent ${agentId} went away while holding step ${id}: ${reason}` }, true, ctx);
  }
  return measuring(commit(t, task, ctx, `re-assigned ${held.length} step(s) of agent ${agentId}`), ...lost);
}

/** The deadline passed: a live task fails with "deadline passed" and its active steps are canceled. */
export function expireDeadline(task: TaskRecord, ctx: MachineContext): Decision {
  if (isTerminal(task.state)) return terminal(task);
  if (task.deadlineAt === undefined || ctx.now < task.deadlineAt) {
    return { kind: 'unchanged', outcome: 'ignored', detail: `deadline of task ${task.taskId} has not passed` };
  }
  const t = draft(task);
  const waiting = t.stepOrder.flatMap((id) => {
    const s = t.steps[id];
    return s && isHeld(s) ? [`step ${id} (${s.skill}) was waiting for ${waitedFor(s)}`] : [];
  });
  finishFailed(t, 'deadline-passed', `deadline passed at ${iso(task.deadlineAt)} before the task completed${waiting.length > 0 ? `; ${waiting.join('; ')}` : ''}`, ctx);
  return commit(t, task, ctx, 'deadline passed');
}

/** Fails a live task for `message`, canceling its active steps. */
export function failTask(task: TaskRecord, code: TaskErrorCode, message: string, ctx: MachineContext): Decision {
  if (isTerminal(task.state)) return terminal(task);
  const t = draft(task);
  finishFailed(t, code, message, ctx);
  return commit(t, task, ctx, message);
}

/**
 * Cancels a live task: every pending or assigned step is canceled, and the retained status turns
 * `canceled`, which is how assignees learn it (they watch the status of each task they execute).
 */
export function cancelTask(task: TaskRecord, reason: string, ctx: MachineContext): Decision {
  if (task.state === 'canceled') return { kind: 'unchanged', outcome: 'duplicate', detail: `task ${task.taskId} is already canceled` };
  if (isTerminal(task.state)) return { kind: 'rejected', error: new InvalidStateError(`task ${task.taskId} is already ${task.state}; it cannot be canceled`) };
  const t = draft(task);
  t.errors.push({ code: 'canceled', message: reason, at: iso(ctx.now) });
  t.state = 'canceled';
  finish(t, ctx);
  return commit(t, task, ctx, 'canceled');
}

/**
 * After retention, clears the task's retained topics (result, status, each output) by publishing
 * empty retained payloads. Clearing twice is a duplicate.
 */
export function clearRetained(task: TaskRecord, ctx: MachineContext): Decision {
  if (!isTerminal(task.state)) return { kind: 'unchanged', outcome: 'ignored', detail: `task ${task.taskId} is still ${task.state}` };
  if (task.retainedClearedAt !== undefined) return { kind: 'unchanged', outcome: 'duplicate', detail: `retained topics of task ${task.taskId} already cleared` };
  const dueAt = retentionDueAt(task, ctx.config);
  if (ctx.now < dueAt) return { kind: 'unchanged', outcome: 'ignored', detail: `retention of task ${task.taskId} runs until ${iso(dueAt)}` };
  const t = draft(task);
  const clear = (topic: string): void => {
    t.outbox = enqueue(t.outbox, { topic, payload: null, qos: 1, retain: true });
  };
  for (const id of t.stepOrder) if ((t.steps[id]?.epoch ?? 0) > 0) clear(topics.clientOutput(t.owner, t.taskId, id, t.taskRoot));
  clear(topics.clientResult(t.owner, t.taskId, t.taskRoot));
  clear(topics.clientStatus(t.owner, t.taskId, t.taskRoot));
  clear(topics.taskStatus(t.taskId, t.taskRoot));
  t.retainedClearedAt = ctx.now;
  return commit(t, task, ctx, 'retained topics cleared', { snapshot: false });
}

/** Removes published messages from the outbox (a bookkeeping save: no status snapshot). */
export function markPublished(task: TaskRecord, remaining: readonly OutboundMessage[], ctx: MachineContext): TaskRecord {
  const t = draft(task);
  t.outbox = [...remaining];
  t.version = task.version + 1;
  t.updatedAt = ctx.now;
  return t;
}

// ---------------------------------------------------------------------------------------------
// Views and timers

/** The task's retained status snapshot (its version is the record version). */
export function statusSnapshot(task: TaskRecord): TaskStatus {
  const steps: StatusStep[] = task.stepOrder.flatMap((id) => {
    const s = task.steps[id];
    if (!s) return [];
    return [{
      id: s.id, skill: s.skill, consumes: [...s.consumes], produces: [...s.produces], state: s.state,
      ...(s.agentId !== undefined ? { agentId: s.agentId } : {}),
      ...(s.pool !== undefined ? { pool: s.pool } : {}),
      epoch: s.epoch, attempts: s.attempts, estUsd: s.estUsd, estMs: s.estMs, proposedBy: s.proposedBy,
    }];
  });
  return {
    v: SCHEMA_VERSION,
    taskId: task.taskId,
    state: task.state,
    phase: task.phase,
    ...(steps.length > 0 ? { plan: { steps, estUsd: task.estUsd ?? 0, estMs: task.estMs ?? 0 } } : {}),
    ...(task.bidWait !== undefined && task.phase === 'collecting-proposals' && !isTerminal(task.state)
      ? { waitingForBids: { agents: [...task.bidWait.agents], since: iso(task.bidWait.since), reasons: [...task.bidWait.reasons] } }
      : {}),
    errors: task.errors.map((e) => ({ ...e })),
    version: task.version,
    updatedAt: iso(task.updatedAt),
  };
}

/**
 * The result of a finished task: wanted artifacts (completed tasks only), usage summed over every
 * attempt, and why it ended. Throws InvalidStateError for a task that has not finished.
 */
export function resultOf(task: TaskRecord): TaskResult {
  const state = task.state;
  if (state === 'submitted' || state === 'working') throw new InvalidStateError(`task ${task.taskId} is still ${state}; it has no result yet`);
  const outputs: Artifacts = {};
  if (task.state === 'completed') for (const name of task.request.want) outputs[name] = task.artifacts[name] ?? null;
  const steps = Object.values(task.steps);
  const usage = {
    usd: round(steps.reduce((sum, s) => sum + (s.usage?.usd ?? 0), 0)),
    ms: steps.reduce((sum, s) => sum + (s.usage?.ms ?? 0), 0),
    steps: steps.filter((s) => s.state === 'completed').length,
  };
  const last = task.errors[task.errors.length - 1];
  return {
    v: SCHEMA_VERSION,
    taskId: task.taskId,
    state,
    outputs,
    usage,
    ...(state !== 'completed' && last ? { reason: truncate(last.message, 4000) } : {}),
    completedAt: iso(task.finishedAt ?? task.updatedAt),
  };
}

/** Timers a saved transition from `before` (undefined for a new task) to `after` needs. */
export function timersBetween(before: TaskRecord | undefined, after: TaskRecord, config: OrchestratorConfig): ScheduledTimer[] {
  const out: ScheduledTimer[] = [];
  const taskId = after.taskId;
  const collecting = after.phase === 'collecting-proposals' && !isTerminal(after.state);
  if (collecting && (before === undefined || before.windowClosesAt !== after.windowClosesAt)) {
    out.push({ event: { kind: 'proposal-window', taskId }, dueAt: after.windowClosesAt });
  }
  if (!before && after.deadlineAt !== undefined) out.push({ event: { kind: 'deadline', taskId }, dueAt: after.deadlineAt });
  for (const id of after.stepOrder) {
    const s = after.steps[id];
    if (!s || s.state !== 'assigned' || s.leaseExpiresAt === undefined) continue;
    if (s.epoch > (before?.steps[id]?.epoch ?? 0)) out.push({ event: { kind: 'lease', taskId, stepId: id, epoch: s.epoch }, dueAt: s.leaseExpiresAt });
  }
  const retryAt = dispatchDueAt(after);
  if (retryAt !== undefined && retryAt !== (before !== undefined ? dispatchDueAt(before) : undefined)) {
    out.push({ event: { kind: 'dispatch', taskId }, dueAt: retryAt });
  }
  if ((before === undefined || !isTerminal(before.state)) && isTerminal(after.state)) {
    out.push({ event: { kind: 'retention', taskId }, dueAt: retentionDueAt(after, config) });
  }
  return out;
}

/** When `event` is due for `task`, or undefined when it no longer applies. */
export function timerDueAt(task: TaskRecord, event: TimerEvent, config: OrchestratorConfig): number | undefined {
  switch (event.kind) {
    case 'proposal-window': return task.phase === 'collecting-proposals' && !isTerminal(task.state) ? task.windowClosesAt : undefined;
    case 'deadline': return isTerminal(task.state) ? undefined : task.deadlineAt;
    case 'lease': {
      const s = task.steps[event.stepId];
      return s && s.epoch === event.epoch && s.state === 'assigned' && !isTerminal(task.state) ? s.leaseExpiresAt : undefined;
    }
    case 'retention': return isTerminal(task.state) && task.retainedClearedAt === undefined ? retentionDueAt(task, config) : undefined;
    case 'dispatch': return dispatchDueAt(task);
  }
}

/**
 * The earliest time something is due for `task` (an unflushed outbox is due at once), or
 * undefined when nothing ever will be. Storage adapters index this for the sweeper.
 */
export function nextDueAt(task: TaskRecord, config: OrchestratorConfig): number | undefined {
  const times: number[] = [];
  if (task.outbox.length > 0) times.push(task.updatedAt);
  for (const e of dueEvents(task)) {
    const at = timerDueAt(task, e, config);
    if (at !== undefined) times.push(at);
  }
  return times.length > 0 ? Math.min(...times) : undefined;
}

/** The timer events that apply to `task` in its current state. */
export function dueEvents(task: TaskRecord): TimerEvent[] {
  const taskId = task.taskId;
  if (isTerminal(task.state)) return task.retainedClearedAt === undefined ? [{ kind: 'retention', taskId }] : [];
  const events: TimerEvent[] = [];
  if (task.phase === 'collecting-proposals') events.push({ kind: 'proposal-window', taskId });
  for (const id of task.stepOrder) {
    const s = task.steps[id];
    if (s?.state === 'assigned') events.push({ kind: 'lease', taskId, stepId: id, epoch: s.epoch });
  }
  if (dispatchDueAt(task) !== undefined) events.push({ kind: 'dispatch', taskId });
  if (task.deadlineAt !== undefined) events.push({ kind: 'deadline', taskId });
  return events;
}

// ---------------------------------------------------------------------------------------------
// Internals: these mutate a draft copy made by a public transition.

function draft(task: TaskRecord): TaskRecord {
  return structuredClone(task);
}

/**
 * The sample a step's live epoch gives of its assignee: the orchestrator's own clock (now minus
 * the assignment's start, `leaseExpiresAt - leaseMs`) against what the assignee promised (its own
 * bid, or its résumé when it runs a step someone else bid). Undefined without an assignee.
 */
function measurementOf(s: StepRecord, ctx: DispatchContext, o: { ok: boolean; timed: boolean; usd?: number }): Measurement | undefined {
  const agentId = s.agentId;
  if (agentId === undefined) return undefined;
  let bid = { usd: s.estUsd, ms: s.estMs };
  if (agentId !== s.proposedBy) {
    const resume = ctx.candidates.get(s.skill)?.find((a) => a.agentId === agentId)?.resume;
    if (resume !== undefined) bid = { usd: resume.cost.usd, ms: resume.cost.p95_ms };
  }
  const start = s.leaseExpiresAt !== undefined ? s.leaseExpiresAt - ctx.config.leaseMs : undefined;
  const ms = o.timed && start !== undefined ? Math.max(0, ctx.now - start) : undefined;
  const sample: MeasurementSample = {
    ok: o.ok, bidMs: bid.ms, bidUsd: bid.usd, ...(ms !== undefined ? { ms } : {}), ...(o.usd !== undefined ? { usd: o.usd } : {}),
  };
  return { agentId, sample };
}

/** `decision` carrying the measurements given (the undefined ones dropped). */
function measuring(decision: Decision, ...measurements: (Measurement | undefined)[]): Decision {
  const found = measurements.filter((m): m is Measurement => m !== undefined);
  if (decision.kind !== 'changed' || found.length === 0) return decision;
  return { ...decision, measurements: [...(decision.measurements ?? []), ...found] };
}

function terminal(task: TaskRecord): Decision {
  return { kind: 'unchanged', outcome: 'ignored', detail: `task ${task.taskId} is already ${task.state}` };
}

/**
 * Raises the version, stamps the time and appends the status snapshots (last, after any result):
 * the client's full snapshot, and the agents' slim one when the state or phase moved.
 */
function commit(t: TaskRecord, before: TaskRecord, ctx: MachineContext, detail: string, opts: { snapshot: boolean } = { snapshot: true }): Decision {
  t.version = before.version + 1;
  t.updatedAt = ctx.now;
  if (opts.snapshot) {
    if (t.state !== before.state || t.phase !== before.phase) t.outbox = enqueue(t.outbox, agentStatusMessage(t));
    t.outbox = enqueue(t.outbox, statusMessage(t));
  }
  return { kind: 'changed', task: t, detail };
}

/** The client's status snapshot, on its own tree. */
function statusMessage(task: TaskRecord): OutboundMessage {
  return { topic: topics.clientStatus(task.owner, task.taskId, task.taskRoot), payload: statusSnapshot(task), qos: 1, retain: true };
}

/**
 * The agents' status (the agent tree): state and phase only, which is what an agent executing a
 * step needs to abort on cancellation. The plan, its prices and the errors stay with the client.
 */
function agentStatusMessage(task: TaskRecord): OutboundMessage {
  const status: TaskStatus = {
    v: SCHEMA_VERSION, taskId: task.taskId, state: task.state, phase: task.phase, errors: [], version: task.version, updatedAt: iso(task.updatedAt),
  };
  return { topic: topics.taskStatus(task.taskId, task.taskRoot), payload: status, qos: 1, retain: true };
}

function stepRecordOf(p: PlannedStep): StepRecord {
  return {
    id: p.id, skill: p.skill, consumes: [...p.consumes], produces: [...p.produces], estUsd: p.estUsd, estMs: p.estMs,
    ...(p.pool !== undefined ? { pool: p.pool } : {}),
    ...(p.dataClasses !== undefined ? { dataClasses: [...p.dataClasses] } : {}),
    proposedBy: p.proposedBy, proposedStepId: p.proposedStepId,
    state: 'pending', epoch: 0, attempts: 0, excluded: [],
  };
}

/** Completes the task when the wanted artifacts exist, else assigns every ready step. */
function advance(t: TaskRecord, ctx: DispatchContext): void {
  if (hasWanted(t)) {
    t.state = 'completed';
    finish(t, ctx);
    return;
  }
  for (const id of readySteps(t)) {
    if (isTerminal(t.state)) return;
    assignIn(t, t.steps[id]!, ctx);
  }
  if (isTerminal(t.state)) return;
  // A held step is live: it runs once one of the agents it waits for is available again.
  const live = t.stepOrder.some((id) => t.steps[id]?.state === 'assigned' || isHeld(t.steps[id]));
  if (!live) {
    // Nothing is running and nothing can start: the plan cannot produce what is wanted any more.
    const missing = t.request.want.filter((a) => !Object.prototype.hasOwnProperty.call(t.artifacts, a));
    finishFailed(t, 'unsatisfiable', `plan is stuck: no step can run and ${missing.join(', ')} is still missing`, ctx);
  }
}

function assignIn(t: TaskRecord, s: StepRecord, ctx: DispatchContext): void {
  if (overBudget(t, s.estUsd)) {
    const budget = t.request.constraints.maxUsd!;
    finishFailed(t, 'budget-exceeded', `budget exceeded: dispatching step ${s.id} (${s.skill}, est. ${usd(s.estUsd)}) would take the task past its budget of ${usd(budget)} (spent ${usd(spentUsd(t))}, ${usd(committedUsd(t))} committed to running steps); no further step is dispatched`, ctx, s.id);
    return;
  }
  if (s.pool !== undefined) {
    offerIn(t, s, s.pool, ctx);
    return;
  }
  let agentId: string | undefined;
  {
    const candidates = ctx.candidates.get(s.skill) ?? [];
    let audit = ctx.rank(s, candidates, { constraints: t.request.constraints, exclude: [...s.excluded], now: ctx.now });
    if (audit.chosen === undefined && s.excluded.length > 0) {
      // Last resort: an agent that lost the step by going away (a crash, a restart) may run it
      // again once nobody else can, e.g. when every capable agent has been restarted at some
      // point. One that answered with an error or let its lease lapse while online may not.
      // maxAttempts still bounds the retries.
      const failedIt = (s.superseded ?? []).filter((x) => x.cause !== 'agent-gone').flatMap((x) => (x.agentId !== undefined ? [x.agentId] : []));
      const fallback = ctx.rank(s, candidates, { constraints: t.request.constraints, exclude: failedIt, now: ctx.now });
      if (fallback.chosen !== undefined || (fallback.waitingFor ?? []).length > 0) audit = fallback;
    }
    s.audit = audit;
    if (audit.chosen === undefined) {
      holdOrFail(t, s, audit, ctx);
      return;
    }
    agentId = audit.chosen;
  }
  delete s.waitingSince;
  delete s.dispatchRetryAt;
  s.attempts += 1;
  assignTo(t, s, agentId, ctx);
}

/**
 * Starts a new fenced epoch of `s` held by `agentId` (a new lease; the token is derived from the
 * epoch as the assignment is published) and queues the assignment on the agent's own topic. Used
 * by dispatch and by a won pool claim.
 */
function assignTo(t: TaskRecord, s: StepRecord, agentId: string, ctx: DispatchContext): void {
  s.epoch += 1;
  s.state = 'assigned';
  s.leaseExpiresAt = ctx.now + ctx.config.leaseMs;
  s.agentId = agentId;
  const deadlineAt = t.deadlineAt ?? ctx.now + ctx.config.defaultDeadlineMs;
  const inputs: Artifacts = {};
  for (const name of s.consumes) inputs[name] = t.artifacts[name] ?? null;
  // Without its token: the publisher fills it in (OutboundMessage.fence), so no stored copy holds it.
  const assignment: Omit<Assignment, 'token'> = {
    v: SCHEMA_VERSION, taskId: t.taskId, stepId: s.id, epoch: s.epoch, skill: s.skill, goal: t.request.goal,
    inputs, produces: [...s.produces], deadline: iso(deadlineAt), leaseMs: ctx.config.leaseMs, taskRoot: t.taskRoot, agentId,
    ...(t.request.traceparent !== undefined ? { traceparent: t.request.traceparent } : {}),
  };
  t.outbox = enqueue(t.outbox, {
    topic: topics.taskAssign(t.taskId, agentId, t.taskRoot), payload: assignment, qos: 1, retain: false,
    messageExpirySec: Math.max(1, Math.ceil((deadlineAt - ctx.now) / 1000)),
    fence: { taskId: t.taskId, stepId: s.id, epoch: s.epoch },
  });
}

/**
 * Offers `s` to `pool`: a new epoch with no token and no assignee, standing for one lease. The
 * offer carries no inputs and no token; whoever claims it first (see {@link claimStep}) gets a
 * fenced assignment. Unclaimed at the end of the lease, it is offered again like a lapsed
 * assignment, up to `maxAttempts`.
 */
function offerIn(t: TaskRecord, s: StepRecord, pool: string, ctx: DispatchContext): void {
  delete s.waitingSince;
  delete s.dispatchRetryAt;
  delete s.agentId;
  delete s.claimedFrom;
  s.epoch += 1;
  s.attempts += 1;
  s.state = 'assigned';
  s.leaseExpiresAt = ctx.now + ctx.config.leaseMs;
  const deadlineAt = t.deadlineAt ?? ctx.now + ctx.config.defaultDeadlineMs;
  const offer: PoolOffer = {
    v: SCHEMA_VERSION, taskId: t.taskId, stepId: s.id, pool, epoch: s.epoch, skill: s.skill, goal: t.request.goal,
    consumes: [...s.consumes], produces: [...s.produces], deadline: iso(deadlineAt), claimWithinMs: ctx.config.leaseMs, taskRoot: t.taskRoot,
    ...(t.request.traceparent !== undefined ? { traceparent: t.request.traceparent } : {}),
  };
  t.outbox = enqueue(t.outbox, {
    topic: topics.taskPool(t.taskId, pool, t.taskRoot), payload: offer, qos: 1, retain: false,
    messageExpirySec: Math.max(1, Math.ceil((Math.min(deadlineAt, s.leaseExpiresAt) - ctx.now) / 1000)),
  });
}

/** True while a pool step's live epoch is an offer nobody has claimed. */
function isOpenOffer(s: StepRecord): boolean {
  return s.pool !== undefined && s.state === 'assigned' && s.agentId === undefined;
}

/**
 * Nobody can be chosen for `s`. When some capable agent is only temporarily unavailable the step
 * stays pending and waits (a broker restart marks every agent offline for about a second), up to
 * `maxWaitForAgentMs`; otherwise, or after that, the task fails naming the step and the agents.
 */
function holdOrFail(t: TaskRecord, s: StepRecord, audit: MatchAudit, ctx: DispatchContext): void {
  const waiting = audit.waitingFor ?? [];
  const since = s.waitingSince ?? ctx.now;
  const { maxWaitForAgentMs, dispatchRetryMs } = ctx.config;
  if (waiting.length > 0 && ctx.now - since < maxWaitForAgentMs) {
    s.waitingSince = since;
    // Never later than the end of the wait, so the task fails on time.
    s.dispatchRetryAt = Math.min(ctx.now + dispatchRetryMs, since + maxWaitForAgentMs);
    return;
  }
  if (waiting.length > 0 && s.waitingSince !== undefined) {
    const message = `step ${s.id} (${s.skill}) gave up waiting for an agent after ${ctx.now - since} ms (limit ${maxWaitForAgentMs} ms); it waited for ${waitedFor(s)}`;
    delete s.dispatchRetryAt;
    finishFailed(t, 'agent-wait-expired', message, ctx, s.id);
    return;
  }
  const why = audit.excluded.map((e) => `${e.agentId}: ${e.reason}`);
  const detail = why.length > 0 ? why.join('; ') : `no agent advertises skill ${s.skill}`;
  finishFailed(t, 'no-agent', `no agent can run step ${s.id} (${s.skill}): ${detail}`, ctx, s.id);
}

/** The agents a held step waits for, each with what keeps it from the step (from the last audit). */
function waitedFor(s: StepRecord): string {
  const audit = s.audit;
  const ids = audit?.waitingFor ?? [];
  if (ids.length === 0) return 'an agent';
  return ids.map((id) => {
    const reason = audit?.excluded.find((e) => e.agentId === id)?.reason;
    return reason !== undefined ? `${id} (${reason})` : id;
  }).join(', ');
}

/** True for a ready step held until one of its capable agents is available. */
function isHeld(s: StepRecord | undefined): s is StepRecord & { dispatchRetryAt: number } {
  return s !== undefined && s.state === 'pending' && s.dispatchRetryAt !== undefined;
}

/** When the next dispatch attempt of a held step is due, or undefined when no step is held. */
function dispatchDueAt(task: TaskRecord): number | undefined {
  if (isTerminal(task.state)) return undefined;
  let at: number | undefined;
  for (const id of task.stepOrder) {
    const s = task.steps[id];
    if (isHeld(s) && (at === undefined || s.dispatchRetryAt < at)) at = s.dispatchRetryAt;
  }
  return at;
}

/**
 * Ends the step's live epoch for `cause`, records the error, and re-assigns to the next best
 * agent (the previous assignee excluded), holds the step while the capable agents left are only
 * temporarily unavailable, or fails the task at the attempt limit.
 */
function failStepIn(
  t: TaskRecord, s: StepRecord, cause: SupersededEpoch['cause'], error: { code: string; message: string }, retryable: boolean, ctx: DispatchContext,
): void {
  t.errors.push({ code: error.code, message: error.message, stepId: s.id, ...(s.agentId !== undefined ? { agentId: s.agentId } : {}), at: iso(ctx.now) });
  s.superseded = [...(s.superseded ?? []), { epoch: s.epoch, ...(s.agentId !== undefined ? { agentId: s.agentId } : {}), cause }];
  if (s.agentId !== undefined && !s.excluded.includes(s.agentId)) s.excluded.push(s.agentId);
  s.state = 'pending';
  delete s.leaseExpiresAt;
  if (!retryable) {
    finishFailed(t, 'step-failed', `step ${s.id} (${s.skill}) failed with a non-retryable error: ${error.message}`, ctx, s.id);
    return;
  }
  if (s.attempts >= ctx.config.maxAttempts) {
    finishFailed(t, 'step-failed', `step ${s.id} (${s.skill}) failed after ${s.attempts} attempt(s); last error: ${error.message}`, ctx, s.id);
    return;
  }
  assignIn(t, s, ctx);
}

function finishFailed(t: TaskRecord, code: TaskErrorCode, message: string, ctx: MachineContext, stepId?: string): void {
  t.errors.push({ code, message, ...(stepId !== undefined ? { stepId } : {}), at: iso(ctx.now) });
  t.state = 'failed';
  finish(t, ctx);
}

/** Shared by every terminal transition: cancels active steps, stamps times, queues the result. */
function finish(t: TaskRecord, ctx: MachineContext): void {
  for (const id of t.stepOrder) {
    const s = t.steps[id];
    if (s && (s.state === 'pending' || s.state === 'assigned')) {
      s.state = 'canceled';
      delete s.leaseExpiresAt;
    }
  }
  t.phase = 'done';
  t.finishedAt = ctx.now;
  // The item must outlive the retention timer that clears its retained topics, hence the hour's grace.
  t.expiresAt = Math.ceil((ctx.now + ctx.config.retentionMs) / 1000) + 3600;
  t.outbox = enqueue(t.outbox, { topic: topics.clientResult(t.owner, t.taskId, t.taskRoot), payload: resultOf(t), qos: 1, retain: true });
}

function retentionDueAt(task: TaskRecord, config: OrchestratorConfig): number {
  return (task.finishedAt ?? task.updatedAt) + config.retentionMs;
}

/** Who to tell about a refused output of `epoch`: the epoch's assignee when known. */
function notifyFor(step: StepRecord, epoch: number): { notify?: string } {
  const agent = epoch === step.epoch ? step.agentId : step.superseded?.find((s) => s.epoch === epoch)?.agentId;
  return agent !== undefined ? { notify: agent } : {};
}

function addUsage(a: Usage | undefined, b: Usage | undefined): Usage | undefined {
  if (!b) return a;
  if (!a) return { ...b };
  const tokens = (a.tokens ?? 0) + (b.tokens ?? 0);
  return { usd: round(a.usd + b.usd), ms: a.ms + b.ms, ...(a.tokens !== undefined || b.tokens !== undefined ? { tokens } : {}) };
}

function round(usd: number): number {
  return Math.round(usd * 1e9) / 1e9;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
