/**
 * The failure paths end to end through core, with the registry service wired to a real
 * orchestrator (the unit tests of each stub the other): an assignee that goes away by every route
 * loses its step to another agent under a new epoch and is fenced out afterwards; leases run out
 * up to the attempt limit; a request's deadline reaches its assignments and fails the task; a
 * finished task's item outlives its retention clean-up.
 *
 * Known gap, not covered here because nothing can tell the cases apart yet: a last will carries
 * no `at` timestamp, so a will redelivered after the agent came back online (QoS 1 allows it)
 * marks the agent offline again and re-assigns the steps it took since. Ordering statuses needs
 * the will to carry its connect time and the registry to keep the latest `at` it recorded.
 */
import type { OrchestratorConfig } from '../../../core/orchestrator';
import { Assignment, RejectNotice, TaskResult, TaskStatus, type Resume } from '../../../core/schemas';
import {
  inbound, orchestratorHarness, sha256Hex as sha256,
} from '../../helpers/in-memory-ports';


function harness(config: Partial<OrchestratorConfig> = {}) {
  return orchestratorHarness(config);
}
type Harness = ReturnType<typeof harness>;

const resume = (usd: number): Resume => ({ v: 1, skills: ['sql-optimiser'], cost: { usd, p95_ms: 300 }, region: 'eu-central-1', accredit: [] });

/** Two agents with the skill (sql-a cheaper), one task whose only step went to sql-a. */
async function assignedToA(h: Harness, request: Record<string, unknown> = {}): Promise<Assignment> {
  expect(await h.service.onResume(inbound('agents/sql-a/resume', resume(0.01)))).toMatchObject({ status: 'accepted' });
  expect(await h.service.onResume(inbound('agents/sql-b/resume', resume(0.05)))).toMatchObject({ status: 'accepted' });
  await h.orchestrator.onRequest(inbound('clients/client-1/tasks/t1/request', {
    goal: 'write sql', input: { question: 'revenue?' }, want: ['sql'], skills: ['sql-optimiser'], cancelHash: sha256('secret-123'), ...request,
  }));
  const bid = { steps: [{ id: 'write', skill: 'sql-optimiser', consumes: ['question'], produces: ['sql'], estUsd: 0.01, estMs: 300 }] };
  await h.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-a', bid));
  await h.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-b', { decline: true, reason: 'no' }));
  return assignment(h, 'sql-a');
}

function assignment(h: Harness, agentId: string): Assignment {
  return Assignment.parse(h.publisher.last(`tasks/t1/assign/${agentId}`));
}

function output(a: Assignment, opts: { clientId?: string } = {}) {
  return inbound(`tasks/t1/output/${a.stepId}/${a.agentId}`, { taskId: a.taskId, stepId: a.stepId, epoch: a.epoch, token: a.token, ok: true, output: { sql: 'SELECT 1' } }, opts);
}

function status(h: Harness): TaskStatus {
  return TaskStatus.parse(h.publisher.retained.get('clients/client-1/tasks/t1/status'));
}

function notices(h: Harness, agentId: string): RejectNotice[] {
  return h.publisher.on(`agents/${agentId}/errors`).map((m) => RejectNotice.parse(m.payload));
}

const presence = (reason: string) =>
  inbound('$aws/events/presence/disconnected/sql-a', { clientId: 'sql-a', timestamp: 1_893_456_000_000, eventType: 'disconnected', disconnectReason: reason });

describe('failure paths through core', () => {
  describe('the assignee goes away', () => {
    it.each([
      ['its last will (retained offline status published by the broker)', (h: Harness) => h.service.onStatus(inbound('agents/sql-a/status', { state: 'offline', reason: 'last will' }))],
      ['its clean-disconnect status (published by the agent itself as it stops)', (h: Harness) => h.service.onStatus(inbound('agents/sql-a/status', { state: 'offline', reason: 'stopping' }, { clientId: 'sql-a' }))],
      ['an IoT lifecycle event for a lost connection', (h: Harness) => h.service.onPresence(presence('CONNECTION_LOST'))],
      ['an IoT lifecycle event for a clean disconnect (no will is sent then)', (h: Harness) => h.service.onPresence(presence('CLIENT_INITIATED_DISCONNECT'))],
      ['its résumé being cleared', (h: Harness) => h.service.onResume(inbound('agents/sql-a/resume', ''))],
    ])('re-assigns the step to another agent under a new epoch after %s, and fences the old assignee out', async (_route, goAway) => {
      const h = harness();
      const first = await assignedToA(h);
      expect(first.epoch).toBe(1);

      expect(await goAway(h)).toMatchObject({ status: 'accepted' });
      const second = assignment(h, 'sql-b');
      expect(second).toMatchObject({ stepId: first.stepId, epoch: 2 });
      expect(second.token).not.toBe(first.token);
      expect(status(h).plan?.steps[0]).toMatchObject({ state: 'assigned', agentId: 'sql-b', epoch: 2, attempts: 2 });
      expect(status(h).errors[0]).toMatchObject({ code: 'agent-gone', agentId: 'sql-a', stepId: first.stepId });

      // The old assignee finishes late: refused as stale-epoch, told on its errors topic.
      expect(await h.orchestrator.onOutput(output(first, { clientId: 'sql-a' }))).toMatchObject({ status: 'rejected', code: 'stale-epoch' });
      expect(notices(h, 'sql-a')).toEqual([expect.objectContaining({ code: 'stale-epoch', taskId: 't1', stepId: first.stepId })]);
      expect(await h.orchestrator.onOutput(output(second, { clientId: 'sql-b' }))).toMatchObject({ status: 'accepted' });
      expect(status(h).state).toBe('completed');
    });

    it('keeps the step with the agent when IoT Core closed an old session because the agent reconnected', async () => {
      const h = harness();
      await assignedToA(h);
      expect(await h.service.onPresence(presence('DUPLICATE_CLIENTID'))).toMatchObject({ status: 'ignored' });
      expect(h.publisher.on('tasks/t1/assign/sql-b')).toEqual([]);
      expect(status(h).plan?.steps[0]).toMatchObject({ agentId: 'sql-a', epoch: 1 });
    });

    it('keeps the step with a draining agent and lets it finish', async () => {
      const h = harness();
      const first = await assignedToA(h);
      expect(await h.service.onStatus(inbound('agents/sql-a/status', { state: 'draining' }))).toMatchObject({ status: 'accepted' });
      expect(h.publisher.on('tasks/t1/assign/sql-b')).toEqual([]);
      expect(await h.orchestrator.onOutput(output(first))).toMatchObject({ status: 'accepted' });
    });

    it('fails the task naming the step and the attempts once no agent is left', async () => {
      const h = harness({ maxAttempts: 2 });
      await assignedToA(h);
      await h.service.onStatus(inbound('agents/sql-a/status', { state: 'offline' }));
      await h.service.onStatus(inbound('agents/sql-b/status', { state: 'offline' }));
      const st = status(h);
      expect(st).toMatchObject({ state: 'failed', phase: 'done' });
      expect(st.plan?.steps[0]?.state).toBe('canceled');
      expect(st.errors.at(-1)).toMatchObject({ code: 'step-failed', stepId: 's1', message: expect.stringMatching(/step s1 \(sql-optimiser\) failed after 2 attempt\(s\)/) });
      expect(TaskResult.parse(h.publisher.retained.get('clients/client-1/tasks/t1/result')).reason).toMatch(/failed after 2 attempt/);
    });
  });

  describe('leases', () => {
    it('re-assigns on each expired lease and fails the task at the attempt limit with a reason naming the step and the attempts', async () => {
      const h = harness({ maxAttempts: 2, leaseMs: 10_000 });
      await assignedToA(h);
      h.clock.advance(10_000);
      for (const e of h.timer.takeDue(h.clock.now())) await h.orchestrator.onTimer(e);
      expect(assignment(h, 'sql-b').epoch).toBe(2);
      h.clock.advance(10_000);
      for (const e of h.timer.takeDue(h.clock.now())) await h.orchestrator.onTimer(e);
      const st = status(h);
      expect(st.state).toBe('failed');
      expect(st.errors.map((e) => e.code)).toEqual(['lease-expired', 'lease-expired', 'step-failed']);
      expect(st.errors.at(-1)?.message).toMatch(/step s1 \(sql-optimiser\) failed after 2 attempt\(s\); last error: agent sql-b did not answer step s1 within 10000 ms/);
    });
  });

  describe('deadlines', () => {
    const DEADLINE_MS = 10 * 60_000;

    it('puts the request\'s deadline on every assignment, as a field and as the MQTT message expiry, shrinking on re-assignment', async () => {
      const h = harness({ leaseMs: 60_000 });
      const deadline = new Date(h.clock.now() + DEADLINE_MS).toISOString();
      const first = await assignedToA(h, { constraints: { deadline } });
      expect(first.deadline).toBe(deadline);
      expect(h.publisher.on('tasks/t1/assign/sql-a')[0]?.messageExpirySec).toBe(DEADLINE_MS / 1000);

      h.clock.advance(60_000);
      for (const e of h.timer.takeDue(h.clock.now())) await h.orchestrator.onTimer(e);
      expect(assignment(h, 'sql-b').deadline).toBe(deadline);
      expect(h.publisher.on('tasks/t1/assign/sql-b')[0]?.messageExpirySec).toBe((DEADLINE_MS - 60_000) / 1000);
    });

    it('fails the task cleanly at the deadline, cancels its active steps, and refuses the late output with a notice', async () => {
      const h = harness();
      const deadline = new Date(h.clock.now() + DEADLINE_MS).toISOString();
      const first = await assignedToA(h, { constraints: { deadline } });
      const timer = h.timer.of('deadline', 't1')[0]!;
      expect(timer.dueAt).toBe(Date.parse(deadline));
      h.clock.set(timer.dueAt);
      expect(await h.orchestrator.onTimer(timer.event)).toMatchObject({ status: 'accepted' });
      const st = status(h);
      expect(st).toMatchObject({ state: 'failed', phase: 'done' });
      expect(st.plan?.steps.map((s) => s.state)).toEqual(['canceled']);
      expect(st.errors.at(-1)).toMatchObject({ code: 'deadline-passed' });
      expect(TaskResult.parse(h.publisher.retained.get('clients/client-1/tasks/t1/result'))).toMatchObject({ state: 'failed', reason: expect.stringMatching(/deadline passed/) });
      expect(await h.tasks.tasksAssignedTo('sql-a')).toEqual([]);

      expect(await h.orchestrator.onOutput(output(first, { clientId: 'sql-a' }))).toMatchObject({ status: 'rejected', code: 'invalid-state' });
      expect(notices(h, 'sql-a')[0]).toMatchObject({ code: 'invalid-state', message: expect.stringMatching(/is failed/) });
    });
  });

  describe('cancellation', () => {
    it('refuses the assignee\'s output after a cancel, telling it why', async () => {
      const h = harness();
      const first = await assignedToA(h);
      expect(await h.orchestrator.onCancel(inbound('clients/client-1/tasks/t1/cancel', { secret: 'secret-123' }, { clientId: 'client-1' }))).toMatchObject({ status: 'accepted' });
      expect(status(h).plan?.steps.map((s) => s.state)).toEqual(['canceled']);
      expect(await h.orchestrator.onOutput(output(first, { clientId: 'sql-a' }))).toMatchObject({ status: 'rejected', code: 'invalid-state' });
      expect(notices(h, 'sql-a')[0]?.message).toMatch(/is canceled/);
    });
  });

  describe('retention and TTL', () => {
    it('keeps the task item (TTL) beyond the retention clean-up, which clears every retained topic of the task', async () => {
      const h = harness({ retentionMs: 60_000 });
      const first = await assignedToA(h);
      await h.orchestrator.onOutput(output(first));
      const done = (await h.tasks.get('t1'))!;
      const retention = h.timer.of('retention', 't1')[0]!;
      expect(retention.dueAt).toBe(done.finishedAt! + 60_000);
      expect(done.expiresAt! * 1000).toBeGreaterThan(retention.dueAt);
      expect([...h.publisher.retained.keys()].filter((t) => t.includes('tasks/t1/')).sort()).toEqual([
        'clients/client-1/tasks/t1/output/s1', 'clients/client-1/tasks/t1/result', 'clients/client-1/tasks/t1/status', 'tasks/t1/status',
      ]);

      h.clock.set(retention.dueAt);
      expect(await h.orchestrator.onTimer(retention.event)).toMatchObject({ status: 'accepted' });
      const cleared = h.publisher.messages.filter((m) => m.payload === null && m.retain).map((m) => m.topic).sort();
      expect(cleared).toEqual(['clients/client-1/tasks/t1/output/s1', 'clients/client-1/tasks/t1/result', 'clients/client-1/tasks/t1/status', 'tasks/t1/status']);
      expect([...h.publisher.retained.keys()].filter((t) => t.startsWith('tasks/t1/'))).toEqual([]);
    });
  });
});
