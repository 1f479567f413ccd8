/**
 * In-memory implementations of the core ports, for unit tests of core/. They honour the port
 * contracts the DynamoDB / IoT / SQS adapters honour: conditional saves throw
 * VersionConflictError, creating an existing task throws DuplicateTaskError, records are copied
 * on the way in and out (no shared references), and failures can be injected.
 */
import { createHash } from 'node:crypto';
import { DuplicateTaskError, VersionConflictError } from '../../core/errors';
import { DEFAULT_ORCHESTRATOR_CONFIG, Orchestrator, type OrchestratorConfig } from '../../core/orchestrator';
import { RegistryService } from '../../core/registry-service';
import { isTerminal, type AgentRecord, type OutboundMessage, type ProposalRecord, type TaskRecord, type TimerEvent } from '../../core/model';
import type { AccreditationVerifier, Clock, Publisher, Registry, ResumeVerification, TaskStore, Timer } from '../../core/ports';
import { deriveFencingToken, HmacFencer } from '../../functions/adapters/fencer';
import { orderPresence, type PresenceMark, type PresenceOrder } from '../../core/presence';
import { addSample, NO_MEASUREMENTS, type AgentMeasurements, type MeasurementSample } from '../../core/reputation';
import type { InboundMessage } from '../../core/rule-event';
import type { AgentStatus, JsonValue, Resume, Telemetry } from '../../core/schemas';

/** A clock the test moves by hand. Starts at 2030-01-01T00:00:00Z. */
export class ManualClock implements Clock {
  constructor(private time = Date.parse('2030-01-01T00:00:00.000Z')) {}
  now(): number {
    return this.time;
  }
  advance(ms: number): number {
    this.time += ms;
    return this.time;
  }
  set(ms: number): void {
    this.time = ms;
  }
}

/** The key the tests' fencer derives tokens from (the adapter is the real one). */
export const TEST_FENCING_KEY = 'test-fencing-key-0123456789abcdef-0123456789abcdef';

/** The fencer every core test wires: HMAC-SHA-256 under {@link TEST_FENCING_KEY}. */
export const testFencer = new HmacFencer(() => Promise.resolve(TEST_FENCING_KEY));

/** The token {@link testFencer} (and a function wired with the test key file) derives for (task, step, epoch). */
export function testToken(taskId: string, stepId: string, epoch: number): string {
  return deriveFencingToken(TEST_FENCING_KEY, taskId, stepId, epoch);
}

/** Records every published message and keeps what the broker would retain. */
export class RecordingPublisher implements Publisher {
  readonly messages: OutboundMessage[] = [];
  /** What a broker would hold retained per topic (a null payload clears it). */
  readonly retained = new Map<string, JsonValue>();
  private failuresLeft = 0;
  private failWhen?: (m: OutboundMessage) => boolean;

  async publish(message: OutboundMessage): Promise<void> {
    if (this.failuresLeft > 0 && (this.failWhen?.(message) ?? true)) {
      this.failuresLeft -= 1;
      throw new Error(`broker unavailable (injected) publishing ${message.topic}`);
    }
    const copy = structuredClone(message);
    this.messages.push(copy);
    if (copy.retain) {
      if (copy.payload === null) this.retained.delete(copy.topic);
      else this.retained.set(copy.topic, copy.payload);
    }
  }

  /** The next `count` publishes (matching `when`, if given) fail. */
  failNext(count = 1, when?: (m: OutboundMessage) => boolean): void {
    this.failuresLeft = count;
    this.failWhen = when;
  }

  /** Messages whose topic equals `topic` or, with a trailing `/#`, starts with its prefix. */
  on(topic: string): OutboundMessage[] {
    if (topic.endsWith('/#')) {
      const prefix = topic.slice(0, -1);
      return this.messages.filter((m) => m.topic.startsWith(prefix));
    }
    return this.messages.filter((m) => m.topic === topic);
  }

  /** The last payload published on `topic`. */
  last<T = JsonValue>(topic: string): T | undefined {
    const all = this.on(topic);
    return all[all.length - 1]?.payload as T | undefined;
  }

  clear(): void {
    this.messages.length = 0;
  }
}

/** Holds scheduled timers for the test to fire. */
export class ManualTimer implements Timer {
  readonly scheduled: { event: TimerEvent; dueAt: number }[] = [];
  private failuresLeft = 0;

  async schedule(event: TimerEvent, dueAt: number): Promise<void> {
    if (this.failuresLeft > 0) {
      this.failuresLeft -= 1;
      throw new Error('queue unavailable (injected)');
    }
    this.scheduled.push({ event: structuredClone(event), dueAt });
  }

  failNext(count = 1): void {
    this.failuresLeft = count;
  }

  /** Scheduled timers of `kind`, optionally for one task. */
  of(kind: TimerEvent['kind'], taskId?: string): { event: TimerEvent; dueAt: number }[] {
    return this.scheduled.filter((t) => t.event.kind === kind && (taskId === undefined || t.event.taskId === taskId));
  }

  /** Removes and returns the timers due at or before `now`, earliest first. */
  takeDue(now: number): TimerEvent[] {
    const due = this.scheduled.filter((t) => t.dueAt <= now).sort((a, b) => a.dueAt - b.dueAt);
    for (const t of due) this.scheduled.splice(this.scheduled.indexOf(t), 1);
    return due.map((t) => t.event);
  }
}

/** Task state with conditional writes, like the DynamoDB adapter. */
export class InMemoryTaskStore implements TaskStore {
  private readonly tasks = new Map<string, TaskRecord>();
  private readonly proposals = new Map<string, ProposalRecord>();
  private conflictsLeft = 0;
  /** Successful `save` calls. */
  saves = 0;

  async create(task: TaskRecord): Promise<void> {
    if (this.tasks.has(task.taskId)) throw new DuplicateTaskError(task.taskId);
    this.tasks.set(task.taskId, structuredClone(task));
  }

  async get(taskId: string): Promise<TaskRecord | undefined> {
    const task = this.tasks.get(taskId);
    return task ? structuredClone(task) : undefined;
  }

  async save(task: TaskRecord, expectedVersion: number): Promise<void> {
    const stored = this.tasks.get(task.taskId);
    if (!stored) throw new VersionConflictError(`task ${task.taskId} does not exist`);
    if (this.conflictsLeft > 0) {
      this.conflictsLeft -= 1;
      // Another writer got there first: the stored item moves on by one version.
      stored.version += 1;
    }
    if (stored.version !== expectedVersion) {
      throw new VersionConflictError(`task ${task.taskId} is at version ${stored.version}, not ${expectedVersion}`);
    }
    if (task.version !== expectedVersion + 1) {
      throw new Error(`contract violation: saving version ${task.version} over ${expectedVersion}; the caller must raise it by one`);
    }
    this.tasks.set(task.taskId, structuredClone(task));
    this.saves += 1;
  }

  async putProposal(proposal: ProposalRecord): Promise<boolean> {
    const key = `${proposal.taskId}/${proposal.agentId}`;
    const existing = this.proposals.get(key);
    if (existing && JSON.stringify(existing.proposal) === JSON.stringify(proposal.proposal)) return false;
    this.proposals.set(key, structuredClone(proposal));
    return true;
  }

  async listProposals(taskId: string): Promise<ProposalRecord[]> {
    return [...this.proposals.values()].filter((p) => p.taskId === taskId).map((p) => structuredClone(p));
  }

  async tasksAssignedTo(agentId: string): Promise<string[]> {
    return [...this.tasks.values()]
      .filter((t) => !isTerminal(t.state) && Object.values(t.steps).some((s) => s.state === 'assigned' && s.agentId === agentId))
      .map((t) => t.taskId);
  }

  async listDue(now: number, limit: number): Promise<TaskRecord[]> {
    const due = [...this.tasks.values()].filter((t) => {
      if (t.outbox.length > 0) return true;
      if (isTerminal(t.state)) return false;
      if (t.phase === 'collecting-proposals' && t.windowClosesAt <= now) return true;
      if (t.deadlineAt !== undefined && t.deadlineAt <= now) return true;
      return Object.values(t.steps).some(
        (s) =>
          (s.state === 'assigned' && s.leaseExpiresAt !== undefined && s.leaseExpiresAt <= now) ||
          (s.state === 'pending' && s.dispatchRetryAt !== undefined && s.dispatchRetryAt <= now),
      );
    });
    return due.slice(0, limit).map((t) => structuredClone(t));
  }

  /** The next `count` saves lose a race against another writer. */
  conflictOnNextSave(count = 1): void {
    this.conflictsLeft = count;
  }

  /** Number of stored tasks. */
  get size(): number {
    return this.tasks.size;
  }
}

/** The agent registry. A new résumé registers the agent as online (its birth message). */
export class InMemoryRegistry implements Registry {
  private readonly agents = new Map<string, AgentRecord>();
  private readonly measured = new Map<string, AgentMeasurements>();

  async putResume(agentId: string, resume: Resume, verified: ResumeVerification, at: number): Promise<AgentRecord> {
    const existing = this.agents.get(agentId);
    const claims = { verifiedAccredit: [...verified.verified], unverifiedAccredit: [...verified.unverified], verifiedPools: [...(verified.pools ?? [])] };
    const record: AgentRecord = existing
      ? { ...existing, resume: structuredClone(resume), ...claims, updatedAt: at, version: existing.version + 1 }
      : { agentId, resume: structuredClone(resume), state: 'online', ...claims, updatedAt: at, version: 1 };
    this.agents.set(agentId, record);
    return structuredClone(record);
  }

  async setStatus(agentId: string, status: AgentStatus, at: number): Promise<AgentRecord | undefined> {
    const existing = this.agents.get(agentId);
    if (!existing) return undefined;
    const record: AgentRecord = { ...existing, state: status.state, updatedAt: at, version: existing.version + 1 };
    if (status.load) record.load = { ...status.load };
    else delete record.load;
    this.agents.set(agentId, record);
    return structuredClone(record);
  }

  async recordTelemetry(agentId: string, telemetry: Telemetry, at: number): Promise<AgentRecord | undefined> {
    const existing = this.agents.get(agentId);
    if (!existing) return undefined;
    const record: AgentRecord = { ...existing, telemetry: structuredClone(telemetry), updatedAt: at, version: existing.version + 1 };
    this.agents.set(agentId, record);
    return structuredClone(record);
  }

  async recordPresence(agentId: string, mark: PresenceMark, status: AgentStatus | undefined, at: number): Promise<{ order: PresenceOrder; record: AgentRecord } | undefined> {
    const existing = this.agents.get(agentId);
    if (!existing) return undefined;
    const order = orderPresence(existing.presence, mark);
    if (order !== 'newer') return { order, record: structuredClone(existing) };
    const record: AgentRecord = { ...existing, presence: { ...mark }, updatedAt: at, version: existing.version + 1 };
    if (status) {
      record.state = status.state;
      if (status.load) record.load = { ...status.load };
    }
    this.agents.set(agentId, record);
    return { order, record: structuredClone(record) };
  }

  /** Adds the sample to the agent's sums (kept apart from the profile, as the DynamoDB adapter does). */
  async recordMeasurement(agentId: string, sample: MeasurementSample, _at: number): Promise<void> {
    this.measured.set(agentId, addSample(this.measured.get(agentId) ?? NO_MEASUREMENTS, sample));
  }

  async measurements(agentIds: readonly string[]): Promise<Map<string, AgentMeasurements>> {
    const out = new Map<string, AgentMeasurements>();
    for (const id of agentIds) {
      const m = this.measured.get(id);
      if (m !== undefined) out.set(id, structuredClone(m));
    }
    return out;
  }

  async get(agentId: string): Promise<AgentRecord | undefined> {
    const record = this.agents.get(agentId);
    return record ? structuredClone(record) : undefined;
  }

  async findBySkill(skill: string): Promise<AgentRecord[]> {
    return [...this.agents.values()].filter((a) => a.resume.skills.includes(skill)).map((a) => structuredClone(a));
  }

  async list(): Promise<AgentRecord[]> {
    return [...this.agents.values()].map((a) => structuredClone(a));
  }
}

/** Accreditations and pools per identity, as the thing groups (or the local CA's files) would say. */
export class StaticVerifier implements AccreditationVerifier {
  constructor(
    private readonly held: Readonly<Record<string, readonly string[]>> = {},
    private readonly pools: Readonly<Record<string, readonly string[]>> = {},
  ) {}
  async accreditationsOf(agentId: string): Promise<string[]> {
    return [...(this.held[agentId] ?? [])];
  }
  async poolsOf(agentId: string): Promise<string[]> {
    return [...(this.pools[agentId] ?? [])];
  }
}

/** An inbound message as a rule would deliver it; objects are serialised as JSON, strings sent as-is. */
export function inbound(topic: string, payload: unknown, opts: { clientId?: string; receivedAt?: number } = {}): InboundMessage {
  const text = typeof payload === 'string' ? payload : JSON.stringify(payload);
  return {
    topic,
    payload: new TextEncoder().encode(text),
    receivedAt: opts.receivedAt ?? 0,
    ...(opts.clientId !== undefined ? { clientId: opts.clientId } : {}),
  };
}

/** SHA-256 hex, as the adapters pass it to the orchestrator for cancel secrets. */
export const sha256Hex = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');

/**
 * An Orchestrator and a RegistryService wired to fresh in-memory ports, with a manual clock and
 * timer, recording every log line. What core unit tests drive. The clock stands still unless a
 * test moves it, so the window's minimum open time is 0 here unless a test sets it (the tests of
 * that minimum do).
 */
export function orchestratorHarness(config: Partial<OrchestratorConfig> = {}) {
  const clock = new ManualClock();
  const publisher = new RecordingPublisher();
  const timer = new ManualTimer();
  const tasks = new InMemoryTaskStore();
  const registry = new InMemoryRegistry();
  const logs: { level: string; msg: string; data?: Record<string, unknown> }[] = [];
  const cfg: OrchestratorConfig = { ...DEFAULT_ORCHESTRATOR_CONFIG, minProposalWindowMs: 0, ...config };
  const orchestrator = new Orchestrator({
    tasks, registry, publisher, timer, clock, fencer: testFencer, config: cfg, sha256: sha256Hex,
    log: (level, msg, data) => logs.push({ level, msg, ...(data ? { data } : {}) }),
  });
  const service = new RegistryService({ registry, verifier: new StaticVerifier({}), publisher, clock, orchestrator });
  /** Moves the clock by `ms` and fires every timer then due, earliest first. */
  const elapse = async (ms: number): Promise<void> => {
    clock.advance(ms);
    for (const e of timer.takeDue(clock.now())) await orchestrator.onTimer(e);
  };
  return { clock, publisher, timer, tasks, registry, fencer: testFencer, logs, config: cfg, orchestrator, service, elapse };
}
