/**
 * The clock and hashing core/ takes as ports, over Node's own facilities.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../../core/ports';

/** Wall-clock time from the host. */
export class SystemClock implements Clock {
  /** Epoch milliseconds. */
  now(): number {
    return Date.now();
  }
}

/** Lower-case hex SHA-256 of the UTF-8 bytes of `text` (the form `cancelHash` commits to). */
export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
