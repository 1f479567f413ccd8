/**
 * Logging, metrics and the one decision every handler shares: which failures to report and which
 * to throw. Input that can never succeed (a malformed envelope, a payload core refused, a record
 * too large to store) is logged, counted and dropped; anything else is an infrastructure failure
 * (throttling, an outage, a lost optimistic race after core's own retries, a denied call) and is
 * thrown, so Lambda's async retries and the on-failure destination keep the event.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { PorchlightError, VersionConflictError } from '../../core/errors';
import type { HandleOutcome, LogFn } from '../../core/orchestrator';
import type { FunctionName } from './settings';

/** Namespace of every Porchlight metric (POWERTOOLS_METRICS_NAMESPACE overrides it). */
export const METRICS_NAMESPACE = 'Porchlight';

/** The metric each handling result is counted under. */
export type OutcomeMetric = 'Accepted' | 'Rejected' | 'Duplicate' | 'Ignored' | 'Malformed' | 'Failed';

/** A function's logger and metrics. */
export interface Observability {
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The logger as core's LogFn. */
  readonly log: LogFn;
}

/** Logger and Metrics for one function; every metric carries a `function` dimension. */
export function createObservability(functionName: FunctionName): Observability {
  const serviceName = process.env.POWERTOOLS_SERVICE_NAME ?? 'porchlight';
  const logger = new Logger({ serviceName, persistentKeys: { function: functionName } });
  const metrics = new Metrics({
    namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? METRICS_NAMESPACE,
    serviceName,
    defaultDimensions: { function: functionName },
  });
  const log: LogFn = (level, msg, data) => {
    if (data === undefined) logger[level](msg);
    else logger[level](msg, data);
  };
  return { logger, metrics, log };
}

/** The metric name of a core outcome. */
export function metricOf(outcome: HandleOutcome): OutcomeMetric {
  switch (outcome.status) {
    case 'accepted': return 'Accepted';
    case 'rejected': return 'Rejected';
    case 'duplicate': return 'Duplicate';
    case 'ignored': return 'Ignored';
  }
}

/** Counts one result. */
export function count(metrics: Metrics, metric: OutcomeMetric): void {
  metrics.addMetric(metric, MetricUnit.Count, 1);
}

/**
 * True when `err` can never succeed on retry and must be reported instead: a Porchlight error
 * other than a lost optimistic race (which a retry resolves).
 */
export function isPermanent(err: unknown): err is PorchlightError {
  return err instanceof PorchlightError && !(err instanceof VersionConflictError);
}

/** Loggable fields of any thrown value, the cause chain included. */
export function describeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { error: String(err) };
  const out: Record<string, unknown> = { error: err.message, errorName: err.name };
  if (err instanceof PorchlightError) out.code = err.code;
  if (err.cause !== undefined) out.cause = describeError(err.cause);
  return out;
}
