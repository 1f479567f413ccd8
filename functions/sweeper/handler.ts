/**
 * `sweeper`: an EventBridge schedule → Orchestrator.sweep, the safety net for lost timers and
 * unpublished outboxes. A failure is thrown so the scheduled invocation is retried.
 */
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { ScheduledEvent } from 'aws-lambda';
import { describeError } from '../lib/observability';
import { createRuntime } from '../lib/wiring';
import { config } from './config';

const { obs, orchestrator } = createRuntime(config);

/** Sweeps due tasks; resolves with how many were examined and advanced. */
export async function handler(event: ScheduledEvent): Promise<{ examined: number; advanced: number }> {
  try {
    const result = await orchestrator.sweep();
    obs.metrics.addMetric('SweptTasks', MetricUnit.Count, result.examined);
    obs.metrics.addMetric('AdvancedTasks', MetricUnit.Count, result.advanced);
    obs.logger.info('sweep finished', { ...result, scheduledAt: scheduledTimeOf(event) });
    return result;
  } catch (err) {
    obs.metrics.addMetric('Failed', MetricUnit.Count, 1);
    obs.logger.error('sweep failed; the invocation will be retried', describeError(err));
    throw err;
  } finally {
    obs.metrics.publishStoredMetrics();
  }
}

/**
 * The schedule's time, read defensively: the sweep ignores its event, so an event that is not an
 * EventBridge one (a manual test invoke, a replay) must not fail a sweep that already did its work.
 */
function scheduledTimeOf(event: unknown): string | undefined {
  if (event === null || typeof event !== 'object') return undefined;
  const time = (event as { time?: unknown }).time;
  return typeof time === 'string' ? time : undefined;
}
