/**
 * The IoT rule → Lambda envelope, parsed apart from the business payload: this module only checks
 * the envelope (core/rule-event.ts `RuleEvent`) and decodes the base64 payload to bytes; the
 * payload's own schema is core's business, so a bad payload reaches core and is refused there
 * with a notice to its sender.
 */
import { ValidationError } from '../../core/errors';
import { RuleEvent, type InboundMessage } from '../../core/rule-event';
import { parseTopic, type ParsedTopic } from '../../core/topics';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The InboundMessage carried by a rule event; ValidationError (`invalid-payload`) naming what is
 * wrong when the event is not a rule envelope or its payload is not base64.
 */
export function parseRuleEvent(event: unknown): InboundMessage {
  const result = RuleEvent.safeParse(event);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`);
    throw new ValidationError('invalid-payload', `rule event is not a Porchlight rule envelope: ${issues.join('; ')}`, issues);
  }
  const { payload, topic, clientId, receivedAt } = result.data;
  if (!BASE64.test(payload)) {
    throw new ValidationError('invalid-payload', `rule event for ${topic}: payload is not base64 (rules must select encode(*, 'base64') AS payload)`);
  }
  return { topic, payload: Buffer.from(payload, 'base64'), receivedAt, ...(clientId !== undefined ? { clientId } : {}) };
}

/**
 * The kind of a Porchlight topic, or undefined when it is not one; for handlers that serve several
 * rules and route by topic (core refuses a topic it does not take with a specific error).
 */
export function topicKind(topic: string): ParsedTopic['kind'] | undefined {
  try {
    return parseTopic(topic).kind;
  } catch {
    return undefined;
  }
}
