/**
 * Errors raised by the agent runtime. Each sets `name` and keeps its `cause`; MQTT failures
 * carry the broker's reason code, because "the promise resolved" is not "the broker agreed".
 */

/** The broker refused or never acknowledged an MQTT operation (CONNECT, SUBSCRIBE, PUBLISH). */
export class MqttOperationError extends Error {
  /** MQTT 5 reason code from the broker's ack, when there was one. */
  readonly reasonCode: number | undefined;
  constructor(message: string, options?: { reasonCode?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MqttOperationError';
    this.reasonCode = options?.reasonCode;
  }
}

/** The agent could not connect within the allowed time; `message` carries the last failure seen. */
export class ConnectTimeoutError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConnectTimeoutError';
  }
}

/**
 * Thrown by an agent's `execute()` to fail a step with a specific wire code. Anything else
 * thrown becomes `execution-failed`, retryable.
 */
export class StepError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  /**
   * @param code machine-readable code that goes into the StepOutput error (e.g. `invalid-input`)
   * @param options.retryable whether another attempt (possibly by another agent) could succeed; @default false
   */
  constructor(code: string, message: string, options?: { retryable?: boolean; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StepError';
    this.code = code;
    this.retryable = options?.retryable ?? false;
  }
}

/** Why a running step was stopped before it finished. */
export type AbortKind = 'task-ended' | 'superseded' | 'deadline' | 'shutdown';

/**
 * The `reason` of an execution's AbortSignal. `kind` decides what the runtime publishes: nothing
 * for a task that ended or a step re-assigned elsewhere (nobody wants the result), an error
 * output for a missed deadline or a shutdown.
 */
export class ExecutionAbortedError extends Error {
  constructor(readonly kind: AbortKind, message: string) {
    super(message);
    this.name = 'ExecutionAbortedError';
  }
}
