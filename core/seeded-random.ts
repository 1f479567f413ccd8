/**
 * A small seeded pseudo-random generator (mulberry32), so a benchmark's data or a test's fault
 * pattern can be replayed from its seed. Pure and deterministic; not for anything security-related
 * (fencing tokens come from the Fencer port).
 */

/** A pseudo-random source in [0, 1). */
export type RandomSource = () => number;

/** Returns a generator whose sequence depends only on `seed` (taken as an unsigned 32-bit integer). */
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
