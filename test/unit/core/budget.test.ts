/**
 * Budgets hold at run time, through core: what agents report they spent accumulates per task; a
 * step that would take the spend (plus what is running) past the request's `maxUsd` is not
 * dispatched and the task fails saying why, cancelling what is active; an agent that reports more
 * than it bid is flagged in the task's errors.
 */
import { Assignment, TaskResult, TaskStatus, type Resume } from '../../../core/schemas';
import { spentUsd } from '../../../core/task-machine';
import { inbound, orchestratorHarness } from '../../helpers/in-memory-ports';

type Harness = ReturnType<typeof orchestratorHarness>;

const resume = (skill: string): Resume => ({ v: 1, skills: [skill], cost: { usd: 0.01, p95_ms: 100 }, region: 'eu-central-1', accredit: [] });
const step = (id: string, skill: string, consumes: string[], produces: string[], estUsd: number) => ({ id, skill, consumes, produces, estUsd, estMs: 100 });

/** sql (est $0.02) → chart (est $0.02); a parallel 'notes' step (est $0.01) from the same input. */
async function planned(h: Harness, maxUsd: number, parallel = false): Promise<void> {
  for (const [agentId, skill] of [['sql-bot', 'sql'], ['chart-bot', 'chart'], ['notes-bot', 'notes']] as const) {
    await h.service.onResume(inbound(`agents/${agentId}/resume`, resume(skill)));
  }
  const want = parallel ? ['chart', 'notes'] : ['chart'];
  await h.orchestrator.onRequest(inbound('clients/client-1/tasks/t1/request', {
    goal: 'chart it', input: { question: 'q' }, want, skills: ['sql', 'chart', 'notes'], constraints: { maxUsd },
  }));
  await h.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-bot', { steps: [step('w', 'sql', ['question'], ['sql'], 0.02)] }));
  await h.orchestrator.onProposal(inbound('tasks/t1/proposal/chart-bot', { steps: [step('d', 'chart', ['sql'], ['chart'], 0.02)] }));
  await h.orchestrator.onProposal(inbound('tasks/t1/proposal/notes-bot', { steps: [step('n', 'notes', ['question'], ['notes'], 0.01)] }));
}

function assignment(h: Harness, agentId: string): Assignment {
  return Assignment.parse(h.publisher.last(`tasks/t1/assign/${agentId}`));
}

function output(a: Assignment, artifact: string, usd: number) {
  return inbound(`tasks/t1/output/${a.stepId}/${a.agentId}`, {
    taskId: 't1', stepId: a.stepId, epoch: a.epoch, token: a.token, ok: true, output: { [artifact]: 'x' }, usage: { usd, ms: 10 },
  });
}

const status = (h: Harness) => TaskStatus.parse(h.publisher.retained.get('clients/client-1/tasks/t1/status'));
const result = (h: Harness) => TaskResult.parse(h.publisher.retained.get('clients/client-1/tasks/t1/result'));

describe('budgets at run time', () => {
  it('completes a task whose agents report what they bid, within the budget, with no flag', async () => {
    const h = orchestratorHarness();
    await planned(h, 0.05);
    await h.orchestrator.onOutput(output(assignment(h, 'sql-bot'), 'sql', 0.02));
    await h.orchestrator.onOutput(output(assignment(h, 'chart-bot'), 'chart', 0.02));
    expect(result(h)).toMatchObject({ state: 'completed', usage: { usd: 0.04 } });
    expect(status(h).errors).toEqual([]);
  });

  it('flags an agent that reports more than it bid, in the status, naming agent, bid and report', async () => {
    const h = orchestratorHarness();
    await planned(h, 1);
    await h.orchestrator.onOutput(output(assignment(h, 'sql-bot'), 'sql', 0.05));
    expect(status(h).errors).toEqual([expect.objectContaining({
      code: 'usage-over-bid', agentId: 'sql-bot', stepId: 's1', message: 'agent sql-bot reported $0.0500 for step s1, more than its bid of $0.0200',
    })]);
    // Within the budget, the task goes on.
    expect(h.publisher.on('tasks/t1/assign/chart-bot')).toHaveLength(1);
  });

  it('does not dispatch a step that would pass the budget: the task fails saying how much was spent', async () => {
    const h = orchestratorHarness();
    await planned(h, 0.05);
    // The first agent reports $0.04 where it bid $0.02: the $0.02 chart step would make $0.06.
    await h.orchestrator.onOutput(output(assignment(h, 'sql-bot'), 'sql', 0.04));
    expect(h.publisher.on('tasks/t1/assign/chart-bot')).toEqual([]);
    expect(result(h)).toMatchObject({
      state: 'failed',
      reason: 'budget exceeded: dispatching step s2 (chart, est. $0.0200) would take the task past its budget of $0.0500 (spent $0.0400, $0.0000 committed to running steps); no further step is dispatched',
    });
    expect(status(h).errors.map((e) => e.code)).toEqual(['usage-over-bid', 'budget-exceeded']);
    const stored = await h.tasks.get('t1');
    expect(stored && spentUsd(stored)).toBe(0.04);
  });

  it('fails at once when a report passes the budget with other steps running, and cancels them', async () => {
    const h = orchestratorHarness();
    await planned(h, 0.05, true);
    // sql and notes run in parallel (est $0.03 together); notes reports $0.06.
    const notes = assignment(h, 'notes-bot');
    expect(assignment(h, 'sql-bot').epoch).toBe(1);
    await h.orchestrator.onOutput(output(notes, 'notes', 0.06));
    expect(result(h)).toMatchObject({ state: 'failed', reason: expect.stringMatching(/^budget exceeded: step s\d brought the spend to \$0\.0600, over the budget of \$0\.0500/) });
    const steps = status(h).plan?.steps ?? [];
    expect(steps.find((s) => s.agentId === 'sql-bot')?.state).toBe('canceled');
    expect(h.publisher.on('tasks/t1/assign/chart-bot')).toEqual([]);
    // The running step's late output is refused: the task has ended.
    expect(await h.orchestrator.onOutput(output(assignment(h, 'sql-bot'), 'sql', 0.02))).toMatchObject({ status: 'rejected', code: 'invalid-state' });
  });

  it('counts every attempt: a re-assignment after a costly error is not dispatched past the budget', async () => {
    const h = orchestratorHarness();
    await h.service.onResume(inbound('agents/sql-a/resume', resume('sql')));
    await h.service.onResume(inbound('agents/sql-b/resume', resume('sql')));
    await h.orchestrator.onRequest(inbound('clients/client-1/tasks/t1/request', {
      goal: 'sql', input: { question: 'q' }, want: ['sql'], skills: ['sql'], constraints: { maxUsd: 0.03 },
    }));
    await h.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-a', { steps: [step('w', 'sql', ['question'], ['sql'], 0.02)] }));
    await h.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-b', { decline: true, reason: 'busy' }));
    const first = Assignment.parse(h.publisher.last(`tasks/t1/assign/${['sql-a', 'sql-b'].find((id) => h.publisher.on(`tasks/t1/assign/${id}`).length > 0)}`));
    await h.orchestrator.onOutput(inbound(`tasks/t1/output/${first.stepId}/${first.agentId}`, {
      taskId: 't1', stepId: first.stepId, epoch: first.epoch, token: first.token, ok: false, usage: { usd: 0.02, ms: 5 },
      error: { code: 'flaky', message: 'try again', retryable: true },
    }));
    expect(result(h)).toMatchObject({ state: 'failed', reason: expect.stringMatching(/^budget exceeded: dispatching step s1/) });
  });
});
