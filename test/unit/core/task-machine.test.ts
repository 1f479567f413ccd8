import { rankAgents } from '../../../core/matching';
import type { AgentRecord, MatchAudit, TaskRecord } from '../../../core/model';
import { DEFAULT_ORCHESTRATOR_CONFIG, type OrchestratorConfig } from '../../../core/orchestrator';
import type { PlanOutcome, PlannedStep, RankAgents } from '../../../core/plan-types';
import { Assignment, RejectNotice, TaskRequest, TaskResult, TaskStatus, type StepOutput } from '../../../core/schemas';
import {
  acceptOutput, allEligibleAnswered, cancelTask, checkRequest, clearRetained, createTask, eligibleAgentsFor, expireDeadline, expireLease,
  failTask, nextDueAt, reassignAgentSteps, recordPlan, rejectNotice, rejectionMessages, resultOf, retryDispatch, statusSnapshot, timerDueAt, timersBetween,
  type Decision, type DispatchContext,
} from '../../../core/task-machine';

const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const config: OrchestratorConfig = { ...DEFAULT_ORCHESTRATOR_CONFIG, maxAttempts: 2 };

function agent(agentId: string, skills: string[], extra: Partial<AgentRecord> = {}): AgentRecord {
  return {
    agentId, resume: { v: 1, skills, cost: { usd: 0.01, p95_ms: 100 }, region: 'eu-central-1', accredit: [] },
    state: 'online', verifiedAccredit: [], unverifiedAccredit: [], updatedAt: T0, version: 1, ...extra,
  };
}

/** Chooses the first candidate not excluded, so these tests do not depend on the matcher's scoring. */
const firstFree: RankAgents = (step, candidates, context) => {
  const excluded = candidates.filter((c) => context.exclude.includes(c.agentId)).map((c) => ({ agentId: c.agentId, reason: 'excluded' }));
  const ranked = candidates.filter((c) => !context.exclude.includes(c.agentId)).map((c) => ({ agentId: c.agentId, score: 1, why: 'first free' }));
  const audit: MatchAudit = { stepId: step.id, ranked, excluded };
  return ranked[0] ? { ...audit, chosen: ranked[0].agentId } : audit;
};

function ctx(now = T0, agents: AgentRecord[] = [agent('a1', ['sql']), agent('a2', ['sql']), agent('c1', ['chart'])]): DispatchContext {
  const candidates = new Map<string, AgentRecord[]>();
  for (const a of agents) for (const s of a.resume.skills) candidates.set(s, [...(candidates.get(s) ?? []), a]);
  return { now, config, candidates, rank: firstFree };
}

/** Stands in for the derived token of (task, step, epoch); the orchestrator's fencer is tested on its own. */
function tokenOf(taskId: string, stepId: string, epoch: number): string {
  return `tok-${taskId}-${stepId}-${epoch}-0123456789abcdef`;
}

/** acceptOutput with the token check the orchestrator makes before the transition. */
function accept(task: TaskRecord, stepId: string, out: StepOutput, c: DispatchContext, sender?: string) {
  return acceptOutput(task, stepId, out, out.token === tokenOf(task.taskId, stepId, out.epoch), c, sender);
}

function request(extra: Partial<TaskRequest> = {}): TaskRequest {
  return TaskRequest.parse({ goal: 'chart it', input: { q: 'question' }, want: ['chart'], skills: ['sql'], ...extra });
}

function newTask(extra: Partial<TaskRequest> = {}): TaskRecord {
  return createTask({ taskId: 't1', taskRoot: 'tasks', owner: 'client-1', request: request(extra), eligibleAgents: ['a1'] }, { now: T0, config });
}

function planned(id: string, skill: string, consumes: string[], produces: string[], proposedBy = 'a1'): PlannedStep {
  return { id, skill, consumes, produces, estUsd: 0.01, estMs: 100, proposedBy, proposedStepId: `${id}-orig` };
}

const PLAN: PlanOutcome = {
  ok: true, steps: [planned('s1', 'sql', ['q'], ['sql']), planned('s2', 'chart', ['sql'], ['chart'], 'c1')], estUsd: 0.02, estMs: 200, notes: ['cheapest'],
};

function changed(d: Decision): TaskRecord {
  if (d.kind !== 'changed') throw new Error(`expected a change, got ${JSON.stringify(d)}`);
  return d.task;
}

function output(task: TaskRecord, stepId: string, body: Partial<StepOutput> = {}): StepOutput {
  const s = task.steps[stepId]!;
  return { v: 1, taskId: task.taskId, stepId, epoch: s.epoch, token: tokenOf(task.taskId, stepId, s.epoch), ok: true, output: { [s.produces[0]!]: 'value' }, ...body } as StepOutput;
}

function lastStatus(task: TaskRecord): TaskStatus {
  const m = [...task.outbox].reverse().find((x) => x.topic === `clients/client-1/tasks/${task.taskId}/status`);
  return TaskStatus.parse(m?.payload);
}

describe('task-machine', () => {
  describe('checkRequest', () => {
    it('returns the topic root when the data classes agree with it', () => {
      expect(checkRequest(request(), 'tasks', T0)).toBe('tasks');
      expect(checkRequest(request({ constraints: { dataClasses: ['phi'] } }), 'patient-data', T0)).toBe('patient-data');
    });

    it('refuses a sensitive task published under the default tree, and the reverse', () => {
      expect(() => checkRequest(request({ constraints: { dataClasses: ['phi'] } }), 'tasks', T0)).toThrow(/'phi' must be published under patient-data\//);
      expect(() => checkRequest(request(), 'patient-data', T0)).toThrow(/must be published under tasks\//);
    });

    it('refuses a deadline that has already passed', () => {
      expect(() => checkRequest(request({ constraints: { deadline: '2029-12-31T23:59:59Z' } }), 'tasks', T0)).toThrow(/already passed/);
    });
  });

  describe('eligibleAgentsFor', () => {
    it('keeps online agents with a hinted skill and the accreditations the data classes need', () => {
      const agents = [
        agent('on', ['sql']), agent('off', ['sql'], { state: 'offline' }), agent('draining', ['sql'], { state: 'draining' }), agent('other', ['chart']),
        agent('gdpr', ['sql'], { verifiedAccredit: ['gdpr'] }), agent('claims', ['sql'], { unverifiedAccredit: ['gdpr'] }),
      ];
      expect(eligibleAgentsFor(request(), agents)).toEqual(['claims', 'gdpr', 'on']);
      expect(eligibleAgentsFor(request({ constraints: { dataClasses: ['phi'] } }), agents)).toEqual(['gdpr']);
    });

    it('is empty without a skills hint', () => {
      expect(eligibleAgentsFor(request({ skills: undefined }), [agent('on', ['sql'])])).toEqual([]);
    });
  });

  describe('createTask', () => {
    it('opens the proposal window and queues the first status snapshot', () => {
      const task = newTask({ proposalWindowMs: 500 });
      expect(task).toMatchObject({ state: 'submitted', phase: 'collecting-proposals', version: 1, windowClosesAt: T0 + 500, deadlineAt: T0 + config.defaultDeadlineMs, artifacts: { q: 'question' } });
      expect(task.expiresAt).toBe(Math.ceil((T0 + config.defaultDeadlineMs + config.retentionMs) / 1000));
      // The call for bids (without the client's cancel commitment), the agents' slim status, the client's status.
      expect(task.outbox.map((m) => [m.topic, m.retain])).toEqual([
        ['tasks/t1/request', false], ['tasks/t1/status', true], ['clients/client-1/tasks/t1/status', true],
      ]);
      expect(task.outbox[0]?.payload).not.toHaveProperty('cancelHash');
      expect(task.outbox[1]?.payload).toMatchObject({ state: 'submitted', errors: [] });
      expect(task.outbox[1]?.payload).not.toHaveProperty('plan');
      expect(lastStatus(task)).toMatchObject({ state: 'submitted', version: 1 });
    });

    it("calls for bids without the client's cancel commitment or self-declared name", () => {
      const task = newTask({ cancelHash: 'a'.repeat(64), client: 'acme' });
      const call = TaskRequest.parse(task.outbox.find((m) => m.topic === 'tasks/t1/request')?.payload);
      expect(call).toMatchObject({ goal: 'chart it', want: ['chart'] });
      expect(call).not.toHaveProperty('cancelHash');
      expect(call).not.toHaveProperty('client');
    });

    it('takes the deadline from the request when it names one', () => {
      expect(newTask({ constraints: { deadline: '2030-01-01T01:00:00Z' } }).deadlineAt).toBe(T0 + 3_600_000);
    });
  });

  describe('rejectionMessages and rejectNotice', () => {
    it('publishes a rejected result, then a rejected status, both retained', () => {
      const [result, status] = rejectionMessages('t9', 'tasks', 'client-1', { code: 'invalid-json', message: 'bad' }, T0);
      expect([result?.topic, status?.topic]).toEqual(['clients/client-1/tasks/t9/result', 'clients/client-1/tasks/t9/status']);
      expect(TaskResult.parse(result?.payload)).toMatchObject({ state: 'rejected', reason: 'bad' });
      expect(TaskStatus.parse(status?.payload)).toMatchObject({ state: 'rejected', version: 0, errors: [{ code: 'invalid-json' }] });
      expect(result?.retain && status?.retain).toBe(true);
    });

    it('truncates a long message so the notice stays within its schema', () => {
      const m = rejectNotice('a1', { code: 'invalid-payload', message: 'x'.repeat(5000) }, { topic: 'clients/client-1/tasks/t1/request' }, T0);
      expect(m).toMatchObject({ topic: 'agents/a1/errors', retain: false, qos: 1 });
      expect(RejectNotice.parse(m.payload).message).toHaveLength(2000);
    });
  });

  describe('allEligibleAnswered', () => {
    it('is true only when every eligible agent answered, and never with none eligible', () => {
      const task = newTask();
      expect(allEligibleAnswered(task, [])).toBe(false);
      expect(allEligibleAnswered(task, ['a1', 'x'])).toBe(true);
      expect(allEligibleAnswered({ ...task, eligibleAgents: [] }, ['a1'])).toBe(false);
    });
  });

  describe('recordPlan', () => {
    it('records the steps and assigns the ready one with epoch 1, a token and a lease', () => {
      const before = newTask();
      const task = changed(recordPlan(before, PLAN, ctx()));
      expect(task).toMatchObject({ state: 'working', phase: 'executing', version: 2, stepOrder: ['s1', 's2'], estUsd: 0.02, planNotes: ['cheapest'] });
      expect(task.steps.s1).toMatchObject({ state: 'assigned', agentId: 'a1', epoch: 1, attempts: 1, leaseExpiresAt: T0 + config.leaseMs, proposedStepId: 's1-orig' });
      expect(task.steps.s2).toMatchObject({ state: 'pending', epoch: 0 });
      const assign = task.outbox.find((m) => m.topic === 'tasks/t1/assign/a1');
      // No token in what is stored: the publisher derives it from the fence as it publishes.
      expect(assign?.payload).not.toHaveProperty('token');
      expect(assign?.fence).toEqual({ taskId: 't1', stepId: 's1', epoch: 1 });
      expect(Assignment.parse({ ...(assign?.payload as object), token: tokenOf('t1', 's1', 1) })).toMatchObject({ epoch: 1, agentId: 'a1', inputs: { q: 'question' }, leaseMs: config.leaseMs });
      expect(JSON.stringify(task)).not.toMatch(/token/);
      expect(task.outbox.at(-1)?.topic).toBe('clients/client-1/tasks/t1/status');
      expect(before.state).toBe('submitted');
    });

    it('fails the task with the planner\'s reasons', () => {
      const task = changed(recordPlan(newTask(), { ok: false, reasons: ['nobody produces chart'] }, ctx()));
      expect(task.state).toBe('failed');
      expect(task.errors[0]).toMatchObject({ code: 'unsatisfiable', message: 'no plan satisfies the request: nobody produces chart' });
      expect(TaskResult.parse(task.outbox.find((m) => m.topic === 'clients/client-1/tasks/t1/result')?.payload)).toMatchObject({ state: 'failed' });
    });

    it('completes at once when the input already holds every wanted artifact', () => {
      const task = changed(recordPlan(newTask({ want: ['q'] }), { ok: true, steps: [], estUsd: 0, estMs: 0, notes: [] }, ctx()));
      expect(task.state).toBe('completed');
      expect(resultOf(task).outputs).toEqual({ q: 'question' });
    });

    it('fails the task with the exclusions when no agent can take a ready step', () => {
      const task = changed(recordPlan(newTask(), PLAN, ctx(T0, [])));
      expect(task.state).toBe('failed');
      expect(task.errors[0]?.message).toMatch(/no agent can run step s1 \(sql\): no agent advertises skill sql/);
    });

    it('ignores a second plan', () => {
      const task = changed(recordPlan(newTask(), PLAN, ctx()));
      expect(recordPlan(task, PLAN, ctx())).toMatchObject({ kind: 'unchanged', outcome: 'ignored' });
    });
  });

  describe('acceptOutput', () => {
    const working = (): TaskRecord => changed(recordPlan(newTask(), PLAN, ctx()));

    it('stores the declared artifacts, completes the step and dispatches what became ready', () => {
      const task = working();
      const next = changed(accept(task, 's1', output(task, 's1', { ok: true, output: { sql: 'SELECT', junk: 1 } }), ctx()));
      expect(next.steps.s1).toMatchObject({ state: 'completed' });
      expect(next.artifacts).toEqual({ q: 'question', sql: 'SELECT' });
      expect(next.steps.s2).toMatchObject({ state: 'assigned', agentId: 'c1', epoch: 1 });
      expect(task.steps.s1?.state).toBe('assigned');
    });

    it('completes the task when the wanted artifact arrives', () => {
      let task = working();
      task = changed(accept(task, 's1', output(task, 's1', { usage: { usd: 0.5, ms: 10 } }), ctx()));
      task = changed(accept(task, 's2', output(task, 's2', { usage: { usd: 0.25, ms: 5 } }), ctx()));
      expect(task).toMatchObject({ state: 'completed', phase: 'done', finishedAt: T0 });
      expect(resultOf(task)).toMatchObject({ outputs: { chart: 'value' }, usage: { usd: 0.75, ms: 15, steps: 2 } });
    });

    it('rejects a stale epoch, a future epoch and a wrong token (fencing)', () => {
      const task = working();
      const good = output(task, 's1');
      const future = accept(task, 's1', { ...good, epoch: 2 }, ctx());
      expect(future).toMatchObject({ kind: 'rejected', error: { code: 'stale-epoch', message: expect.stringMatching(/never assigned/) } });
      expect(future).not.toHaveProperty('notify');
      expect(accept(task, 's1', { ...good, token: 'not-the-token-000000' }, ctx())).toMatchObject({ kind: 'rejected', error: { code: 'bad-token' }, notify: 'a1' });
      const moved = changed(expireLease(task, 's1', 1, ctx(T0 + config.leaseMs)));
      expect(accept(moved, 's1', good, ctx())).toMatchObject({ kind: 'rejected', error: { code: 'stale-epoch', message: expect.stringMatching(/superseded/) }, notify: 'a1' });
    });

    it('rejects an output whose payload names another step, an unknown step, and a sender that is not the assignee', () => {
      const task = working();
      expect(accept(task, 's2', output(task, 's1'), ctx())).toMatchObject({ kind: 'rejected', error: { code: 'invalid-payload' } });
      expect(accept(task, 's9', { ...output(task, 's1'), stepId: 's9' }, ctx())).toMatchObject({ kind: 'rejected', error: { code: 'invalid-state' } });
      expect(accept(task, 's1', output(task, 's1'), ctx(), 'c1')).toMatchObject({ kind: 'rejected', error: { code: 'not-authorized' }, notify: 'c1' });
    });

    it('calls a repeated output a duplicate', () => {
      const task = working();
      const out = output(task, 's1');
      const next = changed(accept(task, 's1', out, ctx()));
      expect(accept(next, 's1', out, ctx())).toMatchObject({ kind: 'unchanged', outcome: 'duplicate' });
    });

    it('re-assigns after an error output and fails the task at the attempt limit', () => {
      let task = working();
      task = changed(accept(task, 's1', output(task, 's1', { ok: false, error: { code: 'e', message: 'first', retryable: true } }), ctx()));
      expect(task.steps.s1).toMatchObject({ state: 'assigned', agentId: 'a2', epoch: 2, attempts: 2, excluded: ['a1'] });
      expect(task.steps.s1?.superseded).toEqual([{ epoch: 1, agentId: 'a1', cause: 'error-output' }]);
      task = changed(accept(task, 's1', output(task, 's1', { ok: false, error: { code: 'e', message: 'second', retryable: true } }), ctx()));
      expect(task.state).toBe('failed');
      expect(task.errors.at(-1)?.message).toBe('step s1 (sql) failed after 2 attempt(s); last error: second');
      expect(task.steps.s2?.state).toBe('canceled');
    });

    it('absorbs outputs once the task is terminal', () => {
      const task = working();
      const done = changed(failTask(task, 'step-failed', 'gave up', ctx()));
      expect(accept(done, 's1', output(task, 's1'), ctx())).toMatchObject({ kind: 'rejected', error: { code: 'invalid-state' } });
    });
  });

  describe('expireLease and reassignAgentSteps', () => {
    it('ignores a lease that has not run out or whose epoch moved on', () => {
      const task = changed(recordPlan(newTask(), PLAN, ctx()));
      expect(expireLease(task, 's1', 1, ctx(T0 + 1))).toMatchObject({ kind: 'unchanged', outcome: 'ignored' });
      expect(expireLease(task, 's1', 7, ctx(T0 + config.leaseMs))).toMatchObject({ kind: 'unchanged', outcome: 'ignored' });
    });

    it('re-assigns the steps an agent held and ignores an agent holding none', () => {
      const task = changed(recordPlan(newTask(), PLAN, ctx()));
      const next = changed(reassignAgentSteps(task, 'a1', 'offline', ctx()));
      expect(next.steps.s1).toMatchObject({ agentId: 'a2', epoch: 2 });
      expect(next.errors[0]).toMatchObject({ code: 'agent-gone', agentId: 'a1' });
      expect(reassignAgentSteps(task, 'nobody', 'offline', ctx())).toMatchObject({ kind: 'unchanged', outcome: 'ignored' });
    });
  });

  describe('cancelTask, expireDeadline and failTask', () => {
    it('cancels a live task once; a repeat is a duplicate and a finished task refuses', () => {
      const task = changed(recordPlan(newTask(), PLAN, ctx()));
      const canceled = changed(cancelTask(task, 'no longer needed', ctx()));
      expect(canceled).toMatchObject({ state: 'canceled', phase: 'done' });
      expect(Object.values(canceled.steps).map((s) => s.state)).toEqual(['canceled', 'canceled']);
      expect(resultOf(canceled)).toMatchObject({ state: 'canceled', reason: 'no longer needed', outputs: {} });
      expect(cancelTask(canceled, 'again', ctx())).toMatchObject({ kind: 'unchanged', outcome: 'duplicate' });
      const failed = changed(failTask(task, 'step-failed', 'x', ctx()));
      expect(cancelTask(failed, 'late', ctx())).toMatchObject({ kind: 'rejected', error: { code: 'invalid-state' } });
    });

    it('fails the task only once the deadline has passed', () => {
      const task = newTask();
      expect(expireDeadline(task, { now: task.deadlineAt! - 1, config })).toMatchObject({ kind: 'unchanged' });
      const failed = changed(expireDeadline(task, { now: task.deadlineAt!, config }));
      expect(failed.errors[0]).toMatchObject({ code: 'deadline-passed' });
      expect(expireDeadline(failed, { now: task.deadlineAt!, config })).toMatchObject({ kind: 'unchanged', outcome: 'ignored' });
      expect(failTask(failed, 'step-failed', 'again', { now: T0, config })).toMatchObject({ kind: 'unchanged' });
    });
  });

  describe('clearRetained', () => {
    it('clears only finished tasks, only after retention, and only once', () => {
      const live = changed(recordPlan(newTask(), PLAN, ctx()));
      expect(clearRetained(live, { now: T0 + config.retentionMs, config })).toMatchObject({ kind: 'unchanged', outcome: 'ignored' });
      const done = changed(failTask(live, 'step-failed', 'x', { now: T0, config }));
      expect(clearRetained(done, { now: T0 + config.retentionMs - 1, config })).toMatchObject({ kind: 'unchanged', outcome: 'ignored' });
      const cleared = changed(clearRetained(done, { now: T0 + config.retentionMs, config }));
      const clears = cleared.outbox.filter((m) => m.payload === null).map((m) => m.topic);
      expect(clears).toEqual(['clients/client-1/tasks/t1/output/s1', 'clients/client-1/tasks/t1/result', 'clients/client-1/tasks/t1/status', 'tasks/t1/status']);
      expect(cleared.outbox.some((m) => m.topic === 'clients/client-1/tasks/t1/status' && m.payload !== null)).toBe(false);
      expect(clearRetained(cleared, { now: T0 + config.retentionMs, config })).toMatchObject({ kind: 'unchanged', outcome: 'duplicate' });
    });
  });

  describe('statusSnapshot and resultOf', () => {
    it('shows the plan with per-step state and agent, at the record version', () => {
      const task = changed(recordPlan(newTask(), PLAN, ctx()));
      const snap = TaskStatus.parse(statusSnapshot(task));
      expect(snap).toMatchObject({ version: 2, state: 'working', plan: { estUsd: 0.02, estMs: 200 } });
      expect(snap.plan?.steps.map((s) => [s.id, s.state, s.agentId ?? null, s.proposedBy])).toEqual([['s1', 'assigned', 'a1', 'a1'], ['s2', 'pending', null, 'c1']]);
    });

    it('refuses to give a result for a live task', () => {
      expect(() => resultOf(newTask())).toThrow(/has no result yet/);
    });
  });

  describe('timers', () => {
    it('derives the window and deadline for a new task, a lease per new epoch, and retention on finishing', () => {
      const created = newTask();
      expect(timersBetween(undefined, created, config).map((t) => [t.event.kind, t.dueAt])).toEqual([
        ['proposal-window', created.windowClosesAt], ['deadline', created.deadlineAt],
      ]);
      const working = changed(recordPlan(created, PLAN, ctx()));
      expect(timersBetween(created, working, config)).toEqual([{ event: { kind: 'lease', taskId: 't1', stepId: 's1', epoch: 1 }, dueAt: T0 + config.leaseMs }]);
      const failed = changed(failTask(working, 'step-failed', 'x', { now: T0 + 5, config }));
      expect(timersBetween(working, failed, config)).toEqual([{ event: { kind: 'retention', taskId: 't1' }, dueAt: T0 + 5 + config.retentionMs }]);
    });

    it('says when each timer is due and nothing once it no longer applies', () => {
      const created = newTask();
      expect(timerDueAt(created, { kind: 'proposal-window', taskId: 't1' }, config)).toBe(created.windowClosesAt);
      const working = changed(recordPlan(created, PLAN, ctx()));
      expect(timerDueAt(working, { kind: 'proposal-window', taskId: 't1' }, config)).toBeUndefined();
      expect(timerDueAt(working, { kind: 'lease', taskId: 't1', stepId: 's1', epoch: 1 }, config)).toBe(T0 + config.leaseMs);
      expect(timerDueAt(working, { kind: 'lease', taskId: 't1', stepId: 's1', epoch: 2 }, config)).toBeUndefined();
      expect(timerDueAt(working, { kind: 'retention', taskId: 't1' }, config)).toBeUndefined();
    });

    it('gives the earliest due time for the sweeper index', () => {
      const created = { ...newTask(), outbox: [] };
      expect(nextDueAt(created, config)).toBe(created.windowClosesAt);
      expect(nextDueAt({ ...created, outbox: newTask().outbox, updatedAt: T0 - 7 }, config)).toBe(T0 - 7);
      const working = { ...changed(recordPlan(created, PLAN, ctx())), outbox: [] };
      expect(nextDueAt(working, config)).toBe(T0 + config.leaseMs);
      const failed = { ...changed(failTask(working, 'step-failed', 'x', { now: T0, config })), outbox: [] };
      expect(nextDueAt(failed, config)).toBe(T0 + config.retentionMs);
      expect(nextDueAt({ ...failed, retainedClearedAt: T0 }, config)).toBeUndefined();
    });
  });

  describe('waiting for an agent', () => {
    /** The real matcher, so offline candidates are reported as worth waiting for. */
    function matched(now: number, agents: AgentRecord[]): DispatchContext {
      return { ...ctx(now, agents), rank: rankAgents };
    }
    const offline = [agent('a1', ['sql'], { state: 'offline' }), agent('c1', ['chart'])];
    const online = [agent('a1', ['sql']), agent('c1', ['chart'])];
    const heldTask = (): TaskRecord => ({ ...changed(recordPlan(newTask(), PLAN, matched(T0, offline))), outbox: [] });

    it('holds a ready step whose only agent is offline, with a dispatch timer and a due time for the sweeper', () => {
      const task = heldTask();
      expect(task).toMatchObject({ state: 'working', errors: [] });
      expect(task.steps.s1).toMatchObject({ state: 'pending', epoch: 0, waitingSince: T0, dispatchRetryAt: T0 + config.dispatchRetryMs });
      expect(timersBetween(newTask(), task, config)).toEqual([{ event: { kind: 'dispatch', taskId: 't1' }, dueAt: T0 + config.dispatchRetryMs }]);
      expect(timerDueAt(task, { kind: 'dispatch', taskId: 't1' }, config)).toBe(T0 + config.dispatchRetryMs);
      expect(nextDueAt(task, config)).toBe(T0 + config.dispatchRetryMs);
    });

    it('ignores a retry that is early or finds nothing held', () => {
      expect(retryDispatch(heldTask(), matched(T0 + 1, online))).toMatchObject({ kind: 'unchanged', outcome: 'ignored', detail: expect.stringMatching(/next dispatch attempt/) });
      const running = changed(recordPlan(newTask(), PLAN, matched(T0, online)));
      expect(retryDispatch(running, matched(T0 + config.dispatchRetryMs, online))).toMatchObject({ kind: 'unchanged', outcome: 'ignored' });
      expect(timerDueAt(running, { kind: 'dispatch', taskId: 't1' }, config)).toBeUndefined();
    });

    it('pushes the next attempt back without a status snapshot while the agent stays offline', () => {
      const task = heldTask();
      const now = T0 + config.dispatchRetryMs;
      const next = changed(retryDispatch(task, matched(now, offline)));
      expect(next.steps.s1).toMatchObject({ state: 'pending', waitingSince: T0, dispatchRetryAt: now + config.dispatchRetryMs });
      expect(next.outbox).toEqual([]);
      expect(timersBetween(task, next, config)).toEqual([{ event: { kind: 'dispatch', taskId: 't1' }, dueAt: now + config.dispatchRetryMs }]);
    });

    it('assigns the step once the agent is back and drops the waiting marks', () => {
      const next = changed(retryDispatch(heldTask(), matched(T0 + config.dispatchRetryMs, online)));
      expect(next.steps.s1).toMatchObject({ state: 'assigned', agentId: 'a1', epoch: 1 });
      expect(next.steps.s1?.waitingSince).toBeUndefined();
      expect(next.steps.s1?.dispatchRetryAt).toBeUndefined();
      expect(lastStatus(next).plan?.steps[0]).toMatchObject({ state: 'assigned' });
      expect(timerDueAt(next, { kind: 'dispatch', taskId: 't1' }, config)).toBeUndefined();
    });

    it('fails with agent-wait-expired once the wait reaches maxWaitForAgentMs', () => {
      const next = changed(retryDispatch(heldTask(), matched(T0 + config.maxWaitForAgentMs, offline)));
      expect(next.state).toBe('failed');
      expect(next.errors.at(-1)).toMatchObject({ code: 'agent-wait-expired', stepId: 's1', message: expect.stringMatching(/^step s1 \(sql\) gave up waiting for an agent after 60000 ms \(limit 60000 ms\); it waited for a1 \(agent is offline\)$/) });
      expect(timersBetween(heldTask(), next, config).map((t) => t.event.kind)).toEqual(['retention']);
    });

    it('fails at once with the exclusions when the only capable agent is barred by a constraint', () => {
      const task = changed(recordPlan(newTask({ constraints: { region: 'eu-west-1' } }), PLAN, matched(T0, offline)));
      expect(task.errors.at(-1)).toMatchObject({ code: 'no-agent', message: 'no agent can run step s1 (sql): a1: region eu-central-1 not in [eu-west-1]' });
    });

    it('holds a step whose assignee went away while the other capable agent is offline', () => {
      const running = changed(recordPlan(newTask(), PLAN, matched(T0, online)));
      const next = changed(reassignAgentSteps(running, 'a1', 'offline', matched(T0 + 5, [...offline, agent('a2', ['sql'], { state: 'draining' })])));
      expect(next.state).toBe('working');
      expect(next.steps.s1).toMatchObject({ state: 'pending', excluded: ['a1'], waitingSince: T0 + 5 });
      // a1 went away (it may come back after a restart), a2 is draining: both are worth waiting for.
      expect(next.steps.s1?.audit?.waitingFor).toEqual(['a1', 'a2']);
    });
  });
});
