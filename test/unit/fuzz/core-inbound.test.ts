/**
 * Hostile input for every inbound topic, driven through core's Orchestrator and RegistryService
 * over the in-memory ports: never a throw, never an unhandled rejection, always a refusal with a
 * wire code and a message naming the field, and nothing already accepted changes.
 */
import fc from 'fast-check';
import type { HandleOutcome } from '../../../core/orchestrator';
import type { TimerEvent } from '../../../core/model';
import { Assignment, type Resume } from '../../../core/schemas';
import {
  inbound, orchestratorHarness, sha256Hex,
} from '../../helpers/in-memory-ports';
import {
  RUNS, badArtifactName, badId, brokenField, expectPrototypeClean, expectSpecificRefusal, garbage, tooLong, trapUnhandledRejections, withPollutionKey,
  type BreakableField,
} from './arbitraries';

const PAYLOAD_CODES = ['invalid-json', 'invalid-payload', 'payload-too-large'];

trapUnhandledRejections();

/** One world for the whole file: a task mid-execution, a task still collecting, three agents. */
async function world() {
  const { clock, publisher, timer, tasks, registry, orchestrator, service } = orchestratorHarness();
  const resume = (skills: string[]): Resume => ({ v: 1, skills, cost: { usd: 0.02, p95_ms: 350 }, region: 'eu-central-1', accredit: [] });
  for (const [id, skills] of [['sql-agent', ['sql-optimiser']], ['sql-agent-2', ['sql-optimiser']], ['chart-agent', ['nl2chart']]] as const) {
    await registry.putResume(id, resume([...skills]), { verified: [], unverified: [] }, clock.now());
  }
  const request = { goal: 'chart revenue', input: { question: 'revenue?' }, want: ['chart'], skills: ['sql-optimiser', 'nl2chart'], cancelHash: sha256Hex('the-secret-123') };
  await orchestrator.onRequest(inbound('clients/client-1/tasks/t-live/request', request));
  const bid = (id: string, skill: string, consumes: string[], produces: string[]) => ({ steps: [{ id, skill, consumes, produces, estUsd: 0.02, estMs: 300 }] });
  await orchestrator.onProposal(inbound('tasks/t-live/proposal/sql-agent', bid('sql', 'sql-optimiser', ['question'], ['sql'])));
  await orchestrator.onProposal(inbound('tasks/t-live/proposal/sql-agent-2', { decline: true, reason: 'busy' }));
  await orchestrator.onProposal(inbound('tasks/t-live/proposal/chart-agent', bid('draw', 'nl2chart', ['sql'], ['chart'])));
  await orchestrator.onRequest(inbound('clients/client-1/tasks/t-open/request', { ...request, skills: undefined }));
  const assignment = Assignment.parse(publisher.last('tasks/t-live/assign/sql-agent'));
  const snapshot = async () => JSON.stringify({
    live: await tasks.get('t-live'), open: await tasks.get('t-open'), size: tasks.size,
    proposals: [await tasks.listProposals('t-live'), await tasks.listProposals('t-open')], agents: await registry.list(),
  });
  return { clock, publisher, timer, tasks, registry, orchestrator, service, assignment, request, snapshot };
}
type World = Awaited<ReturnType<typeof world>>;

/** The world a property runs against; most share one, so that any change would show. */
let w: World;
let shared: World;
beforeAll(async () => {
  shared = await world();
  w = shared;
});

/** Runs `handle` on `payload`, asserting it resolved to a specific refusal and changed no state. */
async function refusedWithoutChange(handle: () => Promise<HandleOutcome>, codes?: readonly string[], field?: readonly (string | number)[]): Promise<void> {
  const before = await w.snapshot();
  const outcome = await handle();
  expectSpecificRefusal(outcome, codes, field);
  expect(await w.snapshot()).toBe(before);
  expectPrototypeClean();
}

interface InboundKind {
  readonly name: string;
  readonly topic: () => string;
  readonly valid: () => unknown;
  readonly fields: () => readonly BreakableField[];
  readonly handle: (msg: ReturnType<typeof inbound>) => Promise<HandleOutcome>;
  /** Codes a payload-level refusal may carry on this topic besides the payload codes. */
  readonly extraCodes?: readonly string[];
}

const KINDS: readonly InboundKind[] = [
  {
    name: 'request (new task id)',
    topic: () => 'clients/client-1/tasks/t-new/request',
    valid: () => ({ goal: 'chart revenue', input: { question: 'revenue?' }, want: ['chart'] }),
    fields: () => [
      { path: ['goal'], bad: fc.oneof(fc.constant(''), tooLong(4000)) },
      { path: ['want'], bad: fc.constant([]) },
      { path: ['want', 0], bad: badArtifactName },
      { path: ['input'], defaulted: true },
    ],
    handle: (m) => w.orchestrator.onRequest(m),
  },
  {
    name: 'request (existing task id)',
    topic: () => 'clients/client-1/tasks/t-live/request',
    valid: () => ({ goal: 'chart revenue', input: { question: 'revenue?' }, want: ['chart'] }),
    fields: () => [{ path: ['goal'] }, { path: ['want'] }],
    handle: (m) => w.orchestrator.onRequest(m),
    // A request for an existing id is refused as a duplicate before its payload matters.
    extraCodes: ['duplicate-task'],
  },
  {
    name: 'proposal',
    topic: () => 'tasks/t-open/proposal/sql-agent',
    valid: () => ({ steps: [{ id: 'sql', skill: 'sql-optimiser', consumes: ['question'], produces: ['sql'], estUsd: 0.02, estMs: 300 }] }),
    fields: () => [
      { path: ['steps'], bad: fc.constant([]) },
      { path: ['steps', 0, 'id'], bad: badId },
      { path: ['steps', 0, 'skill'], bad: fc.constantFrom('', 'Upper Case', 'a/b', 'x'.repeat(65)) },
      { path: ['steps', 0, 'produces'], bad: fc.constant([]) },
      { path: ['steps', 0, 'estUsd'], bad: fc.constantFrom(-0.01, -1e308) },
      { path: ['steps', 0, 'estMs'], bad: fc.constantFrom(0, -5, 86_400_001) },
    ],
    handle: (m) => w.orchestrator.onProposal(m),
  },
  {
    name: 'output',
    topic: () => `tasks/t-live/output/${w.assignment.stepId}/sql-agent`,
    valid: () => ({ taskId: w.assignment.taskId, stepId: w.assignment.stepId, epoch: w.assignment.epoch, token: w.assignment.token, ok: true, output: { sql: 'SELECT 1' } }),
    fields: () => [
      { path: ['taskId'], bad: badId },
      { path: ['stepId'], bad: badId },
      { path: ['epoch'], bad: fc.constantFrom(0, -1, 1.5, 2 ** 60) },
      { path: ['token'], bad: fc.constantFrom('', 'short', 'x'.repeat(129)) },
      { path: ['ok'] },
      { path: ['output'] },
    ],
    handle: (m) => w.orchestrator.onOutput(m),
  },
  {
    name: 'cancel',
    topic: () => 'clients/client-1/tasks/t-live/cancel',
    valid: () => ({ secret: 'the-secret-123', reason: 'changed my mind' }),
    fields: () => [{ path: ['secret'], bad: fc.constantFrom('', 'short', 'x'.repeat(257)) }],
    handle: (m) => w.orchestrator.onCancel(m),
  },
  {
    name: 'résumé',
    topic: () => 'agents/sql-agent/resume',
    valid: () => ({ skills: ['sql-optimiser'], cost: { usd: 0.02, p95_ms: 350 }, region: 'eu-central-1', accredit: [] }),
    fields: () => [
      { path: ['skills'], bad: fc.constant([]) },
      { path: ['skills', 0], bad: fc.constantFrom('', 'Not A Skill', 'x'.repeat(65)) },
      { path: ['cost'] },
      { path: ['cost', 'usd'], bad: fc.constant(-1) },
      { path: ['cost', 'p95_ms'], bad: fc.constant(-1) },
      { path: ['region'], bad: fc.constantFrom('', 'x'.repeat(65)) },
    ],
    handle: (m) => w.service.onResume(m),
  },
  {
    name: 'status',
    topic: () => 'agents/sql-agent/status',
    valid: () => ({ state: 'online', load: { active: 0, max: 2 } }),
    fields: () => [
      { path: ['state'], bad: fc.constantFrom('sleeping', 'ONLINE', '') },
      { path: ['load', 'active'], bad: fc.constantFrom(-1, 0.5) },
      { path: ['load', 'max'], bad: fc.constantFrom(0, -1, 1.5) },
    ],
    handle: (m) => w.service.onStatus(m),
  },
  {
    name: 'telemetry',
    topic: () => 'agents/sql-agent/telemetry',
    valid: () => ({ executions: 10, costUsd: 0.02, p95Ms: 300, successRate: 0.9 }),
    fields: () => [
      { path: ['executions'], bad: fc.constantFrom(-1, 1.5) },
      { path: ['costUsd'], bad: fc.constant(-1) },
      { path: ['p95Ms'], bad: fc.constant(-1) },
      { path: ['successRate'], bad: fc.constantFrom(-0.1, 1.5) },
    ],
    handle: (m) => w.service.onTelemetry(m),
  },
  {
    name: 'presence',
    topic: () => '$aws/events/presence/disconnected/sql-agent',
    valid: () => ({ clientId: 'sql-agent', timestamp: 1_900_000_000_000, eventType: 'disconnected', disconnectReason: 'CONNECTION_LOST' }),
    fields: () => [
      { path: ['clientId'], bad: fc.constant('') },
      { path: ['timestamp'], bad: fc.constantFrom(-1, 1.5) },
      { path: ['eventType'], bad: fc.constantFrom('gone', 'CONNECTED') },
    ],
    handle: (m) => w.service.onPresence(m),
  },
];

describe('core inbound fuzz', () => {
  describe.each(KINDS)('$name', (kind) => {
    it('refuses any garbage payload with invalid-json, invalid-payload or payload-too-large and changes nothing', async () => {
      await fc.assert(
        fc.asyncProperty(garbage(kind.valid()), async (payload) => {
          const msg = typeof payload === 'string' ? inbound(kind.topic(), payload) : { topic: kind.topic(), payload, receivedAt: 0 };
          await refusedWithoutChange(() => kind.handle(msg), [...PAYLOAD_CODES, ...(kind.extraCodes ?? [])]);
        }),
        { numRuns: RUNS },
      );
    });

    it('refuses a valid message with one field broken, naming the field, and changes nothing', async () => {
      await fc.assert(
        fc.asyncProperty(brokenField(kind.valid(), kind.fields()), async ({ path, payload }) => {
          const codes = [...PAYLOAD_CODES, ...(kind.extraCodes ?? [])];
          await refusedWithoutChange(() => kind.handle(inbound(kind.topic(), payload)), codes, kind.extraCodes ? undefined : path);
        }),
        { numRuns: RUNS },
      );
    });

    it('never lets a prototype-pollution key through: no throw, a clean prototype, no stored __proto__', async () => {
      // Unknown keys are dropped, so these messages are valid and may change state: each gets its own world.
      await fc.assert(
        fc.asyncProperty(withPollutionKey(kind.valid()), async (text) => {
          w = await world();
          const outcome = await kind.handle(inbound(kind.topic(), text));
          expect(['accepted', 'duplicate', 'ignored', 'rejected']).toContain(outcome.status);
          expectPrototypeClean();
          expect(await w.snapshot()).not.toMatch(/"__proto__"|"polluted"/);
        }),
        { numRuns: 30 },
      ).finally(() => {
        w = shared;
      });
    });

    it('refuses the message on a topic with an invalid id as invalid-topic and changes nothing', async () => {
      const valid = kind.valid();
      const topics = badId.map((id) => kind.topic().replace(/(sql-agent|t-live|t-open|t-new)/, () => id));
      await fc.assert(
        fc.asyncProperty(fc.oneof(topics, fc.string({ maxLength: 60 })), async (topic) => {
          await refusedWithoutChange(() => kind.handle(inbound(topic, valid)), ['invalid-topic']);
        }),
        { numRuns: RUNS },
      );
    });
  });

  describe('timer events', () => {
    it('refuses an invalid task id and ignores stale or unknown leases, changing nothing', async () => {
      const event: fc.Arbitrary<TimerEvent> = fc.oneof(
        badId.map((taskId): TimerEvent => ({ kind: 'deadline', taskId })),
        fc.record({ stepId: fc.oneof(fc.constant(w.assignment.stepId), badId, fc.string()), epoch: fc.integer({ min: -5, max: 50 }) })
          .filter(({ stepId, epoch }) => !(stepId === w.assignment.stepId && epoch === w.assignment.epoch))
          .map(({ stepId, epoch }): TimerEvent => ({ kind: 'lease', taskId: 't-live', stepId, epoch })),
        fc.constantFrom<TimerEvent>({ kind: 'retention', taskId: 't-live' }, { kind: 'deadline', taskId: 'no-such-task' }),
      );
      await fc.assert(
        fc.asyncProperty(event, async (e) => {
          const before = await w.snapshot();
          const outcome = await w.orchestrator.onTimer(e);
          if (outcome.status === 'rejected') expectSpecificRefusal(outcome, ['invalid-id']);
          else expect(outcome.status).toBe('ignored');
          expect(await w.snapshot()).toBe(before);
        }),
        { numRuns: RUNS },
      );
    });
  });

  describe('afterwards', () => {
    it('still completes the live task with the genuine output', async () => {
      const a = w.assignment;
      const ok = { taskId: a.taskId, stepId: a.stepId, epoch: a.epoch, token: a.token, ok: true, output: { sql: 'SELECT 1' } };
      expect(await w.orchestrator.onOutput(inbound(`tasks/t-live/output/${a.stepId}/${a.agentId}`, ok))).toMatchObject({ status: 'accepted' });
      expect((await w.tasks.get('t-live'))?.artifacts).toMatchObject({ sql: 'SELECT 1' });
    });
  });
});
