import { ValidationError } from '../../../../core/errors';
import { parseRuleEvent, topicKind } from '../../../../functions/lib/rule-event';

describe('parseRuleEvent', () => {
  describe('a rule envelope', () => {
    it('decodes the base64 payload to bytes and keeps topic, client id and receive time', () => {
      const msg = parseRuleEvent({ payload: Buffer.from('{"a":1}').toString('base64'), topic: 'tasks/t/request', clientId: 'c-1', receivedAt: 42, taskId: 't' });
      expect(msg).toEqual({ topic: 'tasks/t/request', payload: Buffer.from('{"a":1}'), clientId: 'c-1', receivedAt: 42 });
    });

    it('leaves clientId out when the local engine cannot tell it', () => {
      expect(parseRuleEvent({ payload: '', topic: 'agents/a/status', receivedAt: 1 })).not.toHaveProperty('clientId');
    });
  });

  describe('a malformed envelope', () => {
    it.each([
      ['not an object', 'hello', '(root)'],
      ['no topic', { payload: 'e30=', receivedAt: 1 }, 'topic'],
      ['a string receivedAt', { payload: 'e30=', topic: 't', receivedAt: '1' }, 'receivedAt'],
      ['a numeric payload', { payload: 7, topic: 't', receivedAt: 1 }, 'payload'],
    ])('throws ValidationError naming the field for %s', (_, event, field) => {
      expect(() => parseRuleEvent(event)).toThrow(ValidationError);
      expect(() => parseRuleEvent(event)).toThrow(field);
    });

    it('throws ValidationError when the payload is not base64', () => {
      expect(() => parseRuleEvent({ payload: '{"raw":"json"}', topic: 'tasks/t/request', receivedAt: 1 })).toThrow(/payload is not base64/);
    });
  });
});

describe('topicKind', () => {
  it('names the kind of a Porchlight topic and is undefined for anything else', () => {
    expect(topicKind('clients/c-1/tasks/t-1/cancel')).toBe('client-cancel');
    expect(topicKind('tasks/t-1/output/s1/a')).toBe('task-output');
    expect(topicKind('agents/a/telemetry')).toBe('agent-telemetry');
    expect(topicKind('weather/today')).toBeUndefined();
  });
});
