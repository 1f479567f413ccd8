/**
 * The public API of core/ in one entry point, for code built on Porchlight outside this
 * repository (a custom agent, client or adapter): the wire contract (topics, schemas, errors),
 * the records and ports, the planner, matcher and policy model, and the orchestration services.
 * Modules inside the repository import the specific core module they use.
 */
export * from './errors';
export * from './data-classes';
export * from './topics';
export * from './schemas';
export * from './model';
export * from './ports';
export * from './rule-event';
export * from './plan-types';
export * from './dag';
export * from './planner';
export * from './matching';
export * from './policy';
export * from './outbox';
export * from './task-machine';
export * from './orchestrator';
export * from './registry-service';
export * from './inbound';
export * from './seeded-random';
export * from './reputation';
