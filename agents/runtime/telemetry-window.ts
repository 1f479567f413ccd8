/**
 * Measured performance over a sliding window of recent executions: what the agent publishes on
 * `agents/{id}/telemetry` so the registry ranks it by what it does, not by what its résumé claims.
 */

/** One finished execution. */
export interface ExecutionSample {
  readonly ok: boolean;
  /** Cost charged for the step, USD. */
  readonly usd: number;
  /** Wall-clock duration, ms. */
  readonly ms: number;
  /** When it finished, epoch ms. */
  readonly at: number;
}

/** Figures over the window, shaped like the Telemetry message (without `v` and `at`). */
export interface TelemetrySnapshot {
  readonly executions: number;
  readonly costUsd: number;
  readonly p95Ms: number;
  readonly successRate: number;
}

/** Options for {@link TelemetryWindow}. */
export interface TelemetryWindowOptions {
  /** Most samples kept. @default 200 */
  readonly capacity?: number;
  /** Samples older than this are ignored, ms. @default 3_600_000 (one hour) */
  readonly maxAgeMs?: number;
}

/** Nearest-rank percentile of an ascending array (`p` in 0..100). */
export function percentile(sortedAscending: readonly number[], p: number): number {
  if (sortedAscending.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sortedAscending.length);
  return sortedAscending[Math.min(sortedAscending.length, Math.max(1, rank)) - 1] ?? 0;
}

/** A bounded window of execution samples, by count and by age. */
export class TelemetryWindow {
  private readonly samples: ExecutionSample[] = [];
  private readonly capacity: number;
  private readonly maxAgeMs: number;

  constructor(options: TelemetryWindowOptions = {}) {
    this.capacity = options.capacity ?? 200;
    this.maxAgeMs = options.maxAgeMs ?? 3_600_000;
    if (!Number.isInteger(this.capacity) || this.capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${this.capacity}`);
    if (!(this.maxAgeMs > 0)) throw new RangeError(`maxAgeMs must be positive, got ${this.maxAgeMs}`);
  }

  /** Adds one finished execution, evicting the oldest beyond capacity. */
  record(sample: ExecutionSample): void {
    this.samples.push(sample);
    if (this.samples.length > this.capacity) this.samples.splice(0, this.samples.length - this.capacity);
  }

  /** Figures over the samples no older than `maxAgeMs` at `now`; undefined when there are none. */
  snapshot(now: number): TelemetrySnapshot | undefined {
    const live = this.samples.filter((s) => now - s.at <= this.maxAgeMs);
    if (live.length === 0) return undefined;
    const durations = live.map((s) => s.ms).sort((a, b) => a - b);
    const cost = live.reduce((sum, s) => sum + s.usd, 0) / live.length;
    const successes = live.filter((s) => s.ok).length;
    return {
      executions: live.length,
      costUsd: cost,
      p95Ms: percentile(durations, 95),
      successRate: successes / live.length,
    };
  }
}
