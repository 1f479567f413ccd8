/**
 * The agent runtime: birth (retained résumé and status, last will), bidding on requests,
 * claiming pool offers, executing assignments under fencing, cancellation, deadlines and bounded concurrency,
 * progress, telemetry and a graceful drain. It talks to the broker only through {@link MqttBus}.
 * What it did with each assignment is kept in an {@link AssignmentJournal}, so a restarted agent
 * answers a redelivered assignment from it instead of repeating the step's effect.
 */
import { join } from 'node:path';
import {
  Assignment,
  Artifacts,
  MAX_PAYLOAD_BYTES,
  PoolOffer,
  Proposal,
  RejectNotice,
  SCHEMA_VERSION,
  TaskRequest,
  TaskStatus,
  decodePayload,
  parseMessage,
  type AgentState,
  type AgentStatus,
  type Claim,
  type Progress,
  type StepOutput,
  type Telemetry,
} from '../../core/schemas';
import { parseTopic, topics, type ParsedTopic } from '../../core/topics';
import type { AgentDefinition, ExecuteContext, ProposalInput } from './define-agent';
import { ConcurrencyGate } from './concurrency-gate';
import { CoalescingThrottle } from './coalescing-throttle';
import { ineligibilityReason, subscriptionPlan } from './eligibility';
import { ExecutionAbortedError, MqttOperationError, StepError } from './errors';
import type { KillPoint, RuntimeFaults } from './fault-injection';
import { FileJournal, InMemoryJournal, idempotencyKeyFor, type AssignmentJournal, type JournalKey, type JournalState } from './journal';
import { createJsonLogger, type AgentLogger, type LogLevel } from './logger';
import { LruSet } from './lru-set';
import { Mqtt5Bus, type AgentConnection, type InboundMessage, type MqttBus, type Mqtt5BusOptions } from './mqtt-bus';
import { systemScheduler, type Scheduler, type TimerHandle } from './scheduler';
import { TelemetryWindow } from './telemetry-window';

/** Tuning for {@link AgentRuntime}; every field has a default. */
export interface AgentRuntimeOptions {
  /** @default systemScheduler */
  readonly scheduler?: Scheduler;
  /** @default JSON lines on stderr at `logLevel` */
  readonly log?: AgentLogger;
  /** @default 'info' */
  readonly logLevel?: LogLevel;
  /** Assignments waiting for a free slot before new ones are refused as `busy`. @default maxConcurrent */
  readonly maxQueued?: number;
  /** Minimum gap between two progress publishes of this agent, ms (100 = at most 10/s). @default 100 */
  readonly progressIntervalMs?: number;
  /** Periodic telemetry, ms. @default 10000 */
  readonly telemetryIntervalMs?: number;
  /** Minimum gap between two telemetry publishes, ms. @default 1000 */
  readonly telemetryMinGapMs?: number;
  /** Minimum gap between two load-only status updates, ms. @default 500 */
  readonly statusMinGapMs?: number;
  /** How long a drain waits for running steps before aborting them, ms. @default 30000 */
  readonly drainTimeoutMs?: number;
  /** Remembered (task, step, epoch) keys and request ids for deduplication. @default 10000 */
  readonly dedupeCapacity?: number;
  /** Attempts for a retained output publish. @default 3 */
  readonly publishAttempts?: number;
  /** Test-only fault injection (duplicate inbound delivery, a kill after an effect). @default none */
  readonly faults?: RuntimeFaults;
  /**
   * Where the agent keeps what it did with each assignment. An in-memory journal (the default
   * here) only deduplicates within this process; {@link runAgent} opens a {@link FileJournal}, which
   * survives a restart. The runtime closes it when it stops.
   * @default a new InMemoryJournal
   */
  readonly journal?: AssignmentJournal;
}

/** Options for {@link runAgent}: runtime tuning plus MQTT connection tuning. */
export interface RunAgentOptions extends AgentRuntimeOptions {
  readonly mqtt?: Omit<Mqtt5BusOptions, 'will' | 'log'>;
  /** Opens the connection; tests or other transports may replace it. @default Mqtt5Bus.connect */
  readonly connect?: (conn: AgentConnection, clientId: string, options: Mqtt5BusOptions) => Promise<MqttBus>;
  /**
   * The journal file, used when `journal` is not given. It must belong to this agent alone and
   * outlive the process (a volume, not a container's scratch space), or a restart loses it.
   * @default `.porchlight/agents/{agentId}/journal.jsonl` under the working directory
   */
  readonly journalPath?: string;
}

/** Where {@link runAgent} keeps an agent's journal when no path is given, relative to `cwd`. */
export function defaultJournalPath(agentId: string, cwd: string = process.cwd()): string {
  return join(cwd, '.porchlight', 'agents', agentId, 'journal.jsonl');
}

/** Current load. */
export interface AgentLoad {
  readonly active: number;
  readonly queued: number;
  readonly max: number;
}

/** A started agent. */
export interface RunningAgent {
  readonly id: string;
  /** Steps running and queued now. */
  load(): AgentLoad;
  /**
   * Drains: publishes status draining, declines new requests, refuses new and queued
   * assignments (retryable), waits up to `timeoutMs` for running steps (then aborts them),
   * publishes status offline and disconnects. Idempotent.
   */
  stop(options?: { timeoutMs?: number; reason?: string }): Promise<void>;
  /** Resolves once the agent has stopped. */
  readonly stopped: Promise<void>;
}

/** One assignment on its way through the runtime. */
interface Execution {
  readonly assignment: Assignment;
  readonly taskRoot: string;
  readonly statusTopic: string;
  readonly progressTopic: string;
  readonly controller: AbortController;
  readonly log: AgentLogger;
  /** The (task, step, epoch) in the journal. */
  readonly key: JournalKey;
  /** Started before (by this process or a predecessor) and never finished. */
  readonly resumed: boolean;
  charged: number | undefined;
  finished: boolean;
}

type StepError_ = { code: string; message: string; retryable: boolean };

/** Terminal task states: nothing more will be accepted from a step of such a task. */
const TERMINAL_TASK_STATES: ReadonlySet<string> = new Set(['completed', 'failed', 'canceled', 'rejected']);

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** The runtime behind {@link runAgent}; construct it directly to run over another {@link MqttBus}. */
export class AgentRuntime implements RunningAgent {
  readonly id: string;
  readonly stopped: Promise<void>;

  private readonly scheduler: Scheduler;
  private readonly log: AgentLogger;
  private readonly gate: ConcurrencyGate<Execution>;
  private readonly seenAssignments: LruSet;
  private readonly seenRequests: LruSet;
  private readonly seenOffers: LruSet;
  private readonly progress: CoalescingThrottle<string>;
  private readonly telemetryThrottle: CoalescingThrottle<null>;
  private readonly statusThrottle: CoalescingThrottle<null>;
  private readonly telemetry = new TelemetryWindow();
  /** Exact task-status topic → executions watching it (one subscription per task). */
  private readonly watchers = new Map<string, Set<Execution>>();
  private readonly running = new Set<Execution>();
  private readonly drainTimeoutMs: number;
  private readonly telemetryIntervalMs: number;
  private readonly publishAttempts: number;
  private readonly faults: RuntimeFaults | undefined;
  private readonly killAfterEffect: { readonly point: KillPoint; readonly kill: () => void } | undefined;
  private readonly journal: AssignmentJournal;
  /** Messages received before the agent came online; undefined once it has. */
  private beforeOnline: InboundMessage[] | undefined = [];
  private state: AgentState = 'offline';
  private telemetryTimer: TimerHandle | undefined;
  private stopping: Promise<void> | undefined;
  private resolveStopped: () => void = () => undefined;

  constructor(
    private readonly def: AgentDefinition,
    private readonly bus: MqttBus,
    options: AgentRuntimeOptions = {},
  ) {
    this.id = def.id;
    this.scheduler = options.scheduler ?? systemScheduler;
    this.log = options.log ?? createJsonLogger({ agentId: def.id }, options.logLevel ?? 'info');
    this.drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
    this.telemetryIntervalMs = options.telemetryIntervalMs ?? 10_000;
    this.publishAttempts = options.publishAttempts ?? 3;
    this.faults = options.faults !== undefined && options.faults.duplicateRate > 0 ? options.faults : undefined;
    const killPoint = options.faults?.killAfterEffect;
    this.killAfterEffect = killPoint === undefined ? undefined : { point: killPoint, kill: options.faults?.kill ?? (() => process.kill(process.pid, 'SIGKILL')) };
    this.journal = options.journal ?? new InMemoryJournal();
    this.gate = new ConcurrencyGate(def.maxConcurrent, options.maxQueued ?? def.maxConcurrent, (e) => this.runExecution(e));
    this.seenAssignments = new LruSet(options.dedupeCapacity ?? 10_000);
    this.seenRequests = new LruSet(options.dedupeCapacity ?? 10_000);
    this.seenOffers = new LruSet(options.dedupeCapacity ?? 10_000);
    this.progress = new CoalescingThrottle<string>({
      intervalMs: options.progressIntervalMs ?? 100,
      scheduler: this.scheduler,
      send: (topic, payload) => this.fireAndLog(this.bus.publish(topic, payload, { qos: 0 }), 'progress publish failed', { topic }),
    });
    this.telemetryThrottle = new CoalescingThrottle<null>({
      intervalMs: options.telemetryMinGapMs ?? 1000,
      scheduler: this.scheduler,
      send: () => this.fireAndLog(this.publishTelemetry(), 'telemetry publish failed'),
    });
    this.statusThrottle = new CoalescingThrottle<null>({
      intervalMs: options.statusMinGapMs ?? 500,
      scheduler: this.scheduler,
      send: () => this.fireAndLog(this.publishStatus(), 'status publish failed'),
    });
    this.stopped = new Promise((resolve) => (this.resolveStopped = resolve));
  }

  /**
   * Subscribes (checking every SUBACK), then publishes the retained résumé and status online.
   * Subscriptions come first so the agent is listening before anyone learns it exists.
   * @throws MqttOperationError naming each required filter the broker refused
   */
  async start(): Promise<void> {
    this.bus.onMessage((m) => this.deliver(m));
    this.bus.onReconnect(() => this.fireAndLog(this.publishStatus(), 'status publish after reconnect failed'));
    const plan = subscriptionPlan(this.id, this.def.resume);
    const outcomes = await this.bus.subscribe(plan.map((p) => p.filter));
    const refusedRequired: string[] = [];
    outcomes.forEach((o, i) => {
      const planned = plan[i];
      if (o.ok || planned === undefined) return;
      if (planned.required) refusedRequired.push(`${o.filter} (${o.reason})`);
      else this.log.warn('broker refused an optional subscription; tasks under this root will not reach this agent', { filter: o.filter, reason: o.reason, taskRoot: planned.taskRoot });
    });
    if (refusedRequired.length > 0) throw new MqttOperationError(`broker refused subscriptions: ${refusedRequired.join(', ')}`);

    await this.bus.publish(topics.agentResume(this.id), JSON.stringify(this.def.resume), { qos: 1, retain: true });
    this.state = 'online';
    await this.publishStatus();
    const waiting = this.beforeOnline ?? [];
    this.beforeOnline = undefined;
    for (const message of waiting) this.deliver(message);
    this.scheduleTelemetryTick();
    this.log.info('agent online', { skills: this.def.resume.skills, subscriptions: outcomes.filter((o) => o.ok).map((o) => o.filter) });
  }

  /** {@inheritDoc RunningAgent.load} */
  load(): AgentLoad {
    return { active: this.gate.active, queued: this.gate.queued, max: this.def.maxConcurrent };
  }

  /** {@inheritDoc RunningAgent.stop} */
  stop(options: { timeoutMs?: number; reason?: string } = {}): Promise<void> {
    this.stopping ??= this.drain(options.timeoutMs ?? this.drainTimeoutMs, options.reason ?? 'stopping');
    return this.stopping;
  }

  // -------------------------------------------------------------------------------------------
  // Dispatch

  private deliver(message: InboundMessage): void {
    // Until birth is complete (state still offline) a rejoined session may already deliver
    // queued requests and assignments; they wait for the agent to be online rather than being
    // declined as if it were going away.
    if (this.beforeOnline !== undefined) {
      this.beforeOnline.push(message);
      return;
    }
    this.dispatch(message);
    const faults = this.faults;
    if (faults === undefined || (faults.random ?? Math.random)() >= faults.duplicateRate) return;
    // Redelivered a moment later, as a broker's redelivery would be, not inside the first dispatch.
    this.log.info('fault injection: duplicate delivery', { topic: message.topic });
    setImmediate(() => this.dispatch(message));
  }

  private dispatch(message: InboundMessage): void {
    let parsed: ParsedTopic;
    try {
      parsed = parseTopic(message.topic);
    } catch (err) {
      this.log.warn('ignoring message on a topic that is not Porchlight\'s', { topic: message.topic, error: errorMessage(err) });
      return;
    }
    switch (parsed.kind) {
      case 'task-request':
        this.fireAndLog(this.onRequest(parsed.taskId, parsed.taskRoot, message), 'request handling failed', { topic: message.topic });
        return;
      case 'task-assign':
        if (parsed.agentId !== this.id) {
          this.log.warn('ignoring an assignment addressed to another agent', { topic: message.topic });
          return;
        }
        this.onAssignment(parsed.taskId, parsed.taskRoot, message);
        return;
      case 'task-pool':
        this.fireAndLog(this.onPoolOffer(parsed.taskId, parsed.taskRoot, parsed.pool, message), 'pool offer handling failed', { topic: message.topic });
        return;
      case 'task-status':
        this.onTaskStatus(message);
        return;
      case 'agent-errors':
        this.onRejectNotice(message);
        return;
      default:
        this.log.debug('ignoring message this agent did not subscribe for', { topic: message.topic, kind: parsed.kind });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Requests → proposals

  private async onRequest(taskId: string, taskRoot: string, message: InboundMessage): Promise<void> {
    let request: TaskRequest;
    try {
      request = decodePayload(TaskRequest, message.payload, `request for task ${taskId}`);
    } catch (err) {
      this.log.warn('invalid task request ignored', { taskId, error: errorMessage(err) });
      return;
    }
    // Remembered only once valid: the orchestrator refuses a malformed request without storing it, so a
    // valid request may follow under the same task id and must still get an answer.
    if (!this.seenRequests.add(`${taskRoot}/${taskId}`)) {
      this.log.debug('duplicate request ignored', { taskId });
      return;
    }
    let proposal: ProposalInput;
    if (this.state !== 'online') {
      proposal = { decline: true, reason: `agent ${this.id} is ${this.state}` };
    } else {
      const ineligible = ineligibilityReason(this.def.resume, request);
      if (ineligible !== undefined) {
        proposal = { decline: true, reason: ineligible };
      } else {
        try {
          proposal = await this.def.propose(request, { agentId: this.id, taskId, taskRoot, resume: this.def.resume, log: this.log.child({ taskId }) });
        } catch (err) {
          this.log.error('propose() threw; declining', { taskId, error: err });
          proposal = { decline: true, reason: truncate(`propose failed: ${errorMessage(err)}`, 2000) };
        }
      }
    }
    let valid: Proposal;
    try {
      valid = parseMessage(Proposal, proposal, `proposal of ${this.id} for task ${taskId}`);
    } catch (err) {
      this.log.error('propose() returned an invalid proposal; declining', { taskId, error: errorMessage(err) });
      valid = { v: SCHEMA_VERSION, decline: true, reason: truncate(`agent produced an invalid proposal: ${errorMessage(err)}`, 2000) };
    }
    await this.bus.publish(topics.taskProposal(taskId, this.id, taskRoot), JSON.stringify(valid), { qos: 1 });
    this.log.info('answered request', { taskId, decline: 'decline' in valid, steps: 'steps' in valid ? valid.steps.length : 0 });
  }

  // -------------------------------------------------------------------------------------------
  // Pool offers → claims

  /**
   * A pool offer carries no token and no inputs: the agent claims it when it could run it now
   * (online, has the skill, a free slot, before the deadline). If its claim wins, the step arrives
   * as an ordinary assignment on `assign/{self}`; a lost claim is told on `agents/{self}/errors`.
   */
  private async onPoolOffer(topicTaskId: string, taskRoot: string, pool: string, message: InboundMessage): Promise<void> {
    let offer: PoolOffer;
    try {
      offer = decodePayload(PoolOffer, message.payload, `pool offer on ${message.topic}`);
    } catch (err) {
      this.log.warn('invalid pool offer ignored', { topic: message.topic, error: errorMessage(err) });
      return;
    }
    if (offer.taskId !== topicTaskId || offer.pool !== pool) {
      this.log.warn('pool offer ignored: its task or pool does not match its topic', { topic: message.topic, taskId: offer.taskId, pool: offer.pool });
      return;
    }
    const { taskId, stepId, epoch } = offer;
    if (!this.seenOffers.add(`${taskRoot}/${taskId}/${stepId}/${epoch}`)) {
      this.log.debug('duplicate pool offer ignored', { taskId, stepId, epoch });
      return;
    }
    const pass = (reason: string): void => this.log.info('pool offer not claimed', { taskId, stepId, epoch, pool, reason });
    if (this.state !== 'online') return pass(`agent is ${this.state}`);
    if (!this.def.resume.skills.includes(offer.skill)) return pass(`no skill ${offer.skill}`);
    if (Date.parse(offer.deadline) <= this.scheduler.now()) return pass(`deadline ${offer.deadline} has passed`);
    if (this.gate.active + this.gate.queued >= this.def.maxConcurrent) return pass('no free slot');
    const claim: Claim = { v: SCHEMA_VERSION, taskId, stepId, epoch };
    await this.bus.publish(topics.taskClaim(taskId, stepId, this.id, taskRoot), JSON.stringify(claim), { qos: 1 });
    this.log.info('pool offer claimed', { taskId, stepId, epoch, pool });
  }

  // -------------------------------------------------------------------------------------------
  // Assignments → outputs

  private onAssignment(topicTaskId: string, taskRoot: string, message: InboundMessage): void {
    let assignment: Assignment;
    try {
      assignment = decodePayload(Assignment, message.payload, `assignment on ${message.topic}`);
    } catch (err) {
      this.log.warn('invalid assignment ignored', { topic: message.topic, error: errorMessage(err) });
      return;
    }
    if (assignment.taskId !== topicTaskId) {
      this.log.warn('assignment ignored: its taskId does not match its topic', { topic: message.topic, taskId: assignment.taskId });
      return;
    }
    const { taskId, stepId, epoch } = assignment;
    // Within this process the in-memory set is enough (the first delivery is running or has
    // published its output); the journal answers for what earlier processes did.
    if (!this.seenAssignments.add(`${taskRoot}/${taskId}/${stepId}/${epoch}`)) {
      this.log.info('duplicate assignment ignored', { taskId, stepId, epoch });
      return;
    }
    const key: JournalKey = { taskRoot, taskId, stepId, epoch };
    const log = this.log.child({ taskId, stepId, epoch });
    const journaled = this.journal.lookup(key);
    if (journaled?.state === 'finished' && journaled.output !== undefined) {
      // Executing again would repeat the effect; the output it produced is exactly what the
      // orchestrator is still waiting for (same token, same epoch).
      log.info('assignment already finished; republishing its journaled output', { finishedAt: journaled.at });
      this.fireAndLog(this.sendOutput(journaled.output.topic, journaled.output.payload, log), 'could not republish a journaled output', { taskId, stepId });
      return;
    }
    if (journaled?.state === 'abandoned') {
      log.info('assignment ignored: it was aborted before (task ended or step re-assigned)', { abandonedAt: journaled.at });
      return;
    }
    const execution: Execution = {
      assignment,
      taskRoot,
      statusTopic: topics.taskStatus(taskId, taskRoot),
      progressTopic: topics.taskProgress(taskId, stepId, this.id, taskRoot),
      controller: new AbortController(),
      log,
      key,
      resumed: journaled?.state === 'started',
      charged: undefined,
      finished: false,
    };
    const refuse = (error: StepError_): void => this.fireAndLog(this.publishOutput(execution, { ok: false, error }, 0), 'could not publish refusal', { taskId, stepId });

    if (this.state !== 'online') {
      refuse({ code: 'agent-draining', message: `agent ${this.id} is ${this.state} and takes no new work`, retryable: true });
      return;
    }
    if (!this.def.resume.skills.includes(assignment.skill)) {
      refuse({ code: 'unknown-skill', message: `agent ${this.id} has no skill ${assignment.skill} (it has ${this.def.resume.skills.join(', ')})`, retryable: true });
      return;
    }
    if (Date.parse(assignment.deadline) <= this.scheduler.now()) {
      refuse({ code: 'deadline-exceeded', message: `assignment arrived after its deadline ${assignment.deadline}`, retryable: false });
      return;
    }
    const decision = this.gate.offer(execution);
    if (decision === 'rejected') {
      const load = this.load();
      refuse({ code: 'busy', message: `agent ${this.id} is at capacity (${load.active} running, ${load.queued} queued)`, retryable: true });
      return;
    }
    execution.log.info(decision === 'started' ? 'assignment started' : 'assignment queued', { skill: assignment.skill, resumed: execution.resumed });
    if (!execution.resumed) this.fireAndLog(this.journalEntry(execution, 'received'), 'could not journal a received assignment', { taskId, stepId });
  }

  /** Records `state` for the execution's (task, step, epoch); durable for started and finished. */
  private journalEntry(execution: Execution, state: JournalState, output?: { topic: string; payload: string }): Promise<void> {
    return this.journal.record({
      ...execution.key,
      state,
      deadline: execution.assignment.deadline,
      at: new Date(this.scheduler.now()).toISOString(),
      ...(output === undefined ? {} : { output }),
    });
  }

  /** Test-only: dies here when the kill fault is set for `point`; never returns then. */
  private async maybeKill(execution: Execution, point: KillPoint): Promise<void> {
    const fault = this.killAfterEffect;
    if (fault === undefined || fault.point !== point) return;
    execution.log.warn('fault injection: killing the process after the effect', { point });
    fault.kill();
    // SIGKILL may take a moment to land; nothing of this execution may happen meanwhile.
    await new Promise<never>(() => undefined);
  }

  private async runExecution(execution: Execution): Promise<void> {
    const { assignment: a } = execution;
    this.running.add(execution);
    this.statusThrottle.offer('status', null);
    const startedAt = this.scheduler.now();
    const signal = execution.controller.signal;
    const deadlineTimer = this.scheduler.setTimeout(
      () => execution.controller.abort(new ExecutionAbortedError('deadline', `step deadline ${a.deadline} passed`)),
      Math.max(0, Date.parse(a.deadline) - startedAt),
    );
    let result: { ok: true; output: Artifacts } | { ok: false; error: StepError_ } | { aborted: ExecutionAbortedError };
    try {
      await this.watch(execution);
      if (signal.aborted) throw signal.reason;
      try {
        // Durable before execute(): a process that dies during the effect leaves `started`
        // behind, and its successor resumes with the same idempotency key instead of starting afresh.
        await this.journalEntry(execution, 'started');
      } catch (err) {
        throw new StepError('journal-unavailable', `agent ${this.id} could not journal the step's start, so it did not run it: ${errorMessage(err)}`, { retryable: true });
      }
      // The task may have ended or the step moved on while the start was being written.
      if (signal.aborted) throw signal.reason;
      if (execution.resumed) execution.log.warn('resuming a step a previous attempt started and did not finish; its effect may have happened');
      const ctx: ExecuteContext = {
        agentId: this.id,
        taskRoot: execution.taskRoot,
        signal,
        log: execution.log,
        idempotencyKey: idempotencyKeyFor(execution.key),
        resumed: execution.resumed,
        progress: (fraction, message) => this.reportProgress(execution, fraction, message),
        charge: (usd) => {
          if (Number.isFinite(usd) && usd >= 0) execution.charged = (execution.charged ?? 0) + usd;
          else execution.log.warn('ignoring an invalid charge', { usd });
        },
      };
      const aborted = new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }));
      // execute() should honour the signal, but an agent that ignores it must not hold a slot forever.
      const output = await Promise.race([this.def.execute(a, ctx), aborted]);
      await this.maybeKill(execution, 'before-journal');
      result = this.checkOutput(a, output);
    } catch (err) {
      if (signal.aborted && signal.reason instanceof ExecutionAbortedError) result = { aborted: signal.reason };
      else if (err instanceof StepError) result = { ok: false, error: { code: err.code, message: truncate(err.message, 2000), retryable: err.retryable } };
      else result = { ok: false, error: { code: 'execution-failed', message: truncate(errorMessage(err), 2000), retryable: true } };
    } finally {
      execution.finished = true;
      this.scheduler.clearTimeout(deadlineTimer);
      this.progress.drop(execution.progressTopic);
      await this.unwatch(execution);
    }

    const ms = this.scheduler.now() - startedAt;
    const usd = execution.charged ?? this.def.resume.cost.usd;
    if ('aborted' in result) {
      const { kind, message } = result.aborted;
      execution.log.info('execution aborted', { kind, reason: message, ms });
      if (kind === 'deadline') {
        this.telemetry.record({ ok: false, usd, ms, at: this.scheduler.now() });
        await this.finishAndPublish(execution, { ok: false, error: { code: 'deadline-exceeded', message, retryable: false } }, ms, usd);
      } else if (kind === 'shutdown') {
        await this.finishAndPublish(execution, { ok: false, error: { code: 'agent-shutdown', message, retryable: true } }, ms, usd);
      } else {
        // Nobody will accept an output for this epoch: a redelivery must not run it again.
        await this.journalEntry(execution, 'abandoned').catch((err: unknown) => execution.log.warn('could not journal an abandoned step', { error: errorMessage(err) }));
      }
    } else {
      this.telemetry.record({ ok: result.ok, usd, ms, at: this.scheduler.now() });
      await this.finishAndPublish(execution, result, ms, usd);
      execution.log.info(result.ok ? 'step completed' : 'step failed', { ms, usd, ...(result.ok ? {} : { error: result.error }) });
    }
    this.running.delete(execution);
    this.statusThrottle.offer('status', null);
    this.telemetryThrottle.offer('telemetry', null);
  }

  /** Turns what execute() returned into an output, or a specific error when it is unusable. */
  private checkOutput(a: Assignment, output: unknown): { ok: true; output: Artifacts } | { ok: false; error: StepError_ } {
    let artifacts: Artifacts;
    try {
      artifacts = parseMessage(Artifacts, output, `output of step ${a.stepId}`);
    } catch (err) {
      return { ok: false, error: { code: 'invalid-output', message: truncate(errorMessage(err), 2000), retryable: false } };
    }
    const missing = a.produces.filter((p) => !Object.prototype.hasOwnProperty.call(artifacts, p));
    if (missing.length > 0) {
      return { ok: false, error: { code: 'missing-artifacts', message: `step ${a.stepId} must produce ${missing.join(', ')}`, retryable: false } };
    }
    return { ok: true, output: artifacts };
  }

  /** The output's topic and exact payload, as it is journaled and published. */
  private buildOutput(
    execution: Execution,
    result: { ok: true; output: Artifacts } | { ok: false; error: StepError_ },
    ms: number,
    usd: number,
  ): { topic: string; payload: string } {
    const a = execution.assignment;
    const fence = { v: SCHEMA_VERSION, taskId: a.taskId, stepId: a.stepId, epoch: a.epoch, token: a.token, usage: { usd, ms } };
    let payload = JSON.stringify({ ...fence, ...result } satisfies StepOutput);
    const bytes = Buffer.byteLength(payload, 'utf8');
    if (bytes > MAX_PAYLOAD_BYTES) {
      const error = { code: 'payload-too-large', message: `output is ${bytes} bytes; the limit is ${MAX_PAYLOAD_BYTES} bytes`, retryable: false };
      execution.log.error('output too large to publish', { bytes });
      payload = JSON.stringify({ ...fence, ok: false, error } satisfies StepOutput);
    }
    // Handed to the orchestrator alone, never retained: what clients read is the orchestrator's copy.
    return { topic: topics.taskOutput(a.taskId, a.stepId, this.id, execution.taskRoot), payload };
  }

  /** Publishes an output without journaling it: refusals of steps that never ran. */
  private async publishOutput(
    execution: Execution,
    result: { ok: true; output: Artifacts } | { ok: false; error: StepError_ },
    ms: number,
    usd = 0,
  ): Promise<void> {
    const { topic, payload } = this.buildOutput(execution, result, ms, usd);
    await this.sendOutput(topic, payload, execution.log);
  }

  /**
   * Journals the output of a step that ran as finished (durably), then publishes it. Once it is
   * journaled, a redelivery of the assignment, even to a restarted process, republishes this
   * same payload rather than running the step again.
   */
  private async finishAndPublish(
    execution: Execution,
    result: { ok: true; output: Artifacts } | { ok: false; error: StepError_ },
    ms: number,
    usd: number,
  ): Promise<void> {
    const output = this.buildOutput(execution, result, ms, usd);
    try {
      await this.journalEntry(execution, 'finished', output);
    } catch (err) {
      // Publishing still helps the orchestrator now; only a later redelivery would run the step
      // again, as a resumed attempt (the journal says started) with the same idempotency key.
      execution.log.error('could not journal the finished step; publishing its output anyway', { error: errorMessage(err) });
    }
    await this.maybeKill(execution, 'before-publish');
    await this.sendOutput(output.topic, output.payload, execution.log);
  }

  /** Publishes an output (QoS 1, not retained), retrying with backoff. */
  private async sendOutput(topic: string, payload: string, log: AgentLogger): Promise<void> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.bus.publish(topic, payload, { qos: 1, retain: false });
        return;
      } catch (err) {
        if (attempt >= this.publishAttempts) {
          log.error('output publish failed; the lease will expire and the step be re-assigned', { topic, attempts: attempt, error: errorMessage(err) });
          return;
        }
        log.warn('output publish failed; retrying', { topic, attempt, error: errorMessage(err) });
        await new Promise<void>((resolve) => this.scheduler.setTimeout(resolve, 250 * 2 ** (attempt - 1)));
      }
    }
  }

  private reportProgress(execution: Execution, fraction: number, message?: string): void {
    if (execution.finished) return;
    if (!Number.isFinite(fraction)) {
      execution.log.warn('ignoring progress that is not a finite number', { fraction });
      return;
    }
    const a = execution.assignment;
    const progress: Progress = {
      v: SCHEMA_VERSION,
      taskId: a.taskId,
      stepId: a.stepId,
      epoch: a.epoch,
      fraction: Math.min(1, Math.max(0, fraction)),
      ...(message === undefined ? {} : { message: truncate(message, 2000) }),
      at: new Date(this.scheduler.now()).toISOString(),
    };
    this.progress.offer(execution.progressTopic, JSON.stringify(progress));
  }

  // -------------------------------------------------------------------------------------------
  // Cancellation through the task's retained status

  private async watch(execution: Execution): Promise<void> {
    const existing = this.watchers.get(execution.statusTopic);
    if (existing !== undefined) {
      existing.add(execution);
      return;
    }
    this.watchers.set(execution.statusTopic, new Set([execution]));
    try {
      const [outcome] = await this.bus.subscribe([execution.statusTopic]);
      if (outcome !== undefined && !outcome.ok) {
        execution.log.warn('cannot watch the task status; cancellation will only arrive through the deadline', { topic: execution.statusTopic, reason: outcome.reason });
      }
    } catch (err) {
      execution.log.warn('cannot watch the task status; cancellation will only arrive through the deadline', { topic: execution.statusTopic, error: errorMessage(err) });
    }
  }

  private async unwatch(execution: Execution): Promise<void> {
    const set = this.watchers.get(execution.statusTopic);
    if (set === undefined) return;
    set.delete(execution);
    if (set.size > 0) return;
    this.watchers.delete(execution.statusTopic);
    try {
      await this.bus.unsubscribe([execution.statusTopic]);
    } catch (err) {
      execution.log.debug('unsubscribe from task status failed', { error: errorMessage(err) });
    }
  }

  private onTaskStatus(message: InboundMessage): void {
    const set = this.watchers.get(message.topic);
    if (set === undefined || set.size === 0) return;
    let status: TaskStatus;
    try {
      status = decodePayload(TaskStatus, message.payload, `status on ${message.topic}`);
    } catch (err) {
      this.log.warn('invalid task status ignored', { topic: message.topic, error: errorMessage(err) });
      return;
    }
    for (const execution of set) {
      const a = execution.assignment;
      if (TERMINAL_TASK_STATES.has(status.state)) {
        execution.controller.abort(new ExecutionAbortedError('task-ended', `task ${a.taskId} is ${status.state}`));
        continue;
      }
      const step = status.plan?.steps.find((s) => s.id === a.stepId);
      if (step === undefined) continue;
      if (step.epoch > a.epoch) {
        execution.controller.abort(new ExecutionAbortedError('superseded', `step ${a.stepId} was re-assigned (epoch ${step.epoch} > ${a.epoch})`));
      } else if (step.epoch === a.epoch && (step.state === 'canceled' || step.state === 'failed')) {
        execution.controller.abort(new ExecutionAbortedError('superseded', `step ${a.stepId} is ${step.state}`));
      }
    }
  }

  private onRejectNotice(message: InboundMessage): void {
    try {
      const notice = decodePayload(RejectNotice, message.payload, 'reject notice');
      this.log.warn('orchestrator rejected a message from this agent', { code: notice.code, reason: notice.message, topic: notice.topic, taskId: notice.taskId, stepId: notice.stepId });
    } catch (err) {
      this.log.warn('invalid reject notice ignored', { topic: message.topic, error: errorMessage(err) });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Status and telemetry

  private async publishStatus(): Promise<void> {
    const status: AgentStatus = {
      v: SCHEMA_VERSION,
      state: this.state,
      load: { active: this.gate.active, max: this.def.maxConcurrent },
      at: new Date(this.scheduler.now()).toISOString(),
    };
    await this.bus.publish(topics.agentStatus(this.id), JSON.stringify(status), { qos: 1, retain: true });
  }

  private async publishTelemetry(): Promise<void> {
    const now = this.scheduler.now();
    const snapshot = this.telemetry.snapshot(now);
    if (snapshot === undefined) return;
    const telemetry: Telemetry = { v: SCHEMA_VERSION, ...snapshot, at: new Date(now).toISOString() };
    await this.bus.publish(topics.agentTelemetry(this.id), JSON.stringify(telemetry), { qos: 1 });
  }

  private scheduleTelemetryTick(): void {
    this.telemetryTimer = this.scheduler.setTimeout(() => {
      this.telemetryThrottle.offer('telemetry', null);
      if (this.state === 'online') this.scheduleTelemetryTick();
    }, this.telemetryIntervalMs);
  }

  // -------------------------------------------------------------------------------------------
  // Drain

  private async drain(timeoutMs: number, reason: string): Promise<void> {
    this.log.info('draining', { reason, ...this.load() });
    this.state = 'draining';
    if (this.telemetryTimer !== undefined) this.scheduler.clearTimeout(this.telemetryTimer);
    await this.publishStatus().catch((err: unknown) => this.log.warn('could not publish status draining', { error: errorMessage(err) }));

    const queued = this.gate.clearQueue();
    await Promise.all(
      queued.map((e) => this.publishOutput(e, { ok: false, error: { code: 'agent-draining', message: `agent ${this.id} is draining: ${reason}`, retryable: true } }, 0)),
    );

    const idle = this.gate.idle().then(() => 'idle' as const);
    const first = await Promise.race([idle, this.sleep(timeoutMs).then(() => 'timeout' as const)]);
    if (first === 'timeout') {
      this.log.warn('drain timed out; aborting running steps', { running: this.running.size });
      for (const e of this.running) e.controller.abort(new ExecutionAbortedError('shutdown', `agent ${this.id} shut down: ${reason}`));
      // Aborted steps publish their retryable error output; give them a bounded moment to do so.
      await Promise.race([idle, this.sleep(5_000)]);
    }

    this.progress.dispose();
    this.telemetryThrottle.dispose();
    this.statusThrottle.dispose();
    await this.publishTelemetry().catch((err: unknown) => this.log.warn('could not publish final telemetry', { error: errorMessage(err) }));
    this.state = 'offline';
    await this.publishStatus().catch((err: unknown) => this.log.warn('could not publish status offline', { error: errorMessage(err) }));
    await this.bus.stop();
    await this.journal.close().catch((err: unknown) => this.log.warn('could not close the journal', { error: errorMessage(err) }));
    this.log.info('agent stopped');
    this.resolveStopped();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.scheduler.setTimeout(resolve, ms));
  }

  private fireAndLog(promise: Promise<unknown>, what: string, fields: Record<string, unknown> = {}): void {
    promise.catch((err: unknown) => this.log.warn(what, { ...fields, error: errorMessage(err) }));
  }
}

/**
 * Connects `def` to the broker with mutual TLS and starts it. The last will (retained status
 * offline) is registered in the CONNECT packet, so a crash or a cut connection marks the agent
 * offline without its help.
 * The assignment journal is opened first (`journal`, or a {@link FileJournal} at `journalPath`).
 * @throws ConnectTimeoutError, MqttOperationError (a refused subscription or birth publish), or the file system's error when the journal cannot be opened
 */
export async function runAgent(def: AgentDefinition, conn: AgentConnection, options: RunAgentOptions = {}): Promise<RunningAgent> {
  const log = options.log ?? createJsonLogger({ agentId: def.id }, options.logLevel ?? 'info');
  const will: AgentStatus = { v: SCHEMA_VERSION, state: 'offline', reason: 'connection lost (last will)', load: { active: 0, max: def.maxConcurrent } };
  const connect = options.connect ?? ((c, id, o) => Mqtt5Bus.connect(c, id, o));
  // Opened before connecting: a rejoined session may deliver a redelivered assignment at once,
  // and the journal must already say what became of it.
  const journalPath = options.journalPath ?? defaultJournalPath(def.id);
  const journal = options.journal ?? (await FileJournal.open(journalPath, { log }));
  if (options.journal === undefined) log.info('assignment journal open', { path: journalPath, entries: (journal as FileJournal).size });
  let bus: MqttBus;
  try {
    bus = await connect(conn, conn.clientId ?? def.id, {
      ...options.mqtt,
      will: { topic: topics.agentStatus(def.id), payload: JSON.stringify(will), retain: true },
      log,
    });
  } catch (err) {
    await journal.close();
    throw err;
  }
  const runtime = new AgentRuntime(def, bus, { ...options, log, journal });
  try {
    await runtime.start();
  } catch (err) {
    await bus.stop();
    await journal.close();
    throw err;
  }
  return runtime;
}
