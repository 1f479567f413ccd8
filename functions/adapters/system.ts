/**
 * The clock, randomness and hashing core/ takes as ports, over Node's own facilities.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Clock, IdGenerator } from '../../core/ports';

/** Wall-clock time from the host. */
export class SystemClock implements Clock {
  /** Epoch milliseconds. */
  now(): number {
    return Date.now();
  }
}

/** Unguessable tokens from the OS CSPRNG: 18 bytes (144 bits), 24 URL-safe characters. */
export class CryptoIdGenerator implements IdGenerator {
  /** A fresh fencing token. */
  token(): string {
    return randomBytes(18).toString('base64url');
  }
}

/** Lower-case hex SHA-256 of the UTF-8 bytes of `text` (the form `cancelHash` commits to). */
export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
