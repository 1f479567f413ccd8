/**
 * Test-only fault injection for the local stack. AWS IoT Core may deliver a QoS 1 message more
 * than once, with a new packet id and no DUP flag; Mosquitto on a healthy loopback almost never
 * does. Injecting duplicates on purpose is how tests prove the handlers are idempotent. Off by
 * default; nothing in production reads these settings.
 */

/** A pseudo-random source in [0, 1). */
export type RandomSource = () => number;

/**
 * mulberry32: a small, fast, seeded PRNG, so a chaos run's duplicate pattern can be replayed
 * from its seed. Not for anything security-related.
 */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Checks a duplicate-delivery rate: a number in [0, 1].
 * @throws RangeError naming `what` for anything else
 */
export function checkRate(rate: number, what: string): number {
  if (!Number.isFinite(rate) || rate < 0 || rate > 1) throw new RangeError(`${what} must be a number from 0 to 1; got ${String(rate)}`);
  return rate;
}
