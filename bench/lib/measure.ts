/**
 * Small helpers shared by the benchmarks: a seeded PRNG (figures must be reproducible) and
 * percentile summaries of repeated timings.
 */
import { performance } from 'node:perf_hooks';

export { seededRandom } from '../../core/seeded-random';

/** An integer in [min, max] from `random`. */
export function randomInt(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

/** `count` distinct items of `items`, in random order. */
export function sample<T>(random: () => number, items: readonly T[], count: number): T[] {
  const pool = [...items];
  for (let i = pool.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, count);
}

/** The p-th percentile (0..100) of `values`, nearest-rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error('percentile of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** Timings of repeated runs: wall-clock ms, and process CPU ms (less disturbed by other load on a shared machine). */
export interface Timings {
  readonly wallMs: number[];
  readonly cpuMs: number[];
}

/** Runs `fn` `warmup` times untimed, then `repeats` times timed. */
export function timeRuns(fn: (run: number) => void, warmup: number, repeats: number): Timings {
  for (let i = 0; i < warmup; i += 1) fn(i);
  const wallMs: number[] = [];
  const cpuMs: number[] = [];
  for (let i = 0; i < repeats; i += 1) {
    const cpu = process.cpuUsage();
    const start = performance.now();
    fn(warmup + i);
    wallMs.push(performance.now() - start);
    const used = process.cpuUsage(cpu);
    cpuMs.push((used.user + used.system) / 1000);
  }
  return { wallMs, cpuMs };
}

/** Heap in use right now, MiB. */
export function heapUsedMiB(): number {
  return process.memoryUsage().heapUsed / (1024 * 1024);
}
