/**
 * Every error Porchlight raises on purpose. Each has a stable `code` that goes on the wire
 * (in a RejectNotice or a task status) and a human `message` that says exactly what was wrong.
 * Adapters translate infrastructure failures into these at the boundary and keep the `cause`.
 */

/** Stable, machine-readable error codes, as they appear in RejectNotice.code and TaskStatus.errors. */
export type ErrorCode =
  | 'invalid-id'
  | 'invalid-topic'
  | 'invalid-json'
  | 'invalid-payload'
  | 'payload-too-large'
  | 'cyclic-dag'
  | 'invalid-dag'
  | 'unsatisfiable'
  | 'unknown-task'
  | 'duplicate-task'
  | 'version-conflict'
  | 'stale-epoch'
  | 'bad-token'
  | 'already-claimed'
  | 'not-authorized'
  | 'invalid-state'
  | 'config';

/** Base class: carries a wire code and keeps the underlying cause. */
export class PorchlightError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PorchlightError';
    this.code = code;
  }
}

/** An id (agent, task, step, pool, artifact) that cannot be spliced into a topic or policy. */
export class InvalidIdError extends PorchlightError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('invalid-id', message, options);
    this.name = 'InvalidIdError';
  }
}

/** A topic string that is not one of Porchlight's topics. */
export class TopicParseError extends PorchlightError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('invalid-topic', message, options);
    this.name = 'TopicParseError';
  }
}

/** A payload that is not JSON, or JSON that does not match its schema. */
export class ValidationError extends PorchlightError {
  /** One line per problem, each naming the field path. */
  readonly issues: readonly string[];
  constructor(code: 'invalid-json' | 'invalid-payload', message: string, issues: readonly string[] = [], options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'ValidationError';
    this.issues = issues;
  }
}

/** A payload larger than the broker (and therefore Porchlight) accepts. */
export class PayloadTooLargeError extends PorchlightError {
  constructor(readonly bytes: number, readonly limit: number) {
    super('payload-too-large', `payload is ${bytes} bytes; the limit is ${limit} bytes`);
    this.name = 'PayloadTooLargeError';
  }
}

/** A proposal DAG with a cycle; `cycle` lists the step ids around it. */
export class CyclicDagError extends PorchlightError {
  constructor(readonly cycle: readonly string[]) {
    super('cyclic-dag', `proposal has a cycle: ${cycle.join(' -> ')}`);
    this.name = 'CyclicDagError';
  }
}

/** A proposal DAG that is malformed for a reason other than a cycle (duplicate ids, silly estimates). */
export class InvalidDagError extends PorchlightError {
  constructor(message: string) {
    super('invalid-dag', message);
    this.name = 'InvalidDagError';
  }
}

/** No plan can satisfy the request; `reasons` says which artifact or constraint stopped it. */
export class UnsatisfiableError extends PorchlightError {
  constructor(readonly reasons: readonly string[]) {
    super('unsatisfiable', `no plan satisfies the request: ${reasons.join('; ')}`);
    this.name = 'UnsatisfiableError';
  }
}

/** A message about a task that does not exist. */
export class UnknownTaskError extends PorchlightError {
  constructor(readonly taskId: string) {
    super('unknown-task', `unknown task ${taskId}`);
    this.name = 'UnknownTaskError';
  }
}

/** A request whose task id already exists: task ids are never reused. */
export class DuplicateTaskError extends PorchlightError {
  constructor(readonly taskId: string, options?: { cause?: unknown }) {
    super('duplicate-task', `task ${taskId} already exists`, options);
    this.name = 'DuplicateTaskError';
  }
}

/** An optimistic-concurrency write lost the race (DynamoDB ConditionalCheckFailed). */
export class VersionConflictError extends PorchlightError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('version-conflict', message, options);
    this.name = 'VersionConflictError';
  }
}

/** An output (or other step message) carrying an epoch or token that is not the live assignment's. */
export class FencingError extends PorchlightError {
  constructor(code: 'stale-epoch' | 'bad-token', message: string) {
    super(code, message);
    this.name = 'FencingError';
  }
}

/** A claim for a pool offer that another pool member claimed first. */
export class AlreadyClaimedError extends PorchlightError {
  constructor(message: string) {
    super('already-claimed', message);
    this.name = 'AlreadyClaimedError';
  }
}

/** The sender may not do this (wrong owner, wrong cancel secret, spoofed client id). */
export class NotAuthorizedError extends PorchlightError {
  constructor(message: string) {
    super('not-authorized', message);
    this.name = 'NotAuthorizedError';
  }
}

/** The message is valid but arrives when the task or step cannot take it (e.g. a proposal after planning). */
export class InvalidStateError extends PorchlightError {
  constructor(message: string) {
    super('invalid-state', message);
    this.name = 'InvalidStateError';
  }
}

/** Missing or malformed configuration (environment, CLI flags). */
export class ConfigError extends PorchlightError {
  constructor(message: string) {
    super('config', message);
    this.name = 'ConfigError';
  }
}
