import { TASK_ROOTS } from '../../../core/data-classes';
import {
  ENTRY_POINT_PUBLICATIONS, PUBLICATIONS, RETAINED_TOPIC_KINDS, publicationsOf, publishRefusal,
  type EntryPoint, type PublicationKind,
} from '../../../core/publications';
import { Assignment, PoolOffer, type ProposedStep } from '../../../core/schemas';
import { parseTopic, topicMatches, topics } from '../../../core/topics';
import { inbound, orchestratorHarness, sha256Hex } from '../../helpers/in-memory-ports';

const SECRET = 'open-sesame-123';
const SQL_STEP: ProposedStep = { id: 'write-sql', skill: 'sql-optimiser', consumes: ['question'], produces: ['sql'], estUsd: 0.02, estMs: 300 };
const CHART_STEP: ProposedStep = { id: 'draw', skill: 'nl2chart', consumes: ['sql'], produces: ['chart'], estUsd: 0.03, estMs: 400 };

function request(): Record<string, unknown> {
  return { goal: 'chart revenue', input: { question: 'revenue?' }, want: ['chart'], skills: ['sql-optimiser', 'nl2chart'], cancelHash: sha256Hex(SECRET) };
}

describe('publication catalogue', () => {
  it('derives one filter per task root from the topic builders', () => {
    expect(PUBLICATIONS['task-status'].filters).toEqual(TASK_ROOTS.map((r) => `${r}/+/status`));
    expect(PUBLICATIONS['client-output'].filters).toEqual(TASK_ROOTS.map((r) => `clients/+/${r}/+/output/+`));
    expect(PUBLICATIONS['task-request'].filters).toEqual(TASK_ROOTS.map((r) => `${r}/+/request`));
    expect(PUBLICATIONS['agent-errors'].filters).toEqual(['agents/+/errors']);
    for (const p of Object.values(PUBLICATIONS)) {
      for (const f of p.filters) expect(parseTopic(f.split('/').map((l) => (l === '+' ? 'x1' : l)).join('/')).kind).toBe(p.kind);
    }
  });

  it('marks retained exactly the kinds the wire contract retains', () => {
    expect(Object.values(PUBLICATIONS).filter((p) => p.retained).map((p) => p.kind).sort()).toEqual(['client-output', 'client-result', 'client-status', 'task-status']);
    expect([...RETAINED_TOPIC_KINDS].sort()).toEqual(['agent-resume', 'agent-status', 'client-output', 'client-result', 'client-status', 'task-status']);
  });

  it('refuses a topic outside the granted kinds, and a retained publish of a kind granted only plain', () => {
    const intakeLike = publicationsOf(['orchestrator.onTimer']);
    expect(publishRefusal(intakeLike, 'tasks/t1/status', true)).toBeUndefined();
    expect(publishRefusal(intakeLike, 'clients/c1/patient-data/t1/output/s1', true)).toBeUndefined();
    // Agents' hand-in topics are never the orchestrator's to publish.
    expect(publishRefusal(intakeLike, 'patient-data/t1/output/s1/a1', false)).toMatch(/no granted publication kind/);
    expect(publishRefusal(intakeLike, 'agents/a1/errors', false)).toMatch(/no granted publication kind covers agents\/a1\/errors/);
    expect(publishRefusal(intakeLike, 'tasks/t1/assign/a1', true)).toMatch(/only without RETAIN/);
    expect(publishRefusal(publicationsOf(['registry.onTelemetry']), 'tasks/t1/status', true)).toMatch(/granted: client-errors, agent-errors/);
  });

  it('matches MQTT filters level by level', () => {
    expect(topicMatches('tasks/+/status', 'tasks/t1/status')).toBe(true);
    expect(topicMatches('tasks/+/status', 'tasks/t1/assign/status')).toBe(false);
    expect(topicMatches('agents/#', 'agents/a/b')).toBe(true);
  });

  it('refuses an unknown entry point', () => {
    expect(() => publicationsOf(['orchestrator.onNothing' as EntryPoint])).toThrow(/unknown entry point/);
  });

  /**
   * Drives every core entry point through the paths that publish (first deliveries, redeliveries
   * that flush a stored outbox, refusals with notices, re-assignment, retention) and checks each
   * message against what the catalogue grants that entry point: a kind core starts publishing
   * without a catalogue entry fails here before it fails on AWS.
   */
  describe('covers everything core publishes, per entry point', () => {
    const h = orchestratorHarness();
    const seen = new Map<EntryPoint, Set<PublicationKind>>();
    const refusals: string[] = [];

    async function as<T>(entryPoint: EntryPoint, run: () => Promise<T>): Promise<T> {
      const before = h.publisher.messages.length;
      const result = await run();
      const granted = publicationsOf([entryPoint]);
      for (const m of h.publisher.messages.slice(before)) {
        const refusal = publishRefusal(granted, m.topic, m.retain);
        if (refusal !== undefined) refusals.push(`${entryPoint}: ${refusal}`);
        const kinds = seen.get(entryPoint) ?? new Set<PublicationKind>();
        kinds.add(parseTopic(m.topic).kind as PublicationKind);
        seen.set(entryPoint, kinds);
      }
      return result;
    }

    const assignment = (taskId: string, agentId: string): Assignment => Assignment.parse(h.publisher.last(topics.taskAssign(taskId, agentId)));
    const output = (a: Assignment, artifact: string): ReturnType<typeof inbound> => inbound(topics.taskOutput(a.taskId, a.stepId, a.agentId!), {
      taskId: a.taskId, stepId: a.stepId, epoch: a.epoch, token: a.token, usage: { usd: 0.01, ms: 100 }, ok: true, output: { [artifact]: `${artifact}!` },
    });
    const resume = (skills: string[], accredit: string[] = []): Record<string, unknown> => ({ v: 1, skills, cost: { usd: 0.02, p95_ms: 300 }, region: 'eu-central-1', accredit });

    /** Runs a task to completion; the first assignment's publish fails once when `flushOnRedelivery`, and a redelivered request publishes it. */
    async function complete(taskId: string, flushOnRedelivery: boolean): Promise<void> {
      await as('orchestrator.onRequest', () => h.orchestrator.onRequest(inbound(topics.clientRequest('client-1', taskId), request())));
      await as('orchestrator.onProposal', () => h.orchestrator.onProposal(inbound(topics.taskProposal(taskId, 'sql-agent'), { steps: [SQL_STEP] })));
      if (flushOnRedelivery) h.publisher.failNext(1, (m) => m.topic.includes('/assign/'));
      await as('orchestrator.onProposal', () => h.orchestrator.onProposal(inbound(topics.taskProposal(taskId, 'chart-agent'), { steps: [CHART_STEP] })));
      if (flushOnRedelivery) {
        expect(h.publisher.on(topics.taskAssign(taskId, 'sql-agent'))).toHaveLength(0);
        await as('orchestrator.onRequest', () => h.orchestrator.onRequest(inbound(topics.clientRequest('client-1', taskId), request())));
      }
      // progress from the live assignee is relayed to the owner
      const live = assignment(taskId, 'sql-agent');
      await as('orchestrator.onProgress', () => h.orchestrator.onProgress(inbound(topics.taskProgress(taskId, live.stepId, 'sql-agent'), {
        taskId, stepId: live.stepId, epoch: live.epoch, fraction: 0.5,
      })));
      await as('orchestrator.onOutput', () => h.orchestrator.onOutput(output(assignment(taskId, 'sql-agent'), 'sql')));
      await as('orchestrator.onOutput', () => h.orchestrator.onOutput(output(assignment(taskId, 'chart-agent'), 'chart')));
      expect(h.publisher.last<{ state: string }>(topics.clientStatus('client-1', taskId))?.state).toBe('completed');
    }

    beforeAll(async () => {
      await as('registry.onResume', () => h.service.onResume(inbound(topics.agentResume('sql-agent'), resume(['sql-optimiser'], ['gdpr']))));
      await as('registry.onResume', () => h.service.onResume(inbound(topics.agentResume('chart-agent'), resume(['nl2chart']))));
      await as('registry.onTelemetry', () => h.service.onTelemetry(inbound(topics.agentTelemetry('ghost'), { v: 1, window: '1h', executions: 1, successRate: 1, p95Ms: 100, avgUsd: 0.01 })));

      // t1: completed, its first assignment published by a redelivered request; retention by timer
      await complete('t1', true);
      // a request clashing with t1 is refused with a notice to the sender
      await as('orchestrator.onRequest', () => h.orchestrator.onRequest(inbound(topics.clientRequest('client-1', 't1'), { ...request(), goal: 'other' }, { clientId: 'client-1' })));
      // progress from an agent that is not the assignee is refused with a notice
      await as('orchestrator.onProgress', () => h.orchestrator.onProgress(inbound(topics.taskProgress('t1', 's1', 'chart-agent'), { taskId: 't1', stepId: 's1', epoch: 1 })));
      // t2: completed; its retention clearing fails to publish, and the sweeper finishes it
      await complete('t2', false);
      h.clock.advance(h.config.retentionMs + 1);
      await as('orchestrator.onTimer', () => h.orchestrator.onTimer({ kind: 'retention', taskId: 't1' }));
      h.publisher.failNext(1, (m) => m.payload === null);
      await as('orchestrator.onTimer', () => h.orchestrator.onTimer({ kind: 'retention', taskId: 't2' }));
      await as('orchestrator.sweep', () => h.orchestrator.sweep());

      // t3: canceled
      await as('orchestrator.onRequest', () => h.orchestrator.onRequest(inbound(topics.clientRequest('client-1', 't3'), request())));
      await as('orchestrator.onCancel', () => h.orchestrator.onCancel(inbound(topics.clientCancel('client-1', 't3'), { secret: SECRET })));
      // another client's cancel is refused on its own errors topic
      await as('orchestrator.onCancel', () => h.orchestrator.onCancel(inbound(topics.clientCancel('client-2', 't3'), { secret: SECRET })));

      // t4: planned, then its agents leave: by status and by presence (re-assignment to nobody, waiting)
      await as('orchestrator.onRequest', () => h.orchestrator.onRequest(inbound(topics.clientRequest('client-1', 't4'), request())));
      await as('orchestrator.onProposal', () => h.orchestrator.onProposal(inbound(topics.taskProposal('t4', 'sql-agent'), { steps: [SQL_STEP] })));
      await as('orchestrator.onProposal', () => h.orchestrator.onProposal(inbound(topics.taskProposal('t4', 'chart-agent'), { steps: [CHART_STEP] })));
      await as('registry.onPresence', () => h.service.onPresence(inbound('$aws/events/presence/disconnected/sql-agent', {
        clientId: 'sql-agent', timestamp: h.clock.now(), eventType: 'disconnected', disconnectReason: 'CONNECTION_LOST', versionNumber: 1,
      })));
      // back online, the held step is dispatched to it again, then it leaves by its last will
      await as('registry.onStatus', () => h.service.onStatus(inbound(topics.agentStatus('sql-agent'), { v: 1, state: 'online' })));
      h.clock.advance(h.config.dispatchRetryMs);
      await as('orchestrator.onTimer', () => h.orchestrator.onTimer({ kind: 'dispatch', taskId: 't4' }));
      expect(h.publisher.on(topics.taskAssign('t4', 'sql-agent')).length).toBeGreaterThanOrEqual(2);
      await as('registry.onStatus', () => h.service.onStatus(inbound(topics.agentStatus('sql-agent'), { v: 1, state: 'offline', reason: 'will' })));
      await as('orchestrator.onAgentGone', () => h.orchestrator.onAgentGone('chart-agent', 'never assigned'));

      // t5: a pool step is offered, claimed by one member (its assignment) and refused to another (a notice)
      for (const member of ['member-a', 'member-b']) {
        await h.registry.putResume(member, { v: 1, skills: ['sql-optimiser'], cost: { usd: 0.02, p95_ms: 300 }, region: 'eu-central-1', accredit: [], pools: ['sql-pool'] },
          { verified: [], unverified: [], pools: ['sql-pool'] }, h.clock.now());
      }
      await as('orchestrator.onRequest', () => h.orchestrator.onRequest(inbound(topics.clientRequest('client-1', 't5'), { ...request(), want: ['sql'], skills: ['sql-optimiser'] })));
      await h.registry.setStatus('sql-agent', { v: 1, state: 'online' }, h.clock.now());
      await as('orchestrator.onProposal', () => h.orchestrator.onProposal(inbound(topics.taskProposal('t5', 'sql-agent'), { steps: [{ ...SQL_STEP, pool: 'sql-pool' }] })));
      for (const member of ['member-a', 'member-b']) {
        await as('orchestrator.onProposal', () => h.orchestrator.onProposal(inbound(topics.taskProposal('t5', member), { v: 1, decline: true, reason: 'pool member' })));
      }
      const offer = PoolOffer.parse(h.publisher.last(topics.taskPool('t5', 'sql-pool')));
      const claim = { v: 1, taskId: 't5', stepId: offer.stepId, epoch: offer.epoch };
      await as('orchestrator.onClaim', () => h.orchestrator.onClaim(inbound(topics.taskClaim('t5', offer.stepId, 'member-a'), claim)));
      await as('orchestrator.onClaim', () => h.orchestrator.onClaim(inbound(topics.taskClaim('t5', offer.stepId, 'member-b'), claim)));
    });

    it('publishes nothing outside the entry point\'s catalogue entry', () => {
      expect(refusals).toEqual([]);
    });

    it('exercised the paths that need the wider grants', () => {
      const kinds = (e: EntryPoint): PublicationKind[] => [...(seen.get(e) ?? [])].sort();
      // retention clears outputs: the grant the cloud lacked
      expect(kinds('orchestrator.onTimer')).toContain('client-output');
      expect(kinds('orchestrator.sweep')).toContain('client-output');
      expect(h.publisher.messages.filter((m) => m.payload === null && parseTopic(m.topic).kind === 'client-output').length).toBeGreaterThanOrEqual(4);
      // a redelivered request flushes a stored assignment; a clashing one notifies its sender
      expect(kinds('orchestrator.onRequest')).toEqual(expect.arrayContaining(['client-errors', 'task-assign', 'task-request', 'client-status']));
      expect(kinds('orchestrator.onProgress')).toEqual(['agent-errors', 'client-progress']);
      expect(kinds('orchestrator.onCancel')).toContain('client-errors');
      expect(kinds('registry.onResume')).toContain('agent-errors');
      expect(kinds('registry.onTelemetry')).toEqual(['agent-errors']);
      expect(kinds('orchestrator.onCancel')).toContain('client-status');
      expect(kinds('registry.onStatus')).toContain('client-status');
      expect(kinds('registry.onPresence')).toContain('client-status');
      // a pool offer goes out when the plan is made; a won claim assigns, a lost one is told why
      expect(kinds('orchestrator.onProposal')).toContain('task-pool');
      expect(kinds('orchestrator.onClaim')).toEqual(expect.arrayContaining(['agent-errors', 'task-assign']));
    });

    it('lists every entry point it drives', () => {
      // onAgentGone is reached through the registry entry points above; called alone it had nothing to re-assign.
      expect([...seen.keys()].sort()).toEqual(Object.keys(ENTRY_POINT_PUBLICATIONS).filter((e) => e !== 'orchestrator.onAgentGone').sort());
    });
  });
});
