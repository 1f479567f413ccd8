/**
 * Rate-limits sends across many keys and coalesces updates per key: while a key waits for its
 * turn only its latest value is kept, so a fast progress loop costs at most one publish per
 * interval per agent instead of one per call (AWS IoT Core allows 100 publishes/s per connection,
 * shared with outputs, proposals and telemetry).
 */
import { systemScheduler, type Scheduler, type TimerHandle } from './scheduler';

/** Options for {@link CoalescingThrottle}. */
export interface CoalescingThrottleOptions<V> {
  /** Minimum time between two sends, ms (100 = at most 10 sends per second). */
  readonly intervalMs: number;
  /** Performs one send. Must not throw; failures are the sender's to log. */
  readonly send: (key: string, value: V) => void;
  /** @default systemScheduler */
  readonly scheduler?: Scheduler;
}

/** A coalescing, fair (oldest waiting key first) rate limiter. */
export class CoalescingThrottle<V> {
  private readonly pending = new Map<string, V>();
  private readonly intervalMs: number;
  private readonly send: (key: string, value: V) => void;
  private readonly scheduler: Scheduler;
  private nextAllowedAt = Number.NEGATIVE_INFINITY;
  private timer: TimerHandle | undefined;
  private disposed = false;

  constructor(options: CoalescingThrottleOptions<V>) {
    if (!(options.intervalMs > 0)) throw new RangeError(`intervalMs must be positive, got ${options.intervalMs}`);
    this.intervalMs = options.intervalMs;
    this.send = options.send;
    this.scheduler = options.scheduler ?? systemScheduler;
  }

  /** Offers the latest value for `key`: sent now if the rate allows, else kept (replacing any older waiting value). */
  offer(key: string, value: V): void {
    if (this.disposed) return;
    const now = this.scheduler.now();
    if (this.pending.size === 0 && now >= this.nextAllowedAt) {
      this.nextAllowedAt = now + this.intervalMs;
      this.send(key, value);
      return;
    }
    // Map.set on an existing key keeps its place in line: an update never loses a key its turn.
    this.pending.set(key, value);
    this.arm();
  }

  /** Discards the waiting value for `key`, if any (e.g. the step finished, its output supersedes progress). */
  drop(key: string): void {
    this.pending.delete(key);
  }

  /** Number of keys waiting for their turn. */
  get waiting(): number {
    return this.pending.size;
  }

  /** Stops all timers and forgets waiting values. Further offers are ignored. */
  dispose(): void {
    this.disposed = true;
    this.pending.clear();
    if (this.timer !== undefined) this.scheduler.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    if (this.timer !== undefined) return;
    const delay = Math.max(0, this.nextAllowedAt - this.scheduler.now());
    this.timer = this.scheduler.setTimeout(() => this.fire(), delay);
  }

  private fire(): void {
    this.timer = undefined;
    if (this.disposed) return;
    const first = this.pending.entries().next();
    if (first.done === true) return;
    const [key, value] = first.value;
    this.pending.delete(key);
    this.nextAllowedAt = this.scheduler.now() + this.intervalMs;
    this.send(key, value);
    if (this.pending.size > 0) this.arm();
  }
}
