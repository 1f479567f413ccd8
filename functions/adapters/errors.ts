/**
 * Errors raised by the AWS adapters. Domain failures (a duplicate task, a lost optimistic race, an
 * item that cannot fit) become core PorchlightErrors; infrastructure failures (throttling, an
 * outage, a denied IAM call) become an {@link AdapterError} that says whether a retry can help, so
 * a handler can rethrow the transient ones (Lambda retries, then the DLQ keeps the event) and
 * report the permanent ones. Every error keeps the SDK error as `cause`.
 */
import { PayloadTooLargeError } from '../../core/errors';

/** Base class of infrastructure failures seen through an adapter. */
export class AdapterError extends Error {
  /** True when the same call may succeed later (throttling, server fault, network). */
  readonly retryable: boolean;
  /** What the adapter was doing, e.g. `publish tasks/t1/status`. */
  readonly operation: string;
  constructor(operation: string, message: string, retryable: boolean, options?: { cause?: unknown }) {
    super(`${operation}: ${message}`, options);
    this.name = 'AdapterError';
    this.operation = operation;
    this.retryable = retryable;
  }
}

/** The IoT data plane refused or failed a Publish. */
export class PublishError extends AdapterError {
  constructor(readonly topic: string, message: string, retryable: boolean, options?: { cause?: unknown }) {
    super(`publish ${topic}`, message, retryable, options);
    this.name = 'PublishError';
  }
}

/** SQS refused or failed to take a timer message. */
export class ScheduleError extends AdapterError {
  constructor(message: string, retryable: boolean, options?: { cause?: unknown }) {
    super('schedule timer', message, retryable, options);
    this.name = 'ScheduleError';
  }
}

/** DynamoDB failed for a reason other than a condition (which maps to a domain error). */
export class StoreError extends AdapterError {
  constructor(operation: string, message: string, retryable: boolean, options?: { cause?: unknown }) {
    super(operation, message, retryable, options);
    this.name = 'StoreError';
  }
}

/** The identity service (IoT thing groups, the local accreditation file) could not be read. */
export class AccreditationLookupError extends AdapterError {
  constructor(readonly identity: string, message: string, retryable: boolean, options?: { cause?: unknown }) {
    super(`look up accreditations of ${identity}`, message, retryable, options);
    this.name = 'AccreditationLookupError';
  }
}

/**
 * A record that would exceed DynamoDB's 400 KB item limit. A PayloadTooLargeError (wire code
 * `payload-too-large`), so it is reported rather than retried: the same write can never fit.
 */
export class ItemTooLargeError extends PayloadTooLargeError {
  constructor(readonly what: string, bytes: number, limit: number) {
    super(bytes, limit);
    this.name = 'ItemTooLargeError';
    this.message = `${what} would be a ${bytes}-byte DynamoDB item; the limit is ${limit} bytes`;
  }
}

/** Names of SDK errors that mean "slow down", whatever the service marks as their fault. */
const THROTTLING = new Set([
  'ThrottlingException',
  'Throttling',
  'RequestThrottled',
  'RequestThrottledException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'TransactionConflictException',
  'KmsThrottled',
  'LimitExceededException',
]);

/** The fields of an AWS SDK v3 service exception this module reads. */
interface SdkErrorShape {
  readonly name?: unknown;
  readonly message?: unknown;
  readonly $fault?: unknown;
  readonly $retryable?: unknown;
  readonly $metadata?: unknown;
  readonly code?: unknown;
}

/** Failures raised before any service answer arrived (the SDK's and Node's own names). */
const NETWORK = new Set(['TimeoutError', 'RequestTimeout', 'NetworkingError', 'AbortError']);

/** The SDK error's name, or `Error` for anything that is not an object with one. */
export function sdkErrorName(err: unknown): string {
  if (typeof err === 'object' && err !== null && typeof (err as SdkErrorShape).name === 'string') return (err as SdkErrorShape).name as string;
  return 'Error';
}

/** The error's message, whatever was thrown. */
export function errorMessage(err: unknown): string {
  if (typeof err === 'object' && err !== null && typeof (err as SdkErrorShape).message === 'string') return (err as SdkErrorShape).message as string;
  return String(err);
}

/**
 * True when retrying the call that threw `err` may succeed: throttling, a server-side fault, or a
 * failure before any response arrived (network, timeout). Anything else (a client fault, a
 * programming error) is permanent.
 */
export function isRetryableSdkError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as SdkErrorShape;
  if (THROTTLING.has(sdkErrorName(err))) return true;
  if (e.$retryable !== undefined && e.$retryable !== null) return true;
  if (e.$fault === 'server') return true;
  if (e.$fault === 'client') return false;
  if (NETWORK.has(sdkErrorName(err))) return true;
  // Node system errors (ECONNRESET, ETIMEDOUT, EAI_AGAIN…) from the HTTP handler carry a code.
  return typeof e.code === 'string' && /^E[A-Z_]+$/.test(e.code);
}
