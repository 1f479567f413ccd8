/**
 * Test-only fault injection for the local stack. AWS IoT Core may deliver a QoS 1 message more
 * than once, with a new packet id and no DUP flag; Mosquitto on a healthy loopback almost never
 * does. Injecting duplicates on purpose is how tests prove the handlers are idempotent. Off by
 * default; nothing in production reads these settings.
 */

export { seededRandom, type RandomSource } from '../core/seeded-random';

/**
 * Checks a duplicate-delivery rate: a number in [0, 1].
 * @throws RangeError naming `what` for anything else
 */
export function checkRate(rate: number, what: string): number {
  if (!Number.isFinite(rate) || rate < 0 || rate > 1) throw new RangeError(`${what} must be a number from 0 to 1; got ${String(rate)}`);
  return rate;
}
