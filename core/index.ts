/**
 * The public API of core/: the wire contract (topics, schemas, errors), the records and ports,
 * the planner, matcher and policy model, and the orchestration services. Composition roots
 * (Lambda handlers, the agent runtime, the local stack, the CLI) import from here.
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
