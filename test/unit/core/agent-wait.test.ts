/**
 * Waiting for agents through core, with the registry service wired to a real orchestrator: a
 * step whose capable agents are only temporarily unavailable (offline, draining, at capacity; a
 * broker restart marks every agent offline for about a second) is held, re-tried on the dispatch
 * timer or by the sweeper, and runs once an agent is back; it fails only after
 * maxWaitForAgentMs, at the deadline, or at once when no agent could ever run it.
 */
import type { OrchestratorConfig } from '../../../core/orchestrator';
import { Assignment, TaskResult, TaskStatus, type AgentState, type Resume } from '../../../core/schemas';
import {
  inbound, orchestratorHarness,
} from '../../helpers/in-memory-ports';

function harness(config: Partial<OrchestratorConfig> = {}) {
  return orchestratorHarness(config);
}
type Harness = ReturnType<typeof harness>;

const resume = (usd: number, region = 'eu-central-1'): Resume => ({ v: 1, skills: ['sql-optimiser'], cost: { usd, p95_ms: 300 }, region, accredit: [] });
const BID = { steps: [{ id: 'write', skill: 'sql-optimiser', consumes: ['question'], produces: ['sql'], estUsd: 0.01, estMs: 300 }] };

async function register(h: Harness, agentId: string, usd: number, region?: string): Promise<void> {
  expect(await h.service.onResume(inbound(`agents/${agentId}/resume`, resume(usd, region)))).toMatchObject({ status: 'accepted' });
}

async function setState(h: Harness, agentId: string, state: AgentState): Promise<void> {
  expect(await h.service.onStatus(inbound(`agents/${agentId}/status`, { state }))).toMatchObject({ status: 'accepted' });
}

async function submit(h: Harness, request: Record<string, unknown> = {}): Promise<void> {
  const body = { goal: 'write sql', input: { question: 'revenue?' }, want: ['sql'], skills: ['sql-optimiser'], ...request };
  expect(await h.orchestrator.onRequest(inbound('clients/client-1/tasks/t1/request', body))).toMatchObject({ status: 'accepted' });
}

/** Two agents with the skill (sql-a cheaper), one task whose only step went to sql-a. */
async function assignedToA(h: Harness, request: Record<string, unknown> = {}, regionB?: string): Promise<void> {
  await register(h, 'sql-a', 0.01);
  await register(h, 'sql-b', 0.05, regionB);
  await submit(h, request);
  await h.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-a', BID));
  await h.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-b', { decline: true, reason: 'no' }));
  expect(h.publisher.on('tasks/t1/assign/sql-a')).toHaveLength(1);
}

function assignments(h: Harness, agentId: string): Assignment[] {
  return h.publisher.on(`tasks/t1/assign/${agentId}`).map((m) => Assignment.parse(m.payload));
}

function output(a: Assignment) {
  return inbound(`tasks/t1/output/${a.stepId}/${a.agentId}`, { taskId: a.taskId, stepId: a.stepId, epoch: a.epoch, token: a.token, ok: true, output: { sql: 'SELECT 1' } });
}

function status(h: Harness): TaskStatus {
  return TaskStatus.parse(h.publisher.retained.get('clients/client-1/tasks/t1/status'));
}

async function stored(h: Harness) {
  const task = await h.tasks.get('t1');
  if (!task) throw new Error('task t1 is not stored');
  return task;
}

describe('waiting for agents through core', () => {
  describe('planning while the only bidder is offline', () => {
    /** sql-a bids, but its last will marked it offline before the window closed. */
    async function plannedWhileOffline(h: Harness): Promise<void> {
      await register(h, 'sql-a', 0.01);
      await submit(h);
      await setState(h, 'sql-a', 'offline');
      await h.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-a', BID));
    }

    it('plans, holds the step without assigning it, and schedules a dispatch retry', async () => {
      const h = harness();
      await plannedWhileOffline(h);
      expect(status(h)).toMatchObject({ state: 'working', phase: 'executing', errors: [] });
      expect(status(h).plan?.steps[0]).toMatchObject({ state: 'pending', epoch: 0, attempts: 0 });
      expect(assignments(h, 'sql-a')).toEqual([]);
      const step = (await stored(h)).steps.s1!;
      expect(step).toMatchObject({ waitingSince: h.clock.now(), dispatchRetryAt: h.clock.now() + h.config.dispatchRetryMs });
      expect(step.audit?.waitingFor).toEqual(['sql-a']);
      expect(h.timer.of('dispatch', 't1')).toEqual([{ event: { kind: 'dispatch', taskId: 't1' }, dueAt: h.clock.now() + h.config.dispatchRetryMs }]);
    });

    it('keeps waiting quietly while the agent stays offline, then runs the step once it is back online', async () => {
      const h = harness();
      await plannedWhileOffline(h);
      const since = h.clock.now();
      const statuses = h.publisher.on('clients/client-1/tasks/t1/status').length;

      await h.elapse(h.config.dispatchRetryMs);
      expect(h.publisher.on('clients/client-1/tasks/t1/status')).toHaveLength(statuses);
      expect((await stored(h)).steps.s1).toMatchObject({ state: 'pending', waitingSince: since, dispatchRetryAt: h.clock.now() + h.config.dispatchRetryMs });
      expect(h.timer.of('dispatch', 't1')).toHaveLength(1);

      await setState(h, 'sql-a', 'online');
      expect(assignments(h, 'sql-a')).toEqual([]);
      await h.elapse(h.config.dispatchRetryMs);
      const [a] = assignments(h, 'sql-a');
      expect(a).toMatchObject({ stepId: 's1', epoch: 1 });
      const step = (await stored(h)).steps.s1!;
      expect(step).toMatchObject({ state: 'assigned', agentId: 'sql-a' });
      expect(step.waitingSince).toBeUndefined();
      expect(step.dispatchRetryAt).toBeUndefined();

      expect(await h.orchestrator.onOutput(output(a!))).toMatchObject({ status: 'accepted' });
      expect(status(h)).toMatchObject({ state: 'completed', errors: [] });
    });

    it('waits for a draining or busy agent just the same', async () => {
      const h = harness();
      await register(h, 'sql-a', 0.01);
      await submit(h);
      expect(await h.service.onStatus(inbound('agents/sql-a/status', { state: 'online', load: { active: 2, max: 2 } }))).toMatchObject({ status: 'accepted' });
      await h.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-a', BID));
      expect((await stored(h)).steps.s1?.audit?.excluded).toEqual([{ agentId: 'sql-a', reason: 'at capacity (2/2 active)' }]);
      expect(status(h).state).toBe('working');

      await setState(h, 'sql-a', 'draining');
      await h.elapse(h.config.dispatchRetryMs);
      expect(status(h).state).toBe('working');
      expect(assignments(h, 'sql-a')).toEqual([]);

      await setState(h, 'sql-a', 'online');
      await h.elapse(h.config.dispatchRetryMs);
      expect(assignments(h, 'sql-a')).toHaveLength(1);
    });
  });

  describe('re-assignment while every other capable agent is offline', () => {
    it('holds the step after the assignee leaves, waiting for it or the other agent, then gives it to the first back online', async () => {
      const h = harness();
      await assignedToA(h);
      await setState(h, 'sql-b', 'offline');
      await setState(h, 'sql-a', 'offline');
      expect(status(h)).toMatchObject({ state: 'working' });
      expect(status(h).plan?.steps[0]).toMatchObject({ state: 'pending', epoch: 1 });
      expect(status(h).errors.map((e) => e.code)).toEqual(['agent-gone']);
      // The agent that went away is a candidate again once nobody else can take the step.
      expect((await stored(h)).steps.s1?.audit?.waitingFor).toEqual(['sql-a', 'sql-b']);

      await h.elapse(h.config.dispatchRetryMs);
      expect(assignments(h, 'sql-b')).toEqual([]);
      await setState(h, 'sql-b', 'online');
      await h.elapse(h.config.dispatchRetryMs);
      const [b] = assignments(h, 'sql-b');
      expect(b).toMatchObject({ stepId: 's1', epoch: 2 });
      expect(await h.orchestrator.onOutput(output(b!))).toMatchObject({ status: 'accepted' });
      expect(status(h).state).toBe('completed');
    });

    it('holds the step after a lease runs out, without offering it back to the agent that let it lapse', async () => {
      const h = harness({ leaseMs: 10_000 });
      await assignedToA(h);
      await setState(h, 'sql-b', 'offline');
      await h.elapse(10_000);
      expect(status(h).state).toBe('working');
      expect(status(h).errors.map((e) => e.code)).toEqual(['lease-expired']);
      await h.elapse(h.config.dispatchRetryMs);
      expect(assignments(h, 'sql-a')).toHaveLength(1);
      await setState(h, 'sql-b', 'online');
      await h.elapse(h.config.dispatchRetryMs);
      expect(assignments(h, 'sql-b')).toHaveLength(1);
    });
  });

  describe('waiting too long', () => {
    it('fails the task once the step has waited maxWaitForAgentMs, naming the step and the agents it waited for', async () => {
      const h = harness({ maxWaitForAgentMs: 5_000, dispatchRetryMs: 2_000 });
      await assignedToA(h);
      await setState(h, 'sql-b', 'offline');
      await setState(h, 'sql-a', 'offline');
      await h.elapse(2_000);
      await h.elapse(2_000);
      expect(status(h).state).toBe('working');
      // The last retry is due when the wait runs out, not a whole retry interval later.
      expect(h.timer.of('dispatch', 't1').map((t) => t.dueAt)).toEqual([h.clock.now() + 1_000]);
      await h.elapse(1_000);
      const st = status(h);
      expect(st).toMatchObject({ state: 'failed', phase: 'done' });
      expect(st.errors.at(-1)).toMatchObject({
        code: 'agent-wait-expired', stepId: 's1',
        message: 'step s1 (sql-optimiser) gave up waiting for an agent after 5000 ms (limit 5000 ms); it waited for sql-a (agent is offline), sql-b (agent is offline)',
      });
      expect(TaskResult.parse(h.publisher.retained.get('clients/client-1/tasks/t1/result')).reason).toMatch(/waited for sql-a \(agent is offline\), sql-b \(agent is offline\)/);
    });

    it('fails at the deadline first when it comes sooner, saying which step was waiting', async () => {
      const h = harness();
      const deadline = new Date(h.clock.now() + 3_000).toISOString();
      await assignedToA(h, { constraints: { deadline } });
      await setState(h, 'sql-b', 'offline');
      await setState(h, 'sql-a', 'offline');
      await h.elapse(3_000);
      const st = status(h);
      expect(st.state).toBe('failed');
      expect(st.errors.at(-1)).toMatchObject({ code: 'deadline-passed', message: expect.stringMatching(/step s1 \(sql-optimiser\) was waiting for sql-a \(agent is offline\), sql-b \(agent is offline\)$/) });
    });

    it('fails at once when maxWaitForAgentMs is 0, with the exclusion reasons', async () => {
      const h = harness({ maxWaitForAgentMs: 0 });
      await assignedToA(h);
      await setState(h, 'sql-b', 'offline');
      await setState(h, 'sql-a', 'offline');
      expect(status(h).errors.at(-1)).toMatchObject({ code: 'no-agent', message: expect.stringMatching(/sql-b: agent is offline/) });
      expect(h.timer.of('dispatch', 't1')).toEqual([]);
    });
  });

  describe('no capable agent at all', () => {
    it('fails at once with the exclusion reasons when the assignee failed the step and the only other agent is barred by a constraint', async () => {
      const h = harness();
      await assignedToA(h, { constraints: { region: 'eu-central-1' } }, 'us-east-1');
      await setState(h, 'sql-b', 'offline');
      const [a] = assignments(h, 'sql-a');
      const failure = inbound(`tasks/t1/output/s1/${a!.agentId}`, { taskId: 't1', stepId: 's1', epoch: a!.epoch, token: a!.token, ok: false, error: { code: 'boom', message: 'flaky tool', retryable: true } });
      expect(await h.orchestrator.onOutput(failure)).toMatchObject({ status: 'accepted' });
      const st = status(h);
      expect(st.state).toBe('failed');
      expect(st.errors.at(-1)).toMatchObject({
        code: 'no-agent', stepId: 's1',
        message: 'no agent can run step s1 (sql-optimiser): sql-a: excluded for this step (failed or lost it before); sql-b: region us-east-1 not in [eu-central-1]',
      });
      expect(h.timer.of('dispatch', 't1')).toEqual([]);
    });

    it('waits only for the agent that went away when the other capable agent is barred by a constraint', async () => {
      const h = harness();
      await assignedToA(h, { constraints: { region: 'eu-central-1' } }, 'us-east-1');
      await setState(h, 'sql-b', 'offline');
      await setState(h, 'sql-a', 'offline');
      expect(status(h).state).toBe('working');
      expect((await stored(h)).steps.s1?.audit?.waitingFor).toEqual(['sql-a']);
      await setState(h, 'sql-a', 'online');
      await h.elapse(h.config.dispatchRetryMs);
      expect(assignments(h, 'sql-a').map((x) => x.epoch)).toEqual([1, 2]);
    });

    it('fails the plan when the only bidder is unknown to the registry', async () => {
      const h = harness();
      await submit(h, { skills: undefined, proposalWindowMs: 100 });
      await h.orchestrator.onProposal(inbound('tasks/t1/proposal/ghost', BID));
      await h.elapse(100);
      expect(status(h).errors.at(-1)).toMatchObject({ code: 'unsatisfiable', message: expect.stringMatching(/ghost\/write \(agent not in the registry\)/) });
    });
  });

  describe('dispatch timers that repeat or come early', () => {
    async function held(h: Harness): Promise<void> {
      await assignedToA(h);
      await setState(h, 'sql-b', 'offline');
      await setState(h, 'sql-a', 'offline');
    }

    it('ignores an early timer without scheduling another', async () => {
      const h = harness();
      await held(h);
      const scheduled = h.timer.scheduled.length;
      const version = (await stored(h)).version;
      expect(await h.orchestrator.onTimer({ kind: 'dispatch', taskId: 't1' })).toMatchObject({ status: 'ignored', detail: expect.stringMatching(/superseded/) });
      expect(h.timer.scheduled).toHaveLength(scheduled);
      expect((await stored(h)).version).toBe(version);
    });

    it('acts on the first of two duplicates and ignores the second', async () => {
      const h = harness();
      await held(h);
      await setState(h, 'sql-b', 'online');
      h.clock.advance(h.config.dispatchRetryMs);
      expect(await h.orchestrator.onTimer({ kind: 'dispatch', taskId: 't1' })).toMatchObject({ status: 'accepted' });
      expect(await h.orchestrator.onTimer({ kind: 'dispatch', taskId: 't1' })).toMatchObject({ status: 'ignored' });
      expect(assignments(h, 'sql-b')).toHaveLength(1);
    });

    it('ignores a duplicate that arrives while the step is still waiting, leaving one retry scheduled', async () => {
      const h = harness();
      await held(h);
      h.timer.scheduled.length = 0;
      h.clock.advance(h.config.dispatchRetryMs);
      expect(await h.orchestrator.onTimer({ kind: 'dispatch', taskId: 't1' })).toMatchObject({ status: 'accepted' });
      expect(await h.orchestrator.onTimer({ kind: 'dispatch', taskId: 't1' })).toMatchObject({ status: 'ignored' });
      expect(h.timer.of('dispatch', 't1')).toHaveLength(1);
    });

    it('ignores a timer for a task with nothing held', async () => {
      const h = harness();
      await assignedToA(h);
      expect(await h.orchestrator.onTimer({ kind: 'dispatch', taskId: 't1' })).toMatchObject({ status: 'ignored', detail: expect.stringMatching(/no longer applies/) });
    });
  });

  describe('the sweeper as the safety net', () => {
    it('re-tries a held step whose dispatch timer could not be scheduled', async () => {
      const h = harness();
      await assignedToA(h);
      await setState(h, 'sql-b', 'offline');
      h.timer.failNext(1);
      await setState(h, 'sql-a', 'offline');
      expect(h.timer.of('dispatch', 't1')).toEqual([]);
      await setState(h, 'sql-b', 'online');
      h.clock.advance(h.config.dispatchRetryMs);
      expect(await h.orchestrator.sweep()).toEqual({ examined: 1, advanced: 1 });
      expect(assignments(h, 'sql-b')).toHaveLength(1);
    });
  });
});
