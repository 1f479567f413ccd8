/**
 * A bounded set that forgets its least recently added key once full.
 *
 * The runtime uses it to drop redelivered messages: AWS IoT Core may deliver a QoS 1 message
 * twice with a new packet id and no DUP flag, so deduplication has to key on message content
 * (task, step, epoch), and it has to stay bounded in a long-running agent.
 */
export class LruSet {
  private readonly keys = new Map<string, true>();

  /** @param capacity how many keys to remember; the oldest is forgotten first. */
  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`LruSet capacity must be a positive integer, got ${capacity}`);
  }

  /** True when `key` is remembered. Does not refresh its position. */
  has(key: string): boolean {
    return this.keys.has(key);
  }

  /**
   * Remembers `key`. Returns true when it was new, false when it was already there (in which
   * case it becomes the most recent again).
   */
  add(key: string): boolean {
    const known = this.keys.delete(key);
    this.keys.set(key, true);
    if (this.keys.size > this.capacity) {
      const oldest = this.keys.keys().next().value;
      if (oldest !== undefined) this.keys.delete(oldest);
    }
    return !known;
  }

  /** Forgets `key` (e.g. so a step whose execution could not start may be tried again). */
  delete(key: string): void {
    this.keys.delete(key);
  }

  /** Number of remembered keys. */
  get size(): number {
    return this.keys.size;
  }
}
