/**
 * The proposal window under load, through core: a window that closes without a satisfiable plan
 * while agents able to bid may still answer keeps the task collecting (re-planning on every new
 * bid and every `bidRecheckMs`) until a plan exists, nobody is left to wait for, the wait limit
 * or the deadline; and a window never closes before its minimum open time, even once every
 * eligible agent answered.
 */
import type { OrchestratorConfig } from '../../../core/orchestrator';
import { Assignment, TaskResult, TaskStatus, type AgentState, type Resume } from '../../../core/schemas';
import { inbound, orchestratorHarness } from '../../helpers/in-memory-ports';

function harness(config: Partial<OrchestratorConfig> = {}) {
  return orchestratorHarness({ defaultProposalWindowMs: 2_000, maxWaitForBidsMs: 10_000, bidRecheckMs: 1_000, ...config });
}
type Harness = ReturnType<typeof harness>;

const resume = (skill: string): Resume => ({ v: 1, skills: [skill], cost: { usd: 0.01, p95_ms: 300 }, region: 'eu-central-1', accredit: [] });
const SQL_BID = { steps: [{ id: 'write', skill: 'sql', consumes: ['question'], produces: ['sql'], estUsd: 0.01, estMs: 300 }] };
const CHART_BID = { steps: [{ id: 'draw', skill: 'chart', consumes: ['sql'], produces: ['chart'], estUsd: 0.01, estMs: 300 }] };

async function register(h: Harness, agentId: string, skill: string): Promise<void> {
  expect(await h.service.onResume(inbound(`agents/${agentId}/resume`, resume(skill)))).toMatchObject({ status: 'accepted' });
}

async function setState(h: Harness, agentId: string, state: AgentState): Promise<void> {
  expect(await h.service.onStatus(inbound(`agents/${agentId}/status`, { state }))).toMatchObject({ status: 'accepted' });
}

async function submit(h: Harness, request: Record<string, unknown> = {}): Promise<void> {
  const body = { goal: 'chart revenue', input: { question: 'revenue?' }, want: ['chart'], skills: ['sql', 'chart'], ...request };
  expect(await h.orchestrator.onRequest(inbound('clients/client-1/tasks/t1/request', body))).toMatchObject({ status: 'accepted' });
}

function status(h: Harness): TaskStatus {
  return TaskStatus.parse(h.publisher.retained.get('clients/client-1/tasks/t1/status'));
}

function result(h: Harness): TaskResult | undefined {
  const r = h.publisher.retained.get('clients/client-1/tasks/t1/result');
  return r === undefined ? undefined : TaskResult.parse(r);
}

function assignments(h: Harness, agentId: string): Assignment[] {
  return h.publisher.on(`tasks/t1/assign/${agentId}`).map((m) => Assignment.parse(m.payload));
}

describe('the proposal window under load', () => {
  describe('a bid that arrives after the window closed', () => {
    /** sql-bot bid in time; chart-bot, eligible when the task arrived, has not answered when the window closes. */
    async function closedWithoutChart(h: Harness): Promise<void> {
      await register(h, 'sql-bot', 'sql');
      await register(h, 'chart-bot', 'chart');
      await submit(h);
      await h.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-bot', SQL_BID));
      await h.elapse(2_000);
    }

    it('keeps the task collecting, and its status says whom it waits for and why', async () => {
      const h = harness();
      await closedWithoutChart(h);
      expect(result(h)).toBeUndefined();
      expect(status(h)).toMatchObject({ state: 'submitted', phase: 'collecting-proposals', errors: [] });
      expect(status(h).waitingForBids).toEqual({
        agents: ['chart-bot'], since: new Date(h.clock.now()).toISOString(), reasons: [expect.stringMatching(/'chart' has no producer/)],
      });
      expect(h.timer.of('proposal-window', 't1').at(-1)?.dueAt).toBe(h.clock.now() + h.config.bidRecheckMs);
    });

    it('plans as soon as the missing bid arrives, and the task completes', async () => {
      const h = harness();
      await closedWithoutChart(h);
      await h.elapse(500);
      const outcome = await h.orchestrator.onProposal(inbound('tasks/t1/proposal/chart-bot', CHART_BID));
      expect(outcome).toMatchObject({ status: 'accepted', detail: expect.stringMatching(/re-planned while waiting for bids/) });
      expect(status(h)).toMatchObject({ state: 'working', phase: 'executing' });
      expect(status(h).waitingForBids).toBeUndefined();
      expect(assignments(h, 'sql-bot')).toHaveLength(1);
      const a = assignments(h, 'sql-bot')[0]!;
      await h.orchestrator.onOutput(inbound(`tasks/t1/output/${a.stepId}/${a.agentId}`, { taskId: 't1', stepId: a.stepId, epoch: a.epoch, token: a.token, ok: true, output: { sql: 'SELECT 1' } }));
      const b = assignments(h, 'chart-bot')[0]!;
      await h.orchestrator.onOutput(inbound(`tasks/t1/output/${b.stepId}/${b.agentId}`, { taskId: 't1', stepId: b.stepId, epoch: b.epoch, token: b.token, ok: true, output: { chart: '<svg/>' } }));
      expect(result(h)).toMatchObject({ state: 'completed', outputs: { chart: '<svg/>' } });
    });

    it('waits for an eligible agent that went offline after the task arrived (its session keeps the request)', async () => {
      const h = harness();
      await register(h, 'sql-bot', 'sql');
      await register(h, 'chart-bot', 'chart');
      await submit(h);
      await setState(h, 'chart-bot', 'offline');
      await h.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-bot', SQL_BID));
      await h.elapse(2_000);
      expect(status(h).waitingForBids?.agents).toEqual(['chart-bot']);
    });

    it('waits for an agent that came online after the task arrived', async () => {
      const h = harness();
      await register(h, 'sql-bot', 'sql');
      await submit(h);
      await register(h, 'chart-bot', 'chart');
      await h.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-bot', SQL_BID));
      await h.elapse(2_000);
      expect(status(h).waitingForBids?.agents).toEqual(['chart-bot']);
      await h.orchestrator.onProposal(inbound('tasks/t1/proposal/chart-bot', CHART_BID));
      expect(status(h)).toMatchObject({ state: 'working', phase: 'executing' });
    });

    it('fails once the awaited agent declines, saying it waited and for whom', async () => {
      const h = harness();
      await closedWithoutChart(h);
      await h.elapse(300);
      await h.orchestrator.onProposal(inbound('tasks/t1/proposal/chart-bot', { decline: true, reason: 'busy' }));
      expect(result(h)).toMatchObject({ state: 'failed', reason: expect.stringMatching(/has no producer.*waited 300 ms for bids from chart-bot/) });
    });

    it('fails at the wait limit when the awaited agent never answers', async () => {
      const h = harness({ maxWaitForBidsMs: 3_000 });
      await closedWithoutChart(h);
      await h.elapse(1_000);
      await h.elapse(1_000);
      expect(result(h)).toBeUndefined();
      await h.elapse(1_000);
      expect(result(h)).toMatchObject({ state: 'failed', reason: expect.stringMatching(/waited 3000 ms for bids from chart-bot \(wait limit reached\)/) });
    });

    it('never waits past the deadline', async () => {
      const h = harness();
      await register(h, 'sql-bot', 'sql');
      await register(h, 'chart-bot', 'chart');
      await submit(h, { constraints: { deadline: new Date(h.clock.now() + 3_500).toISOString() } });
      await h.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-bot', SQL_BID));
      await h.elapse(2_000);
      expect(status(h).waitingForBids).toBeDefined();
      await h.elapse(1_000);
      await h.elapse(500);
      expect(result(h)?.state).toBe('failed');
    });

    it('fails at once when nobody else could bid, or when waiting is turned off', async () => {
      const alone = harness();
      await register(alone, 'sql-bot', 'sql');
      await submit(alone);
      await alone.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-bot', SQL_BID));
      await alone.elapse(2_000);
      expect(result(alone)).toMatchObject({ state: 'failed', reason: expect.not.stringMatching(/waited/) });

      const off = harness({ maxWaitForBidsMs: 0 });
      await closedWithoutChart(off);
      expect(result(off)?.state).toBe('failed');
    });

    it('publishes no new status while a re-check changes nothing', async () => {
      const h = harness();
      await closedWithoutChart(h);
      const before = h.publisher.on('clients/client-1/tasks/t1/status').length;
      await h.elapse(1_000);
      await h.elapse(1_000);
      expect(h.publisher.on('clients/client-1/tasks/t1/status')).toHaveLength(before);
      expect(status(h).waitingForBids?.agents).toEqual(['chart-bot']);
    });

    it('the sweeper re-checks a waiting task whose timers were lost', async () => {
      const h = harness();
      await closedWithoutChart(h);
      h.timer.takeDue(Number.MAX_SAFE_INTEGER);
      h.clock.advance(1_000);
      expect(await h.orchestrator.sweep()).toEqual({ examined: 1, advanced: 1 });
      expect(status(h).waitingForBids?.agents).toEqual(['chart-bot']);
      h.timer.takeDue(Number.MAX_SAFE_INTEGER);
      h.clock.advance(10_000);
      await h.orchestrator.sweep();
      expect(result(h)).toMatchObject({ state: 'failed', reason: expect.stringMatching(/wait limit reached/) });
    });
  });

  describe('the minimum open time', () => {
    it('keeps the window open until then although every eligible agent answered, then closes it', async () => {
      const h = harness({ minProposalWindowMs: 250 });
      await register(h, 'sql-bot', 'sql');
      await register(h, 'chart-bot', 'chart');
      await submit(h);
      await h.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-bot', SQL_BID));
      const last = await h.orchestrator.onProposal(inbound('tasks/t1/proposal/chart-bot', CHART_BID));
      expect(last).toMatchObject({ status: 'accepted', detail: expect.stringMatching(/closes at its minimum open time/) });
      expect(status(h).phase).toBe('collecting-proposals');
      expect(assignments(h, 'sql-bot')).toEqual([]);
      expect(h.timer.of('proposal-window', 't1').map((t) => t.dueAt)).toContain(h.clock.now() + 250);
      // A cheaper bidder the client did not hint still gets in before the window closes.
      await register(h, 'sql-cheap', 'sql-fast');
      await h.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-cheap', { steps: [{ ...SQL_BID.steps[0]!, skill: 'sql-fast', estUsd: 0.001 }] }));
      await h.elapse(250);
      expect(status(h)).toMatchObject({ phase: 'executing' });
      expect(assignments(h, 'sql-cheap')).toHaveLength(1);
      expect(assignments(h, 'sql-bot')).toEqual([]);
    });

    it('closes at once when the answers come after the minimum', async () => {
      const h = harness({ minProposalWindowMs: 250 });
      await register(h, 'sql-bot', 'sql');
      await register(h, 'chart-bot', 'chart');
      await submit(h);
      await h.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-bot', SQL_BID));
      h.clock.advance(300);
      await h.orchestrator.onProposal(inbound('tasks/t1/proposal/chart-bot', CHART_BID));
      expect(status(h)).toMatchObject({ phase: 'executing' });
    });

    it('is capped by the window the request asked for', async () => {
      const h = harness({ minProposalWindowMs: 250 });
      await register(h, 'sql-bot', 'sql');
      await register(h, 'chart-bot', 'chart');
      await submit(h, { proposalWindowMs: 100 });
      await h.orchestrator.onProposal(inbound('tasks/t1/proposal/sql-bot', SQL_BID));
      await h.orchestrator.onProposal(inbound('tasks/t1/proposal/chart-bot', CHART_BID));
      expect(h.timer.of('proposal-window', 't1').map((t) => t.dueAt)).toContain(h.clock.now() + 100);
      await h.elapse(100);
      expect(status(h)).toMatchObject({ phase: 'executing' });
    });
  });
});
