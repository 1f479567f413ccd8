/**
 * The shape every rule-triggered handler shares: parse the envelope, hand the message to core,
 * log and count the outcome. A malformed envelope is logged and counted, never thrown (Lambda
 * would retry an event that can never parse); a permanent Porchlight error is reported the same
 * way; anything else is thrown so async retries and the on-failure destination keep the event.
 */
import type { HandleOutcome } from '../../core/orchestrator';
import type { InboundMessage } from '../../core/rule-event';
import { count, describeError, isPermanent, metricOf, type Observability } from './observability';
import { parseRuleEvent } from './rule-event';

/** A Lambda handler for IoT rule events; resolves with what happened (the local engine logs it). */
export type RuleHandler = (event: unknown) => Promise<HandleOutcome>;

/** What a handler does with a parsed message. */
export type MessageHandler = (msg: InboundMessage) => Promise<HandleOutcome>;

/** Builds the handler for rule events from the core call that handles their messages. */
export function ruleHandler(obs: Pick<Observability, 'logger' | 'metrics'>, handle: MessageHandler): RuleHandler {
  return async (event) => {
    try {
      let msg: InboundMessage;
      try {
        msg = parseRuleEvent(event);
      } catch (err) {
        if (!isPermanent(err)) throw err;
        obs.logger.warn('malformed rule event dropped', { ...describeError(err) });
        count(obs.metrics, 'Malformed');
        return { status: 'rejected', code: err.code, message: err.message };
      }
      return await handleMessage(obs, msg, handle);
    } finally {
      obs.metrics.publishStoredMetrics();
    }
  };
}

/** Runs core on one message and accounts for the outcome; throws only what a retry may fix. */
export function handleMessage(obs: Pick<Observability, 'logger' | 'metrics'>, msg: InboundMessage, handle: MessageHandler): Promise<HandleOutcome> {
  return accounted(obs, { topic: msg.topic, clientId: msg.clientId }, () => handle(msg));
}

/**
 * Runs one unit of work and accounts for it: the outcome is logged and counted; a permanent
 * Porchlight error is reported as a rejection; anything else is logged, counted as Failed, and
 * rethrown for the platform to retry.
 */
export async function accounted(obs: Pick<Observability, 'logger' | 'metrics'>, about: Record<string, unknown>, run: () => Promise<HandleOutcome>): Promise<HandleOutcome> {
  let outcome: HandleOutcome;
  try {
    outcome = await run();
  } catch (err) {
    if (isPermanent(err)) {
      obs.logger.error('could not be handled and was dropped', { ...about, ...describeError(err) });
      count(obs.metrics, 'Rejected');
      return { status: 'rejected', code: err.code, message: err.message };
    }
    obs.logger.error('handling failed; the event will be retried', { ...about, ...describeError(err) });
    count(obs.metrics, 'Failed');
    throw err;
  }
  count(obs.metrics, metricOf(outcome));
  const level = outcome.status === 'rejected' ? 'warn' : 'info';
  obs.logger[level]('handled', { ...about, ...outcome });
  return outcome;
}
