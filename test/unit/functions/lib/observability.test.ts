import { DuplicateTaskError, PorchlightError, ValidationError, VersionConflictError } from '../../../../core/errors';
import { PublishError } from '../../../../functions/adapters/errors';
import { describeError, isPermanent, metricOf } from '../../../../functions/lib/observability';

describe('observability', () => {
  describe('isPermanent', () => {
    it('reports input and domain errors, but lets lost races and infrastructure failures be retried', () => {
      expect(isPermanent(new ValidationError('invalid-json', 'bad'))).toBe(true);
      expect(isPermanent(new DuplicateTaskError('t'))).toBe(true);
      expect(isPermanent(new VersionConflictError('raced'))).toBe(false);
      expect(isPermanent(new PublishError('tasks/t/status', 'throttled', true))).toBe(false);
      expect(isPermanent(new PublishError('tasks/t/status', 'denied', false))).toBe(false);
      expect(isPermanent(new TypeError('bug'))).toBe(false);
    });
  });

  describe('metricOf', () => {
    it('names one metric per outcome', () => {
      expect(metricOf({ status: 'accepted' })).toBe('Accepted');
      expect(metricOf({ status: 'duplicate' })).toBe('Duplicate');
      expect(metricOf({ status: 'ignored' })).toBe('Ignored');
      expect(metricOf({ status: 'rejected', code: 'bad-token', message: 'x' })).toBe('Rejected');
    });
  });

  describe('describeError', () => {
    it('includes the code and the cause chain', () => {
      const err = new PorchlightError('version-conflict', 'lost', { cause: new Error('ConditionalCheckFailed') });
      expect(describeError(err)).toEqual({ error: 'lost', errorName: 'PorchlightError', code: 'version-conflict', cause: { error: 'ConditionalCheckFailed', errorName: 'Error' } });
      expect(describeError('plain')).toEqual({ error: 'plain' });
    });
  });
});
