/**
 * Bounded concurrency with a small bounded queue. Past both bounds work is refused at once, so
 * the orchestrator can re-assign it to another agent instead of waiting on a lease to expire.
 */

/** What {@link ConcurrencyGate.offer} did with an item. */
export type GateDecision = 'started' | 'queued' | 'rejected';

/** Runs at most `maxActive` items at a time, queues up to `maxQueued` more, refuses the rest. */
export class ConcurrencyGate<T> {
  private readonly queue: T[] = [];
  private running = 0;
  private idleWaiters: (() => void)[] = [];

  /**
   * @param maxActive items run concurrently (the résumé's maxConcurrent)
   * @param maxQueued items waiting for a free slot
   * @param run executes one item; its rejection is the caller's to handle inside `run`
   */
  constructor(
    readonly maxActive: number,
    readonly maxQueued: number,
    private readonly run: (item: T) => Promise<void>,
  ) {
    if (!Number.isInteger(maxActive) || maxActive < 1) throw new RangeError(`maxActive must be a positive integer, got ${maxActive}`);
    if (!Number.isInteger(maxQueued) || maxQueued < 0) throw new RangeError(`maxQueued must be a non-negative integer, got ${maxQueued}`);
  }

  /** Starts `item` now, queues it, or refuses it when both the slots and the queue are full. */
  offer(item: T): GateDecision {
    if (this.running < this.maxActive) {
      this.start(item);
      return 'started';
    }
    if (this.queue.length < this.maxQueued) {
      this.queue.push(item);
      return 'queued';
    }
    return 'rejected';
  }

  /** Items running now. */
  get active(): number {
    return this.running;
  }

  /** Items waiting for a slot. */
  get queued(): number {
    return this.queue.length;
  }

  /** Removes and returns every queued item (they will not run). */
  clearQueue(): T[] {
    return this.queue.splice(0, this.queue.length);
  }

  /** Resolves once nothing is running or queued. */
  idle(): Promise<void> {
    if (this.running === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private start(item: T): void {
    this.running += 1;
    let settled: Promise<void>;
    try {
      settled = this.run(item);
    } catch (err) {
      settled = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    // `run` owns error handling; the gate only has to free the slot whatever happens.
    settled.catch(() => undefined).finally(() => this.finish()).catch(() => undefined);
  }

  private finish(): void {
    this.running -= 1;
    const next = this.queue.shift();
    if (next !== undefined) {
      this.start(next);
      return;
    }
    if (this.running === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }
}
