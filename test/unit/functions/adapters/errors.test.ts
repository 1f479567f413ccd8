import { PayloadTooLargeError, PorchlightError } from '../../../../core/errors';
import { AdapterError, isRetryableSdkError, ItemTooLargeError, PublishError, sdkErrorName } from '../../../../functions/adapters/errors';

const sdk = (name: string, fault?: 'client' | 'server') => Object.assign(new Error(name), { name, ...(fault ? { $fault: fault } : {}), $metadata: {} });

describe('adapter errors', () => {
  describe('isRetryableSdkError', () => {
    it('retries throttling, server faults and network failures', () => {
      expect(isRetryableSdkError(sdk('ThrottlingException', 'client'))).toBe(true);
      expect(isRetryableSdkError(sdk('ProvisionedThroughputExceededException', 'client'))).toBe(true);
      expect(isRetryableSdkError(sdk('InternalServerError', 'server'))).toBe(true);
      expect(isRetryableSdkError(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toBe(true);
      expect(isRetryableSdkError(Object.assign(new Error('t'), { name: 'TimeoutError' }))).toBe(true);
    });

    it('does not retry client faults or programming errors', () => {
      expect(isRetryableSdkError(sdk('ValidationException', 'client'))).toBe(false);
      expect(isRetryableSdkError(sdk('UnauthorizedException', 'client'))).toBe(false);
      expect(isRetryableSdkError(new TypeError('x is undefined'))).toBe(false);
      expect(isRetryableSdkError('string')).toBe(false);
    });
  });

  describe('sdkErrorName', () => {
    it('reads the name of anything thrown', () => {
      expect(sdkErrorName(sdk('QueueDoesNotExist', 'client'))).toBe('QueueDoesNotExist');
      expect(sdkErrorName(42)).toBe('Error');
    });
  });

  describe('PublishError', () => {
    it('is an AdapterError, not a PorchlightError, naming the topic and keeping the cause', () => {
      const cause = sdk('ThrottlingException', 'client');
      const err = new PublishError('tasks/t/status', 'throttled', true, { cause });
      expect(err).toBeInstanceOf(AdapterError);
      expect(err).not.toBeInstanceOf(PorchlightError);
      expect(err.message).toBe('publish tasks/t/status: throttled');
      expect(err.cause).toBe(cause);
    });
  });

  describe('ItemTooLargeError', () => {
    it('is a payload-too-large PorchlightError saying which record and by how much', () => {
      const err = new ItemTooLargeError('task t-1', 500_000, 409_600);
      expect(err).toBeInstanceOf(PayloadTooLargeError);
      expect(err.code).toBe('payload-too-large');
      expect(err.name).toBe('ItemTooLargeError');
      expect(err.message).toBe('task t-1 would be a 500000-byte DynamoDB item; the limit is 409600 bytes');
    });
  });
});
