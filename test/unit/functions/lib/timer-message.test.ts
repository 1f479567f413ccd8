import { ValidationError } from '../../../../core/errors';
import type { TimerEvent } from '../../../../core/model';
import { parseTimerMessage } from '../../../../functions/lib/timer-message';

const body = (event: unknown, dueAt: unknown = 1_893_456_000_000): string => JSON.stringify({ event, dueAt });

describe('parseTimerMessage', () => {
  describe('a well-formed message', () => {
    it.each<TimerEvent>([
      { kind: 'proposal-window', taskId: 't-1' },
      { kind: 'lease', taskId: 't-1', stepId: 's1', epoch: 2 },
      { kind: 'deadline', taskId: 't-1' },
      { kind: 'retention', taskId: 't-1' },
      { kind: 'dispatch', taskId: 't-1' },
    ])('returns the $kind event and its due time', (event) => {
      expect(parseTimerMessage(body(event))).toEqual({ event, dueAt: 1_893_456_000_000 });
    });
  });

  describe('a malformed message', () => {
    it('throws invalid-json when the body is not JSON', () => {
      expect(() => parseTimerMessage('{event')).toThrow(expect.objectContaining({ name: 'ValidationError', code: 'invalid-json' }));
    });

    it.each<[string, string, RegExp]>([
      ['an unknown kind', body({ kind: 'wake-up', taskId: 't-1' }), /event\.kind/],
      ['a dispatch event without a task id', body({ kind: 'dispatch' }), /event\.taskId/],
      ['a dispatch event with an invalid task id', body({ kind: 'dispatch', taskId: 'a/b' }), /event\.taskId/],
      ['a negative due time', body({ kind: 'dispatch', taskId: 't-1' }, -1), /dueAt/],
    ])('throws invalid-payload naming the field for %s', (_label, text, field) => {
      const run = () => parseTimerMessage(text);
      expect(run).toThrow(ValidationError);
      expect(run).toThrow(expect.objectContaining({ code: 'invalid-payload' }));
      expect(run).toThrow(field);
    });
  });
});
