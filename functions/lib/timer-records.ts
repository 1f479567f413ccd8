/**
 * One record of the timer queue: parse `{event, dueAt}`, send it on if not yet due, else fire it.
 */
import type { SQSRecord } from 'aws-lambda';
import type { HandleOutcome } from '../../core/orchestrator';
import { count, describeError, isPermanent } from './observability';
import { accounted } from './rule-handler';
import { parseTimerMessage } from './timer-message';
import type { Runtime } from './wiring';

/**
 * Handles one timer record. A malformed body is logged and counted, never thrown (redelivery
 * cannot fix it); a failure a retry may fix is thrown so the record is reported for redelivery.
 */
export async function handleTimerRecord(runtime: Pick<Runtime, 'obs' | 'orchestrator' | 'timer' | 'clock'>, record: SQSRecord): Promise<HandleOutcome> {
  const { obs } = runtime;
  const about = { messageId: record.messageId };
  let message;
  try {
    message = parseTimerMessage(record.body);
  } catch (err) {
    if (!isPermanent(err)) throw err;
    obs.logger.warn('malformed timer message dropped', { ...about, ...describeError(err) });
    count(obs.metrics, 'Malformed');
    return { status: 'rejected', code: err.code, message: err.message };
  }
  const { event, dueAt } = message;
  return accounted(obs, { ...about, ...event, dueAt }, async () => {
    const now = runtime.clock.now();
    if (dueAt > now) {
      await runtime.timer.schedule(event, dueAt);
      return { status: 'ignored', detail: `${event.kind} timer of task ${event.taskId} is due in ${dueAt - now} ms; sent on` };
    }
    return runtime.orchestrator.onTimer(event);
  });
}
