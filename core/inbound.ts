/**
 * What every inbound-message service in core shares: the outcome type, the logging hook, reading
 * a topic of the expected kind, and refusing a message with a specific error (logged, and told to
 * the sender on `agents/{id}/errors` when it is known).
 */
import { PorchlightError, TopicParseError, type ErrorCode } from './errors';
import type { Clock, Publisher } from './ports';
import type { InboundMessage } from './rule-event';
import { rejectNotice } from './task-machine';
import { topics } from './topics';
import { isValidId, parseTopic, type ParsedTopic } from './topics';

/** Log severity. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Structured logging hook (Powertools Logger in Lambda, console locally). */
export type LogFn = (level: LogLevel, msg: string, data?: Record<string, unknown>) => void;

/** Result of handling one inbound message. Rejections are also published by core itself. */
export type HandleOutcome =
  | { status: 'accepted' | 'duplicate' | 'ignored'; detail?: string }
  | { status: 'rejected'; code: ErrorCode; message: string };

/** The rejection outcome for `error`. */
export function rejected(error: PorchlightError): HandleOutcome {
  return { status: 'rejected', code: error.code, message: error.message };
}

/** Input errors become rejections; anything else is a defect or an outage and goes to the caller. */
export function asPorchlightError(err: unknown): PorchlightError {
  if (err instanceof PorchlightError) return err;
  throw err instanceof Error ? err : new Error(describeError(err));
}

/** A thrown value as one log-friendly line. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return typeof err === 'string' ? err : JSON.stringify(err) ?? typeof err;
}

/** Parses `msg.topic` and checks it is a `kind` topic; a bad topic comes back as the error to refuse with. */
export function topicOfKind<K extends ParsedTopic['kind']>(msg: InboundMessage, kind: K): Extract<ParsedTopic, { kind: K }> | PorchlightError {
  try {
    const parsed = parseTopic(msg.topic);
    if (parsed.kind !== kind) return new TopicParseError(`topic "${msg.topic}" is a ${parsed.kind} topic; this handler takes ${kind} topics`);
    return parsed as Extract<ParsedTopic, { kind: K }>;
  } catch (err) {
    return asPorchlightError(err);
  }
}

/** What refusing a message needs. */
export interface RefusalDeps {
  readonly publisher: Publisher;
  readonly clock: Clock;
  readonly log?: LogFn;
}

/**
 * Tells agent `agentId` on `agents/{id}/errors` why something it sent was refused or trimmed. An
 * invalid id is skipped; a notice that cannot be published is logged, not thrown: it carries no
 * state to retry.
 */
export async function notifyAgent(deps: RefusalDeps, agentId: string, error: PorchlightError, about: { topic: string; taskId?: string; stepId?: string }): Promise<void> {
  if (!isValidId(agentId)) return;
  try {
    await deps.publisher.publish(rejectNotice(agentId, error, about, deps.clock.now()));
  } catch (err) {
    deps.log?.('warn', 'reject notice not published', { agentId, error: describeError(err) });
  }
}

/**
 * Refuses a message: logs it, tells `notify` (when given) with a RejectNotice about `about`
 * (default: the message's topic), and returns the rejection.
 */
export async function refuse(
  deps: RefusalDeps, msg: InboundMessage, error: PorchlightError, notify?: string, about?: { topic: string; taskId?: string; stepId?: string },
): Promise<HandleOutcome> {
  deps.log?.('info', 'message refused', { topic: msg.topic, clientId: msg.clientId, code: error.code, reason: error.message });
  if (notify !== undefined) await notifyAgent(deps, notify, error, about ?? { topic: msg.topic });
  return rejected(error);
}

/**
 * Refuses a client's message: logs it and tells the client on `clients/{clientId}/errors` (a
 * task's own status is never overwritten to say that a message about it was refused).
 */
export async function refuseClient(
  deps: RefusalDeps, msg: InboundMessage, error: PorchlightError, clientId: string, about: { topic: string; taskId?: string },
): Promise<HandleOutcome> {
  deps.log?.('info', 'client message refused', { topic: msg.topic, clientId, code: error.code, reason: error.message });
  if (isValidId(clientId)) {
    const notice = rejectNotice(clientId, error, about, deps.clock.now());
    try {
      await deps.publisher.publish({ ...notice, topic: topics.clientErrors(clientId) });
    } catch (err) {
      deps.log?.('warn', 'client reject notice not published', { clientId, error: describeError(err) });
    }
  }
  return rejected(error);
}
