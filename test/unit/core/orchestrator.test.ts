import { DEFAULT_ORCHESTRATOR_CONFIG, Orchestrator, type OrchestratorConfig } from '../../../core/orchestrator';
import type { OutboundMessage } from '../../../core/model';
import {
  AcceptedOutput, Assignment, MAX_PAYLOAD_BYTES, RejectNotice, TaskRequest, TaskResult, TaskStatus, type ProposedStep, type Resume,
} from '../../../core/schemas';
import { parseTopic } from '../../../core/topics';
import {
  inbound, orchestratorHarness, sha256Hex as sha256,
} from '../../helpers/in-memory-ports';

const SECRET = 'open-sesame-123';

function harness(config: Partial<OrchestratorConfig> = {}) {
  return orchestratorHarness(config);
}
type Harness = ReturnType<typeof harness>;

function resume(skills: string[], extra: Partial<Resume> = {}): Resume {
  return { v: 1, skills, cost: { usd: 0.02, p95_ms: 350 }, region: 'eu-central-1', accredit: [], ...extra };
}

async function register(h: Harness, agentId: string, skills: string[], extra: Partial<Resume> = {}): Promise<void> {
  await h.registry.putResume(agentId, resume(skills, extra), { verified: extra.accredit ?? [], unverified: [] }, h.clock.now());
}

function step(id: string, skill: string, consumes: string[], produces: string[], estUsd = 0.02, estMs = 300): ProposedStep {
  return { id, skill, consumes, produces, estUsd, estMs };
}

const SQL_STEP = step('write-sql', 'sql-optimiser', ['question'], ['sql']);
const CHART_STEP = step('draw', 'nl2chart', ['sql'], ['chart'], 0.03, 400);

function request(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    goal: 'chart monthly revenue',
    input: { question: 'revenue by month?' },
    want: ['chart'],
    skills: ['sql-optimiser', 'nl2chart'],
    cancelHash: sha256(SECRET),
    ...extra,
  };
}

async function submit(h: Harness, taskId = 't1', extra: Record<string, unknown> = {}) {
  return h.orchestrator.onRequest(inbound(`clients/client-1/tasks/${taskId}/request`, request(extra)));
}

async function propose(h: Harness, taskId: string, agentId: string, steps: ProposedStep[], opts: { clientId?: string } = {}) {
  return h.orchestrator.onProposal(inbound(`tasks/${taskId}/proposal/${agentId}`, { steps }, opts));
}

function assignmentOf(h: Harness, taskId: string, agentId: string): Assignment {
  const payload = h.publisher.last(`tasks/${taskId}/assign/${agentId}`);
  if (!payload) throw new Error(`no assignment for ${agentId} on ${taskId}`);
  return Assignment.parse(payload);
}

function outputMsg(a: Assignment, body: { ok: true; output: Record<string, unknown> } | { ok: false; error: { code: string; message: string; retryable?: boolean } }, opts: { clientId?: string; token?: string; epoch?: number } = {}) {
  // A pool step has no assignee in its assignment: whoever handles it hands in under its own id.
  return inbound(`tasks/${a.taskId}/output/${a.stepId}/${a.agentId ?? opts.clientId}`, {
    taskId: a.taskId, stepId: a.stepId, epoch: opts.epoch ?? a.epoch, token: opts.token ?? a.token, usage: { usd: 0.01, ms: 120 }, ...body,
  }, opts.clientId !== undefined ? { clientId: opts.clientId } : {});
}

function status(h: Harness, taskId = 't1'): TaskStatus {
  return TaskStatus.parse(h.publisher.retained.get(`clients/client-1/tasks/${taskId}/status`));
}

function notices(h: Harness, agentId: string): RejectNotice[] {
  return h.publisher.on(`agents/${agentId}/errors`).map((m) => RejectNotice.parse(m.payload));
}

function clientNotices(h: Harness, clientId: string): RejectNotice[] {
  return h.publisher.on(`clients/${clientId}/errors`).map((m) => RejectNotice.parse(m.payload));
}

/** Two agents, a task, both proposals in: the window closes early and s1 goes to sql-agent. */
async function planned(h: Harness, taskId = 't1'): Promise<void> {
  await register(h, 'sql-agent', ['sql-optimiser']);
  await register(h, 'chart-agent', ['nl2chart']);
  await submit(h, taskId);
  await propose(h, taskId, 'sql-agent', [SQL_STEP]);
  await propose(h, taskId, 'chart-agent', [CHART_STEP]);
}

/** Every message must be valid on the wire. */
function expectWireValid(messages: readonly OutboundMessage[]): void {
  for (const m of messages) {
    if (m.payload === null) continue;
    const parsed = parseTopic(m.topic);
    switch (parsed.kind) {
      case 'agent-errors': case 'client-errors': RejectNotice.parse(m.payload); break;
      case 'task-status': case 'client-status': TaskStatus.parse(m.payload); break;
      case 'client-result': TaskResult.parse(m.payload); break;
      case 'client-output': AcceptedOutput.parse(m.payload); break;
      case 'task-request': TaskRequest.parse(m.payload); break;
      case 'task-assign': case 'task-pool': Assignment.parse(m.payload); break;
      default: throw new Error(`unexpected topic ${m.topic}`);
    }
  }
}

describe('Orchestrator', () => {
  describe('happy path', () => {
    it('merges two agents\' proposals into one plan, assigns each step, and publishes the result when the wanted artifact exists', async () => {
      const h = harness();
      await planned(h);

      const first = status(h);
      expect(first.state).toBe('working');
      expect(first.plan?.steps.map((s) => [s.skill, s.proposedBy, s.state, s.agentId])).toEqual([
        ['sql-optimiser', 'sql-agent', 'assigned', 'sql-agent'],
        ['nl2chart', 'chart-agent', 'pending', undefined],
      ]);
      const a1 = assignmentOf(h, 't1', 'sql-agent');
      expect(a1).toMatchObject({ taskId: 't1', epoch: 1, skill: 'sql-optimiser', inputs: { question: 'revenue by month?' }, produces: ['sql'] });
      const assignMsg = h.publisher.on('tasks/t1/assign/sql-agent')[0]!;
      expect(assignMsg).toMatchObject({ qos: 1, retain: false });
      expect(assignMsg.messageExpirySec).toBe(DEFAULT_ORCHESTRATOR_CONFIG.defaultDeadlineMs / 1000);

      expect(await h.orchestrator.onOutput(outputMsg(a1, { ok: true, output: { sql: 'SELECT 1', extra: 'ignored' } }))).toMatchObject({ status: 'accepted' });
      const a2 = assignmentOf(h, 't1', 'chart-agent');
      expect(a2.inputs).toEqual({ sql: 'SELECT 1' });

      expect(await h.orchestrator.onOutput(outputMsg(a2, { ok: true, output: { chart: { mark: 'bar' } } }))).toMatchObject({ status: 'accepted' });
      const result = TaskResult.parse(h.publisher.retained.get('clients/client-1/tasks/t1/result'));
      expect(result).toMatchObject({ state: 'completed', outputs: { chart: { mark: 'bar' } }, usage: { usd: 0.02, ms: 240, steps: 2 } });
      const final = status(h);
      expect(final).toMatchObject({ state: 'completed', phase: 'done' });
      expect(final.version).toBeGreaterThan(first.version);
      expect(h.timer.of('retention', 't1')).toHaveLength(1);
      expectWireValid(h.publisher.messages);

      const stored = await h.tasks.get('t1');
      expect(stored?.outbox).toEqual([]);
      expect(stored?.artifacts).not.toHaveProperty('extra');
    });

    it('publishes the result before the final status so a watcher that sees "completed" can read it', async () => {
      const h = harness();
      await planned(h);
      await h.orchestrator.onOutput(outputMsg(assignmentOf(h, 't1', 'sql-agent'), { ok: true, output: { sql: 'q' } }));
      await h.orchestrator.onOutput(outputMsg(assignmentOf(h, 't1', 'chart-agent'), { ok: true, output: { chart: 1 } }));
      const topics = h.publisher.messages.map((m) => m.topic);
      expect(topics.lastIndexOf('clients/client-1/tasks/t1/result')).toBeLessThan(topics.lastIndexOf('clients/client-1/tasks/t1/status'));
    });
  });

  describe('request intake', () => {
    it('stores a submitted task, publishes its status and schedules the window and deadline timers', async () => {
      const h = harness();
      await register(h, 'sql-agent', ['sql-optimiser']);
      await register(h, 'other', ['translate']);
      const outcome = await submit(h);
      expect(outcome).toMatchObject({ status: 'accepted' });
      const task = await h.tasks.get('t1');
      expect(task).toMatchObject({ state: 'submitted', phase: 'collecting-proposals', eligibleAgents: ['sql-agent'], windowClosesAt: h.clock.now() + 2000 });
      expect(task?.expiresAt).toBe(Math.ceil((h.clock.now() + h.config.defaultDeadlineMs + h.config.retentionMs) / 1000));
      expect(status(h)).toMatchObject({ state: 'submitted', phase: 'collecting-proposals', version: 1 });
      expect(h.timer.of('proposal-window', 't1')[0]?.dueAt).toBe(h.clock.now() + 2000);
      expect(h.timer.of('deadline', 't1')[0]?.dueAt).toBe(h.clock.now() + h.config.defaultDeadlineMs);
    });

    it('leaves eligible agents empty without a skills hint, so only the timer closes the window', async () => {
      const h = harness();
      await register(h, 'sql-agent', ['sql-optimiser']);
      await submit(h, 't1', { skills: undefined });
      expect((await h.tasks.get('t1'))?.eligibleAgents).toEqual([]);
      await propose(h, 't1', 'sql-agent', [step('x', 'sql-optimiser', ['question'], ['chart'])]);
      expect(status(h).state).toBe('submitted');
    });

    it.each([
      ['malformed JSON', '{"goal": ', 'invalid-json', /not valid JSON/],
      ['a schema error', JSON.stringify({ goal: 'x', want: [] }), 'invalid-payload', /want/],
      ['an oversize payload', JSON.stringify({ goal: 'x'.repeat(MAX_PAYLOAD_BYTES), want: ['a'] }), 'payload-too-large', /limit is 131072/],
      ['data classes that need another topic root', JSON.stringify(request({ constraints: { dataClasses: ['phi'] } })), 'invalid-payload', /under patient-data\//],
      ['a deadline in the past', JSON.stringify(request({ constraints: { deadline: '2000-01-01T00:00:00Z' } })), 'invalid-payload', /already passed/],
    ])('rejects %s with a rejected status and result and stores nothing', async (_name, payload, code, message) => {
      const h = harness();
      const outcome = await h.orchestrator.onRequest(inbound('clients/client-1/tasks/t1/request', payload));
      expect(outcome).toMatchObject({ status: 'rejected', code });
      expect(h.tasks.size).toBe(0);
      const st = status(h);
      expect(st).toMatchObject({ state: 'rejected', phase: 'done' });
      expect(st.errors[0]?.code).toBe(code);
      expect(st.errors[0]?.message).toMatch(message);
      expect(TaskResult.parse(h.publisher.retained.get('clients/client-1/tasks/t1/result'))).toMatchObject({ state: 'rejected' });
      expect(h.timer.scheduled).toEqual([]);
      expect(h.publisher.messages.map((m) => m.topic).sort()).toEqual(['clients/client-1/tasks/t1/result', 'clients/client-1/tasks/t1/status']);
    });

    it('rejects a phi request under patient-data/ only when the topic root is wrong', async () => {
      const h = harness();
      const ok = await h.orchestrator.onRequest(inbound('clients/client-1/patient-data/p1/request', request({ constraints: { dataClasses: ['phi'] } })));
      expect(ok).toMatchObject({ status: 'accepted' });
      expect((await h.tasks.get('p1'))?.taskRoot).toBe('patient-data');
      expect(h.publisher.retained.get('clients/client-1/patient-data/p1/status')).toBeDefined();
      const bad = await h.orchestrator.onRequest(inbound('clients/client-1/patient-data/p2/request', request()));
      expect(bad).toMatchObject({ status: 'rejected', code: 'invalid-payload', message: expect.stringMatching(/under tasks\//) });
    });

    it('rejects an invalid task id in the topic without publishing to any task topic', async () => {
      const h = harness();
      const outcome = await h.orchestrator.onRequest(inbound('tasks/bad id!/request', request()));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'invalid-topic' });
      expect(h.publisher.messages).toEqual([]);
    });

    it('treats a redelivered identical request as a duplicate and changes nothing', async () => {
      const h = harness();
      await submit(h);
      const before = await h.tasks.get('t1');
      const published = h.publisher.messages.length;
      expect(await submit(h)).toMatchObject({ status: 'duplicate' });
      expect(await h.tasks.get('t1')).toEqual(before);
      expect(h.publisher.messages).toHaveLength(published);
    });

    it('refuses a different request with an existing id without touching the existing task or its status', async () => {
      const h = harness();
      await submit(h);
      const before = await h.tasks.get('t1');
      const statusBefore = h.publisher.retained.get('clients/client-1/tasks/t1/status');
      const outcome = await h.orchestrator.onRequest(inbound('clients/client-7/tasks/t1/request', request({ goal: 'something else' }), { clientId: 'client-7' }));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'duplicate-task' });
      expect(await h.tasks.get('t1')).toEqual(before);
      expect(h.publisher.retained.get('clients/client-1/tasks/t1/status')).toEqual(statusBefore);
      expect(h.publisher.on('clients/client-7/tasks/#')).toEqual([]);
      expect(clientNotices(h, 'client-7')[0]).toMatchObject({ code: 'duplicate-task', taskId: 't1' });
    });

    it('does not overwrite a live task\'s status with the rejection of a malformed request for the same id', async () => {
      const h = harness();
      await submit(h);
      const statusBefore = h.publisher.retained.get('clients/client-1/tasks/t1/status');
      expect(await h.orchestrator.onRequest(inbound('clients/client-1/tasks/t1/request', 'not json'))).toMatchObject({ status: 'rejected', code: 'duplicate-task' });
      expect(h.publisher.retained.get('clients/client-1/tasks/t1/status')).toEqual(statusBefore);
    });
  });

  describe('proposals', () => {
    it('closes the window early and plans once every eligible agent has answered', async () => {
      const h = harness();
      await register(h, 'sql-agent', ['sql-optimiser']);
      await register(h, 'chart-agent', ['nl2chart']);
      await submit(h);
      expect(await propose(h, 't1', 'sql-agent', [SQL_STEP])).toMatchObject({ status: 'accepted' });
      expect(status(h).state).toBe('submitted');
      const outcome = await propose(h, 't1', 'chart-agent', [CHART_STEP]);
      expect(outcome).toMatchObject({ status: 'accepted', detail: expect.stringMatching(/closed early/) });
      expect(status(h).state).toBe('working');
    });

    it('counts a decline as an answer', async () => {
      const h = harness();
      await register(h, 'sql-agent', ['sql-optimiser', 'nl2chart']);
      await register(h, 'chart-agent', ['nl2chart']);
      await submit(h);
      await propose(h, 't1', 'sql-agent', [SQL_STEP, step('draw', 'nl2chart', ['sql'], ['chart'])]);
      await h.orchestrator.onProposal(inbound('tasks/t1/proposal/chart-agent', { decline: true, reason: 'busy' }));
      expect(status(h).state).toBe('working');
    });

    it('plans when the window timer fires if an eligible agent never answered', async () => {
      const h = harness();
      await register(h, 'sql-agent', ['sql-optimiser', 'nl2chart']);
      await register(h, 'silent', ['nl2chart']);
      await submit(h);
      await propose(h, 't1', 'sql-agent', [SQL_STEP, step('draw', 'nl2chart', ['sql'], ['chart'])]);
      expect(status(h).state).toBe('submitted');
      h.clock.advance(2000);
      const [event] = h.timer.takeDue(h.clock.now());
      expect(await h.orchestrator.onTimer(event!)).toMatchObject({ status: 'accepted' });
      expect(status(h).state).toBe('working');
      expect(await h.orchestrator.onTimer(event!)).toMatchObject({ status: 'ignored' });
    });

    it('re-schedules a window timer that fires early', async () => {
      const h = harness();
      await submit(h);
      const due = h.timer.of('proposal-window', 't1')[0]!.dueAt;
      h.clock.advance(500);
      expect(await h.orchestrator.onTimer({ kind: 'proposal-window', taskId: 't1' })).toMatchObject({ status: 'ignored', detail: expect.stringMatching(/early/) });
      expect(h.timer.of('proposal-window', 't1').map((t) => t.dueAt)).toEqual([due, due]);
      expect(status(h).state).toBe('submitted');
    });

    it('fails the task with the planner\'s reasons when no plan exists', async () => {
      const h = harness();
      await register(h, 'sql-agent', ['sql-optimiser']);
      await submit(h, 't1', { skills: ['sql-optimiser'] });
      await propose(h, 't1', 'sql-agent', [SQL_STEP]);
      const st = status(h);
      expect(st).toMatchObject({ state: 'failed', phase: 'done' });
      expect(st.errors[0]).toMatchObject({ code: 'unsatisfiable', message: expect.stringMatching(/chart/) });
      expect(TaskResult.parse(h.publisher.retained.get('clients/client-1/tasks/t1/result'))).toMatchObject({ state: 'failed', reason: expect.stringMatching(/no plan/) });
    });

    it('rejects a proposal whose client id is not the agent in the topic, telling the publisher', async () => {
      const h = harness();
      await planned(h, 't0');
      await register(h, 'victim', ['sql-optimiser']);
      await submit(h, 't2');
      const outcome = await propose(h, 't2', 'victim', [SQL_STEP], { clientId: 'mallory' });
      expect(outcome).toMatchObject({ status: 'rejected', code: 'not-authorized' });
      expect(notices(h, 'mallory')[0]).toMatchObject({ code: 'not-authorized', taskId: 't2' });
      expect(notices(h, 'victim')).toEqual([]);
      expect(await h.tasks.listProposals('t2')).toEqual([]);
    });

    it('accepts a proposal whose client id is the agent', async () => {
      const h = harness();
      await submit(h);
      expect(await propose(h, 't1', 'sql-agent', [SQL_STEP], { clientId: 'sql-agent' })).toMatchObject({ status: 'accepted' });
    });

    it('tells the agent about an unknown task', async () => {
      const h = harness();
      expect(await propose(h, 'nope', 'sql-agent', [SQL_STEP])).toMatchObject({ status: 'rejected', code: 'unknown-task' });
      expect(notices(h, 'sql-agent')[0]).toMatchObject({ code: 'unknown-task', taskId: 'nope', topic: 'tasks/nope/proposal/sql-agent' });
    });

    it.each([
      ['malformed JSON', '{', 'invalid-json'],
      ['a schema error', JSON.stringify({ steps: [{ id: 'a' }] }), 'invalid-payload'],
      ['a cyclic DAG', JSON.stringify({ steps: [step('a', 'x', ['q2'], ['q1']), step('b', 'x', ['q1'], ['q2'])] }), 'cyclic-dag'],
      ['an invalid DAG', JSON.stringify({ steps: [step('a', 'x', ['q'], ['r']), step('a', 'x', ['q'], ['s'])] }), 'invalid-dag'],
    ])('rejects %s with a specific notice and stores nothing', async (_name, payload, code) => {
      const h = harness();
      await submit(h);
      expect(await h.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-agent', payload))).toMatchObject({ status: 'rejected', code });
      expect(notices(h, 'sql-agent')[0]?.code).toBe(code);
      expect(await h.tasks.listProposals('t1')).toEqual([]);
    });

    it('rejects a proposal after the window closed with invalid-state', async () => {
      const h = harness();
      await planned(h);
      await register(h, 'late', ['nl2chart']);
      expect(await propose(h, 't1', 'late', [CHART_STEP])).toMatchObject({ status: 'rejected', code: 'invalid-state' });
      expect(notices(h, 'late')[0]?.message).toMatch(/window of task t1 has closed/);
    });

    it('treats a redelivered proposal as a duplicate, before and after the window closed', async () => {
      const h = harness();
      await register(h, 'sql-agent', ['sql-optimiser']);
      await register(h, 'chart-agent', ['nl2chart']);
      await submit(h);
      await propose(h, 't1', 'sql-agent', [SQL_STEP]);
      expect(await propose(h, 't1', 'sql-agent', [SQL_STEP])).toMatchObject({ status: 'duplicate' });
      await propose(h, 't1', 'chart-agent', [CHART_STEP]);
      const before = await h.tasks.get('t1');
      const published = h.publisher.messages.length;
      expect(await propose(h, 't1', 'chart-agent', [CHART_STEP])).toMatchObject({ status: 'duplicate' });
      expect(await h.tasks.get('t1')).toEqual(before);
      expect(h.publisher.messages).toHaveLength(published);
    });

    it('closes the window on a redelivered last proposal when planning failed the first time', async () => {
      const h = harness();
      await register(h, 'sql-agent', ['sql-optimiser']);
      await register(h, 'chart-agent', ['nl2chart']);
      await submit(h);
      await propose(h, 't1', 'sql-agent', [SQL_STEP]);
      const findBySkill = h.registry.findBySkill.bind(h.registry);
      h.registry.findBySkill = async () => { throw new Error('registry unavailable (injected)'); };
      await expect(propose(h, 't1', 'chart-agent', [CHART_STEP])).rejects.toThrow(/registry unavailable/);
      expect(status(h).state).toBe('submitted');
      h.registry.findBySkill = findBySkill;
      expect(await propose(h, 't1', 'chart-agent', [CHART_STEP])).toMatchObject({ status: 'duplicate', detail: expect.stringMatching(/closed early/) });
      expect(status(h).state).toBe('working');
    });

    it('rejects a proposal published under the wrong topic root', async () => {
      const h = harness();
      await submit(h);
      expect(await h.orchestrator.onProposal(inbound('patient-data/t1/proposal/sql-agent', { steps: [SQL_STEP] }))).toMatchObject({ status: 'rejected', code: 'invalid-topic' });
    });
  });

  describe('outputs', () => {
    it('rejects an output from a superseded epoch and tells that epoch\'s assignee', async () => {
      const h = harness();
      await planned(h);
      await register(h, 'sql-b', ['sql-optimiser']);
      const a1 = assignmentOf(h, 't1', 'sql-agent');
      h.clock.advance(h.config.leaseMs);
      await h.orchestrator.onTimer({ kind: 'lease', taskId: 't1', stepId: a1.stepId, epoch: 1 });
      const a2 = assignmentOf(h, 't1', 'sql-b');
      expect(a2.epoch).toBe(2);
      const outcome = await h.orchestrator.onOutput(outputMsg(a1, { ok: true, output: { sql: 'late' } }));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'stale-epoch' });
      expect(notices(h, 'sql-agent').at(-1)).toMatchObject({ code: 'stale-epoch', stepId: a1.stepId });
      expect((await h.tasks.get('t1'))?.artifacts).not.toHaveProperty('sql');
    });

    it('rejects an output with the wrong token and tells the assignee', async () => {
      const h = harness();
      await planned(h);
      const a1 = assignmentOf(h, 't1', 'sql-agent');
      const before = await h.tasks.get('t1');
      const outcome = await h.orchestrator.onOutput(outputMsg(a1, { ok: true, output: { sql: 'x' } }, { token: 'forged-token-0000000000' }));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'bad-token' });
      expect(notices(h, 'sql-agent')[0]?.code).toBe('bad-token');
      expect(await h.tasks.get('t1')).toEqual(before);
    });

    it('rejects an output whose client id is not the assignee', async () => {
      const h = harness();
      await planned(h);
      const a1 = assignmentOf(h, 't1', 'sql-agent');
      const outcome = await h.orchestrator.onOutput(outputMsg(a1, { ok: true, output: { sql: 'x' } }, { clientId: 'chart-agent' }));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'not-authorized' });
      expect(notices(h, 'chart-agent')[0]?.code).toBe('not-authorized');
      expect(await h.orchestrator.onOutput(outputMsg(a1, { ok: true, output: { sql: 'x' } }, { clientId: 'sql-agent' }))).toMatchObject({ status: 'accepted' });
    });

    it('treats a redelivered output as a duplicate and publishes nothing', async () => {
      const h = harness();
      await planned(h);
      const a1 = assignmentOf(h, 't1', 'sql-agent');
      await h.orchestrator.onOutput(outputMsg(a1, { ok: true, output: { sql: 'x' } }));
      const before = await h.tasks.get('t1');
      const published = h.publisher.messages.length;
      expect(await h.orchestrator.onOutput(outputMsg(a1, { ok: true, output: { sql: 'x' } }))).toMatchObject({ status: 'duplicate' });
      expect(await h.tasks.get('t1')).toEqual(before);
      expect(h.publisher.messages).toHaveLength(published);
    });

    it('ignores an empty payload (a cleared retained output)', async () => {
      const h = harness();
      await planned(h);
      expect(await h.orchestrator.onOutput(inbound('tasks/t1/output/s1/sql-agent', ''))).toMatchObject({ status: 'ignored' });
    });

    it.each([
      ['malformed JSON', '{{', 'invalid-json'],
      ['a schema error', JSON.stringify({ ok: true }), 'invalid-payload'],
    ])('rejects %s and tells the step\'s assignee', async (_name, payload, code) => {
      const h = harness();
      await planned(h);
      const a1 = assignmentOf(h, 't1', 'sql-agent');
      expect(await h.orchestrator.onOutput(inbound(`tasks/t1/output/${a1.stepId}/${a1.agentId}`, payload))).toMatchObject({ status: 'rejected', code });
      expect(notices(h, 'sql-agent')[0]?.code).toBe(code);
    });

    it('rejects an output for an unknown task', async () => {
      const h = harness();
      const fake = { taskId: 'ghost', stepId: 's1', epoch: 1, token: 'x'.repeat(20), ok: true, output: {} };
      expect(await h.orchestrator.onOutput(inbound('tasks/ghost/output/s1/sql-agent', fake, { clientId: 'sql-agent' }))).toMatchObject({ status: 'rejected', code: 'unknown-task' });
      expect(notices(h, 'sql-agent')[0]?.code).toBe('unknown-task');
    });

    it('re-assigns an error output to the next best agent, then fails the task at the attempt limit', async () => {
      const h = harness({ maxAttempts: 2 });
      await planned(h);
      await register(h, 'sql-b', ['sql-optimiser']);
      const a1 = assignmentOf(h, 't1', 'sql-agent');
      expect(await h.orchestrator.onOutput(outputMsg(a1, { ok: false, error: { code: 'boom', message: 'database down' } }))).toMatchObject({ status: 'accepted' });
      const a2 = assignmentOf(h, 't1', 'sql-b');
      expect(a2).toMatchObject({ stepId: a1.stepId, epoch: 2 });
      expect(a2.token).not.toBe(a1.token);
      expect(status(h).plan?.steps[0]).toMatchObject({ agentId: 'sql-b', attempts: 2, epoch: 2 });

      await h.orchestrator.onOutput(outputMsg(a2, { ok: false, error: { code: 'boom', message: 'still down' } }));
      const st = status(h);
      expect(st.state).toBe('failed');
      expect(st.errors.at(-1)?.message).toMatch(/failed after 2 attempt\(s\); last error: still down/);
      expect(TaskResult.parse(h.publisher.retained.get('clients/client-1/tasks/t1/result'))).toMatchObject({ state: 'failed', usage: { usd: 0.02, steps: 0 } });
      expect(h.publisher.on('tasks/t1/assign/sql-agent')).toHaveLength(1);
    });

    it('fails the task at once on a non-retryable error', async () => {
      const h = harness();
      await planned(h);
      await register(h, 'sql-b', ['sql-optimiser']);
      await h.orchestrator.onOutput(outputMsg(assignmentOf(h, 't1', 'sql-agent'), { ok: false, error: { code: 'bad-input', message: 'question is nonsense', retryable: false } }));
      expect(status(h).state).toBe('failed');
      expect(h.publisher.on('tasks/t1/assign/sql-b')).toEqual([]);
    });

    it('treats an output missing a declared artifact as an error output', async () => {
      const h = harness();
      await planned(h);
      await register(h, 'sql-b', ['sql-optimiser']);
      await h.orchestrator.onOutput(outputMsg(assignmentOf(h, 't1', 'sql-agent'), { ok: true, output: { wrong: 1 } }));
      expect(status(h).errors[0]).toMatchObject({ code: 'missing-artifact', message: expect.stringMatching(/lacks declared artifact\(s\) sql/) });
      expect(assignmentOf(h, 't1', 'sql-b').epoch).toBe(2);
    });

    it('treats a redelivered error output as a duplicate', async () => {
      const h = harness();
      await planned(h);
      await register(h, 'sql-b', ['sql-optimiser']);
      const msg = outputMsg(assignmentOf(h, 't1', 'sql-agent'), { ok: false, error: { code: 'boom', message: 'x' } });
      await h.orchestrator.onOutput(msg);
      const before = await h.tasks.get('t1');
      const published = h.publisher.messages.length;
      expect(await h.orchestrator.onOutput(msg)).toMatchObject({ status: 'duplicate' });
      expect(await h.tasks.get('t1')).toEqual(before);
      expect(h.publisher.messages).toHaveLength(published);
    });

    it('fails the task naming the exclusions when no agent is left for a step', async () => {
      const h = harness();
      await planned(h);
      await h.orchestrator.onOutput(outputMsg(assignmentOf(h, 't1', 'sql-agent'), { ok: false, error: { code: 'boom', message: 'x' } }));
      const st = status(h);
      expect(st.state).toBe('failed');
      expect(st.errors.at(-1)).toMatchObject({ code: 'no-agent', message: expect.stringMatching(/sql-agent: excluded/) });
    });
  });

  describe('leases', () => {
    it('re-assigns a step whose lease ran out, excluding the silent agent', async () => {
      const h = harness();
      await planned(h);
      await register(h, 'sql-b', ['sql-optimiser']);
      const lease = h.timer.of('lease', 't1')[0]!;
      expect(lease.dueAt).toBe(h.clock.now() + h.config.leaseMs);
      h.clock.set(lease.dueAt);
      expect(await h.orchestrator.onTimer(lease.event)).toMatchObject({ status: 'accepted' });
      expect(assignmentOf(h, 't1', 'sql-b').epoch).toBe(2);
      expect(status(h).errors[0]).toMatchObject({ code: 'lease-expired', agentId: 'sql-agent' });
      expect(h.timer.of('lease', 't1').map((t) => (t.event as { epoch: number }).epoch)).toEqual([1, 2]);
      expect(await h.orchestrator.onTimer(lease.event)).toMatchObject({ status: 'ignored' });
    });

    it('ignores the lease timer of an epoch that already completed', async () => {
      const h = harness();
      await planned(h);
      const a1 = assignmentOf(h, 't1', 'sql-agent');
      await h.orchestrator.onOutput(outputMsg(a1, { ok: true, output: { sql: 'x' } }));
      h.clock.advance(h.config.leaseMs);
      expect(await h.orchestrator.onTimer({ kind: 'lease', taskId: 't1', stepId: a1.stepId, epoch: 1 })).toMatchObject({ status: 'ignored' });
    });

    it('re-schedules a lease timer that fires early', async () => {
      const h = harness();
      await planned(h);
      const lease = h.timer.of('lease', 't1')[0]!;
      expect(await h.orchestrator.onTimer(lease.event)).toMatchObject({ status: 'ignored', detail: expect.stringMatching(/early/) });
      expect(h.timer.of('lease', 't1')).toHaveLength(2);
    });
  });

  describe('agent gone', () => {
    it('re-assigns the live steps of an agent that went offline with a new epoch', async () => {
      const h = harness();
      await planned(h);
      await register(h, 'sql-b', ['sql-optimiser']);
      await h.registry.setStatus('sql-agent', { v: 1, state: 'offline' }, h.clock.now());
      await h.orchestrator.onAgentGone('sql-agent', 'connection lost');
      expect(assignmentOf(h, 't1', 'sql-b').epoch).toBe(2);
      expect(status(h).errors[0]).toMatchObject({ code: 'agent-gone', message: expect.stringMatching(/connection lost/) });
      const published = h.publisher.messages.length;
      await h.orchestrator.onAgentGone('sql-agent', 'connection lost');
      expect(h.publisher.messages).toHaveLength(published);
    });
  });

  describe('cancel', () => {
    it('refuses a cancel for a task submitted without cancelHash', async () => {
      const h = harness();
      await submit(h, 't1', { cancelHash: undefined });
      const outcome = await h.orchestrator.onCancel(inbound('clients/client-1/tasks/t1/cancel', { secret: SECRET }, { clientId: 'client-1' }));
      expect(outcome).toMatchObject({ status: 'rejected', code: 'not-authorized', message: expect.stringMatching(/submitted without cancelHash/) });
      expect(clientNotices(h, 'client-1')[0]?.code).toBe('not-authorized');
      expect(status(h).state).toBe('submitted');
    });

    it('refuses a cancel with the wrong secret', async () => {
      const h = harness();
      await planned(h);
      const before = await h.tasks.get('t1');
      expect(await h.orchestrator.onCancel(inbound('clients/client-1/tasks/t1/cancel', { secret: 'wrong-secret' }))).toMatchObject({ status: 'rejected', code: 'not-authorized' });
      expect(await h.tasks.get('t1')).toEqual(before);
    });

    it('refuses a malformed cancel and a cancel for an unknown task', async () => {
      const h = harness();
      expect(await h.orchestrator.onCancel(inbound('clients/client-1/tasks/t1/cancel', { secret: 'x' }))).toMatchObject({ status: 'rejected', code: 'invalid-payload' });
      expect(await h.orchestrator.onCancel(inbound('clients/client-1/tasks/t1/cancel', { secret: SECRET }))).toMatchObject({ status: 'rejected', code: 'unknown-task' });
    });

    it('cancels the task and every active step with the right secret; a repeat is a duplicate', async () => {
      const h = harness();
      await planned(h);
      const outcome = await h.orchestrator.onCancel(inbound('clients/client-1/tasks/t1/cancel', { secret: SECRET, reason: 'changed my mind' }));
      expect(outcome).toMatchObject({ status: 'accepted' });
      const st = status(h);
      expect(st.state).toBe('canceled');
      expect(st.plan?.steps.map((s) => s.state)).toEqual(['canceled', 'canceled']);
      expect(TaskResult.parse(h.publisher.retained.get('clients/client-1/tasks/t1/result'))).toMatchObject({ state: 'canceled', reason: 'canceled by the client: changed my mind' });
      const published = h.publisher.messages.length;
      expect(await h.orchestrator.onCancel(inbound('clients/client-1/tasks/t1/cancel', { secret: SECRET, reason: 'changed my mind' }))).toMatchObject({ status: 'duplicate' });
      expect(h.publisher.messages).toHaveLength(published);
      const a1 = assignmentOf(h, 't1', 'sql-agent');
      expect(await h.orchestrator.onOutput(outputMsg(a1, { ok: true, output: { sql: 'x' } }))).toMatchObject({ status: 'rejected', code: 'invalid-state' });
    });

    it('refuses every cancel when wired without a sha256 function', async () => {
      const h = harness();
      const orchestrator = new Orchestrator({ tasks: h.tasks, registry: h.registry, publisher: h.publisher, timer: h.timer, clock: h.clock, fencer: h.fencer, config: h.config });
      await submit(h);
      expect(await orchestrator.onCancel(inbound('clients/client-1/tasks/t1/cancel', { secret: SECRET }))).toMatchObject({ status: 'rejected', code: 'config' });
    });
  });

  describe('deadline', () => {
    it('fails a live task when the deadline passes and cancels its active steps', async () => {
      const h = harness();
      await planned(h);
      const deadline = h.timer.of('deadline', 't1')[0]!;
      h.clock.set(deadline.dueAt);
      expect(await h.orchestrator.onTimer(deadline.event)).toMatchObject({ status: 'accepted' });
      const st = status(h);
      expect(st).toMatchObject({ state: 'failed' });
      expect(st.errors.at(-1)).toMatchObject({ code: 'deadline-passed', message: expect.stringMatching(/deadline passed/) });
      expect(st.plan?.steps.map((s) => s.state)).toEqual(['canceled', 'canceled']);
      expect(await h.orchestrator.onTimer(deadline.event)).toMatchObject({ status: 'ignored' });
    });

    it('ignores the deadline of a task that already completed', async () => {
      const h = harness();
      await register(h, 'sql-agent', ['sql-optimiser']);
      await submit(h, 't1', { want: ['sql'], skills: ['sql-optimiser'] });
      await propose(h, 't1', 'sql-agent', [SQL_STEP]);
      await h.orchestrator.onOutput(outputMsg(assignmentOf(h, 't1', 'sql-agent'), { ok: true, output: { sql: 'x' } }));
      h.clock.advance(h.config.defaultDeadlineMs);
      expect(await h.orchestrator.onTimer({ kind: 'deadline', taskId: 't1' })).toMatchObject({ status: 'ignored' });
      expect(status(h).state).toBe('completed');
    });
  });

  describe('retention', () => {
    it('clears the status, result and output topics once retention is over, once', async () => {
      const h = harness();
      await register(h, 'sql-agent', ['sql-optimiser']);
      await submit(h, 't1', { want: ['sql'], skills: ['sql-optimiser'] });
      await propose(h, 't1', 'sql-agent', [SQL_STEP]);
      const a = assignmentOf(h, 't1', 'sql-agent');
      await h.orchestrator.onOutput(outputMsg(a, { ok: true, output: { sql: 'x' } }));
      const retention = h.timer.of('retention', 't1')[0]!;
      expect(retention.dueAt).toBe(h.clock.now() + h.config.retentionMs);

      expect(await h.orchestrator.onTimer(retention.event)).toMatchObject({ status: 'ignored', detail: expect.stringMatching(/early/) });
      h.clock.set(retention.dueAt);
      expect(await h.orchestrator.onTimer(retention.event)).toMatchObject({ status: 'accepted' });
      const clears = h.publisher.messages.filter((m) => m.payload === null);
      expect(clears.map((m) => [m.topic, m.retain])).toEqual([
        [`clients/client-1/tasks/t1/output/${a.stepId}`, true], ['clients/client-1/tasks/t1/result', true], ['clients/client-1/tasks/t1/status', true],
        ['tasks/t1/status', true],
      ]);
      expect(h.publisher.retained.has('clients/client-1/tasks/t1/status')).toBe(false);
      const published = h.publisher.messages.length;
      expect(await h.orchestrator.onTimer(retention.event)).toMatchObject({ status: 'ignored' });
      expect(h.publisher.messages).toHaveLength(published);
    });
  });

  describe('concurrency', () => {
    it('reloads and re-applies when a save loses a version race', async () => {
      const h = harness();
      await planned(h);
      const a1 = assignmentOf(h, 't1', 'sql-agent');
      h.tasks.conflictOnNextSave();
      expect(await h.orchestrator.onOutput(outputMsg(a1, { ok: true, output: { sql: 'x' } }))).toMatchObject({ status: 'accepted' });
      expect(h.logs.some((l) => l.msg.includes('version conflict'))).toBe(true);
      expect(assignmentOf(h, 't1', 'chart-agent').epoch).toBe(1);
      expect((await h.tasks.get('t1'))?.steps[a1.stepId]?.state).toBe('completed');
    });

    it('gives up after repeated conflicts and leaves the retry to the caller', async () => {
      const h = harness();
      await planned(h);
      h.tasks.conflictOnNextSave(10);
      await expect(h.orchestrator.onOutput(outputMsg(assignmentOf(h, 't1', 'sql-agent'), { ok: true, output: { sql: 'x' } }))).rejects.toThrow(/version/);
    });
  });

  describe('outbox and sweeper', () => {
    it('keeps unpublished messages in the outbox when the broker fails, and the sweeper flushes them', async () => {
      const h = harness();
      await planned(h);
      const a1 = assignmentOf(h, 't1', 'sql-agent');
      h.publisher.failNext(1, (m) => m.topic.includes('/assign/'));
      expect(await h.orchestrator.onOutput(outputMsg(a1, { ok: true, output: { sql: 'x' } }))).toMatchObject({ status: 'accepted' });
      expect(h.publisher.on('tasks/t1/assign/chart-agent')).toEqual([]);
      const stored = await h.tasks.get('t1');
      expect(stored?.outbox.map((m) => m.topic)).toEqual(['tasks/t1/assign/chart-agent', 'clients/client-1/tasks/t1/status']);

      expect(await h.orchestrator.sweep()).toEqual({ examined: 1, advanced: 1 });
      expect(assignmentOf(h, 't1', 'chart-agent').epoch).toBe(1);
      expect((await h.tasks.get('t1'))?.outbox).toEqual([]);
      expect(status(h).plan?.steps[1]?.state).toBe('assigned');
    });

    it('closes a due window the timer never delivered', async () => {
      const h = harness();
      await register(h, 'sql-agent', ['sql-optimiser', 'nl2chart']);
      h.timer.failNext(2);
      await submit(h, 't1', { skills: undefined });
      expect(h.timer.scheduled).toEqual([]);
      await propose(h, 't1', 'sql-agent', [SQL_STEP, step('draw', 'nl2chart', ['sql'], ['chart'])]);
      expect(await h.orchestrator.sweep()).toEqual({ examined: 0, advanced: 0 });
      h.clock.advance(2000);
      expect(await h.orchestrator.sweep()).toEqual({ examined: 1, advanced: 1 });
      expect(status(h).state).toBe('working');
    });

    it('publishes the outbox of a task whose first delivery stopped after the save, on redelivery', async () => {
      const h = harness();
      h.publisher.failNext(1);
      await submit(h);
      expect(h.publisher.messages).toEqual([]);
      expect(await submit(h)).toMatchObject({ status: 'duplicate' });
      expect(status(h).state).toBe('submitted');
      expect((await h.tasks.get('t1'))?.outbox).toEqual([]);
    });
  });
});
