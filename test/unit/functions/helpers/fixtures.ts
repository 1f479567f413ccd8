/**
 * Records and messages for the functions' unit tests.
 */
import type { AgentRecord, StepRecord, TaskRecord } from '../../../../core/model';
import type { Resume } from '../../../../core/schemas';

/** A submitted task collecting proposals; override any field. */
export function taskRecord(overrides: Partial<TaskRecord> = {}): TaskRecord {
  return {
    taskId: 't-1',
    taskRoot: 'tasks',
    owner: 'client-1',
    request: { v: 1, goal: 'chart sales', input: { sales: [1, 2, 3] }, want: ['chart'], constraints: {} },
    state: 'submitted',
    phase: 'collecting-proposals',
    version: 1,
    createdAt: 1_000_000,
    updatedAt: 1_000_000,
    windowClosesAt: 1_002_000,
    eligibleAgents: [],
    steps: {},
    stepOrder: [],
    artifacts: { sales: [1, 2, 3] },
    planNotes: [],
    errors: [],
    outbox: [],
    ...overrides,
  };
}

/** A plan step; assigned to `agentId` with a lease when given one. */
export function step(id: string, overrides: Partial<StepRecord> = {}): StepRecord {
  return {
    id,
    skill: 'nl2chart',
    consumes: ['sales'],
    produces: ['chart'],
    estUsd: 0.01,
    estMs: 1000,
    proposedBy: 'agent-a',
    proposedStepId: id,
    state: 'pending',
    epoch: 0,
    attempts: 0,
    excluded: [],
    ...overrides,
  };
}

/** The seed article's résumé. */
export const seedResume: Resume = {
  v: 1,
  skills: ['sql-optimiser', 'nl2chart'],
  cost: { usd: 0.02, p95_ms: 350 },
  region: 'eu-central-1',
  accredit: ['ISO27001', 'gdpr'],
};

/** An online agent with the seed résumé. */
export function agentRecord(overrides: Partial<AgentRecord> = {}): AgentRecord {
  return {
    agentId: 'agent-a',
    resume: seedResume,
    state: 'online',
    verifiedAccredit: ['gdpr'],
    unverifiedAccredit: ['ISO27001'],
    updatedAt: 1_000_000,
    version: 1,
    ...overrides,
  };
}
